"""A batched task over a pool of real Gymnasium environments, one per (member, episode).

Gymnasium's vector envs step every sub-env at every call and reset finished ones on their
own; the rollout engine needs the opposite: a finished episode leaves the batch and is
never stepped again, and the members that the engine drops are set aside. So the pool holds
plain ``gym.make`` envs (time limit and all) and steps only the live ones. Envs are made
once and reused from one call of :meth:`GymPool.start` to the next, so a worker that
evaluates generation after generation keeps its pool.

Every member plays episode ``b`` from ``reset(seed=seeds[b])``: common random numbers. The
Generators handed to the perturbations are copies of each episode's ``env.np_random`` right
after that reset, the very state the Gymnasium wrapper twins draw from (for envs that draw
nothing while stepping, which holds for the classic-control, Box2D and MuJoCo tasks).

Example:
    >>> import numpy as np
    >>> from tasks.spec import get_task
    >>> pool = GymPool(get_task("Pendulum-v1"))
    >>> obs, rngs = pool.start([7, 8], members=3)
    >>> obs.shape, len(rngs)
    ((3, 2, 3), 2)
    >>> obs, reward, done = pool.step(np.zeros((3, 2, 1)))
    >>> bool((obs[0] == obs[2]).all()), reward.shape
    (True, (3, 2))
    >>> pool.close()
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np

from sensoryneuron.errors import ConfigError
from tasks.perturbations.draws import validate_int

if TYPE_CHECKING:
    from tasks.spec import TaskSpec


class GymPool:
    """A :class:`~tasks.batched.BatchedTask` that steps ``members x episodes`` Gymnasium envs.

    Attributes:
        spec: the task.
        max_steps: the episode length the engine runs to.
        render_mode: passed to ``gym.make`` (``"rgb_array"`` to record videos).
    """

    def __init__(self, spec: TaskSpec, render_mode: str | None = None) -> None:
        self.spec = spec
        self.max_steps = spec.max_steps
        self.render_mode = render_mode
        self._spare: list[gym.Env] = []  # made, not in use
        self._envs: list[list[gym.Env]] = []  # [member][episode]
        self._done: np.ndarray | None = None
        self._obs: np.ndarray | None = None

    def _take(self) -> gym.Env:
        if self._spare:
            return self._spare.pop()
        return self.spec.make_env(render_mode=self.render_mode)

    def _release(self) -> None:
        self._spare.extend(env for row in self._envs for env in row)
        self._envs = []

    def start(
        self, seeds: Sequence[int], members: int
    ) -> tuple[np.ndarray, list[np.random.Generator]]:
        """Resets every member's env ``b`` with ``seed=seeds[b]``.

        Returns:
            float32 observations ``[members, B, ...]`` and one Generator per episode.
        """
        members = validate_int("members", members, 1)
        if len(seeds) < 1:
            raise ConfigError("seeds must hold at least one seed (one per episode), got 0")
        self._release()
        self._envs = [[self._take() for _ in seeds] for _ in range(members)]
        rows = []
        for row in self._envs:
            rows.append(
                [env.reset(seed=int(seed))[0] for env, seed in zip(row, seeds, strict=True)]
            )
        self._obs = np.asarray(rows, dtype=np.float32)
        self._done = np.zeros((members, len(seeds)), dtype=bool)
        rngs = [copy.deepcopy(env.unwrapped.np_random) for env in self._envs[0]]
        return self._obs.copy(), rngs

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Steps every live env; an ended one keeps its last observation and gets reward 0.

        Args:
            action: environment actions ``[P, B, ...]`` (int ``[P, B]`` for Discrete).

        Returns:
            ``(obs, reward, done)``: float32 ``[P, B, ...]``, float64 ``[P, B]`` and bool
            ``[P, B]`` (terminated or truncated at this step or before).
        """
        if self._done is None or self._obs is None:
            raise gym.error.ResetNeeded("Call start() before step().")
        action = np.asarray(action)
        if action.shape[:2] != self._done.shape:
            raise ConfigError(
                f"action must have leading shape {self._done.shape}, got {action.shape}"
            )
        reward = np.zeros(self._done.shape)
        for p, b in zip(*np.nonzero(~self._done), strict=True):
            obs, r, terminated, truncated, _ = self._envs[p][b].step(action[p, b])
            self._obs[p, b] = obs
            reward[p, b] = r
            self._done[p, b] = terminated or truncated
        return self._obs.copy(), reward, self._done.copy()

    def keep_members(self, index: np.ndarray) -> None:
        """Keeps only the members in ``index``; the others' envs go back to the spares."""
        if self._done is None or self._obs is None:
            raise gym.error.ResetNeeded("Call start() before keep_members().")
        index = np.asarray(index, dtype=np.int64)
        kept = set(index.tolist())
        for p, row in enumerate(self._envs):
            if p not in kept:
                self._spare.extend(row)
        self._envs = [self._envs[p] for p in index]
        self._done = self._done[index]
        self._obs = self._obs[index]

    def env(self, member: int, episode: int) -> gym.Env:
        """The env that plays ``episode`` for ``member`` (rows as the pool holds them now),
        unwrapped: what a privileged teacher reads (see :mod:`tasks.teachers`)."""
        if not self._envs:
            raise gym.error.ResetNeeded("Call start() before env().")
        return self._envs[member][episode].unwrapped

    def render(self, member: int, episode: int) -> np.ndarray:
        """The ``rgb_array`` frame of one env (make the pool with ``render_mode="rgb_array"``)."""
        if not self._envs:
            raise gym.error.ResetNeeded("Call start() before render().")
        frame = self._envs[member][episode].render()
        if frame is None:
            raise ConfigError("this pool renders nothing: make it with render_mode='rgb_array'")
        return np.asarray(frame)

    def close(self) -> None:
        """Closes every env the pool made."""
        self._release()
        for env in self._spare:
            env.close()
        self._spare = []
        self._done = self._obs = None
