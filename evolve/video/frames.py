"""Frame composition for videos: what one agent's column shows, drawn as panels.

:class:`FrameData` holds what one column shows at one step; :func:`compose_frame` turns a
list of them (one per agent, side by side) into an RGB array. Each panel is a small class
with the same two methods, so an image task can add its own (say, the original frame beside
the shuffled one with the attended patches highlighted) in :func:`vector_panels`' place.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sensoryneuron.errors import ConfigError
from tasks.spec import group_indices

COLUMN_WIDTH = 640
MACRO_BLOCK = 16  # frame sides are padded to a multiple of this (no ffmpeg resize)

# Colours: one per sensor (Okabe-Ito, distinguishable with colour-blindness), grey for noise.
SENSOR_COLOURS = [
    (0, 114, 178),
    (230, 159, 0),
    (0, 158, 115),
    (204, 121, 167),
    (213, 94, 0),
    (86, 180, 233),
    (150, 130, 20),
    (110, 80, 160),
]
NOISE_COLOUR = (150, 150, 150)
INK = (25, 25, 25)
MUTED = (100, 100, 100)
BACKGROUND = (255, 255, 255)
TITLE_BACKGROUND = (236, 236, 236)
BANNER_COLOUR = (200, 30, 40)
DONE_COLOUR = (80, 80, 80)
_DIVERGING = [(33, 102, 172), (146, 197, 222), (247, 247, 247), (244, 165, 130), (178, 24, 43)]


def slot_sources(permutation: np.ndarray, num_sensors: int, noise_channels: int) -> np.ndarray:
    """The raw sensor each input slot carries, ``-1`` for a noise channel.

    ``permutation[j]`` indexes the (possibly duplicated) raw observation, whose copies are
    tiled, so slot ``j`` carries sensor ``permutation[j] % num_sensors``.

    Example:
        >>> slot_sources(np.array([3, 0, 4, 1, 2, 5]), 3, 2).tolist()
        [0, 0, 1, 1, 2, 2, -1, -1]
    """
    sources = np.asarray(permutation, dtype=np.int64) % num_sensors
    return np.concatenate([sources, np.full(noise_channels, -1, dtype=np.int64)])


@dataclass(frozen=True)
class FrameData:
    """What one agent's column shows at one step; pure data, drawn by :func:`compose_frame`.

    Attributes:
        step: steps taken so far (0: right after reset).
        env_frame: uint8 ``[H, W, 3]`` from the env's ``render()``.
        obs: ``[N]``, the observation as the agent receives it, in slot order.
        permutation: ``[N - noise_channels]``; slot ``j`` carries element ``permutation[j]``
            of the (duplicated) raw observation.
        noise_channels: noise inputs appended after the shuffled ones.
        sensor_names: what each raw observation element measures.
        attention: ``[M, N]`` attention weights on ``obs`` (``M = 0`` without attention).
        action: the action taken on ``obs`` (that of the last step once the episode is over).
        episode_return: the reward collected in the ``step`` steps so far.
        banner: show the RESHUFFLE banner.
        done: the episode is over; the column holds its last state.
        label: the agent's name.
        patch_grid: an image task's ``(height, width, patch)``: ``obs`` is then the visible
            patches ``[N', F*p*p]`` in slot order (values in ``[0, 1]``), ``permutation`` the
            grid patch each slot shows, and ``attention`` ``[M, N']``. None: a vector task.
        sensor_groups: named runs of consecutive raw sensors that share a colour, ``(name,
            how many)`` (the task's ``VectorObservation.groups``); empty: a colour per sensor.
    """

    step: int
    env_frame: np.ndarray
    obs: np.ndarray
    permutation: np.ndarray
    noise_channels: int
    sensor_names: tuple[str, ...]
    attention: np.ndarray
    action: np.ndarray
    episode_return: float
    banner: bool = False
    done: bool = False
    label: str = ""
    patch_grid: tuple[int, int, int] | None = None
    sensor_groups: tuple[tuple[str, int], ...] = ()

    @property
    def sources(self) -> np.ndarray:
        """The raw sensor each slot carries, ``-1`` for noise (:func:`slot_sources`)."""
        return slot_sources(self.permutation, len(self.sensor_names), self.noise_channels)

    def colour(self, source: int) -> tuple[int, int, int]:
        """The colour of raw sensor ``source``: its group's, else its own; grey for noise."""
        if source < 0:
            return NOISE_COLOUR
        return sensor_colours(len(self.sensor_names), self.sensor_groups)[source]


@functools.cache
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` px (Pillow >= 10.1), else DejaVu Sans, else bitmap."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: load_default() takes no size
        pass
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default()


def sensor_colour(source: int) -> tuple[int, int, int]:
    """The colour of raw sensor ``source`` (grey for noise, ``-1``)."""
    return NOISE_COLOUR if source < 0 else SENSOR_COLOURS[source % len(SENSOR_COLOURS)]


@functools.cache
def sensor_colours(
    num_sensors: int, groups: tuple[tuple[str, int], ...] = ()
) -> tuple[tuple[int, int, int], ...]:
    """The colour of each raw sensor: its group's (the group's index in ``groups``), else,
    without groups, its own (:func:`sensor_colour`).

    Example:
        >>> colours = sensor_colours(3, (("a", 1), ("b", 2)))
        >>> colours == (SENSOR_COLOURS[0], SENSOR_COLOURS[1], SENSOR_COLOURS[1])
        True
    """
    if not groups:
        return tuple(sensor_colour(i) for i in range(num_sensors))
    return tuple(sensor_colour(g) for g in group_indices(groups))


def _tint(colour: tuple[int, int, int], amount: float) -> tuple[int, int, int]:
    return tuple(round(c + (255 - c) * amount) for c in colour)


@functools.cache
def _diverging_lut() -> np.ndarray:
    """uint8 ``[256, 3]``: blue (-1) through white (0) to red (+1)."""
    anchors = np.array(_DIVERGING, dtype=np.float64)
    x = np.linspace(0, len(anchors) - 1, 256)
    lut = [np.interp(x, np.arange(len(anchors)), anchors[:, c]) for c in range(3)]
    return np.stack(lut, axis=1).round().astype(np.uint8)


def _text(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    size: int,
    fill: tuple[int, int, int] = INK,
    anchor: str = "la",
    max_width: float | None = None,
) -> None:
    """Draws ``text``, shrinking the font (down to 9 px) until it fits ``max_width``."""
    if not isinstance(font(size), ImageFont.FreeTypeFont):  # bitmap fallback: no size, anchor
        draw.text(xy, text, fill=fill, font=font(size))
        return
    mask, left, top = _text_mask(text, size, anchor, max_width)
    draw.bitmap((round(xy[0] + left), round(xy[1] + top)), mask, fill=fill)


@functools.lru_cache(maxsize=4096)
def _text_mask(
    text: str, size: int, anchor: str, max_width: float | None
) -> tuple[Image.Image, int, int]:
    """``text`` rendered as an ``L`` mask, and the mask's offset from the anchor point.

    Cached: names, labels and most numbers repeat from frame to frame.
    """
    while max_width is not None and size > 9 and font(size).getlength(text) > max_width:
        size -= 1
    left, top, right, bottom = font(size).getbbox(text, anchor=anchor)
    mask = Image.new("L", (max(right - left, 1), max(bottom - top, 1)), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, fill=255, font=font(size), anchor=anchor)
    return mask, left, top


def _load(image: Image.Image, pixels: np.ndarray) -> Image.Image:
    """Copies uint8 ``[H, W, 3]`` pixels into ``image`` (reused: no allocation per frame)."""
    pixels = np.asarray(pixels, dtype=np.uint8)
    if pixels.shape != (image.height, image.width, 3):
        return Image.fromarray(pixels[..., :3])
    image.frombytes(np.ascontiguousarray(pixels).tobytes())
    return image


def _slots(width: int, n: int, margin: int = 10, gap: int = 3) -> list[tuple[int, int]]:
    """Left and right (exclusive) pixel edges of ``n`` equal cells across ``width``."""
    edges = np.linspace(margin, width - margin + gap, n + 1).round().astype(int)
    return [(int(edges[j]), int(edges[j + 1]) - gap) for j in range(n)]


def _signed(value: float) -> str:
    """``+1.25``, ``-0.50``, ``0.00`` (never ``-0.00``)."""
    text = f"{float(value):+.2f}"
    return "0.00" if text in ("+0.00", "-0.00") else text


def overlay_text(data: FrameData) -> dict[str, str]:
    """The text on one column: ``label``, ``status`` and ``banner`` (``""`` when off)."""
    if data.done:
        status = f"episode over after {data.step} steps  |  return {data.episode_return:.1f}"
    else:
        values = np.asarray(data.action)
        if values.dtype.kind in "iu":  # a discrete choice: its index
            action = " ".join(str(int(a)) for a in values.ravel()[:3])
        else:
            action = " ".join(_signed(a) for a in values.ravel()[:3])
        status = f"step {data.step}  |  return {data.episode_return:.1f}  |  action {action}"
    banner = "RESHUFFLE: inputs re-permuted" if data.banner and not data.done else ""
    return {"label": data.label, "status": status, "banner": banner}


class Panel:
    """One horizontal band of a column: static parts drawn once, the rest every frame.

    Subclasses set ``height`` and override :meth:`draw` (and :meth:`draw_static`).
    """

    height: int = 0

    def draw_static(self, draw: ImageDraw.ImageDraw, x: int, y: int) -> None:
        """Draws what never changes into the base image, at ``(x, y)``."""

    def draw(
        self, canvas: Image.Image, draw: ImageDraw.ImageDraw, x: int, y: int, data: FrameData
    ) -> None:
        """Draws ``data`` into ``canvas`` at ``(x, y)``."""


class HeaderPanel(Panel):
    """The agent's name; the step, return so far and action (or that the episode is over)."""

    height = 50

    def __init__(self, width: int) -> None:
        self.width = width

    def draw(
        self, canvas: Image.Image, draw: ImageDraw.ImageDraw, x: int, y: int, data: FrameData
    ) -> None:
        text = overlay_text(data)
        _text(draw, (x + 10, y + 6), text["label"], 18, max_width=self.width - 20)
        colour = DONE_COLOUR if data.done else MUTED
        _text(draw, (x + 10, y + 29), text["status"], 15, colour, max_width=self.width - 20)


class EnvPanel(Panel):
    """The env's frame scaled to the column width, with the RESHUFFLE banner on top."""

    banner_height = 44

    def __init__(self, width: int, frame_shape: tuple[int, ...]) -> None:
        self.width = width
        self.frame_size = (width, round(frame_shape[0] * width / frame_shape[1]))
        self.height = self.frame_size[1]
        self._image = Image.new("RGB", (frame_shape[1], frame_shape[0]))  # reused every frame

    def draw(
        self, canvas: Image.Image, draw: ImageDraw.ImageDraw, x: int, y: int, data: FrameData
    ) -> None:
        image = _load(self._image, data.env_frame)
        if image.size != self.frame_size:
            image = image.resize(self.frame_size, Image.Resampling.BILINEAR)
        canvas.paste(image, (x, y))
        text = overlay_text(data)
        if text["banner"]:
            self._strip(draw, x, y, text["banner"], BANNER_COLOUR)
        if data.done:
            self._strip(draw, x, y, "EPISODE OVER", DONE_COLOUR)

    def _strip(
        self, draw: ImageDraw.ImageDraw, x: int, y: int, text: str, colour: tuple[int, int, int]
    ) -> None:
        draw.rectangle([x, y, x + self.width - 1, y + self.banner_height], fill=colour)
        centre = (x + self.width / 2, y + self.banner_height / 2 + 1)
        _text(draw, centre, text, 26, (255, 255, 255), "mm", max_width=self.width - 20)


class ObservationPanel(Panel):
    """One cell per input slot: the sensor it carries (colour, name) and its value."""

    title_height = 24
    cell_height = 76

    def __init__(self, width: int, num_inputs: int) -> None:
        self.width = width
        self.slots = _slots(width, num_inputs)
        self.height = self.title_height + self.cell_height + 6

    def draw(
        self, canvas: Image.Image, draw: ImageDraw.ImageDraw, x: int, y: int, data: FrameData
    ) -> None:
        if data.banner and not data.done:
            title, colour = (
                "inputs re-permuted: each slot now carries another sensor",
                BANNER_COLOUR,
            )
        else:
            title, colour = "what the agent sees: its inputs in their current order", MUTED
        _text(draw, (x + 10, y + 5), title, 14, colour, max_width=self.width - 20)
        top = y + self.title_height
        mid = top + 40
        sources = data.sources
        for (x0, x1), source, value in zip(self.slots, sources, data.obs, strict=True):
            colour = data.colour(int(source))
            name = "noise" if source < 0 else data.sensor_names[source]
            left, right = x + x0, x + x1 - 1
            draw.rectangle(
                [left, top, right, top + self.cell_height - 1],
                fill=_tint(colour, 0.8),
                outline=colour,
                width=3,
            )
            centre = (left + right) / 2
            _text(draw, (centre, top + 6), name, 14, INK, "ma", max_width=x1 - x0 - 8)
            bar = round(13 * math.tanh(float(value)))
            half = max(3, min(12, (x1 - x0) // 5))
            draw.line([(left + 4, mid), (right - 4, mid)], fill=_tint(INK, 0.6), width=1)
            if bar:
                bar_box = [centre - half, min(mid, mid - bar), centre + half, max(mid, mid - bar)]
                draw.rectangle(bar_box, fill=colour)
            bottom = (centre, top + self.cell_height - 5)
            _text(draw, bottom, _signed(value), 13, INK, "md", max_width=x1 - x0 - 6)


class AttentionPanel(Panel):
    """The ``M x N`` attention weights as a heat map, one column per input slot.

    ``rows`` (at least ``num_latents``) sets the height, so that columns side by side line up.
    """

    title_height = 24
    strip_height = 6

    def __init__(self, width: int, num_inputs: int, num_latents: int, rows: int) -> None:
        self.width = width
        self.num_latents = num_latents
        self.slots = _slots(width, num_inputs)
        self.map_height = 6 * max(rows, num_latents) or 40
        self.height = self.title_height + self.strip_height + self.map_height + 8
        self.slot_of_x = np.full(width, -1, dtype=np.int64)
        for j, (x0, x1) in enumerate(self.slots):
            self.slot_of_x[x0:x1] = j
        self.cols = np.flatnonzero(self.slot_of_x >= 0)
        self._image = Image.new("RGB", (width, self.map_height))  # reused every frame

    def draw_static(self, draw: ImageDraw.ImageDraw, x: int, y: int) -> None:
        if not self.num_latents:
            _text(draw, (x + 10, y + 5), "attention weights: none", 14, MUTED)
            message = "a feed-forward policy has no attention: it reads its inputs by position"
            map_y = y + self.title_height + self.strip_height
            centre = (x + self.width / 2, map_y + self.map_height / 2)
            _text(draw, centre, message, 14, MUTED, "mm", max_width=self.width - 20)
            return
        title = f"attention weights: {self.num_latents} latents (rows) x the inputs above"
        _text(draw, (x + 10, y + 5), title, 14, MUTED, max_width=self.width - 170)
        bar_x, bar_y = x + self.width - 110, y + 7
        lut = _diverging_lut()
        for i in range(80):
            colour = tuple(int(c) for c in lut[round(i * 255 / 79)])
            draw.line([(bar_x + i, bar_y), (bar_x + i, bar_y + 10)], fill=colour)
        draw.rectangle([bar_x - 1, bar_y - 1, bar_x + 80, bar_y + 11], outline=MUTED)
        _text(draw, (bar_x - 4, bar_y + 5), "-1", 13, MUTED, "rm")
        _text(draw, (bar_x + 84, bar_y + 5), "+1", 13, MUTED, "lm")

    def draw(
        self, canvas: Image.Image, draw: ImageDraw.ImageDraw, x: int, y: int, data: FrameData
    ) -> None:
        strip_y = y + self.title_height
        for (x0, x1), source in zip(self.slots, data.sources, strict=True):
            draw.rectangle(
                [x + x0, strip_y, x + x1 - 1, strip_y + self.strip_height - 2],
                fill=data.colour(int(source)),
            )
        attention = np.asarray(data.attention)
        latents = attention.shape[0]
        if latents == 0:
            return
        index = np.clip(np.rint((attention + 1.0) * 127.5), 0, 255).astype(np.int64)
        cells = _diverging_lut()[index]  # [M, N, 3]
        rows = np.arange(self.map_height) * latents // self.map_height
        heat = np.full((self.map_height, self.width, 3), BACKGROUND, dtype=np.uint8)
        heat[:, self.cols] = cells[rows][:, self.slot_of_x[self.cols]]
        canvas.paste(_load(self._image, heat), (x, strip_y + self.strip_height))


class LegendPanel(Panel):
    """Which colour is which sensor, or which sensor group where the task groups them.

    Entries run on over a second line where one does not hold them (grouped sensors), and
    end in "..." where two do not.
    """

    line_height = 30

    def __init__(
        self,
        width: int,
        names: Sequence[str],
        noise: bool,
        groups: Sequence[tuple[str, int]] = (),
    ) -> None:
        self.width = width
        if groups:
            self.label = "colour = sensor group:"
            self.entries = [(name, sensor_colour(g)) for g, (name, _) in enumerate(groups)]
        else:
            self.label = "colour = sensor:"
            self.entries = [(name, sensor_colour(i)) for i, name in enumerate(names)]
        if noise:
            self.entries.append(("noise", NOISE_COLOUR))
        self.lines = 2 if groups and self._line_width() > width - 20 else 1
        self.height = self.line_height * self.lines

    def _line_width(self) -> float:
        """The width of the label and every entry on one line."""
        return (
            font(14).getlength(self.label)
            + 12
            + sum(33 + font(14).getlength(name) for name, _ in self.entries)
        )

    def draw_static(self, draw: ImageDraw.ImageDraw, x: int, y: int) -> None:
        cx = x + 10
        _text(draw, (cx, y + 15), self.label, 14, MUTED, "lm")
        cx += draw.textlength(self.label, font=font(14)) + 12
        line = 0
        for name, colour in self.entries:
            if cx + 19 + draw.textlength(name, font=font(14)) > x + self.width - 10:
                if line + 1 == self.lines:
                    _text(draw, (cx, y + 15), "...", 14, MUTED, "lm")
                    break
                line, cx, y = line + 1, x + 10, y + self.line_height
            draw.rectangle([cx, y + 8, cx + 14, y + 22], fill=colour)
            _text(draw, (cx + 19, y + 15), name, 14, INK, "lm")
            cx += 19 + draw.textlength(name, font=font(14)) + 14


ATTENDED_PATCHES = 10  # patches outlined on the true frame: the most attended
ATTENDED_COLOUR = (230, 159, 0)


def patch_image(patches: np.ndarray, cells: np.ndarray, grid: tuple[int, int, int]) -> np.ndarray:
    """The newest frame of ``patches[N', F*p*p]`` (values in ``[0, 1]``) drawn with patch ``j``
    at grid cell ``cells[j]``; cells no patch fills stay black. uint8 ``[H, W]``.

    Example:
        >>> patches = np.zeros((2, 2 * 4)); patches[1, 4:] = 1.0       # F=2 frames of 2x2
        >>> patch_image(patches, np.array([1, 0]), (2, 4, 2)).tolist()
        [[255, 255, 0, 0], [255, 255, 0, 0]]
    """
    height, width, p = grid
    cols = width // p
    newest = np.asarray(patches)[:, -p * p :].reshape(-1, p, p)
    image = np.zeros((height, width), dtype=np.uint8)
    for cell, pixels in zip(np.asarray(cells), newest, strict=True):
        r, c = divmod(int(cell), cols)
        image[r * p : (r + 1) * p, c * p : (c + 1) * p] = np.clip(np.rint(pixels * 255), 0, 255)
    return image


class PatchPanel(Panel):
    """Two squares: the patches in the order the agent gets them (slot ``j`` at grid cell
    ``j``; occluded cells black), and the true frame rebuilt from them with the most attended
    patches outlined."""

    title_height = 24

    def __init__(self, width: int, grid: tuple[int, int, int]) -> None:
        self.width = width
        self.grid = grid
        self.side = (width - 30) // 2
        self.height = self.title_height + self.side + 8

    def draw_static(self, draw: ImageDraw.ImageDraw, x: int, y: int) -> None:
        _text(draw, (x + 10, y + 5), "what the agent gets: shuffled patches", 14, MUTED)
        _text(
            draw,
            (x + 20 + self.side, y + 5),
            f"true frame, {ATTENDED_PATCHES} most attended patches",
            14,
            MUTED,
            max_width=self.side,
        )

    def draw(
        self, canvas: Image.Image, draw: ImageDraw.ImageDraw, x: int, y: int, data: FrameData
    ) -> None:
        height, width, p = self.grid
        slots = np.arange(len(data.obs))
        shuffled = patch_image(data.obs, slots, self.grid)
        true = patch_image(data.obs, data.permutation, self.grid)
        top = y + self.title_height
        size = (self.side, round(self.side * height / width))
        for i, image in enumerate((shuffled, true)):
            big = Image.fromarray(image).convert("RGB").resize(size, Image.Resampling.NEAREST)
            canvas.paste(big, (x + 10 + i * (self.side + 10), top))
        attention = np.asarray(data.attention)
        if attention.size == 0:
            return
        mass = attention.sum(axis=0)  # [N']: how much the codes draw on each slot
        cols, scale = width // p, self.side / width
        left = x + 20 + self.side
        for j in np.argsort(-mass, kind="stable")[:ATTENDED_PATCHES]:
            r, c = divmod(int(data.permutation[j]), cols)
            box = [
                left + c * p * scale,
                top + r * p * scale,
                left + (c + 1) * p * scale - 1,
                top + (r + 1) * p * scale - 1,
            ]
            draw.rectangle(box, outline=ATTENDED_COLOUR, width=2)


def image_panels(data: FrameData, width: int) -> list[Panel]:
    """The panels of one column for an image task (``data.patch_grid`` set)."""
    assert data.patch_grid is not None
    return [
        HeaderPanel(width),
        EnvPanel(width, data.env_frame.shape),
        PatchPanel(width, data.patch_grid),
    ]


def vector_panels(data: FrameData, width: int, attention_rows: int) -> list[Panel]:
    """The panels of one column for a task with a vector observation.

    Args:
        data: the column's first frame (sizes are read from it).
        width: the column width in pixels.
        attention_rows: the most latents of any column (the heat maps line up).
    """
    n = len(data.obs)
    return [
        HeaderPanel(width),
        EnvPanel(width, data.env_frame.shape),
        ObservationPanel(width, n),
        AttentionPanel(width, n, np.asarray(data.attention).shape[0], attention_rows),
        LegendPanel(width, data.sensor_names, data.noise_channels > 0, data.sensor_groups),
    ]


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class FrameComposer:
    """Lays out one column of panels per agent from the first frame's data, then draws frames.

    The frame size is fixed by the first frame and is a multiple of 16 on both sides (H.264
    needs no padding).
    """

    title_height = 30

    def __init__(
        self, first: Sequence[FrameData], title: str = "", column_width: int = COLUMN_WIDTH
    ) -> None:
        if not first:
            raise ConfigError("a frame needs at least one column")
        if len({(len(d.obs), d.patch_grid) for d in first}) > 1:
            raise ConfigError("side-by-side agents must see observations of the same size")
        if column_width < 320 or column_width % MACRO_BLOCK:
            raise ConfigError(f"column_width must be a multiple of 16 >= 320, got {column_width}")
        self.column_width = column_width
        rows = max(np.asarray(d.attention).shape[0] for d in first)
        self.columns = [
            vector_panels(d, column_width, rows)
            if d.patch_grid is None
            else image_panels(d, column_width)
            for d in first
        ]
        column_height = sum(p.height for p in self.columns[0])
        self.size = (
            _round_up(column_width * len(first), MACRO_BLOCK),
            _round_up(self.title_height + column_height, MACRO_BLOCK),
        )
        self.base = Image.new("RGB", self.size, BACKGROUND)
        draw = ImageDraw.Draw(self.base)
        draw.rectangle([0, 0, self.size[0], self.title_height - 1], fill=TITLE_BACKGROUND)
        centre = (self.size[0] / 2, self.title_height / 2)
        _text(draw, centre, title, 15, INK, "mm", max_width=self.size[0] - 20)
        for i, panels in enumerate(self.columns):
            x, y = i * column_width, self.title_height
            if i:
                draw.line([(x, y), (x, self.size[1])], fill=(190, 190, 190), width=2)
            for panel in panels:
                panel.draw_static(draw, x, y)
                y += panel.height

    def compose(self, columns: Sequence[FrameData]) -> np.ndarray:
        """One uint8 ``[height, width, 3]`` frame from one :class:`FrameData` per column."""
        if len(columns) != len(self.columns):
            raise ConfigError(f"expected {len(self.columns)} columns, got {len(columns)}")
        canvas = self.base.copy()
        draw = ImageDraw.Draw(canvas)
        for i, (panels, data) in enumerate(zip(self.columns, columns, strict=True)):
            x, y = i * self.column_width, self.title_height
            for panel in panels:
                panel.draw(canvas, draw, x, y, data)
                y += panel.height
        return np.asarray(canvas)


def compose_frame(
    columns: Sequence[FrameData], title: str = "", column_width: int = COLUMN_WIDTH
) -> np.ndarray:
    """One video frame (uint8 ``[H, W, 3]``) from one :class:`FrameData` per agent."""
    return FrameComposer(columns, title, column_width).compose(columns)


def ui_colours() -> np.ndarray:
    """uint8 ``[K, 3]``: colours a frame may show that the first frame may lack."""
    colours = [BANNER_COLOUR, DONE_COLOUR, NOISE_COLOUR, ATTENDED_COLOUR, *SENSOR_COLOURS]
    colours += [_tint(c, 0.8) for c in (*SENSOR_COLOURS, NOISE_COLOUR)]
    colours += [_tint(c, a) for c in (BANNER_COLOUR, DONE_COLOUR) for a in np.linspace(0, 1, 8)]
    return np.concatenate([np.array(colours, dtype=np.uint8), _diverging_lut()])
