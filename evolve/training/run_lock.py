"""One writer per run folder: a training holds ``RUN/.lock`` for as long as it runs.

The lock is an ``fcntl.flock`` on ``RUN/.lock``, which names its holder (PID and host). A
second training of the same folder (``--resume RUN`` or a new run with ``--out RUN``) is
refused with :class:`~sensoryneuron.errors.RunInUseError`, naming the holder. The kernel
drops the lock when its holder dies, however it dies (SIGKILL, a crash): a ``.lock`` left by
a killed run still names that run, and the next training takes it over and logs so. A run
that ends normally empties the file. Readers (``evolve eval``, ``evolve record``) never
take the lock.

Within one process the lock is re-entrant: the CLI holds it while it updates a resumed
run's settings, and :func:`evolve.training.loop.train` holds it again for the run itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from evolve.logs import get_logger
from sensoryneuron.errors import CheckpointError, RunInUseError
from sensoryneuron.files import storage_error

LOCK_FILE = ".lock"

log = get_logger()


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a run folder's lock."""

    pid: int | None
    host: str | None

    def describe(self) -> str:
        return f"pid {self.pid or 'unknown'} on host {self.host or 'unknown'}"

    @classmethod
    def read(cls, fd: int) -> Holder | None:
        """The holder a lock file names (None: the file is empty, so nobody held it)."""
        raw = os.pread(fd, 4096, 0)
        if not raw.strip():
            return None
        try:
            data = json.loads(raw)
            return cls(int(data["pid"]), str(data["host"]))
        except (ValueError, KeyError, TypeError):
            return cls(None, None)


@dataclass
class RunLock:
    """The lock this process holds on one run folder.

    Attributes:
        run_dir: the run folder.
        fd: the open, locked ``.lock`` file.
        depth: how many nested :func:`hold_run_folder` blocks hold it.
        stale: the holder of a lock left by a run that died, until :meth:`report_takeover`
            logs it.
    """

    run_dir: Path
    fd: int
    depth: int = 1
    stale: Holder | None = None

    def report_takeover(self) -> None:
        """Log, once, that the lock was left by a run that is no longer running."""
        if self.stale is not None:
            log.info(
                "%s: taking over the lock of %s, which is no longer running (killed?)",
                self.run_dir,
                self.stale.describe(),
            )
            self.stale = None


_HELD: dict[Path, RunLock] = {}  # the run folders this process holds, by resolved path


def _acquire(run_dir: Path, create: bool) -> RunLock:
    if not run_dir.is_dir():
        if not create:
            raise CheckpointError(f"{run_dir} is not a run folder: no such folder")
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, run_dir, action="create the run folder") from exc
    path = run_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by workers
    except OSError as exc:
        raise storage_error(exc, path, action="create the lock file") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = Holder.read(fd) or Holder(None, None)
        os.close(fd)
        raise RunInUseError(
            f"{run_dir} is in use by a running training ({holder.describe()}); stop it first, "
            "or train into another folder (evolve eval and evolve record may read it meanwhile)"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        stale = Holder.read(fd)
        me = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, me.encode(), 0)
    except OSError as exc:
        os.close(fd)
        raise storage_error(exc, path, action="write the lock file") from exc
    return RunLock(run_dir, fd, stale=stale)


@contextmanager
def hold_run_folder(run_dir: str | os.PathLike, create: bool = True) -> Iterator[RunLock]:
    """Hold ``run_dir``'s lock for the block (re-entrant within this process).

    Args:
        run_dir: the run folder.
        create: make the folder if it does not exist (else a missing folder is an error).

    Raises:
        RunInUseError: another process holds the lock; the message names its PID and host.
        StorageError: the folder or its lock file cannot be created.
        CheckpointError: the folder does not exist and ``create`` is False.
    """
    run_dir = Path(run_dir)
    key = run_dir.resolve()
    lock = _HELD.get(key)
    if lock is not None:
        lock.depth += 1
        try:
            yield lock
        finally:
            lock.depth -= 1
        return
    lock = _acquire(run_dir, create)
    _HELD[key] = lock
    try:
        yield lock
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):  # ended normally: nobody holds it now
            os.ftruncate(lock.fd, 0)
        os.close(lock.fd)  # releases the flock
