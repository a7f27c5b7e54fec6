"""A single trained policy: one parameter vector of a model, NumPy in and out."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sensoryneuron.actions import ActionMap
from sensoryneuron.errors import ConfigError
from sensoryneuron.models import Model
from sensoryneuron.state import PolicyState


class Policy:
    """One parameter vector of a :class:`~sensoryneuron.models.Model`.

    The recurrent state is an explicit value passed in and returned, never kept inside.
    :meth:`act` returns actions in the environment's space (its :attr:`action` map): what it
    returns goes straight into ``env.step``.

    >>> import numpy as np
    >>> from sensoryneuron import AttentionNeuronModel, Policy
    >>> model = AttentionNeuronModel(act_dim=1)
    >>> policy = Policy(model, np.zeros(model.num_params, dtype=np.float32))
    >>> state = policy.reset(batch_size=1)
    >>> action, state = policy.act(np.ones((1, 5), dtype=np.float32), state)
    >>> action.shape
    (1, 1)

    Attributes:
        model: the architecture.
        params: float32 ``[num_params]`` (read-only).
        task: the task configuration the policy was trained on, if known.
        info: free-form provenance (run, generation, scores).
        action: the map from the model's outputs to the env's actions (default: for a
            model with ``output="logits"`` the argmax, a discrete choice of ``act_dim``;
            else the outputs unchanged, a Box on ``[-1, 1]``).
    """

    def __init__(
        self,
        model: Model,
        params: np.ndarray,
        task: dict[str, Any] | None = None,
        info: dict[str, Any] | None = None,
        action: ActionMap | None = None,
    ) -> None:
        params = np.array(params, dtype=np.float32)
        if params.shape != (model.num_params,):
            raise ConfigError(
                f"params must have shape ({model.num_params},) for this {model.kind} model; "
                f"got {params.shape}"
            )
        if not np.all(np.isfinite(params)):
            raise ConfigError("params contain NaN or infinite values")
        params.flags.writeable = False
        if action is None:  # logits are one per choice of a discrete task; else [-1, 1]
            logits = getattr(model, "output", None) == "logits"
            action = (ActionMap.discrete if logits else ActionMap.unit_box)(model.act_dim)
        if action.output_dim != model.act_dim:
            raise ConfigError(
                f"the action {action.describe()} needs {action.output_dim} outputs; this "
                f"{model.kind} model has act_dim={model.act_dim}"
            )
        self.action = action
        self.model = model
        self.params = params
        self.task = task
        self.info = dict(info or {})
        with torch.no_grad():
            self._weights = model.prepare(torch.from_numpy(params.copy())[None])

    @property
    def num_params(self) -> int:
        return self.model.num_params

    def __repr__(self) -> str:
        return f"Policy({self.model!r}, num_params={self.num_params})"

    def reset(self, batch_size: int = 1, num_inputs: int | None = None) -> PolicyState:
        """The zero state for ``batch_size`` parallel episodes."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer; got {batch_size!r}")
        return self.model.init_state(1, batch_size, num_inputs)

    def act(
        self, obs: np.ndarray, state: PolicyState, return_attention: bool = False
    ) -> tuple[np.ndarray, PolicyState] | tuple[np.ndarray, PolicyState, np.ndarray]:
        """Map ``obs[B, N]`` to env actions and the next state.

        A vision model takes stacked grayscale frames instead, ``obs[B, F, H, W]`` (pixel
        levels 0..255, oldest frame first, patches in any order); see its ``policy_input``.

        Actions are ``[B, A]`` floats for a Box, ``[B]`` ints for a Discrete. With
        ``return_attention`` also returns the attention weights ``[B, M, N]`` (empty ``M``
        for models without attention).
        """
        x = self.model.policy_input(obs)
        with torch.no_grad():
            out = self.model.step_prepared(self._weights, x, state, with_attention=return_attention)
        action = self.action.to_env(out[0][0].numpy())
        state = out[1]
        if self.action.kind == "discrete":  # the policy reads back the action it chose
            executed = torch.from_numpy(self.action.feedback(action))[None]
            state = self.model.with_previous_action(state, executed)
        if return_attention:
            return action, state, out[2][0].numpy()
        return action, state

    def permute_state(self, state: PolicyState, perm: np.ndarray) -> PolicyState:
        """Realign per-slot state after the inputs were permuted.

        If ``obs_new = obs[:, perm]``, then ``act(obs_new, permute_state(state, perm))`` gives
        the same action as ``act(obs, state)``. ``perm`` is ``[N]`` or ``[B, N]``.
        """
        return state.permute(torch.as_tensor(np.asarray(perm), dtype=torch.long))
