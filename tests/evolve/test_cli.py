"""The `evolve` command, run as a user would: subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest

import evolve.cli as cli
import sensoryneuron as sn
from evolve.backends import LocalBackend, population_shard, population_size
from evolve.presets import PRESETS
from evolve.rollout import RolloutResult
from evolve.training.loop import train
from evolve.training.run_folder import load_state, read_config
from sensoryneuron.files import load_npz

TINY = [
    "cartpole-swingup-harder-es", "--generations", "2", "--popsize", "8", "--repeats", "1", "--test-every", "1",
    "--test-episodes", "2", "--workers", "1", "--final-episodes", "2", "--no-progress",
]  # fmt: skip


def evolve(*args, check=False):
    result = subprocess.run(
        [sys.executable, "-m", "evolve", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    result = evolve("train", *TINY, "--out", out, check=True)
    assert f"run folder: {out}" in result.stdout
    return out


def test_train_smoke_writes_a_complete_run_folder(run_dir):
    for name in ("config.json", "state.npz", "latest.npz", "best.npz", "log.csv", "curve.png"):
        assert (run_dir / name).is_file(), name
    log = (run_dir / "train.log").read_text()
    assert log.splitlines()[0].split(" ", 2)[1] == "config"  # the config is the first line
    assert "gen     2 | best" in log and "[test] gen     2" in log
    assert "reshuffle=100" in log  # the closing evaluation table


def test_eval_prints_a_table_and_writes_json(run_dir, tmp_path):
    out = tmp_path / "eval.json"
    result = evolve(
        "eval", run_dir, "--episodes", "3", "--condition", "shuffled", "--condition",
        "reshuffle=25+noise=2", "--json", out, "--workers", "1", check=True,
    )  # fmt: skip
    assert "shuffled at reset" in result.stdout and "+2 noise" in result.stdout
    payload = json.loads(out.read_text())
    rows = payload["conditions"]
    assert [r["condition"] for r in rows] == ["shuffled", "reshuffle=25+noise=2"]
    assert all(len(r["returns"]) == 3 for r in rows)
    assert payload["env_id"] == "SensoryNeuron/CartPoleSwingUpHarder-v0"


def test_tasks_lists_every_preset():
    out = evolve("tasks", check=True).stdout
    for name in PRESETS:
        assert name in out
    assert "cartpole-swingup-harder (default)" in out


def test_a_reader_that_stops_early_is_no_error():
    # `evolve tasks | head -1`: the pipe closes before evolve has written
    proc = subprocess.Popen(
        [sys.executable, "-m", "evolve", "tasks"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert "Traceback" not in err and err == ""


def test_eval_of_a_reference_model(reference_path):
    path = reference_path("cartpole_pi")
    result = evolve(
        "eval", path, "--reference", "cartpole_pi", "--episodes", "2", "--condition", "shuffled",
        "--workers", "1", check=True,
    )  # fmt: skip
    assert "shuffled at reset" in result.stdout


def test_feed_forward_rows_say_why_a_condition_does_not_apply(tmp_path):
    fnn = PRESETS["cartpole-swingup-harder-fnn"].model
    policy = sn.Policy(
        fnn, [0.0] * fnn.num_params, task={"env_id": "SensoryNeuron/CartPoleSwingUpHarder-v0"}
    )
    sn.save_policy(tmp_path / "fnn.npz", policy)
    out = evolve(
        "eval", tmp_path / "fnn.npz", "--episodes", "2", "--workers", "1", check=True
    ).stdout
    assert "n/a: the feed-forward policy takes exactly 5 inputs, this condition gives 10" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["train", "breakout"],
            "unknown task 'breakout'; allowed: ant, ant-fnn, carracing, carracing-cnn, cartpole-discrete, cartpole-swingup, "
            "cartpole-swingup-harder, cartpole-swingup-harder-es, cartpole-swingup-harder-fnn, "
            "pendulum, pendulum-fnn, pong, pong-occluded\n",
        ),
        (
            ["train", "--generations", "ten"],
            "argument --generations: expected a positive integer, got 'ten'",
        ),
        (["train", "--popsize", "0"], "argument --popsize: expected a positive integer, got '0'"),
        (
            ["train", "cartpole-swingup-harder-es", "--teacher-generations", "5"],
            "--teacher-generations is for staged recipes only; "
            "'cartpole-swingup-harder-es' has no teacher",
        ),
        (
            [
                "train",
                "cartpole-swingup",
                "--teacher-generations",
                "5",
                "--distill-iterations",
                "2",
            ],
            "--distill-iterations and --teacher-generations are for staged recipes only",
        ),
        (["train", "--strategy", "adam"], "unknown strategy 'adam'; allowed: cma, pgpe, sep-cma"),
        (
            ["train", "--reshuffle-every", "0"],
            "argument --reshuffle-every: expected 'never', a positive integer T or a range LOW-HIGH, got '0'",
        ),
        (["train", "--workers", "-1"], "argument --workers: expected a positive integer, got '-1'"),
        (
            ["train", "--resume", "no/such/run"],
            "no/such/run is not a run folder: it has no config.json",
        ),
        (
            ["eval", "no/such/run"],
            "no/such/run: no such run folder, checkpoint file or pretrained agent",
        ),
        (
            ["eval", "x", "--condition", "sideways"],
            "unknown condition 'sideways'; allowed: unshuffled, shuffled",
        ),
        (
            ["eval", "x", "--episodes", "-3"],
            "argument --episodes: expected a positive integer, got '-3'",
        ),
        (
            ["train", "cartpole-swingup-harder-es", "--episodes-from", "x"],
            "episodes can be taken from another run only where a scripted teacher "
            "(teacher_controller) drives them",
        ),
        (
            ["frobnicate"],
            "invalid choice: 'frobnicate' (choose from 'train', 'eval', 'record', 'demo', 'tasks')",
        ),
        ([], "a command is required; allowed: train, eval, record, demo, tasks"),
    ],
)
def test_bad_input_is_one_line_with_exit_code_2(args, message):
    result = evolve(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("evolve: error: ")
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_corrupt_run_folders_are_rejected_cleanly(tmp_path, run_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "best.npz").write_bytes(b"\x00" * 64)
    result = evolve("eval", broken)
    assert result.returncode == 2 and "best.npz: not a readable .npz file" in result.stderr
    (broken / "config.json").write_text("{not json")
    result = evolve("train", "--resume", broken)
    assert result.returncode == 2 and "config.json: not a valid run configuration" in result.stderr
    result = evolve("train", "--resume", run_dir, "--popsize", "4")
    assert result.returncode == 2
    assert "cannot change popsize when resuming; only --generations may change" in result.stderr
    result = evolve("train", "--out", run_dir, *TINY)
    assert (
        result.returncode == 2 and "already holds a run; resume it with --resume" in result.stderr
    )


def main(capsys, *args):
    """``evolve.cli.main`` in this process: (exit code, stdout, stderr)."""
    try:
        code = cli.main([str(a) for a in args])
    finally:  # the console handler writes to this test's captured stderr: drop it
        logger = logging.getLogger("evolve")
        for handler in [h for h in logger.handlers if getattr(h, "_evolve_console", False)]:
            logger.removeHandler(handler)
        logger.propagate = True
    out, err = capsys.readouterr()
    return code, out, err


class FakeBackend(LocalBackend):
    """Training fitness without rollouts (minus the squared norm; NaN from generation
    ``nan_from``); reports the workers it was asked for; held-out tests run inline."""

    def __init__(self, workers=1, nan_from=None, max_workers=5):
        super().__init__(1)
        self.workers = max_workers if workers == "max" else workers
        self.nan_from, self.generation = nan_from, 0

    def evaluate(self, job, population):
        params = population_shard(population, 0, population_size(population))
        fitness = -np.sum(np.asarray(params, dtype=np.float64) ** 2, axis=1, keepdims=True)
        if self.nan_from is not None and self.generation >= self.nan_from:
            fitness[:] = np.nan
        self.generation += 1
        returns = np.repeat(fitness, len(job.seeds), axis=1)
        return RolloutResult(returns, np.ones(returns.shape, dtype=np.int64))


@pytest.fixture
def backends(monkeypatch):
    """Every backend the CLI makes is a FakeBackend; the list holds (name, workers) asked."""
    asked = []

    def make(name, workers, address=None):
        asked.append((name, workers))
        return FakeBackend(workers)

    monkeypatch.setattr(cli, "make_backend", make)
    return asked


def test_a_diverged_run_exits_with_code_3_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "make_backend", lambda *a: FakeBackend(nan_from=1))
    run = tmp_path / "run"
    code, _, err = main(capsys, "train", *TINY, "--generations", "4", "--out", run)
    msg = "generation 2: every member's fitness is non-finite (NaN or inf); the run has diverged"
    assert code == cli.EXIT_DIVERGED == 3
    assert err.splitlines()[-1] == f"evolve: error: {msg}"
    assert "Traceback" not in err
    assert load_state(run)[0].generation == 1  # the last good generation stays on disk


def recorded_run(path, workers, backend="local"):
    """A one-generation run whose config.json records ``workers`` and ``backend``."""
    preset = PRESETS["cartpole-swingup-harder-es"].replace(
        strategy={"popsize": 8},
        training={"generations": 1, "repeats": 1, "test_every": 5, "test_episodes": 1},
    )
    settings = {"backend": backend, "workers": workers}
    train(
        preset, path, backend=FakeBackend(), final_episodes=0, progress=False, run_settings=settings
    )
    return path


RESUME = ["--generations", "2", "--final-episodes", "0", "--no-progress"]


def test_resume_uses_the_recorded_workers_and_backend(tmp_path, capsys, backends):
    run = recorded_run(tmp_path / "run", workers=3, backend="ray")
    code, _, err = main(capsys, "train", "--resume", run, *RESUME)
    assert code == 0, err
    assert backends == [("ray", 3)]
    assert load_state(run)[0].generation == 2
    again = ["--generations", "3", "--workers", "3", "--backend", "local"]
    code, _, err = main(capsys, "train", "--resume", run, *RESUME, *again)
    assert code == 0, err
    assert backends[-1] == ("local", 3)


def test_resume_refuses_another_number_of_workers(tmp_path, capsys, backends):
    run = recorded_run(tmp_path / "run", workers=3)
    capsys.readouterr()  # its log lines
    msg = (
        f"{run} was trained with --workers 3; resuming with a different number changes the "
        "shards and so the results; pass --workers 3 or leave it out"
    )
    for workers in ("4", "max"):  # FakeBackend resolves 'max' to 5
        code, _, err = main(capsys, "train", "--resume", run, *RESUME, "--workers", workers)
        assert code == 2
        assert err == f"evolve: error: {msg}\n"
    assert backends == [("local", "max")]  # '4' is refused before any backend starts
    assert load_state(run)[0].generation == 1


def test_a_new_run_defaults_to_two_local_workers(tmp_path, capsys, backends):
    args = ["--popsize", "8", "--repeats", "1", "--test-episodes", "1", "--out", tmp_path / "run"]
    code, _, err = main(capsys, "train", "cartpole-swingup-harder-es", *RESUME[:2], *args)
    assert code == 0, err
    assert backends == [("local", 2)]
    run_settings = json.loads((tmp_path / "run" / "config.json").read_text())["run"]
    assert run_settings == {"backend": "local", "workers": 2}


def test_resume_refuses_malformed_run_settings(tmp_path, capsys, backends):
    run = recorded_run(tmp_path / "run", workers=3)
    config = json.loads((run / "config.json").read_text())
    config["run"] = {"backend": "local", "workers": "three"}
    (run / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    code, _, err = main(capsys, "train", "--resume", run, *RESUME)
    msg = (
        f"{run / 'config.json'}: not a valid run configuration (run settings need a positive "
        "integer 'workers' and a backend name, got {'backend': 'local', 'workers': 'three'})"
    )
    assert (code, err, backends) == (2, f"evolve: error: {msg}\n", [])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["eval", "x", "--condition", "noise=²"],
            "bad condition term 'noise=²': expected an integer >= 0; allowed: unshuffled, ",
        ),
        (
            ["eval", "x", "--condition", "reshuffle=٣-٥"],
            "bad condition term 'reshuffle=٣-٥': expected an integer >= 1; allowed: unshuffled, ",
        ),
        (
            ["eval", "x", "--condition", "duplicate=٢"],
            "bad condition term 'duplicate=٢': expected an integer >= 1; allowed: unshuffled, ",
        ),
        (
            ["eval", "x", "--episodes", "٣"],
            "argument --episodes: expected a positive integer, got '٣'",
        ),
        (["train", "--seed", "+3"], "argument --seed: expected an integer >= 0, got '+3'"),
        (
            ["train", "--popsize", "1_6"],
            "argument --popsize: expected a positive integer, got '1_6'",
        ),
        (["train", "--sigma", "nan"], "argument --sigma: expected a positive number, got 'nan'"),
        (["train", "--sigma", "inf"], "argument --sigma: expected a positive number, got 'inf'"),
        (["train", "--sigma", "٠.١"], "argument --sigma: expected a positive number, got '٠.١'"),
        (
            ["record", "x", "-o", "v.gif", "--fps", "1e999"],
            "argument --fps: expected a positive number, got '1e999'",
        ),
        (
            ["train", "--reshuffle-every", "٣"],
            "argument --reshuffle-every: expected 'never', a positive integer T or a range LOW-HIGH, got '٣'",
        ),
        (
            ["record", "x", "-o", "v.gif", "--reshuffle-every", "5-²"],
            "argument --reshuffle-every: expected 'never', a positive integer T or a range LOW-HIGH, got '5-²'",
        ),
        (["train", "--workers", "٢"], "argument --workers: expected a positive integer, got '٢'"),
    ],
)
def test_numbers_are_ascii_digits(args, message, capsys):
    """Other scripts' digits, nan and inf are one-line usage errors, not tracebacks."""
    if args[0] == "train":  # were the number taken, this would fail at once, not train
        args = [*args, "--resume", "no/such/run"]
    code, out, err = main(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith(f"evolve: error: {message}")
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_ascii_numbers_still_parse():
    assert cli.positive_float("1e-3") == 0.001 and cli.positive_float(".5") == 0.5
    assert cli.positive_float("5.") == 5.0 and cli.non_negative_int("0") == 0
    assert cli.positive_int("0012") == 12 and cli.reshuffle_arg("20-200") == (20, 200)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("center_lr_decay", "argument --strategy-option: expected KEY=VALUE, got 'center_lr_decay'"),
        ("center_lr_decay=0", "center_lr_decay must be a finite number in (0, 1], got 0"),
        ("center_lr_floor=0.2", "center_lr_floor must be a finite number in [0, 0.05], got 0.2"),
        ("bogus=1", "unknown hyperparameter 'bogus' for strategy 'pgpe'; allowed: antithetic, "),
    ],
)  # fmt: skip
def test_a_bad_strategy_option_is_one_line_before_the_run_folder(option, message, capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = main(capsys, "train", *TINY, "--strategy-option", option, "--out", out)
    assert code == 2 and err.startswith(f"evolve: error: {message}")
    assert len(err.splitlines()) == 1 and not out.exists()


def test_strategy_options_add_to_the_presets(capsys, tmp_path):
    out = tmp_path / "run"
    args = ["--strategy-option", "center_lr_decay=0.5", "--strategy-option", "optimizer=adam"]
    code, _, err = main(capsys, "train", *TINY, *args, "--generations", "1", "--out", out)
    assert code == 0, err
    options = read_config(out)[0].strategy.options
    # the preset's own (Adam, lr 0.05) kept, the decay added; the values parsed as JSON
    assert options == {"optimizer": "adam", "center_lr": 0.05, "center_lr_decay": 0.5}
    # another strategy starts from none of the preset's options
    cma = tmp_path / "cma"
    args = ["--strategy", "sep-cma", "--strategy-option", 'cma_options={"tolx": 1e-9}']
    code, _, err = main(capsys, "train", *TINY, *args, "--generations", "1", "--out", cma)
    assert code == 0, err
    strategy = read_config(cma)[0].strategy
    assert strategy.name == "sep-cma" and strategy.options == {"cma_options": {"tolx": 1e-9}}


def test_init_starts_a_run_from_another_runs_parameters(run_dir, capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = main(
        capsys, "train", *TINY, "--generations", "1", "--init", run_dir, "--out", out
    )
    assert code == 0, err
    assert read_config(out)[1]["init"] == str(run_dir)
    start, _ = load_npz(out / "init.npz")
    np.testing.assert_array_equal(start["params"], sn.load_policy(run_dir).params)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--init", "fnn-baseline"], "--init fnn-baseline: its fnn model (113 parameters) is not "
         "the one of 'cartpole-swingup-harder-es' (attention-neuron, 993 parameters)"),
        (["--init", "nowhere.npz"], "nowhere.npz: no such run folder, checkpoint file or pretrained agent"),
    ],
)  # fmt: skip
def test_a_bad_init_is_one_line_before_the_run_folder(args, message, capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = main(capsys, "train", *TINY, *args, "--out", out)
    assert code == 2 and err.startswith("evolve: error: ") and message in err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_train_env_trains_on_it_and_a_bad_one_is_one_line(capsys, tmp_path):
    top = "SensoryNeuron/CartPoleSwingUpHarderTopStarts-v0"
    out = tmp_path / "run"
    code, _, err = main(
        capsys, "train", *TINY, "--generations", "1", "--train-env", top, "--out", out
    )
    assert code == 0, err
    task = read_config(out)[0]
    assert task.training.train_env == top and task.env_id != top
    for bad, message in [
        ("CartPole-v1", "training.train_env CartPole-v1 gives 4 sensors and takes Discrete(2);"),
        ("Nope-v9", "unknown task 'Nope-v9': not a registered task"),
    ]:
        code, _, err = main(capsys, "train", *TINY, "--train-env", bad, "--out", tmp_path / bad)
        assert code == 2 and err.startswith(f"evolve: error: {message}")
        assert len(err.splitlines()) == 1 and not (tmp_path / bad).exists()


def test_model_option_sets_the_models_settings_and_a_bad_one_is_one_line(capsys, tmp_path):
    out = tmp_path / "paper"
    options = ["--model-option", "attention=tanh", "--model-option", "input_change=false"]
    code, _, err = main(capsys, "train", *TINY, "--generations", "1", *options, "--out", out)
    assert code == 0, err
    model = read_config(out)[0].model
    assert model.attention == "tanh" and not model.input_change and model.num_params == 913
    for option, message in [
        ("nope=1", "--model-option nope: the attention-neuron model has no such setting; it "
         "has act_dim, num_latents, "),
        ("attention=bad", "attention must be one of tanh, softmax; got 'bad'"),
    ]:  # fmt: skip
        bad = tmp_path / option
        code, _, err = main(capsys, "train", *TINY, "--model-option", option, "--out", bad)
        assert code == 2 and err.startswith(f"evolve: error: {message}")
        assert len(err.splitlines()) == 1 and not bad.exists()


def test_init_is_for_new_one_stage_runs(run_dir, capsys, tmp_path):
    code, _, err = main(capsys, "train", "--resume", run_dir, "--init", run_dir)
    assert code == 2 and err == (
        "evolve: error: --init cannot be given when resuming: a run keeps its task, engine and "
        "start\n"
    )
    out = tmp_path / "staged"
    code, _, err = main(capsys, "train", "--init", "cartpole-swingup-harder", "--out", out)
    assert code == 2 and err == (
        "evolve: error: --init is for one-stage recipes; 'cartpole-swingup-harder' is staged "
        "(its student comes from distillation)\n"
    )
    assert not out.exists()
