"""Safe file I/O: atomic writes and pickle-free ``.npz`` reads."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from sensoryneuron.errors import CheckpointError

META_KEY = "meta"


def default_file_mode() -> int:
    """The mode a plain ``open()`` would give a new file (0666 less the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Write a file through ``write(fileobj)`` to a temp file, fsync, then rename over ``path``.

    A reader sees either the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, default_file_mode())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Atomically save arrays plus a JSON ``meta`` dict in one uncompressed ``.npz``.

    The metadata is a 0-d unicode array under :data:`META_KEY`. Members are written with
    ``allow_pickle=False``, so an object array is refused rather than pickled.
    """
    if META_KEY in arrays:
        raise ValueError(f"array name {META_KEY!r} is reserved for the metadata")
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    for key, value in payload.items():
        if value.dtype.hasobject:
            raise ValueError(f"array {key!r} has dtype object, which would need pickle")
    payload[META_KEY] = np.array(json.dumps(meta, sort_keys=True, allow_nan=False), dtype=np.str_)

    def write(f: IO[bytes]) -> None:
        # np.savez's layout (a stored zip of .npy members), but never pickling.
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, value in payload.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, value, allow_pickle=False)

    atomic_write(path, write)


def load_npz(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`save_npz` without ever unpickling.

    Raises:
        CheckpointError: the file is missing, not an ``.npz``, holds object arrays, or has no
            valid JSON metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{path}: not a readable .npz file ({exc})") from None
    raw = arrays.pop(META_KEY, None)
    if raw is None:
        raise CheckpointError(f"{path}: no '{META_KEY}' entry; not written by sensoryneuron")
    if raw.ndim != 0 or raw.dtype.kind != "U":
        raise CheckpointError(f"{path}: '{META_KEY}' must be a 0-d unicode array")
    try:
        meta = json.loads(str(raw[()]))
    except ValueError as exc:
        raise CheckpointError(f"{path}: metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: metadata must be a JSON object")
    return arrays, meta
