"""The run folder: what a training run leaves on disk, written atomically.

``config.json``   the task preset (the recipe) and run settings, written first.
``state.npz``     everything needed to resume: strategy state, generation, log, best score.
``latest.npz``    the current distribution centre as a policy checkpoint.
``best.npz``      the centre with the best held-out test score so far.
``log.csv``       one row per generation.
``curve.png``     the training curve.
``train.log``     the log lines.
``budget.json``   with a time budget: the stages it cut (see :mod:`evolve.training.budget`).
``init.npz``      a run started from given parameters: its start point, written before
                  ``config.json`` (a resumed run builds its strategy around it again).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evolve.presets import TaskPreset
from evolve.training.budget import StageCut
from sensoryneuron.errors import CheckpointError, ConfigError
from sensoryneuron.files import atomic_write_text, load_npz, save_npz

TIME_BUDGET = "time_budget_minutes"  # the run setting of ``--time-budget``
BUDGET_FILE = "budget.json"
STATE_FORMAT = "sensoryneuron.run-state"
STATE_VERSION = 1
LOG_COLUMNS = (
    "generation",
    "best",
    "mean",
    "worst",
    "std",
    "test_score",
    "member_steps_per_s",
    "wall_time_s",
)


@dataclass
class RunState:
    """Progress of a run beyond the strategy itself.

    Attributes:
        generation: completed generations.
        best_test: best held-out test score so far (-inf before the first test).
        best_generation: the generation that scored it (-1 before).
        wall_time: seconds of training so far, over every session of the run.
        log: rows of :data:`LOG_COLUMNS` (``test_score`` is NaN where no test ran).
    """

    generation: int = 0
    best_test: float = float("-inf")
    best_generation: int = -1
    wall_time: float = 0.0
    log: list[list[float]] = field(default_factory=list)


def write_config(run_dir: Path, preset: TaskPreset, run: dict[str, Any]) -> None:
    text = json.dumps({"task": preset.to_dict(), "run": run}, indent=2) + "\n"
    atomic_write_text(run_dir / "config.json", text)


def update_run_settings(run_dir: Path, **settings: Any) -> None:
    """Change run settings in ``config.json``, keeping the recipe as it was written (a
    setting given as None is removed)."""
    path = run_dir / "config.json"
    data = json.loads(path.read_text())
    merged = {**data.get("run", {}), **settings}
    data["run"] = {key: value for key, value in merged.items() if value is not None}
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def read_config(run_dir: Path) -> tuple[TaskPreset, dict[str, Any]]:
    """The recipe and the run settings (``backend``: a name, ``workers``: a positive int,
    and ``time_budget_minutes``, a positive number, where the run has a time budget)."""
    path = run_dir / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a run folder: it has no config.json")
    try:
        data = json.loads(path.read_text())
        preset, run = TaskPreset.from_dict(data["task"]), dict(data.get("run", {}))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"{path}: not a valid run configuration ({exc})") from None
    workers, backend = run.get("workers", 1), run.get("backend", "")
    if type(workers) is not int or workers < 1 or not isinstance(backend, str):
        raise CheckpointError(
            f"{path}: not a valid run configuration (run settings need a positive integer "
            f"'workers' and a backend name, got {run!r})"
        )
    budget = run.get(TIME_BUDGET, 1.0)
    if type(budget) not in (int, float) or not 0 < budget < math.inf:
        raise CheckpointError(
            f"{path}: not a valid run configuration ({TIME_BUDGET!r} must be a positive number "
            f"of minutes, got {budget!r})"
        )
    return preset, run


def read_budget_cuts(run_dir: Path) -> dict[str, StageCut]:
    """The stages that the time budget cut, by name (none without ``budget.json``)."""
    path = run_dir / BUDGET_FILE
    if not path.is_file():
        return {}
    try:
        rows = json.loads(path.read_text())["cut"]
        return {row["stage"]: StageCut.from_dict(row) for row in rows}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a valid record of a time budget ({exc})") from None


def write_budget_cuts(run_dir: Path, cuts: dict[str, StageCut]) -> None:
    rows = [cut.to_dict() for cut in cuts.values()]
    atomic_write_text(run_dir / BUDGET_FILE, json.dumps({"cut": rows}, indent=1) + "\n")


INIT_FILE = "init.npz"
INIT_FORMAT = "sensoryneuron.run-init"


def write_init(run_dir: Path, params: np.ndarray) -> None:
    """Keep a run's start point (float64, one value per model parameter)."""
    save_npz(run_dir / INIT_FILE, {"params": params}, {"format": INIT_FORMAT, "version": 1})


def read_init(run_dir: Path, num_params: int) -> np.ndarray | None:
    """The run's start point, or None for a run started from zeros (no ``init.npz``)."""
    path = run_dir / INIT_FILE
    if not path.exists():
        return None
    arrays, meta = load_npz(path)
    params = arrays.get("params")
    if (
        meta.get("format") != INIT_FORMAT
        or params is None
        or params.dtype != np.float64
        or params.shape != (num_params,)
        or not np.all(np.isfinite(params))
    ):
        raise CheckpointError(
            f"{path}: not a start point for this model ({num_params} finite float64 values)"
        )
    return params


def save_state(
    run_dir: Path,
    state: RunState,
    strategy_meta: dict[str, Any],
    strategy_arrays: dict[str, np.ndarray],
) -> None:
    arrays = {f"strategy.{k}": v for k, v in strategy_arrays.items()}
    arrays["log"] = np.asarray(state.log, dtype=np.float64).reshape(-1, len(LOG_COLUMNS))
    meta = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "generation": state.generation,
        "best_test": state.best_test if np.isfinite(state.best_test) else None,
        "best_generation": state.best_generation,
        "wall_time": state.wall_time,
        "strategy": strategy_meta,
    }
    save_npz(run_dir / "state.npz", arrays, meta)


def load_state(run_dir: Path) -> tuple[RunState, dict[str, Any], dict[str, np.ndarray]]:
    path = run_dir / "state.npz"
    if not path.is_file():
        raise CheckpointError(f"{run_dir} has no state.npz to resume from")
    arrays, meta = load_npz(path)
    if meta.get("format") != STATE_FORMAT or meta.get("version") != STATE_VERSION:
        raise CheckpointError(f"{path}: not a sensoryneuron run state (version {STATE_VERSION})")
    try:
        log = arrays.pop("log")
        state = RunState(
            generation=int(meta["generation"]),
            best_test=float("-inf") if meta["best_test"] is None else float(meta["best_test"]),
            best_generation=int(meta["best_generation"]),
            wall_time=float(meta["wall_time"]),
            log=log.tolist(),
        )
        strategy_meta = meta["strategy"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: incomplete run state ({exc})") from None
    if log.ndim != 2 or log.shape[1] != len(LOG_COLUMNS) or len(log) != state.generation:
        raise CheckpointError(f"{path}: the log does not match generation {state.generation}")
    prefix = "strategy."
    strategy_arrays = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
    return state, strategy_meta, strategy_arrays


def write_log_csv(
    run_dir: Path, rows: list[list[float]], columns: tuple[str, ...] = LOG_COLUMNS
) -> None:
    """``log.csv``: one row per generation (or iteration); NaN cells are left empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = [int(row[0])] + ["" if np.isnan(v) else f"{v:.6g}" for v in row[1:]]
        writer.writerow(values)
    atomic_write_text(run_dir / "log.csv", buffer.getvalue())


def plot_curve(run_dir: Path, rows: list[list[float]], title: str) -> None:
    """Training curve: population mean and best per generation, held-out tests as points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    log = np.asarray(rows)
    gen, best, mean, test = log[:, 0] + 1, log[:, 1], log[:, 2], log[:, 5]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(gen, mean, label="population mean", color="#4c72b0")
    ax.plot(gen, best, label="population best", color="#4c72b0", alpha=0.35)
    tested = ~np.isnan(test)
    ax.plot(gen[tested], test[tested], "o-", label="held-out test (centre)", color="#dd8452")
    ax.set_xlabel("generation")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    from sensoryneuron.files import atomic_write

    atomic_write(run_dir / "curve.png", lambda f: f.write(buffer.getvalue()))
