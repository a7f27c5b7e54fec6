"""The batched rollout engine: bookkeeping, common random numbers, equivalence to gym."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import tasks
from evolve.backends import LocalBackend, shard_bounds
from evolve.rollout import EpisodeJob, rollout
from sensoryneuron import AttentionNeuronModel, FeedForwardModel, Policy
from sensoryneuron.actions import ActionMap
from tasks import spec as registry

HARDER = "SensoryNeuron/CartPoleSwingUpHarder-v0"
EASY = "SensoryNeuron/CartPoleSwingUp-v0"
MODEL = AttentionNeuronModel(act_dim=1)


def population(n, seed=0, scale=0.3, model=MODEL):
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((n, model.num_params))).astype(np.float32)


class CountdownTask:
    """A stub task: reward 1 per step; episode b terminates after ``b + 2`` steps."""

    obs_dim, act_dim, max_steps = 3, 1, 50

    def start(self, seeds, members):
        self.t = 0
        self.limit = np.arange(len(seeds)) + 2
        self.members = members
        rngs = [np.random.default_rng(s) for s in seeds]
        return np.zeros((members, len(seeds), 3), dtype=np.float32), rngs

    def keep_members(self, index):
        self.members = len(index)

    def close(self):
        pass

    def step(self, action):
        self.t += 1
        shape = (self.members, self.limit.size)
        terminated = np.broadcast_to(self.t >= self.limit, shape)
        return np.zeros((*shape, 3), np.float32), np.ones(shape), terminated

    def render(self, member, episode):
        return np.zeros((16, 16, 3), np.uint8)


def test_no_reward_is_counted_after_termination(monkeypatch):
    spec = registry.TaskSpec(
        env_id="Stub/Countdown-v0",
        observation=registry.VectorObservation(("a", "b", "c")),
        action=ActionMap.unit_box(1),
        max_steps=50,
        engines=("simulator",),
        simulator=CountdownTask,
    )
    monkeypatch.setitem(registry.TASKS, spec.env_id, spec)
    job = EpisodeJob(model=MODEL.to_dict(), env_id="Stub/Countdown-v0", seeds=(1, 2, 3, 4))
    result = rollout(job, population(3))
    expected = np.tile(np.arange(4) + 2, (3, 1))
    np.testing.assert_array_equal(result.returns, expected)
    np.testing.assert_array_equal(result.steps, expected)


def test_max_steps_truncates():
    """Episodes that last 197-370 steps on their own stop at exactly max_steps."""
    params = population(2)
    job = EpisodeJob(model=MODEL.to_dict(), env_id=EASY, seeds=(0, 1), max_steps=30)
    short = rollout(job, params)
    longer = rollout(dataclasses.replace(job, max_steps=60), params)
    free = rollout(dataclasses.replace(job, max_steps=None), params)
    np.testing.assert_array_equal(short.steps, np.full((2, 2), 30))
    np.testing.assert_array_equal(longer.steps, np.full((2, 2), 60))
    assert free.steps.min() > 60  # so the cap, not the episode, ended them
    assert np.all(longer.returns > short.returns)  # steps 31-60 add their reward


def test_members_with_equal_params_see_equal_episodes():
    params = np.repeat(population(1), 4, axis=0)
    job = EpisodeJob(model=MODEL.to_dict(), env_id=HARDER, seeds=(5, 6, 7))
    result = rollout(job, params)
    assert np.all(result.returns == result.returns[0])
    assert len(set(result.returns[0])) == 3  # the episodes themselves differ


def test_an_episode_does_not_depend_on_its_batch_neighbours():
    params = population(3)
    job = EpisodeJob(
        model=MODEL.to_dict(),
        env_id=HARDER,
        seeds=(11, 12, 13),
        perturbations={"noise_channels": 2},
    )
    together = rollout(job, params).returns
    for b, seed in enumerate(job.seeds):
        alone = rollout(dataclasses.replace(job, seeds=(seed,)), params).returns[:, 0]
        np.testing.assert_allclose(alone, together[:, b], rtol=1e-6)  # float32 round-off
    np.testing.assert_array_equal(rollout(job, params).returns, together)  # no state leaks


@pytest.mark.parametrize(
    "perturbations",
    [
        {"shuffle": False},
        {"shuffle": True},
        {"shuffle": True, "reshuffle_every": 20},
        {"shuffle": True, "reshuffle_every": [5, 30], "noise_channels": 3, "duplicate": 2},
    ],
    ids=["plain", "shuffled", "reshuffle", "dup-noise-random"],
)
def test_engine_matches_a_gym_loop_with_the_wrapper_stack(perturbations):
    """Training (vectorised) sees what evaluation through gym wrappers sees."""
    steps = 150
    policy = Policy(MODEL, population(1, seed=3, scale=0.2)[0])
    job = EpisodeJob(
        model=MODEL.to_dict(),
        env_id=EASY,
        perturbations=perturbations,
        seeds=(21, 22),
        max_steps=steps,
    )
    engine = rollout(job, policy.params[None]).returns[0]
    p = tasks.Perturbations.from_dict(perturbations)
    for b, seed in enumerate(job.seeds):
        env = p.wrap(gym.make(EASY, max_episode_steps=steps))
        obs, _ = env.reset(seed=seed)
        state, total = policy.reset(1), 0.0
        while True:
            action, state = policy.act(obs[None], state)
            obs, reward, terminated, truncated, _ = env.step(action[0])
            total += reward
            if terminated or truncated:
                break
        assert total == pytest.approx(engine[b], rel=1e-4, abs=1e-3)


def test_realigned_reshuffles_equal_shuffle_at_reset_episode_by_episode():
    params = population(2, seed=4, scale=0.2)
    base = EpisodeJob(
        model=MODEL.to_dict(), env_id=EASY, seeds=(31, 32, 33), float64=True, max_steps=400
    )
    shuffled = rollout(dataclasses.replace(base, perturbations={"shuffle": True}), params)
    realigned = rollout(
        dataclasses.replace(base, perturbations={"reshuffle_every": 25}, realign=True), params
    )
    moved = rollout(dataclasses.replace(base, perturbations={"reshuffle_every": 25}), params)
    np.testing.assert_allclose(realigned.returns, shuffled.returns, rtol=1e-9)
    assert not np.allclose(moved.returns, shuffled.returns, rtol=1e-3)


def test_feed_forward_policy_runs_in_the_engine():
    """The engine plays a feed-forward policy as a plain gym loop does, member by member."""
    fnn = FeedForwardModel(obs_dim=5, act_dim=1)
    params = population(3, model=fnn)
    steps = 200
    job = EpisodeJob(
        model=fnn.to_dict(),
        env_id=HARDER,
        perturbations={"shuffle": False},
        seeds=(1,),
        max_steps=steps,
    )
    result = rollout(job, params)
    assert result.returns.shape == (3, 1)
    for member in range(3):
        policy = Policy(fnn, params[member])
        env = gym.make(HARDER, max_episode_steps=steps)
        obs, _ = env.reset(seed=1)
        state, total, t = policy.reset(1), 0.0, 0
        while True:
            action, state = policy.act(obs[None], state)
            obs, reward, terminated, truncated, _ = env.step(action[0])
            total, t = total + reward, t + 1
            if terminated or truncated:
                break
        assert total == pytest.approx(result.returns[member, 0], rel=1e-4, abs=1e-3)
        assert t == result.steps[member, 0]
    assert len(set(result.returns[:, 0].tolist())) == 3  # the members play differently


def test_shards_cover_the_population_in_order():
    assert shard_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert shard_bounds(2, 8) == [(0, 1), (1, 2)]


def test_local_backend_with_workers_equals_inline():
    params = population(6, seed=8)
    job = EpisodeJob(model=MODEL.to_dict(), env_id=HARDER, seeds=(41, 42), max_steps=300)
    with LocalBackend(1) as inline, LocalBackend(2) as pool:
        a = inline.evaluate(job, params)
        b = pool.evaluate(job, params)
    np.testing.assert_allclose(a.returns, b.returns, rtol=1e-5)
    assert a.returns.shape == (6, 2)
    np.testing.assert_array_equal(a.steps, b.steps)
    assert a.steps.min() > 0 and len(np.unique(a.returns)) == 12  # every episode was played


def test_local_backends_agree_bit_for_bit_on_a_pool_task():
    """Pendulum on the gym engine (a pool per worker), shuffled and reshuffled."""
    params = population(6, seed=8)
    job = EpisodeJob(
        model=MODEL.to_dict(),
        env_id="Pendulum-v1",
        perturbations={"shuffle": True, "reshuffle_every": 20},
        seeds=(41, 42),
        engine="gym",
    )
    with LocalBackend(1) as inline, LocalBackend(2) as pool:
        sharded = pool.evaluate(job, params)
        shards = [inline.evaluate(job, params[a:b]) for a, b in shard_bounds(6, 2)]
        whole = inline.evaluate(job, params)
    np.testing.assert_array_equal(sharded.returns, np.concatenate([s.returns for s in shards]))
    np.testing.assert_array_equal(sharded.steps, np.concatenate([s.steps for s in shards]))
    np.testing.assert_array_equal(sharded.steps, np.full((6, 2), 200))  # Pendulum's limit
    np.testing.assert_allclose(whole.returns, sharded.returns, rtol=1e-5)
    assert len(np.unique(sharded.returns)) == 12  # members and episodes all differ


@pytest.mark.parametrize("engine", ["gym", "envpool"])
def test_pool_engines_run_in_the_engine_with_common_random_numbers(engine):
    if engine == "envpool":
        pytest.importorskip("envpool")
    params = population(3, seed=9)
    params[2] = params[0]
    job = EpisodeJob(
        model=MODEL.to_dict(),
        env_id="Pendulum-v1",
        perturbations={"shuffle": True},
        seeds=(5, 6),
        engine=engine,
    )
    result = rollout(job, params)
    np.testing.assert_array_equal(result.returns[2], result.returns[0])
    np.testing.assert_array_equal(result.steps, np.full((3, 2), 200))
    assert len(np.unique(result.returns)) == 4  # two members, two episodes
    np.testing.assert_array_equal(rollout(job, params).returns, result.returns)  # pool reused
