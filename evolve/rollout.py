"""The one episode loop: a whole population is one policy call per env step, on any task.

P members x B episodes run together. Every member sees the same B episode seeds and the
same permutation and noise draws (common random numbers). Training, held-out tests,
evaluation, distillation's data collection, ``evolve record`` and the benchmarks all run
:func:`episodes`; what each records per step is an :class:`Observer`.

The loop, step by step:

1. the policy acts on the perturbed observation (:meth:`Observer.on_act` sees the outputs,
   the environment actions and, if asked, the attention);
2. a ``driver`` may replace the outputs (distillation: the teacher drives some episodes),
   and the executed action is what the policy reads as its previous action;
3. the batched task steps (:meth:`Observer.on_step` sees rewards and ends); rewards stop
   counting at each episode's first ``done``;
4. the perturbation moves on (reshuffles where due; with ``realign`` the per-slot state
   moves with the inputs); members whose episodes have all ended leave the batch.

:func:`rollout` is the same loop for a plain-data :class:`EpisodeJob`, what backends send to
workers; each worker keeps one batched task per (task, engine) from job to job.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from evolve import fused
from sensoryneuron.actions import ActionMap
from sensoryneuron.errors import ConfigError
from sensoryneuron.models import Model, Weights, model_from_dict
from sensoryneuron.state import PolicyState
from tasks.batched import BatchedTask
from tasks.perturbations import BatchPerturbation, Perturbations
from tasks.spec import Observation, get_task

COMPACT_BELOW = 0.75  # drop finished members once fewer than this fraction still run


@dataclass(frozen=True)
class EpisodeJob:
    """Everything a worker needs to evaluate parameters, as plain picklable data.

    Attributes:
        model: the model description (``Model.to_dict()``).
        env_id: a task (see :func:`tasks.spec.get_task`).
        perturbations: ``Perturbations.to_dict()``.
        seeds: one seed per episode; every member plays every seed.
        realign: permute the policy's per-slot state with each reshuffle (keeps the agent
            exactly invariant; used to separate invariance from re-inference cost).
        max_steps: cap on episode length (None: the task's own limit).
        float64: run the policy in double precision.
        engine: the batched engine (None: the task's default; see ``TaskSpec.engines``).
        action: ``ActionMap.to_dict()`` of the policy (None: the task's own).
        device: where the policy runs (None: the CPU; see :func:`check_device`).
    """

    model: dict[str, Any]
    env_id: str
    perturbations: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()
    realign: bool = False
    max_steps: int | None = None
    float64: bool = False
    engine: str | None = None
    action: dict[str, Any] | None = None
    device: str | None = None


def check_device(device: str | None) -> torch.device:
    """``device`` as a torch device: ``cpu`` (also for None), ``cuda`` or ``cuda:N``.

    Raises:
        ConfigError: another name, or CUDA asked for where torch sees no GPU.
    """
    name = "cpu" if device is None else str(device)
    if name != "cpu" and not (name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit())):
        raise ConfigError(f"device must be cpu, cuda or cuda:N; got {name!r}")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: torch sees no CUDA GPU here; use cpu")
        index = int(name[5:]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r}: torch sees {torch.cuda.device_count()} CUDA GPU(s)"
            )
    return torch.device(name)


@dataclass(frozen=True)
class RolloutResult:
    """Undiscounted returns and episode lengths, both ``[P, B]``."""

    returns: np.ndarray
    steps: np.ndarray

    @property
    def fitness(self) -> np.ndarray:
        """Mean return per member over its episodes."""
        return self.returns.mean(axis=1)

    @property
    def member_steps(self) -> int:
        return int(self.steps.sum())


@dataclass
class StepView:
    """What the loop holds at one step, for observers. Rows are the ``active`` members.

    Attributes:
        t: steps taken before this one.
        obs: what the policy read, ``[P', B, ...]`` (perturbed).
        raw: the task's own observation, unperturbed.
        output: the policy's outputs ``[P', B, A]`` (after a driver, the executed ones).
        action: the environment actions of ``output``.
        attention: ``[P', B, M, N]`` when an observer asked for it, else None.
        state: the policy state after acting.
        alive: bool ``[P', B]``, episodes still running before this step.
        reward: float64 ``[P', B]`` of this step (set before ``on_step``; 0 once ended).
        done: bool ``[P', B]``, ended at this step or before (set before ``on_step``).
        next_raw: the task's own observation after this step (set before ``on_step``).
        active: which members (rows of the full population) the rows are.
        returns: the running returns, ``[P, B]`` over the full population.
        perturbation: the batch perturbation (permutations, sources, reshuffled).
        task: the batched task (``render``).
    """

    t: int
    obs: np.ndarray
    raw: np.ndarray
    alive: np.ndarray
    active: np.ndarray
    returns: np.ndarray
    perturbation: BatchPerturbation
    task: BatchedTask
    state: PolicyState
    output: np.ndarray | None = None
    action: np.ndarray | None = None
    attention: np.ndarray | None = None
    reward: np.ndarray | None = None
    done: np.ndarray | None = None
    next_raw: np.ndarray | None = None


class Observer:
    """Per-step hooks into :func:`episodes`; each does nothing unless overridden.

    Attributes:
        attention: set True to have the loop compute the attention weights every step.
    """

    attention: bool = False

    def on_reset(self, view: StepView) -> None:
        """After the episodes start: ``obs``, ``raw``, ``state`` (zero) are set."""

    def on_act(self, view: StepView) -> None:
        """The policy acted: ``output``, ``action``, ``attention``; the env has not stepped."""

    def on_step(self, view: StepView) -> None:
        """The env stepped: ``reward``, ``done`` and ``next_raw`` of this step are set."""


Driver = Callable[[StepView], np.ndarray | None]


def episodes(
    model: Model,
    params: torch.Tensor,
    task: BatchedTask,
    perturbations: Perturbations,
    seeds: Sequence[int],
    *,
    action_map: ActionMap,
    max_steps: int | None = None,
    realign: bool = False,
    observers: Sequence[Observer] = (),
    driver: Driver | None = None,
    weights: Weights | None = None,
    observation: Observation | None = None,
) -> RolloutResult:
    """Run every member of ``params[P, D]`` on every episode ``seeds``; see the module doc.

    Args:
        model: the architecture.
        params: ``[P, D]``; its dtype is the policy's precision.
        task: a batched task (its state is reset here).
        perturbations: what happens to the observations on their way to the policy.
        seeds: one per episode.
        action_map: the map from policy outputs to the task's actions.
        max_steps: cap on episode length (None: the task's own).
        realign: move the per-slot state with the inputs at every reshuffle.
        observers: per-step hooks, called in order.
        driver: may return outputs ``[P', B, A]`` to execute instead of the policy's.
        weights: ``model.prepare(params)`` if already computed.
        observation: the task's observation spec, for the perturbation (default: a vector
            of the first observation's width).

    The policy runs on ``params.device`` (the CPU, or a GPU that a user asked for); the
    environments and perturbations stay NumPy on the CPU.
    """
    loop = iterate(
        model,
        params,
        task,
        perturbations,
        seeds,
        action_map=action_map,
        max_steps=max_steps,
        realign=realign,
        observers=observers,
        driver=driver,
        weights=weights,
        observation=observation,
    )
    while True:
        try:
            next(loop)
        except StopIteration as end:
            return end.value


@torch.no_grad()  # re-entered at every resume: the caller's grad mode is untouched
def iterate(
    model: Model,
    params: torch.Tensor,
    task: BatchedTask,
    perturbations: Perturbations,
    seeds: Sequence[int],
    *,
    action_map: ActionMap,
    max_steps: int | None = None,
    realign: bool = False,
    observers: Sequence[Observer] = (),
    driver: Driver | None = None,
    weights: Weights | None = None,
    observation: Observation | None = None,
) -> Generator[StepView, None, RolloutResult]:
    """:func:`episodes` as a generator that yields the view at every ``on_act``.

    What two agents side by side need (``evolve record --compare``): two loops in lockstep.
    The generator returns the :class:`RolloutResult` (``StopIteration.value``).
    """
    members, episodes_ = params.shape[0], len(seeds)
    limit = task.max_steps if max_steps is None else min(max_steps, task.max_steps)
    attention = any(o.attention for o in observers)
    feedback = action_map.kind == "discrete"  # the policy reads back the one-hot action
    raw, rngs = task.start(seeds, members)
    perturb = perturbations.batch(raw.shape[2] if observation is None else observation)
    obs = perturb.reset(raw, rngs)
    returns = np.zeros((members, episodes_))
    steps = np.zeros((members, episodes_), dtype=np.int64)
    alive = np.ones((members, episodes_), dtype=bool)
    active = np.arange(members)  # members still simulated; finished ones are dropped
    device = params.device
    if weights is None:
        weights = model.prepare(params)
    state = model.init_state(members, episodes_, dtype=params.dtype).to(device)
    view = StepView(0, obs, raw, alive, active, returns, perturb, task, state)
    for o in observers:
        o.on_reset(view)
    for t in range(limit):
        view.t, view.obs, view.raw, view.alive = t, obs, raw, alive[active]
        if attention:
            output, state, att = model.step_prepared(
                weights, torch.from_numpy(obs).to(device), state, with_attention=True
            )
            view.attention = att.cpu().numpy()
        else:
            output, state = model.step_prepared(weights, torch.from_numpy(obs).to(device), state)
        out = output.cpu().numpy()
        view.state = state
        if driver is not None:
            view.output = out
            driven = driver(view)
            if driven is not None:
                out = np.asarray(driven, dtype=out.dtype)
        env_action = action_map.to_env(out)
        if feedback or driver is not None:
            executed = action_map.feedback(env_action)
            state = model.with_previous_action(state, torch.from_numpy(executed).to(device))
        view.output, view.action, view.state = out, env_action, state
        for o in observers:
            o.on_act(view)
        yield view
        raw, reward, done = task.step(env_action)
        live = alive[active]
        reward = np.where(live, reward, 0.0)
        returns[active] += reward
        steps[active] += live
        live &= ~done
        alive[active] = live
        view.reward, view.done, view.next_raw = reward, ~live, raw
        for o in observers:
            o.on_step(view)
        if not live.any():
            break
        before = perturb.permutations.copy()
        obs = perturb.step(raw, rngs)
        if realign and perturb.reshuffled.any():
            state = state.permute(torch.from_numpy(perturb.realignment(before)))
        running = live.any(axis=1)
        if running.mean() < COMPACT_BELOW:
            keep = np.flatnonzero(running)
            active, obs, raw = active[keep], obs[keep], raw[keep]
            task.keep_members(keep)
            index = torch.from_numpy(keep).to(device)
            weights = {k: v.index_select(0, index) for k, v in weights.items()}
            state = state.select_members(index)
            view.active = active
    return RolloutResult(returns=returns, steps=steps)


# One batched task per (task, engine) per process: a pool of real envs is made once per
# worker and reused by every job it runs. Simulators are plain arrays, made afresh.
_POOLS: dict[tuple[str, str, str | None], BatchedTask] = {}


def batched_task(
    env_id: str, engine: str | None = None, perturbations: Perturbations | None = None
) -> BatchedTask:
    """The batched task of ``env_id`` on ``engine``; pools are kept and reused per process.

    A background swap in ``perturbations`` happens inside each env, before the frames are
    prepared (:meth:`Perturbations.task`), so it is part of the pool, one pool per background.
    """
    spec = get_task(env_id)
    engine = spec.check_engine(engine)
    background = None if perturbations is None else perturbations.background
    if background is not None:
        spec = perturbations.task(spec)
    if engine in ("simulator", "fused"):
        return spec.make_batched(engine)
    key = (env_id, engine, background)
    if key not in _POOLS:
        _POOLS[key] = spec.make_batched(engine)
    return _POOLS[key]


def rollout(job: EpisodeJob, params: np.ndarray, model: Model | None = None) -> RolloutResult:
    """Run every member of ``params[P, D]`` on every episode of ``job`` (see :func:`episodes`).

    On the ``fused`` engine, the episodes that :mod:`evolve.fused` can run are one compiled
    kernel; the rest run the loop on the simulator.
    """
    model = model or model_from_dict(job.model)
    spec = get_task(job.env_id)
    action_map = spec.action if job.action is None else ActionMap.from_dict(job.action)
    dtype = torch.float64 if job.float64 else torch.float32
    perturbations = Perturbations.from_dict(job.perturbations)
    device = check_device(job.device)
    if (
        job.engine == "fused"
        and device.type == "cpu"
        and fused.unsupported(model, job.env_id, job.realign, action_map) is None
    ):
        returns, steps = fused.rollout(
            model,
            torch.tensor(np.asarray(params), dtype=dtype),
            job.env_id,
            perturbations,
            job.seeds,
            job.max_steps,
        )
        return RolloutResult(returns=returns, steps=steps)
    return episodes(
        model,
        torch.tensor(np.asarray(params), dtype=dtype, device=device),
        batched_task(job.env_id, job.engine, perturbations),
        perturbations.agent_side(),
        job.seeds,
        action_map=action_map,
        max_steps=job.max_steps,
        realign=job.realign,
        observation=spec.observation,
    )
