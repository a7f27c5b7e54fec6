"""What every batched architecture shares: the :class:`Model` interface and its checks.

A model is a frozen description of an architecture. It owns no parameters and no state:
``step(params[P, D], obs[P, B, N], state) -> (action[P, B, A], state)`` evaluates P parameter
vectors on B episodes each in one call.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch

from sensoryneuron.errors import ConfigError
from sensoryneuron.params import ParamSpec
from sensoryneuron.state import PolicyState

Weights = dict[str, torch.Tensor]


def check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer; got {value!r}")


def check_hidden(hidden: tuple[int, ...]) -> None:
    if not isinstance(hidden, tuple) or any(
        isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden
    ):
        raise ConfigError(f"hidden must be a tuple of positive integers; got {hidden!r}")


def check_members(obs: torch.Tensor, members: int) -> None:
    """ConfigError unless ``obs``'s leading axis has the ``members`` that the params have."""
    if obs.shape[0] != members:
        raise ConfigError(
            f"obs has {obs.shape[0]} members but params have {members}; the leading axes must agree"
        )


def contiguous(weights: Weights) -> Weights:
    # One memory layout whatever the population size, so that a member's result does not
    # depend on how the population is sharded (matmul kernels follow the layout).
    return {k: v.contiguous() for k, v in weights.items()}


class Model(ABC):
    """Shared behaviour of the batched architectures."""

    kind: ClassVar[str]
    act_dim: int

    @property
    @abstractmethod
    def param_spec(self) -> ParamSpec: ...

    @property
    def num_params(self) -> int:
        return self.param_spec.num_params

    def unflatten(self, params: torch.Tensor) -> Weights:
        return self.param_spec.unflatten(params)

    def flatten(self, weights: Weights) -> torch.Tensor:
        return self.param_spec.flatten(weights)

    @abstractmethod
    def init_state(
        self,
        members: int,
        batch: int,
        num_inputs: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> PolicyState:
        """Zero state at reset for ``members x batch`` episodes."""

    @abstractmethod
    def prepare(self, params: torch.Tensor) -> Weights:
        """Named weights plus quantities that depend only on the parameters."""

    @abstractmethod
    def step_prepared(
        self, weights: Weights, obs: torch.Tensor, state: PolicyState, with_attention: bool = False
    ) -> tuple[torch.Tensor, PolicyState] | tuple[torch.Tensor, PolicyState, torch.Tensor]:
        """One step from prepared weights (see :meth:`step`)."""

    def step(
        self, params: torch.Tensor, obs: torch.Tensor, state: PolicyState
    ) -> tuple[torch.Tensor, PolicyState]:
        """``params[P, D]``, ``obs[P, B, N]`` -> ``(action[P, B, A], new_state)``."""
        return self.step_prepared(self.prepare(params), obs, state)

    @property
    def slot_feature_dim(self) -> int:
        """F of :meth:`slot_features` (0: the model keeps no state per input slot)."""
        return 0

    def slot_features(self, state: PolicyState) -> torch.Tensor | None:
        """What each input slot holds about its sensor, ``[P, B, N, F]``; None without slots."""
        return None

    def with_previous_action(self, state: PolicyState, action: torch.Tensor) -> PolicyState:
        """``state`` with ``action`` ``[P, B, A]`` as the previous action the policy reads.

        The rollout engine calls it when the executed action is not the policy's own output
        (a discrete choice, or a teacher driving the episode). Models that read no previous
        action return ``state`` unchanged.
        """
        if "prev_action" not in state.carry:
            return state
        prev = state.carry["prev_action"]
        carry = {**state.carry, "prev_action": action.to(prev.dtype).reshape(prev.shape)}
        return PolicyState(slots=dict(state.slots), carry=carry)

    def policy_input(self, obs: np.ndarray) -> torch.Tensor:
        """What :meth:`Policy.act <sensoryneuron.Policy.act>` feeds the model for one
        member: ``obs[B, N]`` as float32 ``[1, B, N]``."""
        obs = np.asarray(obs)
        if obs.ndim != 2:
            raise ConfigError(
                f"obs must have shape (batch, inputs); got {obs.shape} (use obs[None, :] for one)"
            )
        return torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32))[None]

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            d[f.name] = list(value) if isinstance(value, tuple) else value
        return d

    @staticmethod
    def _check_obs(obs: torch.Tensor, weights: Weights) -> tuple[int, int, int]:
        if obs.ndim != 3:
            raise ConfigError(
                f"obs must have shape (members, batch, inputs); got {tuple(obs.shape)}"
            )
        check_members(obs, next(iter(weights.values())).shape[0])
        return obs.shape[0], obs.shape[1], obs.shape[2]
