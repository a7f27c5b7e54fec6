"""A run's time budget (``evolve train --time-budget MINUTES``) and how it is split.

The split, in one place:

- :data:`RESERVE` (10%) of the budget is kept for the closing evaluation table (nothing
  when the run writes none). The table may use it and is never cut.
- The rest, the pool, is shared by the recipe's stages in fixed :data:`SHARES` (teacher
  0.15, distillation 0.50, evolution 0.35), renormalised over the stages the recipe has: a
  privileged teacher is no stage, ``training.generations = 0`` is no evolution stage, and a
  plain recipe's evolution gets the whole pool. The default recipe took 3.0, 27.1 and 27.1
  minutes (README); the teacher's share is generous because what it leaves passes on.
- A stage's allowance is set when it starts: its share of what the earlier stages left,
  ``(pool - spent by earlier stages) * share / (its share + the later stages' shares)``.
  A stage that finishes early so passes its unused time on; one that overruns (a
  generation is never cut in the middle) takes it from the later ones.
- When a stage has spent its allowance it stops at the end of the generation (or
  iteration) it is in, saves as always, and the recipe moves on; a stage always completes
  at least one, so that it leaves a checkpoint for the next. A budget is not an
  interruption: the run still ends with the closing table and exit code 0.
- On ``--resume`` the time the stages spent in earlier sessions counts: their states'
  ``wall_time``. A stage that the budget cut stays finished (``budget.json`` in the run
  folder records it), since the later stages started from what it had.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from evolve.presets import TaskPreset
from sensoryneuron.errors import ConfigError

TEACHER, DISTILLATION, EVOLUTION = "teacher", "distillation", "evolution"
SHARES = {TEACHER: 0.15, DISTILLATION: 0.50, EVOLUTION: 0.35}
RESERVE = 0.10  # of the budget, for the closing evaluation table


def recipe_stages(preset: TaskPreset) -> tuple[str, ...]:
    """The stages of ``preset`` that train, in order."""
    stages: list[str] = []
    if preset.distill is not None:
        if preset.teacher_controller is None:
            stages.append(TEACHER)
        stages.append(DISTILLATION)
    if preset.training.generations > 0:
        stages.append(EVOLUTION)
    return tuple(stages)


@dataclass(frozen=True)
class StageCut:
    """A stage that the budget stopped before its configured end (a row of ``budget.json``)."""

    stage: str
    unit: str  # "generation" or "iteration"
    done: int
    total: int
    minutes: float  # what the stage had spent, over every session
    allowed: float  # minutes

    def describe(self) -> str:
        return (
            f"the {self.stage} stopped at {self.unit} {self.done} of {self.total} after "
            f"{self.minutes:.1f} min of {self.allowed:.1f} allowed"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageCut:
        return cls(
            str(data["stage"]),
            str(data["unit"]),
            int(data["done"]),
            int(data["total"]),
            float(data["minutes"]),
            float(data["allowed"]),
        )


@dataclass(frozen=True)
class StageDeadline:
    """One stage's allowance, read against ``clock`` (seconds).

    Attributes:
        stage: its name (a key of :data:`SHARES`).
        allowed: seconds the stage may spend in all, over every session.
        spent_before: seconds it spent in earlier sessions (its state's ``wall_time``).
        started: the clock's reading when this session's part of it began.
        clock: seconds, monotonic.
    """

    stage: str
    allowed: float
    spent_before: float
    started: float
    clock: Callable[[], float] = time.monotonic

    def spent(self) -> float:
        return self.spent_before + self.clock() - self.started

    def passed(self) -> bool:
        return self.spent() >= self.allowed

    def cut(self, unit: str, done: int, total: int) -> StageCut:
        return StageCut(self.stage, unit, done, total, self.spent() / 60, self.allowed / 60)


@dataclass
class Budget:
    """A run's budget and the stages that share it (see the module's docstring).

    Attributes:
        minutes: the whole budget.
        stages: the recipe's stages, in order (:func:`recipe_stages`).
        reserve: the fraction kept for the closing table.
        clock: seconds, monotonic; injectable for tests.
        spent: seconds each stage started so far has spent, over every session.
    """

    minutes: float
    stages: tuple[str, ...]
    reserve: float = RESERVE
    clock: Callable[[], float] = time.monotonic
    spent: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.minutes > 0:  # NaN too
            raise ConfigError(
                f"a time budget is a positive number of minutes, not {self.minutes!r}"
            )

    @property
    def pool(self) -> float:
        """Seconds for the stages: the budget less the reserve."""
        return self.minutes * 60 * (1 - self.reserve)

    def allowance(self, stage: str) -> float:
        """Seconds ``stage`` may spend in all, given what the earlier stages spent."""
        i = self.stages.index(stage)
        left = max(0.0, self.pool - sum(self.spent.get(s, 0.0) for s in self.stages[:i]))
        return left * SHARES[stage] / sum(SHARES[s] for s in self.stages[i:])

    def start(self, stage: str, spent_before: float = 0.0) -> StageDeadline:
        """The deadline of ``stage``, starting now, which spent ``spent_before`` seconds
        in earlier sessions."""
        self.spent[stage] = spent_before
        return StageDeadline(stage, self.allowance(stage), spent_before, self.clock(), self.clock)

    def finish(self, deadline: StageDeadline) -> None:
        """Count what the stage spent (the later stages share what is left)."""
        self.spent[deadline.stage] = deadline.spent()

    def used(self) -> float:
        """Minutes the stages have spent so far."""
        return sum(self.spent.values()) / 60

    def describe(self) -> str:
        shares = sum(SHARES[s] for s in self.stages) or 1.0
        split = ", ".join(f"{s} {SHARES[s] / shares:.0%}" for s in self.stages)
        return (
            f"{self.minutes:g} min: {self.minutes * self.reserve:.1f} min kept for the closing "
            f"table, the rest shared as {split or 'nothing (no stage trains)'}"
        )
