"""Cart-pole swing-up: pure vectorised physics and the single Gymnasium environment.

The physics functions are pure NumPy functions of float64 arrays with any leading batch shape
(``...``). The single environment (:class:`CartPoleSwingUpEnv`) and the vectorised simulator
(:class:`tasks.cartpole_batched.VecCartPoleSwingUp`) both call them, so the two agree to round-off.

State layout: ``[x, x_dot, theta, theta_dot]``; ``theta = 0`` is the pole upright and
``theta = pi`` hanging down. A positive ``theta`` tilts the tip to the left (negative x).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from PIL import Image, ImageDraw

from sensoryneuron.errors import ConfigError

GRAVITY = 9.82
MASS_CART = 0.5
MASS_POLE = 0.5
POLE_LENGTH = 0.6
DT = 0.01
FRICTION = 0.1
FORCE_MAG = 10.0
X_THRESHOLD = 2.4
MAX_STEPS = 1000

OBS_DIM = 5
ACT_DIM = 1

_TOTAL_MASS = MASS_CART + MASS_POLE
_NORMAL_MEAN = np.array([0.0, 0.0, np.pi, 0.0])
_NORMAL_STD = 0.2
_HARDER_LOW = np.array([-2.4, -10.0, np.pi / 2, -10.0])
_HARDER_HIGH = np.array([2.4, 10.0, 3 * np.pi / 2, 10.0])
# Near balanced: the pole within 0.3 rad of upright, turning slowly, the cart anywhere but the ends
_TOP_LOW = np.array([-1.5, -1.0, -0.3, -1.0])
_TOP_HIGH = np.array([1.5, 1.0, 0.3, 1.0])


def check_top_fraction(top_fraction: float) -> float:
    """``top_fraction`` as a float in [0, 1]; ConfigError otherwise."""
    if (
        isinstance(top_fraction, bool)
        or not isinstance(top_fraction, (int, float))
        or not 0.0 <= top_fraction <= 1.0
    ):
        raise ConfigError(f"top_fraction must be a number in [0, 1], got {top_fraction!r}")
    return float(top_fraction)


def sample_initial_state(
    rng: np.random.Generator, harder: bool, top_fraction: float = 0.0
) -> np.ndarray:
    """Draws one initial state ``[x, x_dot, theta, theta_dot]`` (float64, shape (4,)).

    Args:
        rng: The generator to draw from (one call to it; two with ``top_fraction``).
        harder: ``False``: N((0, 0, pi, 0), 0.2^2) near hanging down. ``True``: uniform with
            x in +-2.4, x_dot in +-10, theta in pi +- pi/2, theta_dot in +-10.
        top_fraction: the chance that the episode starts near balanced instead (uniform with
            x in +-1.5, x_dot in +-1, theta in +-0.3, theta_dot in +-1): a training variant
            that shows the policy the balance it must hold after a swing-up (0: never, and
            no extra draw).
    """
    if top_fraction > 0.0 and rng.uniform() < top_fraction:
        return rng.uniform(low=_TOP_LOW, high=_TOP_HIGH)
    if harder:
        return rng.uniform(low=_HARDER_LOW, high=_HARDER_HIGH)
    return rng.normal(loc=_NORMAL_MEAN, scale=_NORMAL_STD)


def step_physics(state: np.ndarray, action: np.ndarray | float) -> np.ndarray:
    """Advances the state by one explicit-Euler step of ``DT`` seconds.

    Args:
        state: float64 ``[..., 4]`` states ``[x, x_dot, theta, theta_dot]``.
        action: ``[...]`` actions; clipped to [-1, 1] and scaled by ``FORCE_MAG``.

    Returns:
        The new float64 ``[..., 4]`` states. Accelerations use the old state; positions are
        updated with the old velocities.
    """
    state = np.asarray(state, dtype=np.float64)
    force = FORCE_MAG * np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    x, x_dot, theta, theta_dot = (state[..., i] for i in range(4))
    s = np.sin(theta)
    c = np.cos(theta)
    # Squares as products: NumPy's scalar ``**`` (libm pow) can differ from the array path by an
    # ulp, and the single env must match the vector simulator bit for bit.
    c2 = c * c
    w2 = theta_dot * theta_dot
    m, l, b = MASS_POLE, POLE_LENGTH, FRICTION
    xacc = (-2.0 * m * l * w2 * s + 3.0 * m * GRAVITY * s * c + 4.0 * force - 4.0 * b * x_dot) / (
        4.0 * _TOTAL_MASS - 3.0 * m * c2
    )
    thacc = (
        -3.0 * m * l * w2 * s * c + 6.0 * _TOTAL_MASS * GRAVITY * s + 6.0 * (force - b * x_dot) * c
    ) / (4.0 * l * _TOTAL_MASS - 3.0 * m * l * c2)
    return np.stack(
        [x + x_dot * DT, x_dot + xacc * DT, theta + theta_dot * DT, theta_dot + thacc * DT],
        axis=-1,
    )


def observe(state: np.ndarray) -> np.ndarray:
    """Maps ``[..., 4]`` states to float32 ``[..., 5]`` observations.

    The observation is ``[x, x_dot, cos(theta), sin(theta), theta_dot]``.
    """
    state = np.asarray(state, dtype=np.float64)
    theta = state[..., 2]
    obs = np.stack(
        [state[..., 0], state[..., 1], np.cos(theta), np.sin(theta), state[..., 3]], axis=-1
    )
    return obs.astype(np.float32)


def reward(state: np.ndarray) -> np.ndarray:
    """Per-step reward ``(cos(theta) + 1) / 2 * cos(x / 2.4 * pi / 2)`` of ``[..., 4]`` states."""
    state = np.asarray(state, dtype=np.float64)
    upright = (np.cos(state[..., 2]) + 1.0) / 2.0
    centred = np.cos(state[..., 0] / X_THRESHOLD * (np.pi / 2))
    return upright * centred


def out_of_bounds(state: np.ndarray) -> np.ndarray:
    """Bool ``[...]``: True where the cart has left the track (``|x| > 2.4``)."""
    return np.abs(np.asarray(state, dtype=np.float64)[..., 0]) > X_THRESHOLD


# ---------------------------------------------------------------------------------------------
# Rendering (Pillow): one frame of one state. Shared by the gym env and the vector simulator.

FRAME_WIDTH = 640
FRAME_HEIGHT = 384
_SCALE = FRAME_WIDTH / 6.0  # pixels per metre: the track (+-2.4 m) spans 512 px
_CENTRE_X = FRAME_WIDTH / 2
_TRACK_Y = 250
_CART_W = 0.5 * _SCALE
_CART_H = 30
_WHEEL_R = 8
_CART_BOTTOM = _TRACK_Y - _WHEEL_R
_CART_TOP = _CART_BOTTOM - _CART_H
_PIVOT_Y = _CART_TOP + 8
_POLE_PX = 2 * POLE_LENGTH * _SCALE
_POLE_WIDTH = 10
_PIVOT_R = 6

_BACKGROUND = (246, 245, 240)
_TRACK = (110, 110, 110)
_STOP = (200, 70, 60)
_CENTRE_MARK = (205, 205, 200)
_CART = (60, 110, 190)
_CART_EDGE = (30, 60, 110)
_WHEEL = (45, 45, 45)
_POLE = (215, 150, 70)
_PIVOT = (35, 35, 35)


@functools.cache
def _background() -> Image.Image:
    """The static part of a frame (track, end stops, centre mark), drawn once and cached."""
    img = Image.new("RGB", (FRAME_WIDTH, FRAME_HEIGHT), _BACKGROUND)
    draw = ImageDraw.Draw(img)
    draw.line([(_CENTRE_X, 40), (_CENTRE_X, _TRACK_Y)], fill=_CENTRE_MARK, width=2)
    draw.line([(0, _TRACK_Y), (FRAME_WIDTH, _TRACK_Y)], fill=_TRACK, width=3)
    for side in (-1.0, 1.0):
        px = _CENTRE_X + side * X_THRESHOLD * _SCALE
        draw.rectangle([px - 3, _TRACK_Y - 28, px + 3, _TRACK_Y + 10], fill=_STOP)
    return img


class CartPoleRenderer:
    """Draws cart-pole states with Pillow into one reused canvas (~0.2 ms per frame).

    The track spans x in +-2.4 m with red end stops and a faint centre mark; the pole is drawn
    ``2 * POLE_LENGTH`` long from a pivot on the cart. One renderer per thread: the canvas is
    reused between calls, each returned frame is a fresh array.
    """

    def __init__(self) -> None:
        """Creates the canvas."""
        self._canvas = _background().copy()
        self._draw = ImageDraw.Draw(self._canvas)

    def __call__(self, state: np.ndarray) -> np.ndarray:
        """Draws one state ``[x, x_dot, theta, theta_dot]`` as a ``(384, 640, 3)`` uint8 frame."""
        state = np.asarray(state, dtype=np.float64)
        x, theta = float(state[0]), float(state[2])
        self._canvas.paste(_background())
        draw = self._draw
        cx = _CENTRE_X + x * _SCALE
        draw.rectangle(
            [cx - _CART_W / 2, _CART_TOP, cx + _CART_W / 2, _CART_BOTTOM],
            fill=_CART,
            outline=_CART_EDGE,
            width=2,
        )
        for wx in (cx - _CART_W / 3, cx + _CART_W / 3):
            draw.ellipse(
                [wx - _WHEEL_R, _TRACK_Y - 2 * _WHEEL_R, wx + _WHEEL_R, _TRACK_Y], fill=_WHEEL
            )
        # theta = 0 is upright; a positive theta tilts the tip towards -x (image y points down).
        tip_x = cx - _POLE_PX * math.sin(theta)
        tip_y = _PIVOT_Y - _POLE_PX * math.cos(theta)
        draw.line([(cx, _PIVOT_Y), (tip_x, tip_y)], fill=_POLE, width=_POLE_WIDTH)
        tip_r = _POLE_WIDTH / 2
        draw.ellipse([tip_x - tip_r, tip_y - tip_r, tip_x + tip_r, tip_y + tip_r], fill=_POLE)
        draw.ellipse(
            [cx - _PIVOT_R, _PIVOT_Y - _PIVOT_R, cx + _PIVOT_R, _PIVOT_Y + _PIVOT_R], fill=_PIVOT
        )
        return np.asarray(self._canvas).copy()


_default_renderer: CartPoleRenderer | None = None


def render_frame(state: np.ndarray) -> np.ndarray:
    """Draws one state as a ``(384, 640, 3)`` uint8 RGB frame with a shared renderer.

    Not thread-safe; give each thread its own :class:`CartPoleRenderer`.
    """
    global _default_renderer
    if _default_renderer is None:
        _default_renderer = CartPoleRenderer()
    return _default_renderer(state)


class CartPoleSwingUpEnv(gym.Env[np.ndarray, np.ndarray]):
    """Cart-pole swing-up (Tang & Ha 2021): swing the pole up from hanging and balance it.

    Observation: float32 ``[x, x_dot, cos(theta), sin(theta), theta_dot]``. Action: one float in
    [-1, 1] (force = 10 * action). Reward per step: ``(cos(theta) + 1) / 2 * cos(x / 2.4 *
    pi / 2)``. Terminates when ``|x| > 2.4``; the 1000-step limit comes from ``TimeLimit``
    (registered ``max_episode_steps``).

    Attributes:
        state: float64 ``[x, x_dot, theta, theta_dot]`` (``None`` before the first reset).
        harder: Whether the start state is drawn from the wide uniform distribution.
        top_fraction: The chance that an episode starts near balanced instead.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self, harder: bool = False, render_mode: str | None = None, top_fraction: float = 0.0
    ) -> None:
        """Creates the env.

        Args:
            harder: Start uniform over a wide box (CartPoleSwingUpHarder) instead of near
                hanging down.
            render_mode: ``None`` or ``"rgb_array"``.
            top_fraction: the chance that an episode starts near balanced instead
                (see :func:`sample_initial_state`).
        """
        if not isinstance(harder, (bool, np.bool_)):
            raise ConfigError(f"harder must be a bool, got {harder!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, "
                f"got {render_mode!r}"
            )
        self.harder = bool(harder)
        self.top_fraction = check_top_fraction(top_fraction)
        self.render_mode = render_mode
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(OBS_DIM,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(ACT_DIM,), dtype=np.float32)
        self.state: np.ndarray | None = None
        self._renderer: CartPoleRenderer | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draws a new start state from ``self.np_random``."""
        super().reset(seed=seed)
        self.state = sample_initial_state(self.np_random, self.harder, self.top_fraction)
        return observe(self.state), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Applies ``action[0]`` for one time step of 0.01 s."""
        if self.state is None:
            raise gym.error.ResetNeeded("Call reset() before step().")
        force = np.asarray(action, dtype=np.float64).reshape(-1)[0]
        self.state = step_physics(self.state, force)
        return (
            observe(self.state),
            float(reward(self.state)),
            bool(out_of_bounds(self.state)),
            False,
            {},
        )

    def render(self) -> np.ndarray | None:
        """Returns an RGB frame for ``render_mode="rgb_array"`` (``None`` otherwise)."""
        if self.render_mode is None:
            gym.logger.warn(
                "render() was called without a render_mode; "
                'pass render_mode="rgb_array" to gym.make to get frames.'
            )
            return None
        if self.state is None:
            raise gym.error.ResetNeeded("Call reset() before render().")
        if self._renderer is None:
            self._renderer = CartPoleRenderer()
        return self._renderer(self.state)
