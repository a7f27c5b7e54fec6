"""The batched-task interface: a population times a batch of episodes, stepped as one array.

Every batched task, a vectorised simulator or a pool of real environments, has the layout
``[P, B]`` = (members, episodes). Members share the episode seeds (common random numbers):
member ``p`` and member ``q`` play episode ``b`` from the same start.

:meth:`BatchedTask.start` returns, besides the first observations, one Generator per episode.
The perturbations draw from these (permutations, reshuffle intervals, noise), so every member
of a generation sees the same schedules too:

- a simulator returns the very Generators its start states came from, as
  ``gym.make(env_id).reset(seed=s)`` leaves ``env.np_random`` for the Gymnasium wrappers;
- a pool of Gymnasium envs returns each episode's ``env.np_random`` after its reset;
- envpool's C++ envs keep their own generators, so it returns ``np_random(seed)`` afresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from gymnasium.utils import seeding


def episode_rngs(seeds: Sequence[int]) -> list[np.random.Generator]:
    """One Generator per episode, seeded exactly as ``env.reset(seed=...)`` seeds its env."""
    return [seeding.np_random(int(s))[0] for s in seeds]


@runtime_checkable
class BatchedTask(Protocol):
    """A batch of environments stepped as ``[members, episodes]``.

    Observations are ``[P, B, *obs_shape]``; actions are environment actions (what
    ``env.step`` takes, see :class:`sensoryneuron.actions.ActionMap`), ``[P, B, *act_shape]``.
    The rollout engine stops at ``max_steps`` and after the first ``done`` of each episode;
    a task may keep stepping ended episodes (a simulator: cheaper than masking) or skip them
    (a pool: finished episodes leave the batch), and the engine ignores what they return.
    """

    max_steps: int

    def start(
        self, seeds: Sequence[int], members: int
    ) -> tuple[np.ndarray, list[np.random.Generator]]:
        """Starts episode ``b`` from ``seeds[b]`` for every member.

        Returns:
            The first observations ``[members, B, ...]`` and one Generator per episode for
            the perturbations.
        """
        ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Takes ``[P, B, ...]`` actions; returns obs, reward (float64 ``[P, B]``) and done
        (bool ``[P, B]``: terminated, or truncated by the environment itself)."""
        ...

    def render(self, member: int, episode: int) -> np.ndarray:
        """Returns an RGB frame of one environment."""
        ...

    def keep_members(self, index: np.ndarray) -> None:
        """Drop every member not in ``index`` (in that order); the engine's compaction."""
        ...

    def close(self) -> None:
        """Release the environments."""
        ...


VectorTask = BatchedTask  # the name the cart-pole simulator was first written against
