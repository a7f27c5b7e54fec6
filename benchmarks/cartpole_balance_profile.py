"""Where does a cart-pole agent lose its score? Failures, swing-up, or the balance phase.

A mean return on CartPoleSwingUpHarder mixes three things: episodes that end early (the cart
leaves the track), how fast the pole gets up, and how still it stays up. This script plays
held-out episodes and separates them. For each agent it prints:

- the failure rate (episodes that end before 1000 steps) and their mean length;
- the mean return of the episodes that survive;
- the mean reward per step, in segments of the episode, over surviving episodes;
- over steps 400-1000 of each surviving episode, the mean cos(theta), and the fraction of
  surviving episodes that hold the pole still (that mean at least 0.95);
- for an AttentionNeuron whose latent one linear layer reads (the paper's), how much the
  action reads each sensor: the head's weights times the attention on the sensor's slot,
  ``sum_j w_j tanh(S)[j, slot]`` (softmax attention: ``sum_j w_j g_j softmax(S)[j, slot]``
  with the latents' gains ``g``), averaged over the same steps (and over the first 100
  steps of every episode). An agent that acts on ``x + x_dot + cos + sin +
  th_dot`` alike has not told its sensors apart.

``--env`` plays another cart-pole task, e.g. ``SensoryNeuron/CartPoleBalance-v0`` (every
episode starts near balanced).

A feed-forward agent reads its inputs in their true order; an AttentionNeuron agent reads
them shuffled at reset (``--reshuffle T`` also reshuffles every T steps). Usage::

    python benchmarks/cartpole_balance_profile.py [AGENT ...] [--reference PATH]
        [--episodes 300] [--seed-offset 5000] [--reshuffle T] [--env ID] [--json FILE]

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
from sensoryneuron.models import AttentionNeuronModel, FeedForwardModel
from sensoryneuron.policy import Policy
from tasks.perturbations import Perturbations
from tasks.spec import get_task

ENV_ID = "SensoryNeuron/CartPoleSwingUpHarder-v0"
SEGMENTS = ((0, 100), (100, 200), (200, 300), (300, 400), (400, 600), (600, 800), (800, 1000))
BALANCE_FROM = 400  # steps from which a surviving episode is in its balance phase
STILL_COS = 0.95  # mean cos(theta) over the balance phase that counts as holding it still
X, COS = 0, 2  # columns of the true observation [x, x_dot, cos, sin, theta_dot]
SENSOR_NAMES = ("x", "x_dot", "cos", "sin", "th_dot")
SENSORS = len(SENSOR_NAMES)
# the spans of the sensor weights: their JSON keys and printed labels
WEIGHT_SPANS = {
    "steps_0_100": "steps 0-100",
    f"survivors_steps_{BALANCE_FROM}_1000": f"survivors' steps {BALANCE_FROM}-1000",
}


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


class SensorWeightRecorder(Observer):
    """Records, per step and episode of member 0, how much the action reads each sensor
    through the attention: ``weight[t, b, i] = sum_j w_j A[j, slot of sensor i]``
    (``w``: :func:`head_weights`; ``A``: the attention weights), ``[T, E, 5]``."""

    attention = True

    def __init__(self, head: np.ndarray, steps: int, episodes: int) -> None:
        self.head = head  # [M]
        self.weight = np.zeros((steps, episodes, SENSORS))

    def on_act(self, view: StepView) -> None:
        per_slot = np.einsum("m,bmn->bn", self.head, view.attention[0])  # [B, N]
        sources = view.perturbation.sources()  # [B, N]: the sensor in each slot
        episode = np.arange(per_slot.shape[0])[:, None]
        np.add.at(self.weight[view.t], (episode, sources), per_slot)


def head_weights(policy: Policy) -> np.ndarray | None:
    """The linear head's weights on the attention's mixes ``[M]`` (with softmax attention,
    times each latent's gain), where the model is an AttentionNeuron whose latent one linear
    layer reads for one action; else None."""
    model = policy.model
    if not (
        isinstance(model, AttentionNeuronModel)
        and not model.hidden
        and not model.head_lstm
        and model.act_dim == 1
    ):
        return None
    prepared = model.prepare(torch.from_numpy(policy.params.astype(np.float64))[None])
    weights = prepared["out.weight"][0, 0]
    if model.attention == "softmax":
        weights = weights * prepared["latent.gain"][0]
    return weights.numpy()


def play(
    policy: Policy, perturbations: Perturbations, seeds: list[int], env_id: str = ENV_ID
) -> dict[str, np.ndarray]:
    """One episode per seed: per-step reward (0 after the end), cos(theta) and x, ``[T, E]``;
    and ``sensor_weight`` ``[T, E, 5]`` where :func:`head_weights` has the head's."""
    spec = get_task(env_id)
    task = spec.make_batched()
    recorder = BalanceRecorder(task.max_steps, len(seeds))
    observers: list[Observer] = [recorder]
    head = head_weights(policy)
    if head is not None:
        weights = SensorWeightRecorder(head, task.max_steps, len(seeds))
        observers.append(weights)
    result = episodes(
        policy.model,
        torch.from_numpy(policy.params.copy())[None],
        task,
        perturbations,
        seeds,
        action_map=policy.action,
        observers=observers,
        observation=spec.observation,
    )
    out = {
        "reward": recorder.reward,
        "cos": recorder.cos,
        "x": recorder.x,
        "length": result.steps[0],
    }
    if head is not None:
        out["sensor_weight"] = weights.weight
    return out


def profile(
    policy: Policy, perturbations: Perturbations, seeds: list[int], env_id: str = ENV_ID
) -> dict[str, Any]:
    """The summary figures of :func:`play` (see the module docstring)."""
    run = play(policy, perturbations, seeds, env_id)
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
        "sensor_weights": _sensor_weights(run, ok),
    }


def _sensor_weights(run: dict[str, np.ndarray], ok: np.ndarray) -> dict[str, Any] | None:
    """Mean sensor weights by name: steps 0-100 of every episode, 400-1000 of survivors."""
    if "sensor_weight" not in run:
        return None
    weight = run["sensor_weight"]
    first = weight[:100].mean(axis=(0, 1))
    balance = weight[BALANCE_FROM:, ok].mean(axis=(0, 1)) if ok.any() else None
    first_key, balance_key = WEIGHT_SPANS
    return {
        first_key: dict(zip(SENSOR_NAMES, first.round(3).tolist(), strict=True)),
        balance_key: None
        if balance is None
        else dict(zip(SENSOR_NAMES, balance.round(3).tolist(), strict=True)),
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
    parser.add_argument("--env", default=ENV_ID, help=f"the cart-pole task (default {ENV_ID})")
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
        row = profile(policy, perturbations, seeds, args.env)
        row["condition"] = perturbations.describe()
        results[name] = row
        segments = "  ".join(
            f"{k}:{_fmt(v, '.3f')}" for k, v in row["survivor_reward_per_step"].items()
        )
        print(f"{name} ({row['condition']}), {args.episodes} held-out episodes of {args.env}")
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
        for span, weights in (row["sensor_weights"] or {}).items():
            if weights is not None:
                listed = ", ".join(f"{k} {v:+.2f}" for k, v in weights.items())
                print(f"  sensor weights (head x attention), {WEIGHT_SPANS[span]}: {listed}")
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
