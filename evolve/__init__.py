"""evolve: batched evolution-strategy training, evaluation and recording of sensoryneuron agents."""

from __future__ import annotations

from evolve.backends import Backend, LocalBackend, make_backend
from evolve.evaluation.conditions import Condition, parse_condition
from evolve.evaluation.evaluate import evaluate_policy
from evolve.rollout import EpisodeJob, Observer, RolloutResult, StepView, episodes, iterate, rollout
from evolve.strategies import STRATEGIES, Strategy, make_strategy
from evolve.training.loop import train

__all__ = [
    "STRATEGIES",
    "Backend",
    "Condition",
    "EpisodeJob",
    "LocalBackend",
    "Observer",
    "RolloutResult",
    "StepView",
    "Strategy",
    "episodes",
    "evaluate_policy",
    "iterate",
    "make_backend",
    "make_strategy",
    "parse_condition",
    "rollout",
    "train",
]
