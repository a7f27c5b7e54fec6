"""How well the privileged Pong teacher plays: its score over full games, and its speed.

The teacher (:class:`tasks.teachers.PongPlanner`) searches plans on copies of the emulator,
never the pixels. It plays whole games of ``ALE/Pong-v5`` as the task prepares it (frame skip
4, sticky actions 0.25) on held-out seeds, in a plain Gymnasium loop: no student runs beside
it, so the speed is the teacher's and the emulator's. Each run appends a JSON line to
``benchmarks/results/pong_teacher.jsonl``. Usage::

    python benchmarks/pong_teacher.py [--games 2] [--set max_moves=8 ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from evolve.seeds import test_seeds
from tasks.spec import get_task
from tasks.teachers import make_teacher

PONG = "ALE/Pong-v5"
RESULTS = Path(__file__).parent / "results" / "pong_teacher.jsonl"
log = logging.getLogger("pong_teacher")


def play(seed: int, options: dict[str, int]) -> tuple[float, int, int, float]:
    """One game from ``seed``: its score (ours minus theirs), agent steps, searches, seconds."""
    spec = get_task(PONG)
    env = spec.prepare(gym.make(PONG, **spec.env_kwargs))
    env.reset(seed=seed)
    teacher = make_teacher("pong-planner", PONG, options)
    score, steps, done = 0.0, 0, False
    start = time.perf_counter()
    while not done:
        _, reward, terminated, truncated, _ = env.step(teacher.act(env.unwrapped))
        score, steps, done = score + float(reward), steps + 1, terminated or truncated
    env.close()
    return score, steps, teacher.searches, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", type=int, default=2)
    parser.add_argument("--seed-offset", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    options = {k: int(v) for k, v in (item.split("=", 1) for item in args.set)}
    seeds = test_seeds(args.games, args.seed_offset)
    games = []
    for seed in seeds:
        score, steps, searches, seconds = play(seed, options)
        games.append(
            {
                "seed": seed,
                "score": score,
                "steps": steps,
                "searches": searches,
                "seconds": round(seconds, 1),
            }
        )
        log.info(
            "[game] seed %d: %+.0f in %d steps, %d searches, %.0f steps/s",
            seed,
            score,
            steps,
            searches,
            steps / seconds,
        )
    scores = np.array([g["score"] for g in games])
    steps_per_s = sum(g["steps"] for g in games) / sum(g["seconds"] for g in games)
    log.info(
        "PongPlanner(%s): %.1f +- %.1f over %d games (min %+.0f), %.0f steps/s",
        ", ".join(f"{k}={v}" for k, v in options.items()),
        scores.mean(),
        scores.std(),
        len(games),
        scores.min(),
        steps_per_s,
    )
    record = {
        "options": options,
        "games": games,
        "mean_score": float(scores.mean()),
        "steps_per_s": round(steps_per_s, 1),
        "sticky_actions": 0.25,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
