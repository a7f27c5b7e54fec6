"""Train the Gymnasium presets with their default budgets and score them on stock Gymnasium.

For each preset (default: ``pendulum`` and ``cartpole-discrete``) this runs, as a user
would, ``evolve train NAME --out RUNS/NAME-s<seed>`` (wall-clock timed, with the load
average before and after), then ``evolve eval RUN --engine gym`` on 100 held-out episodes
under the preset's own perturbation (its reshuffles), shuffled at reset, and unshuffled.
It prints one Markdown row per preset and writes ``RUNS/train_presets.json``. The README's
"Your own Gymnasium env" figures come from this script. Usage::

    python benchmarks/train_presets.py [--presets pendulum,cartpole-discrete] [--seed 0]
        [--runs-dir runs/presets] [--workers 2] [--episodes 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from evolve.presets import get_preset
from sensoryneuron.files import atomic_write_text


def condition_of(preset_name: str) -> str:
    """The `evolve eval` condition that is the preset's own training perturbation."""
    p = get_preset(preset_name).perturbations
    if not p.shuffle:
        return "unshuffled"
    every = p.reshuffle_every
    if every is None:
        return "shuffled"
    return f"reshuffle={every[0]}-{every[1]}" if isinstance(every, tuple) else f"reshuffle={every}"


def evolve(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "evolve", *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.exit(f"evolve {' '.join(args)} failed:\n{result.stderr}")
    return result


def measure(name: str, seed: int, runs: Path, workers: int, episodes: int) -> dict:
    run = runs / f"{name}-s{seed}"
    load_before = os.getloadavg()
    started = time.perf_counter()
    evolve("train", name, "--seed", str(seed), "--workers", str(workers), "--out", str(run),
           "--no-progress")  # fmt: skip
    wall = time.perf_counter() - started
    load_after = os.getloadavg()
    conditions = [condition_of(name), "shuffled", "unshuffled"]
    out = run / "eval_gym.json"
    args = ["eval", str(run), "--engine", "gym", "--episodes", str(episodes), "--json", str(out)]
    for condition in dict.fromkeys(conditions):
        args += ["--condition", condition]
    evolve(*args, "--workers", str(workers))
    rows = json.loads(out.read_text())["conditions"]
    return {
        "preset": name,
        "seed": seed,
        "run": str(run),
        "train_seconds": wall,
        "load_before": load_before,
        "load_after": load_after,
        "scores": {r["condition"]: {"mean": r["mean"], "std": r["std"]} for r in rows},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="pendulum,cartpole-discrete")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs-dir", default="runs/presets")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args(argv)
    runs = Path(args.runs_dir)
    runs.mkdir(parents=True, exist_ok=True)
    results = []
    print("| preset | train (wall) | load avg (1 min) before / after | stock Gymnasium, "
          f"{args.episodes} held-out episodes |")  # fmt: skip
    print("|---|---|---|---|")
    for name in args.presets.split(","):
        r = measure(name, args.seed, runs, args.workers, args.episodes)
        results.append(r)
        scores = "; ".join(
            f"{c}: {s['mean']:.1f} +- {s['std']:.1f}" for c, s in r["scores"].items()
        )
        minutes, seconds = divmod(round(r["train_seconds"]), 60)
        print(f"| {name} | {minutes} min {seconds:02d} s | {r['load_before'][0]:.2f} / "
              f"{r['load_after'][0]:.2f} | {scores} |", flush=True)  # fmt: skip
    atomic_write_text(runs / "train_presets.json", json.dumps(results, indent=1) + "\n")
    print(f"wrote {runs / 'train_presets.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
