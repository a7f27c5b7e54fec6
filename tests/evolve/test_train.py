"""Training runs: determinism, resume after a kill, run-folder contents, learning."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import sensoryneuron as sn
from evolve.backends import LocalBackend, population_shard, population_size
from evolve.presets import get_preset
from evolve.rollout import RolloutResult
from evolve.strategies import DivergedError
from evolve.training.loop import train
from evolve.training.run_folder import LOG_COLUMNS, load_state, write_init
from evolve.training.stopping import StopRequest
from sensoryneuron.errors import ConfigError
from tasks.spec import TASKS, get_task


def tiny(name="cartpole-swingup-harder-es", **training):
    settings = {"generations": 3, "repeats": 2, "test_every": 2, "test_episodes": 4, "seed": 7}
    settings.update(training)
    return get_preset(name).replace(strategy={"popsize": 16}, training=settings)


def log_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "log.csv") as f:
        return list(csv.DictReader(f))


class NonFiniteBackend(LocalBackend):
    """Training fitness without rollouts (minus the squared norm of each member); in
    generation ``g`` the members ``nan[g]`` return NaN ("all": every member). Held-out tests
    still run real episodes (``run``)."""

    def __init__(self, nan: dict[int, list[int] | str]) -> None:
        super().__init__(1)
        self.nan, self.generation = nan, 0

    def evaluate(self, job, population):
        params = population_shard(population, 0, population_size(population))
        norm = -np.sum(np.asarray(params, dtype=np.float64) ** 2, axis=1, keepdims=True)
        returns = np.repeat(norm, len(job.seeds), axis=1)
        bad = self.nan.get(self.generation, [])
        returns[slice(None) if bad == "all" else bad] = np.nan
        self.generation += 1
        return RolloutResult(returns=returns, steps=np.ones(returns.shape, dtype=np.int64))


def test_members_with_a_nan_fitness_rank_last_and_the_run_goes_on(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="evolve")  # train.log gets the info lines
    run = tmp_path / "run"
    backend = NonFiniteBackend({0: [0, 3], 1: [5]})
    result = train(tiny(), run, backend=backend, final_episodes=0, progress=False)
    assert result.generation == 3 and not result.interrupted
    gen_lines = [line for line in (run / "train.log").read_text().splitlines() if "steps/s" in line]
    assert len(gen_lines) == 3
    assert gen_lines[0].endswith("steps/s | 2 non-finite")
    assert gen_lines[1].endswith("steps/s | 1 non-finite")
    assert gen_lines[2].endswith("steps/s")
    rows = log_rows(run)
    assert len(rows) == 3 and all(r[k] != "" for r in rows for k in ("best", "mean", "worst"))
    assert np.all(np.isfinite(sn.load_policy(run / "latest.npz").params))
    # the statistics are those of the finite members
    state = load_state(run)[0]
    assert np.all(np.isfinite(np.asarray(state.log)[:, 1:5]))


def test_a_generation_without_a_finite_fitness_stops_the_run(tmp_path):
    run = tmp_path / "run"
    backend = NonFiniteBackend({1: [2], 2: "all"})
    msg = "generation 3: every member's fitness is non-finite (NaN or inf); the run has diverged"
    with pytest.raises(DivergedError, match=re.escape(msg)):
        train(tiny(generations=5, test_every=10), run, backend=backend, progress=False)
    # the last good generation is on disk, ready to be evaluated
    assert load_state(run)[0].generation == 2
    assert sn.load_policy(run / "latest.npz").info["generation"] == 2
    assert len(log_rows(run)) == 2
    assert "saved generation 2, the last with a finite fitness" in (run / "train.log").read_text()


def test_same_seed_gives_identical_fitness(tmp_path):
    runs = []
    for name in ("a", "b"):
        train(tiny(generations=2), tmp_path / name, final_episodes=0, progress=False)
        state, _, _ = load_state(tmp_path / name)
        runs.append(np.asarray(state.log)[:, 1:5])  # best, mean, worst, std
    np.testing.assert_array_equal(runs[0], runs[1])
    train(tiny(generations=2, seed=8), tmp_path / "c", final_episodes=0, progress=False)
    other, _, _ = load_state(tmp_path / "c")
    assert not np.array_equal(np.asarray(other.log)[:, 1:5], runs[0])


def test_a_step_bonus_shifts_the_fitness_and_not_the_held_out_score(tmp_path):
    # CartPole-v1 pays 1 a step: with a bonus of -1 a step every member's fitness is 0,
    # however long it balanced, while the held-out test still reads the env's returns
    preset = tiny("cartpole-discrete", generations=2, step_bonus=-1.0)
    train(preset, tmp_path / "shifted", final_episodes=0, progress=False)
    rows = log_rows(tmp_path / "shifted")
    assert all(float(r[k]) == 0.0 for r in rows for k in ("best", "mean", "worst", "std"))
    assert float(rows[-1]["test_score"]) >= 8  # CartPole-v1 lasts at least 8 steps
    train(
        tiny("cartpole-discrete", generations=2),
        tmp_path / "stock",
        final_episodes=0,
        progress=False,
    )
    stock = log_rows(tmp_path / "stock")[0]
    assert float(stock["best"]) > float(stock["worst"]) >= 8
    with pytest.raises(ConfigError, match=r"^step_bonus must be a finite number; got inf$"):
        tiny(step_bonus=float("inf"))


class EnvRecordingBackend(LocalBackend):
    """Runs the episodes inline and records each job's env: (training?, env id)."""

    def __init__(self) -> None:
        super().__init__(1)
        self.jobs: list[tuple[bool, str]] = []
        self._training = False

    def evaluate(self, job, population):
        self._training = True
        try:
            return super().evaluate(job, population)
        finally:
            self._training = False

    def run(self, tasks):
        self.jobs += [(self._training, job.env_id) for job, _ in tasks]
        return super().run(tasks)


def test_a_train_env_gives_the_fitness_and_the_held_out_tests_stay_on_the_task(tmp_path):
    top = "SensoryNeuron/CartPoleSwingUpHarderTopStarts-v0"
    backend = EnvRecordingBackend()
    train(
        tiny(generations=2, train_env=top),
        tmp_path / "top",
        backend=backend,
        final_episodes=2,
        progress=False,
    )
    harder = get_preset("cartpole-swingup-harder-es").env_id
    assert {env for training, env in backend.jobs if training} == {top}
    assert {env for training, env in backend.jobs if not training} == {harder}  # tests, table
    config = json.loads((tmp_path / "top" / "config.json").read_text())
    assert config["task"]["training"]["train_env"] == top
    # the training episodes differ (a quarter start near balanced), so the fitness does
    train(tiny(generations=2), tmp_path / "stock", final_episodes=0, progress=False)
    train(
        tiny(generations=2, train_env=harder), tmp_path / "same", final_episodes=0, progress=False
    )
    logs = {
        n: np.asarray(load_state(tmp_path / n)[0].log)[:, 1:5] for n in ("top", "stock", "same")
    }
    np.testing.assert_array_equal(logs["same"], logs["stock"])  # its own env: the same run
    assert not np.array_equal(logs["top"], logs["stock"])


def test_train_env_errors(monkeypatch):
    with pytest.raises(ConfigError, match=r"^train_env must be a Gymnasium id or null; got ''$"):
        tiny(train_env="")
    msg = (
        "training.train_env CartPole-v1 gives 4 sensors and takes Discrete(2); "
        "SensoryNeuron/CartPoleSwingUpHarder-v0 gives 5 sensors and takes Box([-1, 1]^1)"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(msg)}$"):
        tiny(train_env="CartPole-v1")
    balance = "SensoryNeuron/CartPoleBalance-v0"
    assert tiny(train_env=balance).replace(engine="fused").training.train_env == balance
    # a variant on other engines than the preset's
    harder = get_task(tiny().env_id)
    monkeypatch.setitem(
        TASKS,
        "Test/GymOnly-v0",
        dataclasses.replace(harder, env_id="Test/GymOnly-v0", engines=("gym",), simulator=None),
    )
    tiny(train_env="Test/GymOnly-v0")  # the preset's engine unset: each env its own default
    msg = "training.train_env Test/GymOnly-v0 runs on gym; not on this preset's engine 'fused'"
    with pytest.raises(ConfigError, match=f"^{re.escape(msg)}$"):
        tiny(train_env="Test/GymOnly-v0").replace(engine="fused")


def test_run_folder_holds_config_checkpoints_log_and_curve(tmp_path):
    preset = tiny()
    result = train(preset, tmp_path / "run", final_episodes=3, progress=False)
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == preset.to_dict()
    rows = log_rows(run)
    assert list(rows[0]) == list(LOG_COLUMNS) and len(rows) == 3
    assert [r["test_score"] != "" for r in rows] == [False, True, True]
    assert (run / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = sn.load_policy(run)
    assert best.info["test_score"] == pytest.approx(result.best_test)
    assert best.task == preset.to_dict()
    latest = sn.load_policy(run / "latest.npz")
    assert latest.info["generation"] == 3
    assert [r["condition"] for r in result.final_table] == [
        "unshuffled",
        "shuffled",
        "reshuffle=100",
        "noise=5",
    ]
    assert json.loads((run / "eval.json").read_text())[0]["episodes"] == 3
    assert not list(run.glob(".*.tmp"))


class TargetBackend(LocalBackend):
    """Training fitness without rollouts: minus each member's squared distance from 0.5 in
    every parameter; it keeps the populations it was given. Held-out tests run episodes."""

    def __init__(self) -> None:
        super().__init__(1)
        self.populations: list[np.ndarray] = []

    def evaluate(self, job, population):
        params = np.asarray(population_shard(population, 0, population_size(population)))
        self.populations.append(params.copy())
        distance = -np.sum((params.astype(np.float64) - 0.5) ** 2, axis=1, keepdims=True)
        returns = np.repeat(distance, len(job.seeds), axis=1)
        return RolloutResult(returns=returns, steps=np.ones(returns.shape, dtype=np.int64))


def test_strategy_params_evolve_the_named_tensors_and_keep_the_others(tmp_path, caplog):
    preset = tiny(generations=30, test_every=30).replace(
        strategy={"params": ["out.weight", "out.bias"], "sigma_init": 0.1}
    )
    spec = preset.model.param_spec
    searched = spec.indices(["out.weight", "out.bias"])
    assert searched.tolist() == list(range(spec.num_params - 17, spec.num_params))
    kept = np.setdiff1d(np.arange(spec.num_params), searched)
    backend = TargetBackend()
    caplog.set_level(logging.INFO, logger="evolve")
    train(preset, tmp_path / "run", final_episodes=0, progress=False, backend=backend)
    assert f"({searched.size} evolved: out.weight, out.bias)" in caplog.text
    first, last = backend.populations[0], backend.populations[-1]
    assert not first[:, kept].any() and np.ptp(first[:, searched], axis=0).min() > 0
    assert not last[:, kept].any()  # the run starts from zeros: the rest stay there
    params = sn.load_policy(tmp_path / "run" / "latest.npz").params
    assert not params[kept].any()
    # the searched part learns: from 0 towards 0.5 in every entry
    assert np.abs(params[searched] - 0.5).mean() < 0.25, params[searched]
    # and a resumed run ends where an uninterrupted one does
    split = tmp_path / "split"
    short = preset.replace(training={"generations": 12})
    train(short, split, final_episodes=0, progress=False, backend=TargetBackend())
    train(preset, split, resume=True, final_episodes=0, progress=False, backend=TargetBackend())
    np.testing.assert_array_equal(sn.load_policy(split / "latest.npz").params, params)


def test_a_run_from_init_starts_there_and_resumes_to_the_same_parameters(tmp_path):
    # only the output layer evolves, so the rest of every member is the start point itself
    preset = tiny(generations=6, test_every=6).replace(
        strategy={"params": ["out.weight", "out.bias"], "sigma_init": 0.1}
    )
    spec = preset.model.param_spec
    kept = np.setdiff1d(np.arange(spec.num_params), spec.indices(["out.weight", "out.bias"]))
    init = np.random.default_rng(0).normal(0.0, 0.3, spec.num_params)
    backend = TargetBackend()
    full = tmp_path / "full"
    train(preset, full, final_episodes=0, progress=False, backend=backend, init=init)
    first = backend.populations[0]  # members travel in float32
    start = np.broadcast_to(init[kept].astype(first.dtype), first[:, kept].shape)
    np.testing.assert_array_equal(first[:, kept], start)
    assert (full / "init.npz").is_file()
    # a run split in two (the second part takes no init: it reads init.npz) ends as one run
    split = tmp_path / "split"
    short = preset.replace(training={"generations": 2})
    train(short, split, final_episodes=0, progress=False, backend=TargetBackend(), init=init)
    train(preset, split, resume=True, final_episodes=0, progress=False, backend=TargetBackend())
    resumed = sn.load_policy(split / "latest.npz").params
    np.testing.assert_array_equal(resumed, sn.load_policy(full / "latest.npz").params)
    np.testing.assert_array_equal(resumed[kept], init[kept].astype(np.float32))


def test_a_new_run_without_init_forgets_a_start_point_left_in_its_folder(tmp_path):
    preset = tiny(generations=2, test_every=2)
    zeros = tmp_path / "zeros"
    train(preset, zeros, final_episodes=0, progress=False, backend=TargetBackend())
    # a run started from init.npz that stopped before its first checkpoint left only that
    again = tmp_path / "again"
    again.mkdir()
    write_init(again, np.full(preset.model.num_params, 0.25))
    train(preset, again, final_episodes=0, progress=False, backend=TargetBackend())
    assert not (again / "init.npz").exists()
    np.testing.assert_array_equal(
        sn.load_policy(again / "latest.npz").params, sn.load_policy(zeros / "latest.npz").params
    )


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("resume", "init applies to a new run; a resumed run goes on from its checkpoint"),
        ("staged", "init applies to a one-stage recipe; 'cartpole-swingup-harder' is staged "
         "(its student comes from distillation)"),
        ("shape", "init must hold 993 finite values (one per parameter of "
         "'cartpole-swingup-harder-es''s model), got shape (992,)"),
        ("nan", "init must hold 993 finite values (one per parameter of "
         "'cartpole-swingup-harder-es''s model), got shape (993,) with non-finite ones"),
    ],
)  # fmt: skip
def test_a_bad_init_is_refused_before_anything_is_written(case, message, tmp_path):
    preset = tiny(generations=1) if case != "staged" else get_preset("cartpole-swingup-harder")
    init = np.zeros(preset.model.num_params - (case == "shape"))
    if case == "nan":
        init[3] = np.nan
    run = tmp_path / "run"
    if case == "resume":
        train(preset, run, final_episodes=0, progress=False, backend=TargetBackend())
    before = sorted(p.name for p in run.iterdir()) if run.exists() else None
    with pytest.raises(ConfigError, match=re.escape(message)):
        train(preset, run, resume=case == "resume", final_episodes=0, progress=False, init=init)
    assert (sorted(p.name for p in run.iterdir()) if run.exists() else None) == before


def test_strategy_params_must_name_the_models_tensors():
    with pytest.raises(ConfigError, match=re.escape("has no parameter(s) ['out.w']; allowed: neu")):
        tiny().replace(strategy={"params": ["out.w"]})
    with pytest.raises(ConfigError, match=re.escape("strategy.params names a parameter twice")):
        tiny().replace(strategy={"params": ["out.bias", "out.bias"]})


def test_resume_in_process_matches_an_uninterrupted_run(tmp_path):
    for strategy in ("pgpe", "sep-cma"):
        preset = tiny(generations=4).replace(strategy={"name": strategy})
        train(preset, tmp_path / f"{strategy}-full", final_episodes=0, progress=False)
        split = tmp_path / f"{strategy}-split"
        train(preset.replace(training={"generations": 2}), split, final_episodes=0, progress=False)
        train(preset, split, resume=True, final_episodes=0, progress=False)
        full = sn.load_policy(tmp_path / f"{strategy}-full" / "latest.npz")
        resumed = sn.load_policy(split / "latest.npz")
        np.testing.assert_array_equal(resumed.params, full.params)
        assert log_rows(split)[-1]["mean"] == log_rows(tmp_path / f"{strategy}-full")[-1]["mean"]


def test_a_killed_run_resumes_to_the_same_final_parameters(tmp_path):
    """SIGKILL the CLI mid-run, resume it, and compare with a run never interrupted."""
    args = [
        "--generations", "8", "--popsize", "16", "--repeats", "1", "--test-every", "3",
        "--test-episodes", "4", "--seed", "3", "--workers", "1", "--final-episodes", "0",
        "--checkpoint-every", "1", "--no-progress",
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "evolve", "train", "cartpole-swingup-harder-es"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    full = tmp_path / "full"
    subprocess.run([*cmd, *args, "--out", str(full)], check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [*cmd, *args, "--out", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        if (killed / "state.npz").exists() and load_state(killed)[0].generation >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reached = load_state(killed)[0].generation
    assert 3 <= reached < 8, "the kill should land mid-run"

    resumed = subprocess.run(
        [*cmd, "--resume", str(killed), "--final-episodes", "0", "--no-progress", "--workers", "1"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming run" in resumed.stderr
    np.testing.assert_array_equal(
        sn.load_policy(killed / "latest.npz").params, sn.load_policy(full / "latest.npz").params
    )
    assert [r["best"] for r in log_rows(killed)] == [r["best"] for r in log_rows(full)]
    assert len(log_rows(killed)) == 8


def test_training_improves_the_held_out_score(tmp_path):
    """Does it learn: a short run on the easier swing-up clearly beats its starting point."""
    preset = get_preset("cartpole-swingup").replace(
        strategy={"popsize": 64},
        training={
            "generations": 30,
            "repeats": 2,
            "test_every": 30,
            "test_episodes": 16,
            "seed": 4,  # ~300 after 30 generations; seeds 1-4 reach 69-302
        },
    )
    with LocalBackend(2) as backend:
        start = train(
            preset.replace(training={"generations": 1, "test_every": 1}),
            tmp_path / "start",
            final_episodes=0,
            progress=False,
            backend=backend,
        )
        result = train(preset, tmp_path / "run", final_episodes=0, progress=False, backend=backend)
    assert result.best_test > start.best_test + 100, (start.best_test, result.best_test)


def test_ctrl_c_saves_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    args = [
        sys.executable, "-m", "evolve", "train", "cartpole-swingup-harder-es", "--generations", "200", "--popsize", "16",
        "--repeats", "1", "--test-every", "50", "--test-episodes", "2", "--workers", "1",
        "--checkpoint-every", "1", "--no-progress", "--out", str(run),
    ]  # fmt: skip
    # A shell's background job inherits SIGINT ignored (and Python then keeps ignoring it);
    # give the run the default disposition, as a terminal's foreground job has.
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        if (run / "state.npz").exists() and load_state(run)[0].generation >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted: saving generation" in stderr
    assert "Traceback" not in stderr
    saved = load_state(run)[0].generation
    assert 2 <= saved < 200
    assert sn.load_policy(run / "latest.npz").info["generation"] == saved


def test_sigterm_saves_and_the_resumed_run_ends_as_an_uninterrupted_one(tmp_path):
    """SIGTERM (``timeout``, a scheduler) stops the CLI like Ctrl-C: saved, exit code 143."""
    args = [
        "cartpole-swingup-harder-es", "--popsize", "16", "--repeats", "1", "--test-every", "50",
        "--test-episodes", "2", "--seed", "5", "--workers", "1", "--checkpoint-every", "1",
        "--final-episodes", "0", "--no-progress",
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "evolve", "train"]
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [*cmd, *args, "--generations", "200", "--out", str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        if (run / "state.npz").exists() and load_state(run)[0].generation >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "SIGTERM received: stopping after this step and saving" in stderr
    assert "interrupted: saving generation" in stderr
    assert "Traceback" not in stderr
    saved = load_state(run)[0].generation
    assert 2 <= saved < 200
    assert sn.load_policy(run / "latest.npz").info["generation"] == saved

    total = str(saved + 2)  # resume (with the recorded --workers 1) two generations further
    resumed = subprocess.run(
        [*cmd, "--resume", str(run), "--generations", total, "--final-episodes", "0",
         "--no-progress"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming run" in resumed.stderr and "1 workers" in resumed.stderr
    full = tmp_path / "full"
    subprocess.run(
        [*cmd, *args, "--generations", total, "--out", str(full)], check=True, capture_output=True
    )
    np.testing.assert_array_equal(
        sn.load_policy(run / "latest.npz").params, sn.load_policy(full / "latest.npz").params
    )
    assert [r["mean"] for r in log_rows(run)] == [r["mean"] for r in log_rows(full)]
    assert len(log_rows(run)) == saved + 2


def test_a_staged_recipe_stops_on_sigterm_in_each_earlier_stage(tmp_path):
    """The teacher's loop and the distillation's both check the flag a signal sets."""
    preset = get_preset("cartpole-swingup-harder").replace(
        strategy={"popsize": 8},
        training={"generations": 1, "repeats": 1, "test_episodes": 1, "seed": 2},
        teacher={
            "strategy": {"popsize": 8},
            "training": {"generations": 1, "repeats": 1, "test_episodes": 1},
        },
        distill={"iterations": 2, "episodes": 1},
    )
    run = tmp_path / "run"
    stopped = train(preset, run, final_episodes=0, progress=False, stop=StopRequest(signal.SIGTERM))
    assert (stopped.interrupted, stopped.exit_code) == (True, 143)
    assert load_state(run / "teacher")[0].generation == 0  # saved, in the teacher stage
    assert not (run / "distill").exists()

    train(preset.teacher, run / "teacher", resume=True, final_episodes=0, progress=False)
    stopped = train(
        preset, run, resume=True, final_episodes=0, progress=False, stop=StopRequest(signal.SIGTERM)
    )
    assert (stopped.interrupted, stopped.exit_code) == (True, 143)
    assert (run / "distill").is_dir()  # the distillation began, and stopped at once
    assert not (run / "state.npz").exists()  # the last stage never started


def test_a_staged_recipe_warns_of_full_cma_on_its_student_before_the_teacher(tmp_path):
    preset = get_preset("cartpole-swingup-harder").replace(strategy={"name": "cma"})
    assert preset.model.num_params == 12_929
    run = tmp_path / "run"
    train(preset, run, final_episodes=0, progress=False, stop=StopRequest(signal.SIGTERM))
    lines = (run / "train.log").read_text().splitlines()
    warning = "warning: full-covariance CMA-ES on 12,929 parameters keeps two 12,929 x 12,929"
    assert warning in lines[0]  # before stage 1 begins
