"""The one episode loop on real Gymnasium tasks: observers, drivers, discrete actions, and
its equivalence to a plain gym loop through the wrapper twins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evolve.rollout import EpisodeJob, Observer, episodes, iterate, rollout
from sensoryneuron import AttentionNeuronModel, Policy
from tasks.perturbations import Perturbations
from tasks.spec import get_task

PENDULUM = "Pendulum-v1"
CARTPOLE = "CartPole-v1"


def params_for(model, seed=0, scale=0.3, members=1):
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((members, model.num_params))).astype(np.float32)


class Recorder(Observer):
    attention = True

    def __init__(self):
        self.resets, self.acts, self.rewards, self.actions, self.attention_shapes = 0, 0, [], [], []

    def on_reset(self, view):
        self.resets += 1

    def on_act(self, view):
        self.acts += 1
        self.actions.append(view.action.copy())
        self.attention_shapes.append(view.attention.shape)

    def on_step(self, view):
        self.rewards.append(view.reward.copy())


def play(env_id, model, params, perturbations, seeds, **kwargs):
    spec = get_task(env_id)
    task = spec.make_batched("gym")
    try:
        return episodes(
            model,
            torch.from_numpy(params),
            task,
            perturbations,
            seeds,
            action_map=spec.action,
            observation=spec.observation,
            **kwargs,
        )
    finally:
        task.close()


def test_observers_see_every_step_and_the_rewards_add_up_to_the_returns():
    model = AttentionNeuronModel(act_dim=1)
    recorder = Recorder()
    result = play(
        PENDULUM, model, params_for(model, members=2), Perturbations(reshuffle_every=30), [1, 2],
        observers=[recorder], max_steps=60,
    )  # fmt: skip
    assert recorder.resets == 1 and recorder.acts == 60 and len(recorder.rewards) == 60
    np.testing.assert_allclose(np.sum(recorder.rewards, axis=0), result.returns)
    np.testing.assert_array_equal(result.steps, np.full((2, 2), 60))
    assert recorder.attention_shapes[0] == (2, 2, 16, 3)
    actions = np.stack(recorder.actions)
    assert np.all(np.abs(actions) <= 2.0) and np.abs(actions).max() > 1.0  # mapped to [-2, 2]


def test_a_discrete_task_gets_int_actions_and_the_policy_reads_back_its_choice():
    model = AttentionNeuronModel(act_dim=2)
    seen = []

    class Prev(Observer):
        def on_act(self, view):
            seen.append((view.action.copy(), view.state.carry["prev_action"].numpy().copy()))

    result = play(
        CARTPOLE, model, params_for(model, seed=5), Perturbations(reshuffle_every=10), [7],
        observers=[Prev()],
    )  # fmt: skip
    assert result.steps[0, 0] == len(seen) >= 8  # CartPole-v1 lasts at least 8 steps
    for action, prev in seen:
        assert action.dtype == np.int64
        np.testing.assert_array_equal(prev, np.eye(2, dtype=np.float32)[action])


def test_a_driver_executes_its_outputs_and_they_become_the_previous_action():
    model = AttentionNeuronModel(act_dim=1)
    fixed = np.array([[[0.25]]], dtype=np.float32)
    seen = []

    class Prev(Observer):
        def on_act(self, view):
            seen.append((view.output.copy(), view.action.copy(), view.state.carry["prev_action"]))

    play(
        PENDULUM, model, params_for(model), Perturbations(), [3], observers=[Prev()],
        driver=lambda view: fixed, max_steps=20,
    )  # fmt: skip
    for output, action, prev in seen:
        np.testing.assert_array_equal(output, fixed)
        np.testing.assert_allclose(action, 0.5)  # 0.25 of the way up [-2, 2]
        np.testing.assert_allclose(prev.numpy(), fixed, atol=1e-7)


def test_the_generator_twin_gives_the_same_result():
    model = AttentionNeuronModel(act_dim=1)
    params = params_for(model, members=3)
    spec = get_task(PENDULUM)
    direct = play(PENDULUM, model, params, Perturbations(noise_channels=2), [4, 5], max_steps=50)
    task = spec.make_batched("gym")
    loop = iterate(
        model, torch.from_numpy(params), task, Perturbations(noise_channels=2), [4, 5],
        action_map=spec.action, max_steps=50,
    )  # fmt: skip
    steps = 0
    while True:
        try:
            next(loop)
            steps += 1
        except StopIteration as end:
            result = end.value
            break
    task.close()
    assert steps == 50
    np.testing.assert_array_equal(result.returns, direct.returns)


@pytest.mark.parametrize(
    ("env_id", "act_dim", "perturbations"),
    [
        (PENDULUM, 1, {"reshuffle_every": [5, 30], "noise_channels": 2}),
        (CARTPOLE, 2, {"reshuffle_every": 20, "duplicate": 2}),
    ],
)
def test_the_engine_equals_a_plain_gym_loop_through_the_wrapper_twins(
    env_id, act_dim, perturbations
):
    """What training sees in the pool is what a user sees stepping one wrapped gym env."""
    model = AttentionNeuronModel(act_dim=act_dim)
    spec = get_task(env_id)
    policy = Policy(model, params_for(model, seed=2, scale=0.2)[0], action=spec.action)
    job = EpisodeJob(
        model=model.to_dict(), env_id=env_id, perturbations=perturbations, seeds=(11, 12),
        engine="gym", float64=False, max_steps=120,
    )  # fmt: skip
    engine = rollout(job, policy.params[None]).returns[0]
    wrapped = Perturbations.from_dict(perturbations)
    for b, seed in enumerate(job.seeds):
        env = wrapped.wrap(spec.make_env())
        obs, _ = env.reset(seed=seed)
        state, total = policy.reset(1), 0.0
        for _ in range(120):
            action, state = policy.act(obs[None], state)
            obs, reward, terminated, truncated, _ = env.step(action[0])
            total += reward
            if terminated or truncated:
                break
        env.close()
        assert total == pytest.approx(engine[b], rel=1e-4, abs=1e-3)


def test_a_background_swap_is_part_of_the_pool_and_matches_its_wrapper_twin():
    pytest.importorskip("Box2D")
    from evolve.rollout import batched_task

    swapped = Perturbations(background="checkerboard")
    spec = get_task("CarRacing-v3")
    plain_obs, _ = batched_task(spec.env_id, "gym").start([5], members=1)
    pool = batched_task(spec.env_id, "gym", swapped)
    assert pool is batched_task(spec.env_id, "gym", swapped)  # one pool per background
    obs, _ = pool.start([5], members=1)
    env = swapped.task(spec).make_env()  # the env side of the wrapper stack
    twin, _ = env.reset(seed=5)
    env.close()
    assert obs.shape == (1, 1, 4, 96, 96)
    np.testing.assert_array_equal(obs[0, 0], twin)
    assert (obs != plain_obs).mean() > 0.05  # the grass is gone
