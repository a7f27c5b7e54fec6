"""Fixed gains on a vector task's sensors: the readings every agent of the task gets.

A task's sensors need not share a scale: Ant-v5's joint speeds spread about 10 times wider
than its joint angles. A permutation-invariant agent reads every sensor with the same
network, so a sensor far wider than the rest swamps its units (a feed-forward net can
rescale each input; a shared one cannot). PyBullet's Ant, the paper's, scaled its readings
in the env itself. :class:`SensorGains` does the same, as a task's ``prepare``: each reading
times a fixed gain, before any perturbation (shuffling, noise channels), on every engine
(a Gymnasium wrapper on the ``gym`` engine's envs and users' envs, :meth:`SensorGains.apply`
on envpool's batches). Rewards and dynamics are the stock env's.

Example:
    >>> gains = SensorGains.by_group((("angle", 2), ("speed", 1)), {"speed": 0.1})
    >>> gains.gains
    (1.0, 1.0, 0.1)
    >>> gains.apply(np.array([[0.5, -0.5, 20.0]]))
    array([[ 0.5, -0.5,  2. ]], dtype=float32)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from sensoryneuron.errors import ConfigError


@dataclass(frozen=True)
class SensorGains:
    """Multiplies sensor ``i``'s reading by ``gains[i]`` (float32 out).

    Attributes:
        gains: one positive, finite gain per sensor, in the env's order.
    """

    gains: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.gains:
            raise ConfigError("gains must hold one gain per sensor; got none")
        for i, g in enumerate(self.gains):
            if (
                isinstance(g, bool)
                or not isinstance(g, int | float)
                or not math.isfinite(g)
                or g <= 0
            ):
                raise ConfigError(f"gain {i} must be a positive finite number; got {g!r}")
        object.__setattr__(self, "gains", tuple(float(g) for g in self.gains))

    @classmethod
    def by_group(cls, groups: Sequence[tuple[str, int]], gains: Mapping[str, float]) -> SensorGains:
        """Gains by sensor group (a task's ``VectorObservation.groups``); a group not in
        ``gains`` keeps its readings (gain 1)."""
        names = [name for name, _ in groups]
        unknown = sorted(set(gains) - set(names))
        if unknown:
            raise ConfigError(f"no sensor group {', '.join(map(repr, unknown))}; groups: {names}")
        return cls(
            tuple(float(gains.get(name, 1.0)) for name, count in groups for _ in range(count))
        )

    def apply(self, obs: Any) -> np.ndarray:
        """Readings ``[..., N]`` times the gains, float32."""
        obs = np.asarray(obs, dtype=np.float32)
        if obs.shape[-1:] != (len(self.gains),):
            raise ConfigError(
                f"observations of shape {obs.shape} do not end in the {len(self.gains)} sensors "
                "these gains scale"
            )
        return obs * np.asarray(self.gains, dtype=np.float32)

    def __call__(self, env: gym.Env) -> gym.Env:
        """``env`` whose observations are scaled (a ``TransformObservation`` wrapper)."""
        space = env.observation_space
        assert isinstance(space, gym.spaces.Box)
        low = self.apply(np.broadcast_to(space.low, space.shape))
        high = self.apply(np.broadcast_to(space.high, space.shape))
        scaled = gym.spaces.Box(low, high, dtype=np.float32)
        return gym.wrappers.TransformObservation(env, self.apply, scaled)
