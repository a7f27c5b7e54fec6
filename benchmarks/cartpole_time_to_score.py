"""When did the default cart-pole recipe first reach each score? Wall-clock, on this machine.

Runs ``evolve train cartpole-swingup-harder`` with default settings (or reads a finished
run with ``--run``) and puts its three stages on one clock: the feed-forward teacher, the
distillation of the AttentionNeuron, and evolution from the distilled student. For each
score level it prints the first time a held-out test of the AttentionNeuron (distillation
tests and evolution tests; the teacher's own scores are listed apart, as it is not
permutation invariant) reached that level, and it writes ``time_to_score.json`` and
``time_to_score.png`` (the whole training curve against minutes) into the run folder.

Test scores are means over the recipe's held-out test episodes (128 per test, under the
training perturbation: reshuffles every 20-200 steps); the 1,000-episode figures come from
``evolve eval RUN --paper-table DIR``. Usage::

    python benchmarks/cartpole_time_to_score.py [--run RUN_DIR] [--workers 2]
        [--levels 200,300,400,450,500,550,600]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sensoryneuron.files import atomic_write, atomic_write_text

PRESET = "cartpole-swingup-harder"
DEFAULT_LEVELS = (200, 300, 400, 450, 500, 550, 600)


def read_log(path: Path) -> list[dict[str, float]]:
    """Rows of a ``log.csv`` as floats (NaN for an empty cell)."""
    with open(path) as f:
        return [
            {k: float(v) if v != "" else float("nan") for k, v in row.items()}
            for row in csv.DictReader(f)
        ]


def timeline(run: Path) -> dict[str, list[dict[str, float]]]:
    """Each stage's tests on one clock: minutes since the run began, and the test score."""
    teacher = read_log(run / "teacher" / "log.csv")
    distill = read_log(run / "distill" / "log.csv")
    evolve = read_log(run / "log.csv")
    offsets = {"teacher": 0.0, "distill": teacher[-1]["wall_time_s"]}
    offsets["evolve"] = offsets["distill"] + distill[-1]["wall_time_s"]
    stages = {"teacher": teacher, "distill": distill, "evolve": evolve}
    out: dict[str, list[dict[str, float]]] = {}
    for name, rows in stages.items():
        out[name] = [
            {
                "minutes": (offsets[name] + row["wall_time_s"]) / 60,
                "step": row.get("generation", row.get("iteration", float("nan"))),
                "test_score": row["test_score"],
            }
            for row in rows
            if not np.isnan(row["test_score"])
        ]
    out["total_minutes"] = [{"minutes": (offsets["evolve"] + evolve[-1]["wall_time_s"]) / 60}]
    return out


def first_reached(
    points: list[dict[str, float]], levels: tuple[int, ...]
) -> dict[str, float | None]:
    reached: dict[str, float | None] = {}
    for level in levels:
        hits = [p["minutes"] for p in points if p["test_score"] >= level]
        reached[str(level)] = min(hits) if hits else None
    return reached


def plot(line: dict[str, list[dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=100)
    styles = {
        "teacher": ("feed-forward teacher (true input order)", "#999999"),
        "distill": ("AttentionNeuron: DAgger distillation", "#4c72b0"),
        "evolve": ("AttentionNeuron: PGPE from the student", "#dd8452"),
    }
    for name, (label, colour) in styles.items():
        pts = line[name]
        ax.plot(
            [p["minutes"] for p in pts],
            [p["test_score"] for p in pts],
            "o-",
            ms=3,
            label=label,
            color=colour,
        )
    ax.axhline(471, ls="--", color="#55a868", lw=1, label="paper, shuffled at reset (471)")
    ax.axhline(242, ls=":", color="#55a868", lw=1, label="paper, reshuffled every 100 steps (242)")
    ax.set_xlabel("wall-clock minutes on 2 cores")
    ax.set_ylabel("held-out test return")
    ax.set_title("cartpole-swingup-harder: training curve of the default recipe")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished run folder (default: train one now)")
    parser.add_argument("--workers", default="2")
    parser.add_argument("--levels", default=",".join(map(str, DEFAULT_LEVELS)))
    args = parser.parse_args()
    levels = tuple(int(v) for v in args.levels.split(","))
    run = args.run
    elapsed = None
    if run is None:
        run = Path("runs") / f"time-to-score-{time.strftime('%Y%m%d-%H%M%S')}"
        started = time.perf_counter()
        cmd = [
            sys.executable,
            "-m",
            "evolve",
            "train",
            PRESET,
            "--out",
            str(run),
            "--workers",
            args.workers,
            "--no-progress",
        ]
        subprocess.run(cmd, check=True)
        elapsed = time.perf_counter() - started
    line = timeline(run)
    student = line["distill"] + line["evolve"]
    result = {
        "run": str(run),
        "command_seconds": elapsed,
        "training_minutes": line["total_minutes"][0]["minutes"],
        "stage_end_minutes": {
            name: line[name][-1]["minutes"] if line[name] else None
            for name in ("teacher", "distill", "evolve")
        },
        "teacher_best": max((p["test_score"] for p in line["teacher"]), default=None),
        "first_reached_minutes": first_reached(student, levels),
        "best": max(p["test_score"] for p in student),
        "timeline": {k: v for k, v in line.items() if k != "total_minutes"},
    }
    atomic_write_text(run / "time_to_score.json", json.dumps(result, indent=1) + "\n")
    plot(line, run / "time_to_score.png")
    print(
        f"run {run}: training {result['training_minutes']:.1f} min"
        + ("" if elapsed is None else f" ({elapsed / 60:.1f} min for the whole command)")
    )
    print(f"teacher (FNN, true order) best test: {result['teacher_best']:.1f}")
    print("score  first reached (minutes)")
    for level, minutes in result["first_reached_minutes"].items():
        print(f"{level:>5}  {'not reached' if minutes is None else f'{minutes:.1f}'}")
    print(f"best AttentionNeuron test: {result['best']:.1f}")
    print(f"wrote {run / 'time_to_score.json'} and {run / 'time_to_score.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
