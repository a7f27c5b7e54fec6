"""Typed exceptions shared by the three packages (sensoryneuron <- tasks <- evolve)."""

from __future__ import annotations


class SensoryNeuronError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(SensoryNeuronError, ValueError):
    """An argument, preset or configuration value is not allowed."""


class CheckpointError(SensoryNeuronError):
    """A checkpoint, run folder or state file is missing, malformed or does not fit."""
