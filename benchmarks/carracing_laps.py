"""Where a CarRacing agent's score goes: laps, tiles, speed and time on the grass.

CarRacing-v3 pays ``1000 / N`` per road tile first visited and takes 0.1 a step, and ends an
episode at 1,000 steps whether or not the lap is done. This plays held-out tracks of stock
Gymnasium through the one episode loop (patches shuffled at reset) and reads each car
(``view.task.env``, the gym engine) at every step: the tiles it visited of the track's, the
steps it took, its mean speed and its steps with no wheel on the road. With ``--teacher``
the privileged pursuit teacher drives instead (``--set`` its settings, ``--noise`` DART
steering noise, ``--excursions`` pushes held for some steps). Usage::

    python benchmarks/carracing_laps.py runs/levers-dart-content-s0/distill/best.npz \\
        [--episodes 6] [--seed-offset 7000] [--json PATH] [--brake-below 0.1]
    python benchmarks/carracing_laps.py ../shared/reference/carracing_pi.npz --reference
    python benchmarks/carracing_laps.py --teacher [--set lateral_accel=100 ...] [--noise 0.2]
        [--noise 0.2 0.5 0.5 --correlation 0.95] [--excursions 0.004 15 1.0]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

import sensoryneuron as sn
from evolve.logs import console
from evolve.rollout import Observer, RolloutResult, StepView, batched_task, episodes
from evolve.seeds import test_seeds
from evolve.training.distill import ControllerTeacher, Excursions, TeacherJitter, teacher_episodes
from sensoryneuron.actions import ActionMap
from sensoryneuron.checkpoints import load_reference_policy
from sensoryneuron.files import append_json_line
from sensoryneuron.models import VisionAttentionNeuronModel
from tasks.perturbations import Perturbations
from tasks.spec import get_task
from tasks.teachers import CarRacingPursuit

CAR = "CarRacing-v3"


def off_road(car) -> bool:
    """Whether no wheel of ``car`` (a CarRacing car) touches a road tile."""
    return all(len(wheel.tiles) == 0 for wheel in car.wheels)


@dataclasses.dataclass(frozen=True)
class BrakeFloor(ActionMap):
    """CarRacing's action map with every brake under ``below`` set to 0 (what the policy
    reads back as its previous action too): an experiment on a student that brakes a little
    on every step, since its tanh never reaches the -1 that means no brake."""

    below: float = 0.0

    def to_env(self, output: np.ndarray) -> np.ndarray:
        action = super().to_env(output)
        brake = action[..., 2]
        action[..., 2] = np.where(brake < self.below, 0.0, brake)
        return action


def student_episodes(
    policy: sn.Policy, params: torch.Tensor, seeds, observers, brake_below: float = 0.0
) -> RolloutResult:
    """``policy``'s model with ``params`` ``[1, D]`` drives one track per seed of stock
    Gymnasium, its patches shuffled at reset, watched by ``observers``; brakes under
    ``brake_below`` are set to 0 (:class:`BrakeFloor`)."""
    spec = get_task(CAR)
    plain = Perturbations(shuffle=True)
    action_map = spec.action
    if brake_below:
        action_map = BrakeFloor("box", spec.action.low, spec.action.high, below=brake_below)
    return episodes(
        policy.model,
        params,
        batched_task(CAR, "gym", plain),
        plain,
        seeds,
        action_map=action_map,
        observers=observers,
        observation=spec.observation,
    )


def teacher_settings(items: list[str]) -> dict[str, float]:
    """``--set NAME=VALUE ...`` as the teacher's options."""
    return {k: float(v) for k, v in (item.split("=", 1) for item in items)}


class LapWatch(Observer):
    """Per episode: steps, summed speed, summed brake and steps with every wheel off the
    road."""

    def on_reset(self, view: StepView) -> None:
        batch = view.raw.shape[1]
        self.task = view.task
        self.steps = np.zeros(batch, dtype=int)
        self.speed = np.zeros(batch)
        self.brake = np.zeros(batch)
        self.grass = np.zeros(batch, dtype=int)

    def on_step(self, view: StepView) -> None:
        for b in np.flatnonzero(view.alive[0]):
            car = view.task.env(0, b).car
            self.steps[b] += 1
            self.speed[b] += float(np.hypot(*car.hull.linearVelocity))
            self.brake[b] += float(car.wheels[0].brake)
            self.grass[b] += off_road(car)

    def rows(self, returns: np.ndarray, seeds: list[int]) -> list[dict]:
        out = []
        for b, seed in enumerate(seeds):
            env = self.task.env(0, b)
            out.append(
                {
                    "seed": seed,
                    "return": round(float(returns[b]), 1),
                    "steps": int(self.steps[b]),
                    "tiles": int(env.tile_visited_count),
                    "track_tiles": len(env.track),
                    "mean_speed": round(float(self.speed[b] / max(self.steps[b], 1)), 1),
                    "mean_brake": round(float(self.brake[b] / max(self.steps[b], 1)), 3),
                    "steps_off_road": int(self.grass[b]),
                }
            )
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", nargs="?", help="a policy file or run folder")
    parser.add_argument("--teacher", action="store_true", help="the pursuit teacher drives")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--noise",
        type=float,
        nargs="+",
        default=[0.0],
        metavar="STD",
        help="the teacher's DART noise: steering, or steering gas brake (policy outputs)",
    )
    parser.add_argument(
        "--correlation", type=float, default=0.0, help="the noise's step-to-step correlation"
    )
    parser.add_argument(
        "--excursions",
        type=float,
        nargs="+",
        metavar="X",
        help="the teacher's excursions: RATE STEPS STEER [GAS BRAKE] (distill.excursion_*)",
    )
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--seed-offset", type=int, default=7000)
    parser.add_argument(
        "--brake-below",
        type=float,
        default=0.0,
        metavar="B",
        help="a student's brakes under B are set to 0 (BrakeFloor)",
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="SOURCE is the published carracing_pi.npz (the paper's file)",
    )
    parser.add_argument("--json", metavar="PATH", help="append one JSON line")
    args = parser.parse_args()
    if args.teacher == (args.source is not None):
        parser.error("give a policy SOURCE or --teacher, not both")
    if len(args.noise) not in (1, 3):
        parser.error("--noise takes one std (steering) or three (steering, gas, brake)")
    noise = tuple(args.noise) if len(args.noise) == 3 else (args.noise[0], 0.0, 0.0)
    excursions = None
    if args.excursions:
        if len(args.excursions) not in (3, 5):
            parser.error("--excursions takes RATE STEPS STEER, or RATE STEPS STEER GAS BRAKE")
        rate, steps, *push = args.excursions
        excursions = Excursions(rate, int(steps), tuple(push) + (0.0,) * (5 - len(args.excursions)))
    torch.set_num_threads(1)
    spec = get_task(CAR)
    seeds = test_seeds(args.episodes, args.seed_offset)
    watch = LapWatch()
    start = time.perf_counter()
    with console():
        if args.teacher:
            settings = teacher_settings(args.set)
            name = (
                f"teacher {settings}, noise {args.noise}"
                + (f", correlation {args.correlation:g}" if args.correlation else "")
                + (f", excursions {args.excursions}" if excursions else "")
            )
            result = teacher_episodes(
                ControllerTeacher(CarRacingPursuit(**settings), spec.action),
                CAR,
                seeds,
                VisionAttentionNeuronModel(head="pool", hidden=8),  # only watches
                jitter=TeacherJitter(
                    np.random.default_rng(args.seed_offset),
                    noise,
                    args.correlation,
                    excursions,
                ),
                observers=[watch],
            )
        else:
            name = args.source
            policy = (
                load_reference_policy(args.source, "carracing_pi")
                if args.reference
                else sn.load_policy(args.source)
            )
            params = torch.tensor(policy.params)[None]
            result = student_episodes(policy, params, seeds, [watch], args.brake_below)
            if args.brake_below:
                name += f", brakes under {args.brake_below:g} set to 0"
    rows = watch.rows(result.returns[0], seeds)
    for row in rows:
        print(
            f"track {row['seed']}: {row['return']:7.1f} | {row['tiles']:3d} of "
            f"{row['track_tiles']} tiles in {row['steps']} steps | mean speed "
            f"{row['mean_speed']:.1f} | mean brake {row['mean_brake']:.3f} | "
            f"{row['steps_off_road']} steps off the road"
        )
    laps = sum(row["tiles"] == row["track_tiles"] for row in rows)
    print(
        f"{name}: {result.returns[0].mean():.1f} over {len(seeds)} tracks, {laps} laps "
        f"finished, {time.perf_counter() - start:.0f} s"
    )
    if args.json:
        row = {"agent": name, "noise": args.noise, "correlation": args.correlation}
        append_json_line(args.json, {**row, "tracks": rows})


if __name__ == "__main__":
    main()
