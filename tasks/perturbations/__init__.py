"""Observation perturbations: batched transforms and their Gymnasium-wrapper twins.

- :mod:`tasks.perturbations.draws`: validation and the random draws every perturbation shares.
- :mod:`tasks.perturbations.vector`: duplicate, shuffle, reshuffle and noise channels on vectors.
- :mod:`tasks.perturbations.wrappers`: the same perturbations as Gymnasium wrappers.
- :mod:`tasks.perturbations.config`: :class:`Perturbations`, the JSON-able settings.
"""

from __future__ import annotations

from tasks.perturbations.config import Perturbations
from tasks.perturbations.draws import (
    ReshuffleEvery,
    check_vector_box,
    draw_interval,
    draw_noise,
    draw_permutation,
    draw_shuffle,
    relative_permutation,
    validate_int,
    validate_reshuffle_every,
    validate_std,
)
from tasks.perturbations.vector import (
    BatchPerturbation,
    append_noise,
    apply_permutation,
    duplicate_observation,
)
from tasks.perturbations.wrappers import DuplicateObservation, NoiseChannels, ShuffleObservation

__all__ = [
    "BatchPerturbation",
    "DuplicateObservation",
    "NoiseChannels",
    "Perturbations",
    "ReshuffleEvery",
    "ShuffleObservation",
    "append_noise",
    "apply_permutation",
    "check_vector_box",
    "draw_interval",
    "draw_noise",
    "draw_permutation",
    "draw_shuffle",
    "duplicate_observation",
    "relative_permutation",
    "validate_int",
    "validate_reshuffle_every",
    "validate_std",
]
