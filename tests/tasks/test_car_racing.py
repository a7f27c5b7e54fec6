"""CarRacing-v3 on both engines: one frame preparation, batched or as Gymnasium wrappers, and
what envpool's C++ CarRacing shares with stock Gymnasium's."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from tasks.frame_preparation import FramePreparation
from tasks.perturbations import Perturbations
from tasks.spec import get_task

pytest.importorskip("Box2D")

CAR = "CarRacing-v3"
GAS = np.array([0.0, 0.6, 0.0])


def rgb_episode(steps: int, seed: int = 3) -> list[np.ndarray]:
    env = gym.make(CAR)
    frames = [env.reset(seed=seed)[0]]
    for t in range(steps):
        frames.append(env.step(np.array([np.sin(t / 5), 0.5, 0.0]))[0])
    env.close()
    return frames


class Replay(gym.Env):
    """An env that plays back given RGB frames (whatever the actions)."""

    def __init__(self, frames):
        self.frames = frames
        self.observation_space = gym.spaces.Box(0, 255, frames[0].shape, dtype=np.uint8)
        self.action_space = gym.spaces.Box(-1, 1, (3,))
        self.t = 0

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return self.frames[0], {}

    def step(self, action):
        self.t += 1
        return self.frames[self.t], 0.0, False, False, {}


@pytest.mark.parametrize("background", [None, "checkerboard", "noise:3"])
def test_batched_preparation_equals_the_gymnasium_wrappers(background):
    frames = rgb_episode(6)
    prep = FramePreparation(frames=4, crop_bottom=12, background=background)
    env = prep(Replay(frames))
    batched = prep.batched()
    want = [env.reset()[0]] + [env.step(GAS)[0] for _ in frames[1:]]
    got = [batched.reset(np.stack([frames[0]] * 2))]
    got += [batched.step(np.stack([f] * 2)) for f in frames[1:]]
    for w, g in zip(want, got, strict=True):
        assert g.shape == (2, 4, 96, 96)
        np.testing.assert_array_equal(g[0], w)
        np.testing.assert_array_equal(g[1], w)


def test_the_background_of_a_condition_reaches_the_frames_on_every_engine():
    spec = Perturbations(background="checkerboard").task(get_task(CAR))
    assert spec.prepare == FramePreparation(4, 12, "checkerboard")
    plain = get_task(CAR).make_env()
    swapped = spec.make_env()
    a, b = plain.reset(seed=5)[0], swapped.reset(seed=5)[0]
    assert a.shape == b.shape == (4, 96, 96) and (a != b).mean() > 0.2
    plain.close()
    swapped.close()


def test_envpool_and_gymnasium_share_spaces_reward_scale_and_episode_length():
    envpool = pytest.importorskip("envpool")
    from tasks.pools import EnvpoolPool, GymPool

    ours = envpool.make_gymnasium(CAR, num_envs=1)
    stock = gym.make(CAR)
    assert ours.observation_space.shape == stock.observation_space.shape == (96, 96, 3)
    assert ours.observation_space.dtype == stock.observation_space.dtype == np.uint8
    np.testing.assert_allclose(ours.action_space.low, stock.action_space.low)
    np.testing.assert_allclose(ours.action_space.high, stock.action_space.high)
    ours.close()
    stock.close()
    # rewards: -0.1 a frame, plus 1000 / (tiles of the track) for each new tile, and -100 for
    # leaving the playfield
    spec = get_task(CAR)
    for pool in (EnvpoolPool(spec), GymPool(spec)):
        obs, _ = pool.start([11], members=1)
        assert obs.shape == (1, 1, 4, 96, 96) and obs.dtype == np.float32
        rewards = []
        for _ in range(spec.max_steps):
            obs, reward, done = pool.step(np.array([[[0.0, 1.0, 0.0]]]))
            rewards.append(float(reward[0, 0]))
            if done[0, 0]:
                break
        rewards = np.array(rewards) + 0.1
        if rewards[-1] < -50:  # left the playfield
            assert np.isclose(rewards[-1] - 0.1, -100, atol=1e-3)  # -100 in place of -0.1
            rewards = rewards[:-1]
        tiles = rewards[~np.isclose(rewards, 0.0, atol=1e-4)]
        per_tile = tiles.min()
        assert 1000 / 400 < per_tile < 1000 / 200
        np.testing.assert_allclose(tiles / per_tile, np.round(tiles / per_tile), atol=1e-4)
        pool.close()
    # the time limit: standing still, envpool's episode ends at step 1000, as gym.make's
    pool = EnvpoolPool(spec)
    pool.start([12], members=1)
    steps = 0
    while True:
        _, _, done = pool.step(np.zeros((1, 1, 3)))
        steps += 1
        if done[0, 0]:
            break
    assert steps == spec.max_steps == gym.make(CAR).spec.max_episode_steps == 1000
    pool.close()


def test_the_pursuit_teacher_says_when_the_car_has_strayed_from_the_road():
    pytest.importorskip("Box2D")
    from tasks.teachers import CarRacingPursuit

    env = gym.make("CarRacing-v3")
    env.reset(seed=4)
    teacher = CarRacingPursuit()
    for _ in range(50):  # the teacher on the road
        env.step(teacher.act(env.unwrapped))
        assert not teacher.strayed(env.unwrapped)
    for _ in range(60):  # full right lock: off the road
        teacher.act(env.unwrapped)
        env.step(np.array([1.0, 0.5, 0.0]))
    teacher.act(env.unwrapped)
    assert teacher.strayed(env.unwrapped)
    env.close()


def test_the_pursuit_teacher_slows_down_to_recover_when_it_has_strayed():
    pytest.importorskip("Box2D")
    from tasks.teachers import CarRacingPursuit

    env = gym.make("CarRacing-v3")
    env.reset(seed=4)
    plain = CarRacingPursuit(lateral_accel=100.0, top_speed=60.0)
    careful = CarRacingPursuit(
        lateral_accel=100.0, top_speed=60.0, recovery_heading=1.0, recovery_speed=10.0
    )
    for _ in range(50):  # on the road both act alike
        action = plain.act(env.unwrapped)
        np.testing.assert_array_equal(careful.act(env.unwrapped), action)
        env.step(action)
    for _ in range(60):  # full right lock: off the road, heading away from the track
        env.step(np.array([1.0, 0.5, 0.0]))
    speed = float(np.hypot(*env.unwrapped.car.hull.linearVelocity))
    assert speed > careful.recovery_speed  # the plain teacher would still press on
    hurry, calm = plain.act(env.unwrapped), careful.act(env.unwrapped)
    assert hurry[0] == calm[0]  # the same steering back to the track
    assert calm[1] == 0.0 and calm[2] > 0.0  # no gas, the brake on, until slow
    assert hurry[1] > 0.0 or hurry[2] < calm[2]
    env.close()
