"""Does a committee of CarRacing students drive better than its members? Outputs averaged.

Students fitted to the same teacher differ by their seeds by 60-110 points over 50 tracks,
and each loses most of its points on the few tracks where it spins off. If their mistakes
differ, the mean of their outputs may make fewer. This plays held-out tracks of stock
Gymnasium ``CarRacing-v3`` (patches shuffled at reset) through the one episode loop, with
the K students (one architecture) as its K members, and a driver that executes the mean of
their outputs in every member's env: the K copies of a track play the same actions, so they
stay one drive (checked: every member's return is the same). Each student keeps its own
state and reads the executed mean as its previous action. Usage::

    python benchmarks/carracing_committee.py A.npz B.npz [C.npz ...] [--episodes 50]
        [--seed-offset 5000] [--json PATH]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import sensoryneuron as sn
from evolve.logs import console
from evolve.rollout import StepView, batched_task, episodes
from evolve.seeds import test_seeds
from sensoryneuron.files import append_json_line
from tasks.perturbations import Perturbations
from tasks.spec import get_task

CAR = "CarRacing-v3"


def committee_returns(
    students: list[sn.Policy], seeds: list[int], max_steps: int | None = None
) -> np.ndarray:
    """The committee's return on each track of ``seeds``: ``[len(seeds)]``."""
    model = students[0].model
    if any(s.model != model for s in students):
        raise SystemExit("the students of a committee must share one architecture")
    spec = get_task(CAR)
    shuffled = Perturbations(shuffle=True)

    def mean_of_members(view: StepView) -> np.ndarray:
        assert view.output is not None
        return np.broadcast_to(view.output.mean(0, keepdims=True), view.output.shape).copy()

    result = episodes(
        model,
        torch.tensor(np.stack([s.params for s in students])),
        batched_task(CAR, "gym", shuffled),
        shuffled,
        seeds,
        action_map=spec.action,
        max_steps=max_steps,
        driver=mean_of_members,
        observation=spec.observation,
    )
    returns = np.asarray(result.returns)  # [K, B]
    if not np.allclose(returns, returns[:1], atol=1e-6):
        raise SystemExit("the members' copies of a track drove apart: not one committee")
    return returns[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("students", nargs="+", help="policy files (.npz) of one architecture")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed-offset", type=int, default=5000)
    parser.add_argument("--max-steps", type=int, help="cut every track short (a smoke test)")
    parser.add_argument("--json", metavar="PATH", help="append one JSON line with the returns")
    args = parser.parse_args()
    torch.set_num_threads(1)
    students = [sn.load_policy(path) for path in args.students]
    started = time.perf_counter()
    with console():
        seeds = test_seeds(args.episodes, args.seed_offset)
        returns = committee_returns(students, seeds, args.max_steps)
    row = {
        "students": args.students,
        "episodes": args.episodes,
        "seed_offset": args.seed_offset,
        "mean": round(float(returns.mean()), 1),
        "std": round(float(returns.std()), 1),
        "returns": [round(float(r), 1) for r in returns],
        "minutes": round((time.perf_counter() - started) / 60, 1),
    }
    print(
        f"committee of {len(students)}: {row['mean']} +- {row['std']} over {args.episodes} tracks"
    )
    if args.json:
        append_json_line(args.json, row)


if __name__ == "__main__":
    main()
