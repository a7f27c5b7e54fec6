"""The shipped Pong agents: they return balls, and a new patch order changes none of their
moves (their state depends on no order)."""

from __future__ import annotations

import numpy as np
import pytest

import sensoryneuron as sn
from evolve.evaluation.conditions import parse_condition
from evolve.evaluation.evaluate import evaluate_policy
from evolve.presets import get_preset

PONG = "ALE/Pong-v5"


def _returns(policy, *conditions: str) -> list[list[float]]:
    # 500 steps of 2 held-out games (training and validation used seeds below 5000)
    rows = evaluate_policy(
        policy,
        PONG,
        [parse_condition(c) for c in conditions],
        episodes=2,
        seed_offset=5000,
        max_steps=500,
        engine="gym",
    )
    return [row["returns"] for row in rows]


def test_the_shipped_pong_agent_returns_balls_whatever_the_patch_order():
    pytest.importorskip("ale_py")
    agent = sn.load_policy("pong")
    assert agent.model == get_preset("pong").model
    assert agent.action == sn.ActionMap.discrete(6)
    shuffled, reshuffled = _returns(agent, "shuffled", "reshuffle=25")
    # the same games move for move: -8 and -10 over these 500 steps each way
    assert shuffled == reshuffled
    (waiting,) = _returns(sn.Policy(agent.model, np.zeros_like(agent.params)), "shuffled")
    # a player that never moves (all logits 0: NOOP) loses 13 points in each
    assert min(shuffled) >= max(waiting) + 3


def test_the_shipped_occluded_pong_agent_plays_half_of_the_patches_in_any_order():
    pytest.importorskip("ale_py")
    agent = sn.load_policy("pong-occluded")
    assert agent.model == get_preset("pong-occluded").model
    occluded, reshuffled = _returns(agent, "occlude=0.5", "occlude=0.5+reshuffle=25")
    # -13 and -10 over these 500 steps each way; a player that never moves: -13 and -13
    assert occluded == reshuffled
    (waiting,) = _returns(sn.Policy(agent.model, np.zeros_like(agent.params)), "occlude=0.5")
    assert sum(occluded) > sum(waiting)
