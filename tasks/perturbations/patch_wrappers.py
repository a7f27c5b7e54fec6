"""Gymnasium twins of the image perturbations: shuffled, occluded patches and backgrounds.

- :class:`ShufflePatches` over an env of stacked frames ``[F, H, W]`` (such as
  :class:`~tasks.images.StackedGrayFrames`): the twin of
  :class:`~tasks.perturbations.patches.PatchPerturbation`. It draws from ``self.np_random``
  (the inner env's generator) through the same helpers in the same order, so from the same
  seed it gives bit-identical patches.
- :class:`SwapBackground` over an RGB env: the twin of
  :class:`~tasks.perturbations.patches.BackgroundSwap` (which draws nothing). It goes below
  the frame preparation: ``StackedGrayFrames(SwapBackground(env))``. Given a pool
  (:class:`~tasks.perturbations.patches.BackgroundPool`), it draws one image per episode
  from a generator of its own, seeded by ``reset(seed=...)``, so the env's draws and the
  patch draws stay as they are without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from sensoryneuron.errors import ConfigError
from tasks.images import check_grid, to_patches
from tasks.perturbations.draws import (
    ReshuffleEvery,
    validate_shuffle,
)
from tasks.perturbations.patches import (
    GRASS_COLOURS,
    GRASS_TOLERANCE,
    BackgroundPool,
    BackgroundSwap,
    draw_slots,
    is_background_pool,
    occluded_count,
    redraw_slots,
    select_patches,
    validate_occlude,
)

BACKGROUND_STREAM = 0xB6
"""Mixed with the reset seed into the generator a background pool draws from."""


class ShufflePatches(
    gym.ObservationWrapper[np.ndarray, Any, np.ndarray], gym.utils.RecordConstructorArgs
):
    """Cuts a frame stack ``[F, H, W]`` into ``p x p`` patches, drops the occluded ones and
    shuffles the rest: float32 ``[N', F*p*p]`` (pixel levels / 255).

    Slot ``j`` holds patch ``info["permutation"][j]`` of the grid (``n = row * cols + col``).
    At every reset ``round(occlude * N)`` patches are hidden for the episode and the others
    put in a random order; with ``reshuffle_every`` the visible patches get a new order after
    every ``t`` steps (an int) or after random intervals drawn from ``[low, high]`` (a pair).
    The observation of the step where a reshuffle happens already uses the new order. Infos
    carry ``permutation`` (a copy), ``reshuffled`` (False at reset) and ``occluded`` (the
    hidden patches, sorted).

    Example:
        >>> import gymnasium as gym
        >>> import numpy as np
        >>> from tasks.images import StackedGrayFrames, to_patches
        >>> import pytest; _ = pytest.importorskip("Box2D")  # the box2d extra
        >>> frames = StackedGrayFrames(gym.make("CarRacing-v3"), crop_bottom=12)
        >>> env = ShufflePatches(frames, patch=6, reshuffle_every=2, occlude=0.5)
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, obs.dtype, info["occluded"].shape
        ((128, 144), dtype('float32'), (128,))
        >>> raw = to_patches(env.last_frames, 6)
        >>> bool((obs == raw[info["permutation"]] / np.float32(255)).all())
        True
        >>> [env.step(np.zeros(3, dtype=np.float32))[4]["reshuffled"] for _ in range(4)]
        [False, True, False, True]
        >>> env.close()
    """

    def __init__(
        self,
        env: gym.Env,
        patch: int = 6,
        reshuffle_every: ReshuffleEvery = None,
        occlude: float = 0.0,
        shuffle: bool = True,
    ) -> None:
        """Wraps ``env``.

        Args:
            env: an env whose observations are frame stacks, a Box ``[F, H, W]`` of pixel
                levels (uint8 0..255 from :class:`~tasks.images.StackedGrayFrames`).
            patch: the side of a patch; it must divide ``H`` and ``W``.
            reshuffle_every: ``None`` (order fixed from reset), an int ``t >= 1`` or a
                ``(low, high)`` pair with ``1 <= low <= high``; needs ``shuffle``.
            occlude: the fraction of patches hidden each episode, in ``[0, 1)``.
            shuffle: put the visible patches in a random order (False: grid order).
        """
        gym.utils.RecordConstructorArgs.__init__(
            self, patch=patch, reshuffle_every=reshuffle_every, occlude=occlude, shuffle=shuffle
        )
        gym.ObservationWrapper.__init__(self, env)
        box = env.observation_space
        if not (isinstance(box, gym.spaces.Box) and len(box.shape) == 3):
            raise ConfigError(
                f"ShufflePatches needs a [frames, height, width] Box observation space, got {box}"
            )
        frames, height, width = box.shape
        rows, cols = check_grid(height, width, patch)
        self.shuffle, self.reshuffle_every = validate_shuffle(shuffle, reshuffle_every)
        self.occlude = validate_occlude(occlude)
        self.patch = int(patch)
        self.n_patches = rows * cols
        self.kept = self.n_patches - occluded_count(self.occlude, self.n_patches)
        shape = (self.kept, frames * self.patch * self.patch)
        self.observation_space = gym.spaces.Box(
            low=np.float32(np.min(box.low)) / np.float32(255.0),
            high=np.float32(np.max(box.high)) / np.float32(255.0),
            shape=shape,
            dtype=np.float32,
        )
        self._slots: np.ndarray | None = None
        self._steps = 0
        self._next_reshuffle: int | None = None
        self.last_frames: np.ndarray | None = None  # the frame stack of the last observation

    @property
    def permutation(self) -> np.ndarray | None:
        """A copy of the patch each slot holds (``None`` before the first reset)."""
        return None if self._slots is None else self._slots.copy()

    def _info(self, info: dict[str, Any], reshuffled: bool) -> dict[str, Any]:
        assert self._slots is not None
        info = dict(info)
        info["permutation"] = self._slots.copy()
        info["reshuffled"] = reshuffled
        info["occluded"] = np.setdiff1d(np.arange(self.n_patches), self._slots)
        return info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Resets the inner env, then draws the visible patches and their order."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._slots, self._next_reshuffle = draw_slots(
            self.np_random, self.n_patches, self.kept, self.shuffle, self.reshuffle_every
        )
        self._steps = 0
        return self.observation(obs), self._info(info, False)

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Steps the inner env and reshuffles where due."""
        if self._slots is None:
            raise gym.error.ResetNeeded("Call reset() before step().")
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._steps += 1
        reshuffled = self._next_reshuffle == self._steps
        if reshuffled:
            self._slots, interval = redraw_slots(self.np_random, self._slots, self.reshuffle_every)
            self._next_reshuffle = self._steps + interval
        return self.observation(obs), reward, terminated, truncated, self._info(info, reshuffled)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The visible patches of ``observation`` in slot order."""
        if self._slots is None:
            raise gym.error.ResetNeeded("Call reset() before observation().")
        self.last_frames = np.asarray(observation)
        return select_patches(to_patches(self.last_frames, self.patch), self._slots)


class SwapBackground(
    gym.ObservationWrapper[np.ndarray, Any, np.ndarray], gym.utils.RecordConstructorArgs
):
    """Puts an image behind an RGB env's foreground: :class:`BackgroundSwap` on each frame.

    Pixels within ``tolerance`` of one of ``colours`` (default: CarRacing-v3's grass) show the
    image instead. The observation space does not change. A single image draws nothing; a
    pool (``"none|camera|noise:*"``) draws one per episode at reset, from a generator seeded
    by ``(BACKGROUND_STREAM, seed)`` (continued where ``reset`` gets no seed).

    Example:
        >>> import gymnasium as gym
        >>> import pytest; _ = pytest.importorskip("Box2D")  # the box2d extra
        >>> env = SwapBackground(gym.make("CarRacing-v3"), image="stripes:2")
        >>> obs, _ = env.reset(seed=0)
        >>> obs.shape, int(env.swap.mask(obs).sum())   # no grass colour is left
        ((96, 96, 3), 0)
        >>> env.close()
    """

    def __init__(
        self,
        env: gym.Env,
        image: str | np.ndarray = "checkerboard",
        colours: Sequence[Sequence[int]] = GRASS_COLOURS,
        tolerance: int = GRASS_TOLERANCE,
        fit: str = "resize",
    ) -> None:
        """Wraps ``env``.

        Args:
            env: an env whose observations are uint8 RGB frames ``[..., H, W, 3]``.
            image: a name or path for :func:`~tasks.perturbations.patches.background_image`,
                or a uint8 image array.
            colours: the background's RGB colours.
            tolerance: the largest channel difference still counted as background.
            fit: ``resize`` or ``tile``, for an image of another size than the frame.
        """
        gym.utils.RecordConstructorArgs.__init__(
            self, image=image, colours=colours, tolerance=tolerance, fit=fit
        )
        gym.ObservationWrapper.__init__(self, env)
        box = env.observation_space
        if not (
            isinstance(box, gym.spaces.Box)
            and len(box.shape) >= 3
            and box.shape[-1] == 3
            and box.dtype == np.uint8
        ):
            raise ConfigError(
                f"SwapBackground needs a uint8 [..., H, W, 3] RGB observation space, got {box}"
            )
        options = {"colours": colours, "tolerance": tolerance, "fit": fit}
        self.pool = (
            BackgroundPool(image, **options)
            if isinstance(image, str) and is_background_pool(image)
            else None
        )
        # the episode's swap (None: the env's own background); a pool draws it at reset
        self.swap: BackgroundSwap | None = (
            None if self.pool is not None else BackgroundSwap(image=image, **options)
        )
        self._rng = np.random.default_rng(BACKGROUND_STREAM)
        self.observation_space = box

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Resets the inner env; a pool draws the episode's background first."""
        if self.pool is not None:
            if seed is not None:
                self._rng = np.random.default_rng((BACKGROUND_STREAM, seed))
            self.swap = self.pool.draw(self._rng)
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The frame with its background replaced."""
        return observation if self.swap is None else self.swap(observation)
