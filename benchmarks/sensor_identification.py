"""How soon do a student's sensory neurons know which sensor they read?

A permutation-invariant agent must infer which sensor feeds each input slot: at reset, and
again after every reshuffle. A staged run can teach this in distillation in two ways, and
this script reads out whichever the run used:

- ``distill.identity_weight`` > 0: a linear classifier beside the student names, from each
  sensory neuron's state, the sensor its slot carries (read from ``distill/state.npz``). A
  slot counts as right when the classifier names its sensor.
- ``distill.attention_weight`` > 0: latent k is taught to attend to the slot of sensor k. A
  sensor counts as found when the slot latent k attends to most carries sensor k. This
  readout needs no extra weights, so it also works on the evolved agent (``--stage final``).

It plays held-out episodes under the run's training perturbation (or ``--reshuffle T``) and
prints how often the readout is right, by steps since the episode began and by steps since
the last reshuffle. With the classifier it measures the distilled student only: evolution
changes the parameters the classifier was trained for. Usage::

    python benchmarks/sensor_identification.py RUN [RUN ...] [--episodes 200]
        [--seed-offset 6000] [--reshuffle T] [--steps 400] [--stage distill|final]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

import sensoryneuron as sn
from evolve.rollout import Observer, StepView, episodes
from evolve.seeds import test_seeds
from evolve.training.distill import identity_classes, load_distill_state, sensors_found, slot_logits
from evolve.training.run_folder import read_config
from sensoryneuron.errors import SensoryNeuronError
from sensoryneuron.files import atomic_write_text
from sensoryneuron.models import Model
from tasks.perturbations import Perturbations
from tasks.spec import get_task

# Buckets of steps since the episode began (or since the last reshuffle): [low, high).
AGE_EDGES = (0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 10**9)


def accuracy_by_age(
    correct: np.ndarray, alive: np.ndarray, age: np.ndarray, edges: tuple[int, ...] = AGE_EDGES
) -> list[dict[str, Any]]:
    """The fraction of correct slots per bucket of ``age``, over live steps only.

    Args:
        correct: bool ``[T, E, N]``, whether each slot was named right.
        alive: bool ``[T, E]``, whether the episode was still running.
        age: int ``[T, E]``, steps since the event (negative: not applicable).
        edges: bucket boundaries; bucket k holds ``edges[k] <= age < edges[k + 1]``.
    """
    rows = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        keep = alive & (age >= low) & (age < high)
        slots = correct[keep]
        rows.append(
            {
                "from": low,
                "to": high,
                "slots": int(slots.size),
                "accuracy": float(slots.mean()) if slots.size else None,
            }
        )
    return rows


class Readout(Observer):
    """Scores, at every act of member 0, which sensor each slot is read as, and how long ago
    the episode began and the slots were last reshuffled: one ``[E, ...]`` row per step.

    With a ``classifier`` (``[sensors, F]``) a slot is right when the classifier, applied to
    the slot's features, names the sensor the slot carries; without, sensor k is found when
    the slot latent k attends to most carries it (:func:`sensors_found`).
    """

    attention = True

    def __init__(self, model: Model, classifier: torch.Tensor | None, sensors: int) -> None:
        self.model = model
        self.classifier = classifier
        self.sensors = sensors
        self.correct: list[np.ndarray] = []  # bool [E, N] (or [E, sensors]) per step
        self.alive: list[np.ndarray] = []  # bool [E] per step
        self.since_reset: list[np.ndarray] = []  # int [E] per step
        self.since_reshuffle: list[np.ndarray] = []  # int [E] per step, -1 before the first
        self._reshuffle_age: np.ndarray | None = None

    def on_reset(self, view: StepView) -> None:
        self._reshuffle_age = np.full(view.obs.shape[1], -1)

    def on_act(self, view: StepView) -> None:
        sources = view.perturbation.sources()
        if self.classifier is not None:  # is each slot's sensor named right?
            features = self.model.slot_features(view.state)[0]  # [E, N, F]
            named = slot_logits(features, self.classifier).argmax(-1).numpy()
            self.correct.append(named == sources)
        else:  # does latent k read most from a slot that carries sensor k?
            self.correct.append(sensors_found(view.attention[0], sources, self.sensors))
        age = self._reshuffle_age  # reshuffled: a new permutation since the last act
        age = np.where(view.perturbation.reshuffled, 0, np.where(age >= 0, age + 1, -1))
        self._reshuffle_age = age
        self.alive.append(view.alive[0].copy())
        self.since_reset.append(np.full(age.shape, view.t))
        self.since_reshuffle.append(age)


def identify(
    run: Path,
    perturbations: Perturbations | None,
    seeds: list[int],
    steps: int,
    stage: str = "distill",
) -> dict[str, Any]:
    """Play the run's distilled student (or final agent) on ``seeds``; score its readout."""
    preset, _ = read_config(run)
    spec = get_task(preset.env_id)
    task = spec.make_batched()
    state = load_distill_state(run / "distill")
    classifier = None
    if state.identity.size:
        if stage != "distill":
            raise SensoryNeuronError(
                f"{run}: its sensor classifier was trained for the distilled student only; "
                "use --stage distill"
            )
        classifier = torch.from_numpy(state.identity).view(identity_classes(task.obs_dim), -1)
    elif preset.distill is None or preset.distill.attention_weight <= 0:
        raise SensoryNeuronError(
            f"{run}: its distillation trained neither a sensor classifier nor the attention"
        )
    student = sn.load_policy(
        run / "distill" / "latest.npz" if stage == "distill" else run / "best.npz"
    )
    perturbations = perturbations or preset.perturbations
    readout = Readout(student.model, classifier, task.obs_dim)
    episodes(
        student.model,
        torch.from_numpy(student.params.copy())[None],
        task,
        perturbations,
        seeds,
        action_map=student.action,
        max_steps=steps,
        observers=[readout],
        observation=spec.observation,
    )
    correct, alive = np.stack(readout.correct), np.stack(readout.alive)
    return {
        "run": str(run),
        "stage": stage,
        "readout": "classifier" if classifier is not None else "attention",
        "perturbation": perturbations.describe(),
        "episodes": len(seeds),
        "overall": float(correct[alive].mean()),
        "since_reset": accuracy_by_age(correct, alive, np.stack(readout.since_reset)),
        "since_reshuffle": accuracy_by_age(correct, alive, np.stack(readout.since_reshuffle)),
    }


def _fmt_rows(rows: list[dict[str, Any]]) -> str:
    cells = []
    for r in rows:
        if r["accuracy"] is None:
            continue
        span = f"{r['from']}" if r["to"] == r["from"] + 1 else f"{r['from']}-{r['to'] - 1}"
        if r["to"] >= 10**9:
            span = f"{r['from']}+"
        cells.append(f"{span}: {r['accuracy']:.2f}")
    return "  ".join(cells)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="staged run folders")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed-offset", type=int, default=6000)
    parser.add_argument("--reshuffle", type=int, help="reshuffle every T steps instead")
    parser.add_argument("--steps", type=int, default=400, help="steps per episode")
    parser.add_argument(
        "--stage",
        choices=("distill", "final"),
        default="distill",
        help="the distilled student (distill/latest.npz) or the evolved agent (best.npz)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    for name in ("episodes", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1; got {getattr(args, name)}")
    if args.reshuffle is not None and args.reshuffle < 1:
        parser.error(f"--reshuffle must be at least 1; got {args.reshuffle}")
    torch.set_num_threads(1)
    perturbations = None
    if args.reshuffle is not None:
        perturbations = Perturbations(shuffle=True, reshuffle_every=args.reshuffle)
    seeds = test_seeds(args.episodes, args.seed_offset)
    results = []
    for run in args.runs:
        try:
            row = identify(run, perturbations, seeds, args.steps, args.stage)
        except (SensoryNeuronError, FileNotFoundError) as exc:
            parser.error(str(exc))
        results.append(row)
        print(
            f"{run}, {row['stage']} ({row['perturbation']}), {row['episodes']} held-out "
            f"episodes, {row['readout']} readout"
        )
        what = "slots named right" if row["readout"] == "classifier" else "sensors found"
        print(f"  {what}, all live steps: {row['overall']:.3f}")
        print(f"  by steps since reset:     {_fmt_rows(row['since_reset'])}")
        print(f"  by steps since reshuffle: {_fmt_rows(row['since_reshuffle'])}")
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
