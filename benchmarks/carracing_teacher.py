"""How well the privileged CarRacing teacher drives: its returns on held-out tracks.

The teacher (:class:`tasks.teachers.CarRacingPursuit`) reads the env's track and the car's
body, never the pixels. It drives every episode through the one episode loop exactly as in
the first DAgger iteration (a driver over a student that only watches), on stock Gymnasium
``CarRacing-v3``. Settings of the teacher can be changed from the command line. Usage::

    python benchmarks/carracing_teacher.py [--episodes 8] [--set lateral_accel=150 ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from evolve.seeds import test_seeds
from evolve.training.distill import ControllerTeacher, teacher_episodes
from sensoryneuron.models import VisionAttentionNeuronModel
from tasks.spec import get_task
from tasks.teachers import CarRacingPursuit

CAR = "CarRacing-v3"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--seed-offset", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    settings = {k: float(v) for k, v in (item.split("=", 1) for item in args.set)}
    spec = get_task(CAR)
    teacher = ControllerTeacher(CarRacingPursuit(**settings), spec.action)
    seeds = test_seeds(args.episodes, args.seed_offset)
    watcher = VisionAttentionNeuronModel(head="pool", hidden=8)  # only watches: the teacher drives
    start = time.perf_counter()
    result = teacher_episodes(teacher, CAR, seeds, watcher)
    returns = result.returns[0]
    print(
        f"CarRacingPursuit({', '.join(f'{k}={v:g}' for k, v in settings.items())}): "
        f"{returns.mean():.1f} +- {returns.std():.1f} over {len(seeds)} held-out tracks "
        f"(min {returns.min():.1f}), {result.steps[0].mean():.0f} steps on average, "
        f"{time.perf_counter() - start:.0f} s"
    )
    if args.json:
        payload = {"settings": settings, "seeds": seeds, "returns": returns.tolist()}
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
