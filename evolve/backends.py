"""Where rollouts run. A backend evaluates a population by shards, each shard one batched call.

The population is split into contiguous shards, one per worker; every worker runs the same
:func:`evolve.rollout.rollout` on its shard and the results are concatenated in order. A
distributed backend (e.g. Ray) implements the same two methods.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from abc import ABC, abstractmethod
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from evolve.rollout import EpisodeJob, RolloutResult, rollout
from sensoryneuron.errors import ConfigError


def shard_bounds(members: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` ranges splitting ``members`` into at most ``shards`` parts."""
    shards = max(1, min(shards, members))
    edges = np.linspace(0, members, shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def combine(results: list[RolloutResult]) -> RolloutResult:
    return RolloutResult(
        returns=np.concatenate([r.returns for r in results]),
        steps=np.concatenate([r.steps for r in results]),
    )


class Backend(ABC):
    """Evaluates ``params[P, D]`` on an :class:`EpisodeJob`; results are in member order."""

    name: str
    workers: int

    @abstractmethod
    def run(self, tasks: list[tuple[EpisodeJob, np.ndarray]]) -> list[RolloutResult]:
        """Run independent ``(job, params)`` tasks in parallel; results in task order."""

    def evaluate(self, job: EpisodeJob, params: np.ndarray) -> RolloutResult:
        """One population on one job, sharded by members across the workers."""
        bounds = shard_bounds(params.shape[0], self.workers)
        return combine(self.run([(job, params[a:b]) for a, b in bounds]))

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


BACKENDS = {"local": LocalBackend}


def make_backend(name: str = "local", workers: int | str = 1) -> Backend:
    """A backend by name; ``workers="max"`` uses every core."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; allowed: {', '.join(sorted(BACKENDS))}")
    if workers == "max":
        workers = os.cpu_count() or 1
    return BACKENDS[name](workers=workers)
