"""Safe file I/O: atomic writes and pickle-free ``.npz`` reads.

A write that the storage refuses (a full disk, a read-only or vanished folder) raises
:class:`~sensoryneuron.errors.StorageError`, naming the file and, where known, the bytes
it needed; the file it would have replaced is left as it was.
"""

from __future__ import annotations

import contextlib
import errno as errnos
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from sensoryneuron.errors import CheckpointError, StorageError

META_KEY = "meta"
NPZ_MEMBER_OVERHEAD = 256  # bytes per ``.npz`` member beyond its data: .npy and zip headers

_REASONS = {
    errnos.ENOSPC: "no space left on the device",
    errnos.EDQUOT: "the disk quota is exceeded",
    errnos.EROFS: "the file system is read-only",
    errnos.EACCES: "permission denied",
    errnos.EPERM: "permission denied",
    errnos.ENOENT: "the folder no longer exists",
}


def format_bytes(n: int) -> str:
    """``n`` bytes for a person: ``512 B``, ``3.4 KB``, ``1.2 MB``, ``2.0 GB`` (powers of 1000)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged writer may still use where ``path`` lives (None: unknown)."""
    for folder in (path, *path.parents):
        try:
            stats = os.statvfs(folder)
        except OSError:
            continue
        return stats.f_bavail * stats.f_frsize
    return None


def storage_error(
    exc: OSError,
    path: str | os.PathLike,
    needed: int | None = None,
    action: str = "write",
    kept: bool = False,
) -> StorageError:
    """The :class:`StorageError` for ``exc``, raised by the storage while writing ``path``.

    Its message is one line: what failed, where, why, (for a full disk) how much the write
    needed and how much is free, where known, and with ``kept`` that the earlier file is
    unchanged.
    """
    path = Path(path)
    reason = _REASONS.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()
    message = f"could not {action} {path}: {reason}"
    if exc.errno in (errnos.ENOSPC, errnos.EDQUOT):
        facts = []
        if needed is not None:
            facts.append(f"the write needed about {format_bytes(needed)}")
        free = _free_bytes(path.parent)
        if free is not None:
            facts.append(f"{format_bytes(free)} free there")
        if facts:
            message += f" ({', '.join(facts)})"
    if kept:
        message += f"; the previous {path.name} is unchanged"
    return StorageError(message, str(path), exc.errno, needed)


def default_file_mode() -> int:
    """The mode a plain ``open()`` would give a new file (0666 less the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(
    path: str | os.PathLike, write: Callable[[IO[bytes]], None], size: int | None = None
) -> None:
    """Write a file through ``write(fileobj)`` to a temp file, fsync, then rename over ``path``.

    A reader sees either the old file or the complete new one, never a partial write.

    Args:
        path: the file to write.
        write: writes the contents to the file object it is given.
        size: about how many bytes the file will take, where known (for the message of a
            full disk).

    Raises:
        StorageError: the storage refused the write (any ``OSError`` from creating, writing,
            syncing or renaming the file); ``path`` is left as it was.
    """
    path = Path(path)

    def refused(exc: OSError) -> StorageError:
        try:
            kept = path.is_file()
        except OSError:
            kept = False
        return storage_error(exc, path, size, kept=kept)

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise refused(exc) from exc
    try:
        os.fchmod(fd, default_file_mode())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise refused(exc) from exc
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
    data = text.encode("utf-8")
    atomic_write(path, lambda f: f.write(data), size=len(data))


def append_json_line(
    path: str | os.PathLike, row: dict[str, Any], default: Callable | None = None
) -> None:
    """Append ``row`` to the JSON-lines file ``path`` as one line, making its folders.

    ``default``: what serialises the values JSON cannot (as ``json.dumps`` takes it); the
    row is serialised before the file is opened, so a row that cannot be leaves it as it was.
    """
    line = json.dumps(row, default=default) + "\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(line)


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

    size = sum(v.nbytes + NPZ_MEMBER_OVERHEAD for v in payload.values())
    atomic_write(path, write, size=size)


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
