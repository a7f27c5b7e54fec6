"""Tasks: environments, batched simulators and pools, observation perturbations, task specs.

Importing the package registers ``SensoryNeuron/CartPoleSwingUp-v0`` and
``SensoryNeuron/CartPoleSwingUpHarder-v0`` with Gymnasium (1000-step time limit).
"""

from __future__ import annotations

from tasks.batched import BatchedTask, VectorTask, episode_rngs
from tasks.cartpole import CartPoleSwingUpEnv
from tasks.cartpole_batched import VecCartPoleSwingUp
from tasks.perturbations import (
    BatchPerturbation,
    DuplicateObservation,
    NoiseChannels,
    Perturbations,
    ShuffleObservation,
    draw_interval,
    draw_noise,
    draw_permutation,
    draw_shuffle,
    relative_permutation,
    validate_reshuffle_every,
)
from tasks.spec import (
    CARTPOLE_BALANCE_ID,
    CARTPOLE_SWINGUP_HARDER_ID,
    CARTPOLE_SWINGUP_HARDER_TOP_ID,
    CARTPOLE_SWINGUP_ID,
    TASKS,
    PatchObservation,
    TaskSpec,
    VectorObservation,
    get_task,
    make_batched_task,
    register_envs,
    register_task,
)

register_envs()

__all__ = [
    "CARTPOLE_BALANCE_ID",
    "CARTPOLE_SWINGUP_HARDER_ID",
    "CARTPOLE_SWINGUP_HARDER_TOP_ID",
    "CARTPOLE_SWINGUP_ID",
    "BatchPerturbation",
    "CartPoleSwingUpEnv",
    "DuplicateObservation",
    "NoiseChannels",
    "Perturbations",
    "ShuffleObservation",
    "VecCartPoleSwingUp",
    "VectorTask",
    "draw_interval",
    "draw_noise",
    "draw_permutation",
    "draw_shuffle",
    "TASKS",
    "BatchedTask",
    "PatchObservation",
    "TaskSpec",
    "VectorObservation",
    "episode_rngs",
    "get_task",
    "make_batched_task",
    "register_task",
    "register_envs",
    "relative_permutation",
    "validate_reshuffle_every",
]
