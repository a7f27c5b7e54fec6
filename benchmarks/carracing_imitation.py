"""How closely a CarRacing student follows its teacher when it drives, and what its outputs are worth.

The student drives held-out tracks of stock Gymnasium through the one episode loop (patches
shuffled at reset); at every step the privileged pursuit teacher (the settings of the
student's recipe, or ``--set``) says what it would do in the same state. Per track: the
return, the steps with no wheel on the road, and per output (steer, gas, brake, in the
policy's [-1, 1] scale) the squared error against the teacher, their correlation, the mean
of each, and the share of steps each brakes on (brake output above -0.8), over the steps on
the road. ``--shift`` replays the tracks with the student's output layer moved, to see what
an output is worth: ``gas=0.3`` adds 0.3 to the gas output's bias (before the tanh),
``steer*1.3`` scales the steering row. Usage::

    python benchmarks/carracing_imitation.py runs/levers-dart-content-s0/distill/best.npz \\
        [--episodes 4] [--seed-offset 7000] [--json PATH]
    python benchmarks/carracing_imitation.py SOURCE --episodes 10 --seed-offset 9000 \\
        --shift none gas=0.3 gas=-0.3 brake=-2 steer*1.3
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from carracing_laps import CAR, off_road, student_episodes, teacher_settings  # benchmarks/

import sensoryneuron as sn
from evolve.logs import console
from evolve.rollout import Observer, StepView
from evolve.seeds import test_seeds
from sensoryneuron.files import append_json_line
from tasks.spec import get_task
from tasks.teachers import CarRacingPursuit

OUTPUTS = ("steer", "gas", "brake")


class Agreement(Observer):
    """Per episode and step: the student's outputs, the teacher's, and whether the car was
    off the road (every wheel off the tiles)."""

    def __init__(self, teacher: CarRacingPursuit) -> None:
        self.teacher = teacher
        self.action = get_task(CAR).action

    def on_reset(self, view: StepView) -> None:
        self.teacher.forget()
        self.steps: list[list[tuple[np.ndarray, np.ndarray, bool]]] = [
            [] for _ in range(view.raw.shape[1])
        ]

    def on_step(self, view: StepView) -> None:
        assert view.output is not None
        for b in np.flatnonzero(view.alive[0]):
            env = view.task.env(0, b)
            label = self.action.feedback(self.teacher.act(env)[None])[0]
            self.steps[b].append((view.output[0, b].copy(), label, off_road(env.car)))

    def row(self, b: int) -> dict:
        out = np.array([s[0] for s in self.steps[b]])
        label = np.array([s[1] for s in self.steps[b]])
        on = ~np.array([s[2] for s in self.steps[b]])
        row: dict = {"steps_off_road": int((~on).sum())}
        for k, name in enumerate(OUTPUTS):
            a, t = out[on, k], label[on, k]
            corr = float(np.corrcoef(a, t)[0, 1]) if a.std() > 0 and t.std() > 0 else 0.0
            row[name] = {
                "mse": round(float(((a - t) ** 2).mean()), 3),
                "corr": round(corr, 2),
                "student_mean": round(float(a.mean()), 2),
                "teacher_mean": round(float(t.mean()), 2),
            }
        row["brake_on"] = {
            "student": round(float((out[on, 2] > -0.8).mean()), 2),
            "teacher": round(float((label[on, 2] > -0.8).mean()), 2),
        }
        return row


def shifted(policy: sn.Policy, shift: str) -> torch.Tensor:
    """The policy's parameters ``[1, D]`` with its output layer moved as ``shift`` says."""
    params = torch.tensor(policy.params)[None]
    if shift == "none":
        return params
    weights = policy.model.unflatten(params.clone())
    if "*" in shift:
        name, value = shift.split("*", 1)
        k = OUTPUTS.index(name)
        weights["out.weight"][0, k] *= float(value)
        weights["out.bias"][0, k] *= float(value)
    else:
        name, value = shift.split("=", 1)
        weights["out.bias"][0, OUTPUTS.index(name)] += float(value)
    return policy.model.flatten(weights)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", help="a policy file or run folder")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--seed-offset", type=int, default=7000)
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="teacher")
    parser.add_argument(
        "--shift", nargs="*", default=["none"], help="output-layer changes, one run each"
    )
    parser.add_argument("--json", metavar="PATH", help="append one JSON line a run")
    args = parser.parse_args()
    for shift in args.shift:
        if shift != "none" and not any(
            shift.startswith(f"{name}{op}") for name in OUTPUTS for op in "=*"
        ):
            parser.error(f"--shift {shift!r}: expected none, OUTPUT=DELTA or OUTPUT*FACTOR")
    torch.set_num_threads(1)
    policy = sn.load_policy(args.source)
    settings = dict(policy.task.get("teacher_options", {}) if policy.task else {})
    settings.update(teacher_settings(args.set))
    seeds = test_seeds(args.episodes, args.seed_offset)
    for shift in args.shift:
        watch = Agreement(CarRacingPursuit(**settings))
        start = time.perf_counter()
        with console():
            observers = [watch] if shift == "none" else []
            result = student_episodes(policy, shifted(policy, shift), seeds, observers)
        returns = result.returns[0]
        tracks = [
            {"seed": s, "return": round(float(r), 1)} for s, r in zip(seeds, returns, strict=True)
        ]
        if shift == "none":
            for b, track in enumerate(tracks):
                track.update(watch.row(b))
                print(
                    f"track {track['seed']}: {track['return']:7.1f} | "
                    + " | ".join(
                        f"{n} mse {track[n]['mse']:.3f} corr {track[n]['corr']:.2f} mean "
                        f"{track[n]['student_mean']:+.2f} (teacher {track[n]['teacher_mean']:+.2f})"
                        for n in OUTPUTS
                    )
                    + f" | braking {track['brake_on']['student']:.2f} of the steps (teacher "
                    f"{track['brake_on']['teacher']:.2f})"
                )
        print(
            f"{args.source}, shift {shift}: {returns.mean():.1f} over {len(seeds)} tracks "
            f"(seeds from {args.seed_offset}): {[t['return'] for t in tracks]}, "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
        if args.json:
            row = {"agent": args.source, "teacher": settings, "shift": shift, "tracks": tracks}
            append_json_line(args.json, row)


if __name__ == "__main__":
    main()
