"""The user-facing Policy object and pickle-free checkpoints."""

from __future__ import annotations

import os
import pickle
import re

import numpy as np
import pytest

import sensoryneuron as sn
from sensoryneuron import (
    AttentionNeuronModel,
    CheckpointError,
    ConfigError,
    FeedForwardModel,
    Policy,
)
from sensoryneuron.files import load_npz, save_npz


def make_policy(seed=0, model=None):
    model = model or AttentionNeuronModel(act_dim=1, head_lstm=4)
    rng = np.random.default_rng(seed)
    params = (0.3 * rng.standard_normal(model.num_params)).astype(np.float32)
    return Policy(model, params, task={"env_id": "x"}, info={"generation": 3})


def test_act_is_numpy_in_numpy_out_with_explicit_state():
    policy = make_policy()
    state = policy.reset(batch_size=2)
    obs = np.random.default_rng(1).standard_normal((2, 5)).astype(np.float32)
    action, state2 = policy.act(obs, state)
    assert isinstance(action, np.ndarray) and action.shape == (2, 1)
    assert state2 is not state and state.num_slots is None and state2.num_slots == 5
    again, _ = policy.act(obs, state)  # the old state is untouched: same input, same output
    np.testing.assert_array_equal(again, action)


def test_a_logits_model_picks_a_discrete_action_by_default():
    """A policy made from a logits model without an action map plays its argmax (a Box map
    would hand the env a vector of logits)."""
    model = sn.VisionAttentionNeuronModel(
        act_dim=3, grid=2, msg_dim=4, head="pool", hidden=4, output="logits"
    )
    policy = Policy(model, np.zeros(model.num_params, dtype=np.float32))
    assert policy.action == sn.ActionMap.discrete(3)
    frames = np.random.default_rng(0).random((2, 4, 12, 12)).astype(np.float32)
    action, _ = policy.act(frames, policy.reset(batch_size=2))
    assert action.dtype == np.int64 and action.shape == (2,)
    assert make_policy().action == sn.ActionMap.unit_box(1)


def test_permute_state_contract_holds_mid_episode():
    policy = make_policy()
    rng = np.random.default_rng(2)
    obs_seq = rng.standard_normal((30, 3, 5)).astype(np.float32)
    state = policy.reset(batch_size=3)
    for obs in obs_seq[:15]:
        _, state = policy.act(obs, state)
    perm = rng.permutation(5)
    a_plain, s_plain = policy.act(obs_seq[15], state)
    a_perm, s_perm = policy.act(obs_seq[15][:, perm], policy.permute_state(state, perm))
    np.testing.assert_allclose(a_perm, a_plain, atol=1e-6)
    for obs in obs_seq[16:]:
        a_plain, s_plain = policy.act(obs, s_plain)
        a_perm, s_perm = policy.act(obs[:, perm], s_perm)
        np.testing.assert_allclose(a_perm, a_plain, atol=1e-5)


def test_attention_is_returned_for_visualisation():
    policy = make_policy()
    obs = np.random.default_rng(3).standard_normal((2, 7)).astype(np.float32)
    action, _, attention = policy.act(obs, policy.reset(2), return_attention=True)
    assert attention.shape == (2, 16, 7)
    np.testing.assert_array_equal(action, policy.act(obs, policy.reset(2))[0])  # same step
    # Column i is input i's: permuting the inputs permutes the columns (first step).
    perm = np.array([3, 0, 6, 1, 5, 2, 4])
    _, _, moved = policy.act(obs[:, perm], policy.reset(2), return_attention=True)
    np.testing.assert_allclose(moved, attention[..., perm], atol=1e-6, rtol=0)
    assert np.abs(attention[..., 0] - attention[..., 1]).max() > 1e-3  # inputs differ
    _, _, flat = policy.act(np.zeros((1, 7)), policy.reset(1), return_attention=True)
    np.testing.assert_array_equal(flat, np.repeat(flat[..., :1], 7, axis=2))  # equal inputs


def test_policy_rejects_bad_inputs():
    model = AttentionNeuronModel(act_dim=1)
    with pytest.raises(ConfigError, match=re.escape("params must have shape (913,) for this")):
        Policy(model, np.zeros(912))
    with pytest.raises(ConfigError, match=re.escape("params contain NaN or infinite values")):
        Policy(model, np.full(913, np.nan))
    policy = Policy(model, np.zeros(913))
    with pytest.raises(
        ConfigError, match=re.escape("obs must have shape (batch, inputs); got (5,)")
    ):
        policy.act(np.zeros(5), policy.reset())
    with pytest.raises(
        ConfigError, match=re.escape("batch_size must be a positive integer; got 0")
    ):
        policy.reset(batch_size=0)
    _, state = policy.act(np.zeros((1, 5)), policy.reset())
    with pytest.raises(ConfigError, match=re.escape("perm must be a permutation of 0..4")):
        policy.permute_state(state, np.array([0, 0, 1, 2, 3]))
    with pytest.raises(ConfigError, match=re.escape("perm must have shape (5,) or (batch, 5)")):
        policy.permute_state(state, np.arange(4))


@pytest.mark.parametrize(
    "model", [AttentionNeuronModel(act_dim=2, hidden=(5,)), FeedForwardModel()]
)
def test_checkpoint_round_trip(tmp_path, model):
    policy = make_policy(model=model)
    sn.save_policy(tmp_path / "p.npz", policy)
    loaded = sn.load_policy(tmp_path / "p.npz")
    assert loaded.model == policy.model
    np.testing.assert_array_equal(loaded.params, policy.params)
    assert loaded.task == {"env_id": "x"} and loaded.info == {"generation": 3}
    assert not list(tmp_path.glob(".*.tmp")), "atomic write left a temp file behind"
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "p.npz").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_load_policy_accepts_a_run_folder_and_prefers_best(tmp_path):
    best, latest = make_policy(1), make_policy(2)
    sn.save_policy(tmp_path / "latest.npz", latest)
    np.testing.assert_array_equal(sn.load_policy(tmp_path).params, latest.params)
    sn.save_policy(tmp_path / "best.npz", best)
    np.testing.assert_array_equal(sn.load_policy(tmp_path).params, best.params)


def test_load_policy_errors_are_typed_and_exact(tmp_path):
    with pytest.raises(CheckpointError, match=re.escape("nope: no such run folder, checkpoint")):
        sn.load_policy("nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=re.escape("is not a run folder: it has none of")):
        sn.load_policy(tmp_path / "empty")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match=re.escape("garbage.npz: not a readable .npz file")):
        sn.load_policy(garbage)
    truncated = tmp_path / "truncated.npz"
    sn.save_policy(tmp_path / "ok.npz", make_policy())
    truncated.write_bytes((tmp_path / "ok.npz").read_bytes()[:200])
    with pytest.raises(CheckpointError, match=re.escape("truncated.npz: not a readable .npz file")):
        sn.load_policy(truncated)


def test_parameter_count_mismatch_is_rejected(tmp_path):
    policy = make_policy(model=AttentionNeuronModel(act_dim=1))
    meta = {
        "format": "sensoryneuron.policy",
        "version": 1,
        "model": policy.model.to_dict(),
        "task": None,
        "info": {},
    }
    save_npz(tmp_path / "short.npz", {"params": policy.params[:-1]}, meta)
    with pytest.raises(
        CheckpointError,
        match=re.escape("has 912 parameters but its attention-neuron model needs 913"),
    ):
        sn.load_policy(tmp_path / "short.npz")
    save_npz(
        tmp_path / "wrongkind.npz", {"params": policy.params}, {**meta, "model": {"kind": "x"}}
    )
    with pytest.raises(
        CheckpointError, match=re.escape("bad model description (unknown model kind 'x'")
    ):
        sn.load_policy(tmp_path / "wrongkind.npz")
    save_npz(tmp_path / "f64.npz", {"params": policy.params.astype(np.float64)}, meta)
    with pytest.raises(CheckpointError, match=re.escape("'params' must be float32; got float64")):
        sn.load_policy(tmp_path / "f64.npz")


def test_pickled_payloads_are_never_loaded(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("pickle was executed",))

    path = tmp_path / "evil.npz"
    np.savez(path, params=np.array([Boom()], dtype=object), meta=np.array("{}"))
    with pytest.raises(CheckpointError, match=re.escape("evil.npz: not a readable .npz file")):
        sn.load_policy(path)
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps({"params": np.zeros(913)}))
    with pytest.raises(CheckpointError, match=re.escape("evil.pkl: not a readable .npz file")):
        load_npz(pkl)


def test_save_npz_refuses_object_arrays(tmp_path):
    with pytest.raises(ValueError, match=re.escape("array 'x' has dtype object")):
        save_npz(tmp_path / "o.npz", {"x": np.array([{}], dtype=object)}, {})


def test_reference_cartpole_policy_loads_with_913_parameters(reference_path):
    path = reference_path("cartpole_pi")
    policy = sn.load_reference_policy(path, name="cartpole_pi")
    assert policy.num_params == 913
    assert policy.model == AttentionNeuronModel(act_dim=1, num_latents=16, msg_dim=32, pos_dim=8)
    raw = np.load(path, allow_pickle=False)["params"]
    np.testing.assert_array_equal(policy.params, raw)


def test_reference_loader_errors(tmp_path):
    with pytest.raises(
        ConfigError,
        match=re.escape("unknown reference model 'pong'; allowed: carracing_pi, cartpole_pi"),
    ):
        sn.load_reference_policy(tmp_path / "x.npz", name="pong")
    np.savez(tmp_path / "small.npz", params=np.zeros(10, dtype=np.float32))
    with pytest.raises(
        CheckpointError, match=re.escape("cartpole_pi has 913 parameters; the file holds 10")
    ):
        sn.load_reference_policy(tmp_path / "small.npz")
    np.savez(tmp_path / "nokey.npz", weights=np.zeros(913, dtype=np.float32))
    with pytest.raises(CheckpointError, match=re.escape("nokey.npz: no 'params' array")):
        sn.load_reference_policy(tmp_path / "nokey.npz")
