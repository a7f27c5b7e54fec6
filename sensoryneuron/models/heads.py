"""Policy heads and their parameter layouts: LSTM cells and tanh MLPs on a latent."""

from __future__ import annotations

import torch

from sensoryneuron.errors import ConfigError
from sensoryneuron.layers import fuse_lstm_weights, linear

Weights = dict[str, torch.Tensor]
# What an image model's last layer outputs: actions squashed into (-1, 1) for a Box, or one
# logit per choice of a discrete task
HEAD_OUTPUTS = ("tanh", "logits")


def check_output(output: str) -> None:
    """ConfigError unless ``output`` is one of :data:`HEAD_OUTPUTS`."""
    if output not in HEAD_OUTPUTS:
        raise ConfigError(f"output must be one of {', '.join(HEAD_OUTPUTS)}; got {output!r}")


def head_output(pre: torch.Tensor, output: str) -> torch.Tensor:
    """The last layer's pre-activations ``pre`` as ``output`` has them: tanh, or as they are."""
    return torch.tanh(pre) if output == "tanh" else pre


def lstm_entries(prefix: str, input_size: int, hidden: int) -> list[tuple[str, tuple[int, ...]]]:
    return [
        (f"{prefix}.weight_ih", (4 * hidden, input_size)),
        (f"{prefix}.weight_hh", (4 * hidden, hidden)),
        (f"{prefix}.bias_ih", (4 * hidden,)),
        (f"{prefix}.bias_hh", (4 * hidden,)),
    ]


def lstm_head_carry(
    members: int, batch: int, act_dim: int, hidden: int, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """Zero carry of an image model's LSTM head: its ``head_h``, ``head_c`` and the
    ``prev_action`` it reads, each ``[members, batch, ...]``."""
    zeros = lambda *shape: torch.zeros(members, batch, *shape, dtype=dtype)  # noqa: E731
    return {"prev_action": zeros(act_dim), "head_h": zeros(hidden), "head_c": zeros(hidden)}


def fuse_lstm(weights: Weights, prefix: str) -> None:
    """Add ``{prefix}.weight`` and ``{prefix}.bias``, the fused form of the LSTM entries of
    :func:`lstm_entries` that :func:`sensoryneuron.layers.lstm_cell` takes, to ``weights``."""
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    weights[f"{prefix}.weight"], weights[f"{prefix}.bias"] = fuse_lstm_weights(
        *(weights[f"{prefix}.{name}"] for name in names)
    )


def mlp_entries(
    width: int, hidden: tuple[int, ...], act_dim: int
) -> list[tuple[str, tuple[int, ...]]]:
    """tanh hidden layers ``fc0, fc1, ...`` then the tanh output layer ``out``."""
    entries: list[tuple[str, tuple[int, ...]]] = []
    for i, h in enumerate(hidden):
        entries += [(f"fc{i}.weight", (h, width)), (f"fc{i}.bias", (h,))]
        width = h
    return entries + [("out.weight", (act_dim, width)), ("out.bias", (act_dim,))]


def mlp(x: torch.Tensor, weights: Weights, num_hidden: int) -> torch.Tensor:
    """Apply the layers of :func:`mlp_entries`: ``[P, B, width] -> [P, B, act_dim]``."""
    for i in range(num_hidden):
        x = torch.tanh(linear(x, weights[f"fc{i}.weight"], weights[f"fc{i}.bias"]))
    return torch.tanh(linear(x, weights["out.weight"], weights["out.bias"]))
