"""A population described by its seeds: what a distributed backend sends instead of parameters.

PGPE's members are ``center +- stdev * z``, and each noise row ``z`` comes from its own
counter-based generator (:func:`noise_rows`)::

    np.random.Generator(np.random.Philox(key=seed, counter=[0, 0, int(row), generation]))

Philox advances the low words of its 256-bit counter as it draws, so the low 128 bits are
the row's own position (room for 2**130 draws) and the high words name (row, generation):
streams of different rows and generations never overlap. Any worker given the centre, the
stdev and these few integers regenerates any range of members, bit for bit as ``ask()``
made them, without drawing the rows before it.

>>> import numpy as np
>>> spec = PopulationSpec(center=np.zeros(3), stdev=np.ones(3), seed=7, generation=0, popsize=4)
>>> full = spec.members(0, 4)
>>> bool(np.array_equal(spec.members(1, 3), full[1:3])), bool(np.all(full[0] == -full[2]))
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NOISE_STREAM = "philox4x64 key=seed counter=(0, 0, row, generation)"


def noise_rows(seed: int, generation: int, rows: Sequence[int], num_params: int) -> np.ndarray:
    """Standard-normal noise rows ``[len(rows), num_params]`` of one generation.

    Row ``r`` depends only on ``(seed, generation, r)``, never on the other rows drawn.
    """
    out = np.empty((len(rows), num_params))
    for i, row in enumerate(rows):
        bits = np.random.Philox(key=seed, counter=[0, 0, int(row), generation])
        out[i] = np.random.Generator(bits).standard_normal(num_params)
    return out


@dataclass(frozen=True)
class PopulationSpec:
    """A PGPE population as centre, stdev and the seeds of its noise.

    Attributes:
        center: the distribution mean, float64 ``[D]``.
        stdev: the per-parameter stdev, float64 ``[D]``.
        seed: the key of the noise generator (the strategy's seed).
        generation: the generation the population was asked in.
        popsize: number of members.
        antithetic: members ``n + i`` mirror members ``i`` (``n = popsize // 2``).
        dtype: the dtype members are cast to after ``center +- stdev * z`` in float64.
    """

    center: np.ndarray
    stdev: np.ndarray
    seed: int
    generation: int
    popsize: int
    antithetic: bool = True
    dtype: str = "float32"

    @property
    def num_params(self) -> int:
        return int(self.center.shape[0])

    @property
    def num_noise(self) -> int:
        """Distinct noise rows: ``popsize // 2`` when antithetic, else ``popsize``."""
        return self.popsize // 2 if self.antithetic else self.popsize

    def noise(self, rows: Sequence[int]) -> np.ndarray:
        """The scaled perturbations ``stdev * z`` of noise rows ``rows``, float64."""
        return noise_rows(self.seed, self.generation, rows, self.num_params) * self.stdev

    def members(self, start: int, stop: int) -> np.ndarray:
        """Members ``[start, stop)`` as ``dtype`` rows, equal to ``ask()[start:stop]`` cast."""
        if not 0 <= start <= stop <= self.popsize:
            raise ValueError(f"members [{start}, {stop}) outside a population of {self.popsize}")
        index = np.arange(start, stop)
        plus = index < self.num_noise if self.antithetic else np.ones(index.size, dtype=bool)
        rows, which = np.unique(np.where(plus, index, index - self.num_noise), return_inverse=True)
        eps = self.noise(rows.tolist())[which]
        params = np.where(plus[:, None], self.center + eps, self.center - eps)
        return params.astype(self.dtype)
