"""Evolution strategies behind one ask/tell interface, in a registry; pickle-free state files.

>>> import numpy as np
>>> es = make_strategy("pgpe", num_params=3, popsize=8, seed=0)
>>> for _ in range(3):
...     population = es.ask()                          # float64 [popsize, num_params]
...     es.tell(-np.sum(population**2, axis=1))        # higher is better
>>> es.generation, es.center.shape
(3, (3,))
"""

from __future__ import annotations

import os
from typing import Any

from evolve.logs import get_logger
from evolve.strategies.base import AskTellError, DivergedError, Strategy
from evolve.strategies.cma import CMAES, FULL_CMA_WARN_PARAMS, SepCMAES, full_cma_warning
from evolve.strategies.pgpe import PGPE
from evolve.strategies.population import PopulationSpec
from sensoryneuron.errors import CheckpointError, ConfigError
from sensoryneuron.files import load_npz, save_npz

STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (PGPE, CMAES, SepCMAES)}


def make_strategy(name: str, num_params: int, popsize: int, seed: int, **hyper: Any) -> Strategy:
    """Build a registered strategy by name (``x0`` may be passed among ``hyper``).

    Full-covariance ``cma`` on more than :data:`FULL_CMA_WARN_PARAMS` parameters logs a
    warning first: its memory, its cost per generation, and ``sep-cma`` instead.

    Raises:
        ConfigError: Unknown name, or unknown or bad hyperparameter.
    """
    cls = STRATEGIES.get(name) if isinstance(name, str) else None
    if cls is None:
        allowed = ", ".join(repr(k) for k in sorted(STRATEGIES))
        raise ConfigError(f"unknown strategy {name!r}; allowed: {allowed}")
    warn_if_costly(name, num_params)
    return cls(num_params, popsize, seed, **hyper)


def check_hyperparameters(name: str, popsize: int, **hyper: Any) -> None:
    """Raise the ConfigError that ``make_strategy(name, ..., popsize, ...)`` would raise for
    these hyperparameters, without building a strategy of the model's size.

    Raises:
        ConfigError: Unknown name, or unknown or bad hyperparameter.
    """
    make_strategy(name, 2, popsize, 0, **hyper)  # two parameters: no matrix of the model's size


def warn_if_costly(name: str, num_params: int) -> None:
    """Log a warning where strategy ``name`` on ``num_params`` parameters is too costly."""
    message = full_cma_warning(num_params) if name == CMAES.name else None
    if message is not None:
        get_logger().warning("warning: %s", message)


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


__all__ = [
    "CMAES",
    "FULL_CMA_WARN_PARAMS",
    "PGPE",
    "STRATEGIES",
    "check_hyperparameters",
    "AskTellError",
    "DivergedError",
    "PopulationSpec",
    "SepCMAES",
    "Strategy",
    "load_strategy",
    "make_strategy",
    "save_strategy",
    "warn_if_costly",
]
