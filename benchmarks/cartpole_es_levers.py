"""ES alone on cart-pole (issue 15's second gap): which levers lift the paper's model by PGPE.

Each variant is the ``cartpole-swingup-harder-es`` preset (the paper's AttentionNeuron, no
teacher, no gradients) with some sections replaced; a run trains it under ``--minutes`` and
scores its evolved centre shuffled on held-out episodes of stock Gymnasium
(:func:`distill_levers.main`). The variants run on the fused engine (:mod:`evolve.fused`, needs
the ``fast`` extra), which runs the same episodes several times faster than the loop, so an
hour buys several times the generations. One JSON line per run is appended to
``benchmarks/results/cartpole_es_levers.jsonl``. Usage::

    python benchmarks/cartpole_es_levers.py VARIANT [--minutes 60] [--episodes 200]
"""

from __future__ import annotations

from pathlib import Path

from distill_levers import main  # benchmarks/ is on the path when run

RESULTS = Path(__file__).parent / "results" / "cartpole_es_levers.jsonl"
FUSED = {"engine": "fused"}

VARIANTS: dict[str, dict] = {
    # The preset as it is (1,000 generations, 4 episodes a member), on the fused engine.
    "fused": FUSED,
    # As many generations as the budget allows: does PGPE go on climbing past 1,000?
    "long": {**FUSED, "training": {"generations": 100_000}},
    # The paper's 16 episodes a member: a quarter of the noise in each fitness, a quarter
    # of the generations.
    "long-16": {**FUSED, "training": {"generations": 100_000, "repeats": 16}},
}

if __name__ == "__main__":
    main(
        "cartpole-swingup-harder-es",
        VARIANTS,
        RESULTS,
        __doc__.split("\n")[0],
        episodes=200,
        runs_prefix="cartpole-es-levers",
    )
