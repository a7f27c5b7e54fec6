"""Can a Pong student tell the teacher's moves apart? Students fitted offline to its episodes.

Reads the labelled Pong episodes of a distillation (``RUN/distill/data``; ``--chunks``: the
iterations to use, by default the first two, which the teacher drives), holds the last
``--held-out`` episodes out, and fits each model from scratch on the rest with
distillation's own window loss (:func:`evolve.training.frame_replay.rows_loss`, the
cross-entropy of the logits against the teacher's choice, 32-step windows after 16 of
burn-in by default, Adam with a cosine decay). Every ``--eval-every`` steps it reports the
held-out cross-entropy (over windows of ``--eval-window`` steps) beside that of the best
constant guess (the training labels' frequencies):
a model that does not beat the constant does not see what the teacher acts on. No env
runs. ``--court`` replaces each frame by its distance from the court's gray (level 87):
the court reads 0 and the ball, the paddles and the walls stand out (an input change for
this experiment only). One JSON line per model is appended to
``benchmarks/results/pong_offline_fit.jsonl``. Usage::

    python benchmarks/pong_offline_fit.py RUN [--steps 400] [--models cnn-blind pool-content]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch
from carracing_offline_fit import fit_offline  # benchmarks/ is on the path when run

from evolve.presets import get_preset
from evolve.training.dataset import Dataset
from evolve.training.distill import BURN_IN, load_distill_data
from evolve.training.frame_replay import draw_windows, rows_loss, window_rows
from sensoryneuron.files import append_json_line
from sensoryneuron.models import ConvModel

RESULTS = Path(__file__).parent / "results" / "pong_offline_fit.jsonl"
COURT = 87  # the gray level of Pong's court in the task's frames
PONG_CNN = ConvModel(act_dim=6, height=84, width=84, output="logits")
MODELS = {
    "cnn": PONG_CNN,
    "cnn-blind": dataclasses.replace(PONG_CNN, action_input=False),
    # the shuffled student of `pong_levers.py moves-content`: keys of frame differences and
    # the newest frame, the pooling head on M = 400 codes
    "pool-content": dataclasses.replace(get_preset("pong").model, key_content=True),
}
# ... without memory: its head a tanh layer (head_memory=False), so each move follows from the
# last 4 frames and the previous action alone: does the LSTM carry what the patches cannot?
MODELS["pool-content-memoryless"] = dataclasses.replace(MODELS["pool-content"], head_memory=False)


def court_removed(data: Dataset) -> Dataset:
    """``data`` with each frame's pixels replaced by their distance from the court's gray."""
    distance = np.abs(data.obs.astype(np.int16) - COURT).astype(np.uint8)
    return dataclasses.replace(data, obs=distance)


def held_out_loss(model, params, read, lengths, index, steps, window, draws) -> float:
    """Mean cross-entropy over ``draws`` windows of each held-out episode."""
    rng = np.random.default_rng(1)
    total = 0.0
    with torch.no_grad():
        for _ in range(draws):
            first = draw_windows(lengths(index), rng, window, BURN_IN, steps)
            rows = window_rows(first, min(BURN_IN + window, steps), model.frames)
            batch = read(index, rows)
            total += float(rows_loss(model, params, batch, rows, BURN_IN, discrete=True))
    return round(total / draws, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a pong run folder (its distill/data is read)")
    parser.add_argument("--models", nargs="*", default=["cnn-blind", "pool-content"])
    parser.add_argument("--chunks", type=int, default=2, help="the first CHUNKS iterations")
    parser.add_argument("--held-out", type=int, default=2, help="episodes held out")
    parser.add_argument("--steps", type=int, default=400, help="Adam steps per model")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--window", type=int, default=32, help="steps a fitted window covers")
    parser.add_argument(
        "--eval-window",
        type=int,
        help="steps a held-out window covers (default: --window); longer windows test what a "
        "student fitted on short ones does with a longer memory, as it plays",
    )
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--court", action="store_true", help="frames less the court's gray")
    args = parser.parse_args()
    args.eval_window = args.eval_window or args.window
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; allowed: {', '.join(sorted(MODELS))}")
    store = load_distill_data(Path(args.run) / "distill")

    def read(index: np.ndarray, rows: np.ndarray) -> Dataset:
        data = store.gather(index, rows)
        return court_removed(data) if args.court else data

    steps = store.steps
    episodes = sum(store.sizes[: args.chunks])
    train_index = np.arange(episodes - args.held_out)
    val_index = np.arange(episodes - args.held_out, episodes)

    def choices(index: np.ndarray) -> np.ndarray:
        data = store.gather(index, np.arange(steps)[None].repeat(len(index), 0))
        return data.labels[data.mask].argmax(-1)

    train_freq = np.bincount(choices(train_index), minlength=6) + 1.0  # add-one: no log 0
    train_freq /= train_freq.sum()
    val_choices = choices(val_index)
    constant = round(float(-np.log(train_freq[val_choices]).mean()), 4)
    print(f"training labels {np.round(train_freq, 3).tolist()}; constant guess {constant}")
    for name in args.models:
        model = MODELS[name]

        def evaluate(step: int, params: torch.Tensor, name: str = name, model=model) -> float:
            held = held_out_loss(
                model, params, read, store.lengths, val_index, steps, args.eval_window, 8
            )
            print(f"{name} step {step}: held-out {held} (constant {constant})", flush=True)
            return held

        curve = fit_offline(
            model, read, store.lengths, train_index, steps, args, evaluate, discrete=True
        )
        row = {
            "model": name,
            "params": model.num_params,
            "run": args.run,
            "chunks": args.chunks,
            "train_episodes": int(train_index.size),
            "held_out_episodes": int(val_index.size),
            "steps": args.steps,
            "batch": args.batch,
            "window": args.window,
            "eval_window": args.eval_window,
            "seed": args.seed,
            "court_removed": args.court,
            "constant_cross_entropy": constant,
            "curve": curve,
        }
        append_json_line(RESULTS, row)


if __name__ == "__main__":
    main()
