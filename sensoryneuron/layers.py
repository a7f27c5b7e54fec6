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


def order_free_sum(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum over ``dim`` (kept as size 1) so that, in float64, the order of the terms is moot.

    In float64 the terms are sorted first, so a sum over input slots does not depend on the
    slots' order: with :func:`rowwise_matmul`, a permutation of the inputs (with the state
    realigned) then gives bit-identical results. Float32, the training precision, sums in
    memory order, which is faster and equal up to round-off.
    """
    if x.dtype == torch.float64:
        x = torch.sort(x, dim=dim).values
    return x.sum(dim, keepdim=True)


def rows_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x[P, B, N, I] W^T + b`` for ``weight[P, O, I]``, ``bias[P, O]``, row by row exact."""
    P, B, N, I = x.shape
    out = rowwise_matmul(x.reshape(P, B * N, I), weight.transpose(1, 2)) + bias.unsqueeze(1)
    return out.view(P, B, N, -1)


def lateral_message(
    h: torch.Tensor, x: torch.Tensor, weights: dict[str, torch.Tensor]
) -> torch.Tensor:
    """What the other sensory neurons tell each one: attention among the input slots.

    Each slot's query meets every slot's key (its own included); the softmax over slots
    weighs their values, ``tanh(W_v [h_j, x_j] + b_v)``. The map is permutation
    equivariant: permuting the slots permutes the messages.

    Args:
        h: ``[P, B, N, d]`` the neurons' hidden states.
        x: ``[P, B, N, K]`` their inputs at this step.
        weights: ``lateral_query.*`` ``[P, L, d]``, ``lateral_key.*`` ``[P, L, d]`` and
            ``lateral_value.*`` ``[P, d, d + K]`` weights and biases.

    Returns:
        ``[P, B, N, d]`` one message per slot.
    """
    q = rows_linear(h, weights["lateral_query.weight"], weights["lateral_query.bias"])
    k = rows_linear(h, weights["lateral_key.weight"], weights["lateral_key.bias"])
    q = q / math.sqrt(q.shape[-1])
    if h.dtype == torch.float64:  # every pair's dot product added in one fixed order
        pairs = q.unsqueeze(3) * k.unsqueeze(2)  # [P, B, N, N, L]
        scores = pairs[..., 0]
        for j in range(1, pairs.shape[-1]):
            scores = scores + pairs[..., j]
    else:
        scores = torch.matmul(q, k.transpose(-1, -2))  # [P, B, N(query), N(key)]
    exp = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
    p = exp / order_free_sum(exp, dim=-1)
    hx = torch.cat([h, x], dim=-1)
    v = torch.tanh(rows_linear(hx, weights["lateral_value.weight"], weights["lateral_value.bias"]))
    return order_free_sum(p.unsqueeze(-1) * v.unsqueeze(2), dim=3).squeeze(3)
