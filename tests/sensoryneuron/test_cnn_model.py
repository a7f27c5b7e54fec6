"""The convolutional baseline: its layout, a faithful pass with torch's own layers, batched
equals looped, and what invariance it lacks (a shuffle of the patches changes its action)."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

import sensoryneuron as sn
from sensoryneuron.actions import ActionMap
from sensoryneuron.errors import ConfigError
from sensoryneuron.models import ConvModel, model_from_dict
from sensoryneuron.patches import to_patches

SMALL = ConvModel(
    act_dim=2, height=24, width=36, channels=(4, 6), kernels=(4, 3), strides=(2, 2), features=8,
    hidden=5,
)  # fmt: skip


def stacks(steps, model=SMALL, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (steps, 3, model.frames, model.height, model.width), np.uint8)


def patches_of(frames, model=SMALL):
    return torch.from_numpy(to_patches(frames, model.patch).astype(np.float32) / 255.0)


def test_the_default_layout_and_its_size():
    model = ConvModel()
    assert model.feature_map == (4, 4)
    assert model.num_params == 23_595  # 3 convolutions, 256 -> 32, LSTM(35 -> 32), 32 -> 3
    assert model_from_dict(model.to_dict()) == model


def test_one_step_equals_torchs_conv_linear_and_lstm_layers():
    torch.manual_seed(0)
    params = 0.2 * torch.randn(1, SMALL.num_params, dtype=torch.float64)
    w = SMALL.unflatten(params)
    frames = stacks(1)[0, 0]  # [F, H, W]
    prev = torch.tensor([[0.3, -0.5]], dtype=torch.float64)
    x = torch.from_numpy(frames.astype(np.float64) / 255.0)[None]
    for i, s in enumerate(SMALL.strides):
        conv = torch.nn.functional.conv2d(x, w[f"conv{i}.weight"][0], w[f"conv{i}.bias"][0], s)
        x = torch.relu(conv)
    feats = torch.relu(x.reshape(1, -1) @ w["fc.weight"][0].T + w["fc.bias"][0])
    cell = torch.nn.LSTMCell(SMALL.features + 2, SMALL.hidden).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(w[f"head_lstm.{name}"][0])
        h, _ = cell(torch.cat([feats, prev], -1))
        want = torch.tanh(h @ w["out.weight"][0].T + w["out.bias"][0])
    state = SMALL.init_state(1, 1, dtype=torch.float64)
    state = SMALL.with_previous_action(state, prev[None])
    obs = torch.from_numpy(to_patches(frames, 6).astype(np.float64) / 255.0)[None, None]
    got, _ = SMALL.step(params, obs, state)
    torch.testing.assert_close(got[0], want, rtol=1e-12, atol=1e-12)


def test_the_batched_model_equals_a_loop_over_single_members():
    torch.manual_seed(1)
    params = 0.2 * torch.randn(3, SMALL.num_params)
    seq = stacks(4)  # [T, B, F, H, W]
    state = SMALL.init_state(3, 3)
    singles = [SMALL.init_state(1, 3) for _ in range(3)]
    for t in range(4):
        obs = patches_of(seq[t])[None].expand(3, -1, -1, -1)
        action, state = SMALL.step(params, obs, state)
        for m in range(3):
            one, singles[m] = SMALL.step(params[m : m + 1], obs[m : m + 1], singles[m])
            torch.testing.assert_close(action[m], one[0], rtol=1e-5, atol=1e-6)


def test_shuffled_patches_change_its_action_where_the_attention_neurons_would_not():
    torch.manual_seed(2)
    params = 0.3 * torch.randn(1, SMALL.num_params)
    obs = patches_of(stacks(1)[0])[None]  # [1, B, N, F*p*p]
    perm = torch.from_numpy(np.random.default_rng(0).permutation(obs.shape[2]))
    state = SMALL.init_state(1, 3)
    plain, _ = SMALL.step(params, obs, state)
    shuffled, _ = SMALL.step(params, obs[:, :, perm], state)
    assert (plain - shuffled).abs().max() > 1e-3


def test_policy_acts_on_stacked_frames_and_round_trips_through_a_checkpoint(tmp_path):
    policy = sn.Policy(SMALL, 0.1 * np.random.default_rng(0).standard_normal(SMALL.num_params))
    frames = stacks(1)[0]
    actions, _ = policy.act(frames, policy.reset(3))
    assert actions.shape == (3, 2) and np.abs(actions).max() <= 1
    sn.save_policy(tmp_path / "cnn.npz", policy)
    again = sn.read_policy_file(tmp_path / "cnn.npz")
    assert again.model == SMALL
    np.testing.assert_array_equal(again.act(frames, again.reset(3))[0], actions)
    with pytest.raises(ConfigError, match=re.escape("obs must have shape (batch, 4, 24, 36)")):
        policy.act(frames[:, :, :12], policy.reset(3))


def test_logits_are_the_tanh_outputs_before_the_tanh_and_the_choice_is_read_back(tmp_path):
    logits = dataclasses.replace(SMALL, act_dim=3, output="logits")
    tanh = dataclasses.replace(logits, output="tanh")
    assert logits.num_params == tanh.num_params  # no parameter of its own
    torch.manual_seed(3)
    params = 2.0 * torch.randn(1, logits.num_params, dtype=torch.float64)
    obs = patches_of(stacks(1, logits)[0], logits)[None].double()
    scores, state = logits.step(params, obs, logits.init_state(1, 3, dtype=torch.float64))
    squashed, _ = tanh.step(params, obs, tanh.init_state(1, 3, dtype=torch.float64))
    torch.testing.assert_close(torch.tanh(scores), squashed, rtol=0, atol=1e-12)
    assert scores.abs().max() > 1.0  # not squashed
    policy = sn.Policy(logits, params[0].numpy(), action=ActionMap.discrete(3))
    frames = stacks(2, logits)
    choice, state = policy.act(frames[0], policy.reset(3))
    assert choice.dtype == np.int64 and choice.shape == (3,)
    np.testing.assert_array_equal(state.carry["prev_action"][0].numpy(), np.eye(3)[choice])
    sn.save_policy(tmp_path / "cnn.npz", policy)
    again = sn.read_policy_file(tmp_path / "cnn.npz")
    assert again.model == logits and again.action == policy.action
    np.testing.assert_array_equal(again.act(frames[0], again.reset(3))[0], choice)


def test_without_the_action_input_the_previous_action_changes_nothing():
    blind = dataclasses.replace(SMALL, action_input=False)
    assert SMALL.num_params - blind.num_params == 4 * SMALL.hidden * SMALL.act_dim
    torch.manual_seed(4)
    params = torch.randn(1, blind.num_params)
    obs = patches_of(stacks(1)[0])[None]
    outputs = []
    for prev in (torch.zeros(1, 3, 2), torch.ones(1, 3, 2)):
        state = blind.with_previous_action(blind.init_state(1, 3), prev)
        outputs.append(blind.step(params, obs, state)[0])
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    reading, _ = SMALL.step(torch.randn(1, SMALL.num_params), obs, SMALL.init_state(1, 3))
    assert reading.shape == outputs[0].shape


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"channels": ()}, "channels must be a non-empty tuple of positive integers; got ()"),
        ({"kernels": (8, 4)}, "one entry per convolution; got 3, 2 and 3"),
        ({"height": 12, "width": 12}, "the convolutions leave no pixels of a 12x12 frame"),
        ({"height": 97}, "a 97x96 frame does not split into 6x6 patches"),
        ({"output": "softmax"}, "output must be one of tanh, logits; got 'softmax'"),
        ({"action_input": 1}, "action_input must be true or false; got 1"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        ConvModel(**settings)
