"""The fault benchmark's bookkeeping: which run folders it calls equal, and what it counts
as lost (the faulted runs themselves take minutes: run the script)."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from sensoryneuron.files import load_npz, save_npz

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "faults.py"


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_es_preset, train_tiny_es) -> Path:
    folder = tmp_path_factory.mktemp("faults") / "run"
    train_tiny_es(tiny_es_preset(generations=2, seed=1), folder)
    return folder


def rewrite_state(path: Path, change) -> None:
    arrays, meta = load_npz(path)
    change(arrays, meta)
    save_npz(path, arrays, meta)


def test_timings_are_ignored_and_any_other_change_is_lost(bench, run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    assert bench.compare(run, copy) == ([], 0)

    def other_timings(arrays, meta):
        arrays["log"][:, -2:] += 1.0  # member_steps_per_s, wall_time_s
        meta["wall_time"] += 1.0

    rewrite_state(copy / "state.npz", other_timings)
    (copy / "train.log").write_text("other timestamps\n")
    assert bench.compare(run, copy) == ([], 0)

    def other_centre(arrays, meta):
        arrays["strategy.center"][0] = np.nextafter(arrays["strategy.center"][0], np.inf)

    rewrite_state(copy / "state.npz", other_centre)
    (copy / "best.npz").unlink()
    (copy / ".log.csv.123.tmp").write_bytes(b"12345")
    bad, lost = bench.compare(run, copy)
    assert bad == ["best.npz (missing)", "state.npz", ".log.csv.123.tmp (temp file left)"]
    assert lost == (run / "best.npz").stat().st_size + (run / "state.npz").stat().st_size + 5


def test_a_process_naming_the_run_folder_counts_as_an_orphan(bench, tmp_path):
    import subprocess
    import time

    folder = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", str(folder)])
    try:
        deadline = time.monotonic() + 10  # /proc shows the command line once the exec is done
        while not bench.cmdline(child.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert bench.still_alive(set(), folder) == [child.pid]
    finally:
        child.kill()
        child.wait()
    assert bench.still_alive(set(), folder) == []
