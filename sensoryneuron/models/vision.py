"""The vision AttentionNeuron: one sensory neuron per image patch, pooled onto a latent grid.

The layer (Tang & Ha 2021, vision version) reads patches in any order, ``[P, B, N, F*p*p]``
(the layout of :func:`sensoryneuron.patches.to_patches`, values in ``[0, 1]``):

- the key of patch ``i`` is its ``F-1`` frame differences (newer minus older), flattened pixel
  by pixel (each pixel's differences side by side), then the previous action: ``(F-1)p^2 + A``
  values (with ``key_content``, the newest frame's ``p^2`` pixels before the action);
- its value is its ``F`` frame slices of ``p^2`` pixels, each layer-normalised without affine
  parameters (with ``value_stats``, then each slice's mean and standard deviation);
- the queries are a fixed sinusoidal table ``[M, d_pe]`` through ``W_q``;
- ``codes = LayerNorm(ReLU(softmax_N(Q K^T / sqrt(msg)) V))`` with ``K = W_k key + b_k`` and
  ``V = W_v value + b_v``: ``[M, msg]``, one code per cell of a ``grid x grid`` latent grid.

The key has no recurrent state, so a permutation of the patches permutes nothing the model
keeps: the codes are invariant at every step.

The previous action in the key adds the same amount to every patch's score for a code, so
the softmax cancels it. With ``action_query`` it also enters the queries, ``q_m + W_a a``:
its score term ``(W_a a) . k_i`` differs from patch to patch, so what the agent did last
steers what it looks at (still without any patch position).

Two heads read the codes. ``head="top-k"`` is the published AttentionAgent head of
``carracing_pi.npz``:

1. blend the codes with the previous step's, ``x = (1 - alpha) x + alpha x_prev`` (``alpha``
   from the mixing net of the previous step, 0 at reset);
2. the importance of code ``k`` is column ``k``'s sum of ``softmax(x W_q' (x W_k')^T)`` (rows
   sum to one; no scaling);
3. the ``top_k`` most important codes' grid coordinates ``(i, j) / grid`` (``k = i * grid +
   j``), most important first, flattened to ``2 * top_k`` values, feed an LSTMCell;
4. ``action = tanh(W_o h + b_o)``; then ``alpha = sigmoid(mix_1(tanh(mix_0([h, action]))))``.

Its top-k choice has no gradient, so only evolution can train the layer beneath it.
``head="pool"`` is differentiable, for students trained by gradients: ``pool_queries``
learned queries each take a softmax-weighted mean over the codes of ``[code_m, table_m]``
(the code and its row of the sinusoidal table, so a query can tell codes apart); their
concatenation feeds an LSTMCell, then ``action = tanh(W_o h + b_o)``.

With ``output="logits"`` either head's last layer is linear, ``W_o h + b_o``: one logit per
choice of a discrete task (``ActionMap.discrete``: the env gets the argmax, the policy reads
back the executed action's one-hot as its previous action), which distillation fits by
cross-entropy. The default ``"tanh"`` squashes the outputs into ``(-1, 1)``, for a Box;
``output_gain`` g > 1 makes them ``clip(g * tanh(W_o h + b_o), -1, 1)``, so the bounds are
reached at finite pre-activations: a tanh never outputs exactly -1, which CarRacing's action
map turns into a brake of 0, so a tanh student brakes a little on every step.

The top-k choice breaks ties by the lowest index (a stable sort). It is tie-prone: at reset
the stacked frames are copies, every key is the same and every code too, so float32
round-off decides it. Compare implementations on the codes, or in float64, where every sum
over patches is order-free (see :func:`sensoryneuron.layers.order_free_sum`) and ties are
exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from sensoryneuron.errors import ConfigError
from sensoryneuron.layers import (
    linear,
    lstm_cell,
    order_free_sum,
    rows_linear,
    rowwise_matmul,
    sinusoidal_table,
)
from sensoryneuron.models.base import Model, Weights, check_members, check_positive, contiguous
from sensoryneuron.models.heads import (
    check_output,
    fuse_lstm,
    head_output,
    lstm_entries,
    lstm_head_carry,
)
from sensoryneuron.params import ParamSpec
from sensoryneuron.patches import to_patches
from sensoryneuron.state import PolicyState

VISION_HEADS = ("top-k", "pool")
LAYER_NORM_EPS = 1e-5  # nn.LayerNorm's default, as in the published model


@dataclass(frozen=True)
class VisionAttentionNeuronModel(Model):
    """Permutation-invariant policy on image patches: the vision AttentionNeuron, then a head.

    The defaults are the published CarRacing model (7,212 parameters).

    Attributes:
        act_dim: size of the action: a Box's size, or one score per discrete choice.
        frames: stacked frames per patch, ``F``.
        patch: the side of a patch in pixels, ``p``.
        grid: the latent grid's side; ``M = grid**2`` codes.
        msg_dim: width of the queries, keys, values and codes.
        pos_dim: width of the sinusoidal query table.
        head: ``"top-k"``, the published AttentionAgent head, or ``"pool"``, a differentiable
            one (see the module doc).
        top_k: ``top-k``: codes whose coordinates feed the head's LSTM.
        query_dim: width of the head's attention over the codes (both heads).
        hidden: the head LSTM's hidden size.
        pool_queries: ``pool``: the learned queries over the codes.
        action_query: add ``W_a a`` (the previous action) to every query (see the module
            doc; off in the published model).
        head_memory: ``pool``: the head is an LSTMCell (True) or a memoryless
            ``tanh(W x + b)`` layer of ``hidden`` units (False: the action depends on the
            last ``frames`` frames and the previous action only, so a student fitted on short
            windows meets no hidden state in a long episode that it never saw in training).
        output: the last layer: ``"tanh"`` (outputs in ``(-1, 1)``, for a Box) or
            ``"logits"`` (linear: one logit per choice of a discrete task).
        value_stats: append each frame slice's mean and standard deviation (taken before the
            layer norm, which removes them) to the value: ``F*p*p + 2F`` inputs, so a code
            can tell a flat patch of road from one of grass (off in the published model).
        key_content: append the newest frame's ``p*p`` pixels to the key, so the codes can
            select patches by what they show, not only by how they change (off in the
            published model).
        output_gain: ``"tanh"`` outputs become ``clip(output_gain * tanh(.), -1, 1)`` (1: the
            plain tanh, as published; see the module doc).
    """

    kind: ClassVar[str] = "vision-attention-neuron"
    act_dim: int = 3
    frames: int = 4
    patch: int = 6
    grid: int = 32
    msg_dim: int = 16
    pos_dim: int = 8
    head: str = "top-k"
    top_k: int = 10
    query_dim: int = 4
    hidden: int = 16
    pool_queries: int = 4
    action_query: bool = False
    head_memory: bool = True
    output: str = "tanh"
    value_stats: bool = False
    key_content: bool = False
    output_gain: float = 1.0

    def __post_init__(self) -> None:
        check_positive(
            act_dim=self.act_dim,
            frames=self.frames,
            patch=self.patch,
            grid=self.grid,
            msg_dim=self.msg_dim,
            pos_dim=self.pos_dim,
            top_k=self.top_k,
            query_dim=self.query_dim,
            hidden=self.hidden,
            pool_queries=self.pool_queries,
        )
        if self.frames < 2:
            raise ConfigError(
                f"frames must be at least 2 (keys are frame differences); got {self.frames}"
            )
        for name in ("action_query", "head_memory", "value_stats", "key_content"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false; got {getattr(self, name)!r}")
        if not self.head_memory and self.head != "pool":
            raise ConfigError("head_memory=False needs the pool head")
        if self.head not in VISION_HEADS:
            raise ConfigError(f"head must be one of {', '.join(VISION_HEADS)}; got {self.head!r}")
        check_output(self.output)
        gain = self.output_gain
        if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not 1.0 <= gain < 10:
            raise ConfigError(f"output_gain must be a number in [1, 10); got {gain!r}")
        object.__setattr__(self, "output_gain", float(gain))
        if gain != 1.0 and self.output != "tanh":
            raise ConfigError(f"output_gain scales tanh outputs; output={self.output!r} has none")
        if self.head == "top-k" and self.top_k > self.num_codes:
            raise ConfigError(
                f"top_k={self.top_k} exceeds the {self.num_codes} codes of a {self.grid}x"
                f"{self.grid} grid"
            )

    @property
    def num_codes(self) -> int:
        """M, the cells of the latent grid."""
        return self.grid * self.grid

    @property
    def patch_size(self) -> int:
        """Values per patch, ``F * p * p``."""
        return self.frames * self.patch * self.patch

    @property
    def key_size(self) -> int:
        """Inputs of ``W_k``: the frame differences (and the newest frame with
        ``key_content``), then the previous action."""
        frames = self.frames if self.key_content else self.frames - 1
        return frames * self.patch * self.patch + self.act_dim

    @property
    def value_size(self) -> int:
        """Inputs of ``W_v``: the normalised frame slices (and their statistics with
        ``value_stats``)."""
        return self.patch_size + (2 * self.frames if self.value_stats else 0)

    @property
    def param_spec(self) -> ParamSpec:
        msg, h, a = self.msg_dim, self.hidden, self.act_dim
        entries = [
            ("query.weight", (msg, self.pos_dim)),
            ("query.bias", (msg,)),
            ("key.weight", (msg, self.key_size)),
            ("key.bias", (msg,)),
            ("value.weight", (msg, self.value_size)),
            ("value.bias", (msg,)),
        ]
        if self.action_query:
            entries.append(("action_query.weight", (msg, a)))
        if self.head == "pool":
            width = msg + self.pos_dim
            entries += [
                ("pool.queries", (self.pool_queries, self.query_dim)),
                ("pool_key.weight", (self.query_dim, width)),
                ("pool_key.bias", (self.query_dim,)),
            ]
            if self.head_memory:
                entries += lstm_entries("head_lstm", self.pool_queries * width, h)
            else:
                entries += [
                    ("head_fc.weight", (h, self.pool_queries * width)),
                    ("head_fc.bias", (h,)),
                ]
            return ParamSpec.of(entries + [("out.weight", (a, h)), ("out.bias", (a,))])
        entries += [
            ("importance_query.weight", (self.query_dim, msg)),
            ("importance_query.bias", (self.query_dim,)),
            ("importance_key.weight", (self.query_dim, msg)),
            ("importance_key.bias", (self.query_dim,)),
        ]
        entries += lstm_entries("head_lstm", 2 * self.top_k, h)
        entries += [  # the published order: output layer, then the mixing net
            ("out.weight", (a, h)),
            ("out.bias", (a,)),
            ("mixing0.weight", (h, h + a)),
            ("mixing0.bias", (h,)),
            ("mixing1.weight", (1, h)),
            ("mixing1.bias", (1,)),
        ]
        return ParamSpec.of(entries)

    def init_state(
        self,
        members: int,
        batch: int,
        num_inputs: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> PolicyState:
        """Zero state: no per-patch state (the keys have none), a carry for the head."""
        carry = lstm_head_carry(members, batch, self.act_dim, self.hidden, dtype)
        if self.head == "top-k":
            carry["alpha"] = torch.zeros(members, batch, 1, dtype=dtype)
            carry["prev_codes"] = torch.zeros(
                members, batch, self.num_codes, self.msg_dim, dtype=dtype
            )
        return PolicyState(slots={}, carry=carry)

    def prepare(self, params: torch.Tensor) -> Weights:
        w = dict(self.unflatten(params))
        if self.head_memory:
            fuse_lstm(w, "head_lstm")
        table = sinusoidal_table(self.num_codes, self.pos_dim, params.dtype).to(params.device)
        q = linear(table.expand(params.shape[0], -1, -1), w["query.weight"], w["query.bias"])
        w["queries"] = q / math.sqrt(self.msg_dim)  # [P, M, msg], the score scale folded in
        g = torch.arange(self.num_codes, device=params.device)
        w["centers"] = (torch.stack([g // self.grid, g % self.grid], -1) / self.grid).to(
            params.dtype
        )
        w["table"] = table.expand(params.shape[0], -1, -1)  # [P, M, pos]
        return contiguous(w)

    def _check_patches(self, obs: torch.Tensor, weights: Weights) -> tuple[int, int, int]:
        if obs.ndim != 4 or obs.shape[-1] != self.patch_size:
            raise ConfigError(
                f"obs must have shape (members, batch, patches, {self.patch_size}): each patch's "
                f"{self.frames} frames of {self.patch}x{self.patch}; got {tuple(obs.shape)}"
            )
        check_members(obs, weights["queries"].shape[0])
        return obs.shape[0], obs.shape[1], obs.shape[2]

    def codes(
        self,
        weights: Weights,
        obs: torch.Tensor,
        prev_action: torch.Tensor,
        with_attention: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The vision layer: patches ``[P, B, N, F*p*p]`` to codes ``[P, B, M, msg]``.

        Also returns the attention ``[P, B, M, N]`` (each code's softmax over the patches),
        or None where ``with_attention`` is False: float32 then takes torch's fused attention
        kernel, which never writes the ``M x N`` weights out (faster on a CPU, forward and
        backward; equal to the explicit softmax up to round-off). The fit of a distillation
        replay takes it; a policy's steps keep the explicit softmax, so that measured scores
        stay reproducible bit for bit. Float64 always takes the order-free path.
        """
        P, B, N = self._check_patches(obs, weights)
        pp, msg = self.patch * self.patch, self.msg_dim
        x = obs.to(weights["queries"].dtype).reshape(P, B, N, self.frames, pp)
        diffs = (x[:, :, :, 1:] - x[:, :, :, :-1]).transpose(-1, -2)  # [P, B, N, p*p, F-1]
        act = prev_action.unsqueeze(2).expand(P, B, N, self.act_dim)
        key_parts = [diffs.reshape(P, B, N, -1)]
        if self.key_content:
            key_parts.append(x[:, :, :, -1])
        key_in = torch.cat([*key_parts, act], dim=-1)
        value_in = F.layer_norm(x, (pp,), eps=LAYER_NORM_EPS).reshape(P, B, N, -1)
        if self.value_stats:  # [P, B, N, 2F]: each slice's level and contrast
            var, mean = torch.var_mean(x, dim=-1, unbiased=False)
            value_in = torch.cat([value_in, mean, var.sqrt()], dim=-1)
        exact = x.dtype == torch.float64
        keys = _rows(key_in, weights["key.weight"], weights["key.bias"], exact)  # [P, B, N, msg]
        values = _rows(value_in, weights["value.weight"], weights["value.bias"], exact)
        queries = weights["queries"]
        shift = None
        if self.action_query:  # [P, B, N]: each patch's score term from the previous action
            u = linear(prev_action.to(keys.dtype), weights["action_query.weight"], None)
            shift = (keys * (u / math.sqrt(msg)).unsqueeze(2)).sum(-1)
        attention = None
        if not exact and not with_attention:  # the M x N weights are never written out
            mixed = F.scaled_dot_product_attention(
                queries.unsqueeze(1).expand(P, B, -1, -1),
                keys,
                values,
                attn_mask=None if shift is None else shift.unsqueeze(2),
                scale=1.0,  # folded into the queries
            )
        else:
            if exact:  # each score one fixed sum over msg, wherever its patch sits
                scores = rowwise_matmul(keys.reshape(P, B * N, msg), queries.transpose(1, 2))
                scores = scores.view(P, B, N, -1).transpose(2, 3)  # [P, B, M, N]
            else:
                scores = torch.matmul(queries.unsqueeze(1), keys.transpose(2, 3))
            if shift is not None:
                scores = scores + shift.unsqueeze(2)
            if exact:
                e = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
                attention = e / order_free_sum(e, dim=-1)
                mixed = order_free_sum(attention.unsqueeze(-1) * values.unsqueeze(2), dim=3)
                mixed = mixed.squeeze(3)
            else:
                attention = torch.softmax(scores, dim=-1)
                mixed = torch.matmul(attention, values)  # [P, B, M, msg]
        codes = F.layer_norm(torch.relu(mixed), (msg,), eps=LAYER_NORM_EPS)
        return codes, attention if with_attention else None

    def importance(self, weights: Weights, codes: torch.Tensor) -> torch.Tensor:
        """Each code's column sum of the head's self-attention: ``[P, B, M]``."""
        exact = codes.dtype == torch.float64
        q = _rows(
            codes, weights["importance_query.weight"], weights["importance_query.bias"], exact
        )
        k = _rows(codes, weights["importance_key.weight"], weights["importance_key.bias"], exact)
        if not exact:
            return torch.softmax(torch.matmul(q, k.transpose(2, 3)), dim=-1).sum(dim=2)
        # float64: equal codes give exactly equal importances (exact ties, lowest index first)
        pairs = q.unsqueeze(3) * k.unsqueeze(2)  # [P, B, M, M, query_dim]
        scores = pairs[..., 0]
        for j in range(1, pairs.shape[-1]):
            scores = scores + pairs[..., j]
        e = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
        return order_free_sum(e / order_free_sum(e, dim=-1), dim=2).squeeze(2)

    def step_prepared(
        self, weights: Weights, obs: torch.Tensor, state: PolicyState, with_attention: bool = False
    ) -> tuple[torch.Tensor, PolicyState] | tuple[torch.Tensor, PolicyState, torch.Tensor]:
        self._check_patches(obs, weights)
        codes, attention = self.codes(weights, obs, state.carry["prev_action"])
        action, new_state = self.head_step(weights, codes, state)
        if with_attention:
            return action, new_state, attention
        return action, new_state

    def head_step(
        self, weights: Weights, codes: torch.Tensor, state: PolicyState
    ) -> tuple[torch.Tensor, PolicyState]:
        """The head on this step's codes ``[P, B, M, msg]``: ``(action [P, B, A], state)``.

        With :meth:`codes` it is one :meth:`step`; a replay of recorded episodes computes the
        codes of many steps at once (they depend on the recorded previous actions only) and
        runs the head step by step.
        """
        carry = state.carry
        P, B = codes.shape[:2]
        new: dict[str, torch.Tensor] = {}
        if self.head == "pool":
            table = weights["table"].unsqueeze(1).expand(P, B, -1, -1)
            features = torch.cat([codes, table], dim=-1)  # [P, B, M, msg + pos]
            keys = _rows(features, weights["pool_key.weight"], weights["pool_key.bias"], False)
            scores = torch.matmul(weights["pool.queries"].unsqueeze(1), keys.transpose(2, 3))
            pooled = torch.matmul(torch.softmax(scores, dim=-1), features)  # [P, B, K, width]
            head_in = pooled.reshape(P, B, -1)
        else:
            alpha = carry["alpha"].unsqueeze(-1)  # [P, B, 1, 1]
            codes = (1 - alpha) * codes + alpha * carry["prev_codes"]
            order = torch.sort(
                self.importance(weights, codes), dim=-1, descending=True, stable=True
            )
            top = order.indices[..., : self.top_k]  # [P, B, k], most important first
            head_in = weights["centers"][top].reshape(P, B, 2 * self.top_k)
            new["prev_codes"] = codes
        if self.head_memory:
            h, c = lstm_cell(
                head_in,
                carry["head_h"],
                carry["head_c"],
                weights["head_lstm.weight"],
                weights["head_lstm.bias"],
            )
        else:
            h = torch.tanh(linear(head_in, weights["head_fc.weight"], weights["head_fc.bias"]))
            c = carry["head_c"]
        action = head_output(linear(h, weights["out.weight"], weights["out.bias"]), self.output)
        if self.output_gain != 1.0:  # tanh outputs only (checked at construction)
            action = torch.clamp(self.output_gain * action, -1.0, 1.0)
        if self.head == "top-k":
            both = torch.cat([h, action], -1)
            mix = torch.tanh(linear(both, weights["mixing0.weight"], weights["mixing0.bias"]))
            new["alpha"] = torch.sigmoid(
                linear(mix, weights["mixing1.weight"], weights["mixing1.bias"])
            )
        new.update(prev_action=action, head_h=h, head_c=c)
        return action, PolicyState(slots={}, carry=new)

    def policy_input(self, obs: np.ndarray) -> torch.Tensor:
        """What :meth:`Policy.act` feeds the model: frames ``[B, F, H, W]`` (levels 0..255, in
        any patch order) cut into patches ``[1, B, N, F*p*p]`` in ``[0, 1]``."""
        return frame_patches(obs, self.frames, self.patch)


def frame_patches(
    obs: np.ndarray, frames: int, patch: int, size: tuple[int, int] | None = None
) -> torch.Tensor:
    """Frames ``[B, F, H, W]`` (levels 0..255) as one member's patches ``[1, B, N, F*p*p]`` in
    ``[0, 1]``, what an image model's ``policy_input`` gives; ``size``: the ``(H, W)`` the
    model needs (None: any that the patches tile)."""
    obs = np.asarray(obs)
    shape = "height, width" if size is None else f"{size[0]}, {size[1]}"
    if obs.ndim != 4 or obs.shape[1] != frames or (size is not None and obs.shape[2:] != size):
        raise ConfigError(
            f"obs must have shape (batch, {frames}, {shape}): stacked grayscale "
            f"frames, oldest first; got {obs.shape} (use obs[None] for one)"
        )
    patches = to_patches(obs, patch).astype(np.float32) / np.float32(255.0)
    return torch.from_numpy(patches)[None]


def _rows(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, exact: bool) -> torch.Tensor:
    """``x[P, B, N, I] W^T + b`` per patch; in float64 every row by the same ordered sum."""
    if exact:
        return rows_linear(x, weight, bias)
    P, B, N, I = x.shape
    return linear(x.reshape(P, B * N, I), weight, bias).view(P, B, N, -1)
