"""Perturbations of image observations: shuffled and occluded patches, swapped backgrounds.

- :class:`PatchPerturbation`: the batched transform from stacked frames ``[P, B, F, H, W]`` to
  the patches the agent reads, ``[P, B, N', F*p*p]`` float32. It has the API of
  :class:`~tasks.perturbations.BatchPerturbation` that the rollout engine uses.
- :class:`BackgroundSwap`: replaces background colours of RGB frames ``[..., H, W, 3]`` by an
  image. It acts on the RGB frames inside each env, before grayscale and stacking.
- :func:`background_image`: the images on offer, by name, or a file.

Patch slots. A perturbed observation has ``N' = N - round(occlude * N)`` slots; slot ``j``
holds patch ``permutations[b, j]`` of the grid (``n = row * cols + col``). Occluded patches
are removed, not blanked, so the number of inputs changes.

Draws, per episode, from that episode's Generator (the ones the wrapper twin
:class:`~tasks.perturbations.patch_wrappers.ShufflePatches` draws from ``env.np_random`` in
the same order):

- at reset, with shuffling: ``perm, interval = draw_shuffle(rng, N, reshuffle_every)``, and
  the slots are ``perm[:N']``: a random subset in a random order. Without shuffling but with
  occlusion: ``draw_permutation(rng, N)``, and the slots are ``sort(perm[:N'])`` (grid order).
  With neither: no draw.
- at each reshuffle: ``q, interval = draw_shuffle(rng, N', reshuffle_every)`` and the slots
  become ``sort(slots)[q]``.

So without occlusion the permutations are the very ones the vector
:class:`~tasks.perturbations.BatchPerturbation` draws for ``N`` inputs.

The occluded patches are drawn at reset and stay occluded for the whole episode; reshuffles
move the visible patches among the slots. This keeps a reshuffle a permutation of the slots,
so :meth:`PatchPerturbation.realignment` is exact (per-slot state can follow its patch), and
makes the visible part of the screen a property of the episode, like its seed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from sensoryneuron.errors import ConfigError
from tasks.images import check_grid, to_patches
from tasks.perturbations.draws import (
    ReshuffleEvery,
    ReshuffleSchedule,
    draw_permutation,
    draw_shuffle,
    validate_int,
    validate_shuffle,
)

if TYPE_CHECKING:
    from tasks.spec import PatchObservation

GRASS_COLOURS: tuple[tuple[int, int, int], ...] = ((100, 202, 100), (100, 228, 100))
"""The grass of CarRacing-v3 frames (drawn as (102, 204, 102) and (102, 230, 102), which the
anti-aliased 96x96 frames never hold)."""

GRASS_TOLERANCE = 13
"""Default per-channel tolerance: v3 blends its two grass shades at tile edges (green between
202 and 228); 13 around each covers every blend, and the grey road is far from both."""

FITS = ("resize", "tile")


def validate_occlude(value: object) -> float:
    """Checks that ``value`` is a real number in ``[0, 1)`` and returns it as ``float``."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, Real)
        or not math.isfinite(value)
        or not 0.0 <= value < 1.0
    ):
        raise ConfigError(f"occlude must be a fraction in [0, 1), got {value!r}")
    return float(value)


def occluded_count(occlude: float, n: int) -> int:
    """How many of ``n`` patches a fraction ``occlude`` removes: ``round(occlude * n)``
    (Python's round: halves to even); ConfigError if none would be left."""
    k = round(validate_occlude(occlude) * n)
    if k >= n:
        raise ConfigError(f"occlude={occlude!r} would remove all {n} patches; keep at least one")
    return k


def draw_slots(
    rng: np.random.Generator,
    n: int,
    kept: int,
    shuffle: bool,
    reshuffle_every: ReshuffleEvery,
) -> tuple[np.ndarray, int | None]:
    """The slots of a new episode (see the module doc) and the steps until the first reshuffle.

    Args:
        rng: the episode's Generator.
        n: patches in the grid.
        kept: patches left after occlusion (``N'``).
        shuffle: whether the slots are in a random order.
        reshuffle_every: the reshuffle schedule (needs ``shuffle``).

    Returns:
        int64 ``[kept]`` patch indices, and ``None`` or the first interval.
    """
    if shuffle:
        perm, interval = draw_shuffle(rng, n, reshuffle_every)
        return perm[:kept].copy(), interval
    if kept < n:
        return np.sort(draw_permutation(rng, n)[:kept]), None
    return np.arange(n, dtype=np.int64), None


def redraw_slots(
    rng: np.random.Generator, slots: np.ndarray, reshuffle_every: ReshuffleEvery
) -> tuple[np.ndarray, int | None]:
    """A reshuffle: the same patches in a new random order, and the next interval."""
    order, interval = draw_shuffle(rng, slots.shape[-1], reshuffle_every)
    return np.sort(slots)[order], interval


def select_patches(patches: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """``patches[..., slots[b], :]`` per episode, as float32 pixel levels divided by 255.

    Args:
        patches: ``[N, D]`` (with ``slots`` ``[N']``) or ``[P, B, N, D]`` (with ``slots``
            ``[B, N']``).
    """
    if slots.ndim == 1:
        chosen = patches[..., slots, :]
    else:
        chosen = patches[:, np.arange(slots.shape[0])[:, None], slots, :]
    return chosen.astype(np.float32) / np.float32(255.0)


def grid_relative(before: np.ndarray, after: np.ndarray, n: int) -> np.ndarray:
    """``rel`` with ``after[b, j] == before[b, rel[b, j]]``, for slots over the same patches.

    Generalises :func:`~tasks.perturbations.relative_permutation` to slots that hold a subset
    of ``range(n)``.
    """
    before = np.asarray(before, dtype=np.int64)
    after = np.asarray(after, dtype=np.int64)
    rows = np.arange(before.shape[0])[:, None]
    where = np.full((before.shape[0], n), -1, dtype=np.int64)
    where[rows, before] = np.arange(before.shape[1])
    rel = where[rows, after]
    if (rel < 0).any():
        raise ConfigError("realignment needs the same patches before and after a reshuffle")
    return rel


class PatchPerturbation(ReshuffleSchedule):
    """Stacked frames to shuffled, occluded patches, for ``[members, episodes]`` batches.

    Takes the task's stacked frames ``[P, B, F, H, W]`` (pixel levels 0..255: uint8, or float
    as a pool of envs stores them) and returns the patches ``[P, B, N', F*p*p]``, float32 in
    ``[0, 1]``: the ``N'`` visible patches in slot order. Slots are drawn per episode ``b``
    from ``rngs[b]`` and shared by all members (common random numbers); see the module doc for
    the draws and for why occlusion stays fixed through an episode.

    Attributes:
        n_patches: ``N``, the patches of a whole frame.
        out_dim: ``N'``, the slots the agent reads (``N`` minus the occluded ones).
        patch_size: values per patch, ``F * p * p``.
        permutations: int64 ``[episodes, N']``, the patch each slot holds.
        reshuffled: bool ``[episodes]``, True where the slots were reshuffled at the last step.
        steps: steps taken since the last reset.

    Example:
        >>> import numpy as np
        >>> from tasks.spec import PatchObservation
        >>> grid = PatchObservation(frames=4, height=96, width=96, patch=6)
        >>> pert = PatchPerturbation(grid, shuffle=True, reshuffle_every=50, occlude=0.25)
        >>> rngs = [np.random.default_rng(s) for s in range(3)]
        >>> frames = np.zeros((2, 3, 4, 96, 96), dtype=np.uint8)
        >>> pert.reset(frames, rngs).shape, pert.permutations.shape
        ((2, 3, 192, 144), (3, 192))
    """

    def __init__(
        self,
        observation: PatchObservation,
        *,
        shuffle: bool = False,
        reshuffle_every: ReshuffleEvery = None,
        occlude: float = 0.0,
    ) -> None:
        """Validates the settings.

        Args:
            observation: the task's :class:`~tasks.spec.PatchObservation` (frames, height,
                width, patch).
            shuffle: put the visible patches in a random order at reset.
            reshuffle_every: reshuffle schedule, see
                :func:`~tasks.perturbations.validate_reshuffle_every`; needs ``shuffle``.
            occlude: the fraction of patches removed, in ``[0, 1)``.
        """
        self.frames = validate_int("frames", observation.frames, 1)
        self.height, self.width = int(observation.height), int(observation.width)
        self.patch = int(observation.patch)
        rows, cols = check_grid(self.height, self.width, self.patch)
        self.shuffle, self.reshuffle_every = validate_shuffle(shuffle, reshuffle_every)
        self.occlude = validate_occlude(occlude)
        self.n_patches = rows * cols
        self.out_dim = self.n_patches - occluded_count(self.occlude, self.n_patches)
        self.patch_size = self.frames * self.patch * self.patch
        self.permutations: np.ndarray | None = None
        self.reshuffled: np.ndarray | None = None
        self.steps = 0
        self._next_reshuffle: list[int | None] = []

    def _check(self, obs: Any, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        obs = np.asarray(obs)
        shape = (self.frames, self.height, self.width)
        if obs.ndim != 5 or obs.shape[2:] != shape:
            raise ConfigError(
                f"obs must have shape [members, episodes, {', '.join(map(str, shape))}], got "
                f"{obs.shape}"
            )
        if len(rngs) != obs.shape[1]:
            raise ConfigError(
                f"expected one Generator per episode ({obs.shape[1]}), got {len(rngs)}"
            )
        return obs

    def reset(self, obs: Any, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """Starts new episodes: draws the visible patches and their order.

        Args:
            obs: stacked frames ``[members, episodes, F, H, W]`` right after reset.
            rngs: one Generator per episode, the ones the initial states came from.

        Returns:
            float32 ``[members, episodes, out_dim, patch_size]``.
        """
        obs = self._check(obs, rngs)
        self.steps = 0
        self.reshuffled = np.zeros(obs.shape[1], dtype=bool)
        drawn = [
            draw_slots(rng, self.n_patches, self.out_dim, self.shuffle, self.reshuffle_every)
            for rng in rngs
        ]
        self.permutations = np.stack([slots for slots, _ in drawn])
        self._next_reshuffle = [interval for _, interval in drawn]
        return self._perturb(obs)

    def step(self, obs: Any, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """Perturbs the frames of one step, reshuffling where due.

        Args:
            obs: stacked frames ``[members, episodes, F, H, W]`` after the step.
            rngs: the same Generators as at reset.

        Returns:
            float32 ``[members, episodes, out_dim, patch_size]``.
        """
        if self.permutations is None:
            raise gym.error.ResetNeeded("Call reset() before step().")
        obs = self._check(obs, rngs)
        if obs.shape[1] != self.permutations.shape[0]:
            raise ConfigError(
                f"reset() saw {self.permutations.shape[0]} episodes, step() got {obs.shape[1]}"
            )
        self.steps += 1
        self.reshuffled = np.zeros(len(rngs), dtype=bool)
        for b, rng in enumerate(rngs):
            if self._next_reshuffle[b] == self.steps:
                slots, interval = redraw_slots(rng, self.permutations[b], self.reshuffle_every)
                self.permutations[b] = slots
                self._next_reshuffle[b] = None if interval is None else self.steps + interval
                self.reshuffled[b] = True
        return self._perturb(obs)

    def realignment(self, before: np.ndarray) -> np.ndarray:
        """How to move per-slot state after a reshuffle: int64 ``[episodes, out_dim]``.

        ``before`` is :attr:`permutations` before the step. Slot ``j`` of the new state is
        slot ``realignment(before)[b, j]`` of the old one (the slot that held the same patch).
        """
        if self.permutations is None:
            raise gym.error.ResetNeeded("Call reset() before realignment().")
        return grid_relative(before, self.permutations, self.n_patches)

    def sources(self) -> np.ndarray:
        """Which patch of the grid feeds each slot now: int64 ``[episodes, out_dim]``."""
        if self.permutations is None:
            raise gym.error.ResetNeeded("Call reset() before sources().")
        return self.permutations.copy()

    def occluded(self) -> np.ndarray:
        """bool ``[episodes, n_patches]``: True for the patches no slot shows."""
        if self.permutations is None:
            raise gym.error.ResetNeeded("Call reset() before occluded().")
        hidden = np.ones((self.permutations.shape[0], self.n_patches), dtype=bool)
        hidden[np.arange(hidden.shape[0])[:, None], self.permutations] = False
        return hidden

    def _perturb(self, obs: np.ndarray) -> np.ndarray:
        return select_patches(to_patches(obs, self.patch), self.permutations)


# ---------------------------------------------------------------------------------------------
# Backgrounds


def _checkerboard(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    colours = rng.integers(0, 256, size=(2, 3), dtype=np.uint8)
    side = 8
    y, x = np.indices((height, width))
    return colours[((y // side) + (x // side)) % 2]


def _stripes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    colours = rng.integers(0, 256, size=(2, 3), dtype=np.uint8)
    period = 12
    y, x = np.indices((height, width))
    return colours[(((x + y) % period) >= period // 2).astype(np.intp)]


def _noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


PROCEDURAL: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "checkerboard": _checkerboard,
    "stripes": _stripes,
    "noise": _noise,
}
"""Images made with numpy from a seed (``name`` or ``name:SEED``; the seed defaults to 0):
8-pixel squares of two random colours, diagonal stripes of two random colours (period 12), and
uniform per-pixel RGB noise. They are made at the frame's size, so they need no resizing."""

SAMPLES = ("astronaut", "coffee", "chelsea", "hubble_deep_field", "brick", "gravel")
"""scikit-image's bundled sample images on offer (``pip install scikit-image``; optional). The
first four are the paper's unseen test backgrounds."""

TRAINING_SAMPLES = (
    "camera",
    "coins",
    "moon",
    "horse",
    "rocket",
    "page",
    "text",
    "retina",
    "immunohistochemistry",
    "grass",
    "colorwheel",
    "cell",
    "clock",
)
"""More of scikit-image's bundled images, for backgrounds drawn in training: none of them is
one of the test backgrounds (:data:`SAMPLES`' first four)."""

OWN_BACKGROUND = "none"
"""In a background pool, the env's own background (no swap)."""

_PROCEDURAL_NAME = re.compile(r"^(checkerboard|stripes|noise)(?::(\d+))?$")


def offered_backgrounds() -> tuple[str, ...]:
    """The names :func:`background_image` knows (besides files)."""
    return tuple(PROCEDURAL) + SAMPLES + TRAINING_SAMPLES


def is_background_pool(name: str) -> bool:
    """Whether ``name`` is a pool drawn per episode (``a|b|c``, or ``kind:*``)."""
    return "|" in name or name.endswith(":*")


def _as_rgb(image: Any, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    if image.dtype != np.uint8:
        raise ConfigError(f"{what} must hold uint8 pixels, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or 0 in image.shape[:2]:
        raise ConfigError(f"{what} must be [H, W], [H, W, 3] or [H, W, 4]; got {image.shape}")
    return np.ascontiguousarray(image[:, :, :3])


def _sample(name: str) -> np.ndarray:
    try:
        import skimage.data
    except ImportError:
        raise ConfigError(
            f"background {name!r} is one of scikit-image's sample images: pip install scikit-image"
        ) from None
    return getattr(skimage.data, name)()


def background_image(name: str, shape: tuple[int, int] = (96, 96)) -> np.ndarray:
    """An image to put behind the track: uint8 ``[H, W, 3]``.

    Args:
        name: a procedural image (``checkerboard``, ``stripes``, ``noise``, each optionally
            ``:SEED``), a scikit-image sample (:data:`SAMPLES`), or the path of an image file
            (read with imageio).
        shape: ``(height, width)`` for procedural images; the others keep their own size
            (:class:`BackgroundSwap` fits them to the frame).

    Example:
        >>> background_image("checkerboard:3", (24, 32)).shape
        (24, 32, 3)
        >>> bool((background_image("noise:1") == background_image("noise:1")).all())
        True
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"background must be an image name or a file path, got {name!r}")
    match = _PROCEDURAL_NAME.match(name)
    if match:
        kind, seed = match.group(1), int(match.group(2) or 0)
        height, width = shape
        return PROCEDURAL[kind](np.random.default_rng(seed), height, width)
    if is_background_pool(name):
        raise ConfigError(
            f"background {name!r} is a pool, one image drawn per episode (BackgroundPool); "
            "name one image here"
        )
    if name in SAMPLES or name in TRAINING_SAMPLES:
        return _as_rgb(_sample(name), f"background {name!r}")
    path = Path(name).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"background {name!r} is neither an offered image "
            f"({', '.join(offered_backgrounds())}) nor a file"
        )
    import imageio.v3 as iio

    try:
        image = iio.imread(path)
    except Exception as exc:  # imageio raises many kinds for unreadable files
        raise ConfigError(f"background {name!r}: imageio cannot read it ({exc})") from None
    if image.ndim == 4:  # an animation: its first frame
        image = image[0]
    return _as_rgb(image, f"background {name!r}")


def fit_image(image: np.ndarray, height: int, width: int, fit: str = "resize") -> np.ndarray:
    """``image`` at ``height x width``: stretched (``resize``, bilinear) or repeated
    (``tile``, from the top-left corner)."""
    if fit not in FITS:
        raise ConfigError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    if image.shape[:2] == (height, width):
        return image
    if fit == "tile":
        reps = (-(-height // image.shape[0]), -(-width // image.shape[1]), 1)
        return np.tile(image, reps)[:height, :width]
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def validate_colours(colours: Any) -> tuple[tuple[int, int, int], ...]:
    """Checks that ``colours`` is a non-empty sequence of RGB triples of ints in 0..255."""
    try:
        array = np.asarray(colours)
    except ValueError:
        array = np.zeros(0)
    if (
        array.ndim != 2
        or array.shape[0] < 1
        or array.shape[1] != 3
        or array.dtype.kind not in "iu"
        or (array < 0).any()
        or (array > 255).any()
    ):
        raise ConfigError(
            f"colours must be RGB triples of ints in 0..255, such as {GRASS_COLOURS}; "
            f"got {colours!r}"
        )
    return tuple(tuple(int(v) for v in row) for row in array)


class BackgroundSwap:
    """Replaces the pixels of given colours by an image's pixels, on RGB frames.

    A pixel is background when each of its channels is within ``tolerance`` of one of the
    ``colours`` (the largest channel difference is at most ``tolerance``). It then takes the
    image's pixel at the same place, the image being fitted to the frame (:func:`fit_image`).
    Works on ``[..., H, W, 3]``: one frame, a batch ``[P, B, H, W, 3]`` or a stack; the dtype is
    kept. Draws nothing: a seeded procedural image is one fixed picture.

    Attributes:
        colours: the background colours.
        tolerance: the largest channel difference still counted as background.
        name: the image's name or path (``None`` for an array).
        image: the image as given or read, uint8 ``[h, w, 3]`` (``None`` for a procedural
            one, which is made at each frame size).

    Example:
        >>> import numpy as np
        >>> swap = BackgroundSwap(image="checkerboard")
        >>> frame = np.zeros((96, 96, 3), dtype=np.uint8)
        >>> frame[:48] = (100, 202, 100)                 # grass above, black road below
        >>> out = swap(frame)
        >>> bool((out[:48] == swap.fitted(96, 96)[:48]).all()), bool((out[48:] == 0).all())
        (True, True)
    """

    def __init__(
        self,
        colours: Sequence[Sequence[int]] = GRASS_COLOURS,
        image: str | np.ndarray = "checkerboard",
        tolerance: int = GRASS_TOLERANCE,
        fit: str = "resize",
    ) -> None:
        """Validates the settings.

        Args:
            colours: RGB triples (default: CarRacing-v3's grass).
            image: a name or path for :func:`background_image`, or a uint8 array.
            tolerance: an int >= 0 (default :data:`GRASS_TOLERANCE`).
            fit: ``resize`` or ``tile``, for images of another size than the frame.
        """
        self.colours = validate_colours(colours)
        self.tolerance = validate_int("tolerance", tolerance, 0)
        if fit not in FITS:
            raise ConfigError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
        self.fit = fit
        self.name = image if isinstance(image, str) else None
        if isinstance(image, str):
            procedural = _PROCEDURAL_NAME.match(image) is not None
            self.image = None if procedural else background_image(image)
        else:
            self.image = _as_rgb(image, "image")
        self._fitted: dict[tuple[int, int], np.ndarray] = {}

    def fitted(self, height: int, width: int) -> np.ndarray:
        """The image at the frame's size, uint8 ``[height, width, 3]`` (made once per size)."""
        key = (int(height), int(width))
        if key not in self._fitted:
            if self.image is None:  # procedural: made at the frame's size
                assert self.name is not None
                self._fitted[key] = background_image(self.name, key)
            else:
                self._fitted[key] = fit_image(self.image, *key, fit=self.fit)
        return self._fitted[key]

    def mask(self, frames: Any) -> np.ndarray:
        """bool ``[..., H, W]``: True on background pixels."""
        frames = np.asarray(frames)
        if frames.ndim < 3 or frames.shape[-1] != 3:
            raise ConfigError(f"RGB frames must have shape [..., H, W, 3], got {frames.shape}")
        levels = frames.astype(np.int16) if frames.dtype == np.uint8 else frames
        hit = np.zeros(frames.shape[:-1], dtype=bool)
        for colour in self.colours:
            hit |= np.abs(levels - np.asarray(colour, dtype=levels.dtype)).max(-1) <= self.tolerance
        return hit

    def __call__(self, frames: Any) -> np.ndarray:
        """The frames with their background replaced (a new array, same shape and dtype)."""
        frames = np.asarray(frames)
        hit = self.mask(frames)
        image = self.fitted(frames.shape[-3], frames.shape[-2]).astype(frames.dtype)
        return np.where(hit[..., None], image, frames)


class BackgroundPool:
    """A background drawn per episode among alternatives: ``"none|camera|noise:*"``.

    Each alternative, separated by ``|``, is an image name or file for :func:`background_image`,
    a procedural kind with a seed drawn per episode (``checkerboard:*``, ``stripes:*``,
    ``noise:*``), or ``none`` (the env's own background). A name listed twice is drawn twice as
    often. Every image is read (and checked) when the pool is made.

    Attributes:
        names: the alternatives, in the order given.

    Example:
        >>> import numpy as np
        >>> pool = BackgroundPool("none|checkerboard:*")
        >>> rng = np.random.default_rng(0)
        >>> draws = [pool.draw(rng) for _ in range(6)]
        >>> sorted({"none" if d is None else d.name.split(":")[0] for d in draws})
        ['checkerboard', 'none']
    """

    def __init__(
        self,
        pool: str,
        colours: Sequence[Sequence[int]] = GRASS_COLOURS,
        tolerance: int = GRASS_TOLERANCE,
        fit: str = "resize",
    ) -> None:
        self.names = self.parse(pool)
        self._options = {"colours": colours, "tolerance": tolerance, "fit": fit}
        self._swaps: dict[str, BackgroundSwap] = {}
        for name in self.names:
            if name != OWN_BACKGROUND and not name.endswith(":*") and name not in self._swaps:
                self._swaps[name] = BackgroundSwap(image=name, **self._options)

    @staticmethod
    def parse(pool: object) -> tuple[str, ...]:
        """The alternatives of ``pool``, checked without reading any image (ConfigError)."""
        if not isinstance(pool, str) or not pool:
            raise ConfigError(f"a background pool must be a non-empty string, got {pool!r}")
        names = tuple(name.strip() for name in pool.split("|"))
        for name in names:
            if not name:
                raise ConfigError(f"background pool {pool!r} has an empty alternative")
            if name.endswith(":*") and name[:-2] not in PROCEDURAL:
                raise ConfigError(
                    f"background pool {pool!r}: {name!r} draws a seed per episode for a "
                    f"procedural image ({', '.join(PROCEDURAL)}), not for {name[:-2]!r}"
                )
        return names

    def draw(self, rng: np.random.Generator) -> BackgroundSwap | None:
        """One episode's swap, drawn from ``rng``; None for the env's own background."""
        name = self.names[int(rng.integers(len(self.names)))]
        if name == OWN_BACKGROUND:
            return None
        if name.endswith(":*"):
            seed = int(rng.integers(2**31))
            return BackgroundSwap(image=f"{name[:-2]}:{seed}", **self._options)
        return self._swaps[name]
