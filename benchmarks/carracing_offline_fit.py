"""Can a model see what the teacher acts on? Students fitted offline to recorded DAgger data.

Reads the labelled CarRacing episodes of a distillation (``RUN/distill/data``), holds the
last ``--val-chunks`` iterations' episodes out, and fits each model from scratch on the
rest with distillation's own window loss (:func:`evolve.training.frame_replay.rows_loss`,
32-step windows after 16 of burn-in, Adam with a cosine decay). It reports each model's
squared error per action output (steer, gas, brake, in the tanh outputs' scale) on
windows of the held-out episodes, every ``--eval-every`` steps. No env runs: it measures
what a model can fit, not how it drives. The frames are stored in their true order; the
permutation-invariant models give the same outputs for any order, the CNN reads them as
they are. One JSON line per model is appended to
``benchmarks/results/carracing_offline_fit.jsonl``. Usage::

    python benchmarks/carracing_offline_fit.py RUN [--steps 600] [--models pool cnn ...]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evolve.training.dataset import Dataset
from evolve.training.distill import BURN_IN, load_distill_data
from evolve.training.frame_replay import draw_windows, rows_loss, window_rows
from sensoryneuron.files import append_json_line
from sensoryneuron.models import ConvModel, VisionAttentionNeuronModel

RESULTS = Path(__file__).parent / "results" / "carracing_offline_fit.jsonl"
MODELS = {
    "pool": VisionAttentionNeuronModel(head="pool", hidden=32, grid=16, pool_queries=8),
    "pool-action-query": VisionAttentionNeuronModel(
        head="pool", hidden=32, grid=16, pool_queries=8, action_query=True
    ),
    "pool-grid8": VisionAttentionNeuronModel(head="pool", hidden=32, grid=8, pool_queries=8),
    "pool-memoryless": VisionAttentionNeuronModel(
        head="pool", hidden=32, grid=16, pool_queries=8, head_memory=False
    ),
    # the published layer's value is layer-normalised per frame slice, so a flat patch of
    # road and one of grass read the same; its key is frame differences only (motion)
    "pool-value-stats": VisionAttentionNeuronModel(
        head="pool", hidden=32, grid=16, pool_queries=8, value_stats=True
    ),
    "pool-key-content": VisionAttentionNeuronModel(
        head="pool", hidden=32, grid=16, pool_queries=8, key_content=True
    ),
    "pool-content": VisionAttentionNeuronModel(
        head="pool", hidden=32, grid=16, pool_queries=8, value_stats=True, key_content=True
    ),
    "cnn": ConvModel(),
}
# the preset's layer (pool head, key content) with one size changed at a time
PRESET_LAYER = dict(head="pool", hidden=32, grid=16, pool_queries=8, key_content=True)
for _name, _change in {
    "content-msg32": {"msg_dim": 32},
    "content-pos16": {"pos_dim": 16},
    "content-pools16": {"pool_queries": 16, "query_dim": 8},
    "content-hidden64": {"hidden": 64},
    "content-grid24": {"grid": 24},
    "content-pos16-pools16": {"pos_dim": 16, "pool_queries": 16, "query_dim": 8},
}.items():
    MODELS[_name] = VisionAttentionNeuronModel(**{**PRESET_LAYER, **_change})
OUTPUTS = ("steer", "gas", "brake")


def held_out_error(model, params, store, index, steps, window, seed) -> list[float]:
    """Mean squared error per output on one window of each held-out episode."""
    rng = np.random.default_rng(seed)
    errors = np.zeros(len(OUTPUTS))
    with torch.no_grad():
        for part in np.array_split(index, max(len(index) // 8, 1)):
            first = draw_windows(store.lengths(part), rng, window, BURN_IN, steps)
            rows = window_rows(first, min(BURN_IN + window, steps), model.frames)
            batch = store.gather(part, rows)
            for k in range(len(OUTPUTS)):
                weights = torch.zeros(len(OUTPUTS))
                weights[k] = 1.0
                loss = rows_loss(model, params, batch, rows, BURN_IN, weights)
                errors[k] += float(loss) * len(part)
    return (errors / len(index)).round(4).tolist()


def fit_offline(
    model,
    read: Callable[[np.ndarray, np.ndarray], Dataset],
    lengths: Callable[[np.ndarray], np.ndarray],
    train_index: np.ndarray,
    steps: int,
    args: argparse.Namespace,
    evaluate: Callable[[int, torch.Tensor], Any],
    discrete: bool = False,
) -> list[list]:
    """Fit ``model`` from scratch (seed ``args.seed``, parameters N(0, 0.1)) on windows of the
    episodes ``train_index`` that ``read(index, rows)`` returns (episodes of at most ``steps``
    steps, lengths from ``lengths(index)``), with distillation's window loss: ``args.steps``
    Adam steps of ``args.batch`` windows of ``args.window`` steps after ``BURN_IN``, the
    learning rate decaying by a cosine from ``args.lr`` to 1e-4, gradients clipped to norm
    1. Every ``args.eval_every`` steps and at the end, ``evaluate(step, params)``; returns
    its values as ``[step, seconds, value]`` rows."""
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    theta = torch.nn.Parameter(0.1 * torch.randn(model.num_params))
    opt = torch.optim.Adam([theta], lr=args.lr)
    curve = []
    started = time.perf_counter()
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = 1e-4 + 0.5 * (args.lr - 1e-4) * (1 + np.cos(np.pi * step / args.steps))
        index = np.sort(rng.choice(train_index, size=args.batch))
        first = draw_windows(lengths(index), rng, args.window, BURN_IN, steps)
        rows = window_rows(first, min(BURN_IN + args.window, steps), model.frames)
        loss = rows_loss(model, theta, read(index, rows), rows, BURN_IN, discrete=discrete)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([theta], 1.0)
        opt.step()
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            value = evaluate(step + 1, theta.detach())
            curve.append([step + 1, round(time.perf_counter() - started, 1), value])
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a carracing run folder (its distill/data is read)")
    parser.add_argument("--models", nargs="*", default=["pool", "cnn"], choices=sorted(MODELS))
    parser.add_argument("--steps", type=int, default=600, help="Adam steps per model")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--val-chunks", type=int, default=2)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    store = load_distill_data(Path(args.run) / "distill")
    steps = store.steps
    held = sum(store.sizes[-args.val_chunks :])
    train_index = np.arange(store.episodes - held)
    val_index = np.arange(store.episodes - held, store.episodes)
    labels = [store.gather(np.array([e]), np.arange(steps)[None]) for e in val_index]
    live = np.concatenate([d.labels[d.mask] for d in labels])  # [steps, A]
    variance = [round(float(v), 4) for v in live.var(0)]
    print(f"held-out label variance (the error of a constant) {variance}")
    for name in args.models:
        model = MODELS[name]

        def evaluate(step: int, params: torch.Tensor, name: str = name, model=model) -> list:
            error = held_out_error(model, params, store, val_index, steps, args.window, 1)
            errors = dict(zip(OUTPUTS, error, strict=True))
            print(f"{name} step {step}: held-out error {errors}", flush=True)
            return error

        curve = fit_offline(model, store.gather, store.lengths, train_index, steps, args, evaluate)
        row = {
            "model": name,
            "params": model.num_params,
            "run": args.run,
            "train_episodes": int(train_index.size),
            "held_out_episodes": int(val_index.size),
            "steps": args.steps,
            "batch": args.batch,
            "seed": args.seed,
            "label_variance": variance,
            "curve": curve,
        }
        append_json_line(RESULTS, row)


if __name__ == "__main__":
    main()
