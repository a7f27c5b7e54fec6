"""One variant of a distillation recipe a run, trained and scored on held-out episodes.

A task's levers script (``carracing_levers.py``, ``pong_levers.py``) names its variants: each
is the task's preset with some sections replaced (a dict of :meth:`TaskPreset.replace`
arguments). :func:`main` trains one with ``evolve train``'s own code
(:func:`evolve.training.loop.train`) under a time budget, then scores the student the
distillation kept (``best.npz``, picked on its held-out validation tests) and the last one
(``latest.npz``) on held-out episodes of stock Gymnasium (seeds from ``--seed-offset``, never
seen in training or validation). One JSON line per run is appended to the script's results
file.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

from evolve.backends import LocalBackend
from evolve.evaluation.conditions import Condition
from evolve.evaluation.evaluate import evaluate_policy
from evolve.logs import console
from evolve.presets import get_preset
from evolve.training.loop import train
from sensoryneuron.checkpoints import load_policy
from tasks.perturbations import Perturbations


def main(
    task: str,
    variants: dict[str, dict],
    results_file: Path,
    description: str,
    episodes: int,
    runs_prefix: str,
) -> None:
    """Parses the command line, then trains and scores the variant it names (its run folder
    by default ``runs/{runs_prefix}-VARIANT-sSEED``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("variant", choices=sorted(variants))
    parser.add_argument("--minutes", type=float, default=40.0, help="training time budget")
    parser.add_argument(
        "--episodes", type=int, default=episodes, help="held-out episodes to score on"
    )
    parser.add_argument("--seed-offset", type=int, default=5000, help="first held-out seed")
    parser.add_argument("--seed", type=int, default=0, help="the recipe's master seed")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", help=f"run folder (default runs/{runs_prefix}-VARIANT-sSEED)")
    parser.add_argument("--resume", metavar="RUN", help="continue this run folder")
    parser.add_argument("--score-only", action="store_true", help="only score the run's students")
    args = parser.parse_args()

    preset = get_preset(task).replace(**variants[args.variant])
    preset = preset.replace(training={"seed": args.seed})
    run = Path(args.resume or args.out or f"runs/{runs_prefix}-{args.variant}-s{args.seed}")
    backend = LocalBackend(args.workers)
    started = time.perf_counter()
    if not args.score_only:
        with console():
            result = train(
                preset,
                run,
                resume=args.resume is not None,
                backend=backend,
                final_episodes=0,
                progress=False,
                time_budget=args.minutes,
            )
        if result.interrupted:
            raise SystemExit(f"interrupted: resume with --resume {run}")
    trained_min = (time.perf_counter() - started) / 60
    with (run / "distill" / "log.csv").open() as f:
        log = [{k: float(v) if v else math.nan for k, v in r.items()} for r in csv.DictReader(f)]
    conditions = [Condition("shuffled", Perturbations(shuffle=True))]
    if not preset.perturbations.shuffle:
        conditions.insert(0, Condition("true order", preset.perturbations))
    row = {
        "variant": args.variant,
        "overrides": variants[args.variant],
        "seed": args.seed,
        "run": str(run),
        "iterations": int(log[-1]["iteration"]),
        "distill_minutes": round(log[-1]["wall_time_s"] / 60, 1),
        "validation_tests": [
            [int(r["iteration"]), round(r["test_score"], 1)]
            for r in log
            if math.isfinite(r["test_score"])
        ],
        "held_out_seed_offset": args.seed_offset,
    }
    for name in ("best", "latest"):
        policy = load_policy(run / "distill" / f"{name}.npz")
        if name == "latest" and policy.info.get("iteration") == row["best"]["iteration"]:
            break  # the same student
        t0 = time.perf_counter()
        results = evaluate_policy(
            policy,
            preset.env_id,
            conditions,
            args.episodes,
            seed_offset=args.seed_offset,
            backend=backend,
            engine="gym",
        )
        row[name] = {
            "iteration": policy.info.get("iteration"),
            **{
                r["condition"]: {"mean": round(r["mean"], 1), "std": round(r["std"], 1)}
                for r in results
            },
            "episodes": args.episodes,
            "minutes": round((time.perf_counter() - t0) / 60, 1),
        }
        print(f"{args.variant} {name}: {row[name]}", flush=True)
    row["wall_minutes"] = round(trained_min, 1)
    results_file.parent.mkdir(parents=True, exist_ok=True)
    with results_file.open("a") as f:
        f.write(json.dumps(row, default=repr) + "\n")
    print(json.dumps(row, default=repr))
