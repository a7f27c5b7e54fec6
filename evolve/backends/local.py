"""The local backend: shards in worker processes on this machine (or inline with one).

Workers end with their parent, however it ends: on Linux the kernel sends each worker
SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``), and on every platform a watchdog
thread in each worker exits it once its parent is gone. So a ``kill -9`` of ``evolve train``
leaves no worker behind, nor multiprocessing's resource tracker (it exits when the last
process that could talk to it has).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from evolve.backends.base import Backend
from evolve.rollout import EpisodeJob, RolloutResult, rollout
from sensoryneuron.errors import ConfigError

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WATCHDOG_INTERVAL = 0.5  # seconds between a worker's checks that its parent lives


def _die_with_parent(parent: int) -> None:
    """End this process when ``parent`` (the pid that started it) dies.

    Linux's parent-death signal fires when the thread that forked this process exits;
    the pool forks its workers from the thread that submits work, so a backend used from a
    thread that ends before it would lose its workers (the pool then reports them broken).
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still ends it
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCHDOG_INTERVAL)
        os._exit(1)  # orphaned: reparented to init or a subreaper

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _init_worker(parent: int) -> None:
    # The parent handles Ctrl-C (it saves and exits); workers just stop when told.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
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
                initargs=(os.getpid(),),
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
