"""Task specs: the registered tasks, specs read off any Gymnasium id, and their errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

from sensoryneuron.actions import ActionMap
from sensoryneuron.errors import ConfigError
from tasks.cartpole_batched import VecCartPoleSwingUp
from tasks.pools import GymPool
from tasks.spec import (
    CARTPOLE_SWINGUP_HARDER_ID,
    TASKS,
    PatchObservation,
    TaskSpec,
    VectorObservation,
    get_task,
    make_batched_task,
    observation_names,
)


def test_registered_tasks_say_what_they_give_and_take():
    harder = get_task(CARTPOLE_SWINGUP_HARDER_ID)
    assert harder.observation.names == ("x", "x_dot", "cos th", "sin th", "th_dot")
    assert harder.action.is_identity and harder.max_steps == 1000
    assert harder.engines == ("simulator", "gym", "fused")
    assert get_task("CartPole-v1").action == ActionMap.discrete(2)
    assert get_task("Pendulum-v1").action == ActionMap.box([-2.0], [2.0])
    ant = get_task("Ant-v5")
    assert ant.observation.size == 27 and ant.action.output_dim == 8
    assert ant.env_kwargs == {"include_cfrc_ext_in_observation": False}


def test_each_engine_makes_its_batched_task():
    assert isinstance(make_batched_task(CARTPOLE_SWINGUP_HARDER_ID), VecCartPoleSwingUp)
    pool = make_batched_task(CARTPOLE_SWINGUP_HARDER_ID, "gym")
    assert isinstance(pool, GymPool)
    pool.close()


def test_the_gym_engine_and_the_simulator_start_the_same_episodes():
    sim_obs, sim_rngs = make_batched_task(CARTPOLE_SWINGUP_HARDER_ID).start([3, 4], members=2)
    pool = make_batched_task(CARTPOLE_SWINGUP_HARDER_ID, "gym")
    gym_obs, gym_rngs = pool.start([3, 4], members=2)
    np.testing.assert_array_equal(sim_obs, gym_obs)
    # the perturbations draw the same permutations from either engine's generators
    assert [r.permutation(5).tolist() for r in sim_rngs] == [
        r.permutation(5).tolist() for r in gym_rngs
    ]
    action = np.full((2, 2, 1), 0.3)
    sim = make_batched_task(CARTPOLE_SWINGUP_HARDER_ID)
    sim.start([3, 4], members=2)
    for _ in range(5):
        a, ra, da = sim.step(action)
        b, rb, db = pool.step(action)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(da, db)
    pool.close()


def test_any_gymnasium_id_gets_a_spec_from_its_spaces():
    spec = get_task("MountainCarContinuous-v0")
    assert spec.observation == VectorObservation(("obs 0", "obs 1"))
    assert spec.action == ActionMap.box([-1.0], [1.0])
    assert spec.max_steps == 999 and spec.engines == ("gym",)
    assert get_task("Acrobot-v1").action == ActionMap.discrete(3)
    assert observation_names("Acrobot-v1") == tuple(f"obs {i}" for i in range(6))


@pytest.mark.parametrize(
    ("env_id", "message"),
    [
        ("NoSuchEnv-v9", "unknown task 'NoSuchEnv-v9': not a registered task ("),
        ("", "a task is named by its Gymnasium id; got ''"),
        ("Blackjack-v1", "Blackjack-v1: the engine takes a 1-D Box observation"),
    ],
)
def test_unusable_ids_are_refused(env_id, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        get_task(env_id)


def test_engines_are_checked():
    spec = get_task("Pendulum-v1")
    with pytest.raises(
        ConfigError, match=re.escape("Pendulum-v1 runs on gym, envpool; not on engine 'simulator'")
    ):
        spec.make_batched("simulator")
    with pytest.raises(ConfigError, match=re.escape("engines must be some of simulator, gym")):
        TaskSpec("X-v0", VectorObservation(("a",)), ActionMap.unit_box(1), 10, engines=("cuda",))
    with pytest.raises(ConfigError, match=re.escape("the simulator engine needs a simulator")):
        TaskSpec("X-v0", VectorObservation(("a",)), ActionMap.unit_box(1), 10, ("simulator",))


def test_patch_observations_count_patches():
    obs = PatchObservation(frames=4, height=96, width=96, patch=6)
    assert obs.grid == (16, 16) and obs.size == 256 and obs.patch_size == 144
    with pytest.raises(ConfigError, match=re.escape("a 96x90 frame does not split into 7x7")):
        PatchObservation(frames=4, height=96, width=90, patch=7)


def test_every_registered_task_is_keyed_by_its_id():
    assert all(key == spec.env_id for key, spec in TASKS.items())
