"""The vector AttentionNeuron: one sensory neuron per scalar input, pooled by attention."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

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
from sensoryneuron.models.base import Model, Weights, check_hidden, check_positive, contiguous
from sensoryneuron.models.heads import lstm_entries, mlp, mlp_entries
from sensoryneuron.params import ParamSpec
from sensoryneuron.state import PolicyState

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
        check_positive(
            act_dim=self.act_dim,
            num_latents=self.num_latents,
            msg_dim=self.msg_dim,
            pos_dim=self.pos_dim,
        )
        check_hidden(self.hidden)
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
        entries = lstm_entries("neuron", self.neuron_input_size, d)
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
            entries += lstm_entries("head_lstm", width, self.head_lstm)
            width = self.head_lstm
        entries += mlp_entries(width, self.hidden, self.act_dim)
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
        table = sinusoidal_table(self.num_latents, self.pos_dim, params.dtype).to(params.device)
        q = linear(table.expand(members, -1, -1), w["query.weight"], w.get("query.bias"))
        q = scaled(q, self.msg_dim, self.attention_scale)  # [P, M, msg]
        # Scores Q (H W_k^T + b_k)^T = (Q W_k) H^T + Q b_k: fold the key map into the queries.
        w["query_key"] = torch.bmm(q, w["key.weight"])  # [P, M, d_pe]
        if self.attention_bias:
            # an elementwise product and sum: a [P, msg, 1] matmul's kernel depends on P
            w["query_key_bias"] = (q * w["key.bias"].unsqueeze(1)).sum(-1, keepdim=True)
        return contiguous(w)

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
        action = mlp(x, weights, len(self.hidden))
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
