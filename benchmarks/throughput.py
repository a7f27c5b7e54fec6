"""Member-steps per second of policy + cart-pole physics for a population of 256.

Compares, in one run:

1. the batched engine (``evolve.rollout``): the whole population is one policy call and one
   vectorised physics call per step;
2. the way the original code ran: one member at a time, a ``torch.nn.Module`` policy that
   keeps its LSTM state as attributes, and a per-step Python gymnasium env.

Both play the same episodes (CartPoleSwingUp, started near hanging down, so small random
policies mostly survive the whole 1000 steps) and count only the member-steps before
termination; the batched engine keeps computing terminated members until all are done,
which only counts against it. The baseline is timed on a subset of members. Usage::

    python benchmarks/throughput.py [--popsize 256] [--steps 1000] [--baseline-members 8]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import tasks  # noqa: F401  (registers the envs)
from evolve.backends import LocalBackend
from evolve.rollout import EpisodeJob
from sensoryneuron import AttentionNeuronModel
from sensoryneuron.layers import sinusoidal_table

ENV_ID = "SensoryNeuron/CartPoleSwingUp-v0"


class ModuleAttentionNeuron(torch.nn.Module):
    """The original style: unbatched modules, recurrent state kept in attributes."""

    def __init__(self, model: AttentionNeuronModel, flat: np.ndarray) -> None:
        super().__init__()
        w = {k: v[0] for k, v in model.unflatten(torch.from_numpy(flat)[None]).items()}
        self.lstm = torch.nn.LSTMCell(1 + model.act_dim, model.pos_dim)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(self.lstm, name).data = w[f"neuron.{name}"].clone()
        bias = model.attention_bias
        self.q = torch.nn.Linear(model.pos_dim, model.msg_dim, bias=bias)
        self.k = torch.nn.Linear(model.pos_dim, model.msg_dim, bias=bias)
        self.head = torch.nn.Linear(model.num_latents, model.act_dim)
        self.q.weight.data = w["query.weight"].clone()
        self.k.weight.data = w["key.weight"].clone()
        if bias:
            self.q.bias.data, self.k.bias.data = w["query.bias"].clone(), w["key.bias"].clone()
        self.head.weight.data, self.head.bias.data = w["out.weight"].clone(), w["out.bias"].clone()
        self.register_buffer("pos", sinusoidal_table(model.num_latents, model.pos_dim))
        self.act_dim = model.act_dim
        self.hx = None
        self.prev = torch.zeros(1, model.act_dim)

    def reset(self) -> None:
        self.hx = None
        self.prev = torch.zeros(1, self.act_dim)

    def forward(self, obs: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(obs).float()[:, None]
        x = torch.cat([x, self.prev.expand(x.shape[0], -1)], dim=1)
        self.hx = self.lstm(x, self.hx)
        scores = torch.tanh(self.q(self.pos) @ self.k(self.hx[0]).T)
        latent = torch.tanh(scores @ torch.from_numpy(obs).float())
        self.prev = torch.tanh(self.head(latent))[None]
        return self.prev[0].numpy()


def run_batched(params: np.ndarray, steps: int, workers: int) -> tuple[float, int]:
    job = EpisodeJob(
        model=AttentionNeuronModel(act_dim=1).to_dict(),
        env_id=ENV_ID,
        perturbations={"shuffle": True},
        seeds=(0,),
        max_steps=steps,
    )
    with LocalBackend(workers) as backend:
        backend.evaluate(job, params[: max(workers, 2)])  # warm up the workers
        start = time.perf_counter()
        result = backend.evaluate(job, params)
        elapsed = time.perf_counter() - start
    return result.member_steps / elapsed, result.member_steps


def run_baseline(
    params: np.ndarray,
    steps: int,
    members: int,
    model: AttentionNeuronModel | None = None,
    env_id: str = ENV_ID,
    seeds: list[int] | None = None,
) -> tuple[float, int]:
    """Member-steps/s of the original way, and the steps played: member ``m`` of
    ``params`` alone on episode ``seeds[m]`` (default: seed 0 for every member)."""
    model = model or AttentionNeuronModel(act_dim=1)
    seeds = seeds or [0] * members
    env = tasks.ShuffleObservation(gym.make(env_id, max_episode_steps=steps))
    done_steps = 0
    start = time.perf_counter()
    with torch.no_grad():
        for m in range(members):
            policy = ModuleAttentionNeuron(model, params[m])
            policy.reset()
            obs, _ = env.reset(seed=seeds[m])
            while True:
                obs, _, terminated, truncated, _ = env.step(policy(obs))
                done_steps += 1
                if terminated or truncated:
                    break
    return done_steps / (time.perf_counter() - start), done_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--popsize", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--baseline-members", type=int, default=8)
    parser.add_argument("--scale", type=float, default=0.02, help="std of the random weights")
    args = parser.parse_args()

    model = AttentionNeuronModel(act_dim=1)
    rng = np.random.default_rng(0)
    # Small weights give small forces: the cart stays on the track, so (almost) every member
    # runs all its steps and both sides do the same work.
    params = (args.scale * rng.standard_normal((args.popsize, model.num_params))).astype(np.float32)
    torch.set_num_threads(1)
    baseline, _ = run_baseline(params, args.steps, args.baseline_members)
    one, counted = run_batched(params, args.steps, workers=1)
    two, _ = run_batched(params, args.steps, workers=2)
    print(
        f"population {args.popsize}, up to {args.steps} steps per member "
        f"({counted / args.popsize:.0f} on average before termination), {ENV_ID}"
    )
    print(f"  unbatched nn.Module + per-step gym env : {baseline:12,.0f} member-steps/s")
    print(f"  batched engine, 1 process             : {one:12,.0f} member-steps/s")
    print(f"  batched engine, 2 worker processes    : {two:12,.0f} member-steps/s")
    print(f"  ratio batched(1 process) / unbatched  : {one / baseline:8.1f}x")
    print(f"  ratio batched(2 workers) / unbatched  : {two / baseline:8.1f}x")


if __name__ == "__main__":
    main()
