"""evolve: batched evolution-strategy training, evaluation and recording of sensoryneuron agents."""

from __future__ import annotations

from evolve.backends import Backend, LocalBackend, make_backend
from evolve.evaluation.conditions import Condition, parse_condition
from evolve.evaluation.evaluate import evaluate_policy
from evolve.rollout import EpisodeJob, RolloutResult, rollout
from evolve.strategies import STRATEGIES, Strategy, make_strategy
from evolve.training.loop import train

__all__ = [
    "STRATEGIES",
    "Backend",
    "Condition",
    "EpisodeJob",
    "LocalBackend",
    "RolloutResult",
    "Strategy",
    "evaluate_policy",
    "make_backend",
    "make_strategy",
    "parse_condition",
    "rollout",
    "train",
]
