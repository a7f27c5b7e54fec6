"""The map from policy outputs to env actions: bounds, argmax, feedback, checkpoints."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest

import sensoryneuron as sn
from sensoryneuron.actions import ActionMap
from sensoryneuron.errors import CheckpointError, ConfigError


def test_unit_box_passes_outputs_through_to_the_bit():
    out = np.random.default_rng(0).uniform(-1, 1, size=(7, 3)).astype(np.float32)
    amap = ActionMap.unit_box(3)
    assert amap.is_identity
    np.testing.assert_array_equal(amap.to_env(out), out.astype(np.float64))
    np.testing.assert_array_equal(amap.feedback(amap.to_env(out)), out)


def test_box_maps_the_tanh_range_onto_the_bounds():
    amap = ActionMap.box([-2.0, 0.0], [2.0, 1.0])
    np.testing.assert_allclose(
        amap.to_env(np.array([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0], [0.5, 0.5]])),
        [[-2.0, 0.0], [0.0, 0.5], [2.0, 1.0], [1.0, 0.75]],
    )
    y = np.array([[0.3, -0.7]])
    np.testing.assert_allclose(amap.feedback(amap.to_env(y)), y, atol=1e-7)


def test_discrete_takes_the_argmax_lowest_index_on_ties_and_feeds_back_one_hot():
    amap = ActionMap.discrete(3)
    out = np.array([[0.1, 0.9, -0.5], [0.2, 0.2, 0.2], [-1.0, -0.9, 0.99]])
    np.testing.assert_array_equal(amap.to_env(out), [1, 0, 2])
    np.testing.assert_array_equal(amap.feedback(np.array([2, 0])), [[0, 0, 1], [1, 0, 0]])
    assert amap.output_dim == 3


def test_from_gymnasium_spaces():
    assert ActionMap.from_space(gym.spaces.Discrete(4)) == ActionMap.discrete(4)
    box = ActionMap.from_space(gym.spaces.Box(-2.0, 2.0, shape=(1,)))
    assert box == ActionMap.box([-2.0], [2.0])
    with pytest.raises(ConfigError, match=re.escape("a Box action space needs finite bounds")):
        ActionMap.from_space(gym.spaces.Box(-np.inf, np.inf, shape=(2,)))
    with pytest.raises(ConfigError, match=re.escape("the action space must be a 1-D Box")):
        ActionMap.from_space(gym.spaces.MultiBinary(3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "grid"}, "action kind must be one of box, discrete; got 'grid'"),
        ({"kind": "box", "low": (0.0,), "high": ()}, "a box action needs as many low as high"),
        ({"kind": "box", "low": (1.0,), "high": (0.0,)}, "finite bounds with low < high"),
        ({"kind": "discrete", "n": 1}, "a discrete action needs n >= 2 choices; got 1"),
    ],
)
def test_bad_maps_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        ActionMap(**kwargs)


def test_round_trip_through_a_dict():
    for amap in (ActionMap.discrete(6), ActionMap.box([-1, 0, 0], [1, 1, 1])):
        assert ActionMap.from_dict(amap.to_dict()) == amap
    with pytest.raises(ConfigError, match=re.escape("unknown action field(s) ['size']")):
        ActionMap.from_dict({"kind": "discrete", "n": 2, "size": 2})


def test_policy_acts_in_the_env_space_and_the_checkpoint_keeps_the_map(tmp_path):
    model = sn.AttentionNeuronModel(act_dim=2)
    params = np.random.default_rng(1).normal(0, 0.5, model.num_params).astype(np.float32)
    policy = sn.Policy(model, params, action=ActionMap.discrete(2))
    obs = np.random.default_rng(2).normal(size=(3, 4)).astype(np.float32)
    action, state = policy.act(obs, policy.reset(batch_size=3))
    assert action.dtype == np.int64 and action.shape == (3,)
    # the policy reads back the one-hot of the action it chose
    np.testing.assert_array_equal(state.carry["prev_action"][0].numpy(), np.eye(2)[action])
    sn.save_policy(tmp_path / "p.npz", policy)
    loaded = sn.load_policy(tmp_path / "p.npz")
    assert loaded.action == ActionMap.discrete(2)
    again, _ = loaded.act(obs, loaded.reset(batch_size=3))
    np.testing.assert_array_equal(again, action)


def test_an_action_map_must_fit_the_model():
    model = sn.AttentionNeuronModel(act_dim=1)
    params = np.zeros(model.num_params, dtype=np.float32)
    with pytest.raises(ConfigError, match=re.escape("the action Discrete(3) needs 3 outputs")):
        sn.Policy(model, params, action=ActionMap.discrete(3))


def test_a_checkpoint_with_a_bad_action_map_is_refused(tmp_path):
    from sensoryneuron.files import load_npz, save_npz

    model = sn.AttentionNeuronModel(act_dim=1)
    sn.save_policy(tmp_path / "p.npz", sn.Policy(model, np.zeros(model.num_params, np.float32)))
    arrays, meta = load_npz(tmp_path / "p.npz")
    meta["action"] = {"kind": "discrete", "n": 1}
    save_npz(tmp_path / "bad.npz", arrays, meta)
    with pytest.raises(CheckpointError, match=re.escape("bad action map")):
        sn.load_policy(tmp_path / "bad.npz")
