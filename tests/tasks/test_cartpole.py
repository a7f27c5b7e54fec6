"""Tests of the cart-pole swing-up physics and its Gymnasium environment."""

from __future__ import annotations

import math
import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import tasks
from sensoryneuron.errors import ConfigError
from tasks.cartpole import (
    DT,
    FORCE_MAG,
    FRICTION,
    GRAVITY,
    MASS_CART,
    MASS_POLE,
    POLE_LENGTH,
    CartPoleSwingUpEnv,
    observe,
    out_of_bounds,
    render_frame,
    reward,
    sample_initial_state,
    step_physics,
)

ENV_IDS = [tasks.CARTPOLE_SWINGUP_ID, tasks.CARTPOLE_SWINGUP_HARDER_ID]
# check_env warns about unbounded Box spaces; the observation space is unbounded by design.
UNBOUNDED_WARNINGS = ("minimum value is -infinity", "maximum value is infinity")


def unexpected_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    """Messages of recorded warnings other than the expected unbounded-space ones."""
    messages = [str(w.message) for w in caught]
    return [m for m in messages if not any(u in m for u in UNBOUNDED_WARNINGS)]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_make_registered_env(env_id: str) -> None:
    env = gym.make(env_id)
    assert env.spec is not None and env.spec.max_episode_steps == 1000
    assert isinstance(env.unwrapped, CartPoleSwingUpEnv)
    assert env.unwrapped.harder is (env_id == tasks.CARTPOLE_SWINGUP_HARDER_ID)
    assert env.observation_space == gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (5,)
    assert info == {}
    assert env.unwrapped.state.dtype == np.float64 and env.unwrapped.state.shape == (4,)
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_passes(env_id: str) -> None:
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert unexpected_warnings(caught) == []
    env.close()


def test_registration_is_idempotent() -> None:
    import importlib

    importlib.reload(tasks)
    assert tasks.CARTPOLE_SWINGUP_ID in gym.registry
    assert gym.make(tasks.CARTPOLE_SWINGUP_ID).spec.max_episode_steps == 1000


def hand_step(state: list[float], action: float) -> list[float]:
    """One Euler step written out with the math module, straight from DESIGN.md."""
    x, x_dot, th, th_dot = state
    f = FORCE_MAG * max(-1.0, min(1.0, action))
    m, mc, l, b, g = MASS_POLE, MASS_CART, POLE_LENGTH, FRICTION, GRAVITY
    s, c = math.sin(th), math.cos(th)
    xacc = (-2 * m * l * th_dot**2 * s + 3 * m * g * s * c + 4 * f - 4 * b * x_dot) / (
        4 * (mc + m) - 3 * m * c**2
    )
    thacc = (-3 * m * l * th_dot**2 * s * c + 6 * (mc + m) * g * s + 6 * (f - b * x_dot) * c) / (
        4 * l * (mc + m) - 3 * m * l * c**2
    )
    return [x + x_dot * DT, x_dot + xacc * DT, th + th_dot * DT, th_dot + thacc * DT]


@pytest.mark.parametrize(
    ("state", "action"),
    [
        ([0.3, -0.7, 2.5, 1.3], 0.375),  # float32-exact, as the env takes float32 actions
        ([-1.2, 2.0, -0.4, -3.0], -1.0),
        ([0.0, 0.0, np.pi, 0.0], 0.0),
        ([1.0, 0.5, 0.1, 0.2], 3.0),  # clipped to 1
    ],
)
def test_step_matches_hand_formulas(state: list[float], action: float) -> None:
    new = step_physics(np.array(state), action)
    np.testing.assert_allclose(new, hand_step(state, action), rtol=1e-13, atol=1e-15)
    # The env applies the same step to its state.
    env = CartPoleSwingUpEnv()
    env.reset(seed=0)
    env.state = np.array(state)
    obs, rew, terminated, truncated, _ = env.step(np.array([action], dtype=np.float32))
    np.testing.assert_array_equal(env.state, new)
    np.testing.assert_array_equal(obs, observe(new))
    assert rew == reward(new) and terminated is bool(out_of_bounds(new)) and truncated is False


def test_action_is_clipped() -> None:
    state = np.array([0.1, 0.2, 1.0, -0.5])
    np.testing.assert_array_equal(step_physics(state, 7.0), step_physics(state, 1.0))
    np.testing.assert_array_equal(step_physics(state, -7.0), step_physics(state, -1.0))


def test_physics_is_vectorised_over_any_batch_shape() -> None:
    rng = np.random.default_rng(1)
    states = rng.normal(size=(2, 3, 4))
    actions = rng.uniform(-1, 1, size=(2, 3))
    batched = step_physics(states, actions)
    assert batched.shape == (2, 3, 4) and batched.dtype == np.float64
    for i in range(2):
        for j in range(3):
            np.testing.assert_array_equal(batched[i, j], step_physics(states[i, j], actions[i, j]))
    assert observe(states).shape == (2, 3, 5) and observe(states).dtype == np.float32
    assert reward(states).shape == (2, 3) and out_of_bounds(states).dtype == bool


def test_observation_layout() -> None:
    state = np.array([0.5, -1.5, 0.3, 2.0])
    expected = np.array([0.5, -1.5, math.cos(0.3), math.sin(0.3), 2.0], dtype=np.float32)
    np.testing.assert_array_equal(observe(state), expected)


@pytest.mark.parametrize(
    ("x", "theta", "expected"),
    [
        (0.0, 0.0, 1.0),  # upright and centred
        (0.0, np.pi, 0.0),  # hanging down
        (2.4, 0.0, 0.0),  # at the track end
        (1.2, 0.0, math.cos(np.pi / 4)),
        (-0.8, np.pi / 2, 0.5 * math.cos(0.8 / 2.4 * np.pi / 2)),
    ],
)
def test_reward_formula(x: float, theta: float, expected: float) -> None:
    assert reward(np.array([x, 0.3, theta, -0.2])) == pytest.approx(expected, abs=1e-12)


def test_out_of_bounds_threshold() -> None:
    xs = np.array([0.0, 2.4, -2.4, 2.4 + 1e-9, -2.4 - 1e-9, 5.0])
    states = np.stack([xs, np.zeros(6), np.zeros(6), np.zeros(6)], axis=-1)
    np.testing.assert_array_equal(out_of_bounds(states), [False, False, False, True, True, True])


def test_terminates_when_cart_leaves_track() -> None:
    env = gym.make(tasks.CARTPOLE_SWINGUP_ID)
    env.reset(seed=0)
    env.unwrapped.state = np.array([2.395, 2.0, 0.5, 0.0])
    _, rew, terminated, truncated, _ = env.step(np.array([1.0], dtype=np.float32))
    assert terminated is True and truncated is False
    assert env.unwrapped.state[0] > 2.4
    # The reward of the terminating step is still paid, computed on the new state.
    assert rew == pytest.approx(float(reward(env.unwrapped.state)))
    assert rew < 0  # cos(x / 2.4 * pi / 2) < 0 past the end of the track


def test_truncates_at_1000_steps() -> None:
    env = gym.make(tasks.CARTPOLE_SWINGUP_ID)
    env.reset(seed=0)
    action = np.zeros(1, dtype=np.float32)
    for t in range(1, 1001):
        _, _, terminated, truncated, _ = env.step(action)
        assert not terminated
        assert truncated is (t == 1000)


def test_pole_released_near_upright_falls() -> None:
    state = np.array([0.0, 0.0, 0.01, 0.0])
    thetas = []
    for _ in range(100):
        state = step_physics(state, 0.0)
        thetas.append(state[2])
    thetas = np.array(thetas)
    assert np.all(np.diff(thetas) > 0)  # falls further away from upright every step
    assert thetas[-1] > 0.5
    assert state[0] > 0  # the reaction pushes the cart the other way (tip falls to -x)


def test_pole_hanging_down_swings_with_pendulum_period() -> None:
    # Linearised about theta = pi: omega^2 = 6 M g / (l (4 M - 3 m)) (M = total mass).
    total = MASS_CART + MASS_POLE
    omega = math.sqrt(6 * total * GRAVITY / (POLE_LENGTH * (4 * total - 3 * MASS_POLE)))
    period_steps = 2 * math.pi / omega / DT
    state = np.array([0.0, 0.0, np.pi + 0.05, 0.0])
    offsets = []
    for _ in range(round(period_steps)):
        state = step_physics(state, 0.0)
        offsets.append(state[2] - np.pi)
        assert abs(state[0]) < 0.05
    offsets = np.array(offsets)
    first_crossing = int(np.argmax(offsets < 0))
    assert abs(first_crossing - period_steps / 4) <= 2
    assert abs(int(np.argmin(offsets)) - period_steps / 2) <= 2
    # The swing reaches the mirror angle; explicit Euler at dt = 0.01 adds energy (under ~20%
    # of amplitude per period, more than the cart friction removes).
    assert 0.05 < -offsets.min() < 0.05 * 1.2
    assert np.abs(offsets).max() < 0.05 * 1.2


def initial_states(env: CartPoleSwingUpEnv, seeds: range) -> np.ndarray:
    states = []
    for seed in seeds:
        env.reset(seed=seed)
        states.append(env.state)
    return np.array(states)


def test_normal_initial_state_distribution() -> None:
    env = CartPoleSwingUpEnv()
    starts = initial_states(env, range(2000))
    np.testing.assert_allclose(starts.mean(axis=0), [0.0, 0.0, np.pi, 0.0], atol=0.02)
    np.testing.assert_allclose(starts.std(axis=0), 0.2, atol=0.015)


def test_harder_initial_state_distribution() -> None:
    env = CartPoleSwingUpEnv(harder=True)
    starts = initial_states(env, range(2000))
    low = np.array([-2.4, -10.0, np.pi / 2, -10.0])
    high = np.array([2.4, 10.0, 3 * np.pi / 2, 10.0])
    assert np.all(starts >= low) and np.all(starts <= high)
    # Uniform: spread over the whole box.
    width = high - low
    assert np.all(starts.min(axis=0) - low < 0.01 * width)
    assert np.all(high - starts.max(axis=0) < 0.01 * width)
    assert np.all(np.abs(starts.mean(axis=0) - (low + high) / 2) < 0.03 * width)
    np.testing.assert_allclose(starts.std(axis=0), width / np.sqrt(12), rtol=0.05)


def test_sample_initial_state_draws_from_given_rng() -> None:
    a = sample_initial_state(np.random.default_rng(3), harder=False)
    b = np.random.default_rng(3).normal(loc=[0.0, 0.0, np.pi, 0.0], scale=0.2)
    np.testing.assert_array_equal(a, b)


def is_top_start(state: np.ndarray) -> np.ndarray:
    return np.abs(state[..., 2]) <= 0.3  # a harder start has theta in [pi/2, 3 pi/2]


def test_top_starts_are_a_fraction_of_the_episodes_near_balanced() -> None:
    env = gym.make(tasks.CARTPOLE_SWINGUP_HARDER_TOP_ID).unwrapped
    assert env.harder and env.top_fraction == 0.25
    starts = initial_states(env, range(4000))
    top = is_top_start(starts)
    assert abs(top.mean() - 0.25) < 0.025
    low, high = np.array([-1.5, -1.0, -0.3, -1.0]), np.array([1.5, 1.0, 0.3, 1.0])
    assert np.all(starts[top] >= low) and np.all(starts[top] <= high)
    np.testing.assert_allclose(starts[top].std(axis=0), (high - low) / np.sqrt(12), rtol=0.08)
    harder_low = np.array([-2.4, -10.0, np.pi / 2, -10.0])
    harder_high = np.array([2.4, 10.0, 3 * np.pi / 2, 10.0])
    assert np.all(starts[~top] >= harder_low) and np.all(starts[~top] <= harder_high)
    # all near balanced (the balance task), or none; and none draws exactly as the stock task
    balance = gym.make(tasks.CARTPOLE_BALANCE_ID).unwrapped
    assert not balance.harder and balance.top_fraction == 1.0
    assert is_top_start(initial_states(balance, range(200))).all()
    np.testing.assert_array_equal(
        initial_states(CartPoleSwingUpEnv(harder=True, top_fraction=0.0), range(50)),
        initial_states(CartPoleSwingUpEnv(harder=True), range(50)),
    )


def rollout(env: gym.Env, seed: int, steps: int = 200) -> tuple[np.ndarray, np.ndarray]:
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    observations, rewards = [obs], []
    for _ in range(steps):
        obs, rew, terminated, truncated, _ = env.step(env.action_space.sample())
        observations.append(obs)
        rewards.append(rew)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_rollout_and_different_seeds_differ(env_id: str) -> None:
    env = gym.make(env_id)
    obs_a, rew_a = rollout(env, seed=7)
    obs_b, rew_b = rollout(env, seed=7)
    obs_c, _ = rollout(env, seed=8)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rew_a, rew_b)
    assert not np.array_equal(obs_a[0], obs_c[0])


def test_render_frame_shape_and_changes_with_state() -> None:
    env = gym.make(tasks.CARTPOLE_SWINGUP_ID, render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.shape == (384, 640, 3) and first.dtype == np.uint8
    for _ in range(30):
        env.step(np.ones(1, dtype=np.float32))
    second = env.render()
    assert second.shape == (384, 640, 3)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(second, render_frame(env.unwrapped.state))
    # Moving the cart and tilting the pole both change the picture.
    base = render_frame(np.array([0.0, 0.0, np.pi, 0.0]))
    assert not np.array_equal(base, render_frame(np.array([1.0, 0.0, np.pi, 0.0])))
    assert not np.array_equal(base, render_frame(np.array([0.0, 0.0, 0.0, 0.0])))
    assert len(np.unique(base.reshape(-1, 3), axis=0)) > 3  # more than a blank canvas
    # The renderer reuses its canvas, but every returned frame is an independent array.
    kept = base.copy()
    render_frame(np.array([-2.0, 0.0, 1.0, 0.0]))
    np.testing.assert_array_equal(base, kept)


def test_render_without_mode_returns_none() -> None:
    env = CartPoleSwingUpEnv()
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None


def test_step_before_reset_raises() -> None:
    with pytest.raises(gym.error.ResetNeeded):
        CartPoleSwingUpEnv().step(np.zeros(1, dtype=np.float32))


def test_config_errors() -> None:
    msg = "render_mode must be None or one of ['rgb_array'], got 'human'"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        CartPoleSwingUpEnv(render_mode="human")
    with pytest.raises(ConfigError, match=re.escape("harder must be a bool, got 1")):
        CartPoleSwingUpEnv(harder=1)
    for bad in (1.5, -0.1, "0.5", True):
        msg = f"top_fraction must be a number in [0, 1], got {bad!r}"
        with pytest.raises(ConfigError, match=f"^{re.escape(msg)}$"):
            CartPoleSwingUpEnv(top_fraction=bad)
