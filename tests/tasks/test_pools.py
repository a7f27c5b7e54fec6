"""Pools of real environments as batched tasks: GymPool (gym.make envs) and EnvpoolPool.

Both are checked on the same behaviour: shapes, common random numbers across members,
finished episodes never stepped again, compaction, errors. GymPool must equal single
``gym.make`` envs bit for bit; EnvpoolPool must equal single-env envpools seeded alike.
"""

from __future__ import annotations

import dataclasses
import doctest
import re
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils import seeding

import tasks.pools.gym_pool
from sensoryneuron.errors import ConfigError
from tasks.batched import BatchedTask
from tasks.pools import EnvpoolPool, GymPool
from tasks.pools.envpool_pool import NO_RENDER, envpool_kwargs, envpool_seed
from tasks.spec import get_task

ENGINES = ["gym", "envpool"]
SMALL_TASKS = ["Pendulum-v1", "CartPole-v1"]


def make_pool(engine: str, env_id: str):
    if engine == "envpool":
        pytest.importorskip("envpool")
        return EnvpoolPool(get_task(env_id))
    return GymPool(get_task(env_id))


def random_actions(env_id: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Env actions ``[*shape, ...]`` of ``env_id`` (int for Discrete), from ``seed``."""
    action = get_task(env_id).action
    rng = np.random.default_rng(seed)
    if action.kind == "discrete":
        return rng.integers(0, action.n, size=shape)
    return rng.uniform(action.low, action.high, size=(*shape, action.output_dim))


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    return request.param


@pytest.mark.parametrize("env_id", SMALL_TASKS)
def test_start_and_step_shapes(engine, env_id):
    pool = make_pool(engine, env_id)
    size = get_task(env_id).observation.size
    obs, rngs = pool.start([3, 4], members=3)
    assert obs.shape == (3, 2, size) and obs.dtype == np.float32
    assert len(rngs) == 2 and all(isinstance(r, np.random.Generator) for r in rngs)
    obs, reward, done = pool.step(random_actions(env_id, (3, 2), seed=0))
    assert obs.shape == (3, 2, size) and obs.dtype == np.float32
    assert reward.shape == (3, 2) and reward.dtype == np.float64
    assert done.shape == (3, 2) and done.dtype == np.bool_
    assert pool.max_steps == get_task(env_id).max_steps
    pool.close()


@pytest.mark.parametrize("env_id", SMALL_TASKS)
def test_members_with_equal_actions_see_equal_episodes(engine, env_id):
    pool = make_pool(engine, env_id)
    obs, _ = pool.start([11, 12], members=3)
    trajectory = [obs]
    for t in range(40):
        action = np.repeat(random_actions(env_id, (1, 2), seed=t), 3, axis=0)
        obs, reward, done = pool.step(action)
        trajectory.append(obs)
        for p in (1, 2):
            np.testing.assert_array_equal(reward[p], reward[0])
            np.testing.assert_array_equal(done[p], done[0])
    trajectory = np.array(trajectory)  # [T, P, B, n]
    for p in (1, 2):
        np.testing.assert_array_equal(trajectory[:, p], trajectory[:, 0])
    assert not np.array_equal(trajectory[0, 0, 0], trajectory[0, 0, 1])  # seeds differ
    pool.close()


def test_a_second_start_replays_the_first(engine):
    pool = make_pool(engine, "Pendulum-v1")
    runs = []
    for _ in range(2):
        obs, rngs = pool.start([5, 6], members=2)
        steps = [obs]
        for t in range(20):
            steps.append(pool.step(random_actions("Pendulum-v1", (2, 2), seed=t))[0])
        runs.append((np.array(steps), [r.random() for r in rngs]))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    pool.close()


def test_finished_episodes_are_not_stepped_again(engine):
    """CartPole pushed one way falls within a few steps; then its env is left alone."""
    pool = make_pool(engine, "CartPole-v1")
    obs, _ = pool.start([1, 2, 3], members=2)
    push = np.zeros((2, 3), dtype=np.int64)
    push[1] = 1  # member 1 pushes right, member 0 left
    ended_at = np.full((2, 3), -1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gym warns on a step after terminated
        for t in range(60):
            before = obs
            obs, reward, done = pool.step(push)
            stale = ended_at >= 0  # ended before this step
            np.testing.assert_array_equal(obs[stale], before[stale])
            np.testing.assert_array_equal(reward[stale], 0.0)
            assert done[stale].all()
            np.testing.assert_array_equal(reward[~stale], 1.0)  # CartPole pays every step
            ended_at[done & ~stale] = t
    assert (ended_at > 3).all() and (ended_at < 30).all()
    assert done.all()
    assert np.abs(obs[:, :, 2]).min() > 0.2  # the poles fell (|theta| > 12 degrees)
    pool.close()


@pytest.mark.parametrize("env_id", SMALL_TASKS)
def test_keep_members_compacts_the_batch(engine, env_id):
    full = make_pool(engine, env_id)
    compact = make_pool(engine, env_id)
    seeds = [21, 22]
    a, _ = full.start(seeds, members=3)
    b, _ = compact.start(seeds, members=3)
    keep = np.array([2, 0])
    for t in range(30):
        action = random_actions(env_id, (3, 2), seed=100 + t)
        if t == 10:
            compact.keep_members(keep)
        a, ra, da = full.step(action)
        b, rb, db = compact.step(action[keep] if t >= 10 else action)
    assert b.shape[:2] == (2, 2)
    np.testing.assert_array_equal(b, a[keep])
    np.testing.assert_array_equal(rb, ra[keep])
    np.testing.assert_array_equal(db, da[keep])
    full.close()
    compact.close()


@pytest.mark.parametrize("env_id", SMALL_TASKS)
def test_gym_pool_equals_single_gym_envs_bit_for_bit(env_id):
    seeds, steps = [7, 8], 60
    actions = [random_actions(env_id, (2, 2), seed=t) for t in range(steps)]
    pool = GymPool(get_task(env_id))
    obs, rngs = pool.start(seeds, members=2)
    pooled = [(obs, np.zeros((2, 2)), np.zeros((2, 2), dtype=bool))]
    for action in actions:
        pooled.append(pool.step(action))
    pool.close()
    for b, seed in enumerate(seeds):
        probe = gym.make(env_id)
        probe.reset(seed=seed)
        assert rngs[b].bit_generator.state == probe.unwrapped.np_random.bit_generator.state
        for p in range(2):
            env = gym.make(env_id)
            first, _ = env.reset(seed=seed)
            np.testing.assert_array_equal(pooled[0][0][p, b], first.astype(np.float32))
            ended = False
            for t, action in enumerate(actions):
                obs, reward, done = pooled[t + 1]
                if ended:
                    assert reward[p, b] == 0.0 and done[p, b]
                    continue
                o, r, terminated, truncated, _ = env.step(action[p, b])
                np.testing.assert_array_equal(obs[p, b], o.astype(np.float32))
                assert reward[p, b] == r and done[p, b] == (terminated or truncated)
                ended = terminated or truncated


@pytest.mark.parametrize("env_id", SMALL_TASKS)
def test_envpool_pool_equals_single_envpools_seeded_alike(env_id):
    envpool = pytest.importorskip("envpool")
    seeds, steps = [7, 2**32 + 8], 60
    actions = [random_actions(env_id, (2, 2), seed=t) for t in range(steps)]
    pool = EnvpoolPool(get_task(env_id))
    obs, rngs = pool.start(seeds, members=2)
    pooled = [(obs, np.zeros((2, 2)), np.zeros((2, 2), dtype=bool))]
    for action in actions:
        pooled.append(pool.step(action))
    pool.close()
    for b, seed in enumerate(seeds):
        expected_rng = seeding.np_random(seed)[0]
        assert rngs[b].bit_generator.state == expected_rng.bit_generator.state
        for p in range(2):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # envpool's float64 Box bounds
                env = envpool.make(
                    env_id, env_type="gymnasium", num_envs=1, seed=envpool_seed(seed)
                )
                first, _ = env.reset()
            np.testing.assert_array_equal(pooled[0][0][p, b], first[0])
            ended = False
            for t, action in enumerate(actions):
                obs, reward, done = pooled[t + 1]
                if ended:
                    assert reward[p, b] == 0.0 and done[p, b]
                    continue
                o, r, terminated, truncated, _ = env.step(action[p, b][None])
                np.testing.assert_array_equal(obs[p, b], o[0])
                assert reward[p, b] == r[0] and done[p, b] == (terminated[0] or truncated[0])
                ended = bool(terminated[0] or truncated[0])
            env.close()


def test_envpool_truncates_at_the_tasks_max_steps():
    pytest.importorskip("envpool")
    spec = dataclasses.replace(get_task("Pendulum-v1"), max_steps=15)
    pool = EnvpoolPool(spec)
    pool.start([1], members=2)
    for t in range(15):
        _, _, done = pool.step(np.zeros((2, 1, 1)))
        assert done.all() == (t == 14)
    pool.close()


@pytest.mark.parametrize("env_id", SMALL_TASKS)
def test_a_bad_action_shape_is_refused(engine, env_id):
    pool = make_pool(engine, env_id)
    pool.start([1, 2], members=3)
    bad = random_actions(env_id, (2, 2), seed=0)
    msg = f"action must have leading shape (3, 2), got {bad.shape}"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        pool.step(bad)
    pool.close()


def test_envpool_refuses_a_bad_action_width():
    pytest.importorskip("envpool")
    pool = EnvpoolPool(get_task("Pendulum-v1"))
    pool.start([1, 2], members=3)
    msg = "action must have shape (3, 2, 1), got (3, 2, 2)"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        pool.step(np.zeros((3, 2, 2)))
    pool.close()


def test_step_before_start_needs_a_start(engine):
    pool = make_pool(engine, "Pendulum-v1")
    with pytest.raises(gym.error.ResetNeeded, match=re.escape("Call start() before step().")):
        pool.step(np.zeros((1, 1, 1)))
    msg = "seeds must hold at least one seed (one per episode), got 0"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        pool.start([], members=1)
    with pytest.raises(ConfigError, match=re.escape("members must be an int >= 1, got 0")):
        pool.start([1], members=0)


def test_envpool_renders_nothing_and_says_where_to_record():
    pytest.importorskip("envpool")
    assert NO_RENDER == (
        "the envpool engine renders no frames; record videos on the gym engine (engine='gym')"
    )
    with pytest.raises(ConfigError, match=re.escape(NO_RENDER)):
        EnvpoolPool(get_task("Pendulum-v1"), render_mode="rgb_array")
    pool = EnvpoolPool(get_task("Pendulum-v1"))
    pool.start([1], members=1)
    with pytest.raises(ConfigError, match=re.escape(NO_RENDER)):
        pool.render(0, 0)
    pool.close()


def test_envpool_missing_or_not_an_engine_of_the_task(monkeypatch):
    msg = "Acrobot-v1 runs on gym; not on engine 'envpool'"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        EnvpoolPool(get_task("Acrobot-v1"))
    monkeypatch.setitem(sys.modules, "envpool", None)  # find_spec now says: not installed
    msg = "the envpool engine needs envpool: pip install -e '.[envpool]'"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        EnvpoolPool(get_task("Pendulum-v1"))


def test_env_kwargs_in_envpools_names():
    ant = get_task("Ant-v5")
    fields = ("num_envs", "max_episode_steps", "use_contact_force", "ctrl_cost_weight")
    fields += ("healthy_z_min", "healthy_z_max")
    assert envpool_kwargs(ant, fields) == (
        {"use_contact_force": True, "max_episode_steps": 1000},
        {"use_contact_force": False, "max_episode_steps": 1000},
    )
    heavy = dataclasses.replace(
        ant,
        env_kwargs={
            "include_cfrc_ext_in_observation": True,
            "ctrl_cost_weight": 0.1,
            "healthy_z_range": (0.3, 1.5),
        },
    )
    assert envpool_kwargs(heavy, fields) == (
        {
            "use_contact_force": True,
            "ctrl_cost_weight": 0.1,
            "healthy_z_min": 0.3,
            "healthy_z_max": 1.5,
            "max_episode_steps": 1000,
        },
        None,
    )
    odd = dataclasses.replace(ant, env_kwargs={"main_body": 2})
    msg = "Ant-v5: envpool's Ant-v5 has no option 'main_body' (gym.make's main_body=2); run it on the gym engine"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        envpool_kwargs(odd, fields)
    owned = dataclasses.replace(ant, env_kwargs={"num_envs": 3})
    msg = "Ant-v5: env_kwargs 'num_envs' is set by the envpool pool"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        envpool_kwargs(owned, fields)


def test_envpool_refuses_a_task_prepared_by_a_gym_wrapper():
    pytest.importorskip("envpool")
    pendulum = get_task("Pendulum-v1")
    if not hasattr(pendulum, "prepare"):
        pytest.skip("this TaskSpec has no prepare hook")
    msg = (
        "Pendulum-v1: its observations are prepared by a Gymnasium wrapper (TaskSpec.prepare), "
        "which envpool's C++ envs cannot take; run it on the gym engine"
    )
    with pytest.raises(ConfigError, match=re.escape(msg)):
        EnvpoolPool(dataclasses.replace(pendulum, prepare=lambda env: env))


def test_envpool_refuses_an_observation_of_another_shape():
    pytest.importorskip("envpool")
    wide = dataclasses.replace(
        get_task("Ant-v5"), env_kwargs={"include_cfrc_ext_in_observation": True}
    )
    pool = EnvpoolPool(wide)
    msg = "Ant-v5 on envpool gives observations of shape (105,); the task expects 27 sensors"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        pool.start([1], members=1)


def test_envpool_seeds_are_31_bit_and_distinct():
    seeds = [envpool_seed(s) for s in [*range(1000), 2**32, 2**32 + 1, 2**40]]
    assert all(0 <= s < 2**31 for s in seeds)
    assert len(set(seeds)) == len(seeds)
    assert envpool_seed(7) == envpool_seed(7)


def test_ant_runs_on_each_engine(engine):
    pytest.importorskip("mujoco")
    pool = make_pool(engine, "Ant-v5")
    obs, _ = pool.start([1, 2], members=2)
    assert obs.shape == (2, 2, 27)
    for t in range(5):
        action = np.repeat(random_actions("Ant-v5", (1, 2), seed=t), 2, axis=0)
        obs, reward, done = pool.step(action)
    assert obs.shape == (2, 2, 27) and reward.shape == (2, 2)
    np.testing.assert_array_equal(obs[1], obs[0])
    assert np.isfinite(obs).all() and not done.any()
    pool.close()


def test_gym_pool_docstring_example_runs():
    result = doctest.testmod(tasks.pools.gym_pool, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_pools_are_batched_tasks(engine):
    assert isinstance(make_pool(engine, "Pendulum-v1"), BatchedTask)
