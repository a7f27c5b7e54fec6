"""CarRacing through the whole rollout: env, frame preparation and the batched vision policy.

In one run:

1. ``rollout``: :func:`evolve.rollout.episodes` (the one episode loop) with the published
   ``carracing_pi`` model (or, where ``../shared/reference`` is absent, the same architecture
   with random weights) and with the ``carracing`` preset's pool-head student (random
   weights), patches shuffled, ``--episodes`` episodes of ``--steps`` steps, on
   the ``gym`` engine and on the ``envpool`` engine: env steps per second (wall and CPU);
2. ``policy``: the vision model alone, forward cost per frame at batch sizes 1, 16 and 64,
   for the published head and for the ``pool`` head of the ``carracing`` preset.

Both wall and CPU time (every thread of this process) are reported; on a shared machine
the CPU time is the steadier figure. Usage::

    python benchmarks/carracing_rollout.py [--episodes 8] [--steps 300] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

import sensoryneuron as sn
from evolve.rollout import batched_task, episodes
from sensoryneuron.models import VisionAttentionNeuronModel
from tasks.perturbations import Perturbations
from tasks.spec import get_task

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "carracing_pi.npz"
CAR = "CarRacing-v3"


def reference_or_random() -> tuple[sn.Policy, str]:
    if REFERENCE.is_file():
        return sn.load_reference_policy(REFERENCE, name="carracing_pi"), "carracing_pi.npz"
    model = VisionAttentionNeuronModel()
    params = 0.1 * np.random.default_rng(0).standard_normal(model.num_params)
    return sn.Policy(model, params, action=get_task(CAR).action), "random weights"


def time_rollout(policy: sn.Policy, engine: str, episodes_: int, steps: int) -> dict:
    spec = get_task(CAR)
    shuffled = Perturbations(shuffle=True)
    task = batched_task(CAR, engine, shuffled)
    seeds = list(range(episodes_))
    params = torch.from_numpy(policy.params.copy())[None]
    wall, cpu = time.perf_counter(), time.process_time()
    result = episodes(
        policy.model,
        params,
        task,
        shuffled,
        seeds,
        action_map=policy.action,
        max_steps=steps,
        observation=spec.observation,
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    env_steps = result.member_steps
    return {
        "engine": engine,
        "episodes": episodes_,
        "env_steps": env_steps,
        "wall_s": wall,
        "cpu_s": cpu,
        "steps_per_s": env_steps / wall,
        "steps_per_cpu_s": env_steps / cpu,
        "mean_return": float(result.returns.mean()),
    }


def time_policy(model: VisionAttentionNeuronModel, batch: int, repeats: int = 5) -> dict:
    params = 0.1 * torch.randn(1, model.num_params, generator=torch.Generator().manual_seed(0))
    weights = model.prepare(params)
    x = torch.rand(1, batch, 256, model.patch_size)
    state = model.init_state(1, batch)
    with torch.no_grad():
        model.step_prepared(weights, x, state)  # warm-up
        wall = time.perf_counter()
        for _ in range(repeats):
            model.step_prepared(weights, x, state)
        wall = (time.perf_counter() - wall) / repeats
    return {"head": model.head, "batch": batch, "ms_per_frame": 1000 * wall / batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    published, source = reference_or_random()
    student = VisionAttentionNeuronModel(head="pool", hidden=32)  # the carracing preset's
    agents = {
        f"{source} (top-k head)": published,
        "the carracing student (pool head, random weights)": sn.Policy(
            student,
            0.1 * np.random.default_rng(0).standard_normal(student.num_params),
            action=get_task(CAR).action,
        ),
    }
    rows = []
    for name, policy in agents.items():
        pair = [time_rollout(policy, e, args.episodes, args.steps) for e in ("gym", "envpool")]
        print(f"rollout of {name}, patches shuffled, {args.episodes} episodes x {args.steps} steps")
        for r in pair:
            r["agent"] = name
            print(
                f"  {r['engine']:<8} {r['steps_per_s']:7.0f} steps/s  {r['steps_per_cpu_s']:7.0f} "
                f"steps/CPU-s  (mean return {r['mean_return']:.1f})"
            )
        ratio = pair[1]["steps_per_cpu_s"] / pair[0]["steps_per_cpu_s"]
        print(f"  envpool / gym: {ratio:.1f}x per CPU-s")
        rows += pair
    policies = []
    for head in ("top-k", "pool"):
        model = VisionAttentionNeuronModel(head=head, hidden=16 if head == "top-k" else 32)
        for batch in (1, 16, 64):
            policies.append(time_policy(model, batch))
    print(f"policy forward, float32, {torch.get_num_threads()} torch threads")
    for r in policies:
        print(f"  head {r['head']:<6} batch {r['batch']:>3}: {r['ms_per_frame']:6.2f} ms/frame")
    if args.json:
        payload = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "load_avg": os.getloadavg(),
            "published": source,
            "rollout": rows,
            "policy": policies,
        }
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
