"""The ``evolve`` command: train, evaluate, record videos and list tasks.

Bad input never shows a traceback: one line on stderr says what was wrong and what is
allowed, and the exit code is 2.

Exit codes: 0 done (also where ``--time-budget`` cut stages short); 2 bad input, or the
run folder is in use by another training; 3 the run diverged (a whole generation's fitness
was NaN or infinite; the last generation with a finite fitness is saved); 4 a file could
not be written (a full disk, a read-only or vanished folder; the checkpoints written before
are intact, so ``--resume`` continues once there is room); 130 or 143 stopped by SIGINT or
SIGTERM (saved; ``--resume`` continues).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from evolve.backends import BACKENDS, make_backend
from evolve.evaluation.carracing_table import (
    CARRACING_EPISODES,
    CARRACING_ID,
    format_carracing_table,
    measure_carracing_table,
    plot_carracing_table,
)
from evolve.evaluation.conditions import (
    DEFAULT_CONDITIONS,
    GRAMMAR,
    IMAGE_CONDITIONS,
    default_conditions,
    parse_condition,
)
from evolve.evaluation.evaluate import evaluate_policy, format_table
from evolve.evaluation.paper_table import (
    ANT_EPISODES,
    PAPER_ENV_ID,
    PAPER_TABLES,
    format_paper_table,
    measure_paper_table,
    plot_paper_table,
)
from evolve.evaluation.pong_table import (
    PONG_EPISODES,
    PONG_ID,
    format_pong_table,
    measure_pong_table,
    plot_pong_table,
)
from evolve.logs import console
from evolve.presets import DEFAULT_PRESET, PRESETS, TaskPreset, generic_preset, get_preset
from evolve.rollout import check_device
from evolve.strategies import STRATEGIES, DivergedError, check_hyperparameters
from evolve.training.loop import resume_preset, train
from evolve.training.run_folder import TIME_BUDGET, update_run_settings
from evolve.training.run_lock import hold_run_folder
from evolve.video.encode import check_fps, check_output
from evolve.video.record import default_label, record
from sensoryneuron.checkpoints import (
    REFERENCE_MODELS,
    load_policy,
    load_reference_policy,
    pretrained_names,
)
from sensoryneuron.errors import CheckpointError, SensoryNeuronError, StorageError
from sensoryneuron.files import atomic_write_text
from sensoryneuron.models import ConvModel, FeedForwardModel
from sensoryneuron.policy import Policy
from tasks.perturbations import Perturbations, validate_reshuffle_every
from tasks.perturbations.patches import background_image, offered_backgrounds
from tasks.spec import ENGINES, TASKS, get_task

EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_STORAGE = 4
EXIT_INTERRUPTED = 130
EVAL_EPISODES = 100  # `evolve eval`'s default
# `evolve eval --paper-table`'s default on cart-pole, as in the paper (on the Ant: ANT_EPISODES)
PAPER_TABLE_EPISODES = PAPER_TABLES[PAPER_ENV_ID].episodes
FNN_BASELINE = "fnn-baseline"  # the shipped feed-forward agent
STAGE_FLAGS = {"teacher": "--teacher-generations", "distill": "--distill-iterations"}
UNSET = object()  # an option not given (where None is a meaningful value)
DEFAULT_WORKERS = 2  # `evolve train --workers` of a new run
DEFAULT_BACKEND = "local"
DEMO_HOST = "127.0.0.1"  # `evolve demo` listens on this machine only unless told


class UsageError(Exception):
    """Bad command-line input: reported as one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


# What a number on the command line may look like: ASCII digits only (``int`` and ``float``
# also take other scripts' digits, '٣', and ``float`` takes 'nan', 'inf', '1_0' and spaces).
_INT = re.compile(r"[0-9]+")
_FLOAT = re.compile(r"([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _number(kind: Callable[[str], Any], minimum: float, what: str) -> Callable[[str], Any]:
    """A parser of ``kind`` (int or float) values >= ``minimum``, written in ASCII digits."""
    pattern = _INT if kind is int else _FLOAT

    def parse(text: str) -> Any:
        value = kind(text) if pattern.fullmatch(text) else None
        if value is None or (kind is float and not math.isfinite(value)) or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


positive_int = _number(int, 1, "a positive integer")
non_negative_int = _number(int, 0, "an integer >= 0")
positive_float = _number(float, 1e-300, "a positive number")


EPISODES_FROM = "episodes_from"  # run settings: the run whose recorded episodes it takes
INIT = "init"  # run settings: where a run's start point came from (``--init``)
NO_BUDGET = "none"  # --time-budget none: every stage runs to its end


def budget_arg(text: str) -> float | str:
    if text == NO_BUDGET:
        return NO_BUDGET
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a positive number of minutes or 'none', got {text!r}"
        ) from None


def fraction_arg(text: str) -> float:
    value = float(text) if _FLOAT.fullmatch(text) else -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


def strategy_option_arg(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``: VALUE as JSON (``0.05``, ``true``), else as the bare string (``adam``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def workers_arg(text: str) -> int | str:
    return "max" if text == "max" else positive_int(text)


def _ascii_int(text: str) -> int:
    if not _INT.fullmatch(text):
        raise ValueError(text)
    return int(text)


def reshuffle_arg(text: str) -> int | tuple[int, int] | None:
    if text == "never":
        return None
    try:
        if "-" in text:
            low, high = text.split("-", 1)
            return validate_reshuffle_every((_ascii_int(low), _ascii_int(high)))
        return validate_reshuffle_every(_ascii_int(text))
    except (ValueError, SensoryNeuronError):
        raise argparse.ArgumentTypeError(
            f"expected 'never', a positive integer T or a range LOW-HIGH, got {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="evolve",
        description="Train and evaluate permutation-invariant sensory-neuron agents.",
    )
    sub = parser.add_subparsers(
        dest="command", metavar="{train,eval,record,demo,tasks}", parser_class=_Parser
    )

    t = sub.add_parser("train", help=f"train a task preset (default: {DEFAULT_PRESET})")
    t.add_argument(
        "task", nargs="?", help=f"a preset from `evolve tasks` (default {DEFAULT_PRESET})"
    )
    t.add_argument("--resume", metavar="RUN", help="continue the run in folder RUN")
    t.add_argument(
        "--generations",
        type=positive_int,
        help="total generations of the run (of its last stage, for a staged recipe)",
    )
    t.add_argument(
        "--teacher-generations",
        type=positive_int,
        metavar="N",
        help="staged recipes: generations of the feed-forward teacher",
    )
    t.add_argument(
        "--distill-iterations",
        type=positive_int,
        metavar="N",
        help="staged recipes: iterations of the distillation",
    )
    t.add_argument(
        "--time-budget",
        type=budget_arg,
        metavar="MINUTES|none",
        help="stop each stage once its share of MINUTES is spent and go on to the next; the "
        "closing table still runs ('none': every stage runs to its end; default: the "
        "preset's training.time_budget, and a resumed run keeps its own)",
    )
    t.add_argument(
        "--episodes-from",
        metavar="RUN",
        help="staged recipes with a scripted teacher: take RUN's recorded episodes for every "
        "iteration that the teacher drives whole, where RUN collected them as this recipe "
        "would (same task, seed, teacher, noise, episodes): only the fit runs, with the "
        "results of a fresh run",
    )
    t.add_argument(
        "--init",
        metavar="SOURCE",
        help="one-stage recipes: start the evolution from SOURCE's parameters instead of "
        "zeros (a run folder's best.npz, a policy .npz such as RUN/latest.npz, or a shipped "
        "name), e.g. to evolve a run on with another step size; the model must be the "
        "recipe's",
    )
    t.add_argument("--popsize", type=positive_int, help="members per generation")
    t.add_argument("--repeats", type=positive_int, help="episodes per member per generation")
    t.add_argument("--strategy", help=f"one of {', '.join(sorted(STRATEGIES))}")
    t.add_argument("--sigma", type=positive_float, help="initial search standard deviation")
    t.add_argument(
        "--strategy-option",
        type=strategy_option_arg,
        action="append",
        metavar="KEY=VALUE",
        help="repeatable: one of the strategy's hyperparameters, over the preset's (e.g. "
        "center_lr=0.02, center_lr_decay=0.9994; another --strategy starts from none)",
    )
    t.add_argument(
        "--model-option",
        type=strategy_option_arg,
        action="append",
        metavar="KEY=VALUE",
        help="repeatable: one of the model's settings, over the preset's (e.g. "
        "attention=tanh, input_change=false; one-stage recipes)",
    )
    t.add_argument("--seed", type=non_negative_int, help="master seed")
    t.add_argument(
        "--device",
        default="cpu",
        help="where distillation fits and tests its student: cpu (default) or cuda",
    )
    t.add_argument(
        "--train-env",
        metavar="ID",
        help="the Gymnasium id whose episodes give the training fitness (held-out tests and "
        "scores stay on the task), e.g. SensoryNeuron/CartPoleSwingUpHarderTopStarts-v0",
    )
    t.add_argument("--test-every", type=positive_int, help="generations between held-out tests")
    t.add_argument("--test-episodes", type=positive_int, help="episodes per held-out test")
    t.add_argument(
        "--reshuffle-every", type=reshuffle_arg, default=UNSET, metavar="T|LOW-HIGH|never"
    )
    t.add_argument("--noise-channels", type=non_negative_int, metavar="N")
    t.add_argument(
        "--workers",
        type=workers_arg,
        help="worker processes (Ray: tasks), or 'max' (every core, or every CPU of the cluster); "
        f"default {DEFAULT_WORKERS}, and a resumed run's own",
    )
    t.add_argument(
        "--backend",
        help=f"one of {', '.join(sorted(BACKENDS))}; default {DEFAULT_BACKEND}, "
        "and a resumed run's own",
    )
    t.add_argument(
        "--address",
        metavar="HOST:PORT|auto",
        help="with --backend ray: the Ray cluster to join (default: start a local Ray)",
    )
    t.add_argument("--out", metavar="DIR", help="run folder (default runs/<task>-s<seed>-<time>)")
    t.add_argument("--runs-dir", default="runs", help="where new run folders go (default runs)")
    t.add_argument("--checkpoint-every", type=positive_int, default=5, metavar="N")
    t.add_argument("--final-episodes", type=non_negative_int, default=100, metavar="N")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument(
        "--env-id",
        metavar="ID",
        help="train the generic recipe on any Gymnasium id with a 1-D Box observation and a "
        "bounded Box or Discrete action (instead of TASK)",
    )
    t.add_argument(
        "--engine",
        choices=ENGINES,
        help="the batched engine to train on (default: the task's own; see `evolve tasks`)",
    )

    e = sub.add_parser(
        "eval",
        help="evaluate a run, checkpoint or shipped agent; or, with --paper-table, "
        "reproduce the paper's cart-pole, Ant, CarRacing or Pong tables",
    )
    e.add_argument(
        "source",
        help="a run folder, a .npz checkpoint, or a shipped agent's name (with --paper-table: "
        "the AttentionNeuron agent)",
    )
    e.add_argument(
        "--episodes",
        type=positive_int,
        help=f"held-out episodes (default {EVAL_EPISODES}; "
        f"{PAPER_TABLE_EPISODES} with --paper-table, {ANT_EPISODES} on Ant-v5)",
    )
    e.add_argument(
        "--condition",
        action="append",
        metavar="C",
        help=f"repeatable; {GRAMMAR} (default: {' '.join(DEFAULT_CONDITIONS)}; for image "
        f"tasks {' '.join(IMAGE_CONDITIONS)}); "
        "not with --paper-table",
    )
    e.add_argument(
        "--paper-table",
        metavar="DIR",
        help="measure the conditions of the paper's CartPoleSwingUpHarder or Ant tables in "
        "float64 (CarRacing and Pong: their own tables), "
        "print them beside the published figures, write DIR/paper_table.json and "
        "DIR/paper_table.png",
    )
    e.add_argument(
        "--fnn",
        metavar="SOURCE",
        help="with --paper-table: the feed-forward baseline (default: SOURCE's teacher/best.npz "
        f"for a staged run folder, else the shipped {FNN_BASELINE!r} on cart-pole and none "
        "on the Ant)",
    )
    e.add_argument(
        "--published",
        metavar="FILE",
        help="with --paper-table on CarRacing: the published carracing_pi.npz, measured beside",
    )
    e.add_argument(
        "--cnn",
        metavar="SOURCE",
        help="with --paper-table on CarRacing: the non-invariant baseline (a carracing-cnn "
        "agent), measured on its own frames, shuffled and on the four backgrounds",
    )
    e.add_argument(
        "--occluded",
        metavar="SOURCE",
        help="with --paper-table on Pong: the agent trained on occluded patches (a "
        "pong-occluded agent), measured at each occlusion",
    )
    e.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    e.add_argument("--workers", type=workers_arg, default=2, help="worker processes, or 'max'")
    e.add_argument(
        "--reference",
        metavar="NAME",
        help=f"SOURCE is a published model: {', '.join(sorted(REFERENCE_MODELS))}",
    )
    e.add_argument(
        "--env-id",
        help=f"override the task: {', '.join(sorted(TASKS))}, or any Gymnasium id with a 1-D Box "
        "observation",
    )
    e.add_argument("--seed-offset", type=non_negative_int, default=0, help="first test seed")
    e.add_argument("--float64", action="store_true", help="run the policy in double precision")
    e.add_argument("--device", default="cpu", help="where the policy runs: cpu (default) or cuda")
    e.add_argument(
        "--engine",
        choices=ENGINES,
        help="the batched engine (default: the reference, the task's simulator where it has "
        "one, else stock Gymnasium)",
    )

    r = sub.add_parser("record", help="record a video of an agent whose inputs are shuffled")
    r.add_argument(
        "source", help="a run folder, a .npz checkpoint, a shipped agent, or a preset's name"
    )
    r.add_argument("-o", "--output", required=True, metavar="PATH", help="a .mp4 or .gif file")
    r.add_argument("--compare", metavar="SOURCE2", help="a second agent, side by side")
    r.add_argument(
        "--reference",
        metavar="NAME",
        help=f"SOURCE is a published model: {', '.join(sorted(REFERENCE_MODELS))}",
    )
    r.add_argument("--compare-reference", metavar="NAME", help="SOURCE2 is a published model")
    r.add_argument(
        "--reshuffle-every",
        type=reshuffle_arg,
        default=None,
        metavar="T|LOW-HIGH|never",
        help="new permutations during the episode (default never)",
    )
    r.add_argument("--noise-channels", type=non_negative_int, default=0, metavar="N")
    r.add_argument(
        "--background",
        metavar="IMAGE",
        help="image tasks: the background (CarRacing's grass, Pong's court) replaced by IMAGE, "
        f"a name ({', '.join(offered_backgrounds())}) or an image file",
    )
    r.add_argument(
        "--occlude",
        type=fraction_arg,
        default=0.0,
        metavar="F",
        help="image tasks: hide a fraction F of the patches for the episode",
    )
    r.add_argument(
        "--shuffle",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="shuffle the inputs at reset (default: on)",
    )
    r.add_argument("--seed", type=non_negative_int, default=0, help="episode seed (default 0)")
    r.add_argument(
        "--steps",
        type=positive_int,
        default=1000,
        help="most frames (default 1000); the video ends sooner once every episode has ended",
    )
    r.add_argument("--fps", type=positive_float, default=50, help="default 50; at most 50 for .gif")
    r.add_argument(
        "--env-id",
        help=f"override the task: {', '.join(sorted(TASKS))}, or any Gymnasium id with a 1-D Box "
        "observation",
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bar")

    d = sub.add_parser(
        "demo",
        help="a local web page that plays an agent live; shuffle its inputs from the browser",
    )
    d.add_argument(
        "agent",
        nargs="?",
        default=DEFAULT_PRESET,
        help="a run folder, a .npz checkpoint, a shipped agent, or a preset's name "
        f"(default {DEFAULT_PRESET}); image tasks need a vision policy",
    )
    d.add_argument(
        "--reference",
        metavar="NAME",
        help=f"AGENT is a published model: {', '.join(sorted(REFERENCE_MODELS))}",
    )
    d.add_argument(
        "--env-id",
        help=f"override the task: {', '.join(sorted(TASKS))}, or any Gymnasium id with a 1-D Box "
        "observation",
    )
    d.add_argument(
        "--host", default=DEMO_HOST, help=f"the address to listen on (default {DEMO_HOST})"
    )
    d.add_argument(
        "--port", type=non_negative_int, default=0, help="the port (default: a free one)"
    )
    d.add_argument("--seed", type=non_negative_int, default=0, help="first episode seed")
    d.add_argument(
        "--compare",
        metavar="SOURCE2",
        help="a second agent that plays the same episode beside AGENT, under the same shuffles "
        "(vector tasks; e.g. fnn-baseline)",
    )
    d.add_argument(
        "--max-tabs",
        type=positive_int,
        default=4,
        metavar="N",
        help="tabs with an episode of their own at once; another is told the demo is in use",
    )
    d.add_argument(
        "--export",
        metavar="DIR",
        help="record one episode into DIR (index.html, data.js, frames/) as a page that plays "
        "without a server, instead of serving",
    )
    d.add_argument(
        "--steps",
        type=positive_int,
        metavar="N",
        help="with --export: the most steps recorded (default 500)",
    )
    d.add_argument(
        "--reshuffle-every",
        type=non_negative_int,
        metavar="T",
        help="reshuffle the inputs every T steps (0: off; default 100 with --export, else 0)",
    )

    sub.add_parser("tasks", help="list the task presets and the registered tasks")
    return parser


def _training_overrides(args: argparse.Namespace) -> dict[str, Any]:
    sections: dict[str, dict[str, Any]] = {
        "strategy": {},
        "training": {},
        "perturbations": {},
        "model": {},
    }
    for arg, section, key in [
        ("popsize", "strategy", "popsize"),
        ("strategy", "strategy", "name"),
        ("sigma", "strategy", "sigma_init"),
        ("generations", "training", "generations"),
        ("repeats", "training", "repeats"),
        ("seed", "training", "seed"),
        ("test_every", "training", "test_every"),
        ("test_episodes", "training", "test_episodes"),
        ("train_env", "training", "train_env"),
        ("noise_channels", "perturbations", "noise_channels"),
    ]:
        if getattr(args, arg) is not None:
            sections[section][key] = getattr(args, arg)
    if args.strategy_option:
        sections["strategy"]["options"] = dict(args.strategy_option)
    if args.model_option:
        sections["model"] = dict(args.model_option)
    if args.reshuffle_every is not UNSET:
        sections["perturbations"]["reshuffle_every"] = args.reshuffle_every
    if args.teacher_generations is not None:
        sections["teacher"] = {"training": {"generations": args.teacher_generations}}
    if args.distill_iterations is not None:
        sections["distill"] = {"iterations": args.distill_iterations}
    return {k: v for k, v in sections.items() if v}


def _apply_overrides(preset: TaskPreset, overrides: dict[str, Any]) -> TaskPreset:
    """The preset with command-line overrides; the seed also reseeds a staged run's teacher."""
    staged = {"teacher", "distill"} & set(overrides)
    if "teacher" not in staged and preset.distill is not None:
        staged = set()  # --distill-iterations with a privileged teacher: fine
    if staged and preset.teacher is None:
        verb = "are" if len(staged) > 1 else "is"
        what = "a privileged teacher, not a trained one" if preset.distill else "no teacher"
        raise UsageError(
            f"{' and '.join(STAGE_FLAGS[k] for k in sorted(staged))} {verb} for staged recipes only; "
            f"{preset.name!r} has {what}"
        )
    strategy = overrides.get("strategy", {})
    if "options" in strategy and strategy.get("name", preset.strategy.name) == preset.strategy.name:
        # --strategy-option adds to the preset's options (another --strategy starts from none)
        strategy = {**strategy, "options": {**preset.strategy.options, **strategy["options"]}}
        overrides = {**overrides, "strategy": strategy}
    seed = overrides.get("training", {}).get("seed")
    if seed is not None and preset.teacher is not None:
        teacher = overrides.get("teacher", {})
        training = {**teacher.get("training", {}), "seed": seed}
        overrides = {**overrides, "teacher": {**teacher, "training": training}}
    unknown = sorted(
        set(overrides.get("model", {})) - {f.name for f in dataclasses.fields(preset.model)}
    )
    if unknown:
        settings = ", ".join(f.name for f in dataclasses.fields(preset.model) if f.init)
        raise UsageError(
            f"--model-option {unknown[0]}: the {preset.model.kind} model has no such setting; "
            f"it has {settings}"
        )
    preset = preset.replace(**overrides)
    if "strategy" in overrides:  # a bad option: one line now, not once the run folder exists
        s = preset.strategy
        check_hyperparameters(s.name, s.popsize, sigma_init=s.sigma_init, **s.options)
    return preset


def _workers_changed(run_dir: Path, recorded: int) -> UsageError:
    return UsageError(
        f"{run_dir} was trained with --workers {recorded}; resuming with a different number "
        f"changes the shards and so the results; pass --workers {recorded} or leave it out"
    )


def _resumed_backend(
    args: argparse.Namespace, run_dir: Path, settings: dict[str, Any]
) -> tuple[str, int | str, int]:
    """Backend and workers of a resumed run: ``(backend, workers, recorded workers)``.

    The run's recorded ones unless given; another number of workers is refused (``max``
    is checked once it is resolved).
    """
    recorded = settings.get("workers", DEFAULT_WORKERS)
    if args.workers not in (None, "max", recorded):
        raise _workers_changed(run_dir, recorded)
    backend = args.backend or settings.get("backend", DEFAULT_BACKEND)
    return backend, args.workers or recorded, recorded


def _new_preset(args: argparse.Namespace) -> TaskPreset:
    """The recipe of a new run: the preset TASK, or the generic recipe of ``--env-id``."""
    if args.env_id is None:
        return get_preset(args.task or DEFAULT_PRESET)
    if args.task:
        raise UsageError(
            f"give a preset or --env-id, not both: {args.task!r} and --env-id {args.env_id}"
        )
    return generic_preset(args.env_id)


def _on_engine(preset: TaskPreset, engine: str | None) -> TaskPreset:
    """The preset (and its teacher) on ``engine``, else on the one it names or its task's
    default: the engine a new run records in its config.json."""
    engine = get_task(preset.env_id).check_engine(engine or preset.engine)
    if preset.teacher is None:
        return preset.replace(engine=engine)
    return preset.replace(engine=engine, teacher={"engine": engine})


def _init_params(source: str, preset: TaskPreset) -> np.ndarray:
    """The parameters of ``--init SOURCE``, checked against the recipe's model."""
    if preset.distill is not None:
        raise UsageError(
            f"--init is for one-stage recipes; {preset.name!r} is staged (its student comes "
            "from distillation)"
        )
    policy = load_policy(source)
    if policy.model.to_dict() != preset.model.to_dict():
        raise UsageError(
            f"--init {source}: its {policy.model.kind} model ({policy.num_params} parameters) "
            f"is not the one of {preset.name!r} ({preset.model.kind}, "
            f"{preset.model.num_params} parameters)"
        )
    return policy.params.astype(np.float64)


def cmd_train(args: argparse.Namespace) -> int:
    check_device(args.device)
    if args.resume and (args.env_id or args.engine or args.init):
        given = [("--env-id", args.env_id), ("--engine", args.engine), ("--init", args.init)]
        flags = " and ".join(f for f, v in given if v)
        raise UsageError(
            f"{flags} cannot be given when resuming: a run keeps its task, engine and start"
        )
    if args.strategy is not None and args.strategy not in STRATEGIES:
        raise UsageError(
            f"unknown strategy {args.strategy!r}; allowed: {', '.join(sorted(STRATEGIES))}"
        )
    overrides = _training_overrides(args)
    backend_name, workers = args.backend or DEFAULT_BACKEND, args.workers or DEFAULT_WORKERS
    recorded, recorded_budget = None, None
    episodes_from, init = args.episodes_from, None
    if args.resume:
        run_dir = Path(args.resume)
        preset, settings = resume_preset(run_dir)
        if args.task and args.task != preset.name:
            raise UsageError(f"{run_dir} is a {preset.name!r} run, not {args.task!r}")
        changed = sorted(
            k
            for name, section in overrides.items()
            for k in section
            if name not in ("teacher", "distill") and k != "generations"
        )
        changed += [flag for name, flag in STAGE_FLAGS.items() if name in overrides]
        if changed:
            raise UsageError(
                f"cannot change {', '.join(changed)} when resuming; only --generations may change"
            )
        preset = _apply_overrides(preset, overrides)
        backend_name, workers, recorded = _resumed_backend(args, run_dir, settings)
        recorded_budget = settings.get(TIME_BUDGET)
        time_budget = recorded_budget  # the run's own, unless a new one is given
        episodes_from = episodes_from or settings.get(EPISODES_FROM)
    else:
        preset = _on_engine(_apply_overrides(_new_preset(args), overrides), args.engine)
        if args.init is not None:
            init = _init_params(args.init, preset)
        time_budget = preset.training.time_budget
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path(
            args.out or Path(args.runs_dir) / f"{preset.name}-s{preset.training.seed}-{stamp}"
        )
    if args.time_budget is not None:
        time_budget = None if args.time_budget == NO_BUDGET else args.time_budget
    # a resumed run's folder is held from here (its settings may change below); train() holds
    # a new run's once it has made the folder
    held = hold_run_folder(run_dir, create=False) if args.resume else contextlib.nullcontext()
    with console(), held, make_backend(backend_name, workers, args.address) as backend:
        if recorded is not None and backend.workers != recorded:  # --workers max elsewhere
            raise _workers_changed(run_dir, recorded)
        run_settings: dict[str, Any] = {"backend": backend.name, "workers": backend.workers}
        if time_budget is not None:
            run_settings[TIME_BUDGET] = time_budget
        if episodes_from is not None:
            run_settings[EPISODES_FROM] = str(episodes_from)
        if init is not None:
            run_settings[INIT] = str(args.init)
        if args.resume and time_budget != recorded_budget:  # kept for the next --resume
            update_run_settings(run_dir, **{TIME_BUDGET: time_budget})
        result = train(
            preset,
            run_dir,
            resume=bool(args.resume),
            backend=backend,
            checkpoint_every=args.checkpoint_every,
            final_episodes=args.final_episodes,
            progress=not args.no_progress and sys.stderr.isatty(),
            run_settings=run_settings,
            device=args.device,
            time_budget=time_budget,
            episodes_from=episodes_from,
            init=init,
        )
    print(f"run folder: {result.run_dir}")
    return result.exit_code if result.interrupted else 0


def _eval_env_id(args: argparse.Namespace, policy: Policy) -> str:
    """The task of `evolve eval`: --env-id, else the one the policy was trained on."""
    env_id = args.env_id or (policy.task or {}).get("env_id")
    if env_id is None:
        raise UsageError(f"{args.source} does not say which task it was trained on; pass --env-id")
    get_task(env_id)  # a ConfigError names the allowed tasks
    return env_id


def _eval_engine(engine: str | None, env_id: str) -> str:
    """``--engine``, else the reference: the task's simulator (bit for bit its Gymnasium env)
    where it has one, else stock Gymnasium."""
    spec = get_task(env_id)
    if engine is None:
        engine = next((e for e in ("simulator", "gym") if e in spec.engines), spec.engines[0])
    return spec.check_engine(engine)


def _paper_table_fnn(
    args: argparse.Namespace, shipped: str | None = FNN_BASELINE
) -> tuple[Policy | None, str]:
    """The feed-forward baseline of `--paper-table`, and where it came from.

    ``--fnn SOURCE`` if given; else the teacher of a staged run folder
    (``SOURCE/teacher/best.npz``); else the shipped agent ``shipped`` (None, and ``""``,
    where none ships for the task).
    """
    teacher = Path(args.source) / "teacher" / "best.npz"
    if args.fnn:
        source = str(args.fnn)
    elif teacher.is_file():
        source = str(teacher)
    elif shipped is None:
        return None, ""
    else:
        source = shipped
    policy = load_policy(source)
    if not isinstance(policy.model, FeedForwardModel):
        raise UsageError(
            f"{source} is not a feed-forward baseline (its model is {policy.model.kind}); "
            "pass one with --fnn"
        )
    return policy, source


def cmd_paper_table(args: argparse.Namespace, policy: Policy) -> int:
    """`evolve eval SOURCE --paper-table DIR`: the paper's tables beside ours."""
    if isinstance(policy.model, FeedForwardModel):
        raise UsageError(
            f"{args.source} is a feed-forward model; --paper-table takes the AttentionNeuron "
            "agent as SOURCE (the baseline goes in --fnn)"
        )
    env_id = _eval_env_id(args, policy)
    if args.occluded and env_id != PONG_ID:
        raise UsageError(f"--occluded is for the {PONG_ID} table, not {env_id}'s")
    if env_id == PONG_ID:
        return _pong_table(args, policy)
    if env_id == CARRACING_ID:
        return _carracing_table(args, policy)
    for option, value in (("--published", args.published), ("--cnn", args.cnn)):
        if value:
            raise UsageError(f"{option} is for the {CARRACING_ID} table, not {env_id}'s")
    if env_id not in PAPER_TABLES:
        tables = ", ".join([*PAPER_TABLES, CARRACING_ID, PONG_ID])
        raise UsageError(
            f"--paper-table reproduces the paper's tables of {tables}, not {env_id}'s; "
            f"use --env-id {PAPER_ENV_ID}"
        )
    table = PAPER_TABLES[env_id]
    fnn, fnn_source = _paper_table_fnn(args, table.shipped_fnn)
    out = Path(args.paper_table)
    episodes = args.episodes or table.episodes
    with make_backend("local", args.workers) as backend:
        result = measure_paper_table(
            policy,
            fnn,
            env_id,
            episodes,
            backend,
            seed_offset=args.seed_offset,
            pi_source=str(args.source),
            fnn_source=fnn_source,
        )
    return _write_table(out, "paper_table", result, format_paper_table, plot_paper_table)


def _write_table(
    out: Path,
    stem: str,
    result: dict[str, Any],
    text: Callable[[dict[str, Any]], str],
    plot: Callable[[dict[str, Any], Path], None],
) -> int:
    """Print a measured paper table and write ``out/stem.json`` and ``out/stem.png``."""
    print(text(result))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{stem}.json", json.dumps(result, indent=1) + "\n")
    plot(result, out / f"{stem}.png")
    print(f"wrote {out / f'{stem}.json'}")
    print(f"wrote {out / f'{stem}.png'}")
    return 0


def _carracing_table(args: argparse.Namespace, policy: Policy) -> int:
    """`evolve eval SOURCE --paper-table DIR` for CarRacing: the paper's figures beside ours."""
    if args.fnn:
        raise UsageError(f"--fnn names the cart-pole baseline; the {CARRACING_ID} table has none")
    published = None
    if args.published:
        published = load_reference_policy(args.published, name="carracing_pi")
    baseline = None
    if args.cnn:
        baseline = load_policy(args.cnn)
        if not isinstance(baseline.model, ConvModel):
            raise UsageError(
                f"--cnn {args.cnn}: not a CNN baseline (its model is {baseline.model.kind})"
            )
    out = Path(args.paper_table)
    with console(), make_backend("local", args.workers) as backend:
        result = measure_carracing_table(
            policy,
            args.episodes or CARRACING_EPISODES,
            backend,
            published=published,
            baseline=baseline,
            seed_offset=args.seed_offset,
            agent_source=str(args.source),
            published_source=str(args.published or ""),
            baseline_source=str(args.cnn or ""),
            engine=_eval_engine(args.engine, CARRACING_ID),
            cells=out / "cells",  # each row kept as measured: a killed table resumes
        )
    return _write_table(
        out, "carracing_table", result, format_carracing_table, plot_carracing_table
    )


def _pong_table(args: argparse.Namespace, policy: Policy) -> int:
    """`evolve eval SOURCE --paper-table DIR` for Pong: the paper's figures beside ours."""
    for option, value in (
        ("--fnn", args.fnn),
        ("--published", args.published),
        ("--cnn", args.cnn),
    ):
        if value:
            raise UsageError(f"{option} is not measured by the {PONG_ID} table")
    occluded = None if args.occluded is None else load_policy(args.occluded)
    if occluded is not None and (occluded.task or {}).get("env_id") != PONG_ID:
        raise UsageError(
            f"--occluded {args.occluded}: an agent of {(occluded.task or {}).get('env_id')}, "
            f"not {PONG_ID}"
        )
    out = Path(args.paper_table)
    with console(), make_backend("local", args.workers) as backend:
        result = measure_pong_table(
            policy,
            args.episodes or PONG_EPISODES,
            backend,
            occluded=occluded,
            seed_offset=args.seed_offset,
            agent_source=str(args.source),
            occluded_source=str(args.occluded or ""),
            cells=out / "cells",  # each row kept as measured: a killed table resumes
        )
    return _write_table(out, "pong_table", result, format_pong_table, plot_pong_table)


def _check_paper_table_options(args: argparse.Namespace) -> None:
    """Options that --paper-table excludes, or that need it: checked before any loading."""
    if args.paper_table is None:
        if args.fnn:
            raise UsageError("--fnn names the baseline of --paper-table; add --paper-table DIR")
        for option, value in (
            ("--published", args.published),
            ("--cnn", args.cnn),
            ("--occluded", args.occluded),
        ):
            if value:
                raise UsageError(f"{option} is measured by --paper-table; add --paper-table DIR")
        return
    if args.condition:
        raise UsageError("--condition cannot be used with --paper-table (its conditions are fixed)")
    if args.json:
        raise UsageError(
            "--json cannot be used with --paper-table (it writes DIR/paper_table.json)"
        )
    out = Path(args.paper_table)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--paper-table {out}: exists and is not a folder")


def cmd_eval(args: argparse.Namespace) -> int:
    check_device(args.device)
    _check_paper_table_options(args)
    conditions = [parse_condition(c) for c in args.condition or ()]  # bad ones before loading
    if args.reference:
        policy = load_reference_policy(args.source, name=args.reference)
    else:
        policy = load_policy(args.source)
    if args.paper_table is not None:
        return cmd_paper_table(args, policy)
    env_id = _eval_env_id(args, policy)
    if not conditions:
        conditions = [parse_condition(c) for c in default_conditions(get_task(env_id).observation)]
    with make_backend("local", args.workers) as backend:
        rows = evaluate_policy(
            policy,
            env_id,
            conditions,
            episodes=args.episodes or EVAL_EPISODES,
            seed_offset=args.seed_offset,
            backend=backend,
            float64=args.float64,
            engine=_eval_engine(args.engine, env_id),
            device=args.device,
        )
    print(format_table(rows, f"{args.source} on {env_id}, held-out episodes"))
    if args.json:
        payload = {"source": str(args.source), "env_id": env_id, "conditions": rows}
        atomic_write_text(args.json, json.dumps(payload, indent=1) + "\n")
    return 0


def _record_source(source: str, reference: str | None) -> tuple[Policy, str]:
    """Load one SOURCE of `evolve record`, and name it for the video."""
    if reference:
        policy = load_reference_policy(source, name=reference)
        return policy, default_label(policy)
    try:
        policy = load_policy(source)
    except CheckpointError:
        if source in PRESETS and not Path(source).exists():
            shipped = ", ".join(pretrained_names()) or "none shipped yet"
            raise CheckpointError(
                f"{source}: no trained agent is shipped for this task yet (pretrained agents: "
                f"{shipped}); record a run folder or a .npz instead"
            ) from None
        raise
    return policy, f"{default_label(policy)}: {Path(source).name}"


def cmd_record(args: argparse.Namespace) -> int:
    output = check_output(args.output)  # before any loading: a bad path fails at once
    check_fps(args.fps, output)
    if args.reshuffle_every is not None and not args.shuffle:
        raise UsageError("--reshuffle-every needs shuffled inputs; drop --no-shuffle")
    if args.compare_reference and not args.compare:
        raise UsageError("--compare-reference names the model of --compare SOURCE2; add --compare")
    sources = [_record_source(args.source, args.reference)]
    if args.compare:
        sources.append(_record_source(args.compare, args.compare_reference))
    preset_env = PRESETS[args.source].env_id if args.source in PRESETS else None
    env_id = args.env_id or (sources[0][0].task or {}).get("env_id") or preset_env
    if env_id is None:
        raise UsageError(f"{args.source} does not say which task it was trained on; pass --env-id")
    get_task(env_id)  # a ConfigError names the allowed tasks
    perturbations = Perturbations(
        shuffle=args.shuffle,
        reshuffle_every=args.reshuffle_every,
        noise_channels=args.noise_channels,
        occlude=args.occlude,
        background=args.background,
    )
    if args.background is not None:
        background_image(args.background)  # an unknown name or unreadable file fails now
    perturbations.agent_side().batch(get_task(env_id).observation)  # options of the other kind
    result = record(
        [policy for policy, _ in sources],
        env_id,
        output,
        perturbations,
        seed=args.seed,
        steps=args.steps,
        fps=args.fps,
        labels=[label for _, label in sources],
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    width, height = result.size
    print(
        f"wrote {result.path}: {result.frames} frames, {width}x{height} at {result.fps:g} fps "
        f"({result.seconds:.1f} s)"
    )
    for agent in result.agents:
        print(
            f"  {agent.label}: return {agent.episode_return:.1f} over {agent.steps} steps, "
            f"{len(agent.reshuffle_steps)} reshuffles"
        )
    return 0


def _demo_source(args: argparse.Namespace) -> tuple[Policy, str, str]:
    """The agent of `evolve demo`, its label and its task."""
    policy, label = _record_source(args.agent, args.reference)
    preset_env = PRESETS[args.agent].env_id if args.agent in PRESETS else None
    env_id = args.env_id or (policy.task or {}).get("env_id") or preset_env
    if env_id is None:
        raise UsageError(f"{args.agent} does not say which task it was trained on; pass --env-id")
    return policy, label, env_id


def _demo_export(args: argparse.Namespace, policy: Policy, label: str, env_id: str) -> int:
    from evolve.demo.export import DEFAULT_RESHUFFLE_EVERY, DEFAULT_STEPS, check_folder, export

    check_folder(args.export)  # a bad folder fails before the episode (a ConfigError: exit 2)
    every = DEFAULT_RESHUFFLE_EVERY if args.reshuffle_every is None else args.reshuffle_every
    result = export(
        policy,
        env_id,
        args.export,
        steps=args.steps or DEFAULT_STEPS,
        seed=args.seed,
        reshuffle_every=every,
        label=label,
    )
    ended = "the episode ended" if result.ended else "the episode goes on"
    print(
        f"wrote {result.page}: {result.steps} steps, return {result.episode_return:.1f} "
        f"({ended}); open it in a browser"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.steps is not None and args.export is None:
        raise UsageError("--steps sets the length of an --export; add --export DIR")
    if args.export is not None and args.compare is not None:
        raise UsageError("--compare plays live only; an --export records one agent")
    if args.export is not None:
        from evolve.demo.session import DemoSession

        policy, label, env_id = _demo_source(args)
        DemoSession(policy, env_id, seed=args.seed, label=label).close()  # a bad task fails now
        return _demo_export(args, policy, label, env_id)
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401

        from evolve.demo.app import bind, create_app, serve, url
    except ImportError as exc:
        raise UsageError(
            f"evolve demo needs the demo extra ({exc.name} is missing): pip install -e '.[demo]'"
        ) from None
    from evolve.demo.session import DemoSession

    policy, label, env_id = _demo_source(args)
    baseline, baseline_label = _record_source(args.compare, None) if args.compare else (None, None)
    side = {"baseline": baseline, "baseline_label": baseline_label}
    DemoSession(policy, env_id, seed=args.seed, label=label, **side).close()  # fails now
    app = create_app(
        policy,
        env_id,
        label=label,
        seed=args.seed,
        max_sessions=args.max_tabs,
        reshuffle_every=args.reshuffle_every or 0,
        **side,
    )
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
        ) from None
    print(f"evolve demo: {label} on {env_id}, listening on {args.host}", flush=True)
    print(f"open {url(sock)} (Ctrl-C stops it)", flush=True)
    with sock:
        serve(app, sock)
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    for name in sorted(PRESETS):
        p = PRESETS[name]
        default = " (default)" if name == DEFAULT_PRESET else ""
        print(f"{name}{default}")
        print(f"    {p.description}")
        if p.teacher is not None and p.distill is not None:
            t = p.teacher
            print(
                f"    1. teacher: {t.model.kind} ({t.model.num_params} params), "
                f"{t.perturbations.describe()}, {t.strategy.name} x{t.strategy.popsize}, "
                f"{t.training.generations} generations x {t.training.repeats} episodes"
            )
            print(
                f"    2. distillation: {p.distill.iterations} iterations x "
                f"{p.distill.episodes} episodes"
            )
            print("    3. evolution of the distilled student:")
        if p.teacher_controller is not None and p.distill is not None:
            print(
                f"    1. distillation from the privileged {p.teacher_controller} teacher: "
                f"{p.distill.iterations} iterations x {p.distill.episodes} episodes"
            )
            if p.training.generations:
                print("    2. evolution of the distilled student:")
        evolution = (
            f"{p.strategy.name} x{p.strategy.popsize} | {p.training.generations} generations x "
            f"{p.training.repeats} episodes"
            if p.training.generations
            else "no evolution stage"
        )
        print(
            f"    env {p.env_id} | {p.perturbations.describe()} | {p.model.kind} "
            f"({p.model.num_params} params) | {evolution}"
        )
    print()
    print(
        "registered tasks (evolve train --env-id ID: the generic recipe; any other Gymnasium id "
        "with a 1-D Box observation and a bounded Box or Discrete action works too):"
    )
    for env_id in sorted(TASKS):
        spec = TASKS[env_id]
        print(env_id)
        print(f"    {spec.description}")
        print(
            f"    {spec.observation.describe()} | action {spec.action.describe()} | "
            f"{spec.max_steps} steps | engines {', '.join(spec.engines)}"
        )
    return 0


COMMANDS = {
    "train": cmd_train,
    "eval": cmd_eval,
    "record": cmd_record,
    "demo": cmd_demo,
    "tasks": cmd_tasks,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError("a command is required; allowed: train, eval, record, demo, tasks")
        return COMMANDS[args.command](args)
    except DivergedError as exc:
        logging.shutdown()
        print(f"evolve: error: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    except StorageError as exc:
        logging.shutdown()
        print(f"evolve: error: {exc}", file=sys.stderr)
        return EXIT_STORAGE
    except (UsageError, SensoryNeuronError) as exc:
        logging.shutdown()
        print(f"evolve: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("evolve: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (``evolve tasks | head``): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that flushing at exit does not fail again
        return 0


if __name__ == "__main__":
    sys.exit(main())
