"""Evolution on some of a model's parameters: the strategy searches part of the flat vector.

A recipe's ``strategy.params`` names the tensors that evolution changes; a :class:`Subspace`
holds the full vector the stage starts from and the positions the strategy searches. The
strategy sees only those positions (its centre, its population, its state file); every
member the episodes play is the start vector with them replaced.

>>> import numpy as np
>>> space = Subspace(base=np.array([1.0, 2.0, 3.0]), index=np.array([2]))
>>> space.expand(np.array([[9.0], [8.0]]))
array([[1., 2., 9.],
       [1., 2., 8.]])
>>> space.reduce(np.array([1.0, 2.0, 3.0]))
array([3.])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensoryneuron.params import ParamSpec


@dataclass(frozen=True)
class Subspace:
    """The part of a flat parameter vector that a strategy searches.

    Attributes:
        base: the full vector ``[D]`` (float64) whose other entries every member keeps.
        index: the searched positions ``[d]``, increasing.
    """

    base: np.ndarray
    index: np.ndarray

    @classmethod
    def of(cls, spec: ParamSpec, names: tuple[str, ...], base: np.ndarray | None) -> Subspace:
        """The tensors ``names`` of ``spec`` (empty: all) around ``base`` (None: zeros)."""
        full = np.zeros(spec.num_params) if base is None else np.asarray(base, dtype=np.float64)
        index = spec.indices(names) if names else np.arange(spec.num_params)
        return cls(full, index)

    @property
    def size(self) -> int:
        return int(self.index.size)

    @property
    def partial(self) -> bool:
        """Whether some parameters stay out of the search."""
        return self.size < self.base.size

    def reduce(self, full: np.ndarray) -> np.ndarray:
        """The searched entries of full vectors ``[..., D]``."""
        return np.asarray(full)[..., self.index]

    def expand(self, searched: np.ndarray) -> np.ndarray:
        """Searched entries ``[..., d]`` as full vectors ``[..., D]`` (float64)."""
        searched = np.asarray(searched, dtype=np.float64)
        if not self.partial:
            return searched.copy()
        out = np.broadcast_to(self.base, searched.shape[:-1] + self.base.shape).copy()
        out[..., self.index] = searched
        return out
