"""Where rollouts run. A backend evaluates a population by shards, each shard one batched call.

The population is split into contiguous shards, one per worker; every worker runs the same
:func:`evolve.rollout.rollout` on its shard and the results are concatenated in order. A
distributed backend (:mod:`evolve.ray_backend`) implements the same methods. A population
may come as explicit parameters or as a :class:`~evolve.population.PopulationSpec` (PGPE's
centre, stdev and noise seeds), which a distributed backend sends instead of the parameters.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from evolve.population import PopulationSpec
from evolve.rollout import EpisodeJob, RolloutResult, rollout
from sensoryneuron.errors import ConfigError


def shard_bounds(members: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` ranges splitting ``members`` into at most ``shards`` parts."""
    shards = max(1, min(shards, members))
    edges = np.linspace(0, members, shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def combine(results: list[RolloutResult]) -> RolloutResult:
    """Concatenate shard results in member order."""
    return RolloutResult(
        returns=np.concatenate([r.returns for r in results]),
        steps=np.concatenate([r.steps for r in results]),
    )


def population_size(population: np.ndarray | PopulationSpec) -> int:
    """Number of members of explicit parameters ``[P, D]`` or of a spec."""
    if isinstance(population, PopulationSpec):
        return population.popsize
    return int(population.shape[0])


def population_shard(population: np.ndarray | PopulationSpec, start: int, stop: int) -> np.ndarray:
    """Members ``[start, stop)`` as parameter rows (a spec regenerates them)."""
    if isinstance(population, PopulationSpec):
        return population.members(start, stop)
    return population[start:stop]


class Backend(ABC):
    """Evaluates a population on an :class:`EpisodeJob`; results are in member order."""

    name: str
    workers: int

    @abstractmethod
    def run(self, tasks: list[tuple[EpisodeJob, np.ndarray]]) -> list[RolloutResult]:
        """Run independent ``(job, params)`` tasks in parallel; results in task order."""

    def evaluate(self, job: EpisodeJob, population: np.ndarray | PopulationSpec) -> RolloutResult:
        """One population on one job, sharded by members across the workers.

        Args:
            job: the episodes every member plays.
            population: parameters ``[P, D]``, or a spec that regenerates them (expanded
                here, shard by shard; a distributed backend sends the spec instead).
        """
        bounds = shard_bounds(population_size(population), self.workers)
        return combine(self.run([(job, population_shard(population, a, b)) for a, b in bounds]))

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _init_worker() -> None:
    # The parent handles Ctrl-C (it saves and exits); workers just stop when told.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


class LocalBackend(Backend):
    """Shards run in local worker processes (or inline with ``workers=1``)."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers must be a positive integer; got {workers!r}")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        if workers == 1:
            # Rollouts are many small ops: one thread is as fast, and never oversubscribes.
            torch.set_num_threads(1)
        else:
            self._pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
            )

    def run(self, tasks: list[tuple[EpisodeJob, np.ndarray]]) -> list[RolloutResult]:
        if self._pool is None:
            return [rollout(job, params) for job, params in tasks]
        futures = [self._pool.submit(rollout, job, params) for job, params in tasks]
        return [f.result() for f in futures]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _local_backend(workers: int | str, address: str | None) -> Backend:
    if address is not None:
        raise ConfigError("--address applies only to the ray backend")
    if workers == "max":
        workers = os.cpu_count() or 1
    return LocalBackend(workers=workers)


def _ray_backend(workers: int | str, address: str | None) -> Backend:
    from evolve.ray_backend import RayBackend  # Ray is optional: import it only when asked

    return RayBackend(workers=workers, address=address)


BACKENDS: dict[str, Callable[[int | str, str | None], Backend]] = {
    "local": _local_backend,
    "ray": _ray_backend,
}


def make_backend(
    name: str = "local", workers: int | str = 1, address: str | None = None
) -> Backend:
    """A backend by name.

    Args:
        name: ``"local"`` (worker processes on this machine) or ``"ray"``.
        workers: shards per population; ``"max"`` uses every core (local) or every CPU of
            the Ray cluster.
        address: the Ray cluster to join (``"auto"``, ``HOST:PORT``); None starts a local one.
    """
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; allowed: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name](workers, address)
