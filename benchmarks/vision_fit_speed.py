"""One Adam step of the CarRacing student's fit: the explicit attention against the fused one.

Distillation replays windows of recorded frames (:func:`evolve.training.frame_replay.rows_loss`):
the vision layer computes the codes of every step of a batch at once, the head runs step by
step. The layer's ``M x N`` attention is most of the cost. With ``with_attention=False``
(what the replay asks for) float32 takes torch's fused attention kernel, which never writes
the weights out. This benchmark times the loss and its backward both ways, interleaved in
one run (the preset's model, a batch of 16 windows of 32 steps after a burn-in of 16), and
checks that both give the same loss and gradient up to round-off. Usage::

    python benchmarks/vision_fit_speed.py [--threads 2] [--repeats 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from evolve.presets import get_preset
from evolve.training.dataset import Dataset
from evolve.training.distill import BURN_IN
from evolve.training.frame_replay import window_loss
from sensoryneuron.models import VisionAttentionNeuronModel


def _episodes(model: VisionAttentionNeuronModel, episodes: int, steps: int) -> Dataset:
    """Recorded frames with a moving bright block on noise, so the attention is not flat."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 80, size=(steps, episodes, 96, 96), dtype=np.uint8)
    for t in range(steps):
        row = (3 * t) % 80
        frames[t, :, row : row + 12, 40:52] = 250
    act = model.act_dim
    labels = rng.uniform(-1, 1, size=(steps, episodes, act)).astype(np.float32)
    mask = np.ones((steps, episodes), dtype=bool)
    return Dataset(frames, labels, mask, None, labels.copy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--json", help="write the timings here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = get_preset("carracing").model
    data = _episodes(model, args.batch, 200)
    params = torch.tensor(
        0.1 * np.random.default_rng(1).standard_normal(model.num_params), dtype=torch.float32
    )
    weights = torch.ones(model.act_dim)
    explicit_codes = VisionAttentionNeuronModel.codes

    def step(fused: bool) -> tuple[float, float, np.ndarray]:
        p = params.clone().requires_grad_(True)
        rng = np.random.default_rng(2)  # the same windows both ways
        start = time.perf_counter()
        if fused:
            loss = window_loss(model, p, data, rng, args.window, BURN_IN, weights)
        else:
            forced = lambda self, w, o, a, with_attention=True: explicit_codes(self, w, o, a)  # noqa: E731
            with mock.patch.object(VisionAttentionNeuronModel, "codes", forced):
                loss = window_loss(model, p, data, rng, args.window, BURN_IN, weights)
        loss.backward()
        return time.perf_counter() - start, float(loss.detach()), p.grad.numpy().copy()

    times: dict[str, list[float]] = {"explicit": [], "fused": []}
    results = {}
    for _ in range(args.repeats):
        for name in times:
            seconds, loss, grad = step(name == "fused")
            times[name].append(seconds)
            results[name] = (loss, grad)
    (loss_e, grad_e), (loss_f, grad_f) = results["explicit"], results["fused"]
    row = {
        "model_params": model.num_params,
        "threads": args.threads,
        "batch": args.batch,
        "window": args.window,
        "burn_in": BURN_IN,
        "seconds_explicit": float(np.median(times["explicit"])),
        "seconds_fused": float(np.median(times["fused"])),
        "loss_difference": abs(loss_e - loss_f),
        "grad_relative_difference": float(
            np.abs(grad_e - grad_f).max() / max(np.abs(grad_e).max(), 1e-30)
        ),
    }
    row["speedup"] = row["seconds_explicit"] / row["seconds_fused"]
    row["load_average"] = os.getloadavg()[0]  # other work on the machine: both ways share it
    print(json.dumps(row, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(row, indent=1) + "\n")


if __name__ == "__main__":
    main()
