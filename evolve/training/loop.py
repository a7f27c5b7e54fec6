"""The training loop: ask, evaluate the population as batched rollouts, tell, test, save.

Reads top to bottom: set up (or resume) the run folder, then one generation per iteration.
A run resumed from its ``state.npz`` ends with exactly the parameters an uninterrupted run
would have reached: episode seeds depend only on (seed, generation), and the strategy's
state, random generator included, round-trips exactly.

With a time budget (:mod:`evolve.training.budget`) each stage gets a deadline, carried by
the ``StopRequest``: a stage past it ends after its current generation (or iteration), and
the recipe goes on to the next stage and the closing table.
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from evolve.backends import Backend, LocalBackend
from evolve.evaluation.conditions import default_conditions, parse_condition
from evolve.evaluation.evaluate import evaluate_policy, format_table
from evolve.logs import attach_file, get_logger
from evolve.presets import TaskPreset
from evolve.rollout import EpisodeJob
from evolve.seeds import strategy_seed, training_seeds
from evolve.strategies import DivergedError, Strategy, make_strategy, warn_if_costly
from evolve.strategies.subspace import Subspace
from evolve.training.budget import (
    DISTILLATION,
    EVOLUTION,
    RESERVE,
    TEACHER,
    Budget,
    StageCut,
    StageDeadline,
    recipe_stages,
)
from evolve.training.distill import (
    DISTILL_DIR,
    ControllerTeacher,
    RecordedEpisodes,
    distill,
    load_distill_state,
    recorded_episodes,
)
from evolve.training.held_out import held_out_score
from evolve.training.run_folder import (
    INIT_FILE,
    RunState,
    load_state,
    plot_curve,
    read_budget_cuts,
    read_config,
    read_init,
    save_state,
    write_budget_cuts,
    write_config,
    write_init,
    write_log_csv,
)
from evolve.training.run_lock import hold_run_folder
from evolve.training.stopping import StopRequest, stop_on_signals
from sensoryneuron.checkpoints import load_policy, save_policy
from sensoryneuron.errors import CheckpointError, ConfigError
from sensoryneuron.files import atomic_write_text
from sensoryneuron.policy import Policy
from tasks.spec import get_task
from tasks.teachers import make_teacher

log = get_logger()

TEACHER_DIR = "teacher"


@dataclass(frozen=True)
class TrainResult:
    """Where a run ended."""

    run_dir: Path
    generation: int
    best_test: float
    interrupted: bool
    final_table: list[dict[str, Any]] | None
    exit_code: int = 0  # 130 (SIGINT) or 143 (SIGTERM) when a signal stopped the run
    cut: StageCut | None = None  # where the time budget stopped the (last) stage


def build_strategy(preset: TaskPreset, x0: np.ndarray | None = None) -> tuple[Strategy, Subspace]:
    """The recipe's strategy, centred on ``x0`` (default: zeros), and the part of the
    parameters it searches (``strategy.params``; the rest stay as in ``x0``)."""
    s = preset.strategy
    space = Subspace.of(preset.model.param_spec, s.params, x0)
    start = {} if x0 is None else {"x0": space.reduce(space.base)}
    strategy = make_strategy(
        s.name,
        num_params=space.size,
        popsize=s.popsize,
        seed=strategy_seed(preset.training.seed),
        sigma_init=s.sigma_init,
        **start,
        **s.options,
    )
    return strategy, space


def _job(preset: TaskPreset, seeds: list[int], env_id: str | None = None) -> EpisodeJob:
    """Episodes of ``seeds`` on ``env_id`` (default: the preset's env)."""
    return EpisodeJob(
        model=preset.model.to_dict(),
        env_id=env_id or preset.env_id,
        perturbations=preset.perturbations.to_dict(),
        seeds=tuple(seeds),
        engine=preset.engine,
    )


def _policy(preset: TaskPreset, center: np.ndarray, info: dict[str, Any]) -> Policy:
    """The policy at ``center``, acting in the task's action space."""
    return Policy(
        preset.model,
        center.astype(np.float32),
        task=preset.to_dict(),
        info=info,
        action=get_task(preset.env_id).action,
    )


def train(
    preset: TaskPreset,
    run_dir: str | Path,
    *,
    resume: bool = False,
    backend: Backend | None = None,
    checkpoint_every: int = 5,
    final_episodes: int = 100,
    progress: bool = True,
    run_settings: dict[str, Any] | None = None,
    stop: StopRequest | None = None,
    device: str | None = None,
    time_budget: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    episodes_from: str | Path | None = None,
    init: np.ndarray | None = None,
) -> TrainResult:
    """Train ``preset`` into ``run_dir`` (or continue the run there with ``resume``).

    A staged recipe runs its stages in order, each in its own folder, and a resumed run
    continues with the stage it was in: the teacher in ``run_dir/teacher`` (a complete run
    folder of its own), the distillation in ``run_dir/distill``, then evolution from the
    distilled student in ``run_dir`` itself.

    Args:
        preset: the recipe; with ``resume`` it must be the run's own (see ``read_config``).
        run_dir: the run folder.
        resume: continue from the checkpoints in ``run_dir``.
        backend: where rollouts run (default: inline, one process).
        checkpoint_every: generations between ``state.npz``/``latest.npz`` writes.
        final_episodes: held-out episodes per condition in the closing table (0: skip it).
        progress: show a progress bar with ETA.
        run_settings: extra facts for ``config.json`` (workers, backend); not part of the
            recipe and not affecting results.
        stop: set by SIGINT/SIGTERM (see :mod:`evolve.training.stopping`); default: this
            call installs the handlers for its duration.
        device: where the distillation stage fits and tests its student (None: the CPU; a
            GPU with ``cuda``). Rollouts for evolution stay on the CPU.
        time_budget: minutes for the whole run, split over its stages as
            :mod:`evolve.training.budget` says (None: each stage runs to its end). A stage
            past its deadline stops after its current generation or iteration, saves, and
            the recipe moves on; the run still ends with the closing table (not
            ``interrupted``). ``budget.json`` records the stages it cut.
        clock: the budget's clock (seconds, monotonic).
        episodes_from: a run folder whose recorded episodes the distillation takes where
            its scripted teacher drives an iteration whole and the two recipes collect alike
            (see :func:`evolve.training.distill.distill`): checked before anything is written.
        init: a new one-stage run's start point, one value per model parameter (default:
            zeros), e.g. another run's centre to evolve on with other settings. Kept in
            ``run_dir/init.npz``, so a resumed run (which takes no ``init``) builds the same
            strategy; parameters outside ``strategy.params`` stay at these values.

    A member whose fitness is NaN or infinite ranks last, and the generation's log line
    counts such members (``| 3 non-finite``); its statistics are those of the others.

    Raises:
        DivergedError: a whole generation's fitness is non-finite. The last generation with
            a finite fitness is saved first, so the run folder holds its checkpoints.
        RunInUseError: another process is training into ``run_dir`` (it holds
            ``run_dir/.lock``, see :mod:`evolve.training.run_lock`).
        StorageError: a checkpoint or log could not be written (a full disk, a read-only or
            vanished folder); the checkpoints written before are intact.
    """
    if stop is None:
        with stop_on_signals() as stop:
            return train(
                preset,
                run_dir,
                resume=resume,
                backend=backend,
                checkpoint_every=checkpoint_every,
                final_episodes=final_episodes,
                progress=progress,
                run_settings=run_settings,
                stop=stop,
                device=device,
                time_budget=time_budget,
                clock=clock,
                episodes_from=episodes_from,
                init=init,
            )
    # read and checked once, before anything is written
    recorded = None if episodes_from is None else recorded_episodes(preset, Path(episodes_from))
    if init is not None:
        init = _checked_init(preset, init, resume)
    run_dir = Path(run_dir)
    backend = backend or LocalBackend(1)
    # one writer per run folder, held until the run ends (see evolve.training.run_lock)
    with hold_run_folder(run_dir, create=not resume) as lock:
        checkpointed = any(
            (run_dir / name).exists() for name in ("state.npz", TEACHER_DIR, DISTILL_DIR)
        )
        if not resume:
            if checkpointed:
                raise CheckpointError(f"{run_dir} already holds a run; resume it with --resume")
            if init is not None:
                write_init(run_dir, init)
            else:  # left by a run started here that stopped before its first checkpoint
                (run_dir / INIT_FILE).unlink(missing_ok=True)
            write_config(run_dir, preset, run_settings or {})
        afresh = resume and not checkpointed  # stopped before its first checkpoint
        resume = resume and checkpointed
        file_handler = attach_file(run_dir)
        lock.report_takeover()
        if afresh:
            log.info("%s: the run stopped before its first checkpoint; it starts afresh", run_dir)
        try:
            budget = None
            if time_budget is not None:
                reserve = RESERVE if final_episodes > 0 else 0.0
                budget = Budget(time_budget, recipe_stages(preset), reserve, clock)
                log.info("time budget: %s", budget.describe())
            x0 = read_init(run_dir, preset.model.num_params)
            if preset.distill is not None:
                # said now, not when the last stage builds its strategy after the other two
                space = Subspace.of(preset.model.param_spec, preset.strategy.params, None)
                warn_if_costly(preset.strategy.name, space.size)
                stopped, x0 = _earlier_stages(
                    preset,
                    run_dir,
                    resume,
                    backend,
                    final_episodes,
                    progress,
                    run_settings,
                    stop,
                    device,
                    budget,
                    recorded,
                )
                if stopped is not None:
                    return stopped
            result = _evolve(
                preset,
                run_dir,
                x0,
                # a staged run resumed before its last stage started begins that stage afresh
                resume=resume and (preset.distill is None or (run_dir / "state.npz").exists()),
                backend=backend,
                checkpoint_every=checkpoint_every,
                final_episodes=final_episodes,
                progress=progress,
                stop=stop,
                budget=budget,
            )
            if budget is not None and not result.interrupted:
                _end_stage(budget, stop)
                _closing_note(run_dir, budget, result.cut)
            return result
        finally:
            log.removeHandler(file_handler)
            file_handler.close()


def _checked_init(preset: TaskPreset, init: Any, resume: bool) -> np.ndarray:
    """``init`` as float64, checked against the recipe (ConfigError otherwise)."""
    if resume:
        raise ConfigError("init applies to a new run; a resumed run goes on from its checkpoint")
    if preset.distill is not None:
        raise ConfigError(
            f"init applies to a one-stage recipe; {preset.name!r} is staged (its student "
            "comes from distillation)"
        )
    n = preset.model.num_params
    try:
        params = np.asarray(init, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"init must be {n} numbers, got {type(init).__name__}") from None
    if params.shape != (n,) or not np.all(np.isfinite(params)):
        raise ConfigError(
            f"init must hold {n} finite values (one per parameter of {preset.name!r}'s model), "
            f"got shape {params.shape}" + ("" if params.shape != (n,) else " with non-finite ones")
        )
    return params


def _earlier_stages(
    preset: TaskPreset,
    run_dir: Path,
    resume: bool,
    backend: Backend,
    final_episodes: int,
    progress: bool,
    run_settings: dict[str, Any] | None,
    stop: StopRequest,
    device: str | None = None,
    budget: Budget | None = None,
    recorded: RecordedEpisodes | None = None,
) -> tuple[TrainResult | None, np.ndarray | None]:
    """Teacher, then distillation: (a result if Ctrl-C stopped them, the distilled params).

    A privileged controller (``teacher_controller``) needs no training: the recipe then has
    two stages, distillation and evolution. A stage that the time budget cut (in this session
    or an earlier one) is finished: the recipe goes on from what it had.
    """
    cuts = read_budget_cuts(run_dir) if resume else {}
    teacher: Policy | ControllerTeacher
    if preset.teacher_controller is not None:
        controller = make_teacher(preset.teacher_controller, preset.env_id, preset.teacher_options)
        teacher = ControllerTeacher(controller, get_task(preset.env_id).action)
        stage, stages = 1, 2
        log.info("stage 1 of 2: distilling the %s teacher", preset.teacher_controller)
    else:
        assert preset.teacher is not None
        teacher_dir = run_dir / TEACHER_DIR
        teacher_state = teacher_dir / "state.npz"
        teacher_run = load_state(teacher_dir)[0] if teacher_state.exists() else RunState()
        done = teacher_state.exists() and (
            teacher_run.generation >= preset.teacher.training.generations or TEACHER in cuts
        )
        if done and TEACHER in cuts:
            log.info("time budget: %s, in an earlier session", cuts[TEACHER].describe())
        if done and budget is not None:
            budget.spent[TEACHER] = teacher_run.wall_time
        if not done:
            log.info("stage 1 of 3: the teacher, %s", preset.teacher.description)
            _start_stage(budget, stop, TEACHER, teacher_run.wall_time)
            result = train(
                preset.teacher,
                teacher_dir,
                resume=resume and teacher_state.exists(),
                backend=backend,
                final_episodes=final_episodes,
                progress=progress,
                run_settings=run_settings,
                stop=stop,
            )
            _end_stage(budget, stop)
            if result.interrupted:
                return TrainResult(run_dir, 0, result.best_test, True, None, result.exit_code), None
            if result.cut is not None:
                cuts[TEACHER] = result.cut
                write_budget_cuts(run_dir, cuts)
        teacher = load_policy(teacher_dir / "best.npz")
        stage, stages = 2, 3
        log.info("stage 2 of 3: distilling the teacher into the %s", preset.model.kind)
    stage_dir = run_dir / DISTILL_DIR
    spent = 0.0
    if budget is not None and resume and (stage_dir / "state.npz").exists():
        spent = load_distill_state(stage_dir).wall_time
    if DISTILLATION in cuts:
        log.info("time budget: %s, in an earlier session", cuts[DISTILLATION].describe())
        if budget is not None:
            budget.spent[DISTILLATION] = spent
    else:
        deadline = _start_stage(budget, stop, DISTILLATION, spent)
        distilled = distill(
            preset,
            stage_dir,
            teacher,
            resume=resume,
            backend=backend,
            stop=stop,
            device=device,
            recorded=recorded,
        )
        _end_stage(budget, stop)
        if distilled.interrupted:
            return TrainResult(run_dir, 0, distilled.best_test, True, None, stop.exit_code), None
        assert preset.distill is not None
        if deadline is not None and distilled.iteration < preset.distill.iterations:
            cuts[DISTILLATION] = deadline.cut(
                "iteration", distilled.iteration, preset.distill.iterations
            )
            log.info("time budget: %s", cuts[DISTILLATION].describe())
            write_budget_cuts(run_dir, cuts)
    if preset.training.generations == 0:
        log.info(
            "no evolution stage (training.generations = 0): the distilled student ends the run"
        )
    else:
        log.info("stage %d of %d: evolving the distilled student", stage + 1, stages)
    # a distillation cut by the time budget before its first test has no best.npz
    best = stage_dir / "best.npz"
    return None, load_policy(best if best.exists() else stage_dir / "latest.npz").params


def _start_stage(
    budget: Budget | None, stop: StopRequest, stage: str, spent_before: float
) -> StageDeadline | None:
    """With a budget, give ``stage`` its deadline (``stop.deadline``) from now."""
    if budget is None:
        return None
    stop.deadline = budget.start(stage, spent_before)
    log.info(
        "time budget: the %s may use %.1f min in all (%.1f min spent before)",
        stage,
        stop.deadline.allowed / 60,
        spent_before / 60,
    )
    return stop.deadline


def _end_stage(budget: Budget | None, stop: StopRequest) -> None:
    """Count what the stage spent, for the later ones; the next has no deadline yet."""
    if budget is not None and stop.deadline is not None:
        budget.finish(stop.deadline)
    stop.deadline = None


def _closing_note(run_dir: Path, budget: Budget, evolution: StageCut | None) -> None:
    """Record whether the budget cut the last stage; say which stages it cut, in all."""
    cuts = read_budget_cuts(run_dir)
    cuts.pop(EVOLUTION, None)
    if evolution is not None:
        cuts[EVOLUTION] = evolution
    write_budget_cuts(run_dir, cuts)
    said = [f"{c.stage} at {c.unit} {c.done} of {c.total}" for c in cuts.values()]
    log.info(
        "time budget: %.1f of %g min used by the stages; %s",
        budget.used(),
        budget.minutes,
        f"cut: {', '.join(said)}" if said else "no stage was cut",
    )


def _evolve(
    preset: TaskPreset,
    run_dir: Path,
    x0: np.ndarray | None,
    *,
    resume: bool,
    backend: Backend,
    checkpoint_every: int,
    final_episodes: int,
    progress: bool,
    stop: StopRequest,
    budget: Budget | None = None,
) -> TrainResult:
    """The evolution loop, from ``x0`` or from ``run_dir/state.npz`` with ``resume``.

    With ``budget`` this is the recipe's evolution stage and gets its deadline here; without,
    the deadline ``stop`` carries applies (a staged recipe's teacher: set by the recipe).
    """
    cfg = preset.training
    strategy, space = build_strategy(preset, x0)
    if resume:
        state, strategy_meta, strategy_arrays = load_state(run_dir)
        strategy.load_state_dict(strategy_meta, strategy_arrays)
    else:
        state = RunState()
    if budget is not None and EVOLUTION in budget.stages:
        _start_stage(budget, stop, EVOLUTION, state.wall_time)
    log.info("config %s", json.dumps(preset.to_dict(), sort_keys=True))
    log.info(
        "%s run %s: %s, %d params%s, %s x%d, %d workers (%s)",
        "resuming" if resume else "starting",
        run_dir,
        preset.name,
        preset.model.num_params,
        f" ({space.size} evolved: {', '.join(preset.strategy.params)})" if space.partial else "",
        preset.strategy.name,
        preset.strategy.popsize,
        backend.workers,
        backend.name,
    )
    snapshot = strategy.state_dict()
    interrupted = False
    bar = tqdm(
        total=cfg.generations,
        initial=state.generation,
        disable=not progress,
        unit="gen",
        dynamic_ncols=True,
    )
    try:
        with logging_redirect_tqdm(loggers=[log]):
            while state.generation < cfg.generations and not stop.should_stop(state.generation):
                started = time.perf_counter()
                gen = state.generation
                population = space.expand(strategy.ask())
                # PGPE's population travels as centre, stdev and noise seeds (of all the
                # parameters); others, and a part of the parameters, as float32.
                compact = None if space.partial else strategy.compact_population()
                result = backend.evaluate(
                    _job(preset, training_seeds(cfg.seed, gen, cfg.repeats), cfg.train_env),
                    population.astype(np.float32) if compact is None else compact,
                )
                fitness = result.fitness + cfg.step_bonus * result.steps.mean(axis=1)
                strategy.tell(fitness)  # non-finite members rank last; none finite: diverged
                elapsed = time.perf_counter() - started
                speed = result.member_steps / elapsed
                non_finite = int(np.count_nonzero(~np.isfinite(fitness)))
                fitness = fitness[np.isfinite(fitness)]  # the statistics are of the others
                log.info(
                    "gen %5d | best %8.2f | mean %8.2f | worst %8.2f | std %7.2f | %8.0f steps/s%s",
                    gen + 1,
                    fitness.max(),
                    fitness.mean(),
                    fitness.min(),
                    fitness.std(),
                    speed,
                    f" | {non_finite} non-finite" if non_finite else "",
                )
                test_score = math.nan
                if (gen + 1) % cfg.test_every == 0 or gen + 1 == cfg.generations:
                    center = space.expand(strategy.center)
                    test_score = _test(preset, center, backend, gen, state, run_dir)
                state.wall_time += time.perf_counter() - started
                state.generation = gen + 1
                row = [fitness.max(), fitness.mean(), fitness.min(), fitness.std()]
                state.log.append([gen, *map(float, row), test_score, speed, state.wall_time])
                snapshot = strategy.state_dict()
                bar.update(1)
                bar.set_postfix(best=f"{fitness.max():.1f}", mean=f"{fitness.mean():.1f}")
                if state.generation % checkpoint_every == 0 or not math.isnan(test_score):
                    _checkpoint(run_dir, preset, space.expand(strategy.center), snapshot, state)
    except KeyboardInterrupt:
        interrupted = True
        stop.signal = stop.signal or signal.SIGINT
    except DivergedError:
        bar.close()
        _checkpoint(run_dir, preset, space.expand(strategy.center), snapshot, state)
        log.error("saved generation %d, the last with a finite fitness", state.generation)
        raise
    finally:
        bar.close()
    if stop.requested:
        interrupted = True
        log.info("interrupted: saving generation %d and exiting", state.generation)
    cut = None
    if not interrupted and state.generation < cfg.generations and stop.deadline is not None:
        cut = stop.deadline.cut("generation", state.generation, cfg.generations)
        log.info("time budget: %s", cut.describe())
        if math.isnan(state.log[-1][5]):  # test the stage's last generation, as at its end
            gen = state.generation - 1
            center = space.expand(strategy.center)
            state.log[-1][5] = _test(preset, center, backend, gen, state, run_dir)
    _checkpoint(run_dir, preset, space.expand(strategy.center), snapshot, state)
    table = None
    if not interrupted and final_episodes > 0:
        table = _final_table(preset, run_dir, backend, final_episodes)
    code = stop.exit_code if interrupted else 0
    return TrainResult(run_dir, state.generation, state.best_test, interrupted, table, code, cut)


def _test(
    preset: TaskPreset,
    center: np.ndarray,
    backend: Backend,
    gen: int,
    state: RunState,
    run_dir: Path,
) -> float:
    """Score the centre on held-out seeds under the training perturbations; keep the best."""
    episodes = preset.training.test_episodes
    test = held_out_score(_policy(preset, center, {}), preset, episodes, backend)
    score = test.mean
    improved = score > state.best_test
    if improved:
        state.best_test, state.best_generation = score, gen + 1
        info = {"generation": gen + 1, "test_score": score, "test_episodes": episodes}
        save_policy(run_dir / "best.npz", _policy(preset, center, info))
    log.info(
        "[test] gen %5d | test %8.2f +- %6.2f over %d held-out episodes | best %8.2f (gen %d)%s",
        gen + 1,
        score,
        test.std,
        test.episodes,
        state.best_test,
        state.best_generation,
        " *" if improved else "",
    )
    return score


def _checkpoint(
    run_dir: Path,
    preset: TaskPreset,
    center: np.ndarray,
    snapshot: tuple[dict[str, Any], dict[str, np.ndarray]],
    state: RunState,
) -> None:
    """``center``: the distribution centre as the model's whole parameter vector."""
    meta, arrays = snapshot
    info = {"generation": state.generation}
    save_policy(run_dir / "latest.npz", _policy(preset, center, info))
    write_log_csv(run_dir, state.log)
    plot_curve(run_dir, state.log, f"{preset.name} ({preset.perturbations.describe()})")
    save_state(run_dir, state, meta, arrays)  # last: what a resume goes on from


def _final_table(
    preset: TaskPreset, run_dir: Path, backend: Backend, episodes: int
) -> list[dict[str, Any]]:
    policy = load_policy(run_dir)
    rows = evaluate_policy(
        policy,
        preset.env_id,
        [parse_condition(c) for c in default_conditions(get_task(preset.env_id).observation)],
        episodes=episodes,
        backend=backend,
    )
    title = f"{run_dir.name}: {policy.info.get('generation', '?')} generations, held-out episodes"
    log.info("\n%s", format_table(rows, title))
    atomic_write_text(run_dir / "eval.json", json.dumps(rows, indent=1) + "\n")
    return rows


def resume_preset(run_dir: str | Path) -> tuple[TaskPreset, dict[str, Any]]:
    """The recipe and run settings a run folder was started with."""
    return read_config(Path(run_dir))
