"""Fault injection: does a run killed at a random point resume to the same result?

For each recipe family a short uninterrupted reference run is trained first. Then each
trial starts the same run, hits it with one fault at a random point, resumes it with
``evolve train --resume RUN`` until it finishes, and compares the run folder with the
reference's, bit for bit.

Faults:

- ``sigkill``: SIGKILL, no chance to save;
- ``sigterm``: SIGTERM, the trainer saves and exits 143;
- ``enospc``: a full disk: the K-th atomic file write of the run (K drawn from the number
  of writes of the reference run) raises ``OSError(ENOSPC)`` from inside its write, so the
  trainer exits 4 and its temp file must be cleaned up.

Signals land once the run's train.log has reached a random line (drawn from the
reference's line count), after a random jitter of up to 0.3 s.

Per trial it records:

- whether the resumed run equals the reference exactly: every ``.npz`` array, ``.npy``,
  ``.csv``, ``.json`` and other file of the reference folder, except the timing columns and
  keys (``*_per_s``, ``wall_time*``) and ``train.log`` (timestamps), ``.lock``;
- orphans: processes of the run (every descendant seen while it ran, or one whose command
  line names the run folder) still alive 3 s after the faulted process ended (they are
  then killed);
- bytes lost: the size of the reference files missing or different after the resume, plus
  ``.*.tmp`` files left behind.

Families: ``es`` (cartpole-swingup-harder-es, PGPE only), ``staged`` (the default
cartpole-swingup-harder recipe: teacher, DAgger, PGPE, with a shrunk distillation),
``dagger-image`` (DAgger of a vision AttentionNeuron on the moving-dot toy task,
``tasks/moving_dot.py``: CarRacing is far too slow for a benchmark of seconds)
and ``ray`` (the es family on ``--backend ray``, one trial).

Usage::

    nice -n 19 python benchmarks/faults.py --trials 2
    nice -n 19 python benchmarks/faults.py --families es ray --seed 1
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import io
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sensoryneuron.files import atomic_write_text, load_npz  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "faults.json"
KINDS = ("sigkill", "sigterm", "enospc")
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SKIPPED_FILES = {".lock", "train.log"}  # a lock and a log with timestamps
ORPHAN_GRACE_S = 3.0

COMMON = ["--checkpoint-every", "1", "--final-episodes", "0", "--no-progress"]
ES = ["--generations", "30", "--popsize", "16", "--repeats", "1", "--test-every", "5"]
ES += ["--test-episodes", "2"]

# Runs inside the trainer's process (python -c LAUNCHER SPEC ARGS...): registers the shrunk
# recipes a family needs, counts the atomic writes (or makes the K-th find a full disk),
# then runs the `evolve` command line.
LAUNCHER = r"""
import atexit, errno, io, json, os, sys

spec = json.loads(sys.argv[1])
sys.path.insert(0, spec["root"])
import sensoryneuron.files as files
from evolve.presets import get_preset, register_preset

if spec.get("setup") == "staged":
    register_preset(get_preset("cartpole-swingup-harder").replace(
        name="faults-staged",
        distill={"episodes": 4, "grad_steps": 3, "batch": 4, "window": 50, "test_every": 1,
                 "test_episodes": 4, "teacher_iterations": 2},
    ))
elif spec.get("setup") == "dot":
    from evolve.presets import DistillConfig, TaskPreset, TrainingConfig
    from sensoryneuron.models import VisionAttentionNeuronModel
    from tasks import moving_dot
    from tasks.perturbations import Perturbations

    moving_dot.register()
    register_preset(TaskPreset(
        name="faults-dot", description="DAgger of a tiny vision AttentionNeuron",
        env_id=moving_dot.DOT_ID, teacher_controller="dot-teacher",
        model=VisionAttentionNeuronModel(act_dim=1, grid=4, msg_dim=8, pos_dim=8, head="pool",
                                         hidden=8, pool_queries=2),
        perturbations=Perturbations(shuffle=True), training=TrainingConfig(generations=0),
        distill=DistillConfig(iterations=6, episodes=8, grad_steps=10, batch=8, window=12,
                              lr=1e-2, teacher_iterations=2, test_every=2, test_episodes=4,
                              clip_grad=1.0),
    ))

writes, fail_at = [0], spec.get("fail_at")


class FullDisk(io.BufferedWriter):
    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class Os:
    # the os module as sensoryneuron.files sees it: fdopen opens each atomic write's file
    def __getattr__(self, name):
        return getattr(os, name)

    def fdopen(self, fd, mode="r", *args, **kwargs):
        writes[0] += 1
        if fail_at is not None and writes[0] == fail_at:
            return FullDisk(io.FileIO(fd, "wb"))
        return os.fdopen(fd, mode, *args, **kwargs)


files.os = Os()
if spec.get("count_file"):
    atexit.register(lambda: open(spec["count_file"], "w").write(str(writes[0])))
from evolve.cli import main

sys.exit(main(sys.argv[2:]))
"""


@dataclass(frozen=True)
class Family:
    name: str
    args: list[str]  # `evolve train` arguments of a new run, less --out and --seed
    setup: str | None = None  # what the launcher registers: None (plain `python -m evolve`)
    max_trials: int | None = None
    needs: str | None = None  # an optional module


FAMILIES = {
    "es": Family("es", ["cartpole-swingup-harder-es", *ES, "--workers", "2"]),
    "staged": Family(
        "staged",
        ["faults-staged", "--teacher-generations", "4", "--distill-iterations", "3"]
        + ["--generations", "6", "--popsize", "8", "--repeats", "1", "--test-every", "2"]
        + ["--test-episodes", "2", "--workers", "2"],
        setup="staged",
    ),
    "dagger-image": Family("dagger-image", ["faults-dot", "--workers", "1"], setup="dot"),
    "ray": Family(
        "ray",
        ["cartpole-swingup-harder-es", *ES, "--backend", "ray", "--workers", "2"],
        max_trials=1,
        needs="ray",
    ),
}


# -- processes ---------------------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[int, str, int] | None:
    """``(ppid, state, start time)`` of a process, None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[0], int(fields[19])


def cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def descendants(root: int) -> set[tuple[int, int]]:
    """``(pid, start time)`` of every live descendant of ``root``."""
    children: dict[int, list[int]] = {}
    starts = {}
    for pid in all_pids():
        stat = proc_stat(pid)
        if stat is not None:
            children.setdefault(stat[0], []).append(pid)
            starts[pid] = stat[2]
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add((child, starts[child]))
            todo.append(child)
    return found


def still_alive(seen: set[tuple[int, int]], run_dir: Path) -> list[int]:
    """Processes of a run that still run (not zombies): seen descendants, same start time,
    or any process whose command line names the run folder."""
    alive = set()
    for pid, start in seen:
        stat = proc_stat(pid)
        if stat is not None and stat[2] == start and stat[1] != "Z":
            alive.add(pid)
    for pid in all_pids():
        if pid != os.getpid() and str(run_dir) in cmdline(pid):
            stat = proc_stat(pid)
            if stat is not None and stat[1] != "Z":
                alive.add(pid)
    return sorted(alive)


def line_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


@dataclass
class Outcome:
    code: int | None
    seconds: float
    seen: set[tuple[int, int]] = field(default_factory=set)
    signalled: bool = False  # the fault signal was sent while the run still ran


def run_trainer(
    family: Family,
    argv: list[str],
    run_dir: Path,
    *,
    fail_at: int | None = None,
    count_file: Path | None = None,
    signal_at: tuple[int, float, int] | None = None,
    timeout: float = 900.0,
) -> Outcome:
    """Run `evolve ARGV`; with ``signal_at=(lines, jitter, signum)`` send ``signum`` once
    train.log has ``lines`` lines, ``jitter`` seconds later."""
    if family.setup is None and fail_at is None and count_file is None:
        cmd = [sys.executable, "-m", "evolve", *argv]
    else:
        spec = {"root": str(ROOT), "setup": family.setup, "fail_at": fail_at}
        spec["count_file"] = str(count_file) if count_file else None
        cmd = [sys.executable, "-c", LAUNCHER, json.dumps(spec), *argv]
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    stderr = tempfile.TemporaryFile()
    proc_err = proc.stderr
    seen: set[tuple[int, int]] = set()
    signalled = False
    # drain stderr in the background so a chatty trainer never blocks
    threading.Thread(target=lambda: shutil.copyfileobj(proc_err, stderr), daemon=True).start()
    armed_at = None
    while proc.poll() is None:
        seen |= descendants(proc.pid)
        if signal_at is not None and not signalled:
            lines, jitter, signum = signal_at
            if armed_at is None and line_count(run_dir / "train.log") >= lines:
                armed_at = time.monotonic()
            if armed_at is not None and time.monotonic() - armed_at >= jitter:
                seen |= descendants(proc.pid)
                proc.send_signal(signum)
                signalled = True
        if time.monotonic() - start > timeout:
            for pid, _ in descendants(proc.pid):  # ours: the trainer's own children
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            proc.kill()
        time.sleep(0.02)
    proc.wait()
    if proc.returncode not in (0, 4, 143, -signal.SIGKILL, -signal.SIGTERM):
        stderr.seek(0)
        tail = stderr.read().decode(errors="replace").strip().splitlines()[-3:]
        print(f"  ! exit {proc.returncode}: {' / '.join(tail)}", file=sys.stderr)
    return Outcome(proc.returncode, time.monotonic() - start, seen, signalled)


# -- comparing run folders ---------------------------------------------------------------------


def timing(name: str) -> bool:
    return name.endswith("_per_s") or name.startswith("wall_time")


def without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if not timing(k)}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def csv_rows(path: Path) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    keep = [i for i, name in enumerate(rows[0]) if not timing(name)] if rows else []
    return [[row[i] for i in keep if i < len(row)] for row in rows]


def log_columns(npz: Path) -> list[int] | None:
    """Columns of a state file's ``log`` array to compare: those of the log.csv beside it
    that are not timings (None: all)."""
    header = npz.parent / "log.csv"
    if not header.is_file():
        return None
    names = header.read_text().split("\n", 1)[0].split(",")
    return [i for i, name in enumerate(names) if not timing(name)]


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def same_file(ref: Path, got: Path) -> bool:
    """Whether ``got`` equals ``ref`` bit for bit, less timings."""
    if ref.suffix == ".npz":
        (ra, rm), (ga, gm) = load_npz(ref), load_npz(got)
        if ra.keys() != ga.keys() or without_timing(rm) != without_timing(gm):
            return False
        columns = log_columns(ref)
        for key, a in ra.items():
            b = ga[key]
            if key == "log" and columns is not None and a.ndim == 2 and b.ndim == 2:
                if a.shape[1] != b.shape[1]:
                    return False
                a, b = a[:, columns], b[:, columns]
            if not same_array(a, b):
                return False
        return True
    if ref.suffix == ".csv":
        return csv_rows(ref) == csv_rows(got)
    if ref.suffix == ".json":
        return without_timing(json.loads(ref.read_text())) == without_timing(
            json.loads(got.read_text())
        )
    return ref.read_bytes() == got.read_bytes()


def compare(ref_dir: Path, run_dir: Path) -> tuple[list[str], int]:
    """Reference files missing or different in ``run_dir`` (or temp files left there), and
    the bytes they hold."""
    bad, lost = [], 0
    for ref in sorted(ref_dir.rglob("*")):
        if not ref.is_file() or ref.name in SKIPPED_FILES or ref.name.endswith(".tmp"):
            continue
        rel = ref.relative_to(ref_dir)
        got = run_dir / rel
        try:
            equal = got.is_file() and same_file(ref, got)
        except Exception:  # an unreadable file is a lost one
            equal = False
        if not equal:
            bad.append(str(rel) if got.is_file() else f"{rel} (missing)")
            lost += ref.stat().st_size
    for tmp in sorted(run_dir.rglob(".*.tmp")):
        bad.append(f"{tmp.relative_to(run_dir)} (temp file left)")
        lost += tmp.stat().st_size
    return bad, lost


# -- trials ------------------------------------------------------------------------------------


@dataclass
class Reference:
    run_dir: Path
    seconds: float
    lines: int
    writes: int


def reference_run(family: Family, work: Path, seed: int) -> Reference:
    run_dir = work / f"{family.name}-reference"
    count_file = work / f"{family.name}-writes.txt"
    argv = ["train", *family.args, *COMMON, "--seed", str(seed), "--out", str(run_dir)]
    outcome = run_trainer(family, argv, run_dir, count_file=count_file)
    if outcome.code != 0:
        raise RuntimeError(f"{family.name}: the reference run exited {outcome.code}")
    writes = int(count_file.read_text())
    return Reference(run_dir, outcome.seconds, line_count(run_dir / "train.log"), writes)


def trial(
    family: Family, ref: Reference, work: Path, seed: int, kind: str, rng: random.Random, index: int
) -> dict:
    """One faulted run of ``family``, resumed to its end and compared with ``ref``."""
    run_dir = work / f"{family.name}-trial{index}-{kind}"
    argv = ["train", *family.args, *COMMON, "--seed", str(seed), "--out", str(run_dir)]
    row: dict[str, Any] = {"fault": kind}
    if kind == "enospc":
        row["fail_at_write"] = rng.randint(1, ref.writes)
        faulted = run_trainer(family, argv, run_dir, fail_at=row["fail_at_write"])
        row["hit"] = faulted.code == 4
    else:
        signum = signal.SIGKILL if kind == "sigkill" else signal.SIGTERM
        row["at_log_line"] = rng.randint(2, max(2, ref.lines - 1))
        row["jitter_s"] = round(rng.uniform(0.0, 0.3), 3)
        faulted = run_trainer(
            family, argv, run_dir, signal_at=(row["at_log_line"], row["jitter_s"], signum)
        )
        row["hit"] = faulted.signalled
    row["fault_exit"] = faulted.code
    time.sleep(ORPHAN_GRACE_S)
    orphans = still_alive(faulted.seen, run_dir)
    row["orphans"] = len(orphans)
    row["orphan_cmdlines"] = [cmdline(p)[:120] for p in orphans]
    for pid in orphans:  # ours: the trainer's descendants, or processes of our run folder
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    resumes = []
    code = faulted.code
    while code != 0 and len(resumes) < 4:
        outcome = run_trainer(family, ["train", "--resume", str(run_dir), "--no-progress"], run_dir)
        code = outcome.code
        resumes.append(code)
        if code == 2:  # refused (e.g. killed before its first checkpoint): retrying won't help
            break
    row["resume_exits"] = resumes
    row["completed"] = code == 0
    bad, lost = compare(ref.run_dir, run_dir)
    row["exact"] = row["completed"] and not bad
    row["differs"] = bad
    row["bytes_lost"] = lost
    return row


def available(family: Family) -> str | None:
    """Why ``family`` cannot run here, or None."""
    if family.needs and importlib.util.find_spec(family.needs) is None:
        return f"{family.needs} is not installed"
    return None


def summarise(name: str, rows: list[dict]) -> dict:
    hit = [r for r in rows if r["hit"]]
    return {
        "family": name,
        "trials": len(rows),
        "faults": {k: sum(r["fault"] == k for r in hit) for k in KINDS},
        "missed": len(rows) - len(hit),
        "exact": sum(r["exact"] for r in rows),
        "orphans": sum(r["orphans"] for r in rows),
        "bytes_lost": sum(r["bytes_lost"] for r in rows),
    }


def table(summaries: list[dict]) -> str:
    head = f"{'family':<14}{'trials':>7}  {'faults (kill/term/disk, missed)':<32}"
    head += f"{'resumed exactly':>16}{'orphans left':>13}{'bytes lost':>11}"
    lines = [head, "-" * len(head)]
    for s in summaries:
        if "skipped" in s:
            lines.append(f"{s['family']:<14}{'-':>7}  skipped: {s['skipped']}")
            continue
        f = s["faults"]
        faults = f"{f['sigkill']}/{f['sigterm']}/{f['enospc']}, {s['missed']} missed"
        exact = f"{s['exact']}/{s['trials']}"
        lines.append(
            f"{s['family']:<14}{s['trials']:>7}  {faults:<32}{exact:>16}{s['orphans']:>13}"
            f"{s['bytes_lost']:>11}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3, help="faulted runs per family")
    parser.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    parser.add_argument("--seed", type=int, default=0, help="seeds the fault points and runs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the JSON results file")
    parser.add_argument("--keep", action="store_true", help="keep the run folders")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="faults-"))
    summaries, details = [], {}
    started = time.monotonic()
    try:
        for index, name in enumerate(args.families):
            family = FAMILIES[name]
            why = available(family)
            if why:
                summaries.append({"family": name, "skipped": why})
                continue
            ref = reference_run(family, work, args.seed)
            print(
                f"{name}: reference {ref.seconds:.1f} s, {ref.lines} log lines, "
                f"{ref.writes} writes",
                file=sys.stderr,
            )
            trials = min(args.trials, family.max_trials or args.trials)
            rng = random.Random(f"{args.seed}-{name}")  # the same points whatever else runs
            rows = []
            for t in range(trials):
                kind = KINDS[(index + t) % len(KINDS)]
                row = trial(family, ref, work, args.seed, kind, rng, t)
                print(f"  {kind}: {row}", file=sys.stderr)
                rows.append(row)
            summaries.append(summarise(name, rows))
            details[name] = {
                "reference": {"seconds": ref.seconds, "log_lines": ref.lines, "writes": ref.writes},
                "trials": rows,
            }
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(table(summaries))
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "load_avg": list(os.getloadavg()),
        "trials": args.trials,
        "seed": args.seed,
        "wall_s": time.monotonic() - started,
        "summary": summaries,
        "families": details,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    return 0 if all(s.get("exact", 0) == s.get("trials", 0) for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
