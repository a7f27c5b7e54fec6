"""Which recipe trains an Ant-v5 agent on 2 cores: one variant of the recipe a run.

Each variant is the ``ant-fnn`` preset with some sections replaced (below); a run
trains it with ``evolve train``'s code under a time budget and scores the best and last
agents of its evolution on held-out episodes of stock Gymnasium ``Ant-v5``
(:func:`distill_levers.main`). One JSON line per run is appended to
``benchmarks/results/ant_levers.jsonl``. Usage::

    python benchmarks/ant_levers.py VARIANT [--minutes 20] [--episodes 16]
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from distill_levers import main  # benchmarks/ is on the path when run

from evolve.presets import ANT_PAPER_MODEL, DistillConfig, get_preset
from sensoryneuron.models import AttentionNeuronModel, FeedForwardModel
from tasks.perturbations import Perturbations

RESULTS = Path(__file__).parent / "results" / "ant_levers.jsonl"

# Small generations that a 20-minute budget sees many of: 64 members, one episode each, on
# envpool's C++ envs (about 7,000 steps/s on 2 workers; a fallen ant ends its episode).
SMALL_GENERATIONS = {
    "strategy": {
        "name": "pgpe",
        "popsize": 64,
        "sigma_init": 0.1,
        "options": {"optimizer": "clipup", "center_lr": 0.05},
    },
    "training": {
        "generations": 10_000,
        "repeats": 1,
        "test_every": 20,
        "test_episodes": 8,
        "step_bonus": 0.0,
    },
    "engine": "envpool",
}
# the MLP the ant-fnn preset held before linear-shift (variants pin what they were run with)
MLP = FeedForwardModel(obs_dim=27, act_dim=8, hidden=(32, 32))
# ... with a fixed search stdev of 0.05 and the fitness shifted by -1 a step (the healthy
# reward cancelled): linear-shift's and pi-shift's
FIXED_STDEV_SHIFTED = {
    **SMALL_GENERATIONS,
    "strategy": {
        **SMALL_GENERATIONS["strategy"],
        "sigma_init": 0.05,
        "options": {"optimizer": "clipup", "center_lr": 0.05, "stdev_lr": 0.0},
    },
    "training": {**SMALL_GENERATIONS["training"], "step_bonus": -1.0},
}
VARIANTS: dict[str, dict] = {
    # the feed-forward baseline on the true order, by PGPE with ClipUp on stock returns
    "fnn": {**SMALL_GENERATIONS, "model": MLP},
    # ... with ARS's reward shift: -1 a step cancels the healthy reward, so that standing
    # still (about 990 of stock return from the first generation on) is worth nothing
    # Stopped after 64 generations (7.5 min): the fitness stayed at -70 to -90 (the control
    # cost: no member walked) and every held-out test stood still (989-993); PGPE's centre
    # moved 2.7 in norm over 2,216 parameters, its stdev stayed 0.1
    "fnn-shift": {
        **SMALL_GENERATIONS,
        "model": MLP,
        "training": {**SMALL_GENERATIONS["training"], "step_bonus": -1.0},
    },
    # ARS's policy: linear (then tanh), 224 parameters, on the scaled readings, a fixed
    # search stdev of 0.05; fewer directions to find the gait in
    "linear-shift": {
        **FIXED_STDEV_SHIFTED,
        "model": FeedForwardModel(obs_dim=27, act_dim=8, hidden=()),
    },
    # the paper's Ant AttentionNeuron (the ant preset's model, 2,504 parameters), inputs
    # shuffled at reset, evolved as linear-shift is
    "pi-shift": {
        **FIXED_STDEV_SHIFTED,
        "model": ANT_PAPER_MODEL,
        "perturbations": Perturbations(shuffle=True),
    },
}

# DAgger from linear-shift's teacher (give its run with --teacher RUN, or it is trained first)
# into an AttentionNeuron whose inputs are reshuffled every 20-200 steps: the default
# cart-pole student's shape with a latent per sensor and supervised attention (16,568
# parameters); the distilled student ends the run (no evolution stage yet).
VARIANTS["pi-dagger"] = {
    **FIXED_STDEV_SHIFTED,
    "model": AttentionNeuronModel(
        act_dim=8,
        num_latents=32,
        pos_dim=16,
        input_change=True,
        lateral_dim=16,
        attention="softmax",
        head_lstm=32,
        hidden=(64,),
    ),
    "perturbations": Perturbations(shuffle=True, reshuffle_every=(20, 200)),
    "teacher": get_preset("ant-fnn").replace(**VARIANTS["linear-shift"]),
    "distill": DistillConfig(
        iterations=40,
        episodes=32,
        grad_steps=30,
        batch=16,
        window=400,
        lr=3e-3,
        lr_final=3e-4,
        teacher_iterations=8,
        test_every=4,
        test_episodes=8,
        attention_weight=1.0,
        clip_grad=1.0,
    ),
    "training": {**FIXED_STDEV_SHIFTED["training"], "generations": 0},
}
# ... continued to 80 iterations (--from a pi-dagger run: its episodes and teacher taken)
VARIANTS["pi-dagger-80"] = {
    **VARIANTS["pi-dagger"],
    "distill": dataclasses.replace(VARIANTS["pi-dagger"]["distill"], iterations=80),
}
# ... and to 120 (--from a pi-dagger-80 run): its validation still climbed at iteration 80
# (1334 ... 1883 at iteration 76, 8 episodes), the action loss still fell (0.45 to 0.33 over
# iterations 41-80). The learning rate's cosine spreads over the 120, so it steps back up
# to 9.7e-4 at iteration 81. 46.1 min: validation 1875, 1830, 1779, 1874, 1876, 2127, 1646,
# 1707, 1794, 1777 (iterations 84-120); over 100 held-out episodes (seeds 5000-5099) the
# last student scores 2414.6 shuffled (iteration 80's pick: 2417.6), 968.1 reshuffled every
# 25 steps (800.8), 1910.0 every 100 (1687.3): the shuffled score has stopped rising, the
# reshuffled ones still rise. The last student ships as `ant`
VARIANTS["pi-dagger-120"] = {
    **VARIANTS["pi-dagger"],
    "distill": dataclasses.replace(VARIANTS["pi-dagger"]["distill"], iterations=120),
}
# ... then PGPE with Adam from the distilled student, a small search radius, on returns less
# the healthy reward (the cart-pole recipe's last stage); run it with --from a pi-dagger-80 run
VARIANTS["pi-dagger-es"] = {
    **VARIANTS["pi-dagger-80"],
    "strategy": {
        "name": "pgpe",
        "popsize": 64,
        "sigma_init": 0.02,
        "options": {"optimizer": "adam", "center_lr": 0.005},
    },
    "training": {**FIXED_STDEV_SHIFTED["training"], "test_every": 10},
}

if __name__ == "__main__":
    main(
        "ant-fnn",
        VARIANTS,
        RESULTS,
        __doc__.split("\n")[0],
        episodes=16,
        runs_prefix="ant-levers",
    )
