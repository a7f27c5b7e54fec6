"""Pong's frames as the agent reads them: the score blanked, everything else as Gymnasium's
AtariPreprocessing draws it, and a background swap that reaches the agent."""

from __future__ import annotations

import doctest
import re

import gymnasium as gym
import numpy as np
import pytest

import tasks.atari_frames
from sensoryneuron.errors import ConfigError
from tasks.atari_frames import PONG_COURT_GRAY, PONG_SCORE_ROWS, AtariFramePreparation
from tasks.perturbations import Perturbations
from tasks.spec import get_task

pytest.importorskip("ale_py")
pytest.importorskip("cv2")

PONG = "ALE/Pong-v5"
ACTIONS = [int(a) for a in np.random.default_rng(2).integers(0, 6, size=300)]


def stacks(prepare, seed: int = 0) -> np.ndarray:
    """The stacks of an episode of ``ACTIONS`` under ``prepare`` (sticky actions on)."""
    env = prepare(gym.make(PONG, frameskip=1))
    out = [env.reset(seed=seed)[0]]
    out += [env.step(a)[0] for a in ACTIONS]
    env.close()
    return np.stack(out)


def stock(env: gym.Env) -> gym.Env:
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    return FrameStackObservation(AtariPreprocessing(env, frame_skip=4, screen_size=84), 4)


def test_the_score_is_blanked_and_the_rest_is_the_stock_preprocessing():
    ours, theirs = stacks(get_task(PONG).prepare), stacks(stock)
    assert ours.shape == theirs.shape == (301, 4, 84, 84)
    assert (ours[..., :PONG_SCORE_ROWS, :] == 0).all()
    np.testing.assert_array_equal(ours[..., PONG_SCORE_ROWS:, :], theirs[..., PONG_SCORE_ROWS:, :])
    # the digits are in the rows blanked: the stock frames' top rows show them
    assert ((theirs[..., 1:8, :] > 120).sum(axis=(-2, -1)) > 20).all()
    # the top wall starts right below them
    assert (theirs[:, :, PONG_SCORE_ROWS] > 120).all()


def test_a_background_replaces_the_court_and_nothing_else():
    plain = stacks(get_task(PONG).prepare)
    swapped = stacks(get_task(PONG).prepare.with_background("checkerboard"))
    court = plain == PONG_COURT_GRAY
    assert court.mean() > 0.5
    np.testing.assert_array_equal(swapped[~court], plain[~court])
    assert (swapped[court] != PONG_COURT_GRAY).mean() > 0.9  # the checkerboard's two grays
    assert len(np.unique(swapped[court])) == 2


def test_the_background_condition_reaches_the_frames_the_agent_sees():
    spec = get_task(PONG)
    agent_views = []
    for background in (None, "noise:1"):
        env = Perturbations(shuffle=False, background=background).make_env(spec)
        obs, _ = env.reset(seed=0)
        agent_views.append(np.asarray(obs))
        env.close()
    plain, swapped = agent_views
    assert plain.shape == swapped.shape == (196, 144)
    assert (plain != swapped).mean() > 0.5
    # a pool draws one image per episode, from the episode's seed
    views = []
    for seed in (0, 0, 1):
        env = Perturbations(shuffle=False, background="noise:*").make_env(spec)
        views.append(np.asarray(env.reset(seed=seed)[0]))
        env.close()
    np.testing.assert_array_equal(views[0], views[1])
    assert (views[0] != views[2]).any()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"zero_top": 84}, "zero_top=84 would zero all 84 rows of the frame"),
        ({"frames": 0}, "frames must be an integer >= 1; got 0"),
        ({"court_gray": 256}, "court_gray must be a gray level in 0..255; got 256"),
        ({"background": ""}, "background must be None, an image name or a file path, got ''"),
    ],
)
def test_bad_settings_are_refused(options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        AtariFramePreparation(**options)


def test_docstring_examples_run():
    result = doctest.testmod(tasks.atari_frames, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_the_prepared_env_rebuilds_from_its_spec():
    env = get_task(PONG).prepare.with_background("checkerboard")(gym.make(PONG, frameskip=1))
    twin = env.spec.make()
    first, _ = env.reset(seed=3)
    again, _ = twin.reset(seed=3)
    np.testing.assert_array_equal(first, again)
    env.close()
    twin.close()
