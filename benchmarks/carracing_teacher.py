"""How well the privileged CarRacing teacher drives: its returns on held-out tracks.

The teacher (:class:`tasks.teachers.CarRacingPursuit`) reads the env's track and the car's
body, never the pixels. It drives every episode through the one episode loop exactly as in
the first DAgger iteration (a driver over a student that only watches), on stock Gymnasium
``CarRacing-v3``. Settings of the teacher can be changed from the command line, and
``--noise`` jitters the steering it executes as in training (DART). A lap ends the episode
early; an episode of 1,000 steps did not finish its lap in CarRacing-v3's time limit. Usage::

    python benchmarks/carracing_teacher.py [--episodes 8] [--set lateral_accel=150 ...]
        [--noise 0.2] [--json PATH]   # PATH: one JSON line appended per call
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from evolve.seeds import test_seeds
from evolve.training.distill import ControllerTeacher, TeacherJitter, teacher_episodes
from sensoryneuron.files import append_json_line
from sensoryneuron.models import VisionAttentionNeuronModel
from tasks.spec import get_task
from tasks.teachers import CarRacingPursuit

CAR = "CarRacing-v3"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--seed-offset", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE")
    parser.add_argument("--noise", type=float, default=0.0, help="steering noise (DART)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    settings = {k: float(v) for k, v in (item.split("=", 1) for item in args.set)}
    spec = get_task(CAR)
    teacher = ControllerTeacher(CarRacingPursuit(**settings), spec.action)
    seeds = test_seeds(args.episodes, args.seed_offset)
    watcher = VisionAttentionNeuronModel(head="pool", hidden=8)  # only watches: the teacher drives
    start = time.perf_counter()
    noise = (args.noise, 0.0, 0.0) if args.noise else ()
    rng = np.random.default_rng(args.seed_offset)
    result = teacher_episodes(teacher, CAR, seeds, watcher, jitter=TeacherJitter(rng, noise))
    returns, steps = result.returns[0], result.steps[0]
    laps = int((steps < spec.max_steps).sum())
    print(
        f"CarRacingPursuit({', '.join(f'{k}={v:g}' for k, v in settings.items())}), "
        f"noise {args.noise:g}: {returns.mean():.1f} +- {returns.std():.1f} over {len(seeds)} "
        f"held-out tracks (min {returns.min():.1f}), {steps.mean():.0f} steps on average, "
        f"{laps} laps finished in time, {time.perf_counter() - start:.0f} s"
    )
    if args.json:
        row = {
            "settings": settings,
            "noise": args.noise,
            "seeds": seeds,
            "returns": returns.round(1).tolist(),
            "steps": steps.tolist(),
            "mean": round(float(returns.mean()), 1),
            "laps_finished": laps,
        }
        append_json_line(args.json, row)


if __name__ == "__main__":
    main()
