"""Privileged teachers: controllers that read a simulator's internal state, for training only.

A teacher labels what a student should do; the student never sees what the teacher reads.
:class:`CarRacingPursuit` drives Gymnasium's CarRacing from the env's own track (the
centre-line points the env draws its tiles from) and the car's body, not from pixels.

Example:
    >>> import gymnasium as gym
    >>> import pytest; _ = pytest.importorskip("Box2D")  # the box2d extra
    >>> env = gym.make("CarRacing-v3")
    >>> _ = env.reset(seed=0)
    >>> teacher = CarRacingPursuit()
    >>> action = teacher.act(env.unwrapped)
    >>> action.shape, bool(-1 <= action[0] <= 1)
    ((3,), True)
    >>> env.close()
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import numpy as np

from sensoryneuron.errors import ConfigError


@dataclass
class CarRacingPursuit:
    """Pure pursuit on CarRacing's centre line, at a speed planned from the bends ahead.

    Steering aims at the centre-line point ``lookahead + lookahead_per_speed * speed``
    units ahead of the car's nearest point. The target speed is the highest from which the
    car can still brake (at ``brake_decel``) to every point of the next ``plan_window`` units
    at that point's cornering speed, ``sqrt(lateral_accel / curvature)``, and at most
    ``top_speed``. Actions are the env's: steer in ``[-1, 1]`` (positive: right), gas and
    brake in ``[0, 1]``.

    Attributes:
        lookahead: base look-ahead distance (track units; a centre-line point every 3.5).
        lookahead_per_speed: extra look-ahead per unit of speed.
        steer_gain: steering per radian of heading error.
        top_speed: the highest target speed.
        lateral_accel: the cornering limit: speed^2 times curvature.
        brake_decel: the deceleration the plan counts on when braking.
        plan_window: how far ahead the plan looks (track units).
        brake_gain: brake per unit of speed above the target.
        gas_gain: gas per unit of speed below the target (0: full gas whenever below, a
            bang-bang control; a proportional one gives smoother labels to imitate).
        takeover_distance: :meth:`strayed` says the car is this far from the centre line
            (track units; the road's half-width is 6.67) or farther.
        takeover_heading: ... or its heading is this far (radians) from the way to its
            pursuit point.
        memory: per env, its track and the centre-line index it was last nearest to.
    """

    lookahead: float = 10.0
    lookahead_per_speed: float = 0.25
    steer_gain: float = 2.5
    top_speed: float = 100.0
    lateral_accel: float = 180.0
    brake_decel: float = 40.0
    plan_window: float = 120.0
    brake_gain: float = 0.1
    gas_gain: float = 0.1
    takeover_distance: float = 6.0
    takeover_heading: float = math.pi / 3
    memory: dict[int, tuple[Any, np.ndarray, np.ndarray, int]] = field(
        default_factory=dict, repr=False
    )

    def _track(self, env: Any) -> tuple[np.ndarray, np.ndarray, int]:
        """The centre line ``[n, 2]``, its curvature ``[n]`` and the last nearest index."""
        key = id(env)
        cached = self.memory.get(key)
        if cached is None or cached[0] is not env.track:
            points = np.array([(t[2], t[3]) for t in env.track], dtype=np.float64)
            d = np.diff(np.vstack([points, points[:1]]), axis=0)  # segment i: i -> i+1
            heading = np.arctan2(d[:, 1], d[:, 0])
            turn = (np.roll(heading, -1) - heading + np.pi) % (2 * np.pi) - np.pi
            length = np.hypot(d[:, 0], d[:, 1])
            curvature = np.abs(turn) / np.maximum(length, 1e-6)
            # a bend is as sharp as its sharpest neighbours (the plan must brake for it)
            curvature = np.max(np.stack([np.roll(curvature, k) for k in (-1, 0, 1)]), axis=0)
            self.memory[key] = (env.track, points, curvature, 0)
            cached = self.memory[key]
        return cached[1], cached[2], cached[3]

    def act(self, env: Any) -> np.ndarray:
        """The action for ``env`` (an unwrapped ``CarRacing``) now: float64 ``[3]``."""
        points, curvature, last = self._track(env)
        n = len(points)
        hull = env.car.hull
        pos = np.array([hull.position[0], hull.position[1]])
        speed = float(np.hypot(hull.linearVelocity[0], hull.linearVelocity[1]))
        window = (last + np.arange(-10, 40)) % n  # the car moves forward along the track
        distance = ((points[window] - pos) ** 2).sum(1)
        if distance.min() > 15.0**2:  # lost (spun off): look everywhere
            window = np.arange(n)
            distance = ((points - pos) ** 2).sum(1)
        nearest = int(window[np.argmin(distance)])
        self.memory[id(env)] = (env.track, points, curvature, nearest)
        step = 3.5  # track units between centre-line points
        ahead = int(round((self.lookahead + self.lookahead_per_speed * speed) / step))
        error = _heading_error(hull, points[(nearest + max(ahead, 1)) % n])
        steer = float(np.clip(-self.steer_gain * error, -1.0, 1.0))
        span = np.arange(max(int(self.plan_window / step), 1))
        corner = np.sqrt(self.lateral_accel / np.maximum(curvature[(nearest + span) % n], 1e-4))
        reachable = np.sqrt(corner**2 + 2 * self.brake_decel * span * step)
        target_speed = min(float(reachable.min()), self.top_speed)
        if self.gas_gain > 0:
            gas = float(np.clip(self.gas_gain * (target_speed - speed), 0.0, 1.0))
        else:
            gas = 1.0 if speed < target_speed else 0.0
        brake = float(np.clip(self.brake_gain * (speed - target_speed), 0.0, 0.8))
        if abs(steer) > 0.7:
            gas = min(gas, 0.3)  # no full throttle while steering hard (wheel spin)
        return np.array([steer, gas, brake])

    def strayed(self, env: Any) -> bool:
        """Whether the car in ``env`` has left the teacher's reach: near the road's edge or off
        it, or heading away from the track. DAgger lets the teacher take such a step over, so
        that a student's episode shows it recoveries from its own mistakes, not a long drive
        through the grass. Reads the centre-line index :meth:`act` last found."""
        points, _, nearest = self._track(env)
        hull = env.car.hull
        pos = np.array([hull.position[0], hull.position[1]])
        n = len(points)
        near = points[(nearest + np.arange(-2, 3)) % n]
        distance = float(np.sqrt(((near - pos) ** 2).sum(1).min()))
        error = abs(_heading_error(hull, points[(nearest + 3) % n]))
        return distance >= self.takeover_distance or error >= self.takeover_heading

    def forget(self) -> None:
        """Drops what was remembered of past envs (call between batches of episodes)."""
        self.memory.clear()


def _heading_error(hull: Any, target: np.ndarray) -> float:
    """The angle (radians, in ``[-pi, pi)``) from the car's heading to the way to ``target``;
    positive: the target lies to the left. The car drives along its body's +y axis."""
    heading = hull.angle + math.pi / 2
    wanted = math.atan2(target[1] - hull.position[1], target[0] - hull.position[0])
    return (wanted - heading + math.pi) % (2 * math.pi) - math.pi


TEACHERS: dict[str, tuple[type, str]] = {"car-racing-pursuit": (CarRacingPursuit, "CarRacing-v3")}
"""Privileged teachers by name: the class, and the task whose internals it reads."""


def check_teacher(name: str, env_id: str) -> None:
    """ConfigError unless ``name`` is a teacher of :data:`TEACHERS` for ``env_id``."""
    if name not in TEACHERS:
        raise ConfigError(f"unknown teacher {name!r}; allowed: {', '.join(sorted(TEACHERS))}")
    if TEACHERS[name][1] != env_id:
        raise ConfigError(f"teacher {name!r} drives {TEACHERS[name][1]}, not {env_id}")


def make_teacher(name: str, env_id: str, options: dict[str, Any] | None = None) -> Any:
    """A fresh teacher ``name`` for ``env_id`` (see :func:`check_teacher`), with ``options``
    set on it (its attributes, such as ``top_speed``).

    Raises:
        ConfigError: an unknown teacher, or an option it does not have.
    """
    check_teacher(name, env_id)
    cls = TEACHERS[name][0]
    options = dict(options or {})
    known = (
        {f.name for f in fields(cls) if f.init and f.name != "memory"}
        if is_dataclass(cls)
        else set()
    )
    unknown = sorted(set(options) - known)
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise ConfigError(f"teacher {name!r} has no option {unknown[0]!r}; allowed: {allowed}")
    return cls(**options)
