"""The perturbation settings of a run or a test condition, and how to build them.

:class:`Perturbations` is plain, JSON-able configuration. :meth:`Perturbations.batch` builds
the batched transform the rollout engine applies, and :meth:`Perturbations.wrap` its
Gymnasium-wrapper twin, which makes the same draws from the same seed.

Vector tasks take ``duplicate``, ``shuffle``, ``reshuffle_every`` and the noise channels
(:class:`~tasks.perturbations.BatchPerturbation`); image tasks (a
:class:`~tasks.spec.PatchObservation`) take ``shuffle``, ``reshuffle_every``, ``occlude`` and
``background`` (:class:`~tasks.perturbations.patches.PatchPerturbation`). A field set for the
other kind of task is a ConfigError.

``background`` is the one perturbation that acts inside each env: it changes the RGB frames
before they are turned gray and stacked. :meth:`Perturbations.task` gives the task spec whose
envs swap it, :meth:`Perturbations.make_env` one such env with every wrapper on top, and
:meth:`Perturbations.agent_side` the settings that remain for :meth:`~Perturbations.batch`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from sensoryneuron.configs import build_dataclass
from sensoryneuron.errors import ConfigError
from tasks.perturbations.draws import validate_reshuffle_every
from tasks.perturbations.patch_wrappers import ShufflePatches, SwapBackground
from tasks.perturbations.patches import PatchPerturbation, validate_occlude
from tasks.perturbations.vector import BatchPerturbation
from tasks.perturbations.wrappers import DuplicateObservation, NoiseChannels, ShuffleObservation

if TYPE_CHECKING:
    from tasks.spec import PatchObservation, TaskSpec


def _patch_observation() -> type:
    # tasks.spec imports tasks.cartpole_batched, which imports this package: import it late
    from tasks.spec import PatchObservation

    return PatchObservation


@dataclass(frozen=True)
class SwapThenPrepare:
    """A task's ``prepare`` with :class:`SwapBackground` beneath it (picklable)."""

    background: str
    prepare: Callable[[gym.Env], gym.Env] | None = None

    def __call__(self, env: gym.Env) -> gym.Env:
        env = SwapBackground(env, image=self.background)
        return env if self.prepare is None else self.prepare(env)


@dataclass(frozen=True)
class Perturbations:
    """What happens to the observation on its way to the agent (applied in this order).

    Attributes:
        duplicate: each input repeated this many times (1: off).
        shuffle: permute the inputs at reset.
        reshuffle_every: None (reset only), steps between reshuffles, or a (low, high) range
            from which each interval is drawn.
        noise_channels: i.i.d. N(0, noise_std^2) inputs appended after the shuffled ones.
        noise_std: their standard deviation.
        occlude: images only: the fraction of patches hidden each episode, in [0, 1).
        background: images only: the image that replaces the background colours (a name of
            :func:`~tasks.perturbations.patches.offered_backgrounds` or a file path), read
            when an env is made (so a saved config loads where the file is absent).
    """

    duplicate: int = 1
    shuffle: bool = True
    reshuffle_every: int | tuple[int, int] | None = None
    noise_channels: int = 0
    noise_std: float = 0.1
    occlude: float = 0.0
    background: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "reshuffle_every", validate_reshuffle_every(self.reshuffle_every))
        self._vector(1)  # BatchPerturbation owns the validation of the vector fields
        object.__setattr__(self, "occlude", validate_occlude(self.occlude))
        if self.background is not None and not (
            isinstance(self.background, str) and self.background
        ):
            raise ConfigError(
                f"background must be None, an image name or a file path, got {self.background!r}"
            )

    def batch(self, observation: Any) -> BatchPerturbation | PatchPerturbation:
        """The batched perturbation for a task's observation.

        Args:
            observation: the size of a vector observation, a
                :class:`~tasks.spec.VectorObservation` (both: a
                :class:`~tasks.perturbations.BatchPerturbation`) or a
                :class:`~tasks.spec.PatchObservation` (a
                :class:`~tasks.perturbations.patches.PatchPerturbation`).

        Raises:
            ConfigError: for a field of the other kind of task, and for ``background``,
                which the envs apply (see :meth:`task`).
        """
        if isinstance(observation, _patch_observation()):
            self._check_patch_task(observation)
            return PatchPerturbation(
                observation,
                shuffle=self.shuffle,
                reshuffle_every=self.reshuffle_every,
                occlude=self.occlude,
            )
        self._check_vector_task(getattr(observation, "size", observation))
        return self._vector(getattr(observation, "size", observation))

    def agent_side(self) -> Perturbations:
        """These settings without ``background`` (which the envs apply): what :meth:`batch`
        and :meth:`wrap` take once the task comes from :meth:`task`."""
        return dataclasses.replace(self, background=None)

    def task(self, spec: TaskSpec) -> TaskSpec:
        """``spec`` whose envs swap the background (beneath its ``prepare``); ``spec`` itself
        without a background.

        A frame preparation of this project swaps it itself, on every engine (CarRacing's on
        the RGB frames; Pong's on the 84x84 gray frames, since Gymnasium's
        ``AtariPreprocessing`` reads the ALE screen, not the env's observation); beneath any
        other ``prepare``, the env's RGB observations are swapped.
        """
        if self.background is None:
            return spec
        if not isinstance(spec.observation, _patch_observation()):
            self._check_vector_task(spec.observation.size)
        from tasks.atari_frames import AtariFramePreparation  # they import this package
        from tasks.frame_preparation import FramePreparation

        if isinstance(spec.prepare, (FramePreparation, AtariFramePreparation)):
            return dataclasses.replace(spec, prepare=spec.prepare.with_background(self.background))
        return dataclasses.replace(spec, prepare=SwapThenPrepare(self.background, spec.prepare))

    def make_env(self, spec: TaskSpec, render_mode: str | None = None) -> gym.Env:
        """One env of ``spec`` as the agent sees it: every perturbation, the background too."""
        env = self.task(spec).make_env(render_mode=render_mode)
        return self.agent_side().wrap(env, spec.observation)

    def _check_vector_task(self, size: Any) -> None:
        for name in ("occlude", "background"):
            value = getattr(self, name)
            if value not in (0.0, None):
                raise ConfigError(
                    f"{name}={value!r} is for image tasks (a patch observation); this task "
                    f"gives {size} sensors"
                )

    def _check_patch_task(self, observation: PatchObservation) -> None:
        for name, off in (("duplicate", 1), ("noise_channels", 0)):
            value = getattr(self, name)
            if value != off:
                raise ConfigError(
                    f"{name}={value!r} is for vector tasks; this task gives "
                    f"{observation.describe()}"
                )
        if self.background is not None:
            raise ConfigError(
                f"background={self.background!r} changes the RGB frames inside each env, "
                "before grayscale: make envs with Perturbations.make_env(spec), batched tasks "
                "from Perturbations.task(spec), and perturb their frames with agent_side()"
            )

    def _vector(self, obs_dim: Any) -> BatchPerturbation:
        return BatchPerturbation(
            obs_dim,
            duplicate=self.duplicate,
            shuffle=self.shuffle,
            reshuffle_every=self.reshuffle_every,
            noise_channels=self.noise_channels,
            noise_std=self.noise_std,
        )

    def wrap(self, env: gym.Env, observation: Any = None) -> gym.Env:
        """The Gymnasium twin of :meth:`batch`: ``env`` wrapped as the agent sees it.

        Args:
            env: an env of the task, as its spec makes it (:meth:`~tasks.spec.TaskSpec.make_env`).
            observation: the task's observation; a :class:`~tasks.spec.PatchObservation` gives
                :class:`~tasks.perturbations.patch_wrappers.ShufflePatches` over the env's frame
                stacks. ``None`` or a vector: the vector wrappers, as before.
        """
        if isinstance(observation, _patch_observation()):
            self._check_patch_task(observation)
            shape = (observation.frames, observation.height, observation.width)
            if env.observation_space.shape != shape:
                raise ConfigError(
                    f"the env gives {env.observation_space}, not the frame stacks {shape} of "
                    f"{observation.describe()}"
                )
            return ShufflePatches(
                env,
                patch=observation.patch,
                reshuffle_every=self.reshuffle_every,
                occlude=self.occlude,
                shuffle=self.shuffle,
            )
        space = env.observation_space
        self._check_vector_task(
            getattr(observation, "size", space.shape[0] if len(space.shape) == 1 else space)
        )
        if self.duplicate > 1:
            env = DuplicateObservation(env, copies=self.duplicate)
        if self.shuffle:
            env = ShuffleObservation(env, reshuffle_every=self.reshuffle_every)
        if self.noise_channels:
            env = NoiseChannels(env, n=self.noise_channels, std=self.noise_std)
        return env

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields; the image-only ones only when set, so vector runs save as before."""
        d = dataclasses.asdict(self)
        if isinstance(self.reshuffle_every, tuple):
            d["reshuffle_every"] = list(self.reshuffle_every)
        if self.occlude == 0.0:
            del d["occlude"]
        if self.background is None:
            del d["background"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Perturbations:
        d = dict(d)
        if isinstance(d.get("reshuffle_every"), list):
            d["reshuffle_every"] = tuple(d["reshuffle_every"])
        return build_dataclass(cls, d, "perturbations")

    def describe(self) -> str:
        parts = []
        if self.duplicate > 1:
            parts.append(f"inputs x{self.duplicate}")
        if not self.shuffle:
            parts.append("unshuffled")
        elif self.reshuffle_every is None:
            parts.append("shuffled at reset")
        elif isinstance(self.reshuffle_every, tuple):
            low, high = self.reshuffle_every
            parts.append(f"reshuffled every {low}-{high} steps")
        else:
            parts.append(f"reshuffled every {self.reshuffle_every} steps")
        if self.noise_channels:
            parts.append(f"+{self.noise_channels} noise")
        if self.occlude:
            parts.append(f"{self.occlude:.0%} of patches occluded")
        if self.background is not None:
            parts.append(f"background {self.background}")
        return ", ".join(parts)
