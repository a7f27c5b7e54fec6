"""One browser tab's episode: the engine's loop driven a step at a time, and its controls.

A :class:`DemoSession` runs :func:`evolve.rollout.iterate` (the one episode loop; one
member, one episode) on a renderable batched task, as ``evolve record`` does, and pulls
one step per :meth:`DemoSession.step`. Controls go through :meth:`DemoSession.control`:

- ``{"type": "shuffle"}``: a new permutation from the next step on, drawn by the
  perturbation itself (:meth:`~tasks.perturbations.BatchPerturbation.reshuffle_at`);
- ``{"type": "reshuffle_every", "steps": T}``: reshuffle every T steps (0: off);
- ``{"type": "noise", "channels": N}``, ``{"type": "duplicate", "copies": K}`` (every input
  K times), ``{"type": "realign", "on": bool}``: these change the policy's input width or the
  loop's settings, so they start a new episode (same seed);
- image tasks only: ``{"type": "occlude", "fraction": F}`` (patches hidden, ``[0, 0.9]``) and
  ``{"type": "background", "name": NAME}`` (a name of
  :func:`~tasks.perturbations.offered_backgrounds`, or null: none); both start a new episode;
- ``{"type": "reset"}`` (optionally ``"seed": S``), ``{"type": "pause", "on": bool}``,
  ``{"type": "speed", "steps_per_second": X}``, ``{"type": "step"}`` (one step, paused).

A ``baseline`` policy (vector tasks; ``evolve demo --compare``) plays the same episode beside
the agent, in a loop of its own on an env of its own, under the same perturbation draws: the
same seed gives its perturbation the same Generator, and every shuffle, scheduled or asked
for, happens to both at the same step. A feed-forward baseline takes the task's own inputs
only, so noise channels and duplicates are refused while it plays.

A bad message raises :class:`ControlError` and changes nothing. No web code here: the app
(:mod:`evolve.demo.app`) sends what :meth:`DemoSession.step` returns as JSON, and
:mod:`evolve.demo.export` writes it to files.

Vector tasks show the env frame and each input slot's value and sensor; image tasks (with a
vision policy) show the env frame, the shuffled patch mosaic the agent gets and the most
attended patches on the true frame, drawn by :class:`evolve.video.frames.PatchPanel`.
"""

from __future__ import annotations

import base64
import io
import json
import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from evolve.rollout import Observer, StepView, iterate
from evolve.video.frames import (
    NOISE_COLOUR,
    FrameData,
    PatchPanel,
    sensor_colour,
    slot_sources,
)
from evolve.video.record import default_label, renderable_task, sensor_names
from sensoryneuron.errors import ConfigError
from sensoryneuron.models import FeedForwardModel, VisionAttentionNeuronModel
from sensoryneuron.policy import Policy
from tasks.perturbations import Perturbations, background_image, offered_backgrounds
from tasks.spec import PatchObservation, VectorObservation, get_task

MAX_NOISE_CHANNELS = 64
MAX_DUPLICATE = 8
MAX_RESHUFFLE_EVERY = 100_000
MAX_SEED = 2**31 - 1
SPEED_RANGE = (1.0, 1000.0)  # steps per second
DEFAULT_SPEED = 50.0
IMAGE_FPS = 25.0  # the env frame is sent at most this often (every k-th step at higher speeds)
IMAGE_WIDTH = 480  # env frames are scaled down to this width before JPEG encoding
MAX_MESSAGE_BYTES = 4096
MAX_OCCLUDE = 0.9
PATCH_PANEL_WIDTH = 606  # PatchPanel's two squares are then 288 px: 3x a 96-px CarRacing frame

CONTROLS: dict[str, tuple[str, ...]] = {  # message type -> its fields
    "shuffle": (),
    "reshuffle_every": ("steps",),
    "noise": ("channels",),
    "duplicate": ("copies",),
    "realign": ("on",),
    "reset": ("seed",),
    "pause": ("on",),
    "speed": ("steps_per_second",),
    "step": (),
    "occlude": ("fraction",),
    "background": ("name",),
}
OPTIONAL = {("reset", "seed")}
VECTOR_ONLY = ("noise", "duplicate", "realign")
WIDTH_CONTROLS = {"noise": ("noise_channels", "channels"), "duplicate": ("duplicate", "copies")}
"""Controls that change the policy's input width: message type -> (setting, field)."""
IMAGE_ONLY = ("occlude", "background")


class ControlError(ValueError):
    """A control message that cannot be applied; its text goes back to the tab."""


def _data_url(frame: np.ndarray) -> str:
    """An RGB frame as a JPEG data URL, scaled down to :data:`IMAGE_WIDTH` if wider."""
    image = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    if image.width > IMAGE_WIDTH:
        height = round(image.height * IMAGE_WIDTH / image.width)
        image = image.resize((IMAGE_WIDTH, height), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def jpeg_bytes(data_url: str) -> bytes:
    """The JPEG file inside a data URL of :func:`_data_url`."""
    return base64.b64decode(data_url.split(",", 1)[1])


def _hex(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def _int_field(message: dict[str, Any], name: str, low: int, high: int) -> int:
    value = message[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ControlError(f"{message['type']}: {name} must be an integer in [{low}, {high}]")
    return value


def parse_control(text: str | bytes) -> dict[str, Any]:
    """A control message as a dict, checked against :data:`CONTROLS` and its ranges.

    Raises:
        ControlError: not JSON, not an object, an unknown type or field, a missing field, or
            a value of the wrong type or out of range.
    """
    if len(text) > MAX_MESSAGE_BYTES:
        raise ControlError(f"message too long ({len(text)} bytes; at most {MAX_MESSAGE_BYTES})")
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise ControlError('not JSON: send an object such as {"type": "shuffle"}') from None
    if not isinstance(message, dict) or message.get("type") not in CONTROLS:
        raise ControlError(f"unknown control; allowed types: {', '.join(CONTROLS)}")
    kind = message["type"]
    fields = CONTROLS[kind]
    unknown = sorted(set(message) - {"type", *fields})
    if unknown:
        allowed = ", ".join(fields) or "none"
        raise ControlError(f"{kind}: unknown field(s) {', '.join(unknown)}; allowed: {allowed}")
    missing = [f for f in fields if f not in message and (kind, f) not in OPTIONAL]
    if missing:
        raise ControlError(f"{kind}: missing field(s) {', '.join(missing)}")
    if kind == "reshuffle_every":
        _int_field(message, "steps", 0, MAX_RESHUFFLE_EVERY)
    elif kind == "noise":
        _int_field(message, "channels", 0, MAX_NOISE_CHANNELS)
    elif kind == "duplicate":
        _int_field(message, "copies", 1, MAX_DUPLICATE)
    elif kind == "reset" and "seed" in message:
        _int_field(message, "seed", 0, MAX_SEED)
    elif kind in ("realign", "pause") and not isinstance(message["on"], bool):
        raise ControlError(f"{kind}: on must be true or false")
    elif kind == "speed":
        value = message["steps_per_second"]
        low, high = SPEED_RANGE
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not low <= value <= high
        ):
            raise ControlError(f"speed: steps_per_second must be a number in [{low:g}, {high:g}]")
    elif kind == "occlude":
        value = message["fraction"]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0.0 <= value <= MAX_OCCLUDE
        ):
            raise ControlError(f"occlude: fraction must be a number in [0, {MAX_OCCLUDE:g}]")
    elif kind == "background":
        name = message["name"]
        if name is not None and name not in offered_backgrounds():
            raise ControlError(
                f"background: name must be null or one of {', '.join(offered_backgrounds())}"
            )
    return message


@dataclass
class Settings:
    """What the tab controls. ``reshuffle_every`` 0 is off."""

    seed: int = 0
    reshuffle_every: int = 0
    noise_channels: int = 0
    duplicate: int = 1
    realign: bool = False
    paused: bool = False
    speed: float = DEFAULT_SPEED
    occlude: float = 0.0
    background: str | None = None


class _Watch(Observer):
    """Asks the loop for the attention and keeps each step's reward."""

    attention = True

    def __init__(self) -> None:
        self.reward = 0.0

    def on_reset(self, view: StepView) -> None:
        self.reward = 0.0

    def on_step(self, view: StepView) -> None:
        self.reward = float(view.reward[0, 0])


class DemoSession:
    """One agent's live episode under controllable perturbations (see the module doc).

    Thread-safe: :meth:`step` and :meth:`control` may come from different threads.
    """

    def __init__(
        self,
        policy: Policy,
        env_id: str,
        *,
        seed: int = 0,
        label: str | None = None,
        reshuffle_every: int = 0,
        baseline: Policy | None = None,
        baseline_label: str | None = None,
    ) -> None:
        spec = get_task(env_id)
        self.image_task = isinstance(spec.observation, PatchObservation)
        if self.image_task and not isinstance(policy.model, VisionAttentionNeuronModel):
            raise ConfigError(
                f"{env_id} has image inputs: evolve demo plays it with a vision policy only "
                f"(vision AttentionNeuron), not {default_label(policy)}"
            )
        if not self.image_task and not isinstance(spec.observation, VectorObservation):
            raise ConfigError(f"evolve demo cannot show {env_id}'s observation")
        if baseline is not None and self.image_task:
            raise ConfigError(f"a baseline side by side needs a vector task; {env_id} has images")
        self.policy = policy
        self.env_id = env_id
        self.label = label or default_label(policy)
        self.observation = spec.observation
        self.names = () if self.image_task else sensor_names(env_id, spec.observation.size)
        if not 0 <= reshuffle_every <= MAX_RESHUFFLE_EVERY:
            raise ConfigError(
                f"reshuffle_every must be an integer in [0, {MAX_RESHUFFLE_EVERY}], "
                f"got {reshuffle_every}"
            )
        self.settings = Settings(seed=seed, reshuffle_every=reshuffle_every)
        self.task = None
        self._task_background: str | None = None
        self._patch_panel = None
        if self.image_task:
            grid = (spec.observation.height, spec.observation.width, spec.observation.patch)
            self._patch_panel = PatchPanel(PATCH_PANEL_WIDTH, grid)
        self._lock = threading.RLock()
        self._watch = _Watch()
        self._loop = None
        self._view: StepView | None = None
        self.ended = False
        self._baseline = None
        if baseline is not None:
            self._baseline = _Baseline(baseline, baseline_label or default_label(baseline))
        self._last_image_t = -math.inf
        self.reset()

    # -- the episode --------------------------------------------------------------------

    def _perturbations(self) -> Perturbations:
        s = self.settings
        if self.image_task:
            return Perturbations(shuffle=True, occlude=s.occlude, background=s.background)
        return Perturbations(shuffle=True, noise_channels=s.noise_channels, duplicate=s.duplicate)

    def _task_for(self, perturbations: Perturbations) -> None:
        """(Re)makes the renderable task where there is none or its background changed."""
        if self.task is not None and self._task_background == perturbations.background:
            return
        if self.task is not None:
            self.task.close()
            self.task = None
        self.task = renderable_task(self.env_id, perturbations)
        self._task_background = perturbations.background

    def reset(self, seed: int | None = None) -> None:
        """Starts an episode (``seed``, else the current one) with the current settings."""
        with self._lock:
            if seed is not None:
                self.settings.seed = seed
            self._close_loop()
            perturbations = self._perturbations()
            if self.image_task:
                agent_side = perturbations.agent_side()
            else:
                agent_side = perturbations
                self._check_width(self.policy.model, perturbations)
                if self._baseline is not None:
                    self._check_width(self._baseline.policy.model, perturbations)
            self._task_for(perturbations)
            self._loop = self._episode(self.policy, self.task, agent_side, self._watch)
            if self._baseline is not None:
                b = self._baseline
                if b.loop is not None:
                    b.loop.close()
                if b.task is None:
                    b.task = renderable_task(self.env_id, perturbations)
                b.loop = self._episode(b.policy, b.task, agent_side, b.watch)
                b.view, b.ended, b.episode_return = None, False, 0.0
            self.ended = False
            self.episode_return = 0.0
            self.steps = 0
            self._last_image_t = -math.inf
            self._advance()
            self._schedule()

    def _check_width(self, model: Any, perturbations: Perturbations) -> None:
        width = perturbations.batch(self.observation).out_dim
        if isinstance(model, FeedForwardModel) and width != model.obs_dim:
            raise ControlError(
                f"the feed-forward policy takes exactly {model.obs_dim} inputs; "
                f"{perturbations.noise_channels} noise channels and "
                f"x{perturbations.duplicate} duplicates make {width}"
            )

    def _episode(
        self, policy: Policy, task: Any, perturbations: Perturbations, watch: _Watch
    ) -> Any:
        """One policy's episode loop with the current settings."""
        return iterate(
            policy.model,
            torch.from_numpy(policy.params.copy())[None],
            task,
            perturbations,
            [self.settings.seed],
            action_map=policy.action,
            realign=self.settings.realign,
            observers=[watch],
            observation=self.observation,
        )

    def _advance(self) -> None:
        if self._baseline is not None and not self._baseline.ended:
            b = self._baseline
            view, b.ended, b.episode_return, b.steps = _next_step(b.loop)
            b.view = view or b.view
        view, self.ended, self.episode_return, self.steps = _next_step(self._loop)
        self._view = view or self._view  # an ended episode keeps its last view

    def _schedule(self) -> None:
        """Where the next automatic reshuffle is, counted from now."""
        every = self.settings.reshuffle_every
        for perturb in self._perturbations_now():
            perturb.reshuffle_at(perturb.steps + every if every else None)

    def _perturbations_now(self) -> list[Any]:
        """The running episodes' perturbations: the agent's, and the baseline's while its
        episode goes on (both at the same step)."""
        perturbs = [self._view.perturbation]
        if self._baseline is not None and not self._baseline.ended:
            perturbs.append(self._baseline.view.perturbation)
        return perturbs

    def step(self, images: bool | None = None) -> dict[str, Any]:
        """The frame message of the current step, then the loop moves on one step.

        Once the episode has ended, returns its ``end`` message (and stays there until a
        reset).

        Args:
            images: attach the images (JPEG data URLs) to this frame; None: at most
                :data:`IMAGE_FPS` a second at the current speed (the others hold None).
        """
        with self._lock:
            if self.ended:
                return self._end_message()
            message = self._frame_message(images)
            self._advance()
            if not self.ended and self._view.perturbation.reshuffled[0]:
                self._schedule()
            return message

    @property
    def permutation(self) -> np.ndarray:
        """The permutation the agent's inputs are under now."""
        return self._view.perturbation.permutations[0].copy()

    def _frame_message(self, images: bool | None) -> dict[str, Any]:
        view = self._view
        perm = view.perturbation.permutations[0]
        attention = None if view.attention is None else view.attention[0, 0]
        if attention is not None and attention.size == 0:
            attention = None
        if images is None:
            images = view.t - self._last_image_t >= max(1.0, self.settings.speed / IMAGE_FPS)
        image = None
        if images:
            image = _data_url(self.task.render(0, 0))
            self._last_image_t = view.t
        common = {
            "type": "frame",
            "t": int(view.t),
            "permutation": perm.tolist(),
            "reshuffled": bool(view.perturbation.reshuffled[0]),
            "action": np.asarray(view.action[0, 0], dtype=float).reshape(-1).tolist(),
            "reward": self._watch.reward if view.t > 0 else None,
            "return": self.episode_return,
            "image": image,
        }
        if self._baseline is not None:
            common["baseline"] = self._baseline.message(images)
        if self.image_task:
            mosaic = attended = None
            if images:
                mosaic, attended = self._patch_images(view, attention)
            return {**common, "mosaic": mosaic, "attended": attended}
        sources = slot_sources(perm, len(self.names), self.settings.noise_channels)
        return {
            **common,
            "obs": np.asarray(view.obs[0, 0], dtype=float).round(4).tolist(),
            "sources": sources.tolist(),
            "attention": None
            if attention is None
            else np.asarray(attention, float).round(4).tolist(),
            "output": np.asarray(view.output[0, 0], dtype=float).tolist(),
        }

    def _patch_images(self, view: StepView, attention: np.ndarray | None) -> tuple[str, str]:
        """The patch mosaic the agent gets, and the true frame with the most attended
        patches outlined: the two squares :class:`~evolve.video.frames.PatchPanel` draws."""
        panel = self._patch_panel
        data = FrameData(
            step=int(view.t),
            env_frame=np.zeros((1, 1, 3), dtype=np.uint8),  # PatchPanel draws no env frame
            obs=np.asarray(view.obs[0, 0]),
            permutation=view.perturbation.permutations[0],
            noise_channels=0,
            sensor_names=(),
            attention=np.zeros((0, 0)) if attention is None else np.asarray(attention),
            action=np.asarray(view.action[0, 0]),
            episode_return=self.episode_return,
            patch_grid=panel.grid,
        )
        canvas = Image.new("RGB", (panel.width, panel.height), (255, 255, 255))
        panel.draw(canvas, ImageDraw.Draw(canvas), 0, 0, data)
        height, width, _ = panel.grid
        side_y = round(panel.side * height / width)
        top = panel.title_height
        squares = []
        for left in (10, 20 + panel.side):  # where PatchPanel.draw puts its two squares
            box = (left, top, left + panel.side, top + side_y)
            squares.append(_data_url(np.asarray(canvas.crop(box))))
        return squares[0], squares[1]

    def _end_message(self) -> dict[str, Any]:
        return {
            "type": "end",
            "return": self.episode_return,
            "steps": self.steps,
            "reward": self._watch.reward,
        }

    # -- controls -----------------------------------------------------------------------

    def control(self, text: str | bytes) -> dict[str, Any] | None:
        """Applies one control message; returns a message to send back, if any.

        Raises:
            ControlError: a malformed or out-of-range message (nothing changed).
        """
        message = parse_control(text)
        kind = message["type"]
        if self.image_task and kind in VECTOR_ONLY:
            raise ControlError(f"{kind}: does not apply to {self.env_id}, an image task")
        if not self.image_task and kind in IMAGE_ONLY:
            raise ControlError(f"{kind}: applies to image tasks only; {self.env_id} is not one")
        if kind == "background" and message["name"] is not None:
            try:
                background_image(message["name"])  # e.g. a sample without scikit-image
            except ConfigError as exc:
                raise ControlError(f"background: {exc}") from None
        with self._lock:
            if kind == "step":
                if not self.settings.paused:
                    raise ControlError("step: pause first")
                return self.step()
            if kind == "pause":
                self.settings.paused = message["on"]
            elif kind == "speed":
                self.settings.speed = float(message["steps_per_second"])
            elif kind == "reset":
                self.reset(message.get("seed"))
            elif kind == "shuffle":
                if self.ended:
                    raise ControlError("shuffle: the episode is over; reset")
                for perturb in self._perturbations_now():
                    perturb.reshuffle_at(perturb.steps + 1)
            elif kind == "reshuffle_every":
                self.settings.reshuffle_every = message["steps"]
                if not self.ended:
                    self._schedule()
            elif kind in WIDTH_CONTROLS:
                name, field = WIDTH_CONTROLS[kind]
                before = getattr(self.settings, name)
                setattr(self.settings, name, message[field])
                try:
                    self.reset()
                except ControlError:
                    setattr(self.settings, name, before)
                    self.reset()
                    raise
            elif kind == "realign":
                self.settings.realign = message["on"]
                self.reset()
            elif kind == "occlude":
                self.settings.occlude = float(message["fraction"])
                self.reset()
            elif kind == "background":
                self.settings.background = message["name"]
                self.reset()
            return self.hello()

    def hello(self) -> dict[str, Any]:
        """What the page needs to lay itself out, and the current settings."""
        s = self.settings
        return {
            "type": "settings",
            "env_id": self.env_id,
            "kind": "image" if self.image_task else "vector",
            "label": self.label,
            "sensors": [
                {"name": n, "colour": _hex(sensor_colour(i))} for i, n in enumerate(self.names)
            ],
            "noise_colour": _hex(NOISE_COLOUR),
            "seed": s.seed,
            "reshuffle_every": s.reshuffle_every,
            "noise_channels": s.noise_channels,
            "duplicate": s.duplicate,
            "max_duplicate": MAX_DUPLICATE,
            "baseline": None if self._baseline is None else self._baseline.label,
            "realign": s.realign,
            "paused": s.paused,
            "steps_per_second": s.speed,
            "max_noise_channels": MAX_NOISE_CHANNELS,
            "speed_range": list(SPEED_RANGE),
            "occlude": s.occlude,
            "max_occlude": MAX_OCCLUDE,
            "background": s.background,
            "backgrounds": list(offered_backgrounds()),
        }

    def _close_loop(self) -> None:
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    def close(self) -> None:
        with self._lock:
            self._close_loop()
            if self.task is not None:
                self.task.close()
            if self._baseline is not None:
                self._baseline.close()


def _next_step(loop: Any) -> tuple[StepView | None, bool, float, int]:
    """One episode loop moved on a step: its next view (None once it is over), whether it
    ended, the return so far and the steps taken."""
    try:
        view = next(loop)
    except StopIteration as end:
        return None, True, float(end.value.returns[0, 0]), int(end.value.steps[0, 0])
    return view, False, float(view.returns[0, 0]), view.t


class _Baseline:
    """The baseline's side of a session: its episode loop, its env and where it stands."""

    def __init__(self, policy: Policy, label: str) -> None:
        self.policy = policy
        self.label = label
        self.watch = _Watch()
        self.task: Any = None
        self.loop: Any = None
        self.view: StepView | None = None
        self.ended = False
        self.episode_return = 0.0
        self.steps = 0

    def message(self, images: bool) -> dict[str, Any]:
        """Where the baseline stands, for the frame message."""
        return {
            "return": self.episode_return,
            "ended": self.ended,
            "steps": self.steps,
            "action": None
            if self.ended
            else np.asarray(self.view.action[0, 0], dtype=float).reshape(-1).tolist(),
            "image": _data_url(self.task.render(0, 0)) if images else None,
        }

    def close(self) -> None:
        if self.loop is not None:
            self.loop.close()
            self.loop = None
        if self.task is not None:
            self.task.close()
            self.task = None
