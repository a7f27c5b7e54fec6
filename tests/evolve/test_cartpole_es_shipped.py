"""The shipped ES-only cart-pole agent (an AttentionNeuron with softmax attention over
input-change sensory neurons, trained by PGPE alone): it swings up and balances with its
inputs shuffled, where the feed-forward baseline cannot."""

from __future__ import annotations

import numpy as np

import sensoryneuron as sn
from evolve.evaluation.conditions import parse_condition
from evolve.evaluation.evaluate import evaluate_policy
from evolve.presets import get_preset

HARDER = "SensoryNeuron/CartPoleSwingUpHarder-v0"


def _returns(policy, *conditions: str, float64: bool = False) -> list[np.ndarray]:
    rows = evaluate_policy(
        policy,
        HARDER,
        [parse_condition(c) for c in conditions],
        episodes=20,
        seed_offset=0,  # held out: training and its tests used other seeds
        float64=float64,
    )
    return [np.asarray(row["returns"]) for row in rows]


def test_the_shipped_es_agent_balances_shuffled_inputs_and_the_baseline_does_not():
    agent = sn.load_policy("cartpole-swingup-harder-es")
    assert agent.model == get_preset("cartpole-swingup-harder-es").model
    assert agent.info["generation"] == 1360
    (ours,) = _returns(agent, "shuffled")
    (fnn,) = _returns(sn.load_policy("fnn-baseline"), "shuffled")
    # these 20 episodes: 721.4 and 111.3; 17 of ours above 500, 2 of the baseline's
    assert ours.mean() > 600 and (ours > 500).sum() >= 15
    assert fnn.mean() < 150 and ours.mean() > 3 * fnn.mean()


def test_the_shipped_es_agent_is_exactly_invariant_with_its_state_realigned():
    agent = sn.load_policy("cartpole-swingup-harder-es")
    never, realigned = _returns(agent, "shuffled", "realigned=25", float64=True)
    np.testing.assert_array_equal(never, realigned)
