"""Runs that survive hard kills, a second writer and a full disk.

- Workers of the local backend end with their parent, even when it is SIGKILLed.
- One writer per run folder: a second training is refused, naming the holder; a lock left
  by a killed run is taken over.
- A write the storage refuses (a full disk) is one line and exit code 4, and the last
  checkpoint stays intact.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from evolve.cli import EXIT_STORAGE, EXIT_USAGE, main
from evolve.training.run_lock import LOCK_FILE, Holder, hold_run_folder
from sensoryneuron.errors import CheckpointError, RunInUseError, StorageError
from sensoryneuron.files import atomic_write_text, save_npz

HOST = socket.gethostname()
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


@pytest.fixture(scope="module")
def tiny_preset(tiny_es_preset):
    return tiny_es_preset(generations=1, seed=5)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_preset, train_tiny_es) -> Path:
    """A finished one-generation run folder (copy it before changing it)."""
    run = tmp_path_factory.mktemp("reliability") / "run"
    train_tiny_es(tiny_preset, run)
    return run


# -- workers end with their parent ------------------------------------------------------------

PARENT = textwrap.dedent(
    """
    import os
    import time
    from multiprocessing import resource_tracker
    from evolve.backends.local import LocalBackend

    backend = LocalBackend(2)
    futures = [backend._pool.submit(time.sleep, 0.3) for _ in range(2)]  # start both workers
    [f.result() for f in futures]
    pids = list(backend._pool._processes) + [resource_tracker._resource_tracker._pid]
    print(*pids, flush=True)
    time.sleep(120)
    """
)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_workers_and_resource_tracker_end_when_the_parent_is_killed():
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], env=ENV, stdout=subprocess.PIPE, text=True
    )
    try:
        pids = [int(p) for p in parent.stdout.readline().split() if p != "None"]
        assert len(pids) >= 2, "the pool should have started two workers"
        assert all(alive(p) for p in pids)
    finally:
        parent.kill()  # SIGKILL: no chance to shut the pool down
        parent.wait()
    assert wait_until_gone(pids, timeout=10) == [], "children outlived their killed parent"


# -- one writer per run folder -----------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys
    from evolve.training.run_lock import hold_run_folder

    with hold_run_folder(sys.argv[1]):
        print("held", flush=True)
        sys.stdin.read()  # until the test closes stdin (or kills this process)
    """
)


def start_holder(run: Path) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run)],
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def in_use(run: Path, pid: int) -> str:
    return f"{run} is in use by a running training (pid {pid} on host {HOST}); "


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    holder = start_holder(run)
    try:
        with pytest.raises(RunInUseError, match="^" + re.escape(in_use(run, holder.pid))):
            with hold_run_folder(run):
                pass
    finally:
        holder.communicate("")  # ends normally: releases the lock and empties the file
    assert holder.returncode == 0
    assert (run / LOCK_FILE).read_text() == ""
    with hold_run_folder(run) as lock:
        assert lock.stale is None  # released cleanly: nothing to take over
        assert f'"pid": {os.getpid()}' in (run / LOCK_FILE).read_text()


def test_the_lock_is_reentrant_within_one_process(tmp_path):
    with hold_run_folder(tmp_path / "run") as outer, hold_run_folder(tmp_path / "run") as inner:
        assert inner is outer and outer.depth == 2
    with hold_run_folder(tmp_path / "run"):  # released: free again
        pass


def test_resuming_a_missing_folder_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match=re.escape("no such folder")):
        with hold_run_folder(tmp_path / "missing", create=False):
            pass
    assert not (tmp_path / "missing").exists()


def test_a_lock_left_by_a_killed_run_is_taken_over_and_logged(tmp_path, caplog):
    run = tmp_path / "run"
    holder = start_holder(run)
    holder.kill()
    holder.wait()
    assert f'"pid": {holder.pid}' in (run / LOCK_FILE).read_text()  # the file still names it
    caplog.set_level(logging.INFO, logger="evolve")
    with hold_run_folder(run) as lock:
        assert lock.stale == Holder(holder.pid, HOST)
        lock.report_takeover()
        lock.report_takeover()  # said once
    assert caplog.messages == [
        f"{run}: taking over the lock of pid {holder.pid} on host {HOST}, which is no longer "
        "running (killed?)"
    ]


def test_a_run_killed_before_its_first_checkpoint_resumes_afresh(
    tmp_path, trained_run, tiny_preset, train_tiny_es, caplog
):
    """What SIGKILL leaves before the first checkpoint: config.json and train.log only. A
    resume starts the run afresh and ends where an uninterrupted run ends."""
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "train.log"):
        shutil.copy(trained_run / name, run / name)
    with caplog.at_level(logging.INFO, logger="evolve"):
        train_tiny_es(tiny_preset, run, resume=True)
    assert "stopped before its first checkpoint; it starts afresh" in caplog.text
    resumed = np.load(run / "latest.npz")
    whole = np.load(trained_run / "latest.npz")
    assert resumed.files == whole.files
    for name in whole.files:
        np.testing.assert_array_equal(resumed[name], whole[name])


def test_cli_refuses_to_train_into_a_folder_in_use(tmp_path, trained_run, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    state = (run / "state.npz").read_bytes()
    holder = start_holder(run)
    try:
        resumed = main(["train", "--resume", str(run), "--generations", "2", "--no-progress"])
        err_resume = capsys.readouterr().err
        fresh = main(["train", "--out", str(run), "--workers", "1", "--no-progress"])
        err_fresh = capsys.readouterr().err
    finally:
        holder.communicate("")
    assert (resumed, fresh) == (EXIT_USAGE, EXIT_USAGE)
    for err in (err_resume, err_fresh):
        assert err.startswith(f"evolve: error: {in_use(run, holder.pid)}")
        assert err.count("\n") == 1 and "Traceback" not in err
    assert (run / "state.npz").read_bytes() == state


def test_eval_reads_a_folder_in_use(tmp_path, trained_run, capsys):
    holder = start_holder(trained_run)
    try:
        code = main(
            ["eval", str(trained_run), "--episodes", "1", "--condition", "shuffled",
             "--workers", "1"]
        )  # fmt: skip
    finally:
        holder.communicate("")
    assert code == 0, capsys.readouterr().err
    assert "shuffled" in capsys.readouterr().out


# -- storage errors are reported, not thrown ---------------------------------------------------


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_is_one_line_and_exit_4_and_the_checkpoint_stays(
    tmp_path, trained_run, monkeypatch, capsys
):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    names = ("best.npz", "latest.npz", "state.npz", "log.csv")
    before = {name: (run / name).read_bytes() for name in names}
    monkeypatch.setattr(np.lib.format, "write_array", no_space)  # inside save_npz's write
    code = main(
        ["train", "--resume", str(run), "--generations", "2", "--checkpoint-every", "1",
         "--final-episodes", "0", "--no-progress"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == EXIT_STORAGE == 4
    last = err.splitlines()[-1]
    # the first write of the generation: best.npz where its held-out test improved, else latest
    assert re.fullmatch(
        re.escape(f"evolve: error: could not write {run}/")
        + r"(best|latest)\.npz: no space left on the "
        + r"device \(the write needed about [0-9.]+ KB, [0-9.]+ [KMG]?B free there\); "
        + r"the previous \1\.npz is unchanged",
        last,
    ), last
    assert "Traceback" not in err
    assert {name: (run / name).read_bytes() for name in before} == before
    assert not list(run.glob(".*.tmp")), "a temp file was left behind"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.EROFS, "the file system is read-only"),
        (errno.EACCES, "permission denied"),
        (errno.ENOENT, "the folder no longer exists"),
        (errno.EDQUOT, "the disk quota is exceeded"),
    ],
)
def test_each_storage_failure_names_the_file_and_why(tmp_path, monkeypatch, code, reason):
    path = tmp_path / "state.npz"
    save_npz(path, {"x": np.zeros(3)}, {"v": 1})
    before = path.read_bytes()

    def refuse(*args):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(StorageError, match="^" + re.escape(f"could not write {path}: {reason}")):
        save_npz(path, {"x": np.ones(3)}, {"v": 2})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.npz"]


def test_a_read_only_folder_refuses_a_text_write(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(StorageError, match=re.escape("permission denied")) as info:
            atomic_write_text(folder / "log.csv", "a,b\n")
    finally:
        folder.chmod(0o700)
    assert info.value.errno == errno.EACCES and info.value.path == str(folder / "log.csv")


def test_a_full_disk_stops_train_log_with_one_warning(tmp_path, caplog):
    from evolve.logs import attach_file, get_logger

    handler = attach_file(tmp_path)
    log = get_logger()
    caplog.set_level(logging.INFO, logger="evolve")
    try:
        log.info("before")
        handler.stream.write = no_space  # the next line finds the disk full
        log.info("lost")
        log.info("after")
    finally:
        log.removeHandler(handler)
        handler.stream = None  # its write is broken; just drop it
    assert "before" in (tmp_path / "train.log").read_text()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "could not write" in warnings[0]
    assert "no space left on the device" in warnings[0]
