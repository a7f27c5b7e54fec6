"""The batched-task interface: a population times a batch of episodes, stepped as one array."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class VectorTask(Protocol):
    """A batched task stepped as ``[members, episodes]``.

    The task does not track time limits (the rollout engine stops at ``max_steps``) and keeps
    stepping terminated episodes (the engine masks their rewards).
    """

    obs_dim: int
    act_dim: int
    max_steps: int

    def reset(self, rngs: Sequence[np.random.Generator], members: int) -> np.ndarray:
        """Draws one initial state per Generator; returns float32 ``[members, B, obs_dim]``."""
        ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Takes ``[P, B, act_dim]`` actions; returns obs f32, reward f64, terminated bool."""
        ...

    def render(self, member: int, episode: int) -> np.ndarray:
        """Returns an RGB frame of one environment."""
        ...

    def keep_members(self, index: np.ndarray) -> None:
        """Drop every member not in ``index`` (in that order); the engine's compaction."""
        ...
