"""Policy heads and their parameter layouts: LSTM cells and tanh MLPs on a latent."""

from __future__ import annotations

import torch

from sensoryneuron.layers import linear

Weights = dict[str, torch.Tensor]


def lstm_entries(prefix: str, input_size: int, hidden: int) -> list[tuple[str, tuple[int, ...]]]:
    return [
        (f"{prefix}.weight_ih", (4 * hidden, input_size)),
        (f"{prefix}.weight_hh", (4 * hidden, hidden)),
        (f"{prefix}.bias_ih", (4 * hidden,)),
        (f"{prefix}.bias_hh", (4 * hidden,)),
    ]


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
