"""Batched tasks over pools of real environments: Gymnasium envs, or envpool's C++ envs."""

from __future__ import annotations

from tasks.pools.envpool_pool import EnvpoolPool
from tasks.pools.gym_pool import GymPool

__all__ = ["EnvpoolPool", "GymPool"]
