"""Observation perturbations: batched transforms and their Gymnasium-wrapper twins.

- :mod:`tasks.perturbations.draws`: validation and the random draws every perturbation shares.
- :mod:`tasks.perturbations.vector`: duplicate, shuffle, reshuffle and noise channels on vectors.
- :mod:`tasks.perturbations.wrappers`: the same perturbations as Gymnasium wrappers.
- :mod:`tasks.perturbations.patches`: shuffled and occluded patches of frame stacks, and
  background swaps of RGB frames, batched.
- :mod:`tasks.perturbations.patch_wrappers`: their Gymnasium-wrapper twins.
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
from tasks.perturbations.patch_wrappers import ShufflePatches, SwapBackground
from tasks.perturbations.patches import (
    GRASS_COLOURS,
    BackgroundPool,
    BackgroundSwap,
    PatchPerturbation,
    background_image,
    offered_backgrounds,
)
from tasks.perturbations.vector import (
    BatchPerturbation,
    append_noise,
    apply_permutation,
    duplicate_observation,
)
from tasks.perturbations.wrappers import DuplicateObservation, NoiseChannels, ShuffleObservation

__all__ = [
    "GRASS_COLOURS",
    "BackgroundPool",
    "BackgroundSwap",
    "BatchPerturbation",
    "DuplicateObservation",
    "NoiseChannels",
    "PatchPerturbation",
    "Perturbations",
    "ReshuffleEvery",
    "ShuffleObservation",
    "ShufflePatches",
    "SwapBackground",
    "append_noise",
    "apply_permutation",
    "background_image",
    "check_vector_box",
    "draw_interval",
    "draw_noise",
    "draw_permutation",
    "draw_shuffle",
    "duplicate_observation",
    "offered_backgrounds",
    "relative_permutation",
    "validate_int",
    "validate_reshuffle_every",
    "validate_std",
]
