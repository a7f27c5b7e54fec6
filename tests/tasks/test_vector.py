"""Tests of the vectorised simulator and of BatchPerturbation against the Gymnasium path."""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils import seeding

import tasks
from sensoryneuron.errors import ConfigError
from tasks.batched import VectorTask
from tasks.cartpole import render_frame
from tasks.cartpole_batched import VecCartPoleSwingUp
from tasks.perturbations import (
    BatchPerturbation,
    draw_interval,
    draw_noise,
    draw_permutation,
    relative_permutation,
    validate_reshuffle_every,
)
from tasks.perturbations.wrappers import DuplicateObservation, NoiseChannels, ShuffleObservation

MEMBERS, SEEDS = 3, [0, 11, 202, 3003]


def episode_rngs(seeds: list[int]) -> list[np.random.Generator]:
    """The Generators ``env.reset(seed=s)`` creates, one per episode."""
    return [seeding.np_random(s)[0] for s in seeds]


def random_actions(steps: int, members: int, episodes: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, size=(steps, members, episodes, 1)).astype(np.float32)


def test_vec_task_implements_protocol() -> None:
    task = VecCartPoleSwingUp()
    assert isinstance(task, VectorTask)
    assert (task.obs_dim, task.act_dim, task.max_steps) == (5, 1, 1000)


def test_reset_replicates_one_start_per_episode_over_members() -> None:
    task = VecCartPoleSwingUp()
    obs = task.reset(episode_rngs(SEEDS), members=MEMBERS)
    assert obs.shape == (MEMBERS, len(SEEDS), 5) and obs.dtype == np.float32
    assert task.state.shape == (MEMBERS, len(SEEDS), 4) and task.state.dtype == np.float64
    for member in range(1, MEMBERS):
        np.testing.assert_array_equal(obs[member], obs[0])
    assert len(np.unique(obs[0, :, 0])) == len(SEEDS)  # episodes differ
    obs, rew, terminated = task.step(np.zeros((MEMBERS, len(SEEDS), 1), dtype=np.float32))
    assert obs.dtype == np.float32 and rew.dtype == np.float64 and terminated.dtype == bool
    assert rew.shape == terminated.shape == (MEMBERS, len(SEEDS))


@pytest.mark.parametrize(
    "env_id",
    [
        tasks.CARTPOLE_SWINGUP_ID,
        tasks.CARTPOLE_SWINGUP_HARDER_ID,
        tasks.CARTPOLE_SWINGUP_HARDER_TOP_ID,  # seeds 11 and 3003 start near balanced
    ],
)
def test_vec_equals_gym_env(env_id: str) -> None:
    steps = 120
    actions = random_actions(steps, MEMBERS, len(SEEDS), seed=len(env_id))
    task = tasks.get_task(env_id).make_batched("simulator")
    vec_obs = [task.reset(episode_rngs(SEEDS), members=MEMBERS)]
    vec_states, vec_rew, vec_term = [task.state.copy()], [], []
    for t in range(steps):
        obs, rew, term = task.step(actions[t])
        vec_obs.append(obs)
        vec_states.append(task.state.copy())
        vec_rew.append(rew)
        vec_term.append(term)

    env = gym.make(env_id)
    for member in range(MEMBERS):
        for b, seed in enumerate(SEEDS):
            obs, _ = env.reset(seed=seed)
            np.testing.assert_array_equal(obs, vec_obs[0][member, b])
            np.testing.assert_array_equal(env.unwrapped.state, vec_states[0][member, b])
            for t in range(steps):
                obs, rew, term, _, _ = env.step(actions[t, member, b])
                np.testing.assert_array_equal(env.unwrapped.state, vec_states[t + 1][member, b])
                np.testing.assert_array_equal(obs, vec_obs[t + 1][member, b])
                assert rew == vec_rew[t][member, b]
                assert term == vec_term[t][member, b]
                if term:  # the vector simulator keeps stepping; gym stops here
                    break


def test_vec_keeps_stepping_terminated_envs() -> None:
    task = VecCartPoleSwingUp()
    task.reset(episode_rngs([0]), members=1)
    task.state[0, 0] = [2.39, 3.0, np.pi, 0.0]
    push = np.ones((1, 1, 1), dtype=np.float32)
    _, _, term = task.step(push)
    assert term[0, 0]
    x_before = task.state[0, 0, 0]
    _, _, term = task.step(push)
    assert term[0, 0] and task.state[0, 0, 0] > x_before


def test_vec_render_matches_single_env_drawing() -> None:
    task = VecCartPoleSwingUp()
    task.reset(episode_rngs(SEEDS), members=2)
    task.step(random_actions(1, 2, len(SEEDS))[0])
    frame = task.render(1, 2)
    assert frame.shape == (384, 640, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, render_frame(task.state[1, 2]))
    assert not np.array_equal(frame, task.render(0, 0))


def test_vec_errors() -> None:
    task = VecCartPoleSwingUp()
    with pytest.raises(gym.error.ResetNeeded):
        task.step(np.zeros((1, 1, 1)))
    with pytest.raises(ConfigError, match=re.escape("members must be an int >= 1, got 0")):
        task.reset(episode_rngs([0]), members=0)
    msg = "rngs must hold at least one Generator (one per episode), got 0"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        task.reset([], members=2)
    task.reset(episode_rngs([0, 1]), members=2)
    with pytest.raises(
        ConfigError, match=re.escape("action must have shape (2, 2, 1), got (2, 2)")
    ):
        task.step(np.zeros((2, 2)))
    with pytest.raises(ConfigError, match=re.escape("harder must be a bool, got 'yes'")):
        VecCartPoleSwingUp(harder="yes")


# ---------------------------------------------------------------------------------------------
# BatchPerturbation == DuplicateObservation -> ShuffleObservation -> NoiseChannels


def wrapper_stack(env_id: str, config: dict[str, Any]) -> gym.Env:
    env = gym.make(env_id)
    if config.get("duplicate", 1) > 1:
        env = DuplicateObservation(env, copies=config["duplicate"])
    if config.get("shuffle", False):
        env = ShuffleObservation(env, reshuffle_every=config.get("reshuffle_every"))
    if config.get("noise_channels", 0) > 0:
        env = NoiseChannels(env, n=config["noise_channels"], std=config.get("noise_std", 0.1))
    return env


STACK_CONFIGS = {
    "shuffle_at_reset": {"shuffle": True},
    "reshuffle_every_25": {"shuffle": True, "reshuffle_every": 25},
    "random_intervals": {"shuffle": True, "reshuffle_every": (10, 40)},
    "noise_channels": {"noise_channels": 5, "noise_std": 0.3},
    "duplicate_shuffle_noise_every_25": {
        "duplicate": 2,
        "shuffle": True,
        "reshuffle_every": 25,
        "noise_channels": 3,
    },
    "duplicate_shuffle_noise_random": {
        "duplicate": 3,
        "shuffle": True,
        "reshuffle_every": (10, 40),
        "noise_channels": 5,
    },
}


@pytest.mark.parametrize("config", STACK_CONFIGS.values(), ids=STACK_CONFIGS.keys())
def test_batch_perturbation_equals_wrapper_stack(config: dict[str, Any]) -> None:
    steps, members, seeds = 150, 2, SEEDS[:3]
    actions = random_actions(steps, members, len(seeds), seed=5)
    task = VecCartPoleSwingUp()
    pert = BatchPerturbation(5, **config)
    rngs = episode_rngs(seeds)
    vec_obs = [pert.reset(task.reset(rngs, members=members), rngs)]
    vec_perms, vec_flags = [pert.permutations.copy()], [pert.reshuffled.copy()]
    for t in range(steps):
        raw, _, _ = task.step(actions[t])
        vec_obs.append(pert.step(raw, rngs))
        vec_perms.append(pert.permutations.copy())
        vec_flags.append(pert.reshuffled.copy())
    assert vec_obs[0].shape == (members, len(seeds), pert.out_dim)
    assert all(obs.dtype == np.float32 for obs in vec_obs)
    if "reshuffle_every" in config:
        assert np.stack(vec_flags).sum() >= 3 * len(seeds)  # reshuffles did happen

    env = wrapper_stack(tasks.CARTPOLE_SWINGUP_ID, config)
    assert env.observation_space.shape == (pert.out_dim,)
    shuffled = config.get("shuffle", False)
    for member in range(members):
        for b, seed in enumerate(seeds):
            obs, info = env.reset(seed=seed)
            np.testing.assert_array_equal(obs, vec_obs[0][member, b])
            if shuffled:
                np.testing.assert_array_equal(info["permutation"], vec_perms[0][b])
            for t in range(steps):
                obs, _, _, _, info = env.step(actions[t, member, b])
                np.testing.assert_array_equal(obs, vec_obs[t + 1][member, b])
                if shuffled:
                    np.testing.assert_array_equal(info["permutation"], vec_perms[t + 1][b])
                    assert info["reshuffled"] == vec_flags[t + 1][b]


def test_batch_perturbation_without_shuffle_is_identity_plus_noise() -> None:
    pert = BatchPerturbation(5, duplicate=2)
    obs = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    rngs = episode_rngs([0, 1, 2])
    out = pert.reset(obs, rngs)
    np.testing.assert_array_equal(out, np.concatenate([obs, obs], axis=-1))
    np.testing.assert_array_equal(pert.permutations, np.tile(np.arange(10), (3, 1)))
    np.testing.assert_array_equal(pert.step(obs + 1, rngs), np.concatenate([obs, obs], -1) + 1)
    assert pert.out_dim == 10 and not pert.reshuffled.any()


def test_batch_perturbation_reshuffles_at_multiples_of_t() -> None:
    pert = BatchPerturbation(5, shuffle=True, reshuffle_every=4)
    obs = np.zeros((1, 2, 5), dtype=np.float32)
    rngs = episode_rngs([0, 1])
    pert.reset(obs, rngs)
    due = []
    for _ in range(13):
        pert.step(obs, rngs)
        assert pert.reshuffled[0] == pert.reshuffled[1]
        due.append(bool(pert.reshuffled[0]))
    assert [t + 1 for t, flag in enumerate(due) if flag] == [4, 8, 12]


@pytest.mark.parametrize("config", STACK_CONFIGS.values(), ids=STACK_CONFIGS.keys())
def test_batch_perturbation_sources_name_the_sensor_in_every_slot(config: dict[str, Any]) -> None:
    pert = BatchPerturbation(5, **config)
    rngs = episode_rngs(SEEDS[:3])
    raw = np.arange(1, 16, dtype=np.float32).reshape(1, 3, 5)  # sensor k of episode b: 5b+k+1
    out = pert.reset(raw, rngs)
    for _ in range(60):
        sources = pert.sources()
        assert sources.shape == (3, pert.out_dim) and sources.dtype == np.int64
        sensor = sources[:, : pert.n_shuffled]
        expected = np.take_along_axis(raw[0], sensor, axis=1)
        np.testing.assert_array_equal(out[0, :, : pert.n_shuffled], expected)
        assert np.all(sources[:, pert.n_shuffled :] == 5)  # noise channels: no sensor
        out = pert.step(raw, rngs)
    with pytest.raises(gym.error.ResetNeeded):
        BatchPerturbation(5).sources()


def test_relative_permutation_realigns_shuffled_observations() -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(size=12)
    for _ in range(20):
        old, new = rng.permutation(12), rng.permutation(12)
        rel = relative_permutation(old, new)
        np.testing.assert_array_equal(raw[old][rel], raw[new])
    olds = np.stack([rng.permutation(7) for _ in range(4)])
    news = np.stack([rng.permutation(7) for _ in range(4)])
    rels = relative_permutation(olds, news)
    assert rels.shape == (4, 7) and rels.dtype == np.int64
    raw = rng.normal(size=7)
    for b in range(4):
        np.testing.assert_array_equal(raw[olds[b]][rels[b]], raw[news[b]])
    np.testing.assert_array_equal(relative_permutation(olds[0], olds[0]), np.arange(7))


def test_draw_helpers_use_the_documented_calls() -> None:
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    np.testing.assert_array_equal(draw_permutation(rng_a, 6), rng_b.permutation(6))
    assert draw_interval(rng_a, (10, 40)) == int(rng_b.integers(10, 41))
    np.testing.assert_array_equal(draw_noise(rng_a, 4, 0.1), rng_b.normal(0.0, 0.1, size=4))
    assert draw_interval(rng_a, 25) == 25 and draw_interval(rng_a, None) is None
    # Fixed intervals and None draw nothing.
    assert rng_a.bit_generator.state == rng_b.bit_generator.state
    intervals = [draw_interval(rng_a, (3, 5)) for _ in range(300)]
    assert set(intervals) == {3, 4, 5}
    assert draw_permutation(rng_a, 3).dtype == np.int64


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), (25, 25), (np.int64(7), 7), ((10, 40), (10, 40))]
)
def test_validate_reshuffle_every_accepts(value: Any, expected: Any) -> None:
    assert validate_reshuffle_every(value) == expected


@pytest.mark.parametrize(
    "value", [True, 0, -3, 2.5, "25", (0, 5), (5, 3), (1, 2, 3), (1.0, 2), (True, 3)]
)
def test_validate_reshuffle_every_rejects(value: Any) -> None:
    msg = (
        "reshuffle_every must be None, an int >= 1 or a (low, high) pair of ints with "
        f"1 <= low <= high, got {value!r}"
    )
    with pytest.raises(ConfigError, match=re.escape(msg)):
        validate_reshuffle_every(value)


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"obs_dim": 0}, "obs_dim must be an int >= 1, got 0"),
        ({"duplicate": 0}, "duplicate must be an int >= 1, got 0"),
        ({"duplicate": 2.0}, "duplicate must be an int >= 1, got 2.0"),
        ({"shuffle": 1}, "shuffle must be a bool, got 1"),
        (
            {"reshuffle_every": 25},
            "reshuffle_every=25 needs shuffle=True; use reshuffle_every=None without shuffling",
        ),
        ({"noise_channels": -1}, "noise_channels must be an int >= 0, got -1"),
        ({"noise_std": 0.0}, "noise_std must be a finite number > 0, got 0.0"),
        ({"noise_std": float("nan")}, "noise_std must be a finite number > 0, got nan"),
    ],
)
def test_batch_perturbation_config_errors(kwargs: dict[str, Any], msg: str) -> None:
    kwargs = {"obs_dim": 5, **kwargs}
    obs_dim = kwargs.pop("obs_dim")
    with pytest.raises(ConfigError, match=re.escape(msg)):
        BatchPerturbation(obs_dim, **kwargs)


def test_batch_perturbation_shape_errors() -> None:
    pert = BatchPerturbation(5, shuffle=True)
    rngs = episode_rngs([0, 1])
    with pytest.raises(gym.error.ResetNeeded):
        pert.step(np.zeros((1, 2, 5)), rngs)
    msg = "obs must have shape [members, episodes, 5], got (2, 5)"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        pert.reset(np.zeros((2, 5)), rngs)
    with pytest.raises(
        ConfigError, match=re.escape("expected one Generator per episode (3), got 2")
    ):
        pert.reset(np.zeros((1, 3, 5)), rngs)
    pert.reset(np.zeros((1, 2, 5)), rngs)
    with pytest.raises(ConfigError, match=re.escape("reset() saw 2 episodes, step() got 1")):
        pert.step(np.zeros((1, 1, 5)), rngs[:1])
