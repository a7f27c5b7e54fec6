"""Atari frames as the agent reads them (Pong): Gymnasium's ``AtariPreprocessing``, then the
score blanked and, where asked, the court swapped for an image, then the stack.

``AtariPreprocessing`` reads the ALE's own grayscale screen (not the env's RGB
observation), so a background swap beneath it never reaches the agent. Here the swap works
on its 84x84 gray frames instead: every pixel at exactly the court's gray level (Pong: 87)
shows the image's ITU-R 601 gray; the resized edges of the paddles and the ball, blends of
their colour and the court's, keep their levels. The paper zeroed Pong's score area;
:data:`PONG_SCORE_ROWS` rows at the top hold it (both players' digits, above the top wall).

Example:
    >>> import pytest; _ = pytest.importorskip("ale_py")  # the atari extra
    >>> import gymnasium as gym
    >>> from tasks.spec import get_task
    >>> spec = get_task("ALE/Pong-v5")
    >>> env = spec.prepare.with_background("checkerboard")(gym.make("ALE/Pong-v5", frameskip=1))
    >>> stack, _ = env.reset(seed=0)
    >>> stack.shape, int(stack[-1, :PONG_SCORE_ROWS].max()), int((stack[-1] == 87).sum())
    ((4, 84, 84), 0, 0)
    >>> env.close()
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from sensoryneuron.errors import ConfigError, check_integers
from tasks.images import grayscale
from tasks.perturbations.patch_wrappers import SwapBackground

PONG_SCORE_ROWS = 9
"""Rows at the top of an 84x84 Pong frame (above the top wall) that show the score."""
PONG_COURT_GRAY = 87
"""The gray level of Pong's court in ``AtariPreprocessing``'s 84x84 frames."""


@dataclass(frozen=True)
class AtariFramePreparation:
    """ALE frames to stacks of uint8 gray frames, oldest first (a task's ``prepare``).

    Attributes:
        frames: stack depth (``FrameStackObservation``: at reset, copies of the first frame).
        frame_skip: emulator frames per agent step (``AtariPreprocessing``).
        screen_size: the side of the square frames.
        zero_top: rows zeroed at the top of every frame (Pong's score: 9).
        court_gray: the background's gray level, which a ``background`` replaces.
        background: an image shown where the court is (a name of ``offered_backgrounds()``
            or a file), or a pool of them drawn per episode (``"none|camera|noise:*"``);
            None: the court as the game draws it.
    """

    frames: int = 4
    frame_skip: int = 4
    screen_size: int = 84
    zero_top: int = 0
    court_gray: int = PONG_COURT_GRAY
    background: str | None = None

    def __post_init__(self) -> None:
        check_integers(self, frames=1, frame_skip=1, screen_size=1, zero_top=0)
        if self.zero_top >= self.screen_size:
            raise ConfigError(
                f"zero_top={self.zero_top} would zero all {self.screen_size} rows of the frame"
            )
        gray = self.court_gray
        if isinstance(gray, bool) or not isinstance(gray, int) or not 0 <= gray <= 255:
            raise ConfigError(f"court_gray must be a gray level in 0..255; got {gray!r}")
        if self.background is not None and not (
            isinstance(self.background, str) and self.background
        ):
            raise ConfigError(
                f"background must be None, an image name or a file path, got {self.background!r}"
            )

    def __call__(self, env: gym.Env) -> gym.Env:
        """The Gymnasium wrappers on ``env`` (an ALE env made with ``frameskip=1``)."""
        from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

        env = AtariPreprocessing(env, frame_skip=self.frame_skip, screen_size=self.screen_size)
        if self.background is not None:
            env = GrayAsRGB(env)
            gray = (self.court_gray,) * 3
            env = SwapBackground(env, image=self.background, colours=[gray], tolerance=0)
            env = RGBAsGray(env)
        if self.zero_top:
            env = ZeroTopRows(env, self.zero_top)
        return FrameStackObservation(env, self.frames)

    def with_background(self, background: str | None) -> AtariFramePreparation:
        return dataclasses.replace(self, background=background)


def _frame_space(env: gym.Env, shape: tuple[int, ...]) -> gym.spaces.Box:
    box = env.observation_space
    if not (isinstance(box, gym.spaces.Box) and box.dtype == np.uint8):
        raise ConfigError(f"needs uint8 frames, got the observation space {box}")
    return gym.spaces.Box(0, 255, shape, np.uint8)


class GrayAsRGB(
    gym.ObservationWrapper[np.ndarray, Any, np.ndarray], gym.utils.RecordConstructorArgs
):
    """Gray frames ``[H, W]`` as RGB ``[H, W, 3]`` (three equal channels)."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        self.observation_space = _frame_space(env, (*env.observation_space.shape, 3))

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.repeat(observation[..., None], 3, axis=-1)


class RGBAsGray(
    gym.ObservationWrapper[np.ndarray, Any, np.ndarray], gym.utils.RecordConstructorArgs
):
    """RGB frames ``[H, W, 3]`` as ITU-R 601 gray ``[H, W]`` (a gray pixel keeps its level)."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        self.observation_space = _frame_space(env, env.observation_space.shape[:-1])

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return grayscale(observation)


class ZeroTopRows(
    gym.ObservationWrapper[np.ndarray, Any, np.ndarray], gym.utils.RecordConstructorArgs
):
    """Gray frames ``[H, W]`` with their top ``rows`` rows zeroed."""

    def __init__(self, env: gym.Env, rows: int) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, rows=rows)
        gym.ObservationWrapper.__init__(self, env)
        self.observation_space = _frame_space(env, env.observation_space.shape)
        self.rows = rows

    def observation(self, observation: np.ndarray) -> np.ndarray:
        out = np.array(observation, copy=True)
        out[: self.rows] = 0
        return out
