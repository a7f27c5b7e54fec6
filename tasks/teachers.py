"""Privileged teachers: controllers that read a simulator's internal state, for training only.

A teacher labels what a student should do; the student never sees what the teacher reads.
:class:`CarRacingPursuit` drives Gymnasium's CarRacing from the env's own track (the
centre-line points the env draws its tiles from) and the car's body, not from pixels.
:class:`PongPlanner` plays Atari Pong by searching short plans on copies of the emulator.

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

from sensoryneuron.errors import ConfigError, check_integers

ROAD_HALF_WIDTH = 40 / 6  # CarRacing's TRACK_WIDTH, in track units


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
        recovery_heading: where the car heads this far (radians) from the way to its pursuit
            point, or is off the road (farther than ``road_half_width`` from the centre line),
            the target speed drops to ``recovery_speed``: the car turns back slowly instead of
            spinning on the grass (inf: never).
        recovery_speed: the target speed while recovering.
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
    recovery_heading: float = math.inf
    recovery_speed: float = 20.0
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
        if abs(error) >= self.recovery_heading or distance.min() > ROAD_HALF_WIDTH**2:
            target_speed = min(target_speed, self.recovery_speed)
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


# Pong's RAM (ALE/Pong-v5): the ball's x grows towards our paddle, the right (green) one; the
# ball's y is 0 while no ball is in play. Byte 58 is 255 while the ball moves right.
PONG_BALL_X, PONG_BALL_Y, PONG_BALL_DX, PONG_BALL_DY = 49, 54, 58, 56
PONG_NOOP, PONG_UP, PONG_DOWN = 0, 2, 3  # action indices: NOOP, RIGHT (up), LEFT (down)


def paddle_move(paddle: int, before: int, aim: float, deadband: int, lead: float) -> np.int64:
    """Our paddle's move towards height ``aim``: UP or DOWN while its height ``paddle`` (it
    was at ``before`` a step ago), led by its last move times ``lead``, is more than
    ``deadband`` off the aim; else NOOP."""
    led = paddle + lead * (paddle - before)
    if led > aim + deadband:
        return np.int64(PONG_UP)  # up the screen: the height decreases
    if led < aim - deadband:
        return np.int64(PONG_DOWN)
    return np.int64(PONG_NOOP)


def ball_coming(ram: np.ndarray) -> bool:
    """Whether Pong's RAM ``ram`` shows a ball on screen moving towards our paddle."""
    return bool(ram[PONG_BALL_Y] != 0 and ram[PONG_BALL_DX] == 255)


@dataclass
class PongPlanner:
    """Plays Pong (``ALE/Pong-v5`` as the task prepares it) by searching open-loop plans on
    copies of the emulator's state; it reads the emulator, so it teaches, never competes.

    Tracking the ball loses: the paddle follows a hidden set-point with lag, and the opponent
    returns every hit off the paddle's centre. So when the ball starts towards our paddle, the
    planner tries each plan "``n`` agent steps UP (or DOWN), then NOOP" for ``n`` up to
    ``max_moves``, on a clone of the emulator, until the point ends or the opponent returns the
    ball (at most ``horizon`` agent steps). It takes the plan under which the opponent misses
    soonest; if none, the one that returns the ball steepest (off the paddle's edge); if none
    returns it, the one that loses latest; ties go to fewer moves. Then it plays the plan from
    a cache, and searches again only when the emulator leaves the plan's predicted RAM (a
    student drove elsewhere, or the opponent returned). With no plan it plays NOOP.

    A search restores the emulator exactly, its random generator included (the sticky
    actions' draws): the real episode goes on as if nobody had searched. The search thus
    sees the sticky actions of its own plan, so a plan the teacher follows comes true.

    Actions are the task's: an index into Pong's 6 actions (``ActionMap.discrete(6)``; a
    label is its one-hot code). Each agent step is ``frames_per_step`` emulator frames, as
    ``AtariPreprocessing`` skips them.

    Attributes:
        max_moves: the longest run of UP or DOWN steps a plan tries.
        horizon: the most agent steps a plan is simulated.
        frames_per_step: emulator frames per agent step (the task's frame skip).
        takeover_margin: :meth:`strayed` says so when the ball is coming and the current plan
            must start moving within this many agent steps (0: never).
        memory: per env, the plan it plays: its actions, the RAM predicted before each, the
            next step, and the agent steps till the ball meets the paddle.
    """

    max_moves: int = 12
    horizon: int = 120
    frames_per_step: int = 4
    takeover_margin: int = 0
    memory: dict[int, tuple[list[int], list[np.ndarray], int, int]] = field(
        default_factory=dict, repr=False
    )
    searches: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_integers(self, max_moves=0, horizon=1, frames_per_step=1, takeover_margin=0)

    def act(self, env: Any) -> np.int64:
        """The action for ``env`` (an unwrapped ``AtariEnv`` of Pong) now: an index."""
        ale = env.ale
        ram = ale.getRAM()
        key = id(env)
        cached = self.memory.get(key)
        if cached is not None:
            actions, rams, k, _ = cached
            if k < len(actions) and np.array_equal(rams[k], ram):
                self.memory[key] = (actions, rams, k + 1, cached[3])
                return np.int64(actions[k])
            del self.memory[key]
        if not ball_coming(ram):
            return np.int64(PONG_NOOP)
        actions, rams, meet = self.plan(env)
        self.memory[key] = (actions, rams, 1, meet)
        return np.int64(actions[0])

    def plan(self, env: Any) -> tuple[list[int], list[np.ndarray], int]:
        """Searches the plans from ``env``'s state now and leaves that state as it was.

        Returns the best plan's actions, the RAM predicted before each, and the agent step at
        which our paddle meets the ball (the plan's length if it never does).
        """
        ale = env.ale
        start = ale.cloneState(include_rng=True)
        self.searches += 1
        codes = ale.getMinimalActionSet()  # what the env's action indices stand for
        best: tuple[float, list[int], list[np.ndarray], int] | None = None
        try:
            for n in range(self.max_moves + 1):
                for move in (PONG_UP, PONG_DOWN) if n else (PONG_NOOP,):
                    ale.restoreState(start)
                    score, actions, rams, meet = self._simulate(ale, codes, move, n)
                    score -= 0.01 * n
                    if best is None or score > best[0]:
                        best = (score, actions, rams, meet)
        finally:
            ale.restoreState(start)
        assert best is not None
        return best[1], best[2], best[3]

    def _simulate(
        self, ale: Any, codes: Any, move: int, n: int
    ) -> tuple[float, list[int], list[np.ndarray], int]:
        """Plays ``n`` steps of ``move`` then NOOP; its score, actions, RAMs, meeting step."""
        actions: list[int] = []
        rams: list[np.ndarray] = []
        ram = ale.getRAM()
        hit = None  # agent step of our hit, and the ball's vertical speed after it
        steep = 0
        for t in range(self.horizon):
            action = move if t < n else PONG_NOOP
            actions.append(action)
            rams.append(ram)
            reward = 0
            for _ in range(self.frames_per_step):
                reward += ale.act(codes[action])
            ram = ale.getRAM()
            if reward > 0:  # the opponent missed
                return 1e6 - t, actions, rams, hit if hit is not None else t
            if reward < 0:  # we missed
                return -1e6 + t, actions, rams, t
            moving_right = ram[PONG_BALL_DX] == 255
            if hit is None and not moving_right and ram[PONG_BALL_Y] != 0:
                hit = t
                steep = abs(int(np.int8(ram[PONG_BALL_DY])))
            elif hit is not None and moving_right:  # the opponent returned it
                break
        return (
            (1e3 * steep if hit is not None else 0.0),
            actions,
            rams,
            (hit if hit is not None else len(actions)),
        )

    def strayed(self, env: Any) -> bool:
        """Whether the ball is coming and the plan :meth:`act` last found for ``env`` must
        move within ``takeover_margin`` agent steps (or the paddle misses): DAgger then lets
        the teacher take the step over. Never with ``takeover_margin`` 0."""
        cached = self.memory.get(id(env))
        if not self.takeover_margin or cached is None:
            return False
        actions, _, k, meet = cached
        moves = sum(1 for a in actions[k - 1 :] if a != PONG_NOOP)
        return k - 1 < meet and moves > 0 and meet - (k - 1) - moves <= self.takeover_margin

    def forget(self) -> None:
        """Drops the plans of past envs (call between batches of episodes)."""
        self.memory.clear()


PONG_PADDLE_Y = 51  # our paddle's height on screen (38 at the top wall, 203 at the bottom)
PONG_MEET_X = 185  # the ball's x where our paddle meets it (the planner's hits: 184-190)
PONG_MIDDLE = 120  # a paddle height about the middle of the court


@dataclass
class PongInterceptor:
    """Plays Pong closed-loop: every step it aims our paddle at where the coming ball will
    meet it, and moves towards that aim. It reads the emulator, so it teaches, never
    competes.

    The :class:`PongPlanner` decides a whole point's moves in the steps after the opponent's
    hit, from a search that the screen of that moment hardly explains; a student cloning it
    has no second chance. This teacher's move at each step follows from what the screen
    shows (where the ball will cross our paddle's line, where the paddle is and how it
    moves), and a late or wrong move is corrected at the next step.

    When the ball starts coming it plays NOOP on a clone of the emulator, its random
    generator included, until the ball reaches our paddle's line (x 185) or leaves the
    screen, and takes the ball's height there as the meeting point (the ball's flight does
    not depend on our paddle until they meet, so one prediction serves the flight); the
    emulator is then restored exactly. The aim for the paddle's height is the meeting point minus
    ``contact``; with no ball coming, the middle of the court. Each step it moves UP or DOWN
    while the paddle's height, led by its last move times ``lead``, is more than
    ``deadband`` off the aim, else NOOP.

    Attributes:
        contact: the ball's height minus the paddle's where they should meet, in RAM units.
            The planner's hits spread from -9 to 23 (median 7.5): about 7 is the paddle's
            centre, the ends of that range its edges, whose returns are steeper.
        deadband: how far off the aim the paddle may be before it moves.
        lead: how many steps of the paddle's last move to add to its height (it moves about
            20 a step and coasts).
        horizon: the most agent steps a prediction is simulated.
        frames_per_step: emulator frames per agent step (the task's frame skip).
        contacts: contacts to choose from for each coming ball (empty: ``contact`` always).
            The centre returns a ball the opponent returns too, the edges lose balls. So
            when the ball starts coming it plays this teacher's own closed-loop control
            with each of them on a clone of the emulator (random generator included) until
            the point ends or the opponent returns the ball, and keeps the one under which
            the opponent misses soonest; if none, the one that returns the ball steepest;
            if none returns it, the one that loses latest; ties go to the one nearest
            ``contact``. Its choice holds for that ball's flight; the control stays
            closed-loop, so a student's late move is still corrected.
        takeover_margin: :meth:`strayed` says so when the ball is coming, meets the
            paddle's line within this many agent steps, and the paddle is more than
            ``deadband`` off the aim: DAgger then lets the teacher take the step over, so a
            student's episode goes on with rallies (0: never).
        memory: per env, the paddle's height at the step before, the meeting point of the
            ball now coming (None: none coming), the contact chosen for it, and the agent
            steps till the ball reaches the paddle's line.
    """

    contact: int = 7
    deadband: int = 8
    lead: float = 1.0
    horizon: int = 120
    frames_per_step: int = 4
    contacts: tuple[int, ...] = ()
    takeover_margin: int = 0
    memory: dict[int, tuple[int, int | None, int, int]] = field(default_factory=dict, repr=False)
    searches: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_integers(self, deadband=0, horizon=1, frames_per_step=1, takeover_margin=0)
        if isinstance(self.contact, bool) or not isinstance(self.contact, int):
            raise ConfigError(f"contact must be an integer; got {self.contact!r}")
        lead = self.lead
        if isinstance(lead, bool) or not isinstance(lead, (int, float)) or not 0 <= lead <= 10:
            raise ConfigError(f"lead must be a number in [0, 10]; got {lead!r}")
        contacts = self.contacts
        if not isinstance(contacts, (tuple, list)) or any(
            isinstance(c, bool) or not isinstance(c, int) for c in contacts
        ):
            raise ConfigError(f"contacts must be a list of integers; got {contacts!r}")
        self.contacts = tuple(contacts)

    def act(self, env: Any) -> np.int64:
        """The action for ``env`` (an unwrapped ``AtariEnv`` of Pong) now: an index."""
        ram = env.ale.getRAM()
        paddle = int(ram[PONG_PADDLE_Y])
        before, meeting, contact, left = self.memory.get(id(env), (paddle, None, self.contact, 0))
        if not ball_coming(ram):
            meeting, contact, left = None, self.contact, 0
        elif meeting is None:
            meeting, left = self._predict(env)
            contact = self.choose_contact(env, before, meeting)
        else:
            left = max(left - 1, 0)
        self.memory[id(env)] = (paddle, meeting, contact, left)
        return self._move(paddle, before, meeting, contact)

    def strayed(self, env: Any) -> bool:
        """Whether the ball coming meets the paddle's line within ``takeover_margin`` agent
        steps while the paddle is more than ``deadband`` off the aim :meth:`act` (called
        first, this step) set for ``env``; never with ``takeover_margin`` 0."""
        kept = self.memory.get(id(env))
        if not self.takeover_margin or kept is None or kept[1] is None:
            return False
        paddle = int(env.ale.getRAM()[PONG_PADDLE_Y])
        before, meeting, contact, left = kept
        if left > self.takeover_margin:
            return False
        return self._move(paddle, before, meeting, contact) != PONG_NOOP

    def _move(self, paddle: int, before: int, meeting: int | None, contact: int) -> np.int64:
        """The control law: the move towards ``meeting - contact`` (the middle with no ball
        coming) of a paddle at height ``paddle`` that was at ``before`` a step ago."""
        aim = PONG_MIDDLE if meeting is None else meeting - contact
        return paddle_move(paddle, before, aim, self.deadband, self.lead)

    def choose_contact(self, env: Any, before: int, meeting: int) -> int:
        """The contact of :attr:`contacts` that does best against the coming ball (see
        there; ``contact`` itself when there are none); ``env``'s state is left as it was."""
        if not self.contacts:
            return self.contact
        ale = env.ale
        start = ale.cloneState(include_rng=True)
        self.searches += 1
        codes = ale.getMinimalActionSet()
        best: tuple[float, int] | None = None
        try:
            for contact in self.contacts:
                ale.restoreState(start)
                score = self._outcome(ale, codes, before, meeting, contact)
                score -= 0.01 * abs(contact - self.contact)
                if best is None or score > best[0]:
                    best = (score, contact)
        finally:
            ale.restoreState(start)
        assert best is not None
        return best[1]

    def _outcome(self, ale: Any, codes: Any, before: int, meeting: int, contact: int) -> float:
        """How the point goes if this teacher plays ``contact`` from ``ale``'s state (scored
        as :meth:`PongPlanner._simulate` scores a plan)."""
        hit = False
        steep = 0
        aiming: int | None = meeting
        for t in range(self.horizon):
            ram = ale.getRAM()
            paddle = int(ram[PONG_PADDLE_Y])
            if not ball_coming(ram):
                aiming = None
            action = self._move(paddle, before, aiming, contact)
            before = paddle
            reward = 0
            for _ in range(self.frames_per_step):
                reward += ale.act(codes[action])
            if reward > 0:  # the opponent missed
                return 1e6 - t
            if reward < 0:  # we missed
                return -1e6 + t
            ram = ale.getRAM()
            moving_right = ram[PONG_BALL_DX] == 255
            if not hit and not moving_right and ram[PONG_BALL_Y] != 0:
                hit = True
                steep = abs(int(np.int8(ram[PONG_BALL_DY])))
            elif hit and moving_right:  # the opponent returned it
                break
        return 1e3 * steep if hit else 0.0

    def meeting_point(self, env: Any) -> int:
        """The ball's height where it reaches our paddle's line (x :data:`PONG_MEET_X`; its
        last height if it leaves the screen first) if nobody moves; ``env``'s state is left
        as it was."""
        return self._predict(env)[0]

    def _predict(self, env: Any) -> tuple[int, int]:
        """:meth:`meeting_point`, and the agent steps till the ball gets there."""
        ale = env.ale
        ram = ale.getRAM()
        height = int(ram[PONG_BALL_Y])
        if ram[PONG_BALL_X] >= PONG_MEET_X:
            return height, 0
        start = ale.cloneState(include_rng=True)
        self.searches += 1
        noop = ale.getMinimalActionSet()[PONG_NOOP]
        steps = 0
        try:
            for _ in range(self.horizon):
                steps += 1
                for _ in range(self.frames_per_step):
                    ale.act(noop)
                ram = ale.getRAM()
                if not ball_coming(ram):
                    break
                height = int(ram[PONG_BALL_Y])
                if ram[PONG_BALL_X] >= PONG_MEET_X:
                    break
        finally:
            ale.restoreState(start)
        return height, steps

    def forget(self) -> None:
        """Drops what it kept of past envs (call between batches of episodes)."""
        self.memory.clear()


PONG_CONTACTS = (-8, -4, 0, 3, 7, 11, 15, 19, 23)  # the spread of the planner's hits


@dataclass
class PongAimer(PongInterceptor):
    """:class:`PongInterceptor` choosing where on the paddle to meet each coming ball from
    :data:`PONG_CONTACTS` (its ``contacts``; see there)."""

    contacts: tuple[int, ...] = PONG_CONTACTS


TEACHERS: dict[str, tuple[type, str]] = {
    "car-racing-pursuit": (CarRacingPursuit, "CarRacing-v3"),
    "pong-planner": (PongPlanner, "ALE/Pong-v5"),
    "pong-interceptor": (PongInterceptor, "ALE/Pong-v5"),
    "pong-aimer": (PongAimer, "ALE/Pong-v5"),
}
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
