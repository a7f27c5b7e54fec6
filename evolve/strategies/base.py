"""Evolution strategies behind one small ask/tell interface (evosax style, explicit state).

Every strategy maximises: ``tell`` takes fitness where HIGHER IS BETTER (episode returns).
The only sign flip, for pycma's minimiser, is :func:`_to_minimisation`.

>>> import numpy as np
>>> from evolve.strategies import make_strategy
>>> es = make_strategy("pgpe", num_params=3, popsize=8, seed=0)
>>> for _ in range(3):
...     population = es.ask()                          # float64 [popsize, num_params]
...     es.tell(-np.sum(population**2, axis=1))        # higher is better
>>> es.generation, es.center.shape
(3, (3,))

State is explicit and pickle-free: ``state_dict()`` returns ``(meta, arrays)`` (JSON-able
metadata and named numpy arrays) and ``load_state_dict`` restores it so that the continued
``ask``/``tell`` sequence is bit-identical to an uninterrupted run, also between ``ask`` and
``tell``. ``save_strategy``/``load_strategy`` store that pair in one ``.npz`` file.

Calling ``ask`` twice without ``tell``, or ``tell`` without ``ask``, raises
:class:`AskTellError` (a ``RuntimeError``: the order of calls is wrong, not a setting).

A non-finite fitness (NaN, or +-inf: a member whose episode diverged) ranks last, tied with
the other non-finite members, in every strategy; see :func:`_rank_non_finite_last`. A
generation whose every member is non-finite raises :class:`DivergedError` and leaves the
strategy as it was, with the population still pending.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from evolve.strategies.population import PopulationSpec
from sensoryneuron.errors import CheckpointError, ConfigError, SensoryNeuronError

STATE_FORMAT = "sensoryneuron.evolve.strategy"
STATE_VERSION = 1


class AskTellError(SensoryNeuronError, RuntimeError):
    """``ask()`` and ``tell()`` were called out of order."""


class DivergedError(SensoryNeuronError):
    """Every member of a generation has a non-finite fitness: the run has diverged."""


def _rank_non_finite_last(fitness: np.ndarray) -> np.ndarray:
    """``fitness`` with each non-finite value replaced by one below every finite value.

    Ranks and pycma then see NaN and +-inf members as the worst, tied among themselves
    (pycma on its own would put a NaN at the median). Needs at least one finite value.

    >>> _rank_non_finite_last(np.array([2.0, np.nan, 5.0, np.inf]))
    array([ 2., -1.,  5., -1.])
    """
    bad = ~np.isfinite(fitness)
    if not bad.any():
        return fitness
    finite = fitness[~bad]
    low, high = finite.min(), finite.max()
    with np.errstate(over="ignore"):
        worst = low - max(1.0, high - low)
    if not np.isfinite(worst):  # only for returns near the float64 limit
        worst = np.nextafter(low, -np.inf)
    out = fitness.copy()
    out[bad] = worst
    return out


def _to_minimisation(fitness: np.ndarray) -> np.ndarray:
    """Turn fitness (higher is better) into pycma's objective (lower is better).

    This is the only place in the project where the fitness sign is flipped.
    """
    return -np.asarray(fitness, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_real(
    name: str,
    value: Any,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool,
    high_open: bool = True,
) -> float:
    """A finite real number in ``(low, high)``; ``[low`` when not ``low_open``, ``high]``
    when not ``high_open``."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.integer, np.floating))
        and math.isfinite(value)
        and (value > low if low_open else value >= low)
        and (value < high if high_open else value <= high)
    )
    if not ok:
        left = "(" if low_open else "["
        right = f"{high:g}{')' if high_open else ']'}" if math.isfinite(high) else "inf)"
        raise ConfigError(
            f"{name} must be a finite number in {left}{low:g}, {right}, got {value!r}"
        )
    return float(value)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _is_plain_json(value: Any) -> bool:
    """Whether ``value`` is strict JSON data (finite floats, str-keyed dicts)."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_is_plain_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain_json(v) for k, v in value.items())
    return False


def _state_array(
    arrays: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...], dtype: Any = np.float64
) -> np.ndarray:
    """A copy of ``arrays[name]``, checked for dtype, shape and (floats) finiteness."""
    a = arrays.get(name)
    if a is None:
        raise CheckpointError(f"state array {name!r} is missing")
    if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != shape:
        got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
        raise CheckpointError(
            f"state array {name!r} must be {np.dtype(dtype)} with shape {shape}, got {got}"
        )
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise CheckpointError(f"state array {name!r} is not finite")
    return np.array(a, copy=True)


# ---------------------------------------------------------------------------------------------
# Interface
# ---------------------------------------------------------------------------------------------


class Strategy(ABC):
    """An evolution strategy with ask/tell and an explicit, pickle-free state.

    Args:
        num_params: Length of the flat parameter vector.
        popsize: Members per generation.
        seed: Non-negative integer seed of the strategy's own random numbers.
        x0: Initial center (default zeros).
        **hyper: Strategy hyperparameters; see each class. Unknown names or bad values raise
            :class:`ConfigError`.
    """

    name: ClassVar[str]

    def __init__(
        self,
        num_params: int,
        popsize: int,
        seed: int,
        *,
        x0: np.ndarray | None = None,
        **hyper: Any,
    ) -> None:
        self.num_params = _check_int("num_params", num_params, 1)
        self.popsize = _check_int("popsize", popsize, 2)
        self.seed = _check_int("seed", seed, 0)
        if x0 is None:
            x0 = np.zeros(self.num_params)
        try:
            x0 = np.array(x0, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"x0 must be an array of {self.num_params} numbers") from None
        if x0.shape != (self.num_params,):
            raise ConfigError(f"x0 must have shape ({self.num_params},), got {x0.shape}")
        if not np.all(np.isfinite(x0)):
            raise ConfigError("x0 must be finite")
        self.hyper: dict[str, Any] = self._resolve_hyper(hyper)
        self._generation = 0
        self._setup(x0)

    # -- to implement -------------------------------------------------------------------------

    @classmethod
    def _reject_unknown(cls, given: Mapping[str, Any], allowed: Mapping[str, Any]) -> None:
        for key in given:
            if key not in allowed:
                names = ", ".join(sorted(allowed))
                raise ConfigError(
                    f"unknown hyperparameter {key!r} for strategy {cls.name!r}; allowed: {names}"
                )

    @abstractmethod
    def _resolve_hyper(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``given`` and return all hyperparameters, defaults filled in (JSON-able)."""

    @abstractmethod
    def _setup(self, x0: np.ndarray) -> None:
        """Create the initial search state around ``x0``."""

    @abstractmethod
    def ask(self) -> np.ndarray:
        """Sample a population, float64 ``[popsize, num_params]``; remembered for ``tell``."""

    @abstractmethod
    def tell(self, fitness: np.ndarray) -> None:
        """Update from the fitness of the asked population (``[popsize]``, higher is better).

        Non-finite values rank last. Raises :class:`DivergedError` if every value is
        non-finite (the population stays pending).
        """

    def compact_population(self) -> PopulationSpec | None:
        """The pending population as a few seeds and vectors, or None where it has no such form.

        Called between ``ask`` and ``tell``; a backend sends this instead of the parameters.
        """
        return None

    @property
    @abstractmethod
    def center(self) -> np.ndarray:
        """The current distribution mean, float64 ``[num_params]`` (a copy)."""

    @property
    def generation(self) -> int:
        """The number of completed ``tell`` calls."""
        return self._generation

    @abstractmethod
    def state_dict(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The complete state: ``(JSON-serialisable metadata, named numpy arrays)``, copied."""

    @abstractmethod
    def load_state_dict(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Restore a state from :meth:`state_dict`; raises :class:`CheckpointError` if malformed.

        The arrays are copied, so one state can be loaded into several strategies.
        """

    # -- shared plumbing ----------------------------------------------------------------------

    @property
    @abstractmethod
    def _has_pending(self) -> bool:
        """Whether a population was asked and not yet told."""

    def _begin_ask(self) -> None:
        if self._has_pending:
            raise AskTellError(
                "ask() was called twice without tell(); "
                "pass the fitness of the pending population to tell() first"
            )

    def _begin_tell(self, fitness: np.ndarray) -> np.ndarray:
        """Check the call order and the fitness; return it as float64, non-finite ranked last."""
        if not self._has_pending:
            raise AskTellError("tell() was called without a pending population; call ask() first")
        try:
            f = np.array(fitness, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"fitness must be {self.popsize} numbers") from None
        if f.shape != (self.popsize,):
            raise ConfigError(f"fitness must have shape ({self.popsize},), got {f.shape}")
        if not np.isfinite(f).any():
            raise DivergedError(
                f"generation {self._generation + 1}: every member's fitness is non-finite "
                "(NaN or inf); the run has diverged"
            )
        return _rank_non_finite_last(f)

    def _meta(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "strategy": self.name,
            "num_params": self.num_params,
            "popsize": self.popsize,
            "seed": self.seed,
            "hyper": copy.deepcopy(self.hyper),
            "generation": self._generation,
            "pending": self._has_pending,
        }

    def _check_meta(self, meta: Mapping[str, Any]) -> tuple[dict[str, Any], int, bool, int]:
        """Check the common metadata; return ``(hyper, generation, pending, seed)``."""
        if not isinstance(meta, Mapping):
            raise CheckpointError("strategy state metadata must be a dict")
        if meta.get("format") != STATE_FORMAT or meta.get("version") != STATE_VERSION:
            raise CheckpointError(
                f"not a strategy state of format {STATE_FORMAT!r} version {STATE_VERSION}: "
                f"got format {meta.get('format')!r} version {meta.get('version')!r}"
            )
        for key, mine in (
            ("strategy", self.name),
            ("num_params", self.num_params),
            ("popsize", self.popsize),
        ):
            if meta.get(key) != mine:
                raise CheckpointError(
                    f"state has {key}={meta.get(key)!r} but this strategy has {key}={mine!r}"
                )
        generation, pending, hyper = meta.get("generation"), meta.get("pending"), meta.get("hyper")
        seed = meta.get("seed")
        if (
            any(type(v) is not int or v < 0 for v in (generation, seed))
            or type(pending) is not bool
        ):
            raise CheckpointError(
                "state metadata needs non-negative ints 'generation' and 'seed' and a bool 'pending'"
            )
        if not isinstance(hyper, dict):
            raise CheckpointError("state metadata needs a dict 'hyper'")
        try:
            hyper = self._resolve_hyper(hyper)
        except ConfigError as e:
            raise CheckpointError(f"state holds bad hyperparameters: {e}") from e
        return hyper, generation, pending, seed
