"""Patch geometry: cutting frame stacks into the non-overlapping patches a vision agent reads.

A stack ``[..., F, H, W]`` becomes ``[..., N, F*p*p]``: patch ``n = row * cols + col``
(row-major over the grid), and its values frame by frame, each frame's ``p x p`` pixels
row-major. The model package owns this layout (a vision model reads it, and
``Policy.act`` cuts frames with it); ``tasks.images`` re-exports it.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np

from sensoryneuron.errors import ConfigError


def _check_int(name: str, value: object, minimum: int) -> int:
    if not isinstance(value, Integral) or isinstance(value, (bool, np.bool_)) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_grid(height: int, width: int, patch: int) -> tuple[int, int]:
    """``(rows, cols)`` of ``patch x patch`` patches; ConfigError unless they tile the frame."""
    patch = _check_int("patch", patch, 1)
    if height % patch or width % patch:
        raise ConfigError(f"a {height}x{width} frame does not split into {patch}x{patch} patches")
    return height // patch, width // patch


def to_patches(frames: Any, patch: int) -> np.ndarray:
    """Cuts frame stacks into non-overlapping patches: ``[..., F, H, W] -> [..., N, F*p*p]``.

    Patch ``n = row * cols + col``; its values are frame ``0``'s ``p x p`` pixels row-major,
    then frame ``1``'s, and so on. The dtype is kept. :func:`from_patches` undoes it.

    Example:
        >>> import numpy as np
        >>> frames = np.arange(2 * 4 * 6).reshape(2, 4, 6)       # F=2, 4x6 pixels
        >>> p = to_patches(frames, 2)
        >>> p.shape, p[1].tolist()                               # patch (row 0, col 1)
        ((6, 8), [2, 3, 8, 9, 26, 27, 32, 33])
        >>> bool((from_patches(p, 2, 4, 6) == frames).all())
        True
    """
    frames = np.asarray(frames)
    if frames.ndim < 3:
        raise ConfigError(f"frames must have shape [..., F, H, W], got {frames.shape}")
    *lead, count, height, width = frames.shape
    rows, cols = check_grid(height, width, patch)
    grid = frames.reshape(*lead, count, rows, patch, cols, patch)
    k = len(lead)
    # [..., F, R, p, C, p] -> [..., R, C, F, p, p]
    grid = grid.transpose(*range(k), k + 1, k + 3, k, k + 2, k + 4)
    return grid.reshape(*lead, rows * cols, count * patch * patch)


def from_patches(patches: Any, patch: int, height: int, width: int) -> np.ndarray:
    """The inverse of :func:`to_patches`: ``[..., N, F*p*p] -> [..., F, H, W]`` (for videos).

    ``N`` must be the whole grid of a ``height x width`` frame, in grid order (undo any
    shuffle first, e.g. ``patches[..., np.argsort(perm), :]``).
    """
    patches = np.asarray(patches)
    rows, cols = check_grid(height, width, patch)
    if patches.ndim < 2 or patches.shape[-2] != rows * cols or patches.shape[-1] % patch**2:
        raise ConfigError(
            f"patches of a {height}x{width} frame must have shape [..., {rows * cols}, "
            f"F*{patch * patch}], got {patches.shape}"
        )
    *lead, _, values = patches.shape
    count = values // (patch * patch)
    grid = patches.reshape(*lead, rows, cols, count, patch, patch)
    k = len(lead)
    # [..., R, C, F, p, p] -> [..., F, R, p, C, p]
    grid = grid.transpose(*range(k), k + 2, k, k + 3, k + 1, k + 4)
    return grid.reshape(*lead, count, height, width)
