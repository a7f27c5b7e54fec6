"""The authors' published cart-pole model scores within its published range here."""

from __future__ import annotations

import sensoryneuron as sn
from evolve.evaluation.conditions import parse_condition
from evolve.evaluation.evaluate import evaluate_policy

PUBLISHED_MEAN, PUBLISHED_STD, EPISODES = 516.57, 420.37, 100


def test_reference_cartpole_scores_within_its_published_range(reference_path):
    policy = sn.load_reference_policy(reference_path("cartpole_pi"), name="cartpole_pi")
    (row,) = evaluate_policy(
        policy,
        "SensoryNeuron/CartPoleSwingUpHarder-v0",
        [parse_condition("shuffled")],
        episodes=EPISODES,
    )
    assert row["episodes"] == EPISODES
    # Two standard errors of a 100-episode mean either side of the published figure.
    margin = 2 * PUBLISHED_STD / EPISODES**0.5
    assert abs(row["mean"] - PUBLISHED_MEAN) < margin, row["mean"]
    assert abs(row["std"] - PUBLISHED_STD) < 60, row["std"]
