"""The moving dot: a toy image task, small enough to distil in seconds.

A bright square drifts over a dark 24 x 24 ground; the right action is its direction, which
shows only in how the pixels change from frame to frame. Its privileged teachers read the
square's velocity. The tests of image distillation and the fault benchmark
(``benchmarks/faults.py``) train on it, where CarRacing would take minutes; it is no task of
the paper.

Two variants:

- ``SensoryNeuronTest/Dot-v0`` (:class:`DotEnv`, teacher ``dot-teacher``): the square drifts
  left or right; the action is a number in ``[-1, 1]``, and ``+-0.8`` in its direction scores
  1 a step.
- ``SensoryNeuronTest/Dot3-v0`` (:class:`DiscreteDotEnv`, teacher ``dot3-teacher``): the
  square drifts left, stays or drifts right; the action names which (0, 1, 2) and scores 1.

Nothing is registered on import: :func:`register` adds both to Gymnasium, :data:`tasks.TASKS`
and :data:`tasks.teachers.TEACHERS` (again and again, harmlessly).

Example:
    >>> env = DotEnv()
    >>> frame, _ = env.reset(seed=0)
    >>> frame.shape, float(DotTeacher().act(env)[0]) in (-0.8, 0.8)
    ((24, 24, 3), True)
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from sensoryneuron.actions import ActionMap
from tasks import teachers
from tasks.frame_preparation import FramePreparation
from tasks.spec import PatchObservation, TaskSpec, register_task

DOT_ID = "SensoryNeuronTest/Dot-v0"
DOT3_ID = "SensoryNeuronTest/Dot3-v0"
SIZE, STEPS = 24, 40
LEFT, STAY, RIGHT = 0, 1, 2


class DotEnv(gym.Env):
    """A bright square drifts left or right over a dark ground; the right action is its
    direction (+-0.8). The direction shows only in how the pixels change."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, render_mode=None):
        self.observation_space = gym.spaces.Box(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,))
        self.render_mode = render_mode

    def _frame(self):
        frame = np.full((SIZE, SIZE, 3), 30, dtype=np.uint8)
        x = int(self.x) % SIZE
        cols = [(x + k) % SIZE for k in range(4)]
        frame[self.y : self.y + 4, cols] = 220
        return frame

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = float(self.np_random.integers(0, SIZE))
        self.y = int(self.np_random.integers(0, SIZE - 4))
        self.vx = float(self.np_random.choice([-2.0, 2.0]))
        self.t = 0
        return self._frame(), {}

    def step(self, action):
        want = 0.8 * np.sign(self.vx)
        reward = 1.0 - float((np.asarray(action).reshape(-1)[0] - want) ** 2)
        self.t += 1
        if self.np_random.random() < 0.1:
            self.vx = -self.vx
        self.x += self.vx
        return self._frame(), reward, False, self.t >= STEPS, {}

    def render(self):
        return self._frame()


class DotTeacher:
    """Reads the square's velocity."""

    def act(self, env):
        return np.array([0.8 * np.sign(env.vx)])

    def forget(self):
        pass


class DiscreteDotEnv(DotEnv):
    """The square drifts left, stays or drifts right; the right action names which (0, 1, 2),
    and scores 1."""

    def __init__(self, render_mode=None):
        super().__init__(render_mode)
        self.action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        out = super().reset(seed=seed, options=options)
        self.vx = float(self.np_random.choice([-2.0, 0.0, 2.0]))
        return out

    def step(self, action):
        reward = float(int(action) == DiscreteDotTeacher.choice(self.vx))
        self.t += 1
        if self.np_random.random() < 0.1:
            self.vx = float(self.np_random.choice([-2.0, 0.0, 2.0]))
        self.x += self.vx
        return self._frame(), reward, False, self.t >= STEPS, {}


class DiscreteDotTeacher:
    """Names the square's direction: an action index, as Pong's teacher does."""

    @staticmethod
    def choice(vx):
        return LEFT if vx < 0 else RIGHT if vx > 0 else STAY

    def act(self, env):
        return np.int64(self.choice(env.vx))

    def forget(self):
        pass


VARIANTS = {
    "dot-teacher": (DOT_ID, DotEnv, DotTeacher, ActionMap.unit_box(1)),
    "dot3-teacher": (DOT3_ID, DiscreteDotEnv, DiscreteDotTeacher, ActionMap.discrete(3)),
}
"""Each variant by its teacher's name: env id, env, teacher and action map."""


def register() -> None:
    """Register both variants with Gymnasium (once), as task specs (4 stacked gray frames in
    6-pixel patches) and their teachers; registering again replaces them with equal ones."""
    for name, (env_id, env, teacher, action) in VARIANTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=env, max_episode_steps=STEPS)
        register_task(
            TaskSpec(
                env_id=env_id,
                observation=PatchObservation(frames=4, height=SIZE, width=SIZE, patch=6),
                action=action,
                max_steps=STEPS,
                engines=("gym",),
                prepare=FramePreparation(frames=4),
            )
        )
        teachers.TEACHERS[name] = (teacher, env_id)
