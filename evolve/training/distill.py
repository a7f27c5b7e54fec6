"""DAgger: distil a teacher policy into a permutation-invariant student.

The middle stage of a staged recipe (see ``TaskPreset``). The teacher reads the true
observation, which the simulator knows; the student reads the perturbed one (shuffled,
reshuffled, with noise). Each iteration the student plays new training episodes, the
teacher labels every step with its action, the labelled episodes join a growing dataset,
and the student is fitted to all of it by backpropagation through time.

With ``identity_weight`` > 0 the student is also taught which sensor feeds each of its
input slots: a linear classifier on every sensory neuron's state predicts the sensor (or
"noise") that the shuffled slot carries, and its cross-entropy joins the loss. The
simulator knows the permutation, so the label is free, like the teacher's action; the
classifier exists only during training and is not part of the policy. It gives the sensory
neurons a direct signal to learn what a permutation-invariant agent must infer anyway.

With ``attention_weight`` > 0 (a softmax-attention student with at least one latent per
sensor) the attention itself is taught to find the sensors: latent k should attend to the
slot(s) that carry sensor k, wherever the shuffle put them (uniformly over the copies when
inputs are duplicated; a noise channel is never a target). The loss is the cross-entropy of
latent k's attention over the slots against that target, averaged over the first ``obs_dim``
latents; the others stay free. At test time nothing is known about the order: the policy
must find its sensors from what they read, which is exactly what the loss rewards.

Data collection is :func:`evolve.rollout.episodes`, the one episode loop, with the student
as its only member: a :class:`TeacherLabels` observer steps the teacher on the true
observation and records each step, and its driver makes the teacher-driven episodes execute
the teacher's outputs. The loop feeds the executed action back as the student's previous
action, and the replay of :func:`imitation_loss` does the same from the recorded actions:
the student's previous-action input is always what the environment executed.

The teacher is a trained policy (:class:`PolicyTeacher`, reading the true observation) or
a privileged controller (:class:`ControllerTeacher`, reading each Gymnasium env's internal
state, such as CarRacing's track; its episodes run on the gym engine). An image task's
episodes are recorded as one uint8 frame per step and fitted on random windows
(:mod:`evolve.training.frame_replay`).

The action loss is the squared error of the student's outputs against the teacher's for a
Box, and for a discrete task (Pong) the cross-entropy of the student's logits against the
teacher's choice (:func:`evolve.training.frame_replay.action_error`; the label is the
choice's one-hot, as is the executed action the student reads back).

With ``distill.ema`` > 0 the student is a moving average of the parameters that Adam
moves (Polyak averaging): it plays the episodes, is tested and saved, so one unlucky last
batch of an iteration does not decide the student of the next.

The stage folder (``run/distill/``) holds ``state.npz`` (student, its average, classifier, Adam moments,
log, the episode count of each dataset chunk: everything needed to resume exactly, and
small), ``data/`` (the labelled episodes, one chunk per iteration, written once; see
:mod:`evolve.training.dataset`), ``latest.npz``, ``best.npz`` (the student with the best
held-out test score, which the next stage starts from) and ``log.csv``.

``state.npz`` version 1 held the whole dataset inline, without the executed actions. It
still loads (parameters, classifier, Adam moments, log: what the benchmarks read), but a
distillation cannot resume from it: :func:`distill` raises a ``CheckpointError`` that names
the version.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evolve.backends import Backend
from evolve.logs import get_logger
from evolve.presets import DistillConfig, TaskPreset
from evolve.rollout import (
    Observer,
    RolloutResult,
    StepView,
    batched_task,
    check_device,
    episodes,
)
from evolve.seeds import distill_init_seed, distill_seeds, distill_stream, teacher_noise_stream
from evolve.training.compiled import compiled_step
from evolve.training.dataset import Dataset, EpisodeStore
from evolve.training.frame_replay import action_error, draw_windows, rows_loss, window_rows
from evolve.training.held_out import held_out_score
from evolve.training.run_folder import read_config, write_log_csv
from evolve.training.stopping import StopRequest
from sensoryneuron.actions import ActionMap
from sensoryneuron.checkpoints import save_policy
from sensoryneuron.errors import CheckpointError, ConfigError
from sensoryneuron.files import load_npz, save_npz
from sensoryneuron.models import Model
from sensoryneuron.policy import Policy
from sensoryneuron.state import PolicyState
from tasks.perturbations import Perturbations
from tasks.perturbations.patches import BackgroundPool
from tasks.spec import PatchObservation, get_task

log = get_logger()

STATE_FORMAT = "sensoryneuron.distill-state"
STATE_VERSION = 2  # 1: the dataset inline in state.npz, without the executed actions
DISTILL_DIR = "distill"  # a run folder's distillation stage
DATA_DIR = "data"
BURN_IN = 16  # image tasks: steps the head runs through before each loss window
FIT_LOG_EVERY = 50  # image tasks: Adam steps between progress lines within an iteration
COLLECT_LOG_EVERY = 250  # image tasks: episode steps between progress lines of a collection
LOG_COLUMNS = (
    "iteration",
    "loss",
    "identity_loss",
    "attention_loss",
    "test_score",
    "wall_time_s",
)


@dataclass
class Losses:
    """The terms of the distillation loss, each a mean over live steps.

    Attributes:
        action: squared error of the student's action against the teacher's label (a
            discrete task: cross-entropy of its logits against the teacher's choice).
        identity: cross-entropy of the sensor classifier (None without one).
        attention: cross-entropy of the supervised latents' attention against the slots of
            their sensors (None when not asked for).
    """

    action: torch.Tensor
    identity: torch.Tensor | None = None
    attention: torch.Tensor | None = None

    def total(self, identity_weight: float, attention_weight: float = 0.0) -> torch.Tensor:
        total = self.action
        if self.identity is not None:
            total = total + identity_weight * self.identity
        if self.attention is not None:
            total = total + attention_weight * self.attention
        return total


@dataclass
class DistillState:
    """Everything a resumed distillation needs, besides the recipe.

    Attributes:
        iteration: completed iterations.
        params: the student's flat parameters (float32).
        identity: the sensor classifier's flat parameters (float32; empty without one).
        adam: Adam's moments (``exp_avg``, ``exp_avg_sq``, over the student's parameters then
            the classifier's) and ``step``; empty before the first.
        chunks: the episode count of each dataset chunk in ``data/`` that this state covers
            (one per iteration); later chunks on disk are ignored.
        best_test: best held-out test score so far.
        best_iteration: the iteration that scored it.
        average: the moving average of the student's parameters (float32; empty when
            ``distill.ema`` is 0): the student that plays, is tested and saved.
        wall_time: seconds spent so far, over every session.
        log: rows of :data:`LOG_COLUMNS`.
        version: the file version it was read from (:data:`STATE_VERSION` when new).
    """

    iteration: int
    params: np.ndarray
    identity: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    adam: dict[str, np.ndarray] = field(default_factory=dict)
    chunks: list[int] = field(default_factory=list)
    best_test: float = float("-inf")
    best_iteration: int = -1
    average: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    wall_time: float = 0.0
    log: list[list[float]] = field(default_factory=list)
    version: int = STATE_VERSION


@dataclass(frozen=True)
class DistillResult:
    """Where the stage ended: the best student so far, and whether Ctrl-C stopped it."""

    best: Path
    iteration: int
    best_test: float
    interrupted: bool


def initial_params(model: Model, seed: int, std: float, student: int | None = None) -> np.ndarray:
    """The student's starting point: N(0, std^2) parameters from the recipe's seed (and its
    ``distill.student_seed``)."""
    rng = np.random.default_rng(distill_init_seed(seed, student))
    return (std * rng.standard_normal(model.num_params)).astype(np.float32)


def identity_classes(obs_dim: int) -> int:
    """Classes of the sensor classifier: each raw sensor, and noise."""
    return obs_dim + 1


def slot_logits(features: torch.Tensor, classifier: torch.Tensor) -> torch.Tensor:
    """The sensor classifier's logits ``[..., classes]`` for slot features ``[..., F]``.

    ``classifier`` is ``[classes, F + 1]``: the weights, then a bias column.
    """
    return features @ classifier[:, :-1].T + classifier[:, -1]


def sensors_found(attention: np.ndarray, sources: np.ndarray, sensors: int) -> np.ndarray:
    """Whether latent k attends most to a slot that carries sensor k, for k < ``sensors``.

    The readout of the attention loss: ``attention[E, M, N]`` (latents x slots), ``sources[E,
    N]`` (see :class:`Dataset`); returns bool ``[E, sensors]``.
    """
    strongest = np.asarray(attention)[:, :sensors].argmax(-1)  # [E, S]: each latent's top slot
    return np.take_along_axis(np.asarray(sources), strongest, axis=1) == np.arange(sensors)


class PolicyTeacher:
    """A trained policy as the teacher: it steps on the true observation (``view.raw``) and
    reads back the executed action as its previous action, as the student does."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.weights = policy.model.prepare(torch.tensor(policy.params)[None])
        self.state: PolicyState | None = None

    def reset(self, episodes: int) -> None:
        self.state = self.policy.model.init_state(1, episodes)

    def label(self, view: StepView) -> np.ndarray:
        """Its outputs ``[1, B, A]`` for this step."""
        assert self.state is not None
        label, self.state = self.policy.model.step_prepared(
            self.weights, torch.from_numpy(view.raw), self.state
        )
        return label.numpy()

    def executed(self, outputs: np.ndarray) -> None:
        assert self.state is not None
        self.state = self.policy.model.with_previous_action(self.state, torch.from_numpy(outputs))


class ControllerTeacher:
    """A privileged controller (:mod:`tasks.teachers`) as the teacher: it reads each env's
    internal state, so the episodes run on the ``gym`` engine (``view.task`` a ``GymPool``).

    Args:
        controller: has ``act(unwrapped_env) -> env action`` and ``forget()``.
        action_map: the task's map; a label is the controller's action as policy outputs
            (``ActionMap.feedback``: a discrete choice's one-hot code).
    """

    def __init__(self, controller: Any, action_map: ActionMap) -> None:
        self.controller = controller
        self.action_map = action_map

    def reset(self, episodes: int) -> None:
        self.controller.forget()

    def label(self, view: StepView) -> np.ndarray:
        env_of = getattr(view.task, "env", None)
        if env_of is None:
            raise ConfigError(
                f"a privileged teacher reads Gymnasium envs; {type(view.task).__name__} has none "
                "(collect on the gym engine)"
            )
        actions = np.stack([self.controller.act(env_of(0, b)) for b in range(view.raw.shape[1])])
        return self.action_map.feedback(actions)[None]

    def executed(self, outputs: np.ndarray) -> None:
        """A controller reads the env, not its own past actions."""

    def takeover(self, view: StepView) -> np.ndarray:
        """bool ``[B]``: the episodes whose car the controller takes over this step (its
        ``strayed(env)``, read after :meth:`label`; none without one)."""
        strayed = getattr(self.controller, "strayed", None)
        batch = view.raw.shape[1]
        if strayed is None:
            return np.zeros(batch, dtype=bool)
        return np.array([bool(strayed(view.task.env(0, b))) for b in range(batch)])


class Excursions:
    """The teacher's excursions in its DART episodes: from time to time, a push held for
    a few steps that takes the car far off the teacher's way (off the road), so that the data
    shows long recoveries as well as the small corrections of the Gaussian noise.

    Each step, a teacher-driven episode that is not in an excursion starts one with
    probability ``rate``: for ``steps`` steps it executes the teacher's output plus ``sign *
    push`` (clipped to [-1, 1]; the label stays the teacher's own output), the sign drawn
    once for the excursion. See ``DistillConfig.excursion_rate``.
    """

    def __init__(self, rate: float, steps: int, push: tuple[float, ...]) -> None:
        self.rate = float(rate)
        self.steps = int(steps)
        self.push = np.asarray(push, dtype=np.float64).reshape(-1)
        self.remaining = np.zeros(0, dtype=np.int64)  # steps left of each episode's excursion
        self.sign = np.zeros(0)
        self.taken = 0  # steps executed in an excursion, over the loop's episodes

    @classmethod
    def of(cls, cfg: DistillConfig) -> Excursions | None:
        """A recipe's excursions (None: it has none)."""
        if not cfg.excursion_rate:
            return None
        return cls(cfg.excursion_rate, cfg.excursion_steps, cfg.excursion_push)

    def reset(self, episodes: int) -> None:
        self.remaining = np.zeros(episodes, dtype=np.int64)
        self.sign = np.zeros(episodes)

    def offsets(self, rng: np.random.Generator, driven: np.ndarray) -> np.ndarray:
        """This step's push ``[B, A]`` (zero outside an excursion); the episodes ``driven``
        ``[B]`` may start one."""
        start = (self.remaining == 0) & driven & (rng.random(len(driven)) < self.rate)
        signs = np.where(rng.random(len(driven)) < 0.5, -1.0, 1.0)
        self.sign = np.where(start, signs, self.sign)
        self.remaining = np.where(start, self.steps, self.remaining)
        active = self.remaining > 0
        self.taken += int(active.sum())
        self.remaining = np.maximum(self.remaining - 1, 0)
        return np.where(active[:, None], self.sign[:, None] * self.push, 0.0)


class TeacherJitter:
    """What the teacher-driven episodes execute beyond the teacher's outputs (DART): Gaussian
    noise on each output, correlated from step to step, and :class:`Excursions`; the labels
    stay the teacher's own outputs. One generator draws both, the noise first, so that a recipe
    without excursions draws what it drew before they existed.

    Args:
        rng: the generator (None only when nothing is drawn: no noise, no excursions).
        noise: standard deviations ``[A]`` (or one for all) of the Gaussian noise.
        correlation: the noise's correlation from step to step (0: independent draws; see
            ``DistillConfig.teacher_noise_correlation``).
        excursions: pushes held for some steps (None: none).
    """

    def __init__(
        self,
        rng: np.random.Generator | None,
        noise: tuple[float, ...] = (),
        correlation: float = 0.0,
        excursions: Excursions | None = None,
    ) -> None:
        self.noise = np.asarray(noise, dtype=np.float64).reshape(-1)
        self.correlation = float(correlation)
        self.excursions = excursions
        if self.active and rng is None:
            raise ConfigError("teacher noise needs a generator (rng)")
        self.rng = rng
        self.last: np.ndarray | None = None  # the correlated noise's last draw

    @classmethod
    def of(cls, cfg: DistillConfig, rng: np.random.Generator) -> TeacherJitter | None:
        """A recipe's jitter (None: its teacher executes its outputs as they are)."""
        excursions = Excursions.of(cfg)
        if not any(cfg.teacher_noise) and excursions is None:
            return None
        return cls(rng, cfg.teacher_noise, cfg.teacher_noise_correlation, excursions)

    @property
    def active(self) -> bool:
        """Whether it moves anything (noise or excursions)."""
        return bool(self.noise.any()) or self.excursions is not None

    def reset(self, episodes: int) -> None:
        self.last = None
        if self.excursions is not None:
            self.excursions.reset(episodes)

    def __call__(self, label: np.ndarray, driven: np.ndarray, alive: np.ndarray) -> np.ndarray:
        """What the episodes execute ``[1, B, A]``: ``label`` jittered in the episodes
        ``driven`` ``[B]`` (clipped to [-1, 1]); ``alive`` ``[B]``: the running episodes."""
        executed = label
        if not driven.any():
            return executed
        rng = self.rng
        if self.noise.any():
            assert rng is not None
            draw = self.noise * rng.standard_normal(label.shape)
            if self.correlation and self.last is not None:
                c = self.correlation
                draw = c * self.last + math.sqrt(1.0 - c * c) * draw
            self.last = draw
            executed = np.clip(label + draw * driven[None, :, None], -1.0, 1.0).astype(label.dtype)
        if self.excursions is not None:
            assert rng is not None
            push = self.excursions.offsets(rng, driven & alive)
            executed = np.clip(executed + push[None], -1.0, 1.0).astype(label.dtype)
        return executed


class TeacherLabels(Observer):
    """Labels every step of the episode loop with the teacher's output on the true state.

    :meth:`drive` is the loop's driver: the teacher labels the step, and the episodes
    ``teacher_driven`` execute its outputs, as do the steps a teacher takes over (a
    :class:`ControllerTeacher` whose car has strayed: DAgger with interventions, so the
    student's episodes stay near the road). :meth:`on_act` records the step: what the student
    read, the label, the executed action (as the policy reads it back), which episodes were
    running, and the sensor each slot carried. With ``frames`` (an image task) it records the
    newest frame of each episode's stack instead of the patches (uint8 ``[B, H, W]``: one frame
    per step, the stacks are rebuilt from them), and no sources (the model is invariant to
    the order of the patches).

    Args:
        teacher: a :class:`PolicyTeacher` or :class:`ControllerTeacher` (a Policy is wrapped).
        teacher_driven: bool ``[B]``, the episodes that follow the teacher.
        action_map: the task's map from outputs to env actions.
        frames: record frames (image tasks), not observations.
        jitter: what the teacher-driven episodes execute beyond the teacher's outputs
            (:class:`TeacherJitter`; None: nothing); the steps a teacher takes over execute
            its outputs as they are. A discrete task takes none (ConfigError).

    One instance serves one call of the loop; :meth:`dataset` then holds its episodes.
    """

    def __init__(
        self,
        teacher: Policy | PolicyTeacher | ControllerTeacher,
        teacher_driven: np.ndarray,
        action_map: ActionMap,
        frames: bool = False,
        jitter: TeacherJitter | None = None,
    ) -> None:
        self.jitter = jitter if jitter is not None and jitter.active else None
        if self.jitter is not None and action_map.kind == "discrete":
            raise ConfigError(
                f"teacher noise jitters continuous actions; this task's are {action_map.describe()}"
            )
        self.teacher = PolicyTeacher(teacher) if isinstance(teacher, Policy) else teacher
        self.driven = np.asarray(teacher_driven, dtype=bool)
        self.action_map = action_map
        self.frames = frames
        self.label: np.ndarray | None = None
        self.takeovers = 0  # steps of the student's episodes that the teacher took over
        names = ("obs", "labels", "executed", "mask") + (() if frames else ("sources",))
        self.rows: dict[str, list[np.ndarray]] = {k: [] for k in names}

    def on_reset(self, view: StepView) -> None:
        if view.raw.shape[:2] != (1, len(self.driven)):
            raise ConfigError(
                f"teacher labels need one member and one teacher_driven flag per episode; "
                f"got {view.raw.shape[0]} member(s), {view.raw.shape[1]} episodes and "
                f"{len(self.driven)} flags"
            )
        self.teacher.reset(len(self.driven))
        if self.jitter is not None:
            self.jitter.reset(len(self.driven))

    def drive(self, view: StepView) -> np.ndarray:
        """The teacher labels the step; the executed outputs ``[1, B, A]``."""
        assert view.output is not None
        self.label = self.teacher.label(view)
        driven = self.driven
        executed = self.label
        if self.jitter is not None:
            executed = self.jitter(self.label, driven, view.alive[0])
        takeover = getattr(self.teacher, "takeover", None)
        if takeover is not None:
            strayed = takeover(view)
            self.takeovers += int((strayed & ~driven & view.alive[0]).sum())
            executed = np.where(
                strayed[None, :, None] & ~driven[None, :, None], self.label, executed
            )
            driven = driven | strayed
        return np.where(driven[None, :, None], executed, view.output)

    def on_act(self, view: StepView) -> None:
        assert self.label is not None and view.action is not None
        executed = self.action_map.feedback(view.action)
        self.teacher.executed(executed)
        if self.frames:
            self.rows["obs"].append(np.rint(view.raw[0, :, -1]).astype(np.uint8))
        else:
            self.rows["obs"].append(view.obs[0].astype(np.float32))
            self.rows["sources"].append(view.perturbation.sources().astype(np.int16))
        self.rows["labels"].append(self.label[0].astype(np.float32))
        self.rows["executed"].append(executed[0])
        self.rows["mask"].append(view.alive[0].copy())

    def dataset(self, steps: int) -> Dataset:
        """The recorded steps, padded to ``steps`` (padding rows are masked out)."""
        rows = {k: np.stack(v) for k, v in self.rows.items()}
        pad = steps - rows["mask"].shape[0]
        if pad > 0:
            rows = {k: np.concatenate([v, np.repeat(v[-1:], pad, axis=0)]) for k, v in rows.items()}
            rows["mask"][-pad:] = False
        return Dataset(**rows)


class CollectProgress(Observer):
    """Logs a line every :data:`COLLECT_LOG_EVERY` steps of a collection: an image task's
    iteration plays 1,000-step episodes for minutes before its fit starts."""

    def __init__(self, iteration: int, steps: int) -> None:
        self.iteration = iteration
        self.steps = steps
        self.started = time.perf_counter()
        self.env_steps = 0

    def on_step(self, view: StepView) -> None:
        self.env_steps += int(view.alive.sum())
        done = view.t + 1
        if done % COLLECT_LOG_EVERY == 0 and done < self.steps:
            running = int((~view.done).sum())
            elapsed = time.perf_counter() - self.started
            log.info(
                "[distill] iteration %d: collecting, step %d of %d | %d episodes running | "
                "%.0f env steps/s",
                self.iteration,
                done,
                self.steps,
                running,
                self.env_steps / max(elapsed, 1e-9),
            )


def batch_index(
    pool: np.ndarray, newest: int, cfg: DistillConfig, rng: np.random.Generator
) -> np.ndarray:
    """The sorted episode indices of one Adam step's batch, drawn from ``pool`` (global
    indices): ``cfg.batch`` with replacement, ``round(cfg.recent_fraction * cfg.batch)`` of
    them among the pool's episodes from ``newest`` on (the newest iteration's) when it has
    any, the rest uniformly."""
    recent = pool[pool >= newest] if cfg.recent_fraction > 0 else pool[:0]
    k = int(round(cfg.recent_fraction * cfg.batch)) if recent.size else 0
    pick = np.concatenate(
        [
            recent[rng.choice(recent.size, size=k, replace=True)] if k else pool[:0],
            pool[rng.choice(pool.size, size=cfg.batch - k, replace=True)],
        ]
    )
    return np.sort(pick)


def collect(
    student: Policy,
    teacher: Policy | PolicyTeacher | ControllerTeacher,
    preset: TaskPreset,
    seeds: list[int],
    steps: int,
    teacher_driven: np.ndarray,
    jitter: TeacherJitter | None = None,
    progress: Observer | None = None,
) -> Dataset:
    """Play one episode per seed for at most ``steps`` steps; label every step by the teacher.

    ``teacher_driven[e]`` makes episode e execute the teacher's actions (plus the ``jitter``)
    instead of the student's; the student still reads its inputs, keeps its state, and reads
    the executed action as its previous action. A :class:`ControllerTeacher` plays on the gym
    engine (it reads the envs); an image task's episodes are recorded as frames.
    """
    spec = get_task(preset.env_id)
    frames = isinstance(spec.observation, PatchObservation)
    labels = TeacherLabels(
        teacher,
        teacher_driven,
        spec.action,
        frames=frames,
        jitter=jitter,
    )
    engine = "gym" if isinstance(teacher, ControllerTeacher) else None
    episodes(
        student.model,
        torch.tensor(student.params)[None],
        batched_task(preset.env_id, engine, preset.perturbations),
        preset.perturbations.agent_side(),
        seeds,
        action_map=spec.action,
        max_steps=steps,
        observers=[labels] if progress is None else [labels, progress],
        driver=labels.drive,
        observation=spec.observation,
    )
    data = labels.dataset(steps)
    own = int(data.mask[:, ~np.asarray(teacher_driven, dtype=bool)].sum())
    if own and labels.takeovers:
        log.info("the teacher took over %d of the student's %d steps", labels.takeovers, own)
    excursions = labels.jitter.excursions if labels.jitter is not None else None
    if excursions is not None:
        log.info(
            "the teacher's episodes spent %d of %d steps in excursions",
            excursions.taken,
            int(data.mask[:, np.asarray(teacher_driven, dtype=bool)].sum()),
        )
    return data


def teacher_episodes(
    teacher: ControllerTeacher,
    env_id: str,
    seeds: list[int],
    watcher: Model,
    jitter: TeacherJitter | None = None,
    observers: Sequence[Observer] = (),
) -> RolloutResult:
    """The teacher drives one unperturbed episode per seed to its end on stock Gymnasium,
    over ``watcher`` (zero parameters) that only reads, as in a first DAgger iteration: the
    returns and steps ``[1, B]`` (what the teacher benchmarks measure). The ``jitter``
    moves the outputs it executes, as in the DART episodes of training; ``observers`` watch
    the episodes after the teacher's labels."""
    spec = get_task(env_id)
    labels = TeacherLabels(
        teacher,
        np.ones(len(seeds), dtype=bool),
        spec.action,
        frames=isinstance(spec.observation, PatchObservation),
        jitter=jitter,
    )
    plain = Perturbations(shuffle=False)
    return episodes(
        watcher,
        torch.zeros(1, watcher.num_params),
        batched_task(env_id, "gym", plain),
        plain,
        seeds,
        action_map=spec.action,
        observers=[labels, *observers],
        driver=labels.drive,
        observation=spec.observation,
    )


def replay(
    model: Model,
    params: torch.Tensor,
    data: Dataset,
    with_attention: bool = False,
    compiled: bool = False,
) -> Iterator[tuple[torch.Tensor, PolicyState, torch.Tensor | None]]:
    """Step the student through recorded episodes: ``(output, state, attention)`` per step.

    ``output`` is ``[1, E, A]``; ``attention`` ``[1, E, M, N]`` with ``with_attention``, else
    None. After each step the state's previous action is the recorded executed action
    (``data.executed``), as it was when the episode was played; without a record, the
    student's own output stays. The replay keeps the autograd graph (BPTT). ``compiled``:
    the student's step compiled by ``torch.compile`` (:mod:`evolve.training.compiled`).
    """
    step = compiled_step(model) if compiled else model.step_prepared
    device = params.device
    obs = torch.from_numpy(np.ascontiguousarray(data.obs)).to(device)
    executed = None if data.executed is None else torch.from_numpy(data.executed).to(device)
    weights = model.prepare(params[None])
    state = model.init_state(1, data.episodes).to(device)
    for t in range(data.steps):
        attention = None
        if with_attention:
            output, state, attention = step(weights, obs[t][None], state, with_attention=True)
        else:
            output, state = step(weights, obs[t][None], state)
        if executed is not None:
            state = model.with_previous_action(state, executed[t][None])
        yield output, state, attention


def imitation_loss(
    model: Model,
    params: torch.Tensor,
    data: Dataset,
    index: np.ndarray | None = None,
    classifier: torch.Tensor | None = None,
    attention_sensors: int = 0,
    action_weights: torch.Tensor | None = None,
    discrete: bool = False,
    compiled: bool = False,
) -> Losses:
    """The student's losses over the live steps of episodes ``index``, replayed (:func:`replay`).

    Args:
        model: the student's architecture.
        params: its flat parameters.
        data: labelled episodes.
        index: which episodes of ``data`` (None: all of them).
        classifier: the sensor classifier, ``[classes, slot_feature_dim + 1]`` (weights, then
            a bias column); None: no identity term. Needs ``data.sources``.
        attention_sensors: supervise the attention of latents ``0 .. attention_sensors - 1``
            (latent k onto the slots of sensor k); 0: no attention term. Needs
            ``data.sources`` and a softmax-attention model with that many latents.
        action_weights: ``[A]``, each output's weight in the squared error, or each choice's
            in the cross-entropy (None: 1 each).
        discrete: the labels are choices: cross-entropy of the outputs as logits
            (:func:`evolve.training.frame_replay.action_error`).
        compiled: replay with the student's step compiled (:func:`replay`).
    """
    if index is not None:
        data = data.select(index)
    labels = torch.from_numpy(data.labels).to(params.device)
    mask = torch.from_numpy(data.mask).to(params.device, labels.dtype)
    sources = None
    if classifier is not None or attention_sensors:
        if data.sources is None:
            term = "identity" if classifier is not None else "attention"
            raise ConfigError(f"the {term} loss needs the sensor of every slot (data.sources)")
        sources = torch.from_numpy(data.sources.astype(np.int64)).to(params.device)
    if attention_sensors:
        if getattr(model, "attention", None) != "softmax":
            raise ConfigError("the attention loss needs a model with softmax attention")
        if model.num_latents < attention_sensors:  # type: ignore[attr-defined]
            raise ConfigError(
                f"the attention loss needs a latent per sensor: {attention_sensors} sensors, "
                f"{model.num_latents} latents"  # type: ignore[attr-defined]
            )
    sensors = torch.arange(attention_sensors, device=params.device).view(1, -1, 1)  # [1, S, 1]
    total = labels.new_zeros(())
    identity = labels.new_zeros(())
    attended = labels.new_zeros(())
    steps = replay(model, params, data, bool(attention_sensors), compiled)
    for t, (action, state, attention) in enumerate(steps):
        error = action_error(action[0], labels[t], action_weights, discrete)
        total = total + (error * mask[t]).sum()
        if classifier is not None and sources is not None:
            features = model.slot_features(state)[0]  # [E, N, F]
            logits = slot_logits(features, classifier)
            wrong = torch.nn.functional.cross_entropy(
                logits.flatten(0, 1), sources[t].flatten(), reduction="none"
            )
            identity = identity + (wrong.view(features.shape[:2]).mean(-1) * mask[t]).sum()
        if attention is not None and sources is not None:
            # target [E, S, N]: latent k spreads evenly over the slots that carry sensor k
            target = (sources[t].unsqueeze(1) == sensors).to(labels.dtype)
            target = target / target.sum(-1, keepdim=True).clamp(min=1.0)
            att = attention[0, :, :attention_sensors, :]  # [E, S, N]
            wrong = -(target * torch.log(att.clamp_min(1e-30))).sum(-1).mean(-1)  # [E]
            attended = attended + (wrong * mask[t]).sum()
    live = mask.sum().clamp(min=1.0)
    return Losses(
        total / live,
        None if classifier is None else identity / live,
        attended / live if attention_sensors else None,
    )


def _adam(params: torch.nn.Parameter, lr: float, saved: dict[str, np.ndarray]) -> torch.optim.Adam:
    opt = torch.optim.Adam([params], lr=lr)
    if saved:
        state = {
            "step": torch.tensor(float(saved["step"])),
            "exp_avg": torch.from_numpy(saved["exp_avg"].copy()).to(params.device),
            "exp_avg_sq": torch.from_numpy(saved["exp_avg_sq"].copy()).to(params.device),
        }
        opt.load_state_dict({"state": {0: state}, "param_groups": opt.state_dict()["param_groups"]})
    return opt


def _adam_arrays(opt: torch.optim.Adam) -> dict[str, np.ndarray]:
    state = opt.state_dict()["state"].get(0)
    if not state:
        return {}
    return {
        "step": np.asarray(float(state["step"])),
        "exp_avg": state["exp_avg"].cpu().numpy().copy(),
        "exp_avg_sq": state["exp_avg_sq"].cpu().numpy().copy(),
    }


def distill(
    preset: TaskPreset,
    stage_dir: str | Path,
    teacher: Policy | ControllerTeacher,
    *,
    resume: bool = False,
    backend: Backend,
    stop: StopRequest | None = None,
    device: str | None = None,
    recorded: RecordedEpisodes | None = None,
) -> DistillResult:
    """Run (or resume) the distillation stage of ``preset`` into ``stage_dir``.

    An image task plays whole episodes, records them as frames, and fits the student on
    random windows of them (:func:`evolve.training.frame_replay.window_loss`); a vector task
    plays the first ``distill.window`` steps and replays them from the start.

    ``recorded`` (:func:`recorded_episodes`) holds another run's episodes, which stand in
    for the collection of every iteration that a scripted teacher (``teacher_controller``) drives
    whole: where the two recipes collect alike (:func:`collection_recipe`) such an iteration
    records what the other run recorded, bit for bit, so its chunk is taken (hard-linked)
    instead of played again. Only the fit runs: a variant of a recipe that changes the
    student or its fit costs the fit alone, and gives the results of a fresh run.
    """
    cfg = preset.distill
    if cfg is None:
        raise CheckpointError(f"recipe {preset.name!r} has no distill section")
    stop = stop or StopRequest()
    stage_dir = Path(stage_dir)
    seed = preset.training.seed
    model = preset.model
    spec = get_task(preset.env_id)
    image = isinstance(spec.observation, PatchObservation)
    discrete = spec.action.kind == "discrete"  # the loss: cross-entropy of logits
    collected_steps = (
        min(cfg.episode_steps or spec.max_steps, spec.max_steps) if image else cfg.window
    )
    sensors = spec.observation.size
    classes = identity_classes(sensors)
    attention_sensors = sensors if cfg.attention_weight > 0 else 0
    if cfg.backgrounds is not None:
        BackgroundPool(cfg.backgrounds)  # every image readable, before any episode is played
    if resume and (stage_dir / "state.npz").exists():
        state = load_distill_state(stage_dir)
        if state.version != STATE_VERSION:
            raise CheckpointError(
                f"{stage_dir / 'state.npz'}: a version-{state.version} distillation state holds "
                f"its dataset inline, without the executed actions that version {STATE_VERSION} "
                "replays; it cannot be resumed (delete it to distil this stage afresh)"
            )
        store = EpisodeStore(stage_dir / DATA_DIR, state.chunks)
        store.discard_uncovered()  # chunks written after the state was saved
        store.check()
        log.info("resuming distillation at iteration %d", state.iteration)
    else:
        stage_dir.mkdir(parents=True, exist_ok=True)
        size = classes * (model.slot_feature_dim + 1) if cfg.identity_weight > 0 else 0
        state = DistillState(
            0,
            initial_params(model, seed, cfg.init_std, cfg.student_seed),
            np.zeros(size, dtype=np.float32),
        )
        store = EpisodeStore(stage_dir / DATA_DIR)
        store.discard_uncovered()  # a fresh start: no chunk is covered
        log.info(
            "distilling the teacher into %s (%d params): %d iterations x %d episodes",
            preset.model.kind,
            preset.model.num_params,
            cfg.iterations,
            cfg.episodes,
        )
    # One vector for Adam: the student's parameters, then the classifier's (if any).
    flat = np.concatenate([state.params, state.identity])
    theta = torch.nn.Parameter(torch.from_numpy(flat).to(check_device(device)))
    opt = _adam(theta, cfg.lr, state.adam)
    params = theta[: model.num_params]
    average = None  # the student that plays when distill.ema is on (see DistillConfig.ema)
    if cfg.ema:
        start = state.average if state.average.size else state.params
        average = torch.from_numpy(start.copy()).to(theta.device)
    classifier = theta[model.num_params :].view(classes, -1) if state.identity.size else None
    weights = (
        torch.tensor(cfg.action_weights, dtype=theta.dtype, device=theta.device)
        if cfg.action_weights
        else None
    )
    interrupted = False
    try:
        while state.iteration < cfg.iterations and not stop.should_stop(state.iteration):
            started = time.perf_counter()
            it = state.iteration
            stream = distill_stream(seed, it)
            driven = stream.random(cfg.episodes) < teacher_fraction(cfg, it)
            if cfg.student_seed is not None:  # another student's minibatches, same episodes
                stream = distill_stream(seed, it, cfg.student_seed)
            if recorded is not None and recorded.holds(it, driven):
                store.take_chunk(recorded.store, it)  # what playing it would record
                log.info(
                    "[distill] iteration %d: the teacher's %d episodes taken from %s",
                    it + 1,
                    cfg.episodes,
                    recorded.run,
                )
            else:
                student = Policy(preset.model, _numpy(params if average is None else average))
                new = collect(
                    student,
                    teacher,
                    iteration_preset(preset, it),
                    distill_seeds(seed, it, cfg.episodes),
                    collected_steps,
                    driven,
                    jitter=TeacherJitter.of(cfg, teacher_noise_stream(seed, it)),
                    progress=CollectProgress(it + 1, collected_steps) if image else None,
                )
                store.append(new)  # chunk ``it``; the state below is what makes it count
            pools = store.pools()  # one per number of noise channels collected so far
            newest = store.episodes - store.sizes[-1]  # the first episode of this iteration
            loss, identity_loss, attention_loss = 0.0, math.nan, math.nan
            fit_started = time.perf_counter()
            for step in range(cfg.grad_steps):
                if step and stop.past_deadline():
                    log.info(
                        "[distill] iteration %d: the time budget ends the fit after %d of %d "
                        "Adam steps",
                        it + 1,
                        step,
                        cfg.grad_steps,
                    )
                    break
                index = batch_index(pools[step % len(pools)], newest, cfg, stream)
                if image:  # reads only the windows' steps of these episodes from disk
                    first = draw_windows(
                        store.lengths(index), stream, cfg.window, BURN_IN, collected_steps
                    )
                    span = min(BURN_IN + cfg.window, collected_steps)
                    rows = window_rows(first, span, model.frames)  # type: ignore[attr-defined]
                    batch = store.gather(index, rows)
                    losses = Losses(
                        rows_loss(model, params, batch, rows, BURN_IN, weights, discrete)
                    )
                else:
                    batch = store.gather(index)  # reads only these episodes from disk
                    losses = imitation_loss(
                        model,
                        params,
                        batch,
                        None,
                        classifier,
                        attention_sensors,
                        weights,
                        discrete,
                        cfg.compile_fit,
                    )
                for group in opt.param_groups:
                    group["lr"] = cfg.lr_at(it * cfg.grad_steps + step)
                opt.zero_grad()
                losses.total(cfg.identity_weight, cfg.attention_weight).backward()
                if cfg.clip_grad > 0:
                    torch.nn.utils.clip_grad_norm_([theta], cfg.clip_grad)
                opt.step()
                if average is not None:
                    decay = cfg.ema_at(it * cfg.grad_steps + step)
                    with torch.no_grad():
                        average.mul_(decay).add_(params, alpha=1.0 - decay)
                loss = float(losses.action.detach())
                if losses.identity is not None:
                    identity_loss = float(losses.identity.detach())
                if losses.attention is not None:
                    attention_loss = float(losses.attention.detach())
                if image and (step + 1) % FIT_LOG_EVERY == 0 and step + 1 < cfg.grad_steps:
                    log.info(
                        "[distill] iteration %d: Adam step %d of %d | loss %.4f | lr %.2e | "
                        "%.2f s a step",
                        it + 1,
                        step + 1,
                        cfg.grad_steps,
                        loss,
                        cfg.lr_at(it * cfg.grad_steps + step),
                        (time.perf_counter() - fit_started) / (step + 1),
                    )
            test_score = math.nan
            # the last iteration is tested, and so is one after which the budget ends the stage
            last = it + 1 == cfg.iterations or stop.out_of_time(it + 1)
            if (it + 1) % cfg.test_every == 0 or last:
                played = params if average is None else average
                test_score = _test(preset, played, backend, it, state, stage_dir, device)
            state.wall_time += time.perf_counter() - started
            state.iteration = it + 1
            state.params = _numpy(params)
            if average is not None:
                state.average = _numpy(average)
            state.identity = theta[model.num_params :].detach().cpu().numpy().copy()
            state.adam = _adam_arrays(opt)
            state.chunks = list(store.sizes)
            state.log.append(
                [it + 1, loss, identity_loss, attention_loss, test_score, state.wall_time]
            )
            log.info(
                "[distill] iteration %4d | loss %.4f%s%s | %d episodes%s",
                it + 1,
                loss,
                "" if math.isnan(identity_loss) else f" | identity {identity_loss:.3f}",
                "" if math.isnan(attention_loss) else f" | attention {attention_loss:.3f}",
                store.episodes,
                "" if math.isnan(test_score) else f" | test {test_score:8.2f}",
            )
            # state.npz last: it is what makes the iteration count on resume, so a write
            # refused before it (a full disk) leaves an iteration that is played again
            latest = state.params if average is None else state.average
            save_policy(stage_dir / "latest.npz", _student(preset, latest, {"iteration": it + 1}))
            save_distill_state(stage_dir, state)
    except KeyboardInterrupt:
        interrupted = True
    if stop.requested:
        interrupted = True
    if interrupted:
        log.info("interrupted: distillation saved at iteration %d", state.iteration)
    return DistillResult(stage_dir / "best.npz", state.iteration, state.best_test, interrupted)


def teacher_fraction(cfg: DistillConfig, iteration: int) -> float:
    """The share of iteration ``iteration``'s episodes that the teacher drives (each episode
    draws whether it does)."""
    if not cfg.teacher_iterations:
        return 0.0
    return max(0.0, 1.0 - iteration / cfg.teacher_iterations)


# what decides the episodes of an iteration that a scripted teacher drives whole, besides
# the iteration: the student only watches them
COLLECTION_KEYS = ("env_id", "teacher_controller", "teacher_options", "perturbations")
COLLECTION_DISTILL_KEYS = (
    "episodes",
    "episode_steps",
    "window",
    "teacher_noise",
    "teacher_noise_correlation",
    "excursion_rate",
    "excursion_steps",
    "excursion_push",
    "backgrounds",
    "noise_channels",
)


def collection_recipe(preset: TaskPreset) -> dict[str, Any]:
    """The parts of ``preset`` that decide what an iteration that its scripted teacher drives
    whole records: two recipes with equal ones record the same episodes there, bit for bit,
    whatever their students."""
    d = preset.to_dict()
    distill = dict(d.get("distill") or {})
    # settings that draw nothing decide nothing: no excursions, no noise to correlate
    if not distill.get("excursion_rate"):
        distill.update(excursion_steps=None, excursion_push=None)
    if not any(distill.get("teacher_noise") or ()):
        distill["teacher_noise_correlation"] = None
    return {
        **{k: d.get(k) for k in COLLECTION_KEYS},
        "seed": preset.training.seed,
        **{k: distill.get(k) for k in COLLECTION_DISTILL_KEYS},
    }


@dataclass
class RecordedEpisodes:
    """Another run's recorded episodes, for the iterations both recipes collect alike."""

    run: Path
    preset: TaskPreset
    store: EpisodeStore

    def holds(self, iteration: int, driven: np.ndarray) -> bool:
        """Whether the run recorded iteration ``iteration`` as this one would: the teacher
        drove every episode of it in both (``driven``: this recipe's draws)."""
        cfg = self.preset.distill
        assert cfg is not None
        if iteration >= self.store.chunks or not driven.all():
            return False
        seed = self.preset.training.seed
        theirs = distill_stream(seed, iteration).random(cfg.episodes)
        return bool((theirs < teacher_fraction(cfg, iteration)).all())


def recorded_episodes(preset: TaskPreset, run: Path) -> RecordedEpisodes:
    """``run``'s recorded episodes, checked to be what ``preset`` would record.

    Raises:
        ConfigError: ``preset`` has no scripted teacher, or ``run`` collected otherwise.
        CheckpointError: ``run`` is not a run folder with a distillation.
    """
    if preset.teacher_controller is None:
        raise ConfigError(
            "episodes can be taken from another run only where a scripted teacher "
            "(teacher_controller) drives them"
        )
    theirs = read_config(run)[0]
    ours, recipe = collection_recipe(preset), collection_recipe(theirs)
    differ = [k for k in ours if ours[k] != recipe[k]]
    if differ:
        raise ConfigError(
            f"{run} collected its episodes otherwise ({', '.join(differ)} differ): they are "
            "not what this recipe records"
        )
    return RecordedEpisodes(run, theirs, load_distill_data(run / DISTILL_DIR))


def _numpy(params: torch.Tensor) -> np.ndarray:
    return params.detach().cpu().numpy().copy()


def iteration_preset(preset: TaskPreset, iteration: int) -> TaskPreset:
    """The recipe whose perturbations iteration ``iteration`` plays its episodes under: the
    preset's own, with ``distill.noise_channels[iteration % len]`` noise channels and the
    background pool ``distill.backgrounds`` where set."""
    cfg = preset.distill
    if cfg is None:
        return preset
    if cfg.backgrounds is not None:
        preset = preset.replace(perturbations={"background": cfg.backgrounds})
    counts = cfg.noise_channels
    if not counts:
        return preset
    return preset.replace(perturbations={"noise_channels": counts[iteration % len(counts)]})


def _student(preset: TaskPreset, params: np.ndarray, info: dict) -> Policy:
    """The student at ``params``, acting in the task's action space."""
    action = get_task(preset.env_id).action
    return Policy(
        preset.model, params.astype(np.float32), task=preset.to_dict(), info=info, action=action
    )


def _test(
    preset: TaskPreset,
    params: torch.Tensor,
    backend: Backend,
    it: int,
    state: DistillState,
    stage_dir: Path,
    device: str | None = None,
) -> float:
    cfg = preset.distill
    assert cfg is not None
    student = _student(preset, params.detach().cpu().numpy(), {})
    test = held_out_score(student, preset, cfg.test_episodes, backend, device)
    score = test.mean
    if score > state.best_test:
        state.best_test, state.best_iteration = score, it + 1
        info = {"iteration": it + 1, "test_score": score, "test_episodes": cfg.test_episodes}
        save_policy(stage_dir / "best.npz", _student(preset, student.params, info))
    log.info(
        "[distill test] iteration %4d | test %8.2f +- %6.2f over %d held-out episodes | best %8.2f (iteration %d)",
        it + 1,
        score,
        test.std,
        test.episodes,
        state.best_test,
        state.best_iteration,
    )
    return score


def save_distill_state(stage_dir: Path, state: DistillState) -> None:
    """Write ``state.npz`` (small: no episodes; those are the chunks in ``data/``)."""
    arrays = {
        "params": state.params,
        "identity": state.identity,
        "average": state.average,
        "log": np.asarray(state.log, dtype=np.float64).reshape(-1, len(LOG_COLUMNS)),
        "chunks": np.asarray(state.chunks, dtype=np.int64),
    }
    arrays.update({f"adam.{k}": v for k, v in state.adam.items()})
    meta = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "iteration": state.iteration,
        "best_test": state.best_test if np.isfinite(state.best_test) else None,
        "best_iteration": state.best_iteration,
        "wall_time": state.wall_time,
    }
    write_log_csv(stage_dir, state.log, LOG_COLUMNS)
    save_npz(stage_dir / "state.npz", arrays, meta)  # last: what a resume goes on from


def load_distill_state(stage_dir: Path) -> DistillState:
    """Read ``state.npz`` of version 2, or of version 1 (its inline dataset is not read).

    Raises:
        CheckpointError: not a distillation state, an unknown version, or incomplete.
    """
    path = stage_dir / "state.npz"
    arrays, meta = load_npz(path)
    version = meta.get("version")
    if meta.get("format") != STATE_FORMAT or version not in (1, STATE_VERSION):
        raise CheckpointError(
            f"{path}: not a sensoryneuron distillation state (version 1 or {STATE_VERSION})"
        )
    try:
        rows = arrays["log"]
        if rows.shape[1] == len(LOG_COLUMNS) - 2:  # written before the identity loss existed
            rows = np.insert(rows, 2, np.nan, axis=1)
        if rows.shape[1] == len(LOG_COLUMNS) - 1:  # written before the attention loss existed
            rows = np.insert(rows, 3, np.nan, axis=1)
        chunks = arrays["chunks"].tolist() if version == STATE_VERSION else []
        return DistillState(
            iteration=int(meta["iteration"]),
            params=arrays["params"],
            identity=arrays.get("identity", np.zeros(0, dtype=np.float32)),
            average=arrays.get("average", np.zeros(0, dtype=np.float32)),
            adam={k[len("adam.") :]: v for k, v in arrays.items() if k.startswith("adam.")},
            chunks=[int(c) for c in chunks],
            best_test=float("-inf") if meta["best_test"] is None else float(meta["best_test"]),
            best_iteration=int(meta["best_iteration"]),
            wall_time=float(meta["wall_time"]),
            log=rows.tolist(),
            version=int(version),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: incomplete distillation state ({exc})") from None


def load_distill_data(stage_dir: Path, state: DistillState | None = None) -> EpisodeStore:
    """The dataset chunks that the stage's saved state covers (``state``: if already read)."""
    state = state or load_distill_state(stage_dir)
    store = EpisodeStore(Path(stage_dir) / DATA_DIR, state.chunks)
    store.check()
    return store
