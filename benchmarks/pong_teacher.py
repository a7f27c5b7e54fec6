"""How well a privileged Pong teacher plays: its score over full games, and its speed.

The teachers (``--teacher``: ``pong-planner``, :class:`tasks.teachers.PongPlanner`, which
searches plans on copies of the emulator; ``pong-interceptor``,
:class:`tasks.teachers.PongInterceptor`, which aims the paddle at the ball's predicted
meeting point every step; ``pong-aimer``, :class:`tasks.teachers.PongAimer`, the interceptor
choosing where on the paddle to meet each ball by trying each choice on a copy) read the
emulator, never the pixels. A teacher plays whole games of ``ALE/Pong-v5`` as the task
prepares it (frame skip 4, sticky actions 0.25) on held-out seeds, through the one episode
loop exactly as in the first DAgger iteration (a driver over a small student that only
watches), on stock Gymnasium; the speed counts the watcher too.
Each run appends a JSON line to ``benchmarks/results/pong_teacher.jsonl``. Usage::

    python benchmarks/pong_teacher.py [--teacher pong-planner] [--games 2] [--set NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from evolve.seeds import test_seeds
from evolve.training.distill import ControllerTeacher, teacher_episodes
from sensoryneuron.files import append_json_line
from sensoryneuron.models import VisionAttentionNeuronModel
from tasks.spec import get_task
from tasks.teachers import TEACHERS, make_teacher

PONG = "ALE/Pong-v5"
RESULTS = Path(__file__).parent / "results" / "pong_teacher.jsonl"
log = logging.getLogger("pong_teacher")


def play(
    name: str, seeds: list[int], options: dict[str, float]
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """Games of teacher ``name`` from ``seeds``, side by side: their scores (ours minus
    theirs) and agent steps, the teacher's searches, and the seconds they took."""
    spec = get_task(PONG)
    planner = make_teacher(name, PONG, options)
    teacher = ControllerTeacher(planner, spec.action)
    watcher = VisionAttentionNeuronModel(  # only watches: the teacher drives
        act_dim=6, grid=4, msg_dim=8, head="pool", hidden=8, output="logits"
    )
    start = time.perf_counter()
    result = teacher_episodes(teacher, PONG, seeds, watcher)
    return result.returns[0], result.steps[0], planner.searches, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--teacher", default="pong-planner", choices=sorted(n for n in TEACHERS if "pong" in n)
    )
    parser.add_argument("--games", type=int, default=2)
    parser.add_argument("--seed-offset", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    options = {k: _number(v) for k, v in (item.split("=", 1) for item in args.set)}
    seeds = test_seeds(args.games, args.seed_offset)
    scores, steps, searches, seconds = play(args.teacher, seeds, options)
    games = [
        {"seed": seed, "score": float(score), "steps": int(n)}
        for seed, score, n in zip(seeds, scores, steps, strict=True)
    ]
    for game in games:
        log.info("[game] seed %d: %+.0f in %d steps", game["seed"], game["score"], game["steps"])
    steps_per_s = float(steps.sum()) / seconds
    log.info(
        "%s(%s): %.1f +- %.1f over %d games (min %+.0f), %.0f steps/s",
        args.teacher,
        ", ".join(f"{k}={v}" for k, v in options.items()),
        scores.mean(),
        scores.std(),
        len(games),
        scores.min(),
        steps_per_s,
    )
    record = {
        "teacher": args.teacher,
        "options": options,
        "games": games,
        "searches": searches,
        "seconds": round(seconds, 1),
        "loop": "evolve.rollout.episodes, games side by side",
        "mean_score": float(scores.mean()),
        "steps_per_s": round(steps_per_s, 1),
        "sticky_actions": 0.25,
    }
    append_json_line(RESULTS, record)


def _number(text: str) -> float:
    """An option's value: an int where it is one (``max_moves=8``), else a float."""
    return float(text) if any(c in text for c in ".eE") else int(text)


if __name__ == "__main__":
    main()
