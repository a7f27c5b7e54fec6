"""Evolution strategies behind one small ask/tell interface (evosax style, explicit state).

Every strategy maximises: ``tell`` takes fitness where HIGHER IS BETTER (episode returns).
The only sign flip, for pycma's minimiser, is :func:`_to_minimisation`.

>>> import numpy as np
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
"""

from __future__ import annotations

import copy
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import cma
import cma.utilities.utils
import numpy as np

from evolve.population import NOISE_STREAM, PopulationSpec, noise_rows
from evolve.state_io import decode_graph, encode_graph
from sensoryneuron.errors import CheckpointError, ConfigError, SensoryNeuronError
from sensoryneuron.files import load_npz, save_npz

STATE_FORMAT = "sensoryneuron.evolve.strategy"
STATE_VERSION = 1


class AskTellError(SensoryNeuronError, RuntimeError):
    """``ask()`` and ``tell()`` were called out of order."""


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
    name: str, value: Any, *, low: float, high: float = math.inf, low_open: bool
) -> float:
    """A finite real number in ``(low, high)`` (or ``[low, high)`` when not ``low_open``)."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.integer, np.floating))
        and math.isfinite(value)
        and (value > low if low_open else value >= low)
        and value < high
    )
    if not ok:
        left = "(" if low_open else "["
        right = f"{high:g})" if math.isfinite(high) else "inf)"
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
        """Update from the fitness of the asked population (``[popsize]``, higher is better)."""

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
        """Check the call order and the fitness; return it as float64."""
        if not self._has_pending:
            raise AskTellError("tell() was called without a pending population; call ask() first")
        try:
            f = np.array(fitness, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"fitness must be {self.popsize} numbers") from None
        if f.shape != (self.popsize,):
            raise ConfigError(f"fitness must have shape ({self.popsize},), got {f.shape}")
        bad = np.flatnonzero(~np.isfinite(f))
        if bad.size:
            raise ConfigError(f"fitness must be finite; members {bad.tolist()} are NaN or infinite")
        return f

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


# ---------------------------------------------------------------------------------------------
# PGPE
# ---------------------------------------------------------------------------------------------


def _centered_ranks(fitness: np.ndarray) -> np.ndarray:
    """Map fitness to ranks spread evenly over [-0.5, 0.5]; the best gets +0.5.

    Tied values share their average rank, so a flat fitness gives all zeros.
    """
    _, inverse, counts = np.unique(fitness, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts
    ranks = (first + (counts - 1) / 2.0)[inverse]
    return ranks / (fitness.size - 1) - 0.5


class PGPE(Strategy):
    """Policy-gradient parameter exploration (Sehnke et al. 2010) with rank shaping.

    Each parameter has its own Gaussian stdev. With ``antithetic=True`` the population is
    ``[center + eps; center - eps]`` (first half plus, second half minus; ``eps`` has
    ``popsize // 2`` rows). Noise row ``r`` of generation ``g`` is drawn from a counter-based
    generator keyed by ``(seed, g, r)`` (:func:`evolve.population.noise_rows`), so
    :meth:`compact_population` describes a whole population in a few numbers and two
    vectors, and the state needs no generator. The center gradient comes from each pair's
    fitness difference, the stdev gradient from each pair's mean fitness against the baseline
    (mean fitness). Fitness is centred-rank shaped to [-0.5, 0.5].

    Hyperparameters:
        sigma_init (0.1): initial stdev of every parameter.
        optimizer ("clipup"): "clipup" (Toklu et al. 2020) or "adam" for the center.
        center_lr (0.15 for ClipUp, 0.01 for Adam): center step size.
        max_speed (ClipUp only; 2 * center_lr): cap on the ClipUp velocity norm.
        momentum (ClipUp only; 0.9): ClipUp velocity decay.
        stdev_lr (0.1): stdev step size (plain gradient step; 0 keeps stdev fixed).
        stdev_max_change (0.2): one update changes each stdev by at most this fraction.
        antithetic (True): mirrored sampling; popsize must then be even.

    Adam uses beta1=0.9, beta2=0.999, eps=1e-8.
    """

    name = "pgpe"
    _DEFAULTS: ClassVar[dict[str, Any]] = {
        "sigma_init": 0.1,
        "optimizer": "clipup",
        "center_lr": None,
        "max_speed": None,
        "momentum": None,
        "stdev_lr": 0.1,
        "stdev_max_change": 0.2,
        "antithetic": True,
    }
    _ADAM_BETAS = (0.9, 0.999)
    _ADAM_EPS = 1e-8

    def _resolve_hyper(self, given: Mapping[str, Any]) -> dict[str, Any]:
        self._reject_unknown(given, self._DEFAULTS)
        h = {**self._DEFAULTS, **given}
        out: dict[str, Any] = {}
        out["sigma_init"] = _check_real("sigma_init", h["sigma_init"], low=0.0, low_open=True)
        if h["optimizer"] not in ("clipup", "adam"):
            raise ConfigError(f"optimizer must be one of 'adam', 'clipup', got {h['optimizer']!r}")
        out["optimizer"] = h["optimizer"]
        clipup = h["optimizer"] == "clipup"
        center_lr = h["center_lr"] if h["center_lr"] is not None else (0.15 if clipup else 0.01)
        out["center_lr"] = _check_real("center_lr", center_lr, low=0.0, low_open=True)
        if clipup:
            max_speed = h["max_speed"] if h["max_speed"] is not None else 2.0 * out["center_lr"]
            out["max_speed"] = _check_real("max_speed", max_speed, low=0.0, low_open=True)
            momentum = h["momentum"] if h["momentum"] is not None else 0.9
            out["momentum"] = _check_real("momentum", momentum, low=0.0, high=1.0, low_open=False)
        else:
            for key in ("max_speed", "momentum"):
                if h[key] is not None:
                    raise ConfigError(f"{key} applies only to optimizer='clipup'")
            out["max_speed"] = out["momentum"] = None
        out["stdev_lr"] = _check_real("stdev_lr", h["stdev_lr"], low=0.0, low_open=False)
        out["stdev_max_change"] = _check_real(
            "stdev_max_change", h["stdev_max_change"], low=0.0, high=1.0, low_open=True
        )
        out["antithetic"] = _check_bool("antithetic", h["antithetic"])
        if out["antithetic"] and self.popsize % 2:
            raise ConfigError(f"popsize must be even when antithetic=True, got {self.popsize}")
        return out

    def _setup(self, x0: np.ndarray) -> None:
        if self.seed >= 2**128:
            raise ConfigError(
                f"seed must be below 2**128 for pgpe (the noise key), got {self.seed}"
            )
        self._center = x0.copy()
        self._stdev = np.full(self.num_params, self.hyper["sigma_init"])
        self._velocity = np.zeros(self.num_params)  # ClipUp
        self._adam_m = np.zeros(self.num_params)
        self._adam_v = np.zeros(self.num_params)
        self._adam_t = 0
        self._eps: np.ndarray | None = None  # pending noise, [popsize // 2 or popsize, D]

    @property
    def _has_pending(self) -> bool:
        return self._eps is not None

    @property
    def _num_noise(self) -> int:
        return self.popsize // 2 if self.hyper["antithetic"] else self.popsize

    @property
    def center(self) -> np.ndarray:
        return self._center.copy()

    @property
    def stdev(self) -> np.ndarray:
        """The current per-parameter stdev (a copy)."""
        return self._stdev.copy()

    def ask(self) -> np.ndarray:
        self._begin_ask()
        rows = range(self._num_noise)
        eps = noise_rows(self.seed, self._generation, rows, self.num_params) * self._stdev
        self._eps = eps
        if self.hyper["antithetic"]:
            return np.concatenate([self._center + eps, self._center - eps])
        return self._center + eps

    def compact_population(self) -> PopulationSpec | None:
        if self._eps is None:
            raise AskTellError("compact_population() describes a pending population; call ask()")
        return PopulationSpec(
            center=self._center.copy(),
            stdev=self._stdev.copy(),
            seed=self.seed,
            generation=self._generation,
            popsize=self.popsize,
            antithetic=self.hyper["antithetic"],
        )

    def tell(self, fitness: np.ndarray) -> None:
        f = self._begin_tell(fitness)
        assert self._eps is not None
        eps, stdev = self._eps, self._stdev
        shaped = _centered_ranks(f)
        baseline = shaped.mean()
        n = eps.shape[0]
        if self.hyper["antithetic"]:
            plus, minus = shaped[:n], shaped[n:]
            grad_center = ((plus - minus) / 2.0) @ eps / n
            weight = (plus + minus) / 2.0 - baseline
        else:
            grad_center = (shaped - baseline) @ eps / n
            weight = shaped - baseline
        grad_stdev = weight @ ((eps**2 - stdev**2) / stdev) / n

        self._center = self._center + self._center_step(grad_center)
        change = self.hyper["stdev_max_change"] * stdev
        self._stdev = np.clip(
            stdev + self.hyper["stdev_lr"] * grad_stdev, stdev - change, stdev + change
        )
        self._eps = None
        self._generation += 1

    def _center_step(self, grad: np.ndarray) -> np.ndarray:
        """The step to add to the center for the (ascent) gradient ``grad``."""
        lr = self.hyper["center_lr"]
        if self.hyper["optimizer"] == "clipup":
            norm = np.linalg.norm(grad)
            direction = grad / norm if norm > 0 else np.zeros_like(grad)
            velocity = self.hyper["momentum"] * self._velocity + lr * direction
            speed = np.linalg.norm(velocity)
            if speed > self.hyper["max_speed"]:
                velocity = velocity * (self.hyper["max_speed"] / speed)
            self._velocity = velocity
            return velocity
        beta1, beta2 = self._ADAM_BETAS
        self._adam_t += 1
        self._adam_m = beta1 * self._adam_m + (1.0 - beta1) * grad
        self._adam_v = beta2 * self._adam_v + (1.0 - beta2) * grad**2
        m_hat = self._adam_m / (1.0 - beta1**self._adam_t)
        v_hat = self._adam_v / (1.0 - beta2**self._adam_t)
        return lr * m_hat / (np.sqrt(v_hat) + self._ADAM_EPS)

    def state_dict(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = self._meta()
        meta["noise"] = NOISE_STREAM
        meta["adam_t"] = self._adam_t
        arrays = {
            "center": self._center.copy(),
            "stdev": self._stdev.copy(),
            "velocity": self._velocity.copy(),
            "adam_m": self._adam_m.copy(),
            "adam_v": self._adam_v.copy(),
        }
        if self._eps is not None:
            arrays["pending_eps"] = self._eps.copy()
        return meta, arrays

    def load_state_dict(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        hyper, generation, pending, seed = self._check_meta(meta)
        d = (self.num_params,)
        center = _state_array(arrays, "center", d)
        stdev = _state_array(arrays, "stdev", d)
        if not np.all(stdev > 0):
            raise CheckpointError("state array 'stdev' must be positive")
        velocity = _state_array(arrays, "velocity", d)
        adam_m = _state_array(arrays, "adam_m", d)
        adam_v = _state_array(arrays, "adam_v", d)
        adam_t = meta.get("adam_t")
        if type(adam_t) is not int or adam_t < 0:
            raise CheckpointError("state metadata needs a non-negative int 'adam_t'")
        num_noise = self.popsize // 2 if hyper["antithetic"] else self.popsize
        eps = _state_array(arrays, "pending_eps", (num_noise, d[0])) if pending else None
        if meta.get("noise") != NOISE_STREAM:
            raise CheckpointError(
                f"state draws its noise from {meta.get('noise', 'a sequential generator')!r}, "
                f"not {NOISE_STREAM!r}; it cannot resume identically with this version"
            )
        self.hyper, self._generation = hyper, generation
        self.seed = seed
        self._center, self._stdev, self._eps = center, stdev, eps
        self._velocity, self._adam_m, self._adam_v, self._adam_t = velocity, adam_m, adam_v, adam_t


# ---------------------------------------------------------------------------------------------
# CMA-ES through pycma
# ---------------------------------------------------------------------------------------------

# pycma options the strategy sets itself.
_CMA_RESERVED = ("CMA_diagonal", "popsize", "randn", "seed", "verb_disp", "verb_log", "verbose")
# Callables outside the cma package that a CMAEvolutionStrategy refers to by default.
_PYCMA_GLOBALS = ("numpy.linalg:eigh", "numpy.random:randn")


def _pycma_seed(seed: int) -> int:
    """A non-zero 32-bit seed for pycma (pycma treats 0 as 'seed from the clock')."""
    return int(np.random.SeedSequence(seed).generate_state(1)[0]) or 1


def _rehash_solution_dict(obj: Any) -> None:
    """Re-key a restored pycma ``SolutionDict``.

    Its keys are ``hash(x.tobytes())``, and bytes hashes change between processes
    (PYTHONHASHSEED). Each entry keeps its unhashed key, so the keys are recomputed.
    """
    if not isinstance(obj, cma.utilities.utils.SolutionDict):
        return
    remap = {old: obj.key(unhashed) for old, unhashed in obj._unhashed_keys.items()}
    for table in (obj.data, obj.data_with_same_key, obj._unhashed_keys):
        items = list(table.items())
        if any(k not in remap for k, _ in items):
            raise CheckpointError("pycma SolutionDict entry without its unhashed key")
        table.clear()
        table.update((remap[k], v) for k, v in items)


class CMAES(Strategy):
    """CMA-ES with a full covariance matrix, through pycma (``cma``).

    pycma draws from the GLOBAL numpy RNG. This class owns that RNG's state: it swaps its
    own state in around every pycma call and restores the caller's afterwards, so the rest
    of the program's ``np.random`` is untouched and pycma's draws are part of the saved
    state. (Not thread-safe: do not use ``np.random`` from another thread meanwhile.)

    The state is the whole ``CMAEvolutionStrategy`` object graph, encoded by
    :func:`evolve.state_io.encode_graph` with only ``cma`` classes allowed.

    Hyperparameters:
        sigma_init (0.1): initial step size sigma0.
        cma_options ({}): further pycma options as plain JSON data, e.g.
            ``{"CMA_elitist": True}``; these are set by the strategy and may not be given:
            CMA_diagonal, popsize, randn, seed, verb_disp, verb_log, verbose.
    """

    name = "cma"
    _diagonal: ClassVar[bool] = False
    _DEFAULTS: ClassVar[dict[str, Any]] = {"sigma_init": 0.1, "cma_options": {}}

    def _resolve_hyper(self, given: Mapping[str, Any]) -> dict[str, Any]:
        self._reject_unknown(given, self._DEFAULTS)
        h = {**self._DEFAULTS, **given}
        sigma = _check_real("sigma_init", h["sigma_init"], low=0.0, low_open=True)
        options = h["cma_options"]
        if not isinstance(options, Mapping):
            raise ConfigError(f"cma_options must be a dict, got {type(options).__name__}")
        known = cma.CMAOptions.defaults()
        for key, value in options.items():
            if key in _CMA_RESERVED:
                raise ConfigError(
                    f"cma_options may not set {key!r}; the strategy sets "
                    + ", ".join(_CMA_RESERVED)
                )
            if key not in known:
                raise ConfigError(f"unknown pycma option {key!r} in cma_options")
            if not _is_plain_json(value):
                raise ConfigError(
                    f"cma_options[{key!r}] must be plain JSON data "
                    f"(None, bool, int, finite float, str, list, dict), got {value!r}"
                )
        return {"sigma_init": sigma, "cma_options": copy.deepcopy(dict(options))}

    def _setup(self, x0: np.ndarray) -> None:
        options = copy.deepcopy(self.hyper["cma_options"])
        options.update(
            popsize=self.popsize,
            seed=_pycma_seed(self.seed),
            CMA_diagonal=self._diagonal,
            verbose=-9,
            verb_log=0,
            verb_disp=0,
        )
        # pycma seeds the global RNG from options["seed"] while it is swapped in.
        self._rng_state: dict[str, Any] = np.random.RandomState(0).get_state(legacy=False)
        with self._global_rng():
            self._es = cma.CMAEvolutionStrategy(x0, self.hyper["sigma_init"], options)
        self._pending: list[np.ndarray] | None = None

    @contextmanager
    def _global_rng(self) -> Iterator[None]:
        """Swap this strategy's RNG state into ``np.random`` for the duration of a pycma call."""
        # The legacy global RNG is what pycma draws from; touching it is the point here.
        outside = np.random.get_state(legacy=False)  # noqa: NPY002
        np.random.set_state(self._rng_state)  # noqa: NPY002
        try:
            yield
        finally:
            self._rng_state = np.random.get_state(legacy=False)  # noqa: NPY002
            np.random.set_state(outside)  # noqa: NPY002

    @property
    def _has_pending(self) -> bool:
        return self._pending is not None

    @property
    def center(self) -> np.ndarray:
        es = self._es
        mean = es.gp.pheno(es.mean, into_bounds=es.boundary_handler.repair)
        return np.array(mean, dtype=np.float64, copy=True)

    def ask(self) -> np.ndarray:
        self._begin_ask()
        with self._global_rng():
            solutions = self._es.ask()
        self._pending = solutions
        return np.array(solutions, dtype=np.float64)

    def tell(self, fitness: np.ndarray) -> None:
        f = self._begin_tell(fitness)
        with self._global_rng():
            self._es.tell(self._pending, _to_minimisation(f))
        self._pending = None
        self._generation += 1

    def state_dict(self) -> tuple[dict, dict[str, np.ndarray]]:
        graph, arrays = encode_graph(
            {"es": self._es, "pending": self._pending},
            packages=("cma",),
            extra_globals=_PYCMA_GLOBALS,
            prefix="cma.",
        )
        arrays = {k: np.array(v, copy=True, order="K") for k, v in arrays.items()}
        rng = self._rng_state
        arrays["rng.key"] = np.array(rng["state"]["key"], dtype=np.uint32, copy=True)
        meta = self._meta()
        meta["rng"] = {
            "pos": int(rng["state"]["pos"]),
            "has_gauss": int(rng["has_gauss"]),
            "gauss": float(rng["gauss"]),
        }
        meta["pycma"] = {"version": cma.__version__, "graph": graph}
        return meta, arrays

    def load_state_dict(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        hyper, generation, pending, seed = self._check_meta(meta)
        pycma = meta.get("pycma")
        if not isinstance(pycma, dict) or "graph" not in pycma:
            raise CheckpointError("state metadata needs a 'pycma' entry with a 'graph'")
        if pycma.get("version") != cma.__version__:
            raise CheckpointError(
                f"state was saved with pycma {pycma.get('version')!r}, "
                f"but pycma {cma.__version__} is installed"
            )
        key = _state_array(arrays, "rng.key", (624,), np.uint32)
        rng = meta.get("rng")
        if not isinstance(rng, dict) or not {"pos", "has_gauss", "gauss"} <= rng.keys():
            raise CheckpointError("state metadata needs an 'rng' entry with pos, has_gauss, gauss")
        rng_state = {
            "bit_generator": "MT19937",
            "state": {"key": key, "pos": rng["pos"]},
            "has_gauss": rng["has_gauss"],
            "gauss": rng["gauss"],
        }
        try:
            np.random.RandomState().set_state(rng_state)  # validate only
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"state has a bad 'rng' entry: {e}") from e
        copies = {k: np.array(v, copy=True, order="K") for k, v in arrays.items()}
        root = decode_graph(
            pycma["graph"],
            copies,
            packages=("cma",),
            extra_globals=_PYCMA_GLOBALS,
            after_restore=_rehash_solution_dict,
        )
        es = root.get("es") if isinstance(root, dict) else None
        if not isinstance(es, cma.CMAEvolutionStrategy):
            raise CheckpointError("pycma graph does not hold a CMAEvolutionStrategy under 'es'")
        if es.N_pheno != self.num_params or es.sp.popsize != self.popsize:
            raise CheckpointError("pycma state does not match num_params and popsize")
        solutions = root.get("pending")
        if pending != (solutions is not None) or (
            solutions is not None
            and (
                not isinstance(solutions, list)
                or len(solutions) != self.popsize
                or any(np.shape(x) != (self.num_params,) for x in solutions)
            )
        ):
            raise CheckpointError("pending population does not match the metadata")
        self.hyper, self._generation = hyper, generation
        self.seed = seed
        self._es, self._pending, self._rng_state = es, solutions, rng_state


class SepCMAES(CMAES):
    """Separable CMA-ES: diagonal covariance (pycma ``CMA_diagonal=True``); O(N) per sample.

    Same hyperparameters as :class:`CMAES`.
    """

    name = "sep-cma"
    _diagonal = True


# ---------------------------------------------------------------------------------------------
# Registry and files
# ---------------------------------------------------------------------------------------------

STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (PGPE, CMAES, SepCMAES)}


def make_strategy(name: str, num_params: int, popsize: int, seed: int, **hyper: Any) -> Strategy:
    """Build a registered strategy by name (``x0`` may be passed among ``hyper``).

    Raises:
        ConfigError: Unknown name, or unknown or bad hyperparameter.
    """
    cls = STRATEGIES.get(name) if isinstance(name, str) else None
    if cls is None:
        allowed = ", ".join(repr(k) for k in sorted(STRATEGIES))
        raise ConfigError(f"unknown strategy {name!r}; allowed: {allowed}")
    return cls(num_params, popsize, seed, **hyper)


def save_strategy(strategy: Strategy, path: str | os.PathLike[str]) -> None:
    """Write the strategy's complete state to one ``.npz`` file at ``path``, atomically."""
    meta, arrays = strategy.state_dict()
    save_npz(path, arrays, meta)


def load_strategy(path: str | os.PathLike[str]) -> Strategy:
    """Rebuild a strategy from a file written by :func:`save_strategy`.

    Raises:
        CheckpointError: The file is missing, malformed or names an unknown strategy.
    """
    arrays, meta = load_npz(path)
    name = meta.get("strategy")
    cls = STRATEGIES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise CheckpointError(f"{path}: unknown strategy {name!r}")
    try:
        strategy = cls(
            meta.get("num_params"), meta.get("popsize"), meta.get("seed"), **meta.get("hyper", {})
        )
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{path}: bad strategy settings: {e}") from e
    strategy.load_state_dict(meta, arrays)
    return strategy
