"""Video files: validated paths, H.264 mp4 through imageio-ffmpeg, and constant-memory GIFs.

A :class:`VideoFile` writes to a temp file beside the target and renames it into place, so a
failed recording never leaves a half-written video.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from types import TracebackType

import imageio_ffmpeg
import numpy as np
from PIL import GifImagePlugin, Image

from evolve.video.frames import MACRO_BLOCK, ui_colours
from sensoryneuron.errors import ConfigError
from sensoryneuron.files import default_file_mode

VIDEO_FORMATS = (".gif", ".mp4")
MAX_GIF_FPS = 50  # GIF delays are whole centiseconds; viewers slow down delays under 2 cs
MP4_CRF = 20  # H.264 quality: sharp text; about 2 MB per 1,000 frames of 640 x 736


def check_output(path: str | os.PathLike) -> Path:
    """Checks that ``path`` names a video this module can write; creates nothing.

    Raises:
        ConfigError: For an extension other than ``.mp4``/``.gif``, an existing folder, or a
            parent folder that cannot be created or written to.
    """
    path = Path(path)
    if path.suffix.lower() not in VIDEO_FORMATS:
        what = f"unsupported video format {path.suffix!r}" if path.suffix else "no extension"
        raise ConfigError(
            f"{path}: {what}; the format follows the extension, allowed: {', '.join(VIDEO_FORMATS)}"
        )
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give a file name ending in .mp4 or .gif")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{path}: cannot create folder {path.parent}: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"{path}: cannot write in {ancestor} (permission denied)")
    return path


def check_fps(fps: object, path: Path) -> float:
    """Checks the frame rate (a GIF plays at most :data:`MAX_GIF_FPS`)."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps < math.inf:
        raise ConfigError(f"fps must be a positive number, got {fps!r}")
    if path.suffix.lower() == ".gif" and fps > MAX_GIF_FPS:
        raise ConfigError(
            f"a GIF plays at most {MAX_GIF_FPS} frames per second (its delays are whole "
            f"hundredths of a second); got fps={fps:g}: lower the fps or write an .mp4"
        )
    return float(fps)


class _Mp4Encoder:
    """H.264 in an .mp4 through imageio-ffmpeg."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float) -> None:
        self._writer = imageio_ffmpeg.write_frames(
            str(path),
            size,
            fps=fps,
            codec="libx264",
            quality=None,
            pix_fmt_out="yuv420p",
            macro_block_size=MACRO_BLOCK,
            output_params=["-crf", str(MP4_CRF), "-preset", "veryfast", "-movflags", "+faststart"],
        )
        self._writer.send(None)

    def append(self, frame: np.ndarray) -> None:
        self._writer.send(np.ascontiguousarray(frame).tobytes())

    def close(self) -> None:
        self._writer.close()


class _GifEncoder:
    """An endless-loop GIF written frame by frame, in constant memory.

    One palette of 255 colours maps every frame, so a pixel that keeps its colour keeps its
    palette entry (no flicker, no ghosts); it is fitted (median cut) to the first frame plus
    ``extra_colours``. Each later frame stores only the box that changed, with the unchanged
    pixels inside it transparent (index 255), which compresses to almost nothing.
    """

    TRANSPARENT = 255
    SWATCH_PIXELS = 256  # how many pixels each extra colour weighs when fitting the palette

    def __init__(
        self,
        path: Path,
        size: tuple[int, int],
        fps: float,
        extra_colours: np.ndarray | None = None,
    ) -> None:
        self.delay_ms = 10 * max(2, round(100 / fps))  # whole centiseconds
        self.extra_colours = extra_colours
        self._file = open(path, "wb")  # closed in close()
        self._palette: Image.Image | None = None
        self._previous: np.ndarray | None = None

    def _fit_palette(self, frame: np.ndarray) -> Image.Image:
        pixels = [frame.reshape(-1, 3)]
        if self.extra_colours is not None and len(self.extra_colours):
            pixels.append(
                np.repeat(np.asarray(self.extra_colours, np.uint8), self.SWATCH_PIXELS, 0)
            )
        sample = Image.fromarray(np.concatenate(pixels)[None])
        fitted = sample.quantize(255, method=0, dither=0)  # 0 = MEDIANCUT
        palette = fitted.getpalette()[: 3 * 255]
        fitted.putpalette(palette + [0] * (3 * 256 - len(palette)))
        return fitted

    def append(self, frame: np.ndarray) -> None:
        if self._palette is None:
            self._palette = self._fit_palette(frame)
            image = frame_image = Image.fromarray(frame).quantize(palette=self._palette, dither=0)
            header, _ = GifImagePlugin.getheader(frame_image, info={"loop": 0})
            self._file.write(b"".join(header))
            x0 = y0 = 0
            extra: dict[str, int] = {}
        else:
            changed = np.any(frame != self._previous, axis=2)
            rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
            if rows.size:
                x0, y0, x1, y1 = int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
            else:  # an identical frame is still a frame: one transparent pixel
                x0, y0, x1, y1 = 0, 0, 1, 1
            region = Image.fromarray(frame[y0:y1, x0:x1]).quantize(palette=self._palette, dither=0)
            index = np.array(region)
            index[~changed[y0:y1, x0:x1]] = self.TRANSPARENT
            image = Image.fromarray(index)  # "L"; putpalette makes it "P"
            image.putpalette(self._palette.getpalette())
            extra = {"transparency": self.TRANSPARENT}
        chunks = GifImagePlugin.getdata(image, offset=(x0, y0), duration=self.delay_ms, **extra)
        self._file.write(b"".join(chunks))
        self._previous = frame

    def close(self) -> None:
        if self._previous is not None:
            self._file.write(b";")  # the GIF trailer
        self._file.close()


class VideoFile:
    """Writes frames to a temporary file beside ``path``; renames it into place on success.

    A failed or interrupted recording leaves neither ``path`` nor the temporary file.
    """

    def __init__(self, path: str | os.PathLike, fps: float) -> None:
        self.path = check_output(path)
        self.fps = check_fps(fps, self.path)
        self.frames = 0
        self._tmp: Path | None = None
        self._encoder: _Mp4Encoder | _GifEncoder | None = None

    def __enter__(self) -> VideoFile:
        suffix = self.path.suffix.lower()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.path.stem}.", suffix=f".part{suffix}", dir=self.path.parent
            )
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot write there ({exc.strerror})") from None
        os.close(fd)
        os.chmod(tmp, default_file_mode())  # mkstemp makes it private; a video is not
        self._tmp = Path(tmp)
        return self

    def append(self, frame: np.ndarray) -> None:
        """Adds one uint8 ``[H, W, 3]`` frame; every frame must have the first one's size."""
        frame = np.asarray(frame, dtype=np.uint8)
        if self._encoder is None:
            size = (frame.shape[1], frame.shape[0])
            if self.path.suffix.lower() == ".gif":
                self._encoder = _GifEncoder(self._tmp, size, self.fps, ui_colours())
            else:
                self._encoder = _Mp4Encoder(self._tmp, size, self.fps)
            self._shape = frame.shape
        if frame.shape != self._shape:
            raise ConfigError(f"frame {self.frames} has shape {frame.shape}, not {self._shape}")
        self._encoder.append(frame)
        self.frames += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._encoder is not None:
                self._encoder.close()
            if exc_type is None and self.frames:
                os.replace(self._tmp, self.path)
        finally:
            if self._tmp is not None and self._tmp.exists():
                self._tmp.unlink()
