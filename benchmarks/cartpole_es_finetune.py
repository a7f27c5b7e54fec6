"""Does the ES-only cart-pole plateau lift with a smaller centre step? PGPE restarted from a run.

Takes the last centre of an ES run of ``cartpole-swingup-harder-es`` (its ``state.npz``, in
float64) and evolves it on with PGPE at another centre step, the stdev starting at the run's
mean stdev, 16 episodes a member on the fused engine (``fast`` extra), seed 1: a new run
folder, started from that centre by ``train(init=...)`` (as ``evolve train --init``, which
takes a policy file's float32 parameters instead). Score the result with ``evolve eval
OUT/latest.npz --episodes 1000 --condition shuffled``. Usage::

    python benchmarks/cartpole_es_finetune.py RUN OUT [--center-lr 0.01] [--generations 600]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evolve.backends import LocalBackend
from evolve.logs import console
from evolve.presets import get_preset
from evolve.training.loop import train
from evolve.training.run_folder import load_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="the ES run to start from")
    parser.add_argument("out", type=Path, help="a new run folder")
    parser.add_argument("--center-lr", type=float, default=0.01)
    parser.add_argument("--generations", type=int, default=600)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    strategy = load_state(args.run)[2]
    center, sigma = strategy["center"], float(strategy["stdev"].mean())
    preset = get_preset("cartpole-swingup-harder-es").replace(
        engine="fused",
        model={"attention": "tanh", "input_change": False},  # the paper's, as RUN's
        training={"generations": args.generations, "repeats": 16, "seed": 1},
        strategy={
            "sigma_init": sigma,
            "options": {"optimizer": "adam", "center_lr": args.center_lr},
        },
    )
    with console():
        train(
            preset,
            args.out,
            backend=LocalBackend(args.workers),
            checkpoint_every=50,
            final_episodes=0,
            progress=False,
            run_settings={"from": str(args.run)},
            init=center,
        )


if __name__ == "__main__":
    main()
