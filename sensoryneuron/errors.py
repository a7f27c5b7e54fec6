"""Typed exceptions shared by the three packages (sensoryneuron <- tasks <- evolve)."""

from __future__ import annotations

from typing import Any


class SensoryNeuronError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(SensoryNeuronError, ValueError):
    """An argument, preset or configuration value is not allowed."""


class CheckpointError(SensoryNeuronError):
    """A checkpoint, run folder or state file is missing, malformed or does not fit."""


class RunInUseError(CheckpointError):
    """A run folder is held by another training (one writer per run folder)."""


class StorageError(SensoryNeuronError):
    """A file could not be written: the disk is full, the folder read-only or gone.

    Attributes:
        path: the file (or folder) the write was for.
        errno: the operating system's error number.
        needed: bytes the write needed, where known (else None).
    """

    def __init__(self, message: str, path: str, errno: int | None, needed: int | None = None):
        super().__init__(message)
        self.path = path
        self.errno = errno
        self.needed = needed


def check_integers(owner: Any, **least: int) -> None:
    """ConfigError unless each attribute ``name`` of ``owner`` (a dataclass checking its
    fields) is an integer, not a bool, of at least ``least[name]``."""
    for name, bound in least.items():
        value = getattr(owner, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < bound:
            raise ConfigError(f"{name} must be an integer >= {bound}; got {value!r}")
