"""Building frozen configuration dataclasses from JSON objects, with exact errors."""

from __future__ import annotations

import dataclasses
from typing import Any

from sensoryneuron.errors import ConfigError


def build_dataclass(cls: type, d: dict[str, Any], section: str) -> Any:
    """``cls(**d)``, refusing unknown fields with the allowed ones listed."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"unknown {section} field(s) {unknown}; allowed: {sorted(names)}")
    return cls(**d)
