"""Evaluate one policy on held-out episodes under several test conditions."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from evolve.backends import Backend, LocalBackend, shard_bounds
from evolve.evaluation.conditions import Condition
from evolve.rollout import EpisodeJob
from evolve.seeds import test_seeds
from sensoryneuron.models import FeedForwardModel
from sensoryneuron.policy import Policy
from tasks.spec import get_task


def condition_width(condition: Condition, obs_dim: int) -> int:
    p = condition.perturbations
    return obs_dim * p.duplicate + p.noise_channels


def evaluate_policy(
    policy: Policy,
    env_id: str,
    conditions: list[Condition],
    episodes: int = 100,
    seed_offset: int = 0,
    backend: Backend | None = None,
    float64: bool = False,
    max_steps: int | None = None,
    engine: str | None = None,
    device: str | None = None,
) -> list[dict[str, Any]]:
    """Mean and spread of episode returns per condition, on the same held-out seeds.

    Returns one row per condition: ``condition``, ``episodes``, ``mean``, ``std``, ``min``,
    ``max`` and the per-episode ``returns``; or ``skipped`` with the reason, where the
    policy cannot take that many inputs (the feed-forward baseline). ``max_steps`` cuts
    every episode short (None: the task's own length); ``engine`` picks the batched engine
    (None: the task's default); ``device`` where the policy runs (None: the CPU).
    """
    backend = backend or LocalBackend(1)
    seeds = test_seeds(episodes, seed_offset)
    obs_dim = get_task(env_id).observation.size
    params = policy.params[None, :]
    rows: list[dict[str, Any]] = []
    for condition in conditions:
        width = condition_width(condition, obs_dim)
        if isinstance(policy.model, FeedForwardModel) and width != policy.model.obs_dim:
            rows.append(
                {
                    "condition": condition.name,
                    "skipped": f"the feed-forward policy takes exactly "
                    f"{policy.model.obs_dim} inputs, this condition gives {width}",
                }
            )
            continue
        job = EpisodeJob(
            model=policy.model.to_dict(),
            env_id=env_id,
            perturbations=condition.perturbations.to_dict(),
            realign=condition.realign,
            max_steps=max_steps,
            float64=float64,
            engine=engine,
            action=policy.action.to_dict(),
            device=device,
        )
        chunks = shard_bounds(len(seeds), backend.workers)
        tasks = [(dataclasses.replace(job, seeds=tuple(seeds[a:b])), params) for a, b in chunks]
        returns = np.concatenate([r.returns[0] for r in backend.run(tasks)])
        rows.append(
            {
                "condition": condition.name,
                "description": condition.perturbations.describe()
                + (", state realigned" if condition.realign else ""),
                "episodes": int(returns.size),
                "mean": float(returns.mean()),
                "std": float(returns.std()),
                "min": float(returns.min()),
                "max": float(returns.max()),
                "returns": returns.tolist(),
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]], title: str = "") -> str:
    """A plain-text table: condition, description, episodes, mean +- std."""
    header = f"{'condition':<24} {'perturbation':<40} {'episodes':>8}  {'return':>17}"
    lines = [title] if title else []
    lines += [header, "-" * len(header)]
    for row in rows:
        if "skipped" in row:
            lines.append(f"{row['condition']:<24} {'n/a: ' + row['skipped']}")
            continue
        score = f"{row['mean']:8.1f} +- {row['std']:6.1f}"
        lines.append(
            f"{row['condition']:<24} {row['description']:<40} {row['episodes']:>8}  {score:>17}"
        )
    return "\n".join(lines)
