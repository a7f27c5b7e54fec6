"""Tasks: cart-pole swing-up (single and vectorised), observation perturbations, task presets.

Importing the package registers ``SensoryNeuron/CartPoleSwingUp-v0`` and
``SensoryNeuron/CartPoleSwingUpHarder-v0`` with Gymnasium (1000-step time limit).
"""

from __future__ import annotations

from tasks.cartpole import CartPoleSwingUpEnv
from tasks.perturbations import (
    BatchPerturbation,
    draw_interval,
    draw_noise,
    draw_permutation,
    draw_shuffle,
    relative_permutation,
    validate_reshuffle_every,
)
from tasks.presets import (
    DEFAULT_PRESET,
    PRESETS,
    Perturbations,
    StrategyConfig,
    TaskPreset,
    TrainingConfig,
    get_preset,
)
from tasks.registry import (
    CARTPOLE_SWINGUP_HARDER_ID,
    CARTPOLE_SWINGUP_ID,
    make_vector_task,
    register_envs,
)
from tasks.vector import VecCartPoleSwingUp, VectorTask
from tasks.wrappers import DuplicateObservation, NoiseChannels, ShuffleObservation

register_envs()

__all__ = [
    "CARTPOLE_SWINGUP_HARDER_ID",
    "CARTPOLE_SWINGUP_ID",
    "DEFAULT_PRESET",
    "PRESETS",
    "Perturbations",
    "StrategyConfig",
    "TaskPreset",
    "TrainingConfig",
    "get_preset",
    "make_vector_task",
    "register_envs",
    "BatchPerturbation",
    "CartPoleSwingUpEnv",
    "DuplicateObservation",
    "NoiseChannels",
    "ShuffleObservation",
    "VecCartPoleSwingUp",
    "VectorTask",
    "draw_interval",
    "draw_noise",
    "draw_permutation",
    "draw_shuffle",
    "relative_permutation",
    "validate_reshuffle_every",
]
