"""Where rollouts run. A backend evaluates a population by shards, each shard one batched call.

The population is split into contiguous shards, one per worker; every worker runs the same
:func:`evolve.rollout.rollout` on its shard and the results are concatenated in order. A
distributed backend (:mod:`evolve.backends.ray`) implements the same methods. A population
may come as explicit parameters or as a :class:`~evolve.strategies.population.PopulationSpec` (PGPE's
centre, stdev and noise seeds), which a distributed backend sends instead of the parameters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from evolve.rollout import EpisodeJob, RolloutResult
from evolve.strategies.population import PopulationSpec


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
