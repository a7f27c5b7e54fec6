"""A batched task over envpool's C++ environments (being written)."""

from __future__ import annotations

from sensoryneuron.errors import ConfigError


class EnvpoolPool:
    def __init__(self, spec, render_mode=None) -> None:
        raise ConfigError("the envpool engine is not available yet")
