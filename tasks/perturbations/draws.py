"""Validation and random draws shared by every perturbation, batched or wrapped.

A batched perturbation and its Gymnasium-wrapper twin call these helpers in the same order on
the same Generator, so from the same seed they make the same draws.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import gymnasium as gym
import numpy as np

from sensoryneuron.errors import ConfigError

ReshuffleEvery = int | tuple[int, int] | None


def _is_int(value: object) -> bool:
    """True for Python and NumPy integers, False for bools."""
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def validate_reshuffle_every(value: object) -> ReshuffleEvery:
    """Checks and normalises a reshuffle schedule.

    Args:
        value: ``None`` (shuffle at reset only), a positive int ``t`` (a new permutation after
            every ``t`` steps) or a ``(low, high)`` pair with ``1 <= low <= high`` (random
            intervals, each drawn as ``rng.integers(low, high + 1)``).

    Returns:
        ``None``, an ``int`` or a ``tuple[int, int]``.

    Raises:
        ConfigError: For bools, non-positive values, non-integers and malformed pairs.
    """
    if value is None:
        return None
    if _is_int(value) and value >= 1:
        return int(value)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(_is_int(v) for v in value)
        and 1 <= value[0] <= value[1]
    ):
        return (int(value[0]), int(value[1]))
    raise ConfigError(
        "reshuffle_every must be None, an int >= 1 or a (low, high) pair of ints with "
        f"1 <= low <= high, got {value!r}"
    )


def validate_shuffle(shuffle: object, reshuffle_every: object) -> tuple[bool, ReshuffleEvery]:
    """Checks a shuffle setting and its reshuffle schedule together.

    Returns:
        ``(shuffle, reshuffle_every)``, normalised (see :func:`validate_reshuffle_every`).

    Raises:
        ConfigError: for a non-bool ``shuffle``, a bad schedule, or a schedule without shuffling.
    """
    if not isinstance(shuffle, (bool, np.bool_)):
        raise ConfigError(f"shuffle must be a bool, got {shuffle!r}")
    schedule = validate_reshuffle_every(reshuffle_every)
    if schedule is not None and not shuffle:
        raise ConfigError(
            f"reshuffle_every={schedule!r} needs shuffle=True; "
            "use reshuffle_every=None without shuffling"
        )
    return bool(shuffle), schedule


def validate_int(name: str, value: object, minimum: int) -> int:
    """Checks that ``value`` is an int (not a bool) ``>= minimum`` and returns it as ``int``."""
    if not (_is_int(value) and value >= minimum):
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def validate_std(name: str, value: object) -> float:
    """Checks that ``value`` is a finite real number > 0 and returns it as ``float``."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_vector_box(space: gym.Space, wrapper: str, *, floating: bool = False) -> gym.spaces.Box:
    """Checks that ``space`` is a 1-D Box (of a float dtype when ``floating``) and returns it."""
    ok = isinstance(space, gym.spaces.Box) and len(space.shape) == 1
    if ok and floating:
        ok = np.issubdtype(space.dtype, np.floating)
    if not ok:
        kind = "a 1-D float Box" if floating else "a 1-D Box"
        raise ConfigError(f"{wrapper} needs {kind} observation space, got {space}")
    return space


def draw_permutation(rng: np.random.Generator, n: int) -> np.ndarray:
    """Draws a uniform permutation of ``range(n)`` (int64) with ``rng.permutation(n)``."""
    return rng.permutation(n).astype(np.int64, copy=False)


def draw_interval(rng: np.random.Generator, reshuffle_every: ReshuffleEvery) -> int | None:
    """Steps until the next reshuffle: ``None``, the fixed ``t`` (no draw) or a random draw."""
    if reshuffle_every is None:
        return None
    if isinstance(reshuffle_every, tuple):
        low, high = reshuffle_every
        return int(rng.integers(low, high + 1))
    return reshuffle_every


def draw_shuffle(
    rng: np.random.Generator, n: int, reshuffle_every: ReshuffleEvery
) -> tuple[np.ndarray, int | None]:
    """Draws a new permutation, then the interval until the next one (in that order)."""
    perm = draw_permutation(rng, n)
    return perm, draw_interval(rng, reshuffle_every)


def draw_noise(rng: np.random.Generator, n: int, std: float) -> np.ndarray:
    """Draws ``n`` i.i.d. N(0, std^2) values (float64) with ``rng.normal(0.0, std, size=n)``."""
    return rng.normal(0.0, std, size=n)


def relative_permutation(old_perm: np.ndarray, new_perm: np.ndarray) -> np.ndarray:
    """The permutation that takes the old shuffled observation to the new one.

    With ``obs_old = raw[old_perm]`` and ``obs_new = raw[new_perm]``, returns ``rel`` such that
    ``obs_new == obs_old[rel]`` (``rel = argsort(old_perm)[new_perm]``). Works on ``[..., n]``
    batches of permutations.
    """
    old_perm = np.asarray(old_perm)
    new_perm = np.asarray(new_perm)
    inverse_old = np.argsort(old_perm, axis=-1)
    return np.take_along_axis(inverse_old, new_perm, axis=-1).astype(np.int64, copy=False)


class ReshuffleSchedule:
    """``reshuffle_at`` for the batch perturbations (``BatchPerturbation``,
    ``PatchPerturbation``): both keep ``permutations`` (None before reset), ``shuffle``,
    ``steps`` and ``_next_reshuffle`` (each episode's next reshuffle step; None: none)."""

    permutations: np.ndarray | None
    shuffle: bool
    steps: int
    _next_reshuffle: list[int | None]

    def reshuffle_at(self, step: int | None) -> None:
        """Moves every episode's next reshuffle to :meth:`step` number ``step`` (None: none).

        The new permutation is drawn there from the episode's Generator, as a scheduled one
        is; the schedule then goes on from it (``reshuffle_every``). ``step`` must be after
        the steps taken. What ``evolve demo``'s "shuffle now" calls (``steps + 1``).

        Raises:
            ConfigError: without ``shuffle``, or for a step already taken.
        """
        if self.permutations is None:
            raise gym.error.ResetNeeded("Call reset() before reshuffle_at().")
        if not self.shuffle:
            raise ConfigError("reshuffle_at() needs shuffle=True")
        if step is not None:
            step = validate_int("step", step, self.steps + 1)
        self._next_reshuffle = [step] * len(self._next_reshuffle)
