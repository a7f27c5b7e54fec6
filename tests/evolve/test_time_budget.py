"""`evolve train --time-budget`: stages cut at their deadline, the recipe going on, resume.

The clock is fake: it moves only when a generation (or a distillation iteration) runs, by
a fixed number of seconds, so every deadline falls in a known step.
"""

from __future__ import annotations

import functools
import json
import logging
import signal

import numpy as np
import pytest

import evolve.cli as cli
import evolve.presets as presets
import evolve.training.distill as distill_module
import evolve.training.loop as loop
import sensoryneuron as sn
from evolve.backends import LocalBackend, population_shard, population_size
from evolve.presets import get_preset
from evolve.rollout import RolloutResult
from evolve.training.budget import Budget
from evolve.training.distill import load_distill_state
from evolve.training.loop import train
from evolve.training.run_folder import load_state, read_budget_cuts, save_state
from evolve.training.stopping import StopRequest

STAGES = ("teacher", "distillation", "evolution")


class Clock:
    """Seconds that pass only when a test moves them."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TickingBackend(LocalBackend):
    """Training fitness without rollouts (minus the squared norm of each member); each
    generation takes ``seconds`` on ``clock``, and ``then(n)`` runs after the n-th. Held-out
    tests and the closing table still run real episodes (``run``)."""

    def __init__(self, clock: Clock, seconds: float = 60.0, then=None) -> None:
        super().__init__(1)
        self.clock, self.seconds, self.then, self.generations = clock, seconds, then, 0

    def evaluate(self, job, population):
        self.clock.now += self.seconds
        self.generations += 1
        if self.then is not None:
            self.then(self.generations)
        params = population_shard(population, 0, population_size(population))
        fitness = -np.sum(np.asarray(params, dtype=np.float64) ** 2, axis=1, keepdims=True)
        returns = np.repeat(fitness, len(job.seeds), axis=1)
        return RolloutResult(returns, np.ones(returns.shape, dtype=np.int64))


@pytest.fixture
def slow_distillation(monkeypatch):
    """Each distillation iteration takes 90 s on the returned clock."""
    clock = Clock()
    real = distill_module.collect

    def collect(*args, **kwargs):
        clock.now += 90.0
        return real(*args, **kwargs)

    monkeypatch.setattr(distill_module, "collect", collect)
    return clock


def es(generations=6):
    return get_preset("cartpole-swingup-harder-es").replace(
        strategy={"popsize": 8},
        training={"generations": generations, "repeats": 1, "test_every": 10, "test_episodes": 1},
    )


def test_the_split_passes_unused_time_on_and_keeps_a_reserve_for_the_table():
    budget = Budget(10, STAGES)  # 540 s for the stages, 60 s kept for the table
    assert budget.start("teacher").allowed == pytest.approx(540 * 0.15)
    budget.spent["teacher"] = 30.0  # finished early: the rest goes on
    assert budget.start("distillation").allowed == pytest.approx(510 * 0.50 / 0.85)
    budget.spent["distillation"] = 400.0  # overran: the evolution has what is left
    assert budget.start("evolution").allowed == pytest.approx(110.0)
    assert Budget(10, ("evolution",), reserve=0.0).start("evolution").allowed == 600.0
    privileged = Budget(10, ("distillation", "evolution"))  # no teacher stage to share with
    assert privileged.start("distillation").allowed == pytest.approx(540 * 0.50 / 0.85)


def test_each_stage_stops_after_the_step_its_deadline_passes_in_and_the_recipe_goes_on(
    tmp_path, slow_distillation, caplog, tiny_staged_preset
):
    caplog.set_level(logging.INFO, logger="evolve")  # train.log gets the info lines
    clock, run = slow_distillation, tmp_path / "run"
    # 10 min: 540 s for the stages. Teacher 81 s: generations at 60 and 120 s. Distillation
    # (540 - 120) * 0.5 / 0.85 = 247 s: iterations at 90, 180 and 270 s. Evolution the 150 s
    # left: generations at 60, 120 and 180 s. Then the closing table.
    result = train(
        tiny_staged_preset(),
        run,
        backend=TickingBackend(clock),
        final_episodes=1,
        progress=False,
        time_budget=10,
        clock=clock,
    )
    assert (result.interrupted, result.exit_code) == (False, 0)
    assert load_state(run / "teacher")[0].generation == 2
    assert load_distill_state(run / "distill").iteration == 3
    evolved = load_state(run)[0]
    assert evolved.generation == result.generation == 3
    assert not np.isnan(evolved.log[-1][5])  # a cut stage's last generation is tested
    assert result.final_table is not None and (run / "eval.json").is_file()
    assert result.cut is not None
    assert (result.cut.stage, result.cut.done, result.cut.total) == ("evolution", 3, 4)
    assert (result.cut.minutes, result.cut.allowed) == pytest.approx((3.0, 2.5))
    cuts = read_budget_cuts(run)
    assert [(c.stage, c.done, c.total) for c in cuts.values()] == [
        ("teacher", 2, 4),
        ("distillation", 3, 5),
        ("evolution", 3, 4),
    ]
    lines = (run / "train.log").read_text()
    for line in (
        "time budget: the teacher stopped at generation 2 of 4 after 2.0 min of 1.4 allowed",
        "time budget: the distillation stopped at iteration 3 of 5 after 4.5 min of 4.1 allowed",
        "time budget: the evolution stopped at generation 3 of 4 after 3.0 min of 2.5 allowed",
        "time budget: 9.5 of 10 min used by the stages; cut: teacher at generation 2 of 4, "
        "distillation at iteration 3 of 5, evolution at generation 3 of 4",
    ):
        assert line in lines
    # On resume the cut teacher and distillation stay finished. The evolution goes on with
    # what the recorded wall times (real ones, milliseconds) leave, and now ends uncut.
    again = train(
        tiny_staged_preset(),
        run,
        resume=True,
        backend=TickingBackend(clock),
        final_episodes=1,
        progress=False,
        time_budget=10,
        clock=clock,
    )
    assert (again.exit_code, again.generation, again.cut) == (0, 4, None)
    assert load_state(run / "teacher")[0].generation == 2
    assert load_distill_state(run / "distill").iteration == 3
    assert list(read_budget_cuts(run)) == ["teacher", "distillation"]


def test_a_budget_that_never_runs_out_changes_nothing(tmp_path, tiny_staged_preset):
    frozen = Clock()  # no time passes
    for name, budget in [("plain", None), ("budget", 60)]:
        train(
            tiny_staged_preset(teacher_generations=2, iterations=2, generations=2),
            tmp_path / name,
            backend=TickingBackend(frozen),
            final_episodes=0,
            progress=False,
            time_budget=budget,
            clock=frozen,
        )
    for name in ("latest.npz", "best.npz", "distill/best.npz", "teacher/latest.npz"):
        np.testing.assert_array_equal(
            sn.load_policy(tmp_path / "plain" / name).params,
            sn.load_policy(tmp_path / "budget" / name).params,
        )
    assert read_budget_cuts(tmp_path / "budget") == {}


def test_resume_counts_the_time_a_stage_spent_before(tmp_path):
    run = tmp_path / "run"
    stop = StopRequest()

    def interrupt_after_2(generation):
        if generation == 2:
            stop.signal = signal.SIGINT

    clock = Clock()
    stopped = train(
        es(), run, backend=TickingBackend(clock, then=interrupt_after_2), final_episodes=1,
        progress=False, stop=stop, time_budget=2, clock=clock,
    )  # fmt: skip
    assert (stopped.interrupted, stopped.exit_code, stopped.generation) == (True, 130, 2)
    state, meta, arrays = load_state(run)
    state.wall_time = 100.0  # as if those two generations had taken 100 s
    save_state(run, state, meta, arrays)
    # 2 min: 108 s for the evolution, 100 of them spent; the next generation spends the rest
    resumed = train(
        es(), run, resume=True, backend=TickingBackend(clock), final_episodes=1,
        progress=False, time_budget=2, clock=clock,
    )  # fmt: skip
    assert (resumed.interrupted, resumed.exit_code, resumed.generation) == (False, 0, 3)
    assert resumed.cut is not None and resumed.cut.minutes == pytest.approx(160 / 60)
    assert (run / "eval.json").is_file()


def test_a_signal_still_interrupts_the_whole_run(tmp_path, tiny_staged_preset):
    run = tmp_path / "run"
    stop = StopRequest()

    def sigterm_in_generation_2(generation):
        if generation == 2:  # the teacher's deadline (81 s) passes in this generation too
            stop.signal = signal.SIGTERM

    clock = Clock()
    result = train(
        tiny_staged_preset(), run, backend=TickingBackend(clock, then=sigterm_in_generation_2),
        final_episodes=1, progress=False, stop=stop, time_budget=10, clock=clock,
    )  # fmt: skip
    assert (result.interrupted, result.exit_code, result.final_table) == (True, 143, None)
    assert load_state(run / "teacher")[0].generation == 2
    assert not (run / "distill").exists() and not (run / "eval.json").exists()
    assert read_budget_cuts(run) == {}


def run_cli(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan"])
def test_a_bad_time_budget_is_one_line_with_exit_code_2(capsys, value):
    code, _, err = run_cli(capsys, "train", "--time-budget", value)
    assert code == 2
    assert (
        err == "evolve: error: argument --time-budget: expected a positive number of minutes "
        f"or 'none', got {value!r}\n"
    )


def test_the_cli_cuts_the_run_writes_the_table_and_keeps_the_budget_on_resume(
    tmp_path, capsys, monkeypatch
):
    clock = Clock()
    monkeypatch.setattr(cli, "make_backend", lambda *a: TickingBackend(clock))
    monkeypatch.setattr(cli, "train", functools.partial(loop.train, clock=clock))
    run = tmp_path / "run"
    args = [
        "cartpole-swingup-harder-es", "--generations", "6", "--popsize", "8", "--repeats", "1",
        "--test-every", "10", "--test-episodes", "1", "--final-episodes", "1", "--no-progress",
    ]  # fmt: skip
    code, out, err = run_cli(capsys, "train", *args, "--time-budget", "2", "--out", run)
    assert code == 0, err
    assert out == f"run folder: {run}\n"
    assert "the evolution stopped at generation 2 of 6 after 2.0 min of 1.8 allowed" in err
    assert (run / "eval.json").is_file()

    def settings():
        return json.loads((run / "config.json").read_text())["run"]

    assert settings()["time_budget_minutes"] == 2
    state, meta, arrays = load_state(run)
    state.wall_time = 120.0  # the time the fake clock says those generations took
    save_state(run, state, meta, arrays)
    resume = ["--resume", run, "--final-episodes", "1", "--no-progress"]
    code, _, err = run_cli(capsys, "train", *resume)  # the recorded 2 min: spent already
    assert code == 0, err
    assert (load_state(run)[0].generation, settings()["time_budget_minutes"]) == (2, 2)
    code, _, err = run_cli(capsys, "train", *resume, "--time-budget", "10")
    assert code == 0, err
    assert (load_state(run)[0].generation, settings()["time_budget_minutes"]) == (6, 10)
    assert read_budget_cuts(run) == {}  # the last stage ran to its end


def test_a_presets_own_budget_applies_unless_the_cli_says_none(tmp_path, capsys, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(cli, "make_backend", lambda *a: TickingBackend(clock))
    monkeypatch.setattr(cli, "train", functools.partial(loop.train, clock=clock))
    budgeted = es().replace(name="tiny-budgeted", training={"time_budget": 2})
    monkeypatch.setitem(presets.PRESETS, budgeted.name, budgeted)
    common = ["--final-episodes", "1", "--no-progress"]

    def settings(run):
        return json.loads((run / "config.json").read_text())["run"]

    run = tmp_path / "own"
    code, _, err = run_cli(capsys, "train", budgeted.name, *common, "--out", run)
    assert code == 0, err
    assert "the evolution stopped at generation 2 of 6 after 2.0 min of 1.8 allowed" in err
    assert settings(run)["time_budget_minutes"] == 2

    free = tmp_path / "none"
    code, _, err = run_cli(capsys, "train", budgeted.name, *common, "--time-budget", "none",
                           "--out", free)  # fmt: skip
    assert code == 0, err
    assert load_state(free)[0].generation == 6 and "time_budget_minutes" not in settings(free)
    assert read_budget_cuts(free) == {}

    # a resumed run keeps its own budget, here the preset's, until told otherwise
    state, meta, arrays = load_state(run)
    state.wall_time = 120.0
    save_state(run, state, meta, arrays)
    code, _, err = run_cli(capsys, "train", "--resume", run, *common)
    assert code == 0, err
    assert load_state(run)[0].generation == 2
    code, _, err = run_cli(capsys, "train", "--resume", run, *common, "--time-budget", "none")
    assert code == 0, err
    assert load_state(run)[0].generation == 6 and "time_budget_minutes" not in settings(run)


def test_the_default_recipe_fits_an_hour():
    assert get_preset("cartpole-swingup-harder").training.time_budget == 60


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), True, "60"])
def test_a_bad_preset_budget_is_a_config_error(value):
    with pytest.raises(sn.ConfigError) as err:
        es().replace(training={"time_budget": value})
    assert str(err.value) == (
        f"time_budget must be a positive number of minutes or null; got {value!r}"
    )
