"""Policy checkpoints: a float32 ``params`` array plus JSON metadata in one ``.npz``.

Nothing on the load path uses pickle. Published reference models (flat ``params`` vectors
from the paper's authors) load through :func:`load_reference_policy`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sensoryneuron.actions import ActionMap
from sensoryneuron.errors import CheckpointError, ConfigError
from sensoryneuron.files import load_npz, save_npz
from sensoryneuron.models import (
    AttentionNeuronModel,
    Model,
    VisionAttentionNeuronModel,
    model_from_dict,
)
from sensoryneuron.policy import Policy

FORMAT = "sensoryneuron.policy"
VERSION = 1
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
RUN_CHECKPOINTS = ("best.npz", "latest.npz")


def save_policy(path: str | os.PathLike, policy: Policy) -> None:
    """Atomically write ``policy`` to ``path`` (a ``.npz``)."""
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model": policy.model.to_dict(),
        "task": policy.task,
        "info": policy.info,
        "action": policy.action.to_dict(),
    }
    save_npz(path, {"params": policy.params}, meta)


def read_policy_file(path: str | os.PathLike) -> Policy:
    """Load one checkpoint file, validating every field."""
    arrays, meta = load_npz(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a sensoryneuron policy checkpoint")
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {meta.get('version')!r} is not supported (expected "
            f"{VERSION})"
        )
    try:
        model = model_from_dict(meta.get("model"))
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path}: bad model description ({exc})") from None
    params = arrays.get("params")
    if params is None or params.ndim != 1:
        raise CheckpointError(f"{path}: 'params' must be a 1-D array")
    if params.shape[0] != model.num_params:
        raise CheckpointError(
            f"{path}: has {params.shape[0]} parameters but its {model.kind} model needs "
            f"{model.num_params}"
        )
    if params.dtype != np.float32:
        raise CheckpointError(f"{path}: 'params' must be float32; got {params.dtype}")
    if not np.all(np.isfinite(params)):
        raise CheckpointError(f"{path}: 'params' contain NaN or infinite values")
    task, info = meta.get("task"), meta.get("info")
    if task is not None and not isinstance(task, dict):
        raise CheckpointError(f"{path}: 'task' must be a JSON object or null")
    if not isinstance(info, dict):
        raise CheckpointError(f"{path}: 'info' must be a JSON object")
    action = None  # checkpoints written before actions were recorded: outputs unchanged
    if meta.get("action") is not None:
        try:
            action = ActionMap.from_dict(meta["action"])
        except ConfigError as exc:
            raise CheckpointError(f"{path}: bad action map ({exc})") from None
    try:
        return Policy(model, params, task=task, info=info, action=action)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def pretrained_names() -> list[str]:
    """Names of the agents shipped inside the package."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.npz"))


def resolve_checkpoint(source: str | os.PathLike) -> Path:
    """Map a run folder, a ``.npz`` path or a pretrained agent's name to a checkpoint file."""
    path = Path(source)
    if path.is_dir():
        for name in RUN_CHECKPOINTS:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(
            f"{path} is not a run folder: it has none of {', '.join(RUN_CHECKPOINTS)}"
        )
    if path.is_file():
        return path
    if isinstance(source, str) and (PRETRAINED_DIR / f"{source}.npz").is_file():
        return PRETRAINED_DIR / f"{source}.npz"
    names = pretrained_names()
    shipped = ", ".join(names) if names else "none shipped yet"
    raise CheckpointError(
        f"{source}: no such run folder, checkpoint file or pretrained agent "
        f"(pretrained agents: {shipped})"
    )


def load_policy(source: str | os.PathLike) -> Policy:
    """Load a policy from a run folder (its ``best.npz``), a ``.npz`` file, or a shipped name."""
    return read_policy_file(resolve_checkpoint(source))


@dataclass(frozen=True)
class ReferenceModel:
    """A published model: its architecture, and how its flat vector maps to ours."""

    model: Model
    task: dict[str, Any]
    convert: Callable[[np.ndarray], np.ndarray]
    published: str
    action: ActionMap | None = None  # None: outputs unchanged, a Box on [-1, 1]


def _same_order(params: np.ndarray) -> np.ndarray:
    # The authors' order is our layout. cartpole_pi: LSTM ih, hh, b_ih, b_hh; W_q; W_k; head
    # W, b. carracing_pi: W_q, b_q, W_k, b_k, W_v, b_v; the head's W_q', b_q', W_k', b_k';
    # LSTM ih, hh, b_ih, b_hh; output W, b; mixing W0, b0, W1, b1.
    return params


REFERENCE_MODELS: dict[str, ReferenceModel] = {
    "cartpole_pi": ReferenceModel(
        model=AttentionNeuronModel(act_dim=1, num_latents=16, msg_dim=32, pos_dim=8),
        task={"env_id": "SensoryNeuron/CartPoleSwingUpHarder-v0", "shuffle": True},
        convert=_same_order,
        published="516.57 +- 420.37 over 100 episodes, shuffled at reset",
    ),
    "carracing_pi": ReferenceModel(
        model=VisionAttentionNeuronModel(),
        task={"env_id": "CarRacing-v3", "shuffle": True},
        convert=_same_order,
        published="846.60 +- 94.21 over 100 episodes of CarRacing-v0, patches shuffled",
        action=ActionMap.box([-1.0, 0.0, 0.0], [1.0, 1.0, 1.0]),  # steer, gas, brake
    ),
}


def load_reference_policy(path: str | os.PathLike, name: str = "cartpole_pi") -> Policy:
    """Load one of the authors' published models (a flat float32 ``params`` vector).

    Args:
        path: the published ``.npz`` (e.g. ``../shared/reference/cartpole_pi.npz``).
        name: which published model it is; one of :data:`REFERENCE_MODELS`.
    """
    if name not in REFERENCE_MODELS:
        raise ConfigError(
            f"unknown reference model {name!r}; allowed: {', '.join(sorted(REFERENCE_MODELS))}"
        )
    ref = REFERENCE_MODELS[name]
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "params" not in npz.files:
                raise CheckpointError(f"{path}: no 'params' array")
            params = npz["params"]
    except CheckpointError:
        raise
    except Exception as exc:  # zip, header or dtype errors from a damaged file
        raise CheckpointError(f"{path}: not a readable .npz file ({exc})") from None
    if params.ndim != 1 or params.shape[0] != ref.model.num_params:
        raise CheckpointError(
            f"{path}: {name} has {ref.model.num_params} parameters; the file holds {params.size}"
        )
    info = {"reference": name, "published": ref.published, "source": str(path)}
    return Policy(
        ref.model,
        ref.convert(params.astype(np.float32)),
        task=ref.task,
        info=info,
        action=ref.action,
    )
