"""CMA-ES (full and separable) through pycma, with its global-RNG use fenced in."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import cma
import cma.utilities.utils
import numpy as np

from evolve.strategies.base import (
    Strategy,
    _check_real,
    _is_plain_json,
    _state_array,
    _to_minimisation,
)
from evolve.strategies.state_io import decode_graph, encode_graph
from sensoryneuron.errors import CheckpointError, ConfigError

# Above this many parameters full-covariance CMA-ES is slow and large: `make_strategy` warns.
FULL_CMA_WARN_PARAMS = 3_000
# pycma's full sampler keeps two n x n float64 matrices: the covariance C and its eigenvectors B.
_FULL_CMA_MATRICES = 2
# Measured: ~6 s per generation at 3,000 parameters, population 256 (DESIGN.md).
_SECONDS_AT_3K = 6.0


def full_cma_warning(num_params: int) -> str | None:
    """What full-covariance CMA-ES costs on ``num_params`` parameters, if that is too much.

    None up to :data:`FULL_CMA_WARN_PARAMS` parameters.

    >>> print(full_cma_warning(12_929))  # doctest: +NORMALIZE_WHITESPACE
    full-covariance CMA-ES on 12,929 parameters keeps two 12,929 x 12,929 float64 matrices
    (the covariance and its eigenvectors): 2.7 GB in memory, copied into state.npz at every
    checkpoint; pycma takes ~6 s per generation at 3,000 parameters (population 256) and
    the cost grows at least as n^2, so expect ~111 s or more per generation; use --strategy
    sep-cma (diagonal covariance, O(n)) for a model this size
    >>> full_cma_warning(3_000) is None
    True
    """
    if num_params <= FULL_CMA_WARN_PARAMS:
        return None
    gigabytes = _FULL_CMA_MATRICES * num_params**2 * 8 / 1e9
    seconds = _SECONDS_AT_3K * (num_params / 3_000) ** 2
    return (
        f"full-covariance CMA-ES on {num_params:,} parameters keeps two {num_params:,} x "
        f"{num_params:,} float64 matrices (the covariance and its eigenvectors): "
        f"{gigabytes:.1f} GB in memory, copied into state.npz at every checkpoint; pycma takes "
        "~6 s per generation at 3,000 parameters (population 256) and the cost grows at least "
        f"as n^2, so expect ~{seconds:.0f} s or more per generation; use --strategy sep-cma "
        "(diagonal covariance, O(n)) for a model this size"
    )


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
    :func:`evolve.strategies.state_io.encode_graph` with only ``cma`` classes allowed.

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
