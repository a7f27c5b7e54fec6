"""Frame preparation for the image tasks: grayscale, the dashboard, a frame stack, patches.

The vision agent reads a stack of grayscale frames cut into patches (see DESIGN, vision):

1. grayscale with the ITU-R 601 weights ``(0.299, 0.587, 0.114)``;
2. the bottom rows zeroed (CarRacing's dashboard: 12 rows);
3. the last ``F`` frames stacked, oldest first; at reset the stack holds ``F`` copies of the
   first frame;
4. the stack ``[..., F, H, W]`` cut into non-overlapping ``p x p`` patches
   ``[..., N, F*p*p]``: patch ``n = row * cols + col`` (row-major over the grid), and its
   values frame by frame, each frame's ``p x p`` pixels row-major.

Two pixel formats:

- ``uint8`` levels 0..255, rounded to the nearest level (half to even). The wrappers give
  this: a quarter of the memory of float32, and exactly what a pool of envs stores.
- ``float32`` in ``[0, 1]``: the weighted sum divided by 255, not rounded (as OpenCV's
  ``cvtColor`` gives on float frames). It differs from ``uint8 / 255`` by at most ``0.5/255``.

Gymnasium's own wrappers, checked in gymnasium 1.4:

- ``GrayscaleObservation`` weighs RGB by ITU-R 709 ``(0.2125, 0.7154, 0.0721)`` and truncates
  to uint8: not the 601 weights the method documents, so :func:`grayscale` is written here.
- ``FrameStackObservation(env, F)`` (``padding_type="reset"``) stacks exactly as wanted. A
  test checks that :class:`StackedGrayFrames` equals ``FrameStackObservation(GrayFrames(env),
  F)``. It is one wrapper, not those two, so that the stack is one entry of ``env.spec`` that
  ``env.spec.make()`` rebuilds.

Example:
    >>> import numpy as np
    >>> rgb = np.zeros((2, 3, 12, 12, 3), dtype=np.uint8)   # [P, B, H, W, 3]
    >>> rgb[..., 1] = 255                                   # pure green
    >>> stack = GrayFrameStack(frames=4, crop_bottom=2)
    >>> frames = stack.reset(rgb)
    >>> frames.shape, frames.dtype, int(frames[0, 0, 0, 0, 0]), int(frames[0, 0, 0, -1, 0])
    ((2, 3, 4, 12, 12), dtype('uint8'), 150, 0)
    >>> to_patches(frames, 6).shape                         # [P, B, N, F*p*p]
    (2, 3, 4, 144)
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from sensoryneuron.errors import ConfigError
from sensoryneuron.patches import _check_int
from sensoryneuron.patches import check_grid as check_grid  # re-exported: the patch layout
from sensoryneuron.patches import from_patches as from_patches
from sensoryneuron.patches import to_patches as to_patches

GRAY_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R 601 luma weights of R, G and B."""

CAR_RACING_DASHBOARD = 12
"""Rows at the bottom of a 96x96 CarRacing frame that show the dashboard."""


def _check_rgb(rgb: Any) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim < 3 or rgb.shape[-1] != 3:
        raise ConfigError(f"RGB frames must have shape [..., H, W, 3], got {rgb.shape}")
    return rgb


def grayscale(rgb: Any, dtype: type = np.uint8) -> np.ndarray:
    """ITU-R 601 grayscale of RGB frames: ``[..., H, W, 3] -> [..., H, W]``.

    Args:
        rgb: pixel levels 0..255 (uint8, or any real dtype holding such levels).
        dtype: ``np.uint8`` (levels rounded to the nearest, half to even) or ``np.float32``
            (in ``[0, 1]``, not rounded).

    Example:
        >>> import numpy as np
        >>> grass = np.array([[[100, 202, 100], [100, 228, 100]]], dtype=np.uint8)
        >>> grayscale(grass)
        array([[160, 175]], dtype=uint8)
        >>> grayscale(grass, np.float32).round(4)
        array([[0.627 , 0.6868]], dtype=float32)
    """
    rgb = _check_rgb(rgb)
    wr, wg, wb = GRAY_WEIGHTS
    planes = rgb.astype(np.float64, copy=False)
    levels = wr * planes[..., 0] + wg * planes[..., 1] + wb * planes[..., 2]
    if np.dtype(dtype) == np.uint8:
        return np.clip(np.rint(levels), 0, 255).astype(np.uint8)
    if np.dtype(dtype) == np.float32:
        return (levels / 255.0).astype(np.float32)
    raise ConfigError(f"grayscale gives uint8 or float32 frames, not {np.dtype(dtype)}")


def prepare_frames(rgb: Any, crop_bottom: int = 0) -> np.ndarray:
    """Grayscale (uint8) with the bottom ``crop_bottom`` rows zeroed: ``[..., H, W, 3] ->
    [..., H, W]``; the frame keeps its height.

    Example:
        >>> import numpy as np
        >>> prepare_frames(np.full((4, 2, 3), 255, dtype=np.uint8), crop_bottom=1)[:, 0]
        array([255, 255, 255,   0], dtype=uint8)
    """
    rgb = _check_rgb(rgb)
    height = rgb.shape[-3]
    crop_bottom = _check_int("crop_bottom", crop_bottom, 0)
    if crop_bottom >= height:
        raise ConfigError(f"crop_bottom={crop_bottom} would zero all {height} rows of the frame")
    gray = grayscale(rgb)
    if crop_bottom:
        gray[..., height - crop_bottom :, :] = 0
    return gray


class GrayFrameStack:
    """The batched :class:`StackedGrayFrames`: RGB ``[..., H, W, 3]`` in, uint8 ``[..., F, H,
    W]`` out (e.g. ``[P, B, H, W, 3]`` from a batch of envs).

    Attributes:
        frames: stack depth ``F``.
        crop_bottom: rows zeroed at the bottom of every frame.
        stack: the current stack (``None`` before :meth:`reset`).

    Example:
        >>> import numpy as np
        >>> stack = GrayFrameStack(frames=3)
        >>> first = stack.reset(np.zeros((2, 6, 6, 3), dtype=np.uint8))
        >>> after = stack.step(np.full((2, 6, 6, 3), 255, dtype=np.uint8))
        >>> after[:, :, 0, 0].tolist()                      # oldest first
        [[0, 0, 255], [0, 0, 255]]
    """

    def __init__(self, frames: int = 4, crop_bottom: int = 0) -> None:
        self.frames = _check_int("frames", frames, 1)
        self.crop_bottom = _check_int("crop_bottom", crop_bottom, 0)
        self.stack: np.ndarray | None = None

    def reset(self, rgb: Any) -> np.ndarray:
        """Starts the stacks: ``F`` copies of each first frame (a copy is returned)."""
        gray = prepare_frames(rgb, self.crop_bottom)
        self.stack = np.repeat(gray[..., None, :, :], self.frames, axis=-3)
        return self.stack.copy()

    def step(self, rgb: Any) -> np.ndarray:
        """Drops the oldest frame of every stack and appends the new one (a copy is returned)."""
        if self.stack is None:
            raise gym.error.ResetNeeded("Call reset() before step().")
        gray = prepare_frames(rgb, self.crop_bottom)
        if gray.shape != self.stack.shape[:-3] + self.stack.shape[-2:]:
            raise ConfigError(
                f"reset() saw frames {self.stack.shape[:-3] + self.stack.shape[-2:]}, step() "
                f"got {gray.shape}"
            )
        self.stack[..., :-1, :, :] = self.stack[..., 1:, :, :]
        self.stack[..., -1, :, :] = gray
        return self.stack.copy()

    def keep(self, index: Any) -> None:
        """Keeps only the stacks ``index`` of the first axis (a pool dropping members)."""
        if self.stack is None:
            raise gym.error.ResetNeeded("Call reset() before keep().")
        self.stack = self.stack[np.asarray(index, dtype=np.int64)]


def _rgb_box(space: gym.Space, wrapper: str) -> gym.spaces.Box:
    if not (
        isinstance(space, gym.spaces.Box)
        and len(space.shape) == 3
        and space.shape[-1] == 3
        and space.dtype == np.uint8
    ):
        raise ConfigError(f"{wrapper} needs a uint8 [H, W, 3] RGB observation space, got {space}")
    return space


class GrayFrames(
    gym.ObservationWrapper[np.ndarray, Any, np.ndarray], gym.utils.RecordConstructorArgs
):
    """One uint8 ITU-R 601 grayscale frame ``[H, W]`` per step, bottom rows zeroed.

    Example:
        >>> import gymnasium as gym
        >>> import pytest; _ = pytest.importorskip("Box2D")  # the box2d extra
        >>> env = GrayFrames(gym.make("CarRacing-v3"), crop_bottom=12)
        >>> env.observation_space
        Box(0, 255, (96, 96), uint8)
        >>> env.close()
    """

    def __init__(self, env: gym.Env, crop_bottom: int = 0) -> None:
        """Wraps ``env``, whose observations are uint8 ``[H, W, 3]`` RGB frames."""
        gym.utils.RecordConstructorArgs.__init__(self, crop_bottom=crop_bottom)
        gym.ObservationWrapper.__init__(self, env)
        box = _rgb_box(env.observation_space, "GrayFrames")
        self.crop_bottom = _check_int("crop_bottom", crop_bottom, 0)
        prepare_frames(np.zeros(box.shape, dtype=np.uint8), self.crop_bottom)  # checks rows
        self.observation_space = gym.spaces.Box(0, 255, box.shape[:2], dtype=np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """Returns the prepared frame."""
        return prepare_frames(observation, self.crop_bottom)


class StackedGrayFrames(
    gym.Wrapper[np.ndarray, Any, np.ndarray, Any], gym.utils.RecordConstructorArgs
):
    """The last ``frames`` grayscale frames, oldest first: uint8 ``[F, H, W]``.

    Each RGB frame is prepared by :func:`prepare_frames` (ITU-R 601, bottom ``crop_bottom``
    rows zeroed). At reset the stack holds ``frames`` copies of the first frame, as
    ``gymnasium.wrappers.FrameStackObservation`` with ``padding_type="reset"`` does. Draws
    nothing from ``np_random``.

    Example:
        >>> import gymnasium as gym
        >>> import pytest; _ = pytest.importorskip("Box2D")  # the box2d extra
        >>> env = StackedGrayFrames(gym.make("CarRacing-v3"), crop_bottom=12)
        >>> obs, _ = env.reset(seed=0)
        >>> obs.shape, obs.dtype, bool((obs[:, -12:] == 0).all()), bool((obs[0] == obs[3]).all())
        ((4, 96, 96), dtype('uint8'), True, True)
        >>> env.close()
    """

    def __init__(self, env: gym.Env, frames: int = 4, crop_bottom: int = 0) -> None:
        """Wraps ``env``.

        Args:
            env: an env whose observations are uint8 ``[H, W, 3]`` RGB frames.
            frames: stack depth, an int >= 1.
            crop_bottom: rows zeroed at the bottom of every frame (CarRacing: 12).
        """
        gym.utils.RecordConstructorArgs.__init__(self, frames=frames, crop_bottom=crop_bottom)
        gym.Wrapper.__init__(self, env)
        box = _rgb_box(env.observation_space, "StackedGrayFrames")
        self._stack = GrayFrameStack(frames, crop_bottom)
        prepare_frames(np.zeros(box.shape, dtype=np.uint8), self._stack.crop_bottom)
        self.frames = self._stack.frames
        self.crop_bottom = self._stack.crop_bottom
        self.observation_space = gym.spaces.Box(
            0, 255, (self.frames,) + box.shape[:2], dtype=np.uint8
        )

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Resets the inner env and fills the stack with its first frame."""
        obs, info = self.env.reset(seed=seed, options=options)
        return self._stack.reset(obs), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Steps the inner env and pushes its frame onto the stack."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._stack.step(obs), reward, terminated, truncated, info
