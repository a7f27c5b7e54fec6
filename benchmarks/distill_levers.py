"""One variant of a training recipe a run, trained and scored on held-out episodes.

A task's levers script (``carracing_levers.py``, ``pong_levers.py``) names its variants: each
is the task's preset with some sections replaced (a dict of :meth:`TaskPreset.replace`
arguments). :func:`main` trains one with ``evolve train``'s own code
(:func:`evolve.training.loop.train`) under a time budget, then scores the student the
distillation kept (``best.npz``, picked on its held-out validation tests) and the last one
(``latest.npz``) on held-out episodes of stock Gymnasium (seeds from ``--seed-offset``, never
seen in training or validation); a variant with an evolution stage, that stage's instead.
One JSON line per run is appended to the script's results file. ``--from RUN`` starts a
variant from another run's finished distillation, so that one that changes only the
evolution stage trains that stage alone, and one with more iterations continues it.
``--teacher RUN`` starts a staged variant from a finished run of its teacher recipe.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import time
from pathlib import Path

from evolve.backends import LocalBackend
from evolve.evaluation.conditions import Condition
from evolve.evaluation.evaluate import evaluate_policy
from evolve.logs import console
from evolve.presets import TaskPreset, get_preset
from evolve.training.loop import train
from evolve.training.run_folder import load_state, read_config, write_config
from sensoryneuron.checkpoints import load_policy
from sensoryneuron.files import append_json_line
from tasks.perturbations import Perturbations


def link_distillation(source: Path, run: Path, preset: TaskPreset) -> TaskPreset:
    """A new run folder ``run`` whose distillation is ``source``'s, finished: its state and
    students copied, its recorded episodes hard-linked (no copy, and the new run's chunks
    never land in ``source``), and its trained teacher, if it has one, copied as by
    :func:`link_teacher`. Resuming it runs the later stages, or the distillation's further
    iterations where ``preset`` has more than ``source`` ran. Returns ``preset`` as the new
    run records it."""
    if run.exists():
        raise SystemExit(f"{run} exists: --from makes a new run folder")
    stage = source / "distill"
    if not (stage / "state.npz").exists():
        raise SystemExit(f"{source} holds no distillation")
    (run / "distill").mkdir(parents=True)
    for name in ("state.npz", "best.npz", "latest.npz", "log.csv"):
        shutil.copy2(stage / name, run / "distill" / name)
    shutil.copytree(stage / "data", run / "distill" / "data", copy_function=os.link)
    if preset.teacher is not None and (source / "teacher" / "state.npz").exists():
        preset = _take_teacher(source / "teacher", run, preset)
    write_config(run, preset, {"distillation_from": str(source)})
    return preset


def link_teacher(source: Path, run: Path, preset: TaskPreset) -> TaskPreset:
    """A new run folder ``run`` whose teacher stage is ``source``, a run of the teacher
    recipe (its files copied into ``run/teacher``). Returns ``preset`` with the teacher's
    generations set to the ones ``source`` ran, as the new run records it: resuming ``run``
    counts the teacher as done and starts with the distillation."""
    if run.exists():
        raise SystemExit(f"{run} exists: --teacher makes a new run folder")
    if preset.teacher is None:
        raise SystemExit("--teacher: the variant has no trained teacher stage")
    if not (source / "state.npz").exists() or not (source / "best.npz").exists():
        raise SystemExit(f"{source} holds no trained run (no state.npz and best.npz)")
    preset = _take_teacher(source, run, preset)
    write_config(run, preset, {"teacher_from": str(source)})
    return preset


def _take_teacher(teacher_run: Path, run: Path, preset: TaskPreset) -> TaskPreset:
    """``teacher_run`` copied into ``run/teacher``; ``preset`` with the teacher's generations
    set to the ones that run ran."""
    generations = load_state(teacher_run)[0].generation
    shutil.copytree(teacher_run, run / "teacher", ignore=shutil.ignore_patterns(".lock"))
    return preset.replace(teacher={"training": {"generations": generations}})


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
    parser.add_argument(
        "--student-seed",
        type=int,
        help="distill.student_seed: another student from the same episodes (with "
        "--episodes-from a run of the same variant and seed, only its fit runs)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", help=f"run folder (default runs/{runs_prefix}-VARIANT-sSEED)")
    parser.add_argument("--resume", metavar="RUN", help="continue this run folder")
    parser.add_argument("--score-only", action="store_true", help="only score the run's students")
    parser.add_argument(
        "--from",
        dest="start_from",
        metavar="RUN",
        help="start from RUN's finished distillation (its episodes hard-linked, not copied): "
        "a variant that changes only the evolution stage runs that stage alone; one with more "
        "distillation iterations goes on with them",
    )
    parser.add_argument(
        "--teacher",
        dest="teacher_from",
        metavar="RUN",
        help="a staged variant: take RUN (a run of the teacher recipe) as its finished teacher "
        "stage, copied into the new run folder (--minutes counts RUN's time too)",
    )
    parser.add_argument(
        "--episodes-from",
        metavar="RUN",
        help="take RUN's recorded episodes for the iterations its scripted teacher drove "
        "whole, where RUN collected them as the variant would: only the fit runs",
    )
    args = parser.parse_args()

    preset = get_preset(task).replace(**variants[args.variant])
    preset = preset.replace(training={"seed": args.seed})
    name = f"runs/{runs_prefix}-{args.variant}-s{args.seed}"
    if args.student_seed is not None:
        preset = preset.replace(distill={"student_seed": args.student_seed})
        name += f"-student{args.student_seed}"
    run = Path(args.resume or args.out or name)
    backend = LocalBackend(args.workers)
    started = time.perf_counter()
    resume = args.resume is not None
    if args.start_from and args.teacher_from:
        raise SystemExit("--from takes its source's teacher: give --from or --teacher")
    if resume and preset.teacher is not None:
        # a run started with --from or --teacher: its teacher ran what its config says
        preset = preset.replace(teacher=read_config(run)[0].teacher)
    elif args.start_from and not args.score_only:
        preset = link_distillation(Path(args.start_from), run, preset)
        resume = True
    elif args.teacher_from and not args.score_only:
        preset = link_teacher(Path(args.teacher_from), run, preset)
        resume = True
    if not args.score_only:
        with console():
            result = train(
                preset,
                run,
                resume=resume,
                backend=backend,
                final_episodes=0,
                progress=False,
                time_budget=args.minutes,
                episodes_from=args.episodes_from,
            )
        if result.interrupted:
            raise SystemExit(f"interrupted: resume with --resume {run}")
    trained_min = (time.perf_counter() - started) / 60
    conditions = [Condition("shuffled", Perturbations(shuffle=True))]
    if not preset.perturbations.shuffle:
        conditions.insert(0, Condition("true order", preset.perturbations))
    row = {
        "variant": args.variant,
        "overrides": variants[args.variant],
        "seed": args.seed,
        "run": str(run),
    }
    if args.student_seed is not None:
        row["student_seed"] = args.student_seed
    if args.episodes_from:
        row["episodes_from"] = args.episodes_from
    if preset.distill is not None:
        with (run / "distill" / "log.csv").open() as f:
            log = [
                {k: float(v) if v else math.nan for k, v in r.items()} for r in csv.DictReader(f)
            ]
        row["iterations"] = int(log[-1]["iteration"])
        row["distill_minutes"] = round(log[-1]["wall_time_s"] / 60, 1)
        row["validation_tests"] = [
            [int(r["iteration"]), round(r["test_score"], 1)]
            for r in log
            if math.isfinite(r["test_score"])
        ]
    row["held_out_seed_offset"] = args.seed_offset
    students = [("best", run / "distill" / "best.npz"), ("latest", run / "distill" / "latest.npz")]
    if preset.training.generations > 0:  # and the evolution stage's, picked by its own tests
        students = [("evolved-best", run / "best.npz"), ("evolved-latest", run / "latest.npz")]
        row["evolution_tests"] = [
            [int(r["generation"]) + 1, round(float(r["test_score"]), 1)]  # 0-based in the log
            for r in csv.DictReader((run / "log.csv").open())
            if r["test_score"] and math.isfinite(float(r["test_score"]))
        ]
    for name, path in students:
        policy = load_policy(path)
        if name == "latest" and policy.info.get("iteration") == row["best"]["iteration"]:
            break  # the same student
        if name == "evolved-latest" and policy.info.get("generation") == row["evolved-best"].get(
            "generation"
        ):
            break
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
            "generation": policy.info.get("generation"),
            **{
                r["condition"]: {"mean": round(r["mean"], 1), "std": round(r["std"], 1)}
                for r in results
            },
            "episodes": args.episodes,
            "minutes": round((time.perf_counter() - t0) / 60, 1),
        }
        print(f"{args.variant} {name}: {row[name]}", flush=True)
    row["wall_minutes"] = round(trained_min, 1)
    append_json_line(results_file, row, default=repr)
    print(json.dumps(row, default=repr))
