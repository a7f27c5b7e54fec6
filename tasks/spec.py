"""Task specs: what a task gives (observation), takes (action), how long it runs, and how to
make its environments, one batch or one env at a time.

Every task the engine runs is a :class:`TaskSpec`. The project registers its own
(:data:`TASKS`); any other Gymnasium id with a 1-D Box observation and a bounded Box or a
Discrete action works too: :func:`get_task` builds its spec from the env's spaces.

>>> spec = get_task("Pendulum-v1")
>>> spec.observation.size, spec.action.describe(), spec.max_steps, spec.engines[0]
(3, 'Box([-2.0], [2.0])', 200, 'gym')
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import register, registry

from sensoryneuron.actions import ActionMap
from sensoryneuron.errors import ConfigError
from tasks.atari_frames import PONG_SCORE_ROWS, AtariFramePreparation
from tasks.batched import BatchedTask
from tasks.cartpole import MAX_STEPS
from tasks.cartpole_batched import VecCartPoleSwingUp
from tasks.frame_preparation import FramePreparation
from tasks.images import CAR_RACING_DASHBOARD
from tasks.sensor_gains import SensorGains

CARTPOLE_SWINGUP_ID = "SensoryNeuron/CartPoleSwingUp-v0"
CARTPOLE_SWINGUP_HARDER_ID = "SensoryNeuron/CartPoleSwingUpHarder-v0"
# A training variant: a quarter of the episodes start near balanced (training.train_env)
CARTPOLE_SWINGUP_HARDER_TOP_ID = "SensoryNeuron/CartPoleSwingUpHarderTopStarts-v0"
TOP_START_FRACTION = 0.25
# Every episode starts near balanced: the balance half of the swing-up task alone
CARTPOLE_BALANCE_ID = "SensoryNeuron/CartPoleBalance-v0"

ENGINES = ("simulator", "gym", "envpool", "fused")

GYM_ENVS: dict[str, dict] = {
    CARTPOLE_SWINGUP_ID: {
        "entry_point": "tasks.cartpole:CartPoleSwingUpEnv",
        "max_episode_steps": MAX_STEPS,
        "kwargs": {"harder": False},
    },
    CARTPOLE_SWINGUP_HARDER_ID: {
        "entry_point": "tasks.cartpole:CartPoleSwingUpEnv",
        "max_episode_steps": MAX_STEPS,
        "kwargs": {"harder": True},
    },
    CARTPOLE_SWINGUP_HARDER_TOP_ID: {
        "entry_point": "tasks.cartpole:CartPoleSwingUpEnv",
        "max_episode_steps": MAX_STEPS,
        "kwargs": {"harder": True, "top_fraction": TOP_START_FRACTION},
    },
    CARTPOLE_BALANCE_ID: {
        "entry_point": "tasks.cartpole:CartPoleSwingUpEnv",
        "max_episode_steps": MAX_STEPS,
        "kwargs": {"harder": False, "top_fraction": 1.0},
    },
}


def group_indices(groups: tuple[tuple[str, int], ...]) -> tuple[int, ...]:
    """Runs of sensors ``(name, how many)`` to each sensor's group index, in order.

    Example:
        >>> group_indices((("torso", 1), ("hips", 2)))
        (0, 1, 1)
    """
    return tuple(g for g, (_, count) in enumerate(groups) for _ in range(count))


@dataclass(frozen=True)
class VectorObservation:
    """A state vector of named scalar sensors; each sensory neuron reads one.

    Attributes:
        names: what each element measures, in the environment's order.
        groups: named runs of consecutive sensors of one kind, ``(name, how many)`` in
            order, covering every sensor once (videos colour a slot by its group); empty:
            no grouping, each sensor stands alone.
    """

    names: tuple[str, ...]
    groups: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        counts = [count for _, count in self.groups]
        if self.groups and (sum(counts) != self.size or min(counts) < 1):
            raise ConfigError(
                f"sensor groups {self.groups} do not cover the {self.size} sensors once each"
            )

    @property
    def size(self) -> int:
        return len(self.names)

    def group_of(self) -> tuple[int, ...]:
        """The index in :attr:`groups` of each sensor's group (empty without groups)."""
        return group_indices(self.groups)

    def describe(self) -> str:
        return f"{self.size} sensors"


@dataclass(frozen=True)
class PatchObservation:
    """A stack of grayscale frames cut into non-overlapping ``patch x patch`` patches.

    Each sensory neuron reads one patch of every frame: ``frames * patch * patch`` values.

    Attributes:
        frames: stacked frames, oldest first.
        height: frame height in pixels (a multiple of ``patch``).
        width: frame width in pixels (a multiple of ``patch``).
        patch: the side of a patch in pixels.
    """

    frames: int
    height: int
    width: int
    patch: int

    def __post_init__(self) -> None:
        for name in ("frames", "height", "width", "patch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer; got {value!r}")
        if self.height % self.patch or self.width % self.patch:
            raise ConfigError(
                f"a {self.height}x{self.width} frame does not split into {self.patch}x"
                f"{self.patch} patches"
            )

    @property
    def grid(self) -> tuple[int, int]:
        """Patches per column and per row."""
        return self.height // self.patch, self.width // self.patch

    @property
    def size(self) -> int:
        """The number of patches, N."""
        rows, cols = self.grid
        return rows * cols

    @property
    def patch_size(self) -> int:
        """Values per patch: every frame's ``patch x patch`` pixels."""
        return self.frames * self.patch * self.patch

    def describe(self) -> str:
        rows, cols = self.grid
        return f"{self.frames} frames of {self.height}x{self.width}, {rows}x{cols} patches"


Observation = VectorObservation | PatchObservation


@dataclass(frozen=True)
class TaskSpec:
    """What a task gives and takes, and how to make its environments.

    Attributes:
        env_id: the Gymnasium id (also the key of :data:`TASKS`).
        observation: a :class:`VectorObservation` or a :class:`PatchObservation`.
        action: the map from policy outputs to the env's actions.
        max_steps: the episode length the engine runs to.
        engines: the batched engines that can run it, the default first: ``simulator``
            (a vectorised simulator), ``gym`` (a pool of Gymnasium envs), ``envpool``
            (envpool's C++ envs, an optional extra), ``fused`` (the simulator, with plain
            rollouts of the paper's model compiled into one kernel: :mod:`evolve.fused`).
        env_kwargs: keyword arguments for ``gym.make`` (and envpool's ``make``).
        render_kwargs: more keyword arguments for ``gym.make`` where the env renders (a
            camera that follows the body); they change the picture, never the episode.
        simulator: builds the vectorised simulator (``simulator`` and ``fused`` engines
            only).
        envpool_id: envpool's name for the task (``envpool`` engine only).
        description: one line for listings.
        prepare: wraps each env that :meth:`make_env` makes, e.g. the frame preparation of an
            image task, or a vector task's :class:`~tasks.sensor_gains.SensorGains`
            (``None``: the env as ``gym.make`` gives it).
    """

    env_id: str
    observation: Observation
    action: ActionMap
    max_steps: int
    engines: tuple[str, ...] = ("gym",)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    render_kwargs: dict[str, Any] = field(default_factory=dict)
    simulator: Callable[[], BatchedTask] | None = None
    envpool_id: str | None = None
    description: str = ""
    prepare: Callable[[gym.Env], gym.Env] | None = None

    def __post_init__(self) -> None:
        unknown = [e for e in self.engines if e not in ENGINES]
        if not self.engines or unknown:
            raise ConfigError(
                f"{self.env_id}: engines must be some of {', '.join(ENGINES)}; got "
                f"{list(self.engines)}"
            )
        if ("simulator" in self.engines) != (self.simulator is not None):
            raise ConfigError(f"{self.env_id}: the simulator engine needs a simulator, and only it")
        if "fused" in self.engines and "simulator" not in self.engines:
            raise ConfigError(f"{self.env_id}: the fused engine runs on the simulator")
        if ("envpool" in self.engines) != (self.envpool_id is not None):
            raise ConfigError(f"{self.env_id}: the envpool engine needs an envpool id, and only it")

    def make_env(self, render_mode: str | None = None) -> gym.Env:
        """One Gymnasium env of this task, as ``gym.make`` gives it (time limit included), then
        wrapped by :attr:`prepare`."""
        kwargs = {**self.env_kwargs, **(self.render_kwargs if render_mode else {})}
        env = gym.make(self.env_id, render_mode=render_mode, **kwargs)
        return env if self.prepare is None else self.prepare(env)

    def make_batched(self, engine: str | None = None) -> BatchedTask:
        """A fresh batched task on ``engine`` (default: the first of :attr:`engines`)."""
        engine = self.check_engine(engine)
        if engine in ("simulator", "fused"):  # the loop's fused engine is the simulator
            assert self.simulator is not None
            return self.simulator()
        from tasks.pools import EnvpoolPool, GymPool  # the pools import this module

        if engine == "envpool":
            return EnvpoolPool(self)
        return GymPool(self)

    def check_engine(self, engine: str | None) -> str:
        """``engine``, or the default one; ConfigError if this task cannot run on it."""
        if engine is None:
            return self.engines[0]
        if engine not in self.engines:
            raise ConfigError(
                f"{self.env_id} runs on {', '.join(self.engines)}; not on engine {engine!r}"
            )
        if engine == "envpool" and importlib.util.find_spec("envpool") is None:
            raise ConfigError("the envpool engine needs envpool: pip install -e '.[envpool]'")
        if engine == "fused" and importlib.util.find_spec("numba") is None:
            raise ConfigError("the fused engine needs numba: pip install -e '.[fast]'")
        return engine


def _cartpole_swingup(env_id: str, description: str) -> TaskSpec:
    kwargs = GYM_ENVS[env_id]["kwargs"]
    return TaskSpec(
        env_id=env_id,
        observation=VectorObservation(("x", "x_dot", "cos th", "sin th", "th_dot")),
        action=ActionMap.unit_box(1),
        max_steps=MAX_STEPS,
        engines=("simulator", "gym", "fused"),
        simulator=lambda: VecCartPoleSwingUp(**kwargs),
        description=description,
    )


TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add ``spec`` to :data:`TASKS` (replacing one of the same id)."""
    TASKS[spec.env_id] = spec
    return spec


register_task(
    _cartpole_swingup(CARTPOLE_SWINGUP_ID, "cart-pole swing-up, starts near hanging down")
)
register_task(
    _cartpole_swingup(CARTPOLE_SWINGUP_HARDER_ID, "cart-pole swing-up, wide uniform starts")
)
register_task(
    _cartpole_swingup(
        CARTPOLE_SWINGUP_HARDER_TOP_ID,
        "cart-pole swing-up, wide uniform starts, a quarter near balanced (for training)",
    )
)
register_task(_cartpole_swingup(CARTPOLE_BALANCE_ID, "cart-pole, every start near balanced"))
register_task(
    TaskSpec(
        env_id="Pendulum-v1",
        observation=VectorObservation(("cos th", "sin th", "th_dot")),
        action=ActionMap.box([-2.0], [2.0]),
        max_steps=200,
        engines=("gym", "envpool"),
        envpool_id="Pendulum-v1",
        description="Gymnasium's pendulum swing-up, torque in [-2, 2]",
    )
)
register_task(
    TaskSpec(
        env_id="CartPole-v1",
        observation=VectorObservation(("x", "x_dot", "th", "th_dot")),
        action=ActionMap.discrete(2),
        max_steps=500,
        engines=("gym", "envpool"),
        envpool_id="CartPole-v1",
        description="Gymnasium's cart-pole balance, push left or right",
    )
)
# Ant-v5 without contact forces: qpos[2:] (torso height and orientation, 8 joint angles),
# then qvel (torso velocities, 8 joint speeds); joints in the order hip, ankle of legs 1-4.
_ANT_JOINTS = tuple(f"{part}{leg}" for leg in range(1, 5) for part in ("hip", "ankle"))
ANT_OBSERVATION = (
    ("z", "qw", "qx", "qy", "qz")
    + tuple(f"{joint} angle" for joint in _ANT_JOINTS)
    + ("vx", "vy", "vz", "wx", "wy", "wz")
    + tuple(f"{joint} speed" for joint in _ANT_JOINTS)
)
ANT_SENSOR_GROUPS = (
    ("torso height", 1),
    ("orientation", 4),
    ("joint angles", 8),
    ("torso velocity", 3),
    ("angular velocity", 3),
    ("joint velocities", 8),
)
# Gains that bring every Ant sensor to a spread of about 0.2-0.6 (measured under random
# actions: joint speeds about 4.5, angular velocities about 1.5, everything else 0.2-0.6).
ANT_GAINS = SensorGains.by_group(
    ANT_SENSOR_GROUPS, {"angular velocity": 0.3, "joint velocities": 0.1}
)
register_task(
    TaskSpec(
        env_id="Ant-v5",
        observation=VectorObservation(ANT_OBSERVATION, ANT_SENSOR_GROUPS),
        action=ActionMap.unit_box(8),
        max_steps=1000,
        engines=("gym", "envpool"),
        env_kwargs={"include_cfrc_ext_in_observation": False},
        # the stock camera stays where the ant started; the model's "track" camera follows it
        render_kwargs={"camera_name": "track"},
        envpool_id="Ant-v5",
        description="MuJoCo Ant-v5, 27 inputs (no contact forces), fast sensors scaled down; "
        "needs the mujoco extra",
        prepare=ANT_GAINS,
    )
)


@functools.lru_cache(maxsize=64)
def _spec_from_gym(env_id: str) -> TaskSpec:
    try:
        env = gym.make(env_id)
    except gym.error.Error as exc:
        raise ConfigError(
            f"unknown task {env_id!r}: not a registered task ({', '.join(sorted(TASKS))}) "
            f"nor a Gymnasium id ({exc})"
        ) from None
    except ImportError as exc:
        raise ConfigError(f"{env_id} needs a package that is not installed: {exc}") from None
    try:
        space = env.observation_space
        if not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1):
            raise ConfigError(
                f"{env_id}: the engine takes a 1-D Box observation (a vector of sensors); "
                f"got {space}"
            )
        action = ActionMap.from_space(env.action_space)
        limit = env.spec.max_episode_steps if env.spec is not None else None
        if limit is None:
            raise ConfigError(f"{env_id} has no time limit (max_episode_steps); register one")
    finally:
        env.close()
    return TaskSpec(
        env_id=env_id,
        observation=VectorObservation(tuple(f"obs {i}" for i in range(space.shape[0]))),
        action=action,
        max_steps=int(limit),
        engines=("gym",),
        description=f"Gymnasium's {env_id}",
    )


def get_task(env_id: str) -> TaskSpec:
    """The spec of ``env_id``: a registered task, else one read off the Gymnasium env."""
    if not isinstance(env_id, str) or not env_id:
        raise ConfigError(f"a task is named by its Gymnasium id; got {env_id!r}")
    if env_id in TASKS:
        return TASKS[env_id]
    return _spec_from_gym(env_id)


def register_envs() -> None:
    """Register the project's Gymnasium ids (idempotent; runs on ``import tasks``)."""
    for env_id, spec in GYM_ENVS.items():
        if env_id not in registry:
            register(id=env_id, **spec)


def make_batched_task(env_id: str, engine: str | None = None) -> BatchedTask:
    """A fresh batched task for ``env_id`` on ``engine`` (default: the task's own)."""
    return get_task(env_id).make_batched(engine)


def observation_names(env_id: str) -> tuple[str, ...]:
    """What each raw observation element measures (``obs i`` where unknown)."""
    observation = get_task(env_id).observation
    if isinstance(observation, VectorObservation):
        return observation.names
    return tuple(f"patch {i}" for i in range(observation.size))


# ---------------------------------------------------------------------------------------------
# Image tasks: each env is wrapped by the frame preparation the vision agent reads
# ([frames, height, width] uint8 stacks); the patch perturbation then cuts them into patches.


prepare_car_racing = FramePreparation(frames=4, crop_bottom=CAR_RACING_DASHBOARD)
"""CarRacing frames as the agent reads them: 4 stacked ITU-R 601 grayscale frames of 96x96,
the dashboard (the bottom 12 rows) zeroed; on the gym engine and, batched, on envpool."""


prepare_pong = AtariFramePreparation(frames=4, frame_skip=4, zero_top=PONG_SCORE_ROWS)
"""Pong frames as the agent reads them: Gymnasium's ``AtariPreprocessing`` (4 frames skipped
per step, up to 30 no-ops at reset, 84x84 grayscale from the ALE), the score (the top 9 rows)
zeroed, then the last 4 frames stacked, oldest first."""


if importlib.util.find_spec("ale_py") is not None:  # the atari extra: ALE/ ids for gym.make
    import ale_py

    gym.register_envs(ale_py)

register_task(
    TaskSpec(
        env_id="CarRacing-v3",
        observation=PatchObservation(frames=4, height=96, width=96, patch=6),
        action=ActionMap.box([-1.0, 0.0, 0.0], [1.0, 1.0, 1.0]),
        max_steps=1000,
        engines=("gym", "envpool"),
        envpool_id="CarRacing-v3",
        prepare=prepare_car_racing,
        description="Box2D CarRacing-v3 from pixels: steer, gas, brake; needs the box2d extra",
    )
)
register_task(
    TaskSpec(
        env_id="ALE/Pong-v5",
        observation=PatchObservation(frames=4, height=84, width=84, patch=6),
        action=ActionMap.discrete(6),
        max_steps=27_000,  # v5 stops at 108,000 frames, 4 per step
        engines=("gym",),
        env_kwargs={"frameskip": 1},  # AtariPreprocessing skips the frames itself
        prepare=prepare_pong,
        description="Atari Pong from pixels (to 21 points, sticky actions); needs the atari extra",
    )
)
