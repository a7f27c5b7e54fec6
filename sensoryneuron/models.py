"""Policy architectures as pure, population-batched functions.

A model is a frozen description of an architecture. It owns no parameters and no state:
``step(params[P, D], obs[P, B, N], state) -> (action[P, B, A], state)`` evaluates P parameter
vectors on B episodes each in one call.

>>> import torch
>>> from sensoryneuron.models import AttentionNeuronModel
>>> model = AttentionNeuronModel(act_dim=1)
>>> model.num_params
913
>>> params = 0.1 * torch.randn(4, model.num_params)
>>> state = model.init_state(members=4, batch=2)
>>> action, state = model.step(params, torch.randn(4, 2, 5), state)
>>> tuple(action.shape)
(4, 2, 1)
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from sensoryneuron.errors import ConfigError
from sensoryneuron.layers import (
    fuse_lstm_weights,
    lateral_message,
    linear,
    lstm_cell,
    order_free_sum,
    rowwise_matmul,
    scaled,
    sinusoidal_table,
)
from sensoryneuron.params import ParamSpec
from sensoryneuron.state import PolicyState

Weights = dict[str, torch.Tensor]


def _lstm_entries(prefix: str, input_size: int, hidden: int) -> list[tuple[str, tuple[int, ...]]]:
    return [
        (f"{prefix}.weight_ih", (4 * hidden, input_size)),
        (f"{prefix}.weight_hh", (4 * hidden, hidden)),
        (f"{prefix}.bias_ih", (4 * hidden,)),
        (f"{prefix}.bias_hh", (4 * hidden,)),
    ]


def _mlp_entries(
    width: int, hidden: tuple[int, ...], act_dim: int
) -> list[tuple[str, tuple[int, ...]]]:
    """tanh hidden layers ``fc0, fc1, ...`` then the tanh output layer ``out``."""
    entries: list[tuple[str, tuple[int, ...]]] = []
    for i, h in enumerate(hidden):
        entries += [(f"fc{i}.weight", (h, width)), (f"fc{i}.bias", (h,))]
        width = h
    return entries + [("out.weight", (act_dim, width)), ("out.bias", (act_dim,))]


def _mlp(x: torch.Tensor, weights: Weights, num_hidden: int) -> torch.Tensor:
    """Apply the layers of :func:`_mlp_entries`: ``[P, B, width] -> [P, B, act_dim]``."""
    for i in range(num_hidden):
        x = torch.tanh(linear(x, weights[f"fc{i}.weight"], weights[f"fc{i}.bias"]))
    return torch.tanh(linear(x, weights["out.weight"], weights["out.bias"]))


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer; got {value!r}")


def _check_hidden(hidden: tuple[int, ...]) -> None:
    if not isinstance(hidden, tuple) or any(
        isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden
    ):
        raise ConfigError(f"hidden must be a tuple of positive integers; got {hidden!r}")


def _contiguous(weights: Weights) -> Weights:
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
        members = next(iter(weights.values())).shape[0]
        if obs.shape[0] != members:
            raise ConfigError(
                f"obs has {obs.shape[0]} members but params have {members}; "
                "the leading axes must agree"
            )
        return obs.shape[0], obs.shape[1], obs.shape[2]


ATTENTION_KINDS = ("tanh", "softmax")


@dataclass(frozen=True)
class AttentionNeuronModel(Model):
    """Permutation-invariant policy: an AttentionNeuron layer, then a head.

    The layer (Tang & Ha 2021, vector version): one LSTMCell shared by every input slot reads
    ``[o_i, a_{t-1}]``; its hidden states are the keys; fixed sinusoidal rows are the queries;
    ``latent = tanh(tanh(Q K^T) @ o)``. The head is an optional LSTM, optional tanh FC layers,
    then a tanh output layer. The parameter count does not depend on the number of inputs.

    Attributes:
        act_dim: size of the action.
        num_latents: M, the size of the latent code.
        msg_dim: width of the query/key projections.
        pos_dim: d_pe, the sensory LSTM's hidden size and the width of the position table.
        attention_bias: whether the query/key projections have biases.
        attention_scale: whether scores are divided by sqrt(msg_dim).
        attention: ``"tanh"`` (the paper: each weight is ``tanh`` of its score) or
            ``"softmax"`` (weights over the inputs sum to one, so every latent is a convex
            combination of the inputs, scaled by a learned gain per latent; repeating every
            input k times changes nothing).
        hidden: widths of tanh FC layers between the latent (or head LSTM) and the output.
        head_lstm: hidden size of an LSTMCell on the latent (0: none).
        input_change: each sensory neuron also reads how its input changed since the last
            step (times ``change_scale``) and that change times the previous action, so it
            can tell which sensor feeds it: a sensor the action drives responds to it (not in
            the paper; off by default). The input of each slot's LSTM is then
            ``[o_i, a_{t-1}, s * do_i, s * do_i * a_{t-1}]`` with ``do_i = o_i(t) - o_i(t-1)``
            (0 at the first step).
        change_scale: ``s`` above.
        lateral_dim: query/key width of a lateral attention among the sensory neurons (0:
            none, the paper's independent neurons). Each neuron then also reads a message
            from the others, computed at the previous step: a softmax over slots of their
            values ``tanh(W_v [h_j, x_j])``. It lets a neuron tell which sensor it reads by
            comparing itself with the rest (an input that is the rate of change of another,
            say). The layer stays permutation equivariant, the latent invariant.
    """

    kind: ClassVar[str] = "attention-neuron"
    act_dim: int = 1
    num_latents: int = 16
    msg_dim: int = 32
    pos_dim: int = 8
    attention_bias: bool = False
    attention_scale: bool = False
    attention: str = "tanh"
    hidden: tuple[int, ...] = ()
    head_lstm: int = 0
    input_change: bool = False
    change_scale: float = 10.0
    lateral_dim: int = 0

    def __post_init__(self) -> None:
        _check_positive(
            act_dim=self.act_dim,
            num_latents=self.num_latents,
            msg_dim=self.msg_dim,
            pos_dim=self.pos_dim,
        )
        _check_hidden(self.hidden)
        for name in ("head_lstm", "lateral_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer; got {value!r}")
        scale = self.change_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise ConfigError(f"change_scale must be a positive number; got {scale!r}")
        for name in ("attention_bias", "attention_scale", "input_change"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false; got {getattr(self, name)!r}")
        if self.attention not in ATTENTION_KINDS:
            raise ConfigError(
                f"attention must be one of {', '.join(ATTENTION_KINDS)}; got {self.attention!r}"
            )

    @property
    def param_spec(self) -> ParamSpec:
        d, msg, lateral = self.pos_dim, self.msg_dim, self.lateral_dim
        entries = _lstm_entries("neuron", self.neuron_input_size, d)
        if lateral:
            for name in ("lateral_query", "lateral_key"):
                entries += [(f"{name}.weight", (lateral, d)), (f"{name}.bias", (lateral,))]
            own = self.neuron_input_size - d  # a neuron's own input, without the message
            entries += [("lateral_value.weight", (d, d + own)), ("lateral_value.bias", (d,))]
        entries.append(("query.weight", (msg, d)))
        if self.attention_bias:
            entries.append(("query.bias", (msg,)))
        entries.append(("key.weight", (msg, d)))
        if self.attention_bias:
            entries.append(("key.bias", (msg,)))
        if self.attention == "softmax":
            entries.append(("latent.gain", (self.num_latents,)))
        width = self.num_latents
        if self.head_lstm:
            entries += _lstm_entries("head_lstm", width, self.head_lstm)
            width = self.head_lstm
        entries += _mlp_entries(width, self.hidden, self.act_dim)
        return ParamSpec.of(entries)

    @property
    def neuron_input_size(self) -> int:
        """Width of each sensory neuron's LSTM input (see ``input_change``, ``lateral_dim``)."""
        own = (1 + self.act_dim) * (2 if self.input_change else 1)
        return own + (self.pos_dim if self.lateral_dim else 0)

    @property
    def slot_feature_dim(self) -> int:
        return self.pos_dim

    def slot_features(self, state: PolicyState) -> torch.Tensor | None:
        """Each sensory neuron's LSTM hidden state ``[P, B, N, pos_dim]``, its keys' source."""
        return state.slots.get("h")

    def init_state(
        self,
        members: int,
        batch: int,
        num_inputs: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> PolicyState:
        slots = {}
        if num_inputs is not None:
            shape = (members, batch, num_inputs, self.pos_dim)
            slots = {"h": torch.zeros(shape, dtype=dtype), "c": torch.zeros(shape, dtype=dtype)}
            if self.input_change:
                slots["prev_obs"] = torch.zeros(members, batch, num_inputs, 1, dtype=dtype)
            if self.lateral_dim:
                slots["message"] = torch.zeros(shape, dtype=dtype)
        carry = {"prev_action": torch.zeros(members, batch, self.act_dim, dtype=dtype)}
        if self.input_change:
            # 0 until the first step: there is no earlier input to take a change from
            carry["has_prev"] = torch.zeros(members, batch, 1, dtype=dtype)
        if self.head_lstm:
            carry["head_h"] = torch.zeros(members, batch, self.head_lstm, dtype=dtype)
            carry["head_c"] = torch.zeros(members, batch, self.head_lstm, dtype=dtype)
        return PolicyState(slots=slots, carry=carry)

    def prepare(self, params: torch.Tensor) -> Weights:
        w = dict(self.unflatten(params))
        members = params.shape[0]
        for prefix in ("neuron", "head_lstm") if self.head_lstm else ("neuron",):
            w[f"{prefix}.weight"], w[f"{prefix}.bias"] = fuse_lstm_weights(
                *(
                    w[f"{prefix}.{name}"]
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                )
            )
        table = sinusoidal_table(self.num_latents, self.pos_dim, params.dtype)
        q = linear(table.expand(members, -1, -1), w["query.weight"], w.get("query.bias"))
        q = scaled(q, self.msg_dim, self.attention_scale)  # [P, M, msg]
        # Scores Q (H W_k^T + b_k)^T = (Q W_k) H^T + Q b_k: fold the key map into the queries.
        w["query_key"] = torch.bmm(q, w["key.weight"])  # [P, M, d_pe]
        if self.attention_bias:
            # an elementwise product and sum: a [P, msg, 1] matmul's kernel depends on P
            w["query_key_bias"] = (q * w["key.bias"].unsqueeze(1)).sum(-1, keepdim=True)
        return _contiguous(w)

    def step_prepared(
        self, weights: Weights, obs: torch.Tensor, state: PolicyState, with_attention: bool = False
    ) -> tuple[torch.Tensor, PolicyState] | tuple[torch.Tensor, PolicyState, torch.Tensor]:
        P, B, N = self._check_obs(obs, weights)
        d, A = self.pos_dim, self.act_dim
        obs = obs.to(weights["query_key"].dtype)
        prev = state.carry["prev_action"]
        if state.num_slots is None:
            h = obs.new_zeros(P, B * N, d)
            c = obs.new_zeros(P, B * N, d)
        elif state.num_slots != N:
            raise ConfigError(
                f"obs has {N} inputs but the state holds {state.num_slots} slots; "
                "reset the state when the number of inputs changes"
            )
        else:
            h = state.slots["h"].reshape(P, B * N, d)
            c = state.slots["c"].reshape(P, B * N, d)
        value = obs.unsqueeze(-1)  # [P, B, N, 1]
        prev_slots = prev.unsqueeze(2).expand(P, B, N, A)
        parts = [value, prev_slots]
        carry: dict[str, torch.Tensor] = {}
        if self.input_change:
            if state.num_slots is None:
                change = torch.zeros_like(value)
            else:
                since = state.carry["has_prev"].unsqueeze(2)  # [P, B, 1, 1]
                change = self.change_scale * (value - state.slots["prev_obs"]) * since
            parts += [change, change * prev_slots]
            carry["has_prev"] = torch.ones_like(prev[..., :1])
        own = torch.cat(parts, dim=-1)
        x = own
        if self.lateral_dim:
            message = state.slots.get("message")
            x = torch.cat([own, own.new_zeros(P, B, N, d) if message is None else message], -1)
        h, c = lstm_cell(
            x.reshape(P, B * N, x.shape[-1]), h, c, weights["neuron.weight"], weights["neuron.bias"]
        )
        # Scores [P, B*N, M]: each slot's key against every query.
        scores = rowwise_matmul(h, weights["query_key"].transpose(1, 2))
        qk_bias = weights.get("query_key_bias")
        if qk_bias is not None:
            scores = scores + qk_bias.transpose(1, 2)
        scores = scores.view(P, B, N, self.num_latents)
        if self.attention == "softmax":
            exp = torch.exp(scores - scores.amax(dim=2, keepdim=True))
            attention = exp / order_free_sum(exp, dim=2)
        else:
            attention = torch.tanh(scores)
        mixed = order_free_sum(attention * obs.unsqueeze(-1), dim=2).squeeze(2)  # [P, B, M]
        if self.attention == "softmax":
            mixed = mixed * weights["latent.gain"].unsqueeze(1)
        latent = torch.tanh(mixed)

        x = latent
        if self.head_lstm:
            hh, hc = lstm_cell(
                x,
                state.carry["head_h"],
                state.carry["head_c"],
                weights["head_lstm.weight"],
                weights["head_lstm.bias"],
            )
            carry["head_h"], carry["head_c"] = hh, hc
            x = hh
        action = _mlp(x, weights, len(self.hidden))
        carry["prev_action"] = action
        slots = {"h": h.view(P, B, N, d), "c": c.view(P, B, N, d)}
        if self.input_change:
            slots["prev_obs"] = value
        if self.lateral_dim:
            slots["message"] = lateral_message(slots["h"], own, weights)
        new_state = PolicyState(slots=slots, carry=carry)
        if with_attention:
            return action, new_state, attention.transpose(2, 3)  # [P, B, M, N]
        return action, new_state


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
        _check_positive(obs_dim=self.obs_dim, act_dim=self.act_dim)
        _check_hidden(self.hidden)

    @property
    def param_spec(self) -> ParamSpec:
        entries = _mlp_entries(self.obs_dim, self.hidden, self.act_dim)
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
        return _contiguous(self.unflatten(params))

    def step_prepared(
        self, weights: Weights, obs: torch.Tensor, state: PolicyState, with_attention: bool = False
    ) -> tuple[torch.Tensor, PolicyState] | tuple[torch.Tensor, PolicyState, torch.Tensor]:
        P, B, N = self._check_obs(obs, weights)
        if N != self.obs_dim:
            raise ConfigError(
                f"this feed-forward policy takes exactly {self.obs_dim} inputs; got {N}"
            )
        x = obs.to(weights["out.weight"].dtype)
        action = _mlp(x, weights, len(self.hidden))
        if with_attention:
            return action, state, action.new_zeros(P, B, 0, N)
        return action, state


MODELS: dict[str, type[Model]] = {
    AttentionNeuronModel.kind: AttentionNeuronModel,
    FeedForwardModel.kind: FeedForwardModel,
}


def model_from_dict(d: dict[str, Any]) -> Model:
    """Rebuild a model from :meth:`Model.to_dict` output (e.g. a checkpoint's JSON)."""
    if not isinstance(d, dict) or d.get("kind") not in MODELS:
        kind = d.get("kind") if isinstance(d, dict) else d
        raise ConfigError(f"unknown model kind {kind!r}; allowed: {', '.join(sorted(MODELS))}")
    cls = MODELS[d["kind"]]
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(d) - names - {"kind"})
    if unknown:
        raise ConfigError(
            f"unknown field(s) {unknown} for model kind {d['kind']!r}; allowed: {sorted(names)}"
        )
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k != "kind"}
    return cls(**kwargs)
