"""The held-out test of a recipe's stages: what it plays, and its score.

Every stage of a recipe (teacher, distillation, evolution) tests its current policy on
held-out validation seeds (``VALIDATION_OFFSET``) and keeps the best. The test plays the
recipe's training perturbations; when the distillation cycles through noise-channel counts
(``distill.noise_channels``), it plays them once per count and averages the means, so the
checkpoint that ships is the one that does best with and without noise.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from evolve.backends import Backend
from evolve.evaluation.conditions import Condition
from evolve.evaluation.evaluate import evaluate_policy
from evolve.presets import TaskPreset
from evolve.seeds import VALIDATION_OFFSET
from sensoryneuron.policy import Policy


@dataclass(frozen=True)
class TestScore:
    """A held-out test: the mean of the conditions' means, and the spread of all returns."""

    mean: float
    std: float
    episodes: int


def test_conditions(preset: TaskPreset) -> list[Condition]:
    """The training perturbations, once per count of ``distill.noise_channels`` (if set)."""
    counts = preset.distill.noise_channels if preset.distill is not None else ()
    if not counts:
        return [Condition("trained", preset.perturbations)]
    return [
        Condition(f"trained, {n} noise channels", replace(preset.perturbations, noise_channels=n))
        for n in dict.fromkeys(counts)
    ]


def held_out_score(
    policy: Policy,
    preset: TaskPreset,
    episodes: int,
    backend: Backend,
    device: str | None = None,
) -> TestScore:
    """Test ``policy`` on ``episodes`` validation seeds per condition of :func:`test_conditions`."""
    rows = evaluate_policy(
        policy,
        preset.env_id,
        test_conditions(preset),
        episodes,
        seed_offset=VALIDATION_OFFSET,
        backend=backend,
        engine=preset.engine,
        device=device,
    )
    returns = np.concatenate([row["returns"] for row in rows])
    mean = float(np.mean([row["mean"] for row in rows]))
    return TestScore(mean, float(np.std(returns)), int(returns.size))
