"""Where rollouts run: a backend evaluates a population by shards, each one batched call.

``local`` runs shards in worker processes here; ``ray`` runs them as Ray tasks on a cluster
(imported only when asked for: Ray is an optional extra).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from evolve.backends.base import Backend, combine, population_shard, population_size, shard_bounds
from evolve.backends.local import LocalBackend
from sensoryneuron.errors import ConfigError


def _local_backend(workers: int | str, address: str | None) -> Backend:
    if address is not None:
        raise ConfigError("--address applies only to the ray backend")
    if workers == "max":
        workers = os.cpu_count() or 1
    return LocalBackend(workers=workers)


def _ray_backend(workers: int | str, address: str | None) -> Backend:
    from evolve.backends.ray import RayBackend  # Ray is optional: import it only when asked

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


__all__ = [
    "BACKENDS",
    "Backend",
    "LocalBackend",
    "combine",
    "make_backend",
    "population_shard",
    "population_size",
    "shard_bounds",
]
