"""The flat-parameter boundary: strategies see one 1-D vector, models see named tensors."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from sensoryneuron.errors import ConfigError


@dataclass(frozen=True)
class ParamSpec:
    """Ordered names and shapes of a model's parameters.

    The order is the layout of the flat vector (row-major within each tensor, the shapes
    PyTorch's ``nn.Linear``/``nn.LSTMCell`` use).
    """

    entries: tuple[tuple[str, tuple[int, ...]], ...]

    @classmethod
    def of(cls, entries: Iterable[tuple[str, tuple[int, ...]]]) -> ParamSpec:
        return cls(tuple((name, tuple(shape)) for name, shape in entries))

    @property
    def num_params(self) -> int:
        return sum(math.prod(shape) for _, shape in self.entries)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.entries)

    def indices(self, names: Iterable[str]) -> np.ndarray:
        """The flat vector's positions of the tensors ``names``, in layout order (int64)."""
        wanted = set(names)
        unknown = sorted(wanted - set(self.names))
        if unknown:
            raise ConfigError(f"no parameter(s) {unknown}; allowed: {', '.join(self.names)}")
        parts, offset = [], 0
        for name, shape in self.entries:
            size = math.prod(shape)
            if name in wanted:
                parts.append(np.arange(offset, offset + size))
            offset += size
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split ``flat[P, D]`` into views ``{name: tensor[P, *shape]}``."""
        if flat.ndim != 2 or flat.shape[1] != self.num_params:
            raise ConfigError(
                f"params must have shape (members, {self.num_params}); got {tuple(flat.shape)}"
            )
        out: dict[str, torch.Tensor] = {}
        offset = 0
        for name, shape in self.entries:
            size = math.prod(shape)
            out[name] = flat[:, offset : offset + size].reshape(flat.shape[0], *shape)
            offset += size
        return out

    def flatten(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Inverse of :meth:`unflatten`: ``{name: tensor[P, *shape]}`` to ``flat[P, D]``."""
        missing = [name for name in self.names if name not in tensors]
        if missing or len(tensors) != len(self.entries):
            raise ConfigError(
                f"expected exactly the parameters {list(self.names)}; got {sorted(tensors)}"
            )
        parts = []
        for name, shape in self.entries:
            t = tensors[name]
            if tuple(t.shape[1:]) != shape:
                raise ConfigError(
                    f"parameter {name!r} must have shape (members, {', '.join(map(str, shape))})"
                    f"; got {tuple(t.shape)}"
                )
            parts.append(t.reshape(t.shape[0], -1))
        return torch.cat(parts, dim=1)
