"""The perturbation settings of a run or a test condition, and how to build them.

:class:`Perturbations` is plain, JSON-able configuration. :meth:`Perturbations.batch` builds
the batched transform the rollout engine applies, and :meth:`Perturbations.wrap` its
Gymnasium-wrapper twin, which makes the same draws from the same seed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from sensoryneuron.configs import build_dataclass
from tasks.perturbations.draws import validate_reshuffle_every
from tasks.perturbations.vector import BatchPerturbation
from tasks.perturbations.wrappers import DuplicateObservation, NoiseChannels, ShuffleObservation


@dataclass(frozen=True)
class Perturbations:
    """What happens to the observation on its way to the agent (applied in this order).

    Attributes:
        duplicate: each input repeated this many times (1: off).
        shuffle: permute the inputs at reset.
        reshuffle_every: None (reset only), steps between reshuffles, or a (low, high) range
            from which each interval is drawn.
        noise_channels: i.i.d. N(0, noise_std^2) inputs appended after the shuffled ones.
        noise_std: their standard deviation.
    """

    duplicate: int = 1
    shuffle: bool = True
    reshuffle_every: int | tuple[int, int] | None = None
    noise_channels: int = 0
    noise_std: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "reshuffle_every", validate_reshuffle_every(self.reshuffle_every))
        self.batch(1)  # BatchPerturbation owns the validation of every field

    def batch(self, observation: Any) -> BatchPerturbation:
        """The batched perturbation for a task's observation.

        Args:
            observation: the size of a vector observation, or a
                :class:`~tasks.spec.VectorObservation`.
        """
        obs_dim = getattr(observation, "size", observation)
        return BatchPerturbation(
            obs_dim,
            duplicate=self.duplicate,
            shuffle=self.shuffle,
            reshuffle_every=self.reshuffle_every,
            noise_channels=self.noise_channels,
            noise_std=self.noise_std,
        )

    def wrap(self, env: gym.Env) -> gym.Env:
        """The Gymnasium twin of :meth:`batch`: ``env`` wrapped as the agent sees it."""
        if self.duplicate > 1:
            env = DuplicateObservation(env, copies=self.duplicate)
        if self.shuffle:
            env = ShuffleObservation(env, reshuffle_every=self.reshuffle_every)
        if self.noise_channels:
            env = NoiseChannels(env, n=self.noise_channels, std=self.noise_std)
        return env

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if isinstance(self.reshuffle_every, tuple):
            d["reshuffle_every"] = list(self.reshuffle_every)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Perturbations:
        d = dict(d)
        if isinstance(d.get("reshuffle_every"), list):
            d["reshuffle_every"] = tuple(d["reshuffle_every"])
        return build_dataclass(cls, d, "perturbations")

    def describe(self) -> str:
        parts = []
        if self.duplicate > 1:
            parts.append(f"inputs x{self.duplicate}")
        if not self.shuffle:
            parts.append("unshuffled")
        elif self.reshuffle_every is None:
            parts.append("shuffled at reset")
        elif isinstance(self.reshuffle_every, tuple):
            low, high = self.reshuffle_every
            parts.append(f"reshuffled every {low}-{high} steps")
        else:
            parts.append(f"reshuffled every {self.reshuffle_every} steps")
        if self.noise_channels:
            parts.append(f"+{self.noise_channels} noise")
        return ", ".join(parts)
