"""Tests of ShuffleObservation, NoiseChannels and DuplicateObservation (Gymnasium style)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import tasks
from sensoryneuron.errors import ConfigError
from tasks.cartpole import observe
from tasks.perturbations.wrappers import DuplicateObservation, NoiseChannels, ShuffleObservation

ENV_ID = tasks.CARTPOLE_SWINGUP_ID
ZERO = np.zeros(1, dtype=np.float32)
# check_env warns about unbounded Box spaces (by design here) and about checking a wrapped env.
EXPECTED_WARNINGS = (
    "minimum value is -infinity",
    "maximum value is infinity",
    "is different from the unwrapped version",
)


def make(env_id: str = ENV_ID, **config: Any) -> gym.Env:
    """gym.make(env_id) wrapped in DuplicateObservation -> ShuffleObservation -> NoiseChannels."""
    env = gym.make(env_id)
    if "copies" in config:
        env = DuplicateObservation(env, copies=config["copies"])
    if "reshuffle_every" in config:
        env = ShuffleObservation(env, reshuffle_every=config["reshuffle_every"])
    if "noise" in config:
        env = NoiseChannels(env, n=config["noise"])
    return env


STACKS = {
    "shuffle": {"reshuffle_every": None},
    "reshuffle_5": {"reshuffle_every": 5},
    "reshuffle_random": {"reshuffle_every": (2, 6)},
    "noise": {"noise": 4},
    "duplicate": {"copies": 3},
    "full_stack": {"copies": 2, "reshuffle_every": (2, 6), "noise": 5},
}


@pytest.mark.parametrize("config", STACKS.values(), ids=STACKS.keys())
def test_check_env_passes_on_wrapped_env(config: dict[str, Any]) -> None:
    env = make(**config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    messages = [str(w.message) for w in caught]
    assert [m for m in messages if not any(e in m for e in EXPECTED_WARNINGS)] == []
    env.close()


@pytest.mark.parametrize("env_id", [tasks.CARTPOLE_SWINGUP_ID, tasks.CARTPOLE_SWINGUP_HARDER_ID])
@pytest.mark.parametrize("config", STACKS.values(), ids=STACKS.keys())
def test_observations_stay_in_observation_space(env_id: str, config: dict[str, Any]) -> None:
    env = make(env_id, **config)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    assert obs in env.observation_space
    for _ in range(100):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs in env.observation_space
        if terminated or truncated:
            obs, _ = env.reset()
            assert obs in env.observation_space


def collect(env: gym.Env, seed: int, steps: int = 60) -> tuple[np.ndarray, list[np.ndarray]]:
    obs, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    observations, perms = [obs], [info.get("permutation")]
    for _ in range(steps):
        obs, _, _, _, info = env.step(env.action_space.sample())
        observations.append(obs)
        perms.append(info.get("permutation"))
    return np.array(observations), perms


@pytest.mark.parametrize("config", STACKS.values(), ids=STACKS.keys())
def test_same_seed_same_rollout_different_seed_differs(config: dict[str, Any]) -> None:
    env = make(**config)
    obs_a, perms_a = collect(env, seed=3)
    obs_b, perms_b = collect(env, seed=3)
    obs_c, _ = collect(env, seed=4)
    np.testing.assert_array_equal(obs_a, obs_b)
    for pa, pb in zip(perms_a, perms_b, strict=True):
        np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(obs_a, obs_c)


@pytest.mark.parametrize("reshuffle_every", [None, 7, (3, 9)])
def test_wrapped_obs_is_raw_obs_indexed_by_permutation(reshuffle_every: Any) -> None:
    env = ShuffleObservation(gym.make(ENV_ID), reshuffle_every=reshuffle_every)
    env.action_space.seed(1)
    obs, info = env.reset(seed=1)
    for _ in range(50):
        raw = observe(env.unwrapped.state)
        np.testing.assert_array_equal(obs, raw[info["permutation"]])
        np.testing.assert_array_equal(env.permutation, info["permutation"])
        assert sorted(info["permutation"]) == list(range(5))
        obs, _, _, _, info = env.step(env.action_space.sample())


def test_reshuffles_exactly_every_t_steps() -> None:
    t = 4
    env = ShuffleObservation(gym.make(ENV_ID), reshuffle_every=t)
    _, info = env.reset(seed=0)
    assert info["reshuffled"] is False
    perm = info["permutation"]
    flagged, changed = [], []
    for step in range(1, 4 * t + 2):
        _, _, _, _, info = env.step(ZERO)
        if info["reshuffled"]:
            flagged.append(step)
        if not np.array_equal(info["permutation"], perm):
            changed.append(step)
        perm = info["permutation"]
    assert flagged == [t, 2 * t, 3 * t, 4 * t]
    assert set(changed) <= set(flagged)  # the permutation only moves at reshuffle steps
    assert len(changed) >= 3  # a fresh draw may by chance repeat the old permutation (1/120)
    # The schedule restarts at reset.
    env.reset(seed=1)
    flags = [env.step(ZERO)[4]["reshuffled"] for _ in range(t)]
    assert flags == [False] * (t - 1) + [True]


def test_random_intervals_stay_within_bounds() -> None:
    low, high = 3, 6
    env = ShuffleObservation(gym.make(ENV_ID), reshuffle_every=(low, high))
    env.reset(seed=0)
    steps = [s for s in range(1, 301) if env.step(ZERO)[4]["reshuffled"]]
    gaps = np.diff([0, *steps])
    assert gaps.min() >= low and gaps.max() <= high
    assert set(gaps.tolist()) == set(range(low, high + 1))


def test_without_reshuffle_permutation_is_fixed_but_differs_across_seeds() -> None:
    env = ShuffleObservation(gym.make(ENV_ID))
    first = {}
    for seed in range(10):
        _, info = env.reset(seed=seed)
        first[seed] = info["permutation"]
        for _ in range(30):
            _, _, _, _, info = env.step(ZERO)
            assert info["reshuffled"] is False
            np.testing.assert_array_equal(info["permutation"], first[seed])
    assert len({tuple(p) for p in first.values()}) > 5


def test_permutation_property_is_a_read_only_copy() -> None:
    env = ShuffleObservation(gym.make(ENV_ID))
    assert env.permutation is None
    _, info = env.reset(seed=0)
    perm = env.permutation
    perm[:] = 0
    np.testing.assert_array_equal(env.permutation, info["permutation"])
    info["permutation"][:] = 0
    assert sorted(env.permutation) == list(range(5))
    with pytest.raises(AttributeError):
        env.permutation = np.arange(5)


def test_shuffle_space_keeps_loosest_bounds() -> None:
    inner = gym.make(ENV_ID)
    inner.observation_space = gym.spaces.Box(
        low=np.array([-1, -2, -3], dtype=np.float32), high=np.array([1, 2, 3], dtype=np.float32)
    )
    space = ShuffleObservation(inner).observation_space
    np.testing.assert_array_equal(space.low, [-3, -3, -3])
    np.testing.assert_array_equal(space.high, [3, 3, 3])
    assert space.dtype == np.float32


def test_noise_channels_append_gaussian_noise() -> None:
    n, std = 3, 0.1
    env = NoiseChannels(gym.make(ENV_ID), n=n, std=std)
    assert env.observation_space.shape == (5 + n,)
    assert np.all(np.isinf(env.observation_space.low[5:]))
    obs, _ = env.reset(seed=0)
    noise = [obs[5:]]
    for _ in range(400):
        obs, _, _, _, _ = env.step(ZERO)
        np.testing.assert_array_equal(obs[:5], observe(env.unwrapped.state))
        noise.append(obs[5:])
    noise = np.array(noise)
    assert noise.dtype == np.float32
    assert abs(noise.mean()) < 0.01
    assert noise.std() == pytest.approx(std, rel=0.06)
    assert not np.array_equal(noise[0], noise[1])  # fresh noise every step


def test_duplicate_observation_tiles() -> None:
    env = DuplicateObservation(gym.make(ENV_ID), copies=2)
    assert env.observation_space.shape == (10,)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, np.tile(observe(env.unwrapped.state), 2))
    obs, _, _, _, _ = env.step(ZERO)
    np.testing.assert_array_equal(obs, np.tile(observe(env.unwrapped.state), 2))


def test_full_stack_order() -> None:
    env = make(copies=2, reshuffle_every=3, noise=4)
    assert env.observation_space.shape == (14,)
    obs, info = env.reset(seed=5)
    raw = np.tile(observe(env.unwrapped.state), 2)
    np.testing.assert_array_equal(obs[:10], raw[info["permutation"]])
    assert sorted(info["permutation"]) == list(range(10))


def test_spec_records_wrapper_arguments() -> None:
    env = make(copies=2, reshuffle_every=(2, 5), noise=3)
    remade = env.spec.make()
    assert isinstance(remade, NoiseChannels) and remade.n == 3
    assert remade.env.reshuffle_every == (2, 5) and remade.env.env.copies == 2
    np.testing.assert_array_equal(env.reset(seed=9)[0], remade.reset(seed=9)[0])


IMPORT_EVERY_MODULE = """
import importlib, json, pkgutil, sys
import sensoryneuron, tasks, evolve
for package in (sensoryneuron, tasks, evolve):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not module.name.endswith(".__main__"):
            importlib.import_module(module.name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & {"ray", "envpool"})))
"""


def test_every_module_s_docstring_examples_are_collected_without_optional_extras() -> None:
    """pytest runs the doctests of every module of the three packages (pyproject.toml), and
    importing every module, as that collection does, imports no optional extra."""
    tomllib = pytest.importorskip("tomllib")
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    options = tomllib.loads(pyproject.read_text())["tool"]["pytest"]["ini_options"]
    assert {"sensoryneuron", "tasks", "evolve"} <= set(options["testpaths"])
    assert {"--doctest-modules", "--import-mode=importlib"} <= set(options["addopts"].split())
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERY_MODULE], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("space", "text"),
    [
        (gym.spaces.Discrete(3), "Discrete(3)"),
        (gym.spaces.Box(0.0, 1.0, (2, 2), np.float32), "Box(0.0, 1.0, (2, 2), float32)"),
    ],
)
def test_shuffle_and_duplicate_need_vector_box(space: gym.Space, text: str) -> None:
    env = gym.make(ENV_ID)
    env.observation_space = space
    msg = f"ShuffleObservation needs a 1-D Box observation space, got {text}"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        ShuffleObservation(env)
    msg = f"DuplicateObservation needs a 1-D Box observation space, got {text}"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        DuplicateObservation(env)
    msg = f"NoiseChannels needs a 1-D float Box observation space, got {text}"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        NoiseChannels(env, n=2)


def test_noise_channels_need_float_box() -> None:
    env = gym.make(ENV_ID)
    env.observation_space = gym.spaces.Box(0, 10, (3,), np.int64)
    msg = "NoiseChannels needs a 1-D float Box observation space, got Box(0, 10, (3,), int64)"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        NoiseChannels(env, n=2)


def test_shuffle_rejects_bad_reshuffle_every() -> None:
    msg = (
        "reshuffle_every must be None, an int >= 1 or a (low, high) pair of ints with "
        "1 <= low <= high, got 0"
    )
    with pytest.raises(ConfigError, match=re.escape(msg)):
        ShuffleObservation(gym.make(ENV_ID), reshuffle_every=0)


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"n": 0}, "n must be an int >= 1, got 0"),
        ({"n": True}, "n must be an int >= 1, got True"),
        ({"n": 2.0}, "n must be an int >= 1, got 2.0"),
        ({"n": 2, "std": 0}, "std must be a finite number > 0, got 0"),
        ({"n": 2, "std": -0.1}, "std must be a finite number > 0, got -0.1"),
        ({"n": 2, "std": float("inf")}, "std must be a finite number > 0, got inf"),
        ({"n": 2, "std": "0.1"}, "std must be a finite number > 0, got '0.1'"),
    ],
)
def test_noise_channels_config_errors(kwargs: dict[str, Any], msg: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(msg)):
        NoiseChannels(gym.make(ENV_ID), **kwargs)


@pytest.mark.parametrize("copies", [0, -1, 1.5, True])
def test_duplicate_config_errors(copies: Any) -> None:
    msg = f"copies must be an int >= 1, got {copies!r}"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        DuplicateObservation(gym.make(ENV_ID), copies=copies)


def test_step_before_reset_raises() -> None:
    env = ShuffleObservation(tasks.CartPoleSwingUpEnv())
    with pytest.raises(gym.error.ResetNeeded):
        env.step(ZERO)
    assert env.unwrapped.state is None
