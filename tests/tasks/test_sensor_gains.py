"""Fixed sensor gains (tasks.sensor_gains): Ant-v5's readings are the stock env's, scaled.

Tests that step the Ant skip without the mujoco extra (envpool's without envpool).
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

from sensoryneuron.errors import ConfigError
from tasks.pools import EnvpoolPool, GymPool
from tasks.pools.envpool_pool import envpool_seed
from tasks.sensor_gains import SensorGains
from tasks.spec import ANT_GAINS, ANT_SENSOR_GROUPS, get_task


def ant_actions(steps: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.uniform(-1, 1, (1, 1, 8)).astype(np.float32) for _ in range(steps)]


def test_gains_by_group_cover_each_sensor_of_its_group():
    gains = SensorGains.by_group((("a", 2), ("b", 3)), {"b": 0.5})
    assert gains.gains == (1.0, 1.0, 0.5, 0.5, 0.5)
    assert ANT_GAINS.gains[-8:] == (0.1,) * 8 and ANT_GAINS.gains[16:19] == (0.3,) * 3
    assert len(ANT_GAINS.gains) == sum(count for _, count in ANT_SENSOR_GROUPS) == 27


def test_bad_gains_are_refused_with_exact_messages():
    with pytest.raises(ConfigError, match=r"^gain 1 must be a positive finite number; got 0\.0$"):
        SensorGains((1.0, 0.0))
    with pytest.raises(ConfigError, match=r"^gain 0 must be a positive finite number; got nan$"):
        SensorGains((float("nan"),))
    with pytest.raises(ConfigError, match=r"^gains must hold one gain per sensor; got none$"):
        SensorGains(())
    msg = r"^no sensor group 'c'; groups: \['a'\]$"
    with pytest.raises(ConfigError, match=msg):
        SensorGains.by_group((("a", 1),), {"c": 2.0})
    msg = r"^observations of shape \(3,\) do not end in the 2 sensors these gains scale$"
    with pytest.raises(ConfigError, match=msg):
        SensorGains((1.0, 2.0)).apply(np.zeros(3))


def test_the_gym_engine_reads_the_stock_ant_scaled_with_its_rewards():
    pytest.importorskip("mujoco")
    spec = get_task("Ant-v5")
    stock = gym.make("Ant-v5", **spec.env_kwargs)
    first, _ = stock.reset(seed=11)
    pool = GymPool(spec)
    obs, _ = pool.start([11], members=1)
    scale = np.asarray(ANT_GAINS.gains, dtype=np.float32)
    np.testing.assert_array_equal(obs[0, 0], first.astype(np.float32) * scale)
    for action in ant_actions(30):
        o, r, terminated, truncated, _ = stock.step(action[0, 0])
        obs, reward, done = pool.step(action)
        np.testing.assert_array_equal(obs[0, 0], o.astype(np.float32) * scale)
        assert reward[0, 0] == r and done[0, 0] == (terminated or truncated)
    pool.close()
    assert spec.make_env().observation_space.shape == (27,)


def test_the_envpool_engine_scales_its_readings_alike():
    envpool = pytest.importorskip("envpool")
    pytest.importorskip("mujoco")
    pool = EnvpoolPool(get_task("Ant-v5"))
    obs, _ = pool.start([5], members=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # envpool's float64 Box bounds
        raw = envpool.make("Ant-v5", env_type="gymnasium", num_envs=1, seed=envpool_seed(5))
        first, _ = raw.reset()
    scale = np.asarray(ANT_GAINS.gains, dtype=np.float32)
    np.testing.assert_array_equal(obs[0, 0], first[0, :27].astype(np.float32) * scale)
    for action in ant_actions(20):
        o, r, *_ = raw.step(action[0])
        obs, reward, _ = pool.step(action)
        np.testing.assert_array_equal(obs[0, 0], o[0, :27].astype(np.float32) * scale)
        assert reward[0, 0] == r[0]
    pool.close()
    raw.close()
