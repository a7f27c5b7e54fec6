"""The non-invariant baseline for image tasks: a small convolutional net on the whole frame.

It reads the same patches as the vision AttentionNeuron, ``[P, B, N, F*p*p]`` (the layout of
:func:`sensoryneuron.patches.to_patches`, values in ``[0, 1]``), but puts them back on the
image grid by their index: patch ``n`` goes to row ``n // cols``, column ``n % cols``. In
their true order that is the frame stack itself; shuffled, it is a scrambled picture, and
the net, which learned where things are, is lost. This is the paper's point of comparison
(its AttentionAgent: 901 on its own frames, below 0 on new backgrounds).

Layers, each member with its own weights (a grouped convolution runs the population in one
call):

1. ``len(channels)`` convolutions with ReLU: ``frames -> channels[0] -> ...``, kernel and
   stride from ``kernels`` and ``strides``, no padding;
2. the flattened feature map through ``Linear -> ReLU`` to ``features`` values (the "codes"
   of :meth:`codes`, which depend on the frames only);
3. an LSTMCell on ``[features, previous action]`` (on the features alone with
   ``action_input=False``), then ``action = tanh(W_o h + b_o)``; with
   ``output="logits"``, ``W_o h + b_o`` as it is: one logit per choice of a discrete task (the
   env gets the argmax and the policy reads back the one-hot choice it executed, as the
   vision AttentionNeuron's logits do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from sensoryneuron.errors import ConfigError
from sensoryneuron.layers import linear, lstm_cell
from sensoryneuron.models.base import Model, Weights, check_members, check_positive, contiguous
from sensoryneuron.models.heads import (
    check_output,
    fuse_lstm,
    head_output,
    lstm_entries,
    lstm_head_carry,
)
from sensoryneuron.models.vision import frame_patches
from sensoryneuron.params import ParamSpec
from sensoryneuron.patches import check_grid
from sensoryneuron.state import PolicyState


def _tuple_of_positive(name: str, values: object) -> tuple[int, ...]:
    if (
        not isinstance(values, (tuple, list))
        or not values
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values)
    ):
        raise ConfigError(f"{name} must be a non-empty tuple of positive integers; got {values!r}")
    return tuple(values)


@dataclass(frozen=True)
class ConvModel(Model):
    """A CNN policy on the frame stack rebuilt from patches in their index order.

    Attributes:
        act_dim: size of the action: a Box's size, or one score per discrete choice.
        frames: stacked frames per patch, ``F``.
        patch: the side of a patch in pixels.
        height: frame height in pixels.
        width: frame width in pixels.
        channels: output channels of each convolution.
        kernels: kernel side of each convolution.
        strides: stride of each convolution.
        features: width of the linear layer after the convolutions.
        hidden: the head LSTM's hidden size.
        output: ``"tanh"`` (actions in ``[-1, 1]``) or ``"logits"`` (linear: one logit per
            choice of a discrete task).
        action_input: whether the head reads the previous action. A student cloned from a
            teacher whose moves come in runs can fit its labels by repeating its last move
            and then, driving, never stop (the copycat problem of behaviour cloning).
    """

    kind: ClassVar[str] = "vision-cnn"
    act_dim: int = 3
    frames: int = 4
    patch: int = 6
    height: int = 96
    width: int = 96
    channels: tuple[int, ...] = (8, 16, 16)
    kernels: tuple[int, ...] = (8, 4, 3)
    strides: tuple[int, ...] = (4, 2, 2)
    features: int = 32
    hidden: int = 32
    output: str = "tanh"
    action_input: bool = True

    def __post_init__(self) -> None:
        check_positive(
            act_dim=self.act_dim,
            frames=self.frames,
            patch=self.patch,
            height=self.height,
            width=self.width,
            features=self.features,
            hidden=self.hidden,
        )
        for name in ("channels", "kernels", "strides"):
            object.__setattr__(self, name, _tuple_of_positive(name, getattr(self, name)))
        if not len(self.channels) == len(self.kernels) == len(self.strides):
            raise ConfigError(
                "channels, kernels and strides need one entry per convolution; got "
                f"{len(self.channels)}, {len(self.kernels)} and {len(self.strides)}"
            )
        if not isinstance(self.action_input, bool):
            raise ConfigError(f"action_input must be true or false; got {self.action_input!r}")
        check_output(self.output)
        check_grid(self.height, self.width, self.patch)
        if min(self.feature_map) < 1:
            raise ConfigError(
                f"the convolutions leave no pixels of a {self.height}x{self.width} frame"
            )

    @property
    def feature_map(self) -> tuple[int, int]:
        """The last convolution's output size, ``(rows, cols)``."""
        h, w = self.height, self.width
        for k, s in zip(self.kernels, self.strides, strict=True):
            h, w = (h - k) // s + 1, (w - k) // s + 1
        return h, w

    @property
    def patch_size(self) -> int:
        return self.frames * self.patch * self.patch

    @property
    def param_spec(self) -> ParamSpec:
        entries: list[tuple[str, tuple[int, ...]]] = []
        inputs = self.frames
        for i, (c, k) in enumerate(zip(self.channels, self.kernels, strict=True)):
            entries += [(f"conv{i}.weight", (c, inputs, k, k)), (f"conv{i}.bias", (c,))]
            inputs = c
        rows, cols = self.feature_map
        entries += [
            ("fc.weight", (self.features, inputs * rows * cols)),
            ("fc.bias", (self.features,)),
        ]
        head_in = self.features + (self.act_dim if self.action_input else 0)
        entries += lstm_entries("head_lstm", head_in, self.hidden)
        entries += [("out.weight", (self.act_dim, self.hidden)), ("out.bias", (self.act_dim,))]
        return ParamSpec.of(entries)

    def init_state(
        self,
        members: int,
        batch: int,
        num_inputs: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> PolicyState:
        """Zero state: the head's LSTM and the previous action."""
        carry = lstm_head_carry(members, batch, self.act_dim, self.hidden, dtype)
        return PolicyState(slots={}, carry=carry)

    def prepare(self, params: torch.Tensor) -> Weights:
        w = dict(self.unflatten(params))
        fuse_lstm(w, "head_lstm")
        return contiguous(w)

    def _check_patches(self, obs: torch.Tensor, weights: Weights) -> tuple[int, int]:
        rows, cols = check_grid(self.height, self.width, self.patch)
        if obs.ndim != 4 or obs.shape[-1] != self.patch_size or obs.shape[2] != rows * cols:
            raise ConfigError(
                f"obs must have shape (members, batch, {rows * cols}, {self.patch_size}): the "
                f"{rows}x{cols} patches of {self.frames} frames; got {tuple(obs.shape)}"
            )
        check_members(obs, weights["fc.weight"].shape[0])
        return obs.shape[0], obs.shape[1]

    def codes(
        self,
        weights: Weights,
        obs: torch.Tensor,
        prev_action: torch.Tensor | None = None,
        with_attention: bool = True,
    ) -> tuple[torch.Tensor, None]:
        """The convolutional features of patches ``[P, B, N, F*p*p]``: ``[P, B, features]``.

        ``prev_action`` is not read here (the head reads it); the second value is None (no
        attention), as :meth:`VisionAttentionNeuronModel.codes` returns its attention, so
        ``with_attention`` changes nothing.
        """
        P, B = self._check_patches(obs, weights)
        p = self.patch
        rows, cols = self.height // p, self.width // p
        x = obs.to(weights["fc.weight"].dtype).reshape(P, B, rows, cols, self.frames, p, p)
        x = x.permute(1, 0, 4, 2, 5, 3, 6)  # [B, P, F, rows, p, cols, p]
        x = x.reshape(B, P * self.frames, self.height, self.width)
        for i, s in enumerate(self.strides):
            weight = weights[f"conv{i}.weight"]  # [P, C_out, C_in, k, k]
            x = F.conv2d(
                x, weight.reshape(-1, *weight.shape[2:]), weights[f"conv{i}.bias"].reshape(-1),
                stride=s, groups=P,
            )  # fmt: skip
            x = torch.relu(x)
        x = x.reshape(B, P, -1).transpose(0, 1)  # [P, B, C * rows * cols]
        return torch.relu(linear(x, weights["fc.weight"], weights["fc.bias"])), None

    def head_step(
        self, weights: Weights, codes: torch.Tensor, state: PolicyState
    ) -> tuple[torch.Tensor, PolicyState]:
        """The head on this step's features ``[P, B, features]``: ``(action [P, B, A], state)``."""
        carry = state.carry
        head_in = codes
        if self.action_input:
            head_in = torch.cat([codes, carry["prev_action"].to(codes.dtype)], dim=-1)
        h, c = lstm_cell(
            head_in,
            carry["head_h"],
            carry["head_c"],
            weights["head_lstm.weight"],
            weights["head_lstm.bias"],
        )
        action = head_output(linear(h, weights["out.weight"], weights["out.bias"]), self.output)
        return action, PolicyState(slots={}, carry=dict(prev_action=action, head_h=h, head_c=c))

    def step_prepared(
        self, weights: Weights, obs: torch.Tensor, state: PolicyState, with_attention: bool = False
    ) -> tuple[torch.Tensor, PolicyState] | tuple[torch.Tensor, PolicyState, torch.Tensor]:
        if with_attention:
            raise ConfigError("a convolutional policy has no attention to show")
        features, _ = self.codes(weights, obs)
        return self.head_step(weights, features, state)

    def policy_input(self, obs: np.ndarray) -> torch.Tensor:
        """What :meth:`Policy.act` feeds the model: frames ``[B, F, H, W]`` (levels 0..255)
        cut into patches ``[1, B, N, F*p*p]`` in ``[0, 1]``."""
        return frame_patches(obs, self.frames, self.patch, (self.height, self.width))
