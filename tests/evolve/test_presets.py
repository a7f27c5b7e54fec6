"""Presets for Gymnasium's own tasks, the generic recipe of any Gymnasium id, and the
command-line options that reach them (``--env-id``, ``--engine``, ``evolve tasks``)."""

from __future__ import annotations

import dataclasses
import json
import logging
import re

import numpy as np
import pytest

import sensoryneuron as sn
from evolve import cli
from evolve.evaluation.conditions import parse_condition
from evolve.evaluation.evaluate import evaluate_policy
from evolve.presets import (
    ANT_PAPER_MODEL,
    PRESETS,
    TaskPreset,
    generic_preset,
    get_preset,
    preset_name,
)
from evolve.training.loop import train
from sensoryneuron import AttentionNeuronModel, FeedForwardModel
from sensoryneuron.errors import ConfigError
from tasks.spec import CARTPOLE_SWINGUP_HARDER_ID, get_task


def run_cli(capsys, *args):
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


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_outputs_what_its_task_takes(name):
    preset = get_preset(name)
    spec = get_task(preset.env_id)
    for recipe in (preset, preset.teacher) if preset.teacher else (preset,):
        assert recipe.model.act_dim == spec.action.output_dim
        if isinstance(recipe.model, FeedForwardModel):
            assert recipe.model.obs_dim == spec.observation.size


def test_the_ant_recipe_distils_the_linear_baseline_into_a_student_of_the_papers_width():
    paper = AttentionNeuronModel(
        act_dim=8, num_latents=32, attention_bias=True, attention_scale=True, hidden=(32,)
    )
    assert paper.num_params == 2504 and ANT_PAPER_MODEL == paper
    ant, fnn = get_preset("ant"), get_preset("ant-fnn")
    student = ant.model
    assert (student.num_latents, student.msg_dim) == (paper.num_latents, paper.msg_dim)
    assert student.num_params == 16568
    # supervised attention needs a latent per sensor (Ant-v5: 27)
    assert ant.distill.attention_weight > 0 and student.attention == "softmax"
    assert student.num_latents >= get_task(ant.env_id).observation.size
    assert ant.perturbations.shuffle and ant.perturbations.reshuffle_every == (20, 200)
    assert not fnn.perturbations.shuffle
    assert ant.teacher.model == fnn.model and ant.teacher.strategy == fnn.strategy
    assert ant.teacher.training.generations == 420 and ant.training.generations == 0
    assert TaskPreset.from_dict(ant.to_dict()) == ant


@pytest.mark.parametrize(
    "env_id, act_dim", [("MountainCarContinuous-v0", 1), ("Acrobot-v1", 3), ("CartPole-v1", 2)]
)
def test_generic_preset_outputs_one_value_per_action_dimension_or_choice(env_id, act_dim):
    preset = generic_preset(env_id)
    assert preset.env_id == env_id and preset.name == env_id.lower()
    assert isinstance(preset.model, AttentionNeuronModel) and preset.model.act_dim == act_dim
    assert preset.perturbations.shuffle and preset.strategy.name == "pgpe"
    assert TaskPreset.from_dict(preset.to_dict()) == preset


def test_preset_names_are_folder_names():
    assert preset_name("SensoryNeuron/CartPoleSwingUp-v0") == "sensoryneuron-cartpoleswingup-v0"


def test_generic_preset_refuses_what_the_engine_cannot_run():
    with pytest.raises(ConfigError, match=re.escape("unknown task 'NoSuchEnv-v0'")):
        generic_preset("NoSuchEnv-v0")
    with pytest.raises(ConfigError, match=re.escape("the engine takes a 1-D Box observation")):
        generic_preset("FrozenLake-v1")  # a Discrete observation


def test_the_engine_is_part_of_the_recipe():
    preset = get_preset("pendulum").replace(engine="gym", teacher={"engine": "gym"})
    assert preset.to_dict()["engine"] == "gym"
    assert TaskPreset.from_dict(preset.to_dict()) == preset
    with pytest.raises(ConfigError, match=re.escape("engine must be one of simulator, gym")):
        get_preset("pendulum").replace(engine="warp")


def test_cartpole_discrete_learns_on_a_tiny_budget(tmp_path):
    # 10 generations of 16 x 2 episodes on stock Gymnasium, reshuffled every 20-100 steps:
    # the start point balances for about 9 steps
    preset = get_preset("cartpole-discrete").replace(
        strategy={"popsize": 16, "options": {"optimizer": "adam", "center_lr": 0.1}},
        training={"generations": 10, "repeats": 2, "test_every": 5, "test_episodes": 8},
    )
    result = train(preset, tmp_path / "run", final_episodes=0, progress=False)
    assert result.best_test > 30


def test_evolve_train_env_id_runs_the_generic_recipe(tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = run_cli(
        capsys,
        "train", "--env-id", "MountainCarContinuous-v0", "--generations", "1", "--popsize", "4",
        "--repeats", "1", "--test-episodes", "1", "--final-episodes", "0", "--workers", "1",
        "--reshuffle-every", "50", "--out", run, "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    assert f"run folder: {run}" in out
    task = json.loads((run / "config.json").read_text())["task"]
    assert task["env_id"] == "MountainCarContinuous-v0" and task["engine"] == "gym"
    assert task["model"]["act_dim"] == 1 and task["perturbations"]["reshuffle_every"] == 50
    policy = sn.load_policy(run)
    assert policy.action.describe() == "Box([-1, 1]^1)"


def test_evolve_train_pendulum_runs_every_stage_on_gymnasium(tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = run_cli(
        capsys,
        "train", "pendulum", "--teacher-generations", "1", "--distill-iterations", "1",
        "--generations", "1", "--popsize", "4", "--repeats", "1", "--test-episodes", "2",
        "--final-episodes", "0", "--workers", "1", "--out", run, "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    for stage in ("teacher/best.npz", "distill/best.npz", "best.npz"):
        assert (run / stage).is_file(), stage
    task = json.loads((run / "config.json").read_text())["task"]
    assert task["engine"] == "gym" and task["teacher"]["engine"] == "gym"
    policy = sn.load_policy(run)
    assert policy.action == get_task("Pendulum-v1").action  # torques in [-2, 2]
    (row,) = evaluate_policy(
        policy, "Pendulum-v1", [parse_condition("reshuffle=20-100")], 2, engine="gym"
    )
    assert row["episodes"] == 2 and np.isfinite(row["mean"])


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["train", "--env-id", "NoSuchEnv-v0"],
            "unknown task 'NoSuchEnv-v0': not a registered task",
        ),
        (
            ["train", "--env-id", "FrozenLake-v1"],
            "FrozenLake-v1: the engine takes a 1-D Box observation",
        ),
        (
            ["train", "pendulum", "--env-id", "Pendulum-v1"],
            "give a preset or --env-id, not both: 'pendulum' and --env-id Pendulum-v1",
        ),
        (["train", "pendulum", "--engine", "simulator"], "Pendulum-v1 runs on gym, envpool"),
        (["train", "--engine", "warp"], "argument --engine: invalid choice: 'warp'"),
        (
            ["train", "--resume", "somewhere", "--engine", "gym"],
            "--engine cannot be given when resuming: a run keeps its task, engine and start",
        ),
        (["eval", "fnn-baseline", "--engine", "warp"], "argument --engine: invalid choice"),
    ],
)
def test_bad_ids_and_engines_are_one_line_with_exit_code_2(capsys, args, message):
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert err.startswith("evolve: error: ") and message in err
    assert len(err.strip().splitlines()) == 1, err


def test_evolve_eval_reports_on_the_reference_engine(capsys):
    assert cli._eval_engine(None, "Pendulum-v1") == "gym"
    assert cli._eval_engine(None, CARTPOLE_SWINGUP_HARDER_ID) == "simulator"
    assert cli._eval_engine("gym", CARTPOLE_SWINGUP_HARDER_ID) == "gym"
    code, out, err = run_cli(
        capsys, "eval", "fnn-baseline", "--episodes", "2", "--condition", "unshuffled",
        "--workers", "1", "--engine", "gym",
    )  # fmt: skip
    assert code == 0, err
    code, same, err = run_cli(
        capsys, "eval", "fnn-baseline", "--episodes", "2", "--condition", "unshuffled",
        "--workers", "1",
    )  # fmt: skip
    assert code == 0, err
    assert out == same  # the simulator and the gym env agree bit for bit


def test_evolve_tasks_lists_presets_and_registered_tasks(capsys):
    code, out, _ = run_cli(capsys, "tasks")
    assert code == 0
    for name in ("pendulum", "cartpole-discrete", "ant", "ant-fnn"):
        assert re.search(rf"^{re.escape(name)}\b", out, re.MULTILINE), name
    assert "registered tasks (evolve train --env-id ID" in out
    assert "Pendulum-v1\n" in out and "3 sensors | action Box([-2.0], [2.0]) | 200 steps" in out
    assert "4 sensors | action Discrete(2) | 500 steps | engines gym" in out


def test_the_pong_recipes_learn_from_the_aimer_and_differ_only_in_occlusion():
    pong, occluded = get_preset("pong"), get_preset("pong-occluded")
    assert pong.teacher_controller == "pong-aimer"
    assert pong.teacher_options == {"takeover_margin": 8}
    assert pong.model.num_params == 34970 and pong.model.key_content
    assert pong.model.output == "logits" and pong.distill.recent_fraction == 0.0
    assert pong.perturbations.occlude == 0.0 and occluded.perturbations.occlude == 0.5
    same = dataclasses.replace(
        occluded, name="pong", description=pong.description, perturbations=pong.perturbations
    )
    assert same == pong
    for preset in (pong, occluded):
        assert TaskPreset.from_dict(preset.to_dict()) == preset
