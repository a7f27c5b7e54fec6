"""From what a policy outputs to what an environment takes: the one place for that map.

A policy's last layer is tanh, so every output lies in (-1, 1). An :class:`ActionMap` says
what the environment wants instead:

- ``box``: a continuous action within ``[low, high]``; output ``y`` becomes
  ``center + half * y`` with ``center = (high + low) / 2`` and ``half = (high - low) / 2``
  (so ``[-1, 1]`` is the identity, to the bit).
- ``discrete``: one of ``n`` actions; the policy outputs one score per action and the
  environment gets the ``argmax`` (lowest index on ties).

The map is saved in every checkpoint, so ``Policy.act`` returns what ``env.step`` takes.

>>> import numpy as np
>>> ActionMap.box(low=[-2.0], high=[2.0]).to_env(np.array([[0.5]]))
array([[1.]])
>>> ActionMap.discrete(3).to_env(np.array([[0.1, 0.7, -0.2]]))
array([1])
>>> ActionMap.discrete(3).feedback(np.array([2]))
array([[0., 0., 1.]], dtype=float32)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from sensoryneuron.errors import ConfigError

ACTION_KINDS = ("box", "discrete")


@dataclass(frozen=True)
class ActionMap:
    """How policy outputs become environment actions.

    Attributes:
        kind: ``"box"`` or ``"discrete"``.
        low: the Box's lower bounds (``box`` only).
        high: the Box's upper bounds (``box`` only).
        n: the number of discrete actions (``discrete`` only).
    """

    kind: str
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    n: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ACTION_KINDS:
            raise ConfigError(
                f"action kind must be one of {', '.join(ACTION_KINDS)}; got {self.kind!r}"
            )
        if self.kind == "box":
            low = tuple(float(v) for v in self.low)
            high = tuple(float(v) for v in self.high)
            if not low or len(low) != len(high):
                raise ConfigError(
                    f"a box action needs as many low as high bounds, at least one; "
                    f"got {len(low)} and {len(high)}"
                )
            if not all(
                math.isfinite(a) and math.isfinite(b) and a < b
                for a, b in zip(low, high, strict=True)
            ):
                raise ConfigError(
                    f"a box action needs finite bounds with low < high; got low={list(low)}, "
                    f"high={list(high)}"
                )
            object.__setattr__(self, "low", low)
            object.__setattr__(self, "high", high)
            if self.n:
                raise ConfigError("a box action takes no n")
        else:
            if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 2:
                raise ConfigError(f"a discrete action needs n >= 2 choices; got {self.n!r}")
            if self.low or self.high:
                raise ConfigError("a discrete action takes no low or high bounds")

    @classmethod
    def box(cls, low: Any, high: Any) -> ActionMap:
        """A continuous action in ``[low, high]`` (one bound per dimension)."""
        return cls("box", tuple(np.ravel(low).tolist()), tuple(np.ravel(high).tolist()))

    @classmethod
    def unit_box(cls, dim: int) -> ActionMap:
        """``[-1, 1]^dim``: the tanh outputs go to the environment unchanged."""
        return cls.box([-1.0] * dim, [1.0] * dim)

    @classmethod
    def discrete(cls, n: int) -> ActionMap:
        """One of ``n`` actions, by the argmax of ``n`` outputs."""
        return cls("discrete", n=n)

    @classmethod
    def from_space(cls, space: gym.Space) -> ActionMap:
        """The map for a Gymnasium action space: a bounded 1-D ``Box`` or a ``Discrete``."""
        if isinstance(space, gym.spaces.Discrete):
            if int(space.start) != 0:
                raise ConfigError(f"a Discrete action space must start at 0; got {space}")
            return cls.discrete(int(space.n))
        if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
            if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
                raise ConfigError(f"a Box action space needs finite bounds; got {space}")
            return cls.box(space.low, space.high)
        raise ConfigError(
            f"the action space must be a 1-D Box with finite bounds or a Discrete; got {space}"
        )

    @property
    def output_dim(self) -> int:
        """How many outputs the policy needs: the Box's size, or one score per choice."""
        return len(self.low) if self.kind == "box" else self.n

    @property
    def is_identity(self) -> bool:
        """Whether outputs go to the environment unchanged (``box`` on ``[-1, 1]``)."""
        return self.kind == "box" and all(
            a == -1.0 and b == 1.0 for a, b in zip(self.low, self.high, strict=True)
        )

    def to_env(self, output: np.ndarray) -> np.ndarray:
        """Policy outputs ``[..., output_dim]`` to environment actions.

        ``box``: float64 ``[..., dim]`` within the bounds. ``discrete``: int64 ``[...]``.
        """
        output = np.asarray(output)
        if output.shape[-1:] != (self.output_dim,):
            raise ConfigError(
                f"expected policy outputs of shape (..., {self.output_dim}); got {output.shape}"
            )
        if self.kind == "discrete":
            return output.argmax(axis=-1).astype(np.int64)
        output = output.astype(np.float64)
        if self.is_identity:
            return output
        low, high = np.asarray(self.low), np.asarray(self.high)
        return np.clip((high + low) / 2 + (high - low) / 2 * output, low, high)

    def feedback(self, action: np.ndarray) -> np.ndarray:
        """An executed environment action, as the policy reads it back at the next step.

        ``box``: the action mapped back into ``[-1, 1]``; ``discrete``: its one-hot code.
        Returns float32 ``[..., output_dim]``.
        """
        action = np.asarray(action)
        if self.kind == "discrete":
            return np.eye(self.n, dtype=np.float32)[action.astype(np.int64)]
        if self.is_identity:
            return action.astype(np.float32)
        low, high = np.asarray(self.low), np.asarray(self.high)
        return ((action - (high + low) / 2) / ((high - low) / 2)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "discrete":
            return {"kind": "discrete", "n": self.n}
        return {"kind": "box", "low": list(self.low), "high": list(self.high)}

    @classmethod
    def from_dict(cls, d: Any) -> ActionMap:
        if not isinstance(d, dict):
            raise ConfigError(f"an action map must be a JSON object; got {d!r}")
        unknown = sorted(set(d) - {"kind", "low", "high", "n"})
        if unknown:
            raise ConfigError(f"unknown action field(s) {unknown}; allowed: kind, low, high, n")
        return cls(d.get("kind"), tuple(d.get("low", ())), tuple(d.get("high", ())), d.get("n", 0))

    def describe(self) -> str:
        if self.kind == "discrete":
            return f"Discrete({self.n})"
        if self.is_identity:
            return f"Box([-1, 1]^{len(self.low)})"
        return f"Box({list(self.low)}, {list(self.high)})"
