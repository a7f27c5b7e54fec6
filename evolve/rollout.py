"""The batched rollout engine: a whole population is one policy call per env step.

P members x B episodes run together. Every member sees the same B episode seeds and the
same permutation and noise draws (common random numbers); the episode's seed fixes its
initial state, its permutations and its noise exactly as ``gym.make(env_id)`` with the
wrapper stack ``DuplicateObservation -> ShuffleObservation -> NoiseChannels`` and
``reset(seed=seed)`` would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from gymnasium.utils import seeding

from sensoryneuron.models import Model, model_from_dict
from tasks.perturbations import BatchPerturbation, Perturbations, relative_permutation
from tasks.spec import make_vector_task

COMPACT_BELOW = 0.75  # drop finished members once fewer than this fraction still run


@dataclass(frozen=True)
class EpisodeJob:
    """Everything a worker needs to evaluate parameters, as plain picklable data.

    Attributes:
        model: the model description (``Model.to_dict()``).
        env_id: a registered vector task.
        perturbations: ``Perturbations.to_dict()``.
        seeds: one seed per episode; every member plays every seed.
        realign: permute the policy's per-slot state with each reshuffle (keeps the agent
            exactly invariant; used to separate invariance from re-inference cost).
        max_steps: cap on episode length (None: the task's own limit).
        float64: run the policy in double precision.
    """

    model: dict[str, Any]
    env_id: str
    perturbations: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()
    realign: bool = False
    max_steps: int | None = None
    float64: bool = False


@dataclass(frozen=True)
class RolloutResult:
    """Undiscounted returns and episode lengths, both ``[P, B]``."""

    returns: np.ndarray
    steps: np.ndarray

    @property
    def fitness(self) -> np.ndarray:
        """Mean return per member over its episodes."""
        return self.returns.mean(axis=1)

    @property
    def member_steps(self) -> int:
        return int(self.steps.sum())


def episode_rngs(seeds: tuple[int, ...] | list[int]) -> list[np.random.Generator]:
    """One generator per episode, seeded exactly as ``env.reset(seed=...)`` seeds its env."""
    return [seeding.np_random(int(s))[0] for s in seeds]


def rollout(job: EpisodeJob, params: np.ndarray, model: Model | None = None) -> RolloutResult:
    """Run every member of ``params[P, D]`` on every episode of ``job``.

    Rewards stop counting at the first ``terminated`` step of each (member, episode); the
    policy state starts at zero for every episode.
    """
    model = model or model_from_dict(job.model)
    task = make_vector_task(job.env_id)
    perturb = Perturbations.from_dict(job.perturbations).batch(task.obs_dim)
    dtype = torch.float64 if job.float64 else torch.float32
    params_t = torch.tensor(np.asarray(params), dtype=dtype)
    members, episodes = params_t.shape[0], len(job.seeds)
    max_steps = task.max_steps if job.max_steps is None else min(job.max_steps, task.max_steps)

    rngs = episode_rngs(job.seeds)
    obs = perturb.reset(task.reset(rngs, members), rngs)
    returns = np.zeros((members, episodes))
    steps = np.zeros((members, episodes), dtype=np.int64)
    alive = np.ones((members, episodes), dtype=bool)
    active = np.arange(members)  # members still simulated; finished ones are dropped
    with torch.no_grad():
        weights = model.prepare(params_t)
        state = model.init_state(members, episodes, dtype=dtype)
        for _ in range(max_steps):
            action, state = model.step_prepared(weights, torch.from_numpy(obs), state)
            raw, reward, terminated = task.step(action.numpy().astype(np.float64))
            live = alive[active]
            returns[active] += np.where(live, reward, 0.0)
            steps[active] += live
            live &= ~terminated
            alive[active] = live
            if not live.any():
                break
            before = perturb.permutations.copy()
            obs = perturb.step(raw, rngs)
            if job.realign and perturb.reshuffled.any():
                state = state.permute(torch.from_numpy(_slot_permutation(before, perturb)))
            running = live.any(axis=1)
            if running.mean() < COMPACT_BELOW:
                keep = np.flatnonzero(running)
                active, obs = active[keep], obs[keep]
                task.keep_members(keep)
                index = torch.from_numpy(keep)
                weights = {k: v.index_select(0, index) for k, v in weights.items()}
                state = state.select_members(index)
    return RolloutResult(returns=returns, steps=steps)


def _slot_permutation(before: np.ndarray, perturb: BatchPerturbation) -> np.ndarray:
    """Per-episode realignment of every input slot; noise slots stay where they are."""
    rel = relative_permutation(before, perturb.permutations)
    if perturb.noise_channels:
        noise = np.arange(perturb.n_shuffled, perturb.out_dim)
        rel = np.concatenate([rel, np.broadcast_to(noise, (rel.shape[0], noise.size))], axis=1)
    return rel
