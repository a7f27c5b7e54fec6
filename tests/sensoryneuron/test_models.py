"""Behaviour of the batched architectures: invariance, batching, equivalence to torch modules."""

from __future__ import annotations

import math
import re

import pytest
import torch

from sensoryneuron import AttentionNeuronModel, ConfigError, FeedForwardModel, model_from_dict
from sensoryneuron.layers import sinusoidal_table

CARTPOLE = AttentionNeuronModel(act_dim=1)
ANT = AttentionNeuronModel(
    act_dim=8, num_latents=32, attention_bias=True, attention_scale=True, hidden=(32,)
)
WITH_HEAD_LSTM = AttentionNeuronModel(act_dim=2, head_lstm=6, hidden=(7,), attention_bias=True)
SOFTMAX = AttentionNeuronModel(act_dim=1, attention="softmax", head_lstm=4, hidden=(8,))
INPUT_CHANGE = AttentionNeuronModel(act_dim=2, input_change=True, pos_dim=6, head_lstm=4)
LATERAL = AttentionNeuronModel(act_dim=1, input_change=True, lateral_dim=3, pos_dim=5)
MODELS = [CARTPOLE, ANT, WITH_HEAD_LSTM, SOFTMAX, INPUT_CHANGE, LATERAL]
IDS = ["cartpole", "ant", "head-lstm", "softmax", "input-change", "lateral"]


def random_params(model, members, seed=0, scale=0.5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(members, model.num_params, generator=g, dtype=dtype)


def rollout_open_loop(model, params, obs_seq, state=None):
    """Replay recorded observations; return the stacked actions [T, P, B, A]."""
    P, B = obs_seq.shape[1], obs_seq.shape[2]
    state = state or model.init_state(P, B, dtype=params.dtype)
    weights = model.prepare(params)
    actions = []
    for obs in obs_seq:
        action, state = model.step_prepared(weights, obs, state)
        actions.append(action)
    return torch.stack(actions), state


def test_parameter_counts_match_the_paper():
    assert CARTPOLE.num_params == 913
    assert ANT.num_params == 2504


def test_sinusoidal_table_follows_the_transformer_formula():
    table = sinusoidal_table(16, 8, torch.float64)
    for p in (0, 3, 15):
        for j in range(8):
            angle = p / 10000 ** (2 * (j // 2) / 8)
            expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert table[p, j].item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_flatten_unflatten_round_trip(model):
    flat = random_params(model, 3)
    assert torch.equal(model.flatten(model.unflatten(flat)), flat)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_permutation_at_reset_gives_identical_actions_open_loop(model):
    T, P, B, N = 50, 2, 3, 7
    params = random_params(model, P, dtype=torch.float32, scale=0.25)
    obs = torch.randn(T, P, B, N, generator=torch.Generator().manual_seed(1))
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(2))
    plain, _ = rollout_open_loop(model, params, obs)
    shuffled, _ = rollout_open_loop(model, params, obs[..., perm])
    assert not torch.equal(perm, torch.arange(N))
    # float32 round-off, grown over 50 steps; the lateral attention has more terms to round
    torch.testing.assert_close(shuffled, plain, atol=5e-5 if model.lateral_dim else 1e-5, rtol=0)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_realigned_state_keeps_mid_episode_reshuffle_exact(model):
    T, P, B, N = 40, 2, 3, 6
    params = random_params(model, P)
    obs = torch.randn(T, P, B, N, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(4))
    reference, _ = rollout_open_loop(model, params, obs)

    head, state = rollout_open_loop(model, params, obs[:20])
    realigned, _ = rollout_open_loop(model, params, obs[20:, ..., perm], state.permute(perm))
    torch.testing.assert_close(torch.cat([head, realigned]), reference, atol=1e-12, rtol=0)

    # Only the inputs move: slot i's LSTM now reads another sensor, so actions change.
    not_realigned, _ = rollout_open_loop(model, params, obs[20:, ..., perm], state)
    assert (not_realigned - reference[20:]).abs().max() > 1e-3


def test_per_episode_permutations_realign_each_episode():
    P, B, N = 1, 3, 5
    params = random_params(CARTPOLE, P)
    obs = torch.randn(12, P, B, N, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    perms = torch.stack(
        [torch.randperm(N, generator=torch.Generator().manual_seed(s)) for s in range(B)]
    )
    reference, _ = rollout_open_loop(CARTPOLE, params, obs)
    head, state = rollout_open_loop(CARTPOLE, params, obs[:6])
    moved = torch.stack([obs[6:, :, b, perms[b]] for b in range(B)], dim=2)
    tail, _ = rollout_open_loop(CARTPOLE, params, moved, state.permute(perms))
    torch.testing.assert_close(tail, reference[6:], atol=1e-12, rtol=0)


def test_same_parameters_run_on_5_and_on_15_inputs():
    """One vector, any number of inputs: each run equals the unbatched reference."""
    params = random_params(CARTPOLE, 2)
    g = torch.Generator().manual_seed(11)
    runs = {}
    for n in (5, 15):
        obs = torch.randn(5, 2, 4, n, dtype=torch.float64, generator=g)
        actions, state = rollout_open_loop(CARTPOLE, params, obs)
        assert actions.shape == (5, 2, 4, 1)
        assert state.slots["h"].shape == (2, 4, n, 8)
        for p in range(2):
            for b in range(4):
                expected = reference_attention_neuron_episode(CARTPOLE, params[p], obs[:, p, b])
                torch.testing.assert_close(actions[:, p, b], expected, atol=1e-12, rtol=0)
        runs[n] = actions
    assert (runs[5] - runs[15]).abs().max() > 1e-3  # different inputs, different actions


@pytest.mark.parametrize(
    "model",
    [*MODELS, FeedForwardModel(obs_dim=6, act_dim=2, hidden=(8, 4))],
    ids=[*IDS, "fnn"],
)
def test_batched_step_equals_a_loop_over_members(model):
    P, B, N = 5, 3, 6
    params = random_params(model, P, dtype=torch.float32)
    obs = torch.randn(10, P, B, N, generator=torch.Generator().manual_seed(6))
    batched, _ = rollout_open_loop(model, params, obs)
    looped = torch.cat(
        [rollout_open_loop(model, params[p : p + 1], obs[:, p : p + 1])[0] for p in range(P)], dim=1
    )
    # Equal up to float32 round-off: vectorised elementwise kernels treat a tensor's tail
    # elements apart, so the last bit can depend on the population size.
    torch.testing.assert_close(batched, looped, atol=1e-6, rtol=0)


def reference_attention_neuron_episode(model, flat, obs_seq):
    """An unbatched, module-based implementation of DESIGN.md's vector AttentionNeuron."""
    w = {k: v[0] for k, v in model.unflatten(flat[None]).items()}
    lstm = torch.nn.LSTMCell(1 + model.act_dim, model.pos_dim).double()
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(lstm, name).data = w[f"neuron.{name}"].clone()
    q = sinusoidal_table(model.num_latents, model.pos_dim, torch.float64) @ w["query.weight"].T
    n = obs_seq.shape[1]
    h = torch.zeros(n, model.pos_dim, dtype=torch.float64)
    c = torch.zeros_like(h)
    prev = torch.zeros(model.act_dim, dtype=torch.float64)
    actions = []
    for obs in obs_seq:
        x = torch.stack([torch.cat([obs[i : i + 1], prev]) for i in range(n)])
        h, c = lstm(x, (h, c))
        scores = q @ (h @ w["key.weight"].T).T
        latent = torch.tanh(torch.tanh(scores) @ obs)
        prev = torch.tanh(w["out.weight"] @ latent + w["out.bias"])
        actions.append(prev)
    return torch.stack(actions)


def test_layer_matches_an_unbatched_module_implementation():
    params = random_params(CARTPOLE, 1, seed=7)
    obs = torch.randn(25, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    expected = reference_attention_neuron_episode(CARTPOLE, params[0], obs)
    actual, _ = rollout_open_loop(CARTPOLE, params, obs[:, None, None, :])
    torch.testing.assert_close(actual[:, 0, 0], expected, atol=1e-12, rtol=0)


def test_scaling_and_bias_change_the_scores():
    base = AttentionNeuronModel(act_dim=1, attention_bias=True)
    scaled = AttentionNeuronModel(act_dim=1, attention_bias=True, attention_scale=True)
    params = random_params(base, 1, scale=1.0)
    for key in ("query_key", "query_key_bias"):
        torch.testing.assert_close(
            scaled.prepare(params)[key] * math.sqrt(32), base.prepare(params)[key]
        )


def test_attention_weights_are_returned_per_latent_and_input():
    params = random_params(CARTPOLE, 2)
    state = CARTPOLE.init_state(2, 3, dtype=torch.float64)
    obs = torch.randn(2, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(12))
    action, _, attention = CARTPOLE.step_prepared(CARTPOLE.prepare(params), obs, state, True)
    assert attention.shape == (2, 3, 16, 5)
    # They are the weights the action came from: tanh(W tanh(attention @ obs) + b).
    w = CARTPOLE.unflatten(params)
    latent = torch.tanh(torch.einsum("pbmn,pbn->pbm", attention, obs))
    mixed = torch.einsum("pam,pbm->pba", w["out.weight"], latent) + w["out.bias"][:, None]
    torch.testing.assert_close(action, torch.tanh(mixed), atol=1e-12, rtol=0)
    assert attention.abs().max() < 1 and attention.std() > 0.1  # tanh, and not saturated


def test_softmax_attention_ignores_how_often_each_input_is_repeated():
    """Repeating every input k times gives the same actions; tanh attention sums the copies."""
    g = torch.Generator().manual_seed(3)
    obs = torch.randn(30, 2, 3, 5, generator=g, dtype=torch.float64)
    twice = obs.repeat_interleave(2, dim=-1)[..., torch.randperm(10, generator=g)]
    params = random_params(SOFTMAX, 2)
    once, _ = rollout_open_loop(SOFTMAX, params, obs)
    repeated, _ = rollout_open_loop(SOFTMAX, params, twice)
    torch.testing.assert_close(repeated, once, atol=1e-12, rtol=0)
    tanh_params = random_params(WITH_HEAD_LSTM, 2)
    once, _ = rollout_open_loop(WITH_HEAD_LSTM, tanh_params, obs)
    repeated, _ = rollout_open_loop(WITH_HEAD_LSTM, tanh_params, twice)
    assert (repeated - once).abs().max() > 1e-3


def test_softmax_attention_weights_sum_to_one_over_the_inputs():
    weights = SOFTMAX.prepare(random_params(SOFTMAX, 2))
    obs = torch.randn(2, 3, 7, dtype=torch.float64)
    _, _, attention = SOFTMAX.step_prepared(
        weights, obs, SOFTMAX.init_state(2, 3, dtype=torch.float64), with_attention=True
    )
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 3, 16, dtype=torch.float64))
    assert (
        SOFTMAX.num_params
        == AttentionNeuronModel(act_dim=1, head_lstm=4, hidden=(8,)).num_params
        + SOFTMAX.num_latents
    )  # one gain per latent


def test_input_change_adds_the_change_and_its_product_with_the_action_as_lstm_inputs():
    plain = AttentionNeuronModel(act_dim=2, pos_dim=6, head_lstm=4)
    assert INPUT_CHANGE.neuron_input_size == 6 and plain.neuron_input_size == 3
    assert INPUT_CHANGE.num_params == plain.num_params + 4 * 6 * 3
    wide = INPUT_CHANGE.unflatten(random_params(INPUT_CHANGE, 2))
    narrow = {k: v for k, v in wide.items() if k != "neuron.weight_ih"}
    narrow["neuron.weight_ih"] = wide["neuron.weight_ih"][..., :3]
    obs = torch.randn(12, 2, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    reference, _ = rollout_open_loop(plain, plain.flatten(narrow), obs)
    # With the change columns zeroed the layer is the paper's; with them, it reads the change.
    wide["neuron.weight_ih"][..., 3:] = 0.0
    silent, _ = rollout_open_loop(INPUT_CHANGE, INPUT_CHANGE.flatten(wide), obs)
    torch.testing.assert_close(silent, reference, atol=1e-12, rtol=0)
    wide["neuron.weight_ih"][..., 3] = 1.0  # the change itself
    hearing, _ = rollout_open_loop(INPUT_CHANGE, INPUT_CHANGE.flatten(wide), obs)
    torch.testing.assert_close(hearing[0], reference[0], atol=1e-12, rtol=0)  # no change yet
    assert (hearing[1:] - reference[1:]).abs().max() > 1e-3


def test_input_change_starts_from_zero_with_a_fresh_or_a_sized_state():
    params = random_params(INPUT_CHANGE, 2)
    obs = torch.randn(6, 2, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    fresh, _ = rollout_open_loop(INPUT_CHANGE, params, obs)
    sized_state = INPUT_CHANGE.init_state(2, 3, num_inputs=5, dtype=torch.float64)
    assert sized_state.slots["prev_obs"].shape == (2, 3, 5, 1)
    sized, _ = rollout_open_loop(INPUT_CHANGE, params, obs, sized_state)
    torch.testing.assert_close(sized, fresh, atol=1e-12, rtol=0)


def test_lateral_messages_let_each_neuron_hear_the_others():
    d, own = LATERAL.pos_dim, 4  # own input: value, action, change, change x action
    assert LATERAL.neuron_input_size == own + d
    plain = AttentionNeuronModel(act_dim=1, input_change=True, pos_dim=5)
    extra = 2 * (3 * d + 3) + d * (d + own) + d + 4 * d * d  # q, k, v, wider LSTM input
    assert LATERAL.num_params == plain.num_params + extra
    params = random_params(LATERAL, 1)
    obs = torch.randn(1, 1, 2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    _, state = rollout_open_loop(LATERAL, params, obs)
    assert state.slots["message"].shape == (1, 2, 4, d)
    # Change one sensor: at this step the other neurons' own states stay as they were, but
    # what they will hear next (their messages) changes.
    poked = obs.clone()
    poked[..., 0] += 1.0
    _, heard = rollout_open_loop(LATERAL, params, poked)
    torch.testing.assert_close(heard.slots["h"][..., 1:, :], state.slots["h"][..., 1:, :])
    change = (heard.slots["message"] - state.slots["message"]).abs().amax(dim=-1)[0]  # [B, N]
    assert torch.all(change > 1e-6)


def test_feed_forward_baseline_is_not_permutation_invariant():
    model = FeedForwardModel(obs_dim=5, act_dim=1, hidden=(16,))
    params = random_params(model, 1)
    obs = torch.randn(1, 4, 5, dtype=torch.float64)
    a, _ = model.step(params, obs, model.init_state(1, 4))
    b, _ = model.step(params, obs[..., [4, 3, 2, 1, 0]], model.init_state(1, 4))
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("model", [*MODELS, FeedForwardModel()], ids=[*IDS, "fnn"])
def test_model_description_round_trips_through_json_dict(model):
    assert model_from_dict(model.to_dict()) == model


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: AttentionNeuronModel(act_dim=0), "act_dim must be a positive integer; got 0"),
        (
            lambda: AttentionNeuronModel(num_latents=True),
            "num_latents must be a positive integer; got True",
        ),
        (
            lambda: AttentionNeuronModel(hidden=(4, -1)),
            "hidden must be a tuple of positive integers; got (4, -1)",
        ),
        (
            lambda: AttentionNeuronModel(head_lstm=-2),
            "head_lstm must be a non-negative integer; got -2",
        ),
        (
            lambda: AttentionNeuronModel(lateral_dim=-1),
            "lateral_dim must be a non-negative integer; got -1",
        ),
        (
            lambda: AttentionNeuronModel(change_scale=0),
            "change_scale must be a positive number; got 0",
        ),
        (
            lambda: AttentionNeuronModel(input_change=1),
            "input_change must be true or false; got 1",
        ),
        (
            lambda: AttentionNeuronModel(attention="relu"),
            "attention must be one of tanh, softmax; got 'relu'",
        ),
        (
            lambda: model_from_dict({"kind": "mlp"}),
            "unknown model kind 'mlp'; allowed: attention-neuron, fnn",
        ),
        (
            lambda: model_from_dict({"kind": "fnn", "width": 3}),
            "unknown field(s) ['width'] for model kind 'fnn'; allowed: "
            "['act_dim', 'hidden', 'obs_dim']",
        ),
    ],
)
def test_bad_model_configuration_raises_config_error(make, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        make()


def test_step_rejects_mismatched_shapes():
    params = random_params(CARTPOLE, 2)
    state = CARTPOLE.init_state(2, 1, dtype=torch.float64)
    with pytest.raises(ConfigError, match=re.escape("obs has 3 members but params have 2")):
        CARTPOLE.step(params, torch.zeros(3, 1, 5, dtype=torch.float64), state)
    _, state = CARTPOLE.step(params, torch.zeros(2, 1, 5, dtype=torch.float64), state)
    with pytest.raises(ConfigError, match=re.escape("obs has 6 inputs but the state holds 5")):
        CARTPOLE.step(params, torch.zeros(2, 1, 6, dtype=torch.float64), state)
    with pytest.raises(ConfigError, match=re.escape("params must have shape (members, 913)")):
        CARTPOLE.step(params[:, :10], torch.zeros(2, 1, 5), state)
    fnn = FeedForwardModel(obs_dim=5)
    with pytest.raises(ConfigError, match=re.escape("takes exactly 5 inputs; got 7")):
        fnn.step(
            random_params(fnn, 1), torch.zeros(1, 1, 7, dtype=torch.float64), fnn.init_state(1, 1)
        )
