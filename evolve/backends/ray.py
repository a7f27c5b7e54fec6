"""Rollouts on a Ray cluster: each shard of the population is one Ray task.

Every task runs the same :func:`evolve.rollout.rollout` as the local backend, on the same
shards (:func:`evolve.backends.shard_bounds`), so both backends give bit-identical fitness.

What travels per generation:
    - PGPE: the :class:`~evolve.strategies.population.PopulationSpec` (centre and stdev, float64, plus a
      few integers) is put in Ray's object store once, and each task gets a reference to it,
      the :class:`~evolve.rollout.EpisodeJob` (a few hundred bytes) and its member range; the
      task regenerates its members from the counter-based noise.
    - Strategies without a compact form (CMA-ES): each task gets its float32 shard.
    - Back: the returns and step counts of the shard's members, ``[members, episodes]``.

A worker that dies mid-task (its process or its node) is a system failure: Ray re-runs the
task elsewhere, up to ``max_retries`` times, and the generation completes with the same
result. Exceptions raised by the rollout itself are not retried (they would recur).

Ray is optional: it is imported when a :class:`RayBackend` is made, never on import of
:mod:`evolve`.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from evolve.backends.base import Backend, combine, population_size, shard_bounds
from evolve.rollout import EpisodeJob, RolloutResult, rollout
from evolve.strategies.population import PopulationSpec
from sensoryneuron.errors import ConfigError

RAY_MISSING = "the ray backend needs Ray: pip install -e '.[ray]'"
MAX_RETRIES = 3
CONNECT_TIMEOUT_S = 5.0
OBJECT_REF_BYTES = 28  # the binary id of an ObjectRef, what a task spec carries for it


def import_ray(local: bool = False) -> ModuleType:
    """Import Ray, or raise :class:`ConfigError` saying how to install it.

    Args:
        local: Ray is about to start a private single-machine instance. Imported for the
            first time this way, Ray runs in its single-machine mode and listens on
            127.0.0.1 only (Ray's own setting for machines that never join a cluster).
    """
    if local and "ray" not in sys.modules:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def evaluate_shard(
    job: EpisodeJob,
    population: np.ndarray | PopulationSpec,
    rows: tuple[int, int] | None = None,
    crash_once: str | None = None,
) -> RolloutResult:
    """The Ray task: one shard's rollouts.

    Args:
        job: the episodes.
        population: the shard's parameters, or a spec of the whole population.
        rows: with a spec, the members ``[start, stop)`` this task plays.
        crash_once: test hook; the first task to create this file kills its own worker.
    """
    if crash_once is not None:
        _crash_once(crash_once)
    import torch

    torch.set_num_threads(1)  # one task per CPU; many small ops gain nothing from threads
    if isinstance(population, PopulationSpec):
        assert rows is not None
        population = population.members(*rows)
    return rollout(job, population)


def _crash_once(marker: str) -> None:
    """SIGKILL this worker process if ``marker`` does not exist yet (creating it)."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def _task_args(
    job: EpisodeJob,
    population: np.ndarray | PopulationSpec,
    bounds: list[tuple[int, int]],
    spec_ref: Any,
) -> list[tuple[Any, ...]]:
    """The arguments of each shard's task: a spec travels as ``spec_ref``, sent once."""
    if isinstance(population, PopulationSpec):
        return [(job, spec_ref, (a, b)) for a, b in bounds]
    return [(job, population[a:b], None) for a, b in bounds]


def message_bytes(
    job: EpisodeJob, population: np.ndarray | PopulationSpec, workers: int
) -> dict[str, int]:
    """Bytes sent to evaluate one population, as pickled (protocol 5) arguments.

    Returns:
        ``tasks``: the task arguments, all shards together (a spec reference counts as its
        28-byte id); ``broadcast``: the spec, put in the object store once and fetched once
        per node; ``total``: their sum for a one-node fetch.
    """
    bounds = shard_bounds(population_size(population), workers)
    args = _task_args(job, population, bounds, bytes(OBJECT_REF_BYTES))
    tasks = sum(len(pickle.dumps(a, protocol=5)) for a in args)
    spec = isinstance(population, PopulationSpec)
    broadcast = len(pickle.dumps(population, protocol=5)) if spec else 0
    return {"tasks": tasks, "broadcast": broadcast, "total": tasks + broadcast}


def _check_reachable(address: str) -> None:
    """Fail fast where nothing listens at ``HOST:PORT`` (``ray.init`` would retry for minutes)."""
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address must be 'auto' or HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        raise ConfigError(f"cannot reach a Ray cluster at {address}: {reason}") from None


class RayBackend(Backend):
    """Shards run as Ray tasks, one CPU each, on a local Ray or an existing cluster.

    Args:
        workers: shards per population, at most the cluster's CPUs; ``"max"``: all of them.
        address: the cluster to join (``"auto"``, ``HOST:PORT``); None starts a local Ray
            on this machine (listening on 127.0.0.1). If Ray is already initialised in this
            process, that instance is used and left running on :meth:`close`.
        max_retries: times a task is re-run after its worker or node dies.
        crash_once: test hook (a file path): the first task to create the file kills its
            own worker process, as a crash would.
    """

    name = "ray"

    def __init__(
        self,
        workers: int | str = 1,
        address: str | None = None,
        *,
        max_retries: int = MAX_RETRIES,
        crash_once: str | os.PathLike[str] | None = None,
    ) -> None:
        if workers != "max" and (
            isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
        ):
            raise ConfigError(f"workers must be a positive integer or 'max'; got {workers!r}")
        ray = import_ray(local=address is None and not os.environ.get("RAY_ADDRESS"))
        self._ray = ray
        self._owns = False
        if not ray.is_initialized():
            if address not in (None, "auto"):
                _check_reachable(address)
            try:
                ray.init(
                    address=address,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=True,
                    logging_level=logging.ERROR,
                )
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = f"at {address}" if address else "on this machine"
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ConfigError(f"cannot start or join a Ray cluster {where}: {first}") from None
            self._owns = True
        try:
            cpus = int(ray.cluster_resources().get("CPU", 0))
            if cpus < 1:
                raise ConfigError("the Ray cluster has no CPUs to run rollouts on")
            if workers == "max":
                workers = cpus
            if workers > cpus:
                raise ConfigError(
                    f"workers={workers} is more than the {cpus} CPUs of the Ray cluster; "
                    f"use at most {cpus}, or 'max'"
                )
        except BaseException:
            self.close()
            raise
        self.workers = int(workers)
        self._crash_once = None if crash_once is None else str(Path(crash_once))
        self._task = ray.remote(evaluate_shard).options(
            num_cpus=1, max_retries=max_retries, retry_exceptions=False
        )

    def run(self, tasks: list[tuple[EpisodeJob, np.ndarray]]) -> list[RolloutResult]:
        refs = [self._task.remote(job, params, None, self._crash_once) for job, params in tasks]
        return self._ray.get(refs)

    def evaluate(self, job: EpisodeJob, population: np.ndarray | PopulationSpec) -> RolloutResult:
        bounds = shard_bounds(population_size(population), self.workers)
        spec = isinstance(population, PopulationSpec)
        spec_ref = self._ray.put(population) if spec else None
        args = _task_args(job, population, bounds, spec_ref)
        refs = [self._task.remote(*a, self._crash_once) for a in args]
        return combine(self._ray.get(refs))

    def close(self) -> None:
        """Shut Ray down if this backend started or joined it; a Ray found running stays."""
        if self._owns:
            self._ray.shutdown()
            self._owns = False
