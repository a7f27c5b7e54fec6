"""The vision AttentionNeuron: parameter layout, a faithful single-episode forward pass,
invariance to the order of patches, batched equals looped, and the published model."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import sensoryneuron as sn
from sensoryneuron.errors import ConfigError
from sensoryneuron.layers import sinusoidal_table
from sensoryneuron.models import VisionAttentionNeuronModel, model_from_dict
from sensoryneuron.patches import to_patches

SMALL = dict(frames=4, patch=6, grid=8, msg_dim=8, pos_dim=8, top_k=5, query_dim=4, hidden=8)


def frames_sequence(steps: int, size: int = 96, seed: int = 0) -> np.ndarray:
    """Stacks ``[steps, 4, size, size]`` uint8 as a frame stack gives them: copies at reset,
    then one new frame per step (a moving blob on a textured ground)."""
    rng = np.random.default_rng(seed)
    ground = rng.integers(90, 140, (size, size))
    yy, xx = np.mgrid[:size, :size]
    shots = []
    for t in range(steps + 3):
        cy, cx = size / 2 + 20 * math.sin(0.3 * t), size / 2 + 20 * math.cos(0.2 * t)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 60.0)
        shots.append(np.clip(ground + 110 * blob, 0, 255).astype(np.uint8))
    stacks = [np.stack([shots[0]] * 4)]
    for t in range(1, steps):
        stacks.append(np.stack([shots[max(t - 3 + k, 0)] for k in range(4)]))
    return np.stack(stacks)


def faithful_step(model, w, frames, carry):
    """One step of one episode, written from the method's description with plain loops."""
    p, F = model.patch, model.frames
    x = torch.as_tensor(frames, dtype=w["query.weight"].dtype) / 255.0  # [F, H, W]
    rows, cols = x.shape[1] // p, x.shape[2] // p
    keys, values = [], []
    for r in range(rows):
        for c in range(cols):
            patch = x[:, r * p : (r + 1) * p, c * p : (c + 1) * p].reshape(F, p * p)
            diff = patch[1:] - patch[:-1]  # [F-1, p*p]
            keys.append(torch.cat([diff.T.reshape(-1), carry["action"]]))
            norm = [(s - s.mean()) / torch.sqrt(s.var(unbiased=False) + 1e-5) for s in patch]
            values.append(torch.cat(norm))
    K = torch.stack(keys) @ w["key.weight"].T + w["key.bias"]
    V = torch.stack(values) @ w["value.weight"].T + w["value.bias"]
    table = sinusoidal_table(model.num_codes, model.pos_dim, K.dtype)
    Q = table @ w["query.weight"].T + w["query.bias"]
    A = torch.softmax(Q @ K.T / math.sqrt(model.msg_dim), dim=-1)
    codes = A @ V
    codes = torch.relu(codes)
    codes = (codes - codes.mean(-1, keepdim=True)) / torch.sqrt(
        codes.var(-1, unbiased=False, keepdim=True) + 1e-5
    )
    codes = (1 - carry["alpha"]) * codes + carry["alpha"] * carry["codes"]
    q = codes @ w["importance_query.weight"].T + w["importance_query.bias"]
    k = codes @ w["importance_key.weight"].T + w["importance_key.bias"]
    importance = torch.softmax(q @ k.T, dim=-1).sum(0)
    # ties (equal codes: every code at reset) to the lowest index, whatever the round-off
    level = [round(float(v), 9) for v in importance]
    ranked = sorted(range(model.num_codes), key=lambda i: (-level[i], i))
    top = ranked[: model.top_k]
    centers = torch.tensor(
        [[i // model.grid / model.grid, i % model.grid / model.grid] for i in top],
        dtype=K.dtype,
    ).reshape(-1)
    cell = torch.nn.LSTMCell(2 * model.top_k, model.hidden).to(K.dtype)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(w[f"head_lstm.{name}"])
        h, c = cell(centers[None], (carry["h"][None], carry["c"][None]))
    h, c = h[0], c[0]
    action = torch.tanh(h @ w["out.weight"].T + w["out.bias"])
    mix = torch.tanh(torch.cat([h, action]) @ w["mixing0.weight"].T + w["mixing0.bias"])
    alpha = torch.sigmoid(mix @ w["mixing1.weight"].T + w["mixing1.bias"])
    return action, codes, {"action": action, "alpha": alpha, "codes": codes, "h": h, "c": c}


def faithful_episode(model, params, stacks):
    w = {k: v[0] for k, v in model.unflatten(params[None]).items()}
    dtype = params.dtype
    carry = {
        "action": torch.zeros(model.act_dim, dtype=dtype),
        "alpha": torch.zeros(1, dtype=dtype),
        "codes": torch.zeros(model.num_codes, model.msg_dim, dtype=dtype),
        "h": torch.zeros(model.hidden, dtype=dtype),
        "c": torch.zeros(model.hidden, dtype=dtype),
    }
    actions, codes = [], []
    with torch.no_grad():
        for frames in stacks:
            a, x, carry = faithful_step(model, w, frames, carry)
            actions.append(a)
            codes.append(x)
    return torch.stack(actions), torch.stack(codes)


def model_episode(model, params, patches, dtype=torch.float64):
    """Open loop: the model's actions and codes on ``patches[T, P, B, N, D]``."""
    params = params.to(dtype)
    weights = model.prepare(params)
    state = model.init_state(params.shape[0], patches.shape[2], dtype=dtype)
    actions, codes = [], []
    for x in patches:
        x = torch.as_tensor(x, dtype=dtype)
        action, state = model.step_prepared(weights, x, state)
        codes.append(state.carry.get("prev_codes", action.new_zeros(0)))  # top-k: blended
        actions.append(action)
    return torch.stack(actions), torch.stack(codes)


def random_params(model, members=1, seed=0, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(members, model.num_params, generator=g, dtype=torch.float64)


def test_the_published_layout_has_7212_parameters_in_module_order():
    model = VisionAttentionNeuronModel()
    assert model.num_params == 7212
    assert model.param_spec.names[:6] == (
        "query.weight",
        "query.bias",
        "key.weight",
        "key.bias",
        "value.weight",
        "value.bias",
    )
    assert dict(model.param_spec.entries)["key.weight"] == (16, 3 * 36 + 3)
    assert model.param_spec.names[-2:] == ("mixing1.weight", "mixing1.bias")


def test_small_model_matches_a_faithful_forward_pass_in_float64():
    model = VisionAttentionNeuronModel(**SMALL)
    stacks = frames_sequence(12, size=48)
    params = random_params(model)
    want_actions, want_codes = faithful_episode(model, params[0], stacks)
    patches = to_patches(stacks, 6)[:, None, None] / 255.0  # [T, P=1, B=1, N, D]
    actions, codes = model_episode(model, params, patches)
    torch.testing.assert_close(codes[:, 0, 0], want_codes, rtol=0, atol=1e-10)
    torch.testing.assert_close(actions[:, 0, 0], want_actions, rtol=0, atol=1e-10)


def test_published_model_codes_match_the_faithful_pass_and_actions_in_float64(reference_path):
    policy = sn.load_reference_policy(reference_path("carracing_pi"), name="carracing_pi")
    model = policy.model
    stacks = frames_sequence(6)
    params32 = torch.from_numpy(policy.params.copy())[None]
    # float32 codes: the tie-free part, to 1e-5
    want32_actions, want32_codes = faithful_episode(
        model, params32[0].to(torch.float32), stacks[:1]
    )
    weights = model.prepare(params32)
    x = torch.from_numpy(to_patches(stacks[:1], 6) / np.float32(255))[None]
    codes32, _ = model.codes(weights, x, torch.zeros(1, 1, 3))
    torch.testing.assert_close(codes32[0], want32_codes, rtol=0, atol=1e-5)
    # float64: actions too, ties broken by the lowest index in both
    params = params32.to(torch.float64)
    want_actions, want_codes = faithful_episode(model, params[0], stacks)
    patches = to_patches(stacks, 6)[:, None, None] / 255.0
    actions, codes = model_episode(model, params, patches)
    torch.testing.assert_close(codes[:, 0, 0], want_codes, rtol=0, atol=1e-9)
    torch.testing.assert_close(actions[:, 0, 0], want_actions, rtol=0, atol=1e-9)


OPTIONS = [
    {"head": "top-k"},
    {"head": "pool"},
    {"head": "pool", "action_query": True, "head_memory": False},
    {"head": "pool", "output": "logits"},
    {"head": "pool", "value_stats": True, "key_content": True},
]
OPTION_IDS = ["top-k", "pool", "pool-action-query-memoryless", "pool-logits", "pool-content"]


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_shuffling_the_patches_at_reset_changes_nothing(options):
    model = VisionAttentionNeuronModel(**{**SMALL, **options})
    head = model.head
    stacks = frames_sequence(15, size=48, seed=3)
    params = random_params(model, seed=1)
    patches = to_patches(stacks, 6) / 255.0  # [T, N, D]
    perm = np.random.default_rng(0).permutation(patches.shape[1])
    both = np.stack([patches, patches[:, perm]], axis=1)[:, None]  # [T, 1, B=2, N, D]
    actions, codes = model_episode(model, params, both)
    assert torch.equal(actions[:, 0, 0], actions[:, 0, 1])  # float64: exactly
    actions32, codes32 = model_episode(model, params, both, dtype=torch.float32)
    if head == "top-k":
        assert torch.equal(codes[:, 0, 0], codes[:, 0, 1])
        torch.testing.assert_close(codes32[:, 0, 0], codes32[:, 0, 1], rtol=0, atol=1e-5)
    else:  # no tie-prone choice: float32 actions agree too
        torch.testing.assert_close(actions32[:, 0, 0], actions32[:, 0, 1], rtol=0, atol=1e-5)


def test_an_occluded_screen_is_just_fewer_patches():
    model = VisionAttentionNeuronModel(**SMALL)
    patches = to_patches(frames_sequence(3, size=48), 6) / 255.0  # [T, 64, D]
    keep = np.sort(np.random.default_rng(1).permutation(64)[:40])
    actions, _ = model_episode(model, random_params(model), patches[:, keep][:, None, None])
    assert actions.shape == (3, 1, 1, model.act_dim) and torch.isfinite(actions).all()


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_the_batched_model_equals_a_loop_over_single_members(options):
    model = VisionAttentionNeuronModel(**{**SMALL, **options})
    head = model.head
    params = random_params(model, members=3, seed=2)
    stacks = np.stack([frames_sequence(8, size=48, seed=s) for s in (4, 5)], axis=1)
    patches = to_patches(stacks, 6) / 255.0  # [T, B=2, N, D]
    batched = np.broadcast_to(patches[:, None], (8, 3, *patches.shape[1:])).copy()
    exact = 0.0 if head == "top-k" else 1e-12  # the pool head's matmuls are BLAS's
    for dtype, atol in ((torch.float64, exact), (torch.float32, 1e-6)):
        actions, _ = model_episode(model, params, batched, dtype=dtype)
        for p in range(3):
            alone, _ = model_episode(model, params[p : p + 1], patches[:, None], dtype=dtype)
            torch.testing.assert_close(actions[:, p], alone[:, 0], rtol=0, atol=atol)


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_the_fused_attention_of_the_fit_gives_the_explicit_codes_and_gradients(options):
    model = VisionAttentionNeuronModel(**{**SMALL, **options})
    x = torch.from_numpy(to_patches(frames_sequence(6, size=48, seed=2)[2:], 6) / 255.0)
    a = torch.tensor([[[0.9, -0.5, 0.2]] * 4]).transpose(0, 1).reshape(1, 4, 3)
    params = random_params(model, seed=4)
    # float64 keeps the order-free path whatever is asked: bit for bit
    w64 = model.prepare(params.double())
    explicit, attention = model.codes(w64, x[None], a.double())
    fused, none = model.codes(w64, x[None], a.double(), with_attention=False)
    assert torch.equal(explicit, fused) and none is None and attention.shape[-1] == 64
    # float32: torch's fused kernel, equal up to round-off, and so are the gradients
    grads = []
    for with_attention in (True, False):
        p = params.float().clone().requires_grad_(True)
        codes, _ = model.codes(model.prepare(p), x[None].float(), a, with_attention)
        (codes * torch.linspace(-1, 1, codes.shape[-1])).sum().backward()
        grads.append((codes.detach(), p.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=0, atol=1e-5)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-4, atol=1e-4)


def test_the_previous_action_moves_the_codes_only_through_the_queries():
    x = torch.from_numpy(to_patches(frames_sequence(3, size=48)[2:], 6) / np.float64(255))[None]
    a, b = torch.tensor([[[0.9, -0.5, 0.2]]]), torch.tensor([[[-0.7, 0.4, -0.9]]])
    for action_query, moves in ((False, False), (True, True)):
        model = VisionAttentionNeuronModel(**{**SMALL, "head": "pool"}, action_query=action_query)
        w = model.prepare(random_params(model, seed=3))
        first = model.codes(w, x, a.double())[0]
        second = model.codes(w, x, b.double())[0]
        # in the key, the action adds the same to every patch's score: the softmax cancels it
        assert ((first - second).abs().max() > 1e-3) == moves
    assert model.num_params == VisionAttentionNeuronModel(**SMALL, head="pool").num_params + 24
    with pytest.raises(ConfigError, match="action_query must be true or false; got 1"):
        VisionAttentionNeuronModel(action_query=1)


def test_value_stats_tell_flat_patches_apart_and_key_content_selects_by_content():
    def still(levels):  # a static screen: 4 copies of one frame, a level per patch
        frame = np.kron(np.asarray(levels, np.float64), np.ones((6, 6)))
        return torch.from_numpy(to_patches(np.stack([frame] * 4)[None], 6) / 255.0)[None]

    dark, bright = still([[60, 60], [60, 60]]), still([[180, 180], [180, 180]])
    half = still([[60, 180], [180, 180]])
    zero = torch.zeros(1, 1, 3, dtype=torch.float64)
    for value_stats in (False, True):
        model = VisionAttentionNeuronModel(**{**SMALL, "head": "pool"}, value_stats=value_stats)
        w = model.prepare(random_params(model, seed=3))
        # the layer norm maps every flat patch to the same value: only the stats differ
        moved = (model.codes(w, dark, zero)[0] - model.codes(w, bright, zero)[0]).abs().max()
        assert (moved > 1e-3) == value_stats
    assert model.value_size == model.patch_size + 8
    for key_content in (False, True):
        model = VisionAttentionNeuronModel(**{**SMALL, "head": "pool"}, key_content=key_content)
        attention = model.codes(model.prepare(random_params(model, seed=3)), half, zero)[1]
        # nothing moves, so the frame differences give every patch the same key
        assert (attention.std(-1).max() > 1e-6) == key_content
    assert model.key_size == 4 * 36 + 3
    with pytest.raises(ConfigError, match="value_stats must be true or false; got 1"):
        VisionAttentionNeuronModel(value_stats=1)


def test_a_memoryless_pool_head_acts_on_the_current_stack_and_previous_action_alone():
    model = VisionAttentionNeuronModel(**{**SMALL, "head": "pool"}, head_memory=False)
    with_lstm = VisionAttentionNeuronModel(**{**SMALL, "head": "pool"})
    h, width = SMALL["hidden"], SMALL["msg_dim"] + SMALL["pos_dim"]
    lstm = 4 * h * (model.pool_queries * width + h) + 8 * h
    assert model.num_params == with_lstm.num_params - lstm + h * model.pool_queries * width + h
    params = random_params(model, seed=4)
    x = to_patches(frames_sequence(6, size=48, seed=2), 6) / 255.0  # [T, N, D]
    actions, _ = model_episode(model, params, x[:, None, None])
    # a state run through other frames first acts the same on the same stack and action
    w = model.prepare(params)
    state = model.init_state(1, 1, dtype=torch.float64)
    for t in (3, 0, 5):
        _, state = model.step_prepared(w, torch.from_numpy(x[t])[None, None], state)
    fresh = model.with_previous_action(
        model.init_state(1, 1, dtype=torch.float64), state.carry["prev_action"]
    )
    state = model.with_previous_action(state, state.carry["prev_action"])
    obs = torch.from_numpy(x[4])[None, None]
    torch.testing.assert_close(
        model.step_prepared(w, obs, state)[0], model.step_prepared(w, obs, fresh)[0], rtol=0, atol=0
    )
    assert torch.isfinite(actions).all()
    with pytest.raises(ConfigError, match="head_memory=False needs the pool head"):
        VisionAttentionNeuronModel(head_memory=False)


def test_attention_rows_are_softmaxes_over_the_patches():
    model = VisionAttentionNeuronModel(**SMALL)
    params = random_params(model).to(torch.float32)
    x = torch.from_numpy(to_patches(frames_sequence(2, size=48)[1:], 6) / np.float32(255))[None]
    _, _, attention = model.step_prepared(
        model.prepare(params), x, model.init_state(1, 1), with_attention=True
    )
    assert attention.shape == (1, 1, model.num_codes, 64)
    torch.testing.assert_close(attention.sum(-1), torch.ones(1, 1, model.num_codes))


def test_policy_acts_on_stacked_frames_and_round_trips_through_a_checkpoint(tmp_path):
    model = VisionAttentionNeuronModel()
    params = (
        0.1 * torch.randn(model.num_params, generator=torch.Generator().manual_seed(0))
    ).numpy()
    action_map = sn.ActionMap.box([-1.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    policy = sn.Policy(model, params, action=action_map)
    frames = frames_sequence(2)[1:]  # [1, 4, 96, 96] uint8
    action, state = policy.act(frames, policy.reset(1))
    assert action.shape == (1, 3) and 0.0 <= action[0, 1] <= 1.0 and 0.0 <= action[0, 2] <= 1.0
    sn.save_policy(tmp_path / "p.npz", policy)
    loaded = sn.read_policy_file(tmp_path / "p.npz")
    assert loaded.model == model and loaded.action == action_map
    again, _ = loaded.act(frames, loaded.reset(1))
    np.testing.assert_array_equal(action, again)
    with pytest.raises(ConfigError, match=r"obs must have shape \(batch, 4, height, width\)"):
        policy.act(frames[0], policy.reset(1))


@pytest.mark.parametrize("head", ["top-k", "pool"])
def test_the_logits_output_is_the_tanh_output_before_its_tanh(head):
    tanh = VisionAttentionNeuronModel(**SMALL, head=head, act_dim=6)
    logits = VisionAttentionNeuronModel(**SMALL, head=head, act_dim=6, output="logits")
    assert logits.num_params == tanh.num_params  # the same layers, the last one linear
    params = random_params(tanh, seed=6, scale=2.0)
    x = torch.from_numpy(to_patches(frames_sequence(2, size=48, seed=1)[1:], 6) / 255.0)[None]
    out_tanh, _ = tanh.step(params, x, tanh.init_state(1, 1, dtype=torch.float64))
    out_logits, _ = logits.step(params, x, logits.init_state(1, 1, dtype=torch.float64))
    assert out_logits.abs().max() > 1.0  # not squashed
    torch.testing.assert_close(torch.tanh(out_logits), out_tanh, rtol=0, atol=1e-12)


@pytest.mark.parametrize("head", ["top-k", "pool"])
def test_an_output_gain_reaches_the_bounds_that_a_tanh_never_does(head, tmp_path):
    plain = VisionAttentionNeuronModel(**SMALL, head=head, act_dim=6)
    gained = VisionAttentionNeuronModel(**SMALL, head=head, act_dim=6, output_gain=1.25)
    assert gained.num_params == plain.num_params  # no parameter of its own
    params = random_params(plain, seed=6, scale=2.0)
    x = torch.from_numpy(to_patches(frames_sequence(2, size=48, seed=1)[1:], 6) / 255.0)[None]
    out, _ = plain.step(params, x, plain.init_state(1, 1, dtype=torch.float64))
    out_gained, state = gained.step(params, x, gained.init_state(1, 1, dtype=torch.float64))
    torch.testing.assert_close(out_gained, (1.25 * out).clamp(-1, 1), rtol=0, atol=1e-12)
    assert out.abs().max() < 1.0 and (out_gained.abs() == 1.0).any()  # the bounds, exactly
    torch.testing.assert_close(state.carry["prev_action"], out_gained)  # what it fed back
    policy = sn.Policy(gained, params[0].to(torch.float32).numpy())
    sn.save_policy(tmp_path / "p.npz", policy)
    assert sn.read_policy_file(tmp_path / "p.npz").model.output_gain == 1.25
    for bad in (0.5, float("nan"), True, "2"):
        with pytest.raises(ConfigError, match=r"output_gain must be a number in \[1, 10\)"):
            VisionAttentionNeuronModel(**SMALL, output_gain=bad)
    with pytest.raises(
        ConfigError, match=re.escape("output_gain scales tanh outputs; output='logits' has none")
    ):
        VisionAttentionNeuronModel(**SMALL, output="logits", output_gain=1.25)


def test_a_discrete_policy_acts_by_the_argmax_reads_back_the_one_hot_and_round_trips(tmp_path):
    model = VisionAttentionNeuronModel(**SMALL, head="pool", act_dim=6, output="logits")
    params = random_params(model, seed=7, scale=2.0)[0].to(torch.float32).numpy()
    policy = sn.Policy(model, params, action=sn.ActionMap.discrete(6))
    frames = frames_sequence(3, size=48, seed=2)  # [3, 4, 48, 48]: three stacks
    state = policy.reset(1)
    weights = model.prepare(torch.from_numpy(params)[None])
    actions = []
    for t in range(3):
        logits, _ = model.step_prepared(weights, model.policy_input(frames[t : t + 1]), state)
        action, state = policy.act(frames[t : t + 1], state)
        assert action.dtype == np.int64 and action[0] == int(logits[0, 0].argmax())
        np.testing.assert_array_equal(state.carry["prev_action"][0, 0], np.eye(6)[action[0]])
        actions.append(int(action[0]))
    sn.save_policy(tmp_path / "p.npz", policy)
    loaded = sn.read_policy_file(tmp_path / "p.npz")
    assert loaded.model == model and loaded.model.output == "logits"
    state = loaded.reset(1)
    for t in range(3):
        action, state = loaded.act(frames[t : t + 1], state)
        assert int(action[0]) == actions[t]
    # a model saved before the option existed reads as tanh
    old = VisionAttentionNeuronModel(**SMALL).to_dict()
    del old["output"]
    assert model_from_dict(old).output == "tanh"


def test_bad_settings_are_refused():
    assert model_from_dict(VisionAttentionNeuronModel(**SMALL).to_dict()) == (
        VisionAttentionNeuronModel(**SMALL)
    )
    with pytest.raises(ConfigError, match="head must be one of top-k, pool; got 'conv'"):
        VisionAttentionNeuronModel(head="conv")
    with pytest.raises(
        ConfigError, match=re.escape("output must be one of tanh, logits; got 'softmax'")
    ):
        VisionAttentionNeuronModel(output="softmax")
    with pytest.raises(
        ConfigError, match=re.escape("output must be one of tanh, logits; got None")
    ):
        VisionAttentionNeuronModel(output=None)
    with pytest.raises(ConfigError, match="frames must be at least 2"):
        VisionAttentionNeuronModel(frames=1)
    with pytest.raises(ConfigError, match="top_k=20 exceeds the 16 codes of a 4x4 grid"):
        VisionAttentionNeuronModel(grid=4, top_k=20)
    model = VisionAttentionNeuronModel(**SMALL)
    weights = model.prepare(random_params(model).to(torch.float32))
    with pytest.raises(ConfigError, match=r"obs must have shape \(members, batch, patches, 144\)"):
        model.step_prepared(weights, torch.zeros(1, 1, 64, 36), model.init_state(1, 1))
