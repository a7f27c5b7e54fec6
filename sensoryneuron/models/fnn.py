"""The non-invariant baseline: a feed-forward policy on the inputs in their given order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from sensoryneuron.errors import ConfigError
from sensoryneuron.models.base import Model, Weights, check_hidden, check_positive, contiguous
from sensoryneuron.models.heads import mlp, mlp_entries
from sensoryneuron.params import ParamSpec
from sensoryneuron.state import PolicyState


@dataclass(frozen=True)
class FeedForwardModel(Model):
    """The non-invariant baseline: tanh FC layers on the observation in its given order.

    Attributes:
        obs_dim: number of inputs (fixed: this model is not permutation invariant).
        act_dim: size of the action.
        hidden: widths of the tanh hidden layers.
    """

    kind: ClassVar[str] = "fnn"
    obs_dim: int = 5
    act_dim: int = 1
    hidden: tuple[int, ...] = (16,)

    def __post_init__(self) -> None:
        check_positive(obs_dim=self.obs_dim, act_dim=self.act_dim)
        check_hidden(self.hidden)

    @property
    def param_spec(self) -> ParamSpec:
        entries = mlp_entries(self.obs_dim, self.hidden, self.act_dim)
        return ParamSpec.of(entries)

    def init_state(
        self,
        members: int,
        batch: int,
        num_inputs: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> PolicyState:
        return PolicyState()

    def prepare(self, params: torch.Tensor) -> Weights:
        return contiguous(self.unflatten(params))

    def step_prepared(
        self, weights: Weights, obs: torch.Tensor, state: PolicyState, with_attention: bool = False
    ) -> tuple[torch.Tensor, PolicyState] | tuple[torch.Tensor, PolicyState, torch.Tensor]:
        P, B, N = self._check_obs(obs, weights)
        if N != self.obs_dim:
            raise ConfigError(
                f"this feed-forward policy takes exactly {self.obs_dim} inputs; got {N}"
            )
        x = obs.to(weights["out.weight"].dtype)
        action = mlp(x, weights, len(self.hidden))
        if with_attention:
            return action, state, action.new_zeros(P, B, 0, N)
        return action, state
