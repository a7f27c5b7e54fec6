"""ES alone on cart-pole from a random start instead of zeros (issue 15's second gap).

From zeros every sensory neuron's LSTM state is the same function of its input, so all slots
get the same key and every latent weighs the five sensors alike: the ES agents found so far
act on ``x + x_dot + cos + sin + th_dot`` with one gain (measured: -5 on each sensor for a
balance-task agent, -10 to -14 for the shipped one), which can swing the pole but not
balance it. The paper's checkpoint weighs them apart (th_dot -10, x -2.5, sin -2.4, x_dot
-0.9). A random start gives each sensor its own key from the first generation.

This script trains ``cartpole-swingup-harder-es`` (PGPE, fused engine, 16 episodes a member)
from parameters drawn N(0, STD^2), through the public ``train(init=...)``; the run folder
holds the start (``init.npz``), so ``evolve train --resume OUT`` goes on. Usage::

    python benchmarks/cartpole_es_random_init.py OUT [--std 1.0] [--minutes 8]
        [--env SensoryNeuron/CartPoleBalance-v0] [--input-change] [--seed 0] [--workers 2]
"""

from __future__ import annotations

import argparse

import numpy as np

from evolve.backends import LocalBackend
from evolve.logs import console
from evolve.presets import get_preset
from evolve.training.loop import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="the run folder")
    parser.add_argument("--std", type=float, default=1.0, help="the start's standard deviation")
    parser.add_argument("--minutes", type=float, default=8.0, help="training time budget")
    parser.add_argument("--env", help="train and test on this task instead (e.g. the balance)")
    parser.add_argument("--train-env", help="training.train_env")
    parser.add_argument("--input-change", action="store_true", help="model.input_change")
    parser.add_argument("--seed", type=int, default=0, help="the recipe's and the start's seed")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    preset = get_preset("cartpole-swingup-harder-es").replace(
        engine="fused",
        training={
            "generations": 100_000,
            "repeats": 16,
            "seed": args.seed,
            "train_env": args.train_env,
        },
    )
    if args.env:
        preset = preset.replace(env_id=args.env)
    # the paper's model (the preset now ships softmax over input-change neurons)
    preset = preset.replace(model={"attention": "tanh", "input_change": args.input_change})
    init = np.random.default_rng(args.seed).normal(0.0, args.std, preset.model.num_params)
    with console():
        train(
            preset,
            args.out,
            backend=LocalBackend(args.workers),
            final_episodes=0,
            progress=False,
            time_budget=args.minutes,
            init=init.astype(np.float32),
            run_settings={"init": f"N(0, {args.std}^2), seed {args.seed}"},
        )


if __name__ == "__main__":
    main()
