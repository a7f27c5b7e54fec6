"""The local backend: shards in worker processes on this machine (or inline with one)."""

from __future__ import annotations

import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from evolve.backends.base import Backend
from evolve.rollout import EpisodeJob, RolloutResult, rollout
from sensoryneuron.errors import ConfigError


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
