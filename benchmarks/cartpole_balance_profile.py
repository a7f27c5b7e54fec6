"""Where does a cart-pole agent lose its score? Failures, swing-up, or the balance phase.

A mean return on CartPoleSwingUpHarder mixes three things: episodes that end early (the cart
leaves the track), how fast the pole gets up, and how still it stays up. This script plays
held-out episodes and separates them. For each agent it prints:

- the failure rate (episodes that end before 1000 steps) and their mean length;
- the mean return of the episodes that survive;
- the mean reward per step, in segments of the episode, over surviving episodes;
- over steps 400-1000 of each surviving episode, the mean cos(theta), and the fraction of
  surviving episodes that hold the pole still (that mean at least 0.95).

A feed-forward agent reads its inputs in their true order; an AttentionNeuron agent reads
them shuffled at reset (``--reshuffle T`` also reshuffles every T steps). Usage::

    python benchmarks/cartpole_balance_profile.py [AGENT ...] [--reference PATH]
        [--episodes 300] [--seed-offset 5000] [--reshuffle T] [--json FILE]

AGENT is a shipped name, a ``.npz`` checkpoint or a run folder (default: the shipped
``fnn-baseline`` and ``cartpole-swingup-harder``); ``--reference`` adds the published
``cartpole_pi.npz``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

import sensoryneuron as sn
from evolve.rollout import Observer, StepView, episodes
from evolve.seeds import test_seeds
from sensoryneuron.errors import SensoryNeuronError
from sensoryneuron.files import atomic_write_text
from sensoryneuron.models import FeedForwardModel
from sensoryneuron.policy import Policy
from tasks.perturbations import Perturbations
from tasks.spec import get_task

ENV_ID = "SensoryNeuron/CartPoleSwingUpHarder-v0"
SEGMENTS = ((0, 100), (100, 200), (200, 300), (300, 400), (400, 600), (600, 800), (800, 1000))
BALANCE_FROM = 400  # steps from which a surviving episode is in its balance phase
STILL_COS = 0.95  # mean cos(theta) over the balance phase that counts as holding it still
X, COS = 0, 2  # columns of the true observation [x, x_dot, cos, sin, theta_dot]


class BalanceRecorder(Observer):
    """Records, per step and episode of member 0, the reward and the pole angle and cart
    position that the step led to: ``[T, E]`` arrays (0 where the loop stopped early)."""

    def __init__(self, steps: int, episodes: int) -> None:
        self.reward = np.zeros((steps, episodes))
        self.cos = np.zeros((steps, episodes))
        self.x = np.zeros((steps, episodes))

    def on_step(self, view: StepView) -> None:
        self.reward[view.t] = view.reward[0]  # already 0 after an episode's end
        self.cos[view.t] = view.next_raw[0, :, COS]
        self.x[view.t] = view.next_raw[0, :, X]


def play(policy: Policy, perturbations: Perturbations, seeds: list[int]) -> dict[str, np.ndarray]:
    """One episode per seed: per-step reward (0 after the end), cos(theta) and x, ``[T, E]``."""
    spec = get_task(ENV_ID)
    task = spec.make_batched()
    recorder = BalanceRecorder(task.max_steps, len(seeds))
    result = episodes(
        policy.model,
        torch.from_numpy(policy.params.copy())[None],
        task,
        perturbations,
        seeds,
        action_map=policy.action,
        observers=[recorder],
        observation=spec.observation,
    )
    return {
        "reward": recorder.reward,
        "cos": recorder.cos,
        "x": recorder.x,
        "length": result.steps[0],
    }


def profile(policy: Policy, perturbations: Perturbations, seeds: list[int]) -> dict[str, Any]:
    """The summary figures of :func:`play` (see the module docstring)."""
    run = play(policy, perturbations, seeds)
    steps = run["reward"].shape[0]
    returns = run["reward"].sum(axis=0)
    ok = run["length"] == steps
    balance_cos = run["cos"][BALANCE_FROM:, ok].mean(axis=0)
    return {
        "episodes": len(seeds),
        "mean_return": float(returns.mean()),
        "failure_rate": float(1.0 - ok.mean()),
        "failure_mean_steps": float(run["length"][~ok].mean()) if (~ok).any() else None,
        "survivor_mean_return": float(returns[ok].mean()) if ok.any() else None,
        "survivor_reward_per_step": {
            f"{a}-{b}": float(run["reward"][a:b, ok].mean()) if ok.any() else None
            for a, b in SEGMENTS
        },
        "balance_mean_cos": float(balance_cos.mean()) if ok.any() else None,
        "balance_mean_abs_x": float(np.abs(run["x"][BALANCE_FROM:, ok]).mean())
        if ok.any()
        else None,
        "held_still": float((balance_cos >= STILL_COS).mean()) if ok.any() else None,
    }


def _condition(policy: Policy, reshuffle: int | None) -> Perturbations:
    if isinstance(policy.model, FeedForwardModel):
        return Perturbations(shuffle=False)
    return Perturbations(shuffle=True, reshuffle_every=reshuffle)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("agents", nargs="*", default=["fnn-baseline", "cartpole-swingup-harder"])
    parser.add_argument("--reference", type=Path, help="the published cartpole_pi.npz")
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--seed-offset", type=int, default=5000)
    parser.add_argument("--reshuffle", type=int, help="also reshuffle every T steps")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be at least 1; got {args.episodes}")
    if args.reshuffle is not None and args.reshuffle < 1:
        parser.error(f"--reshuffle must be at least 1; got {args.reshuffle}")
    torch.set_num_threads(1)
    try:
        agents = [(name, sn.load_policy(name)) for name in args.agents]
        if args.reference is not None:
            agents.append((str(args.reference), sn.load_reference_policy(args.reference)))
    except SensoryNeuronError as exc:
        parser.error(str(exc))
    seeds = test_seeds(args.episodes, args.seed_offset)
    results = {}
    for name, policy in agents:
        perturbations = _condition(policy, args.reshuffle)
        row = profile(policy, perturbations, seeds)
        row["condition"] = perturbations.describe()
        results[name] = row
        segments = "  ".join(
            f"{k}:{_fmt(v, '.3f')}" for k, v in row["survivor_reward_per_step"].items()
        )
        print(f"{name} ({row['condition']}), {args.episodes} held-out episodes")
        print(
            f"  mean return {row['mean_return']:.1f} | failures {row['failure_rate']:.1%}"
            f" (mean {_fmt(row['failure_mean_steps'], '.0f')} steps)"
            f" | survivors' mean return {_fmt(row['survivor_mean_return'], '.1f')}"
        )
        print(f"  survivors' reward per step: {segments}")
        print(
            f"  steps {BALANCE_FROM}-1000 of survivors: mean cos(theta)"
            f" {_fmt(row['balance_mean_cos'], '.3f')}, mean |x| {_fmt(row['balance_mean_abs_x'], '.3f')},"
            f" pole held still (mean cos >= {STILL_COS}) in {_fmt(row['held_still'], '.1%')}"
        )
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
