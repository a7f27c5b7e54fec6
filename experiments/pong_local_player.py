"""Can Pong be played from what one step's shuffled 6x6 patches show? A probe.

A shuffled-patch player sees each patch's pixels over the 4 stacked frames, never where the
patch lies. So at one step it knows how the ball and its paddle move (their vertical speeds,
from any patch that holds them) but not where the ball is against the paddle, except while
one patch holds both. This probe plays full games of ``ALE/Pong-v5`` (sticky actions 0.25,
frame skip 4) with RAM-reading players limited to that knowledge:

- ``still``: keeps the paddle where it is; while the ball is near the paddle's line (within
  about two patch widths: a patch is 11.4 of the screen's 160 columns) and within
  ``--reach`` screen rows of the paddle's centre (a patch is 15 of its 210 rows), it moves
  the paddle's centre onto the ball. That is a little more than one patch shows.
- ``mirror``: the same, and otherwise moves the paddle as the ball moves vertically, so the
  offset between them stays what it was (velocity matching needs no position).

and, for scale, the project's privileged ``pong-interceptor`` and ``pong-aimer``, which
know where the ball will meet the paddle. ``--reach 30`` lets the local players see two
patches' worth, more than a shuffled patch shows.

Each player runs through the project's one episode loop (:func:`evolve.training.distill.
teacher_episodes`, as ``benchmarks/pong_teacher.py``), on held-out seeds. One JSON line per
player is appended to ``experiments/results/pong_local_player.jsonl``. Usage::

    python experiments/pong_local_player.py [--games 4] [--players still mirror] [--reach 15]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evolve.seeds import test_seeds
from evolve.training.distill import ControllerTeacher, teacher_episodes
from sensoryneuron.files import append_json_line
from sensoryneuron.models import VisionAttentionNeuronModel
from tasks.spec import get_task
from tasks.teachers import (
    PONG_BALL_X,
    PONG_BALL_Y,
    PONG_MEET_X,
    PONG_PADDLE_Y,
    make_teacher,
    paddle_move,
)

PONG = "ALE/Pong-v5"
RESULTS = Path(__file__).parent / "results" / "pong_local_player.jsonl"
PADDLE_CENTRE = 7  # the ball's height minus the paddle's at the paddle's centre (RAM units)
COLUMN = (PONG_MEET_X - 10, PONG_MEET_X + 12)  # ball x near the paddle's line (~2 patches)


@dataclass
class LocalPlayer:
    """A Pong player that knows only what one step's patches show (see the module doc).

    Attributes:
        mirror: move with the ball's vertical motion while the ball is out of reach.
        reach: screen rows from the paddle's centre within which the ball counts as sharing
            the paddle's patch (in the paddle's column).
        deadband: how far off its aim the paddle (led by its last move) may be before moving.
        memory: per env, the ball's height and the paddle's at the step before.
    """

    mirror: bool
    reach: int = 15
    deadband: int = 2
    memory: dict[int, tuple[int, int]] = field(default_factory=dict)

    def act(self, env) -> np.int64:
        ram = env.ale.getRAM()
        ball_x, ball, paddle = int(ram[PONG_BALL_X]), int(ram[PONG_BALL_Y]), int(ram[PONG_PADDLE_Y])
        ball_before, paddle_before = self.memory.get(id(env), (ball, paddle))
        self.memory[id(env)] = (ball, paddle)
        ball_move = ball - ball_before if ball and ball_before else 0
        shared = (
            ball != 0
            and COLUMN[0] <= ball_x <= COLUMN[1]
            and abs(ball - paddle - PADDLE_CENTRE) <= self.reach
        )
        if shared:
            aim = ball + ball_move - PADDLE_CENTRE
        else:
            aim = paddle + (ball_move if self.mirror else 0)
        return paddle_move(paddle, paddle_before, aim, self.deadband, lead=1.0)

    def forget(self) -> None:
        self.memory.clear()


def make_player(name: str, reach: int):
    if name in ("still", "mirror"):
        return LocalPlayer(mirror=name == "mirror", reach=reach)
    return make_teacher(name, PONG)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--players", nargs="*", default=["still", "mirror", "pong-interceptor", "pong-aimer"]
    )
    parser.add_argument("--games", type=int, default=4)
    parser.add_argument("--seed-offset", type=int, default=100)
    parser.add_argument("--reach", type=int, default=15)
    args = parser.parse_args()
    spec = get_task(PONG)
    watcher = VisionAttentionNeuronModel(  # only watches: the player drives
        act_dim=6, grid=4, msg_dim=8, head="pool", hidden=8, output="logits"
    )
    seeds = test_seeds(args.games, args.seed_offset)
    for name in args.players:
        start = time.perf_counter()
        result = teacher_episodes(
            ControllerTeacher(make_player(name, args.reach), spec.action), PONG, seeds, watcher
        )
        scores = result.returns[0]
        record = {
            "player": name,
            "reach": args.reach if name in ("still", "mirror") else None,
            "seeds": [int(s) for s in seeds],
            "scores": [float(s) for s in scores],
            "mean": round(float(scores.mean()), 2),
            "std": round(float(scores.std()), 2),
            "steps": [int(n) for n in result.steps[0]],
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(json.dumps(record))
        append_json_line(RESULTS, record)


if __name__ == "__main__":
    main()
