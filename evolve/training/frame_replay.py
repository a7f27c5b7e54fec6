"""Distillation's replay of recorded image episodes: frame stacks rebuilt, windows of steps.

An image task's episodes are recorded one uint8 frame per step (``Dataset.obs[T, E, H, W]``,
the newest frame of each step's stack). A step's stack is rebuilt from the frames before
it, as the frame preparation built it: the last ``F`` frames, oldest first, with copies of
the first frame before the episode began.

The vision student's codes at a step depend only on that stack and on the action executed
the step before (recorded), so :func:`window_loss` computes the codes of every step of a
batch at once and runs only the head step by step. Each episode contributes one window of
``burn_in + window`` steps at a random place: the head runs through the ``burn_in`` steps
without gradient (to warm its LSTM up), and the loss is the action error over the ``window``
steps after it (:func:`action_error`: squared error for a Box, cross-entropy of the student's
logits against the teacher's choice for a discrete task).

The recorded patches are replayed in grid order. The vision AttentionNeuron is invariant to
their order (exactly in float64, to round-off in float32), so the order the student saw
when the episode was played changes nothing.
"""

from __future__ import annotations

import numpy as np
import torch

from evolve.training.dataset import Dataset
from sensoryneuron.errors import ConfigError
from sensoryneuron.models import Model
from sensoryneuron.patches import to_patches


def stacks_at(frames: np.ndarray, steps: np.ndarray, depth: int) -> np.ndarray:
    """The stacks ``[L, depth, H, W]`` of one episode's ``frames[T, H, W]`` at ``steps[L]``."""
    index = np.clip(steps[:, None] - (depth - 1) + np.arange(depth), 0, None)
    return frames[index]


def draw_windows(
    lengths: np.ndarray, rng: np.random.Generator, window: int, burn_in: int, steps: int
) -> np.ndarray:
    """The first step ``[E]`` of each episode's window of ``burn_in + window`` steps (fewer
    where episodes hold fewer ``steps``), drawn uniformly over its ``lengths`` live steps."""
    span = min(burn_in + window, steps)
    return np.array([rng.integers(0, max(int(n) - span, 0) + 1) for n in lengths])


def window_rows(first: np.ndarray, span: int, depth: int) -> np.ndarray:
    """The steps ``[E, depth - 1 + span]`` that windows from ``first`` read: each window's
    steps and the ``depth - 1`` before them (its first stack, and the action executed before
    it). Steps before an episode's start are negative: read them as step 0 (the copies of the
    first frame) with no action before."""
    return first[:, None] - (depth - 1) + np.arange(depth - 1 + span)[None, :]


def window_loss(
    model: Model,
    params: torch.Tensor,
    data: Dataset,
    rng: np.random.Generator,
    window: int,
    burn_in: int,
    action_weights: torch.Tensor | None = None,
    discrete: bool = False,
) -> torch.Tensor:
    """Mean action error (:func:`action_error`) over one random window of every episode of
    ``data``.

    Args:
        model: a vision model (``codes`` and ``head_step``).
        params: its flat parameters (with gradient).
        data: recorded image episodes (``obs`` uint8 frames ``[T, E, H, W]``).
        rng: draws each window's place.
        window: steps per episode that the loss covers.
        burn_in: steps before them that the head runs through without gradient.
        action_weights: ``[A]``, each output's weight in the squared error, or each choice's
            in the cross-entropy (None: 1 each).
        discrete: the labels are choices (one-hot): cross-entropy of the outputs as logits.

    The same as reading only the windows' rows (:func:`draw_windows`, :func:`window_rows`,
    ``EpisodeStore.gather(index, rows)``) and :func:`rows_loss`, which distillation does.
    """
    steps_total = data.mask.shape[0]
    first = draw_windows(data.mask.sum(axis=0), rng, window, burn_in, steps_total)
    span = min(burn_in + window, steps_total)
    rows = window_rows(first, span, model.frames)  # type: ignore[attr-defined]
    clipped = np.clip(rows, 0, None).T  # [R, E]
    index = np.arange(data.episodes)[None, :]
    read = Dataset(
        data.obs[clipped, index],
        data.labels[clipped, index],
        data.mask[clipped, index],
        None,
        None if data.executed is None else data.executed[clipped, index],
    )
    return rows_loss(model, params, read, rows, burn_in, action_weights, discrete)


def rows_loss(
    model: Model,
    params: torch.Tensor,
    data: Dataset,
    rows: np.ndarray,
    burn_in: int,
    action_weights: torch.Tensor | None = None,
    discrete: bool = False,
) -> torch.Tensor:
    """:func:`window_loss` on windows already read: ``data`` holds, time-major, the steps
    ``rows`` ``[E, depth - 1 + span]`` of :func:`window_rows` (negative ones read as step 0)."""
    if not hasattr(model, "head_step") or data.executed is None:
        raise ConfigError("the window loss replays a vision model on recorded frames and actions")
    depth = model.frames  # type: ignore[attr-defined]
    episodes = data.episodes
    span = rows.shape[1] - (depth - 1)
    frames = data.obs  # [R, E, H, W]
    offsets = np.arange(span)[:, None] + np.arange(depth)[None, :]  # [L, depth]: rows of a stack
    stacks = np.stack([frames[offsets, e] for e in range(episodes)], 1)  # [L, E, depth, H, W]
    patches = to_patches(stacks, model.patch).astype(np.float32) / np.float32(255.0)  # type: ignore[attr-defined]
    # the action executed before each window step: the row before it, none before the start
    before = data.executed[depth - 2 : depth - 2 + span]  # [L, E, A]
    started = (rows[:, depth - 2 : depth - 2 + span] >= 0).T[..., None]  # [L, E, 1]
    prev = np.where(started, before, 0.0).astype(np.float32)
    labels = data.labels[depth - 1 :]  # [L, E, A]: the window's own steps
    mask = data.mask[depth - 1 :]
    weights = model.prepare(params[None])
    device = params.device
    x = torch.from_numpy(patches.reshape(1, span * episodes, *patches.shape[2:])).to(device)
    a = torch.from_numpy(np.ascontiguousarray(prev.reshape(1, span * episodes, -1))).to(device)
    warm = min(burn_in, span - 1)
    cut = warm * episodes
    codes_of = model.codes  # type: ignore[attr-defined]
    with torch.no_grad():
        early = codes_of(weights, x[:, :cut], a[:, :cut], with_attention=False)[0] if cut else None
    late = codes_of(weights, x[:, cut:], a[:, cut:], with_attention=False)[0]
    codes = late if early is None else torch.cat([early, late], dim=1)
    codes = codes.view(span, episodes, *codes.shape[2:])
    target = torch.from_numpy(np.ascontiguousarray(labels)).to(device)  # [L, E, A]
    live = torch.from_numpy(np.ascontiguousarray(mask)).to(device, target.dtype)
    state = model.init_state(1, episodes).to(device)
    total = target.new_zeros(())
    for t in range(span):
        if t < warm:
            with torch.no_grad():
                _, state = model.head_step(weights, codes[t][None], state)  # type: ignore[attr-defined]
            continue
        action, state = model.head_step(weights, codes[t][None], state)  # type: ignore[attr-defined]
        error = action_error(action[0], target[t], action_weights, discrete)
        total = total + (error * live[t]).sum()
    return total / live[warm:].sum().clamp(min=1.0)


def weighted_error(
    output: torch.Tensor, label: torch.Tensor, weights: torch.Tensor | None
) -> torch.Tensor:
    """The squared error ``[...]`` of outputs ``[..., A]``, summed over the outputs with
    ``weights`` ``[A]`` (None: 1 each)."""
    error = (output - label) ** 2
    return (error if weights is None else error * weights).sum(-1)


def action_error(
    output: torch.Tensor, label: torch.Tensor, weights: torch.Tensor | None, discrete: bool
) -> torch.Tensor:
    """The error ``[...]`` of the student's outputs ``[..., A]`` against the teacher's labels.

    A Box (``discrete`` False): :func:`weighted_error`. A discrete task: the cross-entropy of
    the outputs as logits against the teacher's choice, the label's argmax (a controller's
    label is the one-hot of its choice; a policy teacher's, its scores), times ``weights``
    of that choice (``[A]``, or one for all; None: 1).
    """
    if not discrete:
        return weighted_error(output, label, weights)
    choice = label.argmax(-1, keepdim=True)
    error = -torch.log_softmax(output, dim=-1).gather(-1, choice).squeeze(-1)
    if weights is None:
        return error
    return error * weights.expand(output.shape[-1])[choice.squeeze(-1)]
