"""The privileged Pong teacher: its search leaves the real episode alone, it wins points, and
its options are checked."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest

from sensoryneuron.errors import ConfigError
from tasks.spec import get_task
from tasks.teachers import (
    PONG_BALL_DX,
    PONG_BALL_Y,
    PONG_PADDLE_Y,
    PongAimer,
    PongPlanner,
    make_teacher,
)

pytest.importorskip("ale_py")

PONG = "ALE/Pong-v5"


def pong(seed: int = 0) -> tuple[gym.Env, np.ndarray]:
    """Pong as the task prepares it (sticky actions on), reset with ``seed``."""
    spec = get_task(PONG)
    env = spec.prepare(gym.make(PONG, **spec.env_kwargs))
    obs, _ = env.reset(seed=seed)
    return env, obs


def frames(
    seed: int, actions: list[int], search_at: int | None, search: str = "planner"
) -> list[np.ndarray]:
    """The observations of an episode that plays ``actions``; before step ``search_at`` a
    teacher searches on the env (``search``: the planner its plans, the aimer its contacts),
    and its result is not played."""
    env, obs = pong(seed)
    out = [obs]
    for t, action in enumerate(actions):
        if t == search_at:
            ram = env.unwrapped.ale.getRAM()
            assert ram[PONG_BALL_Y] != 0 and ram[PONG_BALL_DX] == 255  # a ball is coming
            if search == "planner":
                PongPlanner(max_moves=3).plan(env.unwrapped)
            else:
                aimer = PongAimer()
                paddle = int(ram[PONG_PADDLE_Y])
                meeting = aimer.meeting_point(env.unwrapped)
                aimer.choose_contact(env.unwrapped, paddle, meeting)
                assert aimer.searches == 2
        out.append(env.step(action)[0])
    env.close()
    return out


@pytest.mark.parametrize("search", ["planner", "aimer"])
def test_a_search_leaves_the_episode_as_it_was(search):
    actions = [int(a) for a in np.random.default_rng(1).integers(0, 6, size=120)]
    # at step 50 of seed 0 the ball is coming: the search plays whole points out
    plain = frames(0, actions, None)
    searched = frames(0, actions, 50, search)
    for want, got in zip(plain, searched, strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_search_that_kept_the_old_random_stream_would_change_the_episode(monkeypatch):
    """The check above can fail: restoring without the RNG (sticky actions' draws) does."""
    import ale_py

    clone = ale_py.ALEInterface.cloneState
    monkeypatch.setattr(ale_py.ALEInterface, "cloneState", lambda ale, **_: clone(ale))
    actions = [int(a) for a in np.random.default_rng(1).integers(0, 6, size=120)]
    plain = frames(0, actions, None)
    searched = frames(0, actions, 50)
    assert any((want != got).any() for want, got in zip(plain, searched, strict=True))


@pytest.mark.parametrize("name", ["pong-planner", "pong-aimer"])
def test_the_teacher_wins_the_first_points(name):
    env, _ = pong(0)
    teacher = make_teacher(name, PONG)
    ours = theirs = 0
    for _ in range(1500):
        action = teacher.act(env.unwrapped)
        assert isinstance(action, np.integer) and 0 <= action < 6
        _, reward, terminated, truncated, _ = env.step(action)
        ours, theirs = ours + (reward > 0), theirs + (reward < 0)
        if ours == 3 or theirs or terminated or truncated:
            break
    env.close()
    assert (ours, theirs) == (3, 0)
    assert teacher.searches < 40  # plans are played from the cache, not searched each step


def test_make_teacher_builds_and_checks_the_pong_planner():
    teacher = make_teacher("pong-planner", PONG, {"max_moves": 6, "takeover_margin": 2})
    assert isinstance(teacher, PongPlanner)
    assert (teacher.max_moves, teacher.takeover_margin) == (6, 2)
    with pytest.raises(
        ConfigError, match=re.escape("teacher 'pong-planner' has no option 'top_speed'")
    ):
        make_teacher("pong-planner", PONG, {"top_speed": 3})
    with pytest.raises(ConfigError, match=re.escape("max_moves must be an integer >= 0; got -1")):
        make_teacher("pong-planner", PONG, {"max_moves": -1})
    with pytest.raises(ConfigError, match=re.escape("horizon must be an integer >= 1; got 2.5")):
        make_teacher("pong-planner", PONG, {"horizon": 2.5})
    with pytest.raises(ConfigError, match=re.escape("teacher 'pong-planner' drives ALE/Pong-v5")):
        make_teacher("pong-planner", "CarRacing-v3")


def test_the_interceptors_prediction_leaves_the_episode_as_it_was_and_comes_true():
    from tasks.teachers import PONG_BALL_X, PONG_MEET_X, PongInterceptor

    env, _ = pong(0)
    for _ in range(50):  # at step 50 of seed 0 the ball is coming
        env.step(0)
    ale = env.unwrapped.ale
    ram = ale.getRAM()
    assert ram[PONG_BALL_Y] != 0 and ram[PONG_BALL_DX] == 255
    teacher = PongInterceptor()
    predicted = teacher.meeting_point(env.unwrapped)
    np.testing.assert_array_equal(ale.getRAM(), ram)  # restored, random generator included
    for _ in range(120):  # nobody moves: the ball reaches our paddle's line where it said
        env.step(0)
        ram = ale.getRAM()
        if ram[PONG_BALL_X] >= PONG_MEET_X:
            break
    assert ram[PONG_BALL_DX] == 255 and int(ram[PONG_BALL_Y]) == predicted
    env.close()


def test_the_interceptor_moves_towards_its_aim_and_its_options_are_checked():
    from tasks.teachers import PONG_DOWN, PONG_NOOP, PONG_PADDLE_Y, PONG_UP, PongInterceptor

    env, _ = pong(0)
    teacher = PongInterceptor()
    wrapped = env.unwrapped
    # no ball on screen: the aim is the middle of the court (height 120)
    for paddle, want in ((200, PONG_UP), (40, PONG_DOWN), (122, PONG_NOOP)):
        for index, value in ((PONG_PADDLE_Y, paddle), (PONG_BALL_Y, 0)):
            wrapped.ale.setRAM(index, value)
        teacher.forget()  # no move before: no lead
        assert teacher.act(wrapped) == want
    # led by its last move (40 down the screen), a paddle at 110 is already past the aim
    wrapped.ale.setRAM(PONG_PADDLE_Y, 70)
    teacher.forget()
    assert teacher.act(wrapped) == PONG_DOWN
    wrapped.ale.setRAM(PONG_PADDLE_Y, 110)
    assert teacher.act(wrapped) == PONG_UP
    env.close()
    for options, message in (
        ({"deadband": -1}, "deadband must be an integer >= 0; got -1"),
        ({"contact": 1.5}, "contact must be an integer; got 1.5"),
        ({"lead": 11}, "lead must be a number in [0, 10]; got 11"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            make_teacher("pong-interceptor", PONG, options)


def test_the_aimers_contacts_are_checked_and_an_empty_list_is_the_interceptor():
    from tasks.teachers import PONG_CONTACTS, PongInterceptor

    assert make_teacher("pong-aimer", PONG).contacts == PONG_CONTACTS
    assert make_teacher("pong-aimer", PONG, {"contacts": [0, 7]}).contacts == (0, 7)
    with pytest.raises(
        ConfigError, match=re.escape("contacts must be a list of integers; got (0, 1.5)")
    ):
        make_teacher("pong-aimer", PONG, {"contacts": (0, 1.5)})
    # with no contacts to choose from, it plays as the interceptor, step for step
    actions = []
    for teacher in (PongInterceptor(), PongAimer(contacts=())):
        env, _ = pong(3)
        played = []
        for _ in range(300):
            played.append(int(teacher.act(env.unwrapped)))
            env.step(played[-1])
        actions.append(played)
        env.close()
    assert actions[0] == actions[1] and len(set(actions[0])) == 3


def test_the_aimer_takes_over_a_waiting_student_only_near_the_meeting():
    def play(margin: int) -> tuple[int, int, int]:
        """A student that always waits, the aimer taking over where it strayed: the points
        won and lost in 1,500 steps of seed 0, and the steps taken over."""
        env, _ = pong(0)
        teacher = PongAimer(takeover_margin=margin)
        ours = theirs = took = 0
        for _ in range(1500):
            label = teacher.act(env.unwrapped)
            over = teacher.strayed(env.unwrapped)
            took += over
            _, reward, terminated, truncated, _ = env.step(label if over else 0)
            ours, theirs = ours + (reward > 0), theirs + (reward < 0)
            if terminated or truncated:
                break
        env.close()
        return ours, theirs, took

    assert play(0) == (0, 21, 0)  # never: the waiting student loses every point
    ours, theirs, took = play(8)
    assert theirs <= 4 and ours >= 2 and 0 < took < 150  # rallies, on a tenth of the steps
