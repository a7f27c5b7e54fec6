"""Every environment the project provides, in one table: its Gymnasium id and entry point,
and the vectorised simulator that training uses for it."""

from __future__ import annotations

from collections.abc import Callable

from gymnasium.envs.registration import register, registry

from sensoryneuron.errors import ConfigError
from tasks.batched import VectorTask
from tasks.cartpole import MAX_STEPS
from tasks.cartpole_batched import VecCartPoleSwingUp

CARTPOLE_SWINGUP_ID = "SensoryNeuron/CartPoleSwingUp-v0"
CARTPOLE_SWINGUP_HARDER_ID = "SensoryNeuron/CartPoleSwingUpHarder-v0"

GYM_ENVS: dict[str, dict] = {
    CARTPOLE_SWINGUP_ID: {
        "entry_point": "tasks.cartpole:CartPoleSwingUpEnv",
        "max_episode_steps": MAX_STEPS,
        "kwargs": {"harder": False},
    },
    CARTPOLE_SWINGUP_HARDER_ID: {
        "entry_point": "tasks.cartpole:CartPoleSwingUpEnv",
        "max_episode_steps": MAX_STEPS,
        "kwargs": {"harder": True},
    },
}

VECTOR_TASKS: dict[str, Callable[[], VectorTask]] = {
    CARTPOLE_SWINGUP_ID: lambda: VecCartPoleSwingUp(harder=False),
    CARTPOLE_SWINGUP_HARDER_ID: lambda: VecCartPoleSwingUp(harder=True),
}


# What each element of the raw observation measures, in order (legends in videos).
OBSERVATION_NAMES: dict[str, tuple[str, ...]] = {
    CARTPOLE_SWINGUP_ID: ("x", "x_dot", "cos th", "sin th", "th_dot"),
    CARTPOLE_SWINGUP_HARDER_ID: ("x", "x_dot", "cos th", "sin th", "th_dot"),
}


def register_envs() -> None:
    """Register the Gymnasium ids (idempotent; runs on ``import tasks``)."""
    for env_id, spec in GYM_ENVS.items():
        if env_id not in registry:
            register(id=env_id, **spec)


def make_vector_task(env_id: str) -> VectorTask:
    """A fresh vectorised simulator for ``env_id``."""
    if env_id not in VECTOR_TASKS:
        raise ConfigError(
            f"no vectorised simulator for {env_id!r}; allowed: {', '.join(sorted(VECTOR_TASKS))}"
        )
    return VECTOR_TASKS[env_id]()
