"""How an image task's RGB frames become the frame stacks the agent reads, on every engine.

One description, :class:`FramePreparation`, has two implementations that give the same
stacks from the same RGB frames:

- called on an env (it is the task's ``TaskSpec.prepare``), Gymnasium wrappers:
  ``StackedGrayFrames(SwapBackground(env))``, for the ``gym`` engine, videos and users' envs;
- :meth:`FramePreparation.batched`, the same steps on whole ``[P, B, H, W, 3]`` batches, for
  engines whose envs are not Python objects (envpool's C++ envs).

Example:
    >>> import numpy as np
    >>> prep = FramePreparation(frames=4, crop_bottom=12, background="checkerboard")
    >>> stacks = prep.batched()
    >>> rgb = np.zeros((2, 3, 96, 96, 3), dtype=np.uint8)
    >>> rgb[..., :48, :, :] = (100, 202, 100)               # grass on the upper half
    >>> first = stacks.reset(rgb)
    >>> first.shape, first.dtype, bool((first[..., -12:, :] == 0).all())
    ((2, 3, 4, 96, 96), dtype('uint8'), True)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from sensoryneuron.errors import ConfigError
from tasks.images import GrayFrameStack, StackedGrayFrames
from tasks.perturbations.patch_wrappers import SwapBackground
from tasks.perturbations.patches import BackgroundSwap, is_background_pool


@dataclass(frozen=True)
class FramePreparation:
    """RGB frames to stacks of uint8 ITU-R 601 grayscale frames, oldest first.

    Attributes:
        frames: stack depth (at reset, copies of the first frame).
        crop_bottom: rows zeroed at the bottom of every frame (CarRacing's dashboard: 12).
        background: an image behind the background colours, swapped in on the RGB frames
            before grayscale (a name of ``offered_backgrounds()`` or a file), or a pool of
            them drawn per episode (``"none|camera|noise:*"``, gym envs only); None: none.
    """

    frames: int = 4
    crop_bottom: int = 0
    background: str | None = None

    def __post_init__(self) -> None:
        GrayFrameStack(self.frames, self.crop_bottom)  # validates both
        if self.background is not None and not (
            isinstance(self.background, str) and self.background
        ):
            raise ConfigError(
                f"background must be None, an image name or a file path, got {self.background!r}"
            )

    def __call__(self, env: gym.Env) -> gym.Env:
        """The Gymnasium wrappers on ``env`` (an env of uint8 ``[H, W, 3]`` frames)."""
        if self.background is not None:
            env = SwapBackground(env, image=self.background)
        return StackedGrayFrames(env, frames=self.frames, crop_bottom=self.crop_bottom)

    def with_background(self, background: str | None) -> FramePreparation:
        return dataclasses.replace(self, background=background)

    def batched(self) -> BatchedFrames:
        """A fresh batched implementation (it holds the stacks of one batch)."""
        if self.background is not None and is_background_pool(self.background):
            raise ConfigError(
                f"background {self.background!r} draws one image per episode, which only the "
                "gym engine's envs do (SwapBackground); use engine 'gym'"
            )
        swap = None if self.background is None else BackgroundSwap(image=self.background)
        return BatchedFrames(GrayFrameStack(self.frames, self.crop_bottom), swap)


class BatchedFrames:
    """:class:`FramePreparation` on ``[..., H, W, 3]`` batches: ``reset``, ``step``, ``keep``.

    Attributes:
        stack: the grayscale stacks.
        swap: the background swap, or None.
    """

    def __init__(self, stack: GrayFrameStack, swap: BackgroundSwap | None) -> None:
        self.stack = stack
        self.swap = swap

    def _rgb(self, rgb: Any) -> np.ndarray:
        rgb = np.asarray(rgb)
        return rgb if self.swap is None else self.swap(rgb)

    def reset(self, rgb: Any) -> np.ndarray:
        """The first stacks, uint8 ``[..., F, H, W]``."""
        return self.stack.reset(self._rgb(rgb))

    def step(self, rgb: Any) -> np.ndarray:
        """Pushes one frame onto every stack; uint8 ``[..., F, H, W]``."""
        return self.stack.step(self._rgb(rgb))

    def keep(self, index: Any) -> None:
        """Keeps only the stacks ``index`` of the first axis."""
        self.stack.keep(index)
