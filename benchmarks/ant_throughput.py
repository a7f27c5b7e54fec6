"""Ant-v5 env steps per second through the engine, with the batched policy, gym against envpool.

One run compares, for the ``ant`` (AttentionNeuron, 2,504 parameters, inputs shuffled) and
``ant-fnn`` (feed-forward, true order) presets' models: a population of ``--popsize``
random-weight members, one episode each (the same seed), capped at ``--steps`` steps, on
the ``gym`` engine (a pool of Gymnasium envs) and the ``envpool`` engine (envpool's C++
envs), with 1 and 2 worker processes (:class:`evolve.backends.LocalBackend`). Steps are
counted while an episode is live (a fallen ant ends its own). The 1-minute load average
is printed beside each row: a busy machine slows every row. Usage::

    python benchmarks/ant_throughput.py [--popsize 64] [--steps 300] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from evolve.backends import LocalBackend
from evolve.presets import get_preset
from evolve.rollout import EpisodeJob


def measure(preset_name: str, engine: str, workers: int, popsize: int, steps: int) -> dict:
    preset = get_preset(preset_name)
    params = np.random.default_rng(0).normal(0.0, 0.1, (popsize, preset.model.num_params))
    job = EpisodeJob(
        model=preset.model.to_dict(),
        env_id=preset.env_id,
        perturbations=preset.perturbations.to_dict(),
        seeds=(1,),
        engine=engine,
        max_steps=steps,
    )
    backend = LocalBackend(workers)
    try:
        backend.evaluate(job, params[:2].astype(np.float32))  # workers and envs started
        started = time.perf_counter()
        result = backend.evaluate(job, params.astype(np.float32))
        wall = time.perf_counter() - started
    finally:
        backend.close()
    return {
        "preset": preset_name,
        "engine": engine,
        "workers": workers,
        "member_steps": result.member_steps,
        "seconds": round(wall, 2),
        "steps_per_s": round(result.member_steps / wall),
        "load_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--popsize", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for preset in ("ant-fnn", "ant"):
        for engine in ("gym", "envpool"):
            for workers in (1, 2):
                row = measure(preset, engine, workers, args.popsize, args.steps)
                rows.append(row)
                print(
                    f"{preset:8s} {engine:8s} {workers} worker(s): {row['steps_per_s']:6d} "
                    f"steps/s ({row['member_steps']} steps in {row['seconds']} s, load "
                    f"{row['load_1min']})",
                    flush=True,
                )
    if args.json:
        payload = {"popsize": args.popsize, "steps": args.steps, "rows": rows}
        args.json.write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
