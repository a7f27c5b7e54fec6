"""Population-batched building blocks.

Every function takes parameters with a leading population axis ``P`` and evaluates all
members in one call with batched matmuls (``bmm``/``baddbmm``), never a loop over members.
In float64 the products run as ordered elementwise sums instead (see ``rowwise_matmul``).
"""

from __future__ import annotations

import math

import torch


def sinusoidal_table(
    num_positions: int, dim: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Fixed Transformer position encodings, shape ``[num_positions, dim]``.

    ``angle(p, j) = p / 10000 ** (2 * (j // 2) / dim)``; sine on even ``j``, cosine on odd.
    """
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(10000.0, 2.0 * torch.div(j, 2, rounding_mode="floor") / dim)
    table = torch.where(j.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.to(dtype)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Batched ``x W^T + b``: ``x[P, K, I]``, ``weight[P, O, I]``, ``bias[P, O]`` -> ``[P, K, O]``."""
    wt = weight.transpose(1, 2)
    if bias is None:
        return torch.bmm(x, wt)
    return torch.baddbmm(bias.unsqueeze(1), x, wt)


def rowwise_matmul(x: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
    """Batched ``x[P, R, K] @ wt[P, K, O] -> [P, R, O]``.

    Float32 uses ``bmm``. In float64 each row's K products are added one after another,
    in the same order for every row: a BLAS kernel may round edge rows differently, and
    the float64 path is the one that must give bit-identical rows wherever they sit (the
    input slots of a permuted observation).
    """
    if x.dtype != torch.float64:
        return torch.bmm(x, wt)
    out = x[..., 0:1] * wt[:, 0:1, :]
    for k in range(1, x.shape[-1]):
        out = out + x[..., k : k + 1] * wt[:, k : k + 1, :]
    return out


def lstm_cell(
    x: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched ``nn.LSTMCell`` step with PyTorch's gate order (i, f, g, o).

    Args:
        x: ``[P, K, I]`` inputs for K cells per member.
        h, c: ``[P, K, H]`` previous state.
        weight: ``[P, 4H, I + H]``, ``weight_ih`` and ``weight_hh`` side by side (see
            :func:`fuse_lstm_weights`), so both products are one batched matmul.
        bias: ``[P, 4H]``, the sum ``bias_ih + bias_hh``.
    """
    xh, wt = torch.cat([x, h], dim=2), weight.transpose(1, 2)
    if x.dtype == torch.float64:  # rows bit-identical wherever they sit (rowwise_matmul)
        gates = rowwise_matmul(xh, wt) + bias.unsqueeze(1)
    else:
        gates = torch.baddbmm(bias.unsqueeze(1), xh, wt)
    hidden = h.shape[-1]
    ifo = torch.sigmoid(gates)
    g = torch.tanh(gates[..., 2 * hidden : 3 * hidden])
    c = ifo[..., hidden : 2 * hidden] * c + ifo[..., :hidden] * g
    h = ifo[..., 3 * hidden :] * torch.tanh(c)
    return h, c


def fuse_lstm_weights(
    weight_ih: torch.Tensor, weight_hh: torch.Tensor, bias_ih: torch.Tensor, bias_hh: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``nn.LSTMCell`` parameters ``[P, ...]`` to the fused ``(weight, bias)`` of :func:`lstm_cell`."""
    return torch.cat([weight_ih, weight_hh], dim=2), bias_ih + bias_hh


def scaled(x: torch.Tensor, dim: int, enabled: bool) -> torch.Tensor:
    """Divide attention scores by ``sqrt(dim)`` when ``enabled``."""
    return x / math.sqrt(dim) if enabled else x
