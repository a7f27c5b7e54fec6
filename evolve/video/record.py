"""Videos of agents whose inputs are shuffled: the task, what the agent sees, where it attends.

:func:`record` plays one episode per policy (one, or two side by side) and writes an ``.mp4``
(H.264) or a ``.gif``; the format follows the extension. Each agent's episode is one run of
the engine's episode loop (:func:`evolve.rollout.iterate`, one member, one episode) on a
batched task that renders (:func:`renderable_task`), with the batched perturbation training
and evaluation use: the video shows exactly what they see. Two agents side by side are two
loops in lockstep with the same seed, so the same start state, permutation schedule and
noise. Each frame holds one column of panels per agent, top to bottom:

- header: the agent's name, the step, the return so far and the action;
- env: the environment's ``rgb_array`` frame, with a RESHUFFLE banner after each reshuffle;
- observation: one cell per input slot in the current order, coloured by the sensor it
  carries (noise channels grey; where the task groups its sensors, as the Ant's torso,
  joint angles and velocities, by the sensor's group), with the value as a bar and a number;
- attention: the ``M x N`` attention weights, columns aligned with the observation cells;
- legend: which colour is which sensor (or sensor group).

Drawing is separate from playing: :class:`FrameData` holds what one column shows at one
step, and :func:`compose_frame` turns a list of them into an RGB array. Each panel is a
small class with the same two methods, so an image task can add its own (say, the original
frame beside the shuffled one with the attended patches highlighted) in
:func:`vector_panels`' place.

Example:
    >>> import numpy as np, sensoryneuron as sn
    >>> from tasks import Perturbations
    >>> model = sn.AttentionNeuronModel(act_dim=1)
    >>> policy = sn.Policy(model, np.zeros(model.num_params, dtype=np.float32))
    >>> result = record(  # doctest: +SKIP
    ...     [policy], "SensoryNeuron/CartPoleSwingUpHarder-v0", "videos/demo.mp4",
    ...     Perturbations(reshuffle_every=100, noise_channels=5), seed=3, steps=1000,
    ... )
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from evolve.rollout import Observer, RolloutResult, StepView, iterate
from evolve.video.encode import VideoFile, check_fps, check_output
from evolve.video.frames import COLUMN_WIDTH, FrameComposer, FrameData
from sensoryneuron.errors import ConfigError
from sensoryneuron.models import AttentionNeuronModel, FeedForwardModel, VisionAttentionNeuronModel
from sensoryneuron.policy import Policy
from tasks.batched import BatchedTask
from tasks.perturbations import Perturbations, apply_permutation, duplicate_observation
from tasks.pools import GymPool
from tasks.spec import VectorObservation, get_task, observation_names

BANNER_FRAMES = 15  # frames that show the RESHUFFLE banner, from the reshuffle on


def sensor_names(env_id: str, obs_dim: int) -> tuple[str, ...]:
    """What each raw observation element measures (``obs 0``, ``obs 1``... when unknown)."""
    names = observation_names(env_id)
    if len(names) != obs_dim:
        return tuple(f"obs {i}" for i in range(obs_dim))
    return tuple(names)


def banner_steps(
    reshuffle_steps: Sequence[int], length: int, duration: int = BANNER_FRAMES
) -> list[int]:
    """The frames (of ``length``) that show the RESHUFFLE banner.

    The banner shows on the frame whose observation first uses a new permutation and on the
    ``duration - 1`` frames after it; a reshuffle during a banner extends it.

    Example:
        >>> banner_steps([10, 12, 30], 32, duration=3)
        [10, 11, 12, 13, 14, 30, 31]
    """
    shown = np.zeros(length, dtype=bool)
    for step in reshuffle_steps:
        shown[max(step, 0) : max(step + duration, 0)] = True
    return np.flatnonzero(shown).tolist()


def default_label(policy: Policy) -> str:
    """A readable name for ``policy``: its architecture, and its reference name if any."""
    if isinstance(policy.model, AttentionNeuronModel):
        kind = "AttentionNeuron (permutation-invariant)"
    elif isinstance(policy.model, VisionAttentionNeuronModel):
        kind = "vision AttentionNeuron (permutation-invariant)"
    elif isinstance(policy.model, FeedForwardModel):
        kind = "feed-forward (FNN)"
    else:
        kind = type(policy.model).__name__
    name = policy.info.get("reference")
    return f"{kind}: {name}" if name else kind


@dataclass(frozen=True)
class AgentResult:
    """How one recorded episode went.

    Attributes:
        label: the agent's name.
        episode_return: the reward collected while recording.
        steps: the steps taken.
        ended: whether the episode ended (terminated or truncated) within the recording.
        reshuffle_steps: the frames whose observation is the first of a new permutation.
    """

    label: str
    episode_return: float
    steps: int
    ended: bool
    reshuffle_steps: tuple[int, ...]


def renderable_task(env_id: str, perturbations: Perturbations | None = None) -> BatchedTask:
    """A batched task of ``env_id`` whose environments render ``rgb_array`` frames.

    The task's vectorised simulator where it has one (it renders too), else a pool of
    Gymnasium envs made with ``render_mode="rgb_array"``; a background swap in
    ``perturbations`` happens inside those envs (what the agent sees; the render shows the
    env's own colours).
    """
    spec = get_task(env_id)
    if spec.simulator is not None:
        return spec.make_batched("simulator")
    if perturbations is not None:
        spec = perturbations.task(spec)
    return GymPool(spec, render_mode="rgb_array")


class _Watch(Observer):
    """Asks the loop for the attention, and keeps what the last env step returned (for the
    frame that holds an ended episode)."""

    attention = True
    next_raw: np.ndarray | None = None

    def on_step(self, view: StepView) -> None:
        self.next_raw = view.next_raw[0, 0].copy()


class _Episode:
    """One agent's episode: the rollout loop on one member and one episode, a step a pull."""

    def __init__(
        self,
        policy: Policy,
        env_id: str,
        perturbations: Perturbations,
        seed: int,
        label: str,
        banner_frames: int,
    ) -> None:
        spec = get_task(env_id)
        observation = spec.observation
        self.grid = None
        if not isinstance(observation, VectorObservation):
            self.grid = (observation.height, observation.width, observation.patch)
        perturb = perturbations.agent_side().batch(observation)
        model = policy.model
        if (
            isinstance(model, FeedForwardModel)
            and self.grid is None
            and perturb.out_dim != model.obs_dim
        ):
            raise ConfigError(
                f"{label}: the feed-forward policy takes exactly {model.obs_dim} inputs, but "
                f"the observation ({perturbations.describe()}) has {perturb.out_dim}"
            )
        self.label = label
        self.banner_frames = banner_frames
        self.noise_channels = perturbations.noise_channels
        self.copies = perturbations.duplicate
        self.names = () if self.grid else sensor_names(env_id, spec.observation.size)
        # a vector task's groups of sensors, which its spec checks cover every sensor once
        self.groups = () if self.grid else observation.groups
        self.task = renderable_task(env_id, perturbations)
        self._watch = _Watch()
        self._loop = iterate(
            model,
            torch.from_numpy(policy.params.copy())[None],
            self.task,
            perturbations.agent_side(),
            [seed],
            action_map=policy.action,
            observers=[self._watch],
            observation=spec.observation,
        )
        self.steps = 0
        self.episode_return = 0.0
        self.ended = False
        self.reshuffles: list[int] = []
        self.view: StepView | None = None
        self.last: FrameData | None = None
        try:
            self.advance()  # the policy acts on the first observation
        except BaseException:
            self.close()
            raise

    def frame(self) -> FrameData:
        """What the column shows now: the observation, and how the policy acts on it."""
        if self.ended:
            return self.last
        view = self.view
        if view.perturbation.reshuffled[0]:
            self.reshuffles.append(self.steps)
        self.last = FrameData(
            step=self.steps,
            env_frame=self.task.render(0, 0),
            obs=np.array(view.obs[0, 0], dtype=np.float32),
            permutation=view.perturbation.permutations[0].copy(),
            noise_channels=self.noise_channels,
            sensor_names=self.names,
            attention=view.attention[0, 0].copy(),
            action=np.array(view.action[0, 0]),
            episode_return=self.episode_return,
            banner=self.steps in banner_steps(self.reshuffles, self.steps + 1, self.banner_frames),
            label=self.label,
            patch_grid=self.grid,
            sensor_groups=self.groups,
        )
        return self.last

    def advance(self) -> None:
        """Takes the action shown by :meth:`frame`; the policy acts on what comes next."""
        if self.ended:
            return
        try:
            self.view = next(self._loop)
        except StopIteration as end:  # the episode is over (or ran to the task's limit)
            self._end(end.value)
            return
        self.steps = self.view.t
        self.episode_return = float(self.view.returns[0, 0])

    def _end(self, result: RolloutResult) -> None:
        self.ended = True
        self.steps = int(result.steps[0, 0])
        self.episode_return = float(result.returns[0, 0])
        last = self.last  # the loop yields at least once, so a frame exists
        if self.grid is not None:  # an image task: the last patches the agent saw stay
            self.last = dataclasses.replace(
                last,
                step=self.steps,
                env_frame=self.task.render(0, 0),
                episode_return=self.episode_return,
                banner=False,
                done=True,
            )
            return
        raw = duplicate_observation(self._watch.next_raw[None], self.copies)[0]
        shown = apply_permutation(raw, last.permutation).astype(np.float32)
        self.last = dataclasses.replace(
            last,
            step=self.steps,
            env_frame=self.task.render(0, 0),
            obs=np.concatenate([shown, last.obs[shown.size :]]),  # the noise as last drawn
            episode_return=self.episode_return,
            banner=False,
            done=True,
        )

    def result(self) -> AgentResult:
        return AgentResult(
            self.label, self.episode_return, self.steps, self.ended, tuple(self.reshuffles)
        )

    def close(self) -> None:
        self._loop.close()
        self.task.close()


class LockstepEpisodes:
    """Plays one episode per policy side by side; iterate for one ``list[FrameData]`` a step.

    Every policy runs its own rollout loop (:func:`evolve.rollout.iterate`, one member, one
    episode) on its own renderable task with the same seed and perturbation, hence the same
    start state, permutation schedule and noise; the loops advance in lockstep. Iteration
    stops after ``steps`` frames or once every episode has ended; until then an ended
    episode's column holds its last state. Use as a context manager (or call :meth:`close`)
    to close the loops and their envs.
    """

    def __init__(
        self,
        policies: Sequence[Policy],
        env_id: str,
        perturbations: Perturbations,
        *,
        seed: int,
        steps: int,
        labels: Sequence[str] | None = None,
        banner_frames: int = BANNER_FRAMES,
    ) -> None:
        if not 1 <= len(policies) <= 2 or not all(isinstance(p, Policy) for p in policies):
            raise ConfigError(f"record one or two policies side by side, got {len(policies)}")
        labels = list(labels) if labels is not None else [default_label(p) for p in policies]
        if len(labels) != len(policies):
            raise ConfigError(f"got {len(labels)} labels for {len(policies)} policies")
        for name, value, minimum in (
            ("steps", steps, 1),
            ("seed", seed, 0),
            ("banner_frames", banner_frames, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
                raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
        self.steps = steps
        self.episodes: list[_Episode] = []
        try:
            for policy, label in zip(policies, labels, strict=True):
                self.episodes.append(
                    _Episode(policy, env_id, perturbations, seed, label, banner_frames)
                )
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[list[FrameData]]:
        for _ in range(self.steps):
            if all(e.ended for e in self.episodes):
                return
            columns = [e.frame() for e in self.episodes]
            yield columns
            for e in self.episodes:
                e.advance()

    def results(self) -> list[AgentResult]:
        return [e.result() for e in self.episodes]

    def close(self) -> None:
        for e in self.episodes:
            e.close()

    def __enter__(self) -> LockstepEpisodes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class RecordResult:
    """What :func:`record` wrote.

    Attributes:
        path: the video file.
        frames: frames written (one per step shown).
        size: ``(width, height)`` in pixels, both multiples of 16.
        fps: the frame rate.
        seconds: wall time of the recording.
        agents: one result per policy, in column order.
    """

    path: Path
    frames: int
    size: tuple[int, int]
    fps: float
    seconds: float
    agents: tuple[AgentResult, ...]


def describe(env_id: str, perturbations: Perturbations, seed: int, agents: int) -> str:
    """The title line of a video."""
    title = f"{env_id.split('/')[-1]}  |  inputs {perturbations.describe()}  |  seed {seed}"
    return title + ("  |  same start, permutations and noise for both" if agents > 1 else "")


def record(
    policies: Sequence[Policy],
    env_id: str,
    output: str | os.PathLike,
    perturbations: Perturbations | None = None,
    *,
    seed: int = 0,
    steps: int = 1000,
    fps: float = 50,
    labels: Sequence[str] | None = None,
    progress: bool = True,
    banner_frames: int = BANNER_FRAMES,
    column_width: int = COLUMN_WIDTH,
) -> RecordResult:
    """Records one episode of one policy, or of two side by side, to an .mp4 or a .gif.

    The video shows one frame per step and ends after ``steps`` frames or once every
    episode has ended, whichever comes first.

    Args:
        policies: one policy, or two to compare (same seed, same permutation schedule).
        env_id: a registered task (see ``tasks.spec.get_task``).
        output: the file to write; ``.mp4`` (H.264) or ``.gif``. Written atomically.
        perturbations: what happens to the observation (default: shuffled at reset).
        seed: the episode seed (start state, permutations and noise).
        steps: the most frames to record.
        fps: frames per second. A GIF plays at most 50, and its delays are whole hundredths
            of a second, so its rate is rounded (30 plays at 33.3).
        labels: a name per policy (default: its architecture).
        progress: show a progress bar.
        banner_frames: how many frames show the RESHUFFLE banner after a reshuffle.
        column_width: pixels per agent, a multiple of 16.

    Raises:
        ConfigError: for a bad output path or extension, a bad setting, or a feed-forward
            policy that cannot take the perturbed observation's width.
    """
    start = time.perf_counter()
    path = check_output(output)
    fps = check_fps(fps, path)
    perturbations = perturbations if perturbations is not None else Perturbations()
    title = describe(env_id, perturbations, seed, len(policies))
    with (
        LockstepEpisodes(
            policies,
            env_id,
            perturbations,
            seed=seed,
            steps=steps,
            labels=labels,
            banner_frames=banner_frames,
        ) as episodes,
        VideoFile(path, fps) as video,
        tqdm(total=steps, desc="recording", unit="step", disable=not progress) as bar,
    ):
        composer: FrameComposer | None = None
        for columns in episodes:
            if composer is None:
                composer = FrameComposer(columns, title, column_width)
            video.append(composer.compose(columns))
            bar.update()
        results = tuple(episodes.results())
    return RecordResult(
        path=path,
        frames=video.frames,
        size=composer.size,
        fps=fps,
        seconds=time.perf_counter() - start,
        agents=results,
    )
