"""sensoryneuron: permutation-invariant sensory-neuron policies (Tang & Ha, NeurIPS 2021).

The model package: batched layers and architectures, the flat-parameter boundary, the
explicit policy state, and pickle-free checkpoints.
"""

from __future__ import annotations

from sensoryneuron.actions import ActionMap
from sensoryneuron.checkpoints import (
    REFERENCE_MODELS,
    load_policy,
    load_reference_policy,
    pretrained_names,
    read_policy_file,
    save_policy,
)
from sensoryneuron.errors import CheckpointError, ConfigError, SensoryNeuronError
from sensoryneuron.models import (
    MODELS,
    AttentionNeuronModel,
    ConvModel,
    FeedForwardModel,
    Model,
    VisionAttentionNeuronModel,
    model_from_dict,
)
from sensoryneuron.params import ParamSpec
from sensoryneuron.policy import Policy
from sensoryneuron.state import PolicyState

__all__ = [
    "MODELS",
    "ActionMap",
    "REFERENCE_MODELS",
    "AttentionNeuronModel",
    "CheckpointError",
    "ConfigError",
    "ConvModel",
    "FeedForwardModel",
    "Model",
    "ParamSpec",
    "Policy",
    "PolicyState",
    "SensoryNeuronError",
    "VisionAttentionNeuronModel",
    "load_policy",
    "load_reference_policy",
    "model_from_dict",
    "pretrained_names",
    "read_policy_file",
    "save_policy",
]
__version__ = "0.1.0"
