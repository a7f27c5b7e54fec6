"""The fused engine: compiled cart-pole episodes equal the episode loop's, to round-off."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch

from evolve import fused
from evolve.rollout import EpisodeJob, episodes, rollout
from evolve.training.loop import train
from evolve.training.run_folder import load_state
from sensoryneuron import AttentionNeuronModel, FeedForwardModel
from sensoryneuron.actions import ActionMap
from sensoryneuron.errors import ConfigError
from tasks.perturbations import Perturbations
from tasks.spec import (
    CARTPOLE_SWINGUP_HARDER_ID,
    CARTPOLE_SWINGUP_HARDER_TOP_ID,
    CARTPOLE_SWINGUP_ID,
    get_task,
)

pytest.importorskip("numba")

PAPER = AttentionNeuronModel(act_dim=1)
BIASED = AttentionNeuronModel(act_dim=1, attention_bias=True, attention_scale=True, hidden=(6,))
# the sensory neurons also read their input's change and the change times the last action
CHANGE = AttentionNeuronModel(act_dim=1, input_change=True, change_scale=3.0)
SOFTMAX = AttentionNeuronModel(act_dim=1, attention="softmax")  # with a gain per latent
PERTURBATIONS = [
    Perturbations(shuffle=False),
    Perturbations(shuffle=True),
    Perturbations(shuffle=True, reshuffle_every=(5, 40), noise_channels=3, duplicate=2),
]


def population(model, members, scale, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(members, model.num_params, generator=g)).to(dtype)


def loop(model, params, env_id, perturbations, seeds, max_steps=None):
    spec = get_task(env_id)
    result = episodes(
        model,
        params,
        spec.make_batched(),
        perturbations,
        seeds,
        action_map=spec.action,
        max_steps=max_steps,
        observation=spec.observation,
    )
    return result.returns, result.steps


@pytest.mark.parametrize(
    "model",
    [PAPER, BIASED, CHANGE, SOFTMAX],
    ids=["paper", "biases-and-fc", "input-change", "softmax"],
)
@pytest.mark.parametrize("perturbations", PERTURBATIONS, ids=["none", "shuffled", "reshuffled"])
def test_float64_episodes_equal_the_loops(model, perturbations):
    # Small weights keep the cart on the track for whole episodes of the easy task; larger
    # ones drive it off the harder task's track at different steps (terminations).
    for env_id, scale, seeds, max_steps in [
        (CARTPOLE_SWINGUP_ID, 0.05, [3, 4], 400),
        (CARTPOLE_SWINGUP_HARDER_ID, 0.5, [5, 6, 7], None),
    ]:
        params = population(model, 4, scale)
        args = (model, params, env_id, perturbations, seeds, max_steps)
        returns, steps = fused.rollout(*args)
        want_returns, want_steps = loop(*args)
        np.testing.assert_array_equal(steps, want_steps)
        np.testing.assert_allclose(returns, want_returns, rtol=1e-11, atol=1e-11)
    assert (steps < 1000).all() and steps.min() != steps.max()  # the harder task ended them


def test_top_starts_run_on_the_kernel_as_in_the_loop():
    # the training variant's starts come from the simulator as the stock task's do
    params = population(PAPER, 3, 0.3)
    seeds = [3, 11, 12, 13]  # 3 and 11 start near balanced
    args = (PAPER, params, CARTPOLE_SWINGUP_HARDER_TOP_ID, PERTURBATIONS[1], seeds, 300)
    assert fused.unsupported(PAPER, CARTPOLE_SWINGUP_HARDER_TOP_ID) is None
    returns, steps = fused.rollout(*args)
    want_returns, want_steps = loop(*args)
    np.testing.assert_array_equal(steps, want_steps)
    np.testing.assert_allclose(returns, want_returns, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize(
    "model", [PAPER, CHANGE, SOFTMAX], ids=["paper", "input-change", "softmax"]
)
def test_float32_episodes_match_the_loops_to_round_off(model):
    params = population(model, 4, 0.05, dtype=torch.float32)
    args = (model, params, CARTPOLE_SWINGUP_ID, PERTURBATIONS[2], [1, 2], 300)
    returns, steps = fused.rollout(*args)
    want_returns, want_steps = loop(*args)
    np.testing.assert_array_equal(steps, want_steps)
    np.testing.assert_allclose(returns, want_returns, rtol=1e-5)


def test_members_are_independent_and_runs_repeat_exactly():
    # What sharding over workers relies on: a member's episodes do not depend on the others.
    params = population(PAPER, 6, 0.3, dtype=torch.float32)
    args = (CARTPOLE_SWINGUP_HARDER_ID, PERTURBATIONS[2], [8, 9])
    whole = fused.rollout(PAPER, params, *args)
    part = fused.rollout(PAPER, params[2:5], *args)
    np.testing.assert_array_equal(whole[0][2:5], part[0])
    np.testing.assert_array_equal(whole[1][2:5], part[1])
    again = fused.rollout(PAPER, params, *args)
    np.testing.assert_array_equal(whole[0], again[0])


def job(**fields):
    settings = {
        "model": PAPER.to_dict(),
        "env_id": CARTPOLE_SWINGUP_HARDER_ID,
        "perturbations": {"shuffle": True, "reshuffle_every": 10},
        "seeds": (1, 2),
        "float64": True,
        "engine": "fused",
    }
    return EpisodeJob(**{**settings, **fields})


def test_a_fused_job_runs_the_kernel_and_others_run_the_loop():
    params = population(PAPER, 3, 0.4).numpy()
    kernel = fused.rollout(
        PAPER,
        torch.tensor(params),
        CARTPOLE_SWINGUP_HARDER_ID,
        Perturbations(shuffle=True, reshuffle_every=10),
        (1, 2),
    )
    np.testing.assert_array_equal(rollout(job(), params).returns, kernel[0])
    # realignment is the loop's: the fused engine runs it on the simulator, bit for bit
    realigned = rollout(job(realign=True), params)
    np.testing.assert_array_equal(
        realigned.returns, rollout(job(realign=True, engine="simulator"), params).returns
    )


def test_unsupported_episodes_say_why():
    head_lstm = AttentionNeuronModel(act_dim=1, head_lstm=4)
    assert fused.unsupported(PAPER, CARTPOLE_SWINGUP_ID) is None
    message = (
        "the fused kernel runs the paper's AttentionNeuron and its options attention, "
        "input_change and attention biases; no head LSTM, no lateral_dim"
    )
    assert fused.unsupported(head_lstm, CARTPOLE_SWINGUP_ID) == message
    lateral = AttentionNeuronModel(act_dim=1, lateral_dim=4)
    assert fused.unsupported(lateral, CARTPOLE_SWINGUP_ID) == message
    for model in (CHANGE, SOFTMAX):
        assert fused.unsupported(model, CARTPOLE_SWINGUP_ID) is None
    assert fused.unsupported(FeedForwardModel(obs_dim=5, act_dim=1), CARTPOLE_SWINGUP_ID) == (
        "the fused kernel runs the AttentionNeuron model only, not the fnn model"
    )
    assert fused.unsupported(PAPER, "Pendulum-v1") == (
        "the fused kernel runs cart-pole swing-up only, not Pendulum-v1"
    )
    half = ActionMap.box([-0.5], [0.5])
    assert fused.unsupported(PAPER, CARTPOLE_SWINGUP_ID, action=half) == (
        "the fused kernel sends the policy's one output to the cart unchanged"
    )
    with pytest.raises(ConfigError, match=r"^the fused kernel runs cart-pole swing-up only"):
        fused.rollout(PAPER, population(PAPER, 1, 0.1), "Pendulum-v1", Perturbations(), [0])
    with pytest.raises(ConfigError, match=r"^params must be float32 or float64; got torch.int64"):
        fused.rollout(
            PAPER, torch.zeros(1, PAPER.num_params, dtype=torch.int64), CARTPOLE_SWINGUP_ID,
            Perturbations(), [0],
        )  # fmt: skip


def test_the_fused_engine_is_offered_by_cart_pole_only_and_needs_numba(monkeypatch):
    assert get_task(CARTPOLE_SWINGUP_ID).check_engine("fused") == "fused"
    with pytest.raises(
        ConfigError, match=r"^Pendulum-v1 runs on gym, envpool; not on engine 'fused'$"
    ):
        get_task("Pendulum-v1").check_engine("fused")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "numba" else real(name, *a)
    )
    with pytest.raises(
        ConfigError, match=r"^the fused engine needs numba: pip install -e '\.\[fast\]'$"
    ):
        get_task(CARTPOLE_SWINGUP_ID).check_engine("fused")


def test_training_on_the_fused_engine_repeats_and_learns_what_the_loop_learns(tmp_path):
    from evolve.presets import get_preset

    def tiny(engine):
        preset = get_preset("cartpole-swingup").replace(
            strategy={"popsize": 16},
            training={"generations": 2, "repeats": 2, "test_every": 2, "test_episodes": 4},
        )
        return preset.replace(engine=engine)

    logs = {}
    for name, engine in [("a", "fused"), ("b", "fused"), ("loop", "simulator")]:
        train(tiny(engine), tmp_path / name, final_episodes=0, progress=False)
        state, _, _ = load_state(tmp_path / name)
        logs[name] = np.asarray(state.log)[:, 1:5]  # best, mean, worst, std
    np.testing.assert_array_equal(logs["a"], logs["b"])
    np.testing.assert_allclose(logs["a"], logs["loop"], rtol=1e-3)


def test_non_finite_parameters_give_nan_returns_as_in_the_loop():
    # what training ranks last and reports (fast-math must not turn them into numbers)
    params = population(PAPER, 3, 0.1, dtype=torch.float32)
    params[1, 5], params[2, 100] = float("nan"), float("inf")
    args = (PAPER, params, CARTPOLE_SWINGUP_HARDER_ID, Perturbations(), [0, 1], 50)
    returns, steps = fused.rollout(*args)
    want_returns, want_steps = loop(*args)
    np.testing.assert_array_equal(np.isnan(returns), np.isnan(want_returns))
    assert np.isnan(returns[1:]).all() and np.isfinite(returns[0]).all()
    np.testing.assert_array_equal(steps, want_steps)


def test_the_first_rollout_in_a_process_leaves_torchs_thread_count_alone():
    # numba's OpenMP pool is torch's: starting it once set torch to every core, and each
    # one-thread worker of a backend then ran two threads (two workers slower than one)
    script = (
        "import torch\n"
        "torch.set_num_threads(1)\n"
        "from evolve import fused\n"
        "from sensoryneuron import AttentionNeuronModel\n"
        "from tasks.perturbations import Perturbations\n"
        "m = AttentionNeuronModel(act_dim=1)\n"
        "fused.rollout(m, torch.zeros(2, m.num_params), "
        f"{CARTPOLE_SWINGUP_ID!r}, Perturbations(), [0], 5)\n"
        "import numba\n"
        "print(torch.get_num_threads(), numba.get_num_threads())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]
