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
from typing import Any

from sensoryneuron.errors import ConfigError
from sensoryneuron.models.base import Model, Weights
from sensoryneuron.models.cnn import ConvModel
from sensoryneuron.models.fnn import FeedForwardModel
from sensoryneuron.models.vector import ATTENTION_KINDS, AttentionNeuronModel
from sensoryneuron.models.vision import VISION_HEADS, VisionAttentionNeuronModel

MODELS: dict[str, type[Model]] = {
    AttentionNeuronModel.kind: AttentionNeuronModel,
    ConvModel.kind: ConvModel,
    FeedForwardModel.kind: FeedForwardModel,
    VisionAttentionNeuronModel.kind: VisionAttentionNeuronModel,
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


__all__ = [
    "ATTENTION_KINDS",
    "MODELS",
    "AttentionNeuronModel",
    "ConvModel",
    "FeedForwardModel",
    "Model",
    "VISION_HEADS",
    "VisionAttentionNeuronModel",
    "Weights",
    "model_from_dict",
]
