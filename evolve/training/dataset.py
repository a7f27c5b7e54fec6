"""Distillation's labelled episodes: a batch in memory, and the growing set on disk.

A :class:`Dataset` holds episodes time-major, as the replay of :mod:`evolve.training.distill`
reads them. An :class:`EpisodeStore` keeps every episode collected so far on disk, one chunk
per distillation iteration, and never rewrites a chunk once the saved state covers it: the
bytes written per iteration are one iteration's episodes, however long the run.

On disk, chunk ``k`` of the store's folder is one uncompressed ``.npy`` file per array,
``{k:05d}.{array}.npy`` (see :data:`ARRAYS`), episode-major (``[E, T, ...]``) so that one
episode is one contiguous block. Each file is written atomically (a temp file, then a
rename) without pickle, and read memory-mapped: gathering a batch reads only its episodes.

The store covers the chunks its ``sizes`` name (what the saved distillation state records).
A chunk written after the last saved state (a run killed between the two writes) is not
read; :meth:`EpisodeStore.discard_uncovered` removes it, and a resumed run writes it again.

>>> import tempfile
>>> import numpy as np
>>> store = EpisodeStore(tempfile.mkdtemp())
>>> t, e = 3, 2
>>> store.append(
...     Dataset(
...         obs=np.arange(t * e * 5, dtype=np.float32).reshape(t, e, 5),
...         labels=np.zeros((t, e, 1), np.float32),
...         mask=np.ones((t, e), bool),
...         sources=np.tile(np.arange(5, dtype=np.int16), (t, e, 1)),
...         executed=np.zeros((t, e, 1), np.float32),
...     )
... )
>>> store.episodes, store.gather(np.array([1, 1])).obs.shape
(2, (3, 2, 5))
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from sensoryneuron.errors import CheckpointError, ConfigError
from sensoryneuron.files import atomic_write

ARRAYS = ("obs", "labels", "executed", "mask", "sources")
"""The arrays of a chunk, each one ``.npy`` file."""
OPTIONAL_FREE = ARRAYS[:-1]
"""The arrays of a chunk without ``sources`` (image episodes: ``obs`` holds uint8 frames)."""


@dataclass
class Dataset:
    """Labelled episodes, time-major: ``obs[T, E, ...]``, ``labels[T, E, A]``, ``mask[T, E]``.

    Attributes:
        obs: what the student read (perturbed), float32.
        labels: the teacher's outputs on the true observation, float32.
        mask: False after an episode has ended (its rows there are padding).
        sources: int16 ``[T, E, N]``, the raw sensor each slot carried (``obs_dim``: a noise
            channel; see ``BatchPerturbation.sources``), or None where it was not recorded.
        executed: float32 ``[T, E, A]``, the action the environment executed at each step, as
            the policy reads it back as its previous action (``ActionMap.feedback``): the
            teacher's in teacher-driven episodes, the student's own otherwise. None: not
            recorded (data made by hand); a replay then feeds back the student's outputs.
    """

    obs: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    sources: np.ndarray | None = None
    executed: np.ndarray | None = None

    @property
    def episodes(self) -> int:
        return self.obs.shape[1]

    @property
    def steps(self) -> int:
        return self.obs.shape[0]

    def extend(self, other: Dataset) -> Dataset:
        """Both datasets' episodes, ``self``'s first (optional arrays only where both have them)."""

        def both(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
            return None if a is None or b is None else np.concatenate([a, b], axis=1)

        return Dataset(
            np.concatenate([self.obs, other.obs], axis=1),
            np.concatenate([self.labels, other.labels], axis=1),
            np.concatenate([self.mask, other.mask], axis=1),
            both(self.sources, other.sources),
            both(self.executed, other.executed),
        )

    def select(self, index: np.ndarray) -> Dataset:
        """The episodes ``index`` (in that order, repeats allowed)."""
        return Dataset(
            self.obs[:, index],
            self.labels[:, index],
            self.mask[:, index],
            None if self.sources is None else self.sources[:, index],
            None if self.executed is None else self.executed[:, index],
        )


class EpisodeStore:
    """Every labelled episode of a distillation, on disk, one chunk per iteration.

    Args:
        folder: where the chunks lie (created on the first :meth:`append`).
        sizes: the episode count of each chunk the store covers, in order (from the saved
            state; empty for a new store).
    """

    def __init__(self, folder: str | os.PathLike, sizes: Sequence[int] = ()) -> None:
        self.folder = Path(folder)
        self.sizes = [int(s) for s in sizes]

    @property
    def chunks(self) -> int:
        """How many chunks the store covers."""
        return len(self.sizes)

    @property
    def episodes(self) -> int:
        """How many episodes the store covers."""
        return sum(self.sizes)

    @property
    def steps(self) -> int:
        """The steps each stored episode holds (live or padding); 0 while the store is empty."""
        return int(self._open(0, "mask").shape[1]) if self.sizes else 0

    def path(self, chunk: int, array: str) -> Path:
        """The file of ``array`` in chunk ``chunk``."""
        return self.folder / f"{chunk:05d}.{array}.npy"

    def append(self, data: Dataset) -> None:
        """Write ``data``'s episodes as the next chunk; the store then covers it.

        Raises:
            ConfigError: ``data`` lacks ``sources`` or ``executed``, or its steps differ from
                the chunks' before it.
        """
        if data.executed is None:
            raise ConfigError("a stored chunk needs the executed actions")
        names = ARRAYS if data.sources is not None else OPTIONAL_FREE
        self._check_next(data.steps, names)
        chunk = self.chunks
        for name in names:
            episode_major = np.ascontiguousarray(np.swapaxes(getattr(data, name), 0, 1))
            atomic_write(self.path(chunk, name), _npy_writer(episode_major))
        self.sizes.append(data.episodes)

    def take_chunk(self, source: EpisodeStore, chunk: int) -> None:
        """Make ``source``'s chunk ``chunk`` this store's next chunk: its files hard-linked
        (copied where the two folders cannot share a file), each under its final name only
        once whole. Chunks are written once and never changed, so the two stores can share
        them.

        Raises:
            ConfigError: the chunk's steps or arrays differ from the chunks' before it.
            CheckpointError: ``source`` does not cover the chunk, or a file of it is missing.
            StorageError: the storage refused a write.
        """
        if not 0 <= chunk < source.chunks:
            raise CheckpointError(
                f"{source.folder} holds {source.chunks} chunks, not chunk {chunk}"
            )
        names = source._names()
        self._check_next(int(source._open(chunk, "mask").shape[1]), names)
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.chunks
        for name in names:
            path = source.path(chunk, name)
            if not path.is_file():
                raise CheckpointError(f"{path}: missing; the distillation dataset is incomplete")
            dest = self.path(target, name)
            temp = dest.with_name(f".{dest.name}.tmp")
            temp.unlink(missing_ok=True)
            try:
                os.link(path, temp)
                os.replace(temp, dest)
            except OSError:  # another file system: a copy, written atomically
                temp.unlink(missing_ok=True)
                with path.open("rb") as f:
                    atomic_write(dest, lambda out, f=f: shutil.copyfileobj(f, out))
        self.sizes.append(source.sizes[chunk])

    def _check_next(self, steps: int, names: tuple[str, ...]) -> None:
        """ConfigError unless a chunk of ``steps`` steps holding ``names`` can follow the
        chunks the store covers."""
        if not self.sizes:
            return
        if steps != self.steps:
            raise ConfigError(
                f"a stored chunk must have the {self.steps} steps of the chunks before it; "
                f"got {steps}"
            )
        if names != self._names():
            raise ConfigError("a stored chunk must hold the same arrays as those before it")

    def width(self, chunk: int) -> int:
        """The number of input slots in chunk ``chunk``'s episodes (its ``obs`` file's third
        axis; image chunks: the frames' height)."""
        return int(self._open(chunk, "obs").shape[2])

    def pools(self) -> list[np.ndarray]:
        """The store's episodes (global indices) grouped by their number of input slots, in
        the order each width first appears: a batch must take episodes of one width."""
        starts = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        by_width: dict[int, list[np.ndarray]] = {}
        for chunk in range(self.chunks):
            span = np.arange(starts[chunk], starts[chunk + 1])
            by_width.setdefault(self.width(chunk), []).append(span)
        return [np.concatenate(spans) for spans in by_width.values()]

    def gather(self, index: np.ndarray, rows: np.ndarray | None = None) -> Dataset:
        """The episodes ``index`` (global, in the order of the chunks), time-major.

        Only the chosen episodes are read: each chunk is memory-mapped, and an episode is one
        contiguous block of its files. With ``rows`` (int ``[len(index), R]``, each episode's
        steps to read; negative ones read as step 0) only those steps are read, and the
        result holds ``R`` steps: row ``r`` of episode ``j`` is its step ``rows[j, r]``.
        """
        index = np.asarray(index, dtype=np.int64)
        if not self.sizes:
            raise ConfigError("the store holds no episodes")
        if index.size and (index.min() < 0 or index.max() >= self.episodes):
            raise ConfigError(
                f"episode index out of range: the store holds {self.episodes} episodes"
            )
        steps = None if rows is None else np.clip(np.asarray(rows, dtype=np.int64), 0, None)
        if steps is not None and (steps.shape[0] != index.size or steps.ndim != 2):
            raise ConfigError(
                f"rows must hold one row of steps per episode: {index.size} episodes, "
                f"rows of shape {steps.shape}"
            )
        starts = np.concatenate([[0], np.cumsum(self.sizes)])
        chunk_of = np.searchsorted(starts, index, side="right") - 1
        # one read per run of episodes from the same chunk, keeping the order of ``index``
        runs = np.split(np.arange(index.size), np.flatnonzero(np.diff(chunk_of)) + 1)
        arrays = {}
        for name in self._names():
            parts = []
            for run in runs:
                if not run.size:
                    continue
                chunk = int(chunk_of[run[0]])
                episodes = index[run] - starts[chunk]
                mapped = self._open(chunk, name)
                if steps is None:
                    parts.append(mapped[episodes])
                else:
                    parts.append(mapped[episodes[:, None], steps[run]])
            arrays[name] = np.ascontiguousarray(
                np.swapaxes(np.concatenate(parts or [self._open(0, name)[:0]]), 0, 1)
            )
        return Dataset(**arrays)

    def lengths(self, index: np.ndarray) -> np.ndarray:
        """The live steps ``[len(index)]`` of episodes ``index`` (reads their masks only)."""
        index = np.asarray(index, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(self.sizes)])
        chunk_of = np.searchsorted(starts, index, side="right") - 1
        return np.array(
            [
                int(self._open(int(c), "mask")[i - starts[c]].sum())
                for i, c in zip(index, chunk_of, strict=True)
            ],
            dtype=np.int64,
        )

    def read(self) -> Dataset:
        """Every episode the store covers, time-major (loads them all into memory)."""
        return self.gather(np.arange(self.episodes))

    def check(self) -> None:
        """Check that every covered chunk is on disk with the sizes the store expects.

        Raises:
            CheckpointError: a chunk file is missing, unreadable or of the wrong shape.
        """
        steps = None
        for chunk, size in enumerate(self.sizes):
            for name in self._names():
                shape = self._open(chunk, name).shape
                if shape[0] != size or (steps is not None and shape[1] != steps):
                    raise CheckpointError(
                        f"{self.path(chunk, name)}: expected {size} episodes of "
                        f"{steps if steps is not None else shape[1]} steps; got shape {shape}"
                    )
                steps = shape[1]

    def discard_uncovered(self) -> list[Path]:
        """Remove the chunk files the store does not cover (written after the saved state).

        Returns the paths removed; leftover temp files of an interrupted write go too.
        """
        removed = []
        if not self.folder.is_dir():
            return removed
        for path in sorted(self.folder.iterdir()):
            head = path.name.split(".", 1)[0]
            stale_temp = path.name.startswith(".") and path.name.endswith(".tmp")
            if stale_temp or (head.isdigit() and int(head) >= self.chunks):
                path.unlink()
                removed.append(path)
        return removed

    def _names(self) -> tuple[str, ...]:
        """The arrays the chunks hold: all of :data:`ARRAYS`, or all but ``sources`` (image
        episodes, recorded as frames)."""
        return ARRAYS if self.path(0, "sources").exists() else OPTIONAL_FREE

    def _open(self, chunk: int, name: str) -> np.ndarray:
        path = self.path(chunk, name)
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise CheckpointError(
                f"{path}: missing; the distillation dataset is incomplete"
            ) from None
        except (ValueError, OSError) as exc:
            raise CheckpointError(f"{path}: not a readable .npy file ({exc})") from None


def _npy_writer(array: np.ndarray) -> Callable[[IO[bytes]], None]:
    def write(f: IO[bytes]) -> None:
        np.lib.format.write_array(f, array, allow_pickle=False)

    return write
