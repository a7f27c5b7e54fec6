"""Observation perturbations shared by the Gymnasium wrappers and the vectorised path.

The wrappers in :mod:`tasks.perturbations.wrappers` (one episode) and :class:`BatchPerturbation` (a
``[members, episodes]`` batch) call the same draw helpers in the same order, so from the same
Generator they produce bit-identical observations.

Conventions:
    - Permutation: ``shuffled = raw[..., perm]``, i.e. ``shuffled[j] = raw[perm[j]]``.
    - Stack order: duplicate -> shuffle -> append noise channels.
    - Draw order per episode. At reset: the env's initial state, then the permutation (then the
      first interval when intervals are random), then the noise. At each step: the permutation
      and the next interval where a reshuffle is due, then the noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from sensoryneuron.errors import ConfigError
from tasks.perturbations.draws import (
    ReshuffleEvery,
    ReshuffleSchedule,
    draw_noise,
    draw_shuffle,
    relative_permutation,
    validate_int,
    validate_shuffle,
    validate_std,
)


def duplicate_observation(obs: np.ndarray, copies: int) -> np.ndarray:
    """Repeats the last axis ``copies`` times (``np.tile``): ``[..., n] -> [..., copies * n]``."""
    return np.tile(obs, (1,) * (obs.ndim - 1) + (copies,))


def apply_permutation(obs: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Returns ``obs[..., perm]``; ``perm`` ``[..., n]`` broadcasts against ``obs`` ``[..., n]``."""
    if perm.ndim == 1:
        return obs[..., perm]
    index = np.broadcast_to(perm, obs.shape[:-1] + perm.shape[-1:])
    return np.take_along_axis(obs, index, axis=-1)


def append_noise(obs: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Appends noise channels (cast to ``obs.dtype``) after the observation on the last axis."""
    noise = np.broadcast_to(noise.astype(obs.dtype), obs.shape[:-1] + noise.shape[-1:])
    return np.concatenate([obs, noise], axis=-1)


class BatchPerturbation(ReshuffleSchedule):
    """The batched equivalent of ``DuplicateObservation -> ShuffleObservation -> NoiseChannels``.

    Observations have the layout ``[members, episodes, obs_dim]``. Permutations and noise are
    drawn per episode ``b`` from ``rngs[b]`` and shared by all members (common random numbers),
    in the same order as the wrapper stack draws from ``env.np_random``.

    Attributes:
        out_dim: Size of the perturbed observation: ``obs_dim * duplicate + noise_channels``.
        permutations: int64 ``[episodes, obs_dim * duplicate]``, the current permutations
            (identity when ``shuffle`` is False).
        reshuffled: bool ``[episodes]``, True where a new permutation was drawn at the last
            step (always False after reset; a new draw may by chance equal the old one).
        steps: Steps taken since the last reset.

    Example:
        >>> import numpy as np
        >>> pert = BatchPerturbation(5, shuffle=True, reshuffle_every=25, noise_channels=3)
        >>> rngs = [np.random.default_rng(s) for s in range(4)]
        >>> pert.reset(np.zeros((2, 4, 5), dtype=np.float32), rngs).shape
        (2, 4, 8)
    """

    def __init__(
        self,
        obs_dim: int,
        *,
        duplicate: int = 1,
        shuffle: bool = False,
        reshuffle_every: ReshuffleEvery = None,
        noise_channels: int = 0,
        noise_std: float = 0.1,
    ) -> None:
        """Validates the settings.

        Args:
            obs_dim: Size of the raw observation.
            duplicate: Copies of the raw observation (``DuplicateObservation``); 1 = off.
            shuffle: Whether to permute the (duplicated) observation (``ShuffleObservation``).
            reshuffle_every: Reshuffle schedule, see :func:`validate_reshuffle_every`; needs
                ``shuffle=True``.
            noise_channels: Number of appended noise channels (``NoiseChannels``); 0 = off.
            noise_std: Standard deviation of the noise channels.
        """
        self.obs_dim = validate_int("obs_dim", obs_dim, 1)
        self.duplicate = validate_int("duplicate", duplicate, 1)
        self.shuffle, self.reshuffle_every = validate_shuffle(shuffle, reshuffle_every)
        self.noise_channels = validate_int("noise_channels", noise_channels, 0)
        self.noise_std = validate_std("noise_std", noise_std)
        self.n_shuffled = self.obs_dim * self.duplicate
        self.out_dim = self.n_shuffled + self.noise_channels
        self.permutations: np.ndarray | None = None
        self.reshuffled: np.ndarray | None = None
        self.steps = 0
        self._next_reshuffle: list[int | None] = []

    def _check(self, obs: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        obs = np.asarray(obs)
        if obs.ndim != 3 or obs.shape[-1] != self.obs_dim:
            raise ConfigError(
                f"obs must have shape [members, episodes, {self.obs_dim}], got {obs.shape}"
            )
        if len(rngs) != obs.shape[1]:
            raise ConfigError(
                f"expected one Generator per episode ({obs.shape[1]}), got {len(rngs)}"
            )
        return obs

    def reset(self, obs: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """Starts new episodes: draws the permutations and the first noise.

        Args:
            obs: Raw observations ``[members, episodes, obs_dim]`` right after reset.
            rngs: One Generator per episode, the ones the initial states came from.

        Returns:
            float32 ``[members, episodes, out_dim]``.
        """
        obs = self._check(obs, rngs)
        episodes = obs.shape[1]
        self.steps = 0
        self.reshuffled = np.zeros(episodes, dtype=bool)
        if self.shuffle:
            drawn = [draw_shuffle(rng, self.n_shuffled, self.reshuffle_every) for rng in rngs]
            self.permutations = np.stack([perm for perm, _ in drawn])
            self._next_reshuffle = [interval for _, interval in drawn]
        else:
            identity = np.arange(self.n_shuffled, dtype=np.int64)
            self.permutations = np.tile(identity, (episodes, 1))
            self._next_reshuffle = [None] * episodes
        return self._perturb(obs, rngs)

    def step(self, obs: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """Perturbs the observations of one step: reshuffles where due, then draws noise.

        Args:
            obs: Raw observations ``[members, episodes, obs_dim]`` after the step.
            rngs: The same Generators as at reset.

        Returns:
            float32 ``[members, episodes, out_dim]``.
        """
        if self.permutations is None:
            raise gym.error.ResetNeeded("Call reset() before step().")
        obs = self._check(obs, rngs)
        if obs.shape[1] != self.permutations.shape[0]:
            raise ConfigError(
                f"reset() saw {self.permutations.shape[0]} episodes, step() got {obs.shape[1]}"
            )
        self.steps += 1
        self.reshuffled = np.zeros(len(rngs), dtype=bool)
        for b, rng in enumerate(rngs):
            if self._next_reshuffle[b] == self.steps:
                perm, interval = draw_shuffle(rng, self.n_shuffled, self.reshuffle_every)
                self.permutations[b] = perm
                self._next_reshuffle[b] = None if interval is None else self.steps + interval
                self.reshuffled[b] = True
        return self._perturb(obs, rngs)

    def realignment(self, before: np.ndarray) -> np.ndarray:
        """How to move per-slot state after a reshuffle: int64 ``[episodes, out_dim]``.

        ``before`` is :attr:`permutations` before the step. Slot ``j`` of the new state is
        slot ``realignment(before)[b, j]`` of the old one; noise channels stay where they are.
        """
        if self.permutations is None:
            raise gym.error.ResetNeeded("Call reset() before realignment().")
        rel = relative_permutation(before, self.permutations)
        if self.noise_channels:
            noise = np.arange(self.n_shuffled, self.out_dim)
            rel = np.concatenate([rel, np.broadcast_to(noise, (rel.shape[0], noise.size))], axis=1)
        return rel

    def sources(self) -> np.ndarray:
        """Which raw sensor feeds each slot now: int64 ``[episodes, out_dim]``.

        Slot ``j`` of episode ``b`` carries raw input ``sources()[b, j]``; noise channels
        carry ``obs_dim`` (no sensor). Copies of one input (``duplicate``) share its index.
        """
        if self.permutations is None:
            raise gym.error.ResetNeeded("Call reset() before sources().")
        sensors = self.permutations % self.obs_dim
        noise = np.full((sensors.shape[0], self.noise_channels), self.obs_dim, dtype=np.int64)
        return np.concatenate([sensors, noise], axis=1)

    def _perturb(self, obs: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        out = obs.astype(np.float32, copy=False)
        if self.duplicate > 1:
            out = duplicate_observation(out, self.duplicate)
        if self.shuffle:
            out = apply_permutation(out, self.permutations)
        if self.noise_channels > 0:
            noise = np.stack([draw_noise(rng, self.noise_channels, self.noise_std) for rng in rngs])
            out = append_noise(out, noise)
        return np.array(out, dtype=np.float32)
