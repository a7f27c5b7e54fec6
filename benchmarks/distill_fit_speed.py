"""One Adam step of the default cart-pole recipe's DAgger fit: where its time goes.

The distillation stage of ``cartpole-swingup-harder`` spends most of each iteration in its 30
Adam steps, each a replay of 16 recorded episodes (their first 400 steps, ``distill.window``)
through the 12,929-parameter student with backpropagation through time
(:func:`evolve.training.distill.imitation_loss`). On a machine half as fast the time budget
cuts the stage at about 37 of its 100 iterations, which is what keeps the noise rows below
target. This benchmark times one step's loss (forward) and its backward for the preset's
student on synthetic episodes (5 sensors, optionally with noise channels), eager and with
the student's step compiled by ``torch.compile`` (inductor's C++ for the CPU), and checks
that both give the same loss and gradient up to round-off. Usage::

    python benchmarks/distill_fit_speed.py [--threads 2] [--repeats 3] [--steps 400]
        [--noise-channels 5] [--compile] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from evolve.presets import get_preset
from evolve.training.dataset import Dataset
from evolve.training.distill import imitation_loss


def _episodes(sensors: int, noise: int, episodes: int, steps: int, act_dim: int) -> Dataset:
    """Smooth random observations and labels (the student's cost does not depend on them),
    each episode's slots a permutation of the sensors and the noise channels."""
    rng = np.random.default_rng(0)
    width = sensors + noise
    obs = np.cumsum(rng.normal(0, 0.1, size=(steps, episodes, width)), axis=0)
    labels = np.tanh(rng.normal(size=(steps, episodes, act_dim))).astype(np.float32)
    mask = np.ones((steps, episodes), dtype=bool)
    carried = np.minimum(np.arange(width), sensors)  # a noise channel's source is `sensors`
    order = np.stack([rng.permutation(carried) for _ in range(episodes)])  # [E, N]
    sources = np.broadcast_to(order, (steps, episodes, width)).astype(np.int16)
    return Dataset(obs.astype(np.float32), labels, mask, sources, labels.copy())


def _time_step(
    model, params: torch.Tensor, data: Dataset, sensors: int, compiled: bool
) -> tuple[float, float, float, np.ndarray]:
    """(forward s, backward s, loss, gradient) of one Adam step's loss, as the preset's fit
    computes it (the action error and the attention term, weight 1)."""
    params.grad = None
    started = time.perf_counter()
    losses = imitation_loss(model, params, data, attention_sensors=sensors, compiled=compiled)
    loss = losses.total(0.0, 1.0)
    forward = time.perf_counter() - started
    started = time.perf_counter()
    loss.backward()
    backward = time.perf_counter() - started
    return forward, backward, float(loss.detach()), params.grad.numpy().copy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--steps", type=int, help="steps a replay (default: the preset's distill.window)"
    )
    parser.add_argument("--noise-channels", type=int, default=0)
    parser.add_argument("--compile", action="store_true", help="also time the compiled step")
    parser.add_argument("--json", help="write the timings here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    preset = get_preset("cartpole-swingup-harder")
    model, cfg = preset.model, preset.distill
    sensors = 5
    steps = args.steps or cfg.window
    data = _episodes(sensors, args.noise_channels, cfg.batch, steps, model.act_dim)
    init = 0.1 * np.random.default_rng(1).standard_normal(model.num_params)
    params = torch.tensor(init, dtype=torch.float32, requires_grad=True)

    results: dict[str, dict] = {}
    grads = {}
    for name in ["eager", "compiled"] if args.compile else ["eager"]:
        compiled = name == "compiled"
        started = time.perf_counter()
        _time_step(model, params, data, sensors, compiled)  # warm-up (compiled: the compile)
        warm_up = time.perf_counter() - started
        times = [_time_step(model, params, data, sensors, compiled) for _ in range(args.repeats)]
        forward = min(t[0] for t in times)
        backward = min(t[1] for t in times)
        grads[name] = times[-1][3]
        results[name] = {
            "forward_s": round(forward, 4),
            "backward_s": round(backward, 4),
            "step_s": round(forward + backward, 4),
            "warm_up_s": round(warm_up, 2),
            "loss": times[-1][2],
        }
        print(
            f"{name:9s} forward {forward:.3f} s  backward {backward:.3f} s  (first {warm_up:.1f} s)"
        )
    if "compiled" in results:
        scale = np.abs(grads["eager"]).max()
        diff = float(np.abs(grads["compiled"] - grads["eager"]).max() / scale)
        results["compiled"]["gradient_max_rel_diff"] = diff
        ratio = results["eager"]["step_s"] / results["compiled"]["step_s"]
        results["compiled_speedup"] = round(ratio, 2)
        print(f"compiled: {ratio:.2f}x the eager step; gradients agree to {diff:.1e}")
    report = {
        "threads": args.threads,
        "batch": cfg.batch,
        "steps": steps,
        "noise_channels": args.noise_channels,
        "num_params": model.num_params,
        **results,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
