"""A batched task over envpool's C++ environments, one per (member, episode).

envpool (an optional extra) steps many environments from C++ threads behind one call. Its
Gymnasium API fits the engine's layout once three of its habits are handled:

- **Seeds are fixed when the pool is made.** envpool 1.2 ignores ``reset(seed=...)``: each
  env draws its start states from a C++ generator seeded by ``envpool.make(seed=[...])``.
  So :meth:`EnvpoolPool.start` makes a fresh envpool whose env ``(p, b)`` is seeded from
  ``seeds[b]``: every member plays episode ``b`` from the same start (common random
  numbers). Making one is cheap next to an episode (about 2.5 ms per MuJoCo Ant env,
  microseconds for classic control). envpool's seeds are 32-bit, so episode seed ``s``
  becomes :func:`envpool_seed` ``(s)``; envpool's generators are not NumPy's either, so an
  episode here does not start where ``gym.make(...).reset(seed=s)`` starts.
- **It resets finished envs on the next step.** The pool steps only the live env ids
  (``step(actions, env_id=ids)``); an ended episode keeps its last observation, gets
  reward 0 and stays done, and is never stepped again.
- **Its options have their own names.** :attr:`TaskSpec.env_kwargs` are ``gym.make``'s;
  the ones envpool has under the same name pass through, ``*_range`` pairs become its
  ``*_min``/``*_max``, and Ant's ``include_cfrc_ext_in_observation=False`` is envpool's
  full observation (``use_contact_force=True``) cut to its first 27 values, as Gymnasium's
  Ant-v5 builds it. (envpool's ``use_contact_force=False`` would also drop the contact
  cost from the reward, which Gymnasium's Ant-v5 keeps.) Anything else is a ConfigError.

The Generators handed to the perturbations are ``episode_rngs(seeds)``: envpool's own live
in C++. envpool renders no RGB frames for most tasks, so videos are recorded on the gym
engine. envpool's episode limit is the task's ``max_steps``.

An image task's frames are prepared here, batched, by its
:class:`~tasks.frame_preparation.FramePreparation` (grayscale, dashboard, stack, background):
the same steps as the Gymnasium wrappers of the gym engine; a vector task's readings are
scaled here by its :class:`~tasks.sensor_gains.SensorGains`. A task whose ``prepare`` is any
other Gymnasium wrapper is refused: the observations would differ from the gym engine's.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from sensoryneuron.errors import ConfigError
from tasks.batched import episode_rngs
from tasks.frame_preparation import BatchedFrames, FramePreparation
from tasks.perturbations.draws import validate_int
from tasks.sensor_gains import SensorGains
from tasks.spec import TaskSpec, VectorObservation

NO_RENDER = "the envpool engine renders no frames; record videos on the gym engine (engine='gym')"
# make() arguments the pool sets itself.
POOL_KWARGS = ("num_envs", "batch_size", "num_threads", "seed", "env_seed", "max_episode_steps")
# gym.make's (low, high) pairs and envpool's names for their two halves.
RANGE_KWARGS = {
    "healthy_z_range": ("healthy_z_min", "healthy_z_max"),
    "contact_force_range": ("contact_force_min", "contact_force_max"),
}
CONTACT_KWARG = "include_cfrc_ext_in_observation"  # gymnasium MuJoCo; envpool: use_contact_force


def envpool_seed(seed: int) -> int:
    """The 31-bit envpool seed of episode seed ``seed`` (any non-negative int)."""
    return int(np.random.SeedSequence(int(seed)).generate_state(1, np.uint32)[0] >> 1)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():  # envpool's Box spaces warn about their float64 bounds
        warnings.simplefilter("ignore")
        yield


def envpool_kwargs(
    spec: TaskSpec, fields: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``spec.env_kwargs`` in envpool's names.

    Args:
        spec: the task.
        fields: the option names of the task's envpool config.

    Returns:
        ``(kwargs, trimmed)``: the options for ``envpool.make``, and the options of the
        narrower observation to cut each observation to (None: keep it whole).
    """
    kwargs: dict[str, Any] = {}
    trimmed: dict[str, Any] | None = None
    for key, value in spec.env_kwargs.items():
        if key in POOL_KWARGS:
            raise ConfigError(f"{spec.env_id}: env_kwargs {key!r} is set by the envpool pool")
        if key == CONTACT_KWARG and "use_contact_force" in fields:
            kwargs["use_contact_force"] = True
            if not value:
                trimmed = {"use_contact_force": False}
        elif key in RANGE_KWARGS and all(name in fields for name in RANGE_KWARGS[key]):
            low, high = value
            kwargs.update(zip(RANGE_KWARGS[key], (float(low), float(high)), strict=True))
        elif key in fields:
            kwargs[key] = value
        else:
            raise ConfigError(
                f"{spec.env_id}: envpool's {spec.envpool_id} has no option {key!r} "
                f"(gym.make's {key}={value!r}); run it on the gym engine"
            )
    if "max_episode_steps" in fields:
        kwargs["max_episode_steps"] = spec.max_steps
    if trimmed is not None:
        trimmed = {**kwargs, **trimmed}
    return kwargs, trimmed


def fits(spec: TaskSpec, shape: tuple[int, ...]) -> bool:
    """Whether one observation of ``shape`` is what ``spec`` describes.

    A vector task wants ``(size,)``; an image task frames of its height and width.
    """
    observation = spec.observation
    if isinstance(observation, VectorObservation):
        return shape == (observation.size,)
    return len(shape) in (2, 3) and shape[:2] == (observation.height, observation.width)


class EnvpoolPool:
    """A :class:`~tasks.batched.BatchedTask` over ``members x episodes`` envpool envs.

    Attributes:
        spec: the task.
        max_steps: the episode length the engine runs to.
        num_threads: envpool's C++ threads (1: backends parallelise by worker processes).
    """

    def __init__(
        self, spec: TaskSpec, render_mode: str | None = None, num_threads: int = 1
    ) -> None:
        spec.check_engine("envpool")  # ConfigError where envpool is missing
        if render_mode is not None:
            raise ConfigError(NO_RENDER)
        prepare = getattr(spec, "prepare", None)
        if prepare is not None and not isinstance(prepare, FramePreparation | SensorGains):
            raise ConfigError(
                f"{spec.env_id}: its observations are prepared by a Gymnasium wrapper "
                "(TaskSpec.prepare), which envpool's C++ envs cannot take; run it on the gym "
                "engine"
            )
        self._prepare = prepare if isinstance(prepare, FramePreparation) else None
        self._gains = prepare if isinstance(prepare, SensorGains) else None
        import envpool

        assert spec.envpool_id is not None  # TaskSpec requires it for the envpool engine
        self.spec = spec
        self.max_steps = spec.max_steps
        self.num_threads = validate_int("num_threads", num_threads, 1)
        self._envpool = envpool
        with _quiet():
            fields = envpool.make_spec(spec.envpool_id).config._fields
            self._kwargs, trimmed = envpool_kwargs(spec, fields)
            self._keep: int | None = None  # leading observation values to keep (None: all)
            if trimmed is not None:
                narrow = envpool.make_spec(spec.envpool_id, **trimmed).observation_space
                self._keep = int(narrow.shape[0])
        self._env: Any = None
        self._frames: BatchedFrames | None = None  # the frame stacks of an image task
        self._ids: np.ndarray | None = None  # [P, B] envpool env ids of the kept members
        self._done: np.ndarray | None = None
        self._obs: np.ndarray | None = None

    def _make(self, seeds: list[int]) -> Any:
        with _quiet():
            return self._envpool.make(
                self.spec.envpool_id,
                env_type="gymnasium",
                num_envs=len(seeds),
                batch_size=len(seeds),
                num_threads=min(self.num_threads, len(seeds)),
                seed=seeds,
                **self._kwargs,
            )

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        if self._prepare is not None:  # RGB frames, kept as they come (uint8)
            return np.asarray(obs)
        obs = np.asarray(obs, dtype=np.float32)
        return obs if self._keep is None else obs[:, : self._keep]

    def _present(self, first: bool = False) -> np.ndarray:
        """What the engine reads: the observations (scaled by the task's gains, if any), or an
        image task's stacks (float32)."""
        assert self._obs is not None
        if self._frames is None:
            return self._obs.copy() if self._gains is None else self._gains.apply(self._obs)
        stacks = self._frames.reset(self._obs) if first else self._frames.step(self._obs)
        return stacks.astype(np.float32)

    def start(
        self, seeds: Sequence[int], members: int
    ) -> tuple[np.ndarray, list[np.random.Generator]]:
        """Makes ``members x len(seeds)`` envs, env ``(p, b)`` seeded from ``seeds[b]``.

        Returns:
            float32 observations ``[members, B, ...]`` and ``episode_rngs(seeds)``.
        """
        members = validate_int("members", members, 1)
        if len(seeds) < 1:
            raise ConfigError("seeds must hold at least one seed (one per episode), got 0")
        self._close_env()
        episode_seeds = [envpool_seed(s) for s in seeds]
        self._env = self._make(episode_seeds * members)
        self._ids = np.arange(members * len(seeds), dtype=np.int32).reshape(members, len(seeds))
        with _quiet():  # the first reset builds the observation space
            obs, info = self._env.reset()
        obs = self._observe(obs)
        order = np.asarray(info["env_id"])
        if not fits(self.spec, obs.shape[1:]):
            self._close_env()
            raise ConfigError(
                f"{self.spec.env_id} on envpool gives observations of shape {obs.shape[1:]}; "
                f"the task expects {self.spec.observation.describe()}"
            )
        self._obs = np.empty((members * len(seeds), *obs.shape[1:]), dtype=obs.dtype)
        self._obs[order] = obs
        self._obs = self._obs.reshape(members, len(seeds), *obs.shape[1:])
        self._done = np.zeros((members, len(seeds)), dtype=bool)
        self._frames = None if self._prepare is None else self._prepare.batched()
        return self._present(first=True), episode_rngs(seeds)

    def _action_shape(self) -> tuple[int, ...]:
        if self.spec.action.kind == "discrete":
            return ()
        return (self.spec.action.output_dim,)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Steps the live envs only; an ended one keeps its last observation, reward 0.

        Args:
            action: environment actions ``[P, B, ...]`` (int ``[P, B]`` for Discrete).

        Returns:
            ``(obs, reward, done)``: float32 ``[P, B, ...]``, float64 ``[P, B]`` and bool
            ``[P, B]`` (terminated or truncated at this step or before).
        """
        if self._done is None or self._obs is None or self._ids is None:
            raise gym.error.ResetNeeded("Call start() before step().")
        action = np.asarray(action)
        if action.shape[:2] != self._done.shape:
            raise ConfigError(
                f"action must have leading shape {self._done.shape}, got {action.shape}"
            )
        expected = (*self._done.shape, *self._action_shape())
        if action.shape != expected:
            raise ConfigError(f"action must have shape {expected}, got {action.shape}")
        reward = np.zeros(self._done.shape)
        live = np.flatnonzero(~self._done)
        if live.size == 0:
            return self._present(), reward, self._done.copy()
        ids = self._ids.reshape(-1)[live]
        obs, r, terminated, truncated, info = self._env.step(
            action.reshape(-1, *action.shape[2:])[live], env_id=ids
        )
        slot = np.empty(self._env.num_envs, dtype=np.int64)  # env id -> flat (p, b)
        slot[ids] = live
        where = slot[np.asarray(info["env_id"])]
        flat_obs = self._obs.reshape(-1, *self._obs.shape[2:])
        flat_obs[where] = self._observe(obs)
        reward.reshape(-1)[where] = np.asarray(r, dtype=np.float64)
        self._done.reshape(-1)[where] = np.logical_or(terminated, truncated)
        return self._present(), reward, self._done.copy()

    def keep_members(self, index: np.ndarray) -> None:
        """Keeps only the members in ``index``; the others' envs are never stepped again."""
        if self._done is None or self._obs is None or self._ids is None:
            raise gym.error.ResetNeeded("Call start() before keep_members().")
        index = np.asarray(index, dtype=np.int64)
        self._ids = self._ids[index]
        self._done = self._done[index]
        self._obs = self._obs[index]
        if self._frames is not None:
            self._frames.keep(index)

    def render(self, member: int, episode: int) -> np.ndarray:
        """Not available: envpool renders no frames (record on the gym engine)."""
        raise ConfigError(NO_RENDER)

    def _close_env(self) -> None:
        if self._env is not None:
            self._env.close()
        self._env = None

    def close(self) -> None:
        """Closes the envpool."""
        self._close_env()
        self._ids = self._done = self._obs = None
        self._frames = None
