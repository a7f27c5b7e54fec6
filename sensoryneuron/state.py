"""The explicit recurrent state of a batched policy."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sensoryneuron.errors import ConfigError


@dataclass(frozen=True)
class PolicyState:
    """Everything a policy carries from one step to the next, as plain tensors.

    Attributes:
        slots: per-input-slot tensors, shape ``[P, B, N, ...]`` (the sensory neurons' LSTM
            state). Empty before the first step: the layer starts every slot at zero, so a
            fresh state fits any number of inputs.
        carry: everything else, shape ``[P, B, ...]`` (previous action, head LSTM state).
    """

    slots: dict[str, torch.Tensor] = field(default_factory=dict)
    carry: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_slots(self) -> int | None:
        """Number of input slots, or None while the state is fresh."""
        for t in self.slots.values():
            return t.shape[2]
        return None

    def to(self, device: torch.device | str) -> PolicyState:
        """The same state on ``device``."""
        return PolicyState(
            slots={k: v.to(device) for k, v in self.slots.items()},
            carry={k: v.to(device) for k, v in self.carry.items()},
        )

    def select_members(self, index: torch.Tensor) -> PolicyState:
        """The state of the members in ``index`` only (leading axis)."""
        return PolicyState(
            slots={k: v.index_select(0, index) for k, v in self.slots.items()},
            carry={k: v.index_select(0, index) for k, v in self.carry.items()},
        )

    def permute(self, perm: torch.Tensor) -> PolicyState:
        """Realign the per-slot state: ``new_slots[..., j, :] = old_slots[..., perm[j], :]``.

        If ``obs_new = obs[..., perm]``, stepping on ``obs_new`` from the permuted state gives
        the same action as stepping on ``obs`` from this state.

        Args:
            perm: ``[N]`` (one permutation for every episode) or ``[B, N]`` (one per episode).
        """
        n = self.num_slots
        if n is None:
            return self
        perm = torch.as_tensor(perm, dtype=torch.long)
        if perm.shape[-1] != n or perm.ndim not in (1, 2):
            raise ConfigError(
                f"perm must have shape ({n},) or (batch, {n}) to match the state's {n} slots; "
                f"got {tuple(perm.shape)}"
            )
        if not torch.equal(torch.sort(perm, dim=-1).values, torch.arange(n).expand_as(perm)):
            raise ConfigError(f"perm must be a permutation of 0..{n - 1}")
        slots = {}
        for key, t in self.slots.items():
            perm = perm.to(t.device)
            if perm.ndim == 1:
                slots[key] = t.index_select(2, perm)
            else:
                if perm.shape[0] != t.shape[1]:
                    raise ConfigError(
                        f"perm has {perm.shape[0]} rows but the state holds {t.shape[1]} episodes"
                    )
                index = perm.view(1, perm.shape[0], n, *([1] * (t.ndim - 3))).expand_as(t)
                slots[key] = torch.gather(t, 2, index)
        return PolicyState(slots=slots, carry=dict(self.carry))
