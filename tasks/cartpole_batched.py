"""Vectorised tasks for training: a whole population times a batch of episodes in one array.

The layout is ``[P, B]`` = (members, episodes). Members share the episode seeds (common random
numbers): one initial state is drawn per episode and replicated over the members.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from sensoryneuron.errors import ConfigError
from tasks.batched import episode_rngs
from tasks.cartpole import (
    ACT_DIM,
    MAX_STEPS,
    OBS_DIM,
    CartPoleRenderer,
    check_top_fraction,
    observe,
    out_of_bounds,
    reward,
    sample_initial_state,
    step_physics,
)
from tasks.perturbations.draws import validate_int


class VecCartPoleSwingUp:
    """Cart-pole swing-up for ``[members, episodes]`` at once (a :class:`~tasks.batched.BatchedTask`).

    It runs the same pure functions as :class:`tasks.cartpole.CartPoleSwingUpEnv`. With the
    Generator ``gymnasium.utils.seeding.np_random(s)[0]``, episode ``b`` starts exactly where
    ``gym.make(...).reset(seed=s)`` does.

    Attributes:
        state: float64 ``[members, episodes, 4]`` (``None`` before the first reset).
        harder: Whether start states come from the wide uniform distribution.
        top_fraction: The chance that an episode starts near balanced instead.

    Example:
        >>> import numpy as np
        >>> from gymnasium.utils import seeding
        >>> task = VecCartPoleSwingUp()
        >>> obs = task.reset([seeding.np_random(s)[0] for s in range(4)], members=3)
        >>> obs.shape
        (3, 4, 5)
        >>> obs, rew, term = task.step(np.zeros((3, 4, 1), dtype=np.float32))
        >>> rew.shape, term.dtype
        ((3, 4), dtype('bool'))
    """

    obs_dim = OBS_DIM
    act_dim = ACT_DIM
    max_steps = MAX_STEPS

    def __init__(self, harder: bool = False, top_fraction: float = 0.0) -> None:
        """Creates the simulator; ``harder`` selects the CartPoleSwingUpHarder start states,
        ``top_fraction`` the chance of a start near balanced (see
        :func:`tasks.cartpole.sample_initial_state`)."""
        if not isinstance(harder, (bool, np.bool_)):
            raise ConfigError(f"harder must be a bool, got {harder!r}")
        self.harder = bool(harder)
        self.top_fraction = check_top_fraction(top_fraction)
        self.state: np.ndarray | None = None
        self._renderer: CartPoleRenderer | None = None

    def reset(self, rngs: Sequence[np.random.Generator], members: int) -> np.ndarray:
        """Draws one start state per Generator and replicates it over ``members``.

        Args:
            rngs: One Generator per episode (B = ``len(rngs)``).
            members: Population size P.

        Returns:
            float32 observations ``[members, B, 5]``.
        """
        members = validate_int("members", members, 1)
        if len(rngs) < 1:
            raise ConfigError("rngs must hold at least one Generator (one per episode), got 0")
        starts = np.stack(
            [sample_initial_state(rng, self.harder, self.top_fraction) for rng in rngs]
        )
        self.state = np.repeat(starts[None], members, axis=0)
        return observe(self.state)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advances every environment by one step.

        Args:
            action: ``[members, episodes, 1]`` actions in [-1, 1] (clipped).

        Returns:
            ``(obs, reward, terminated)``: float32 ``[P, B, 5]``, float64 ``[P, B]`` and bool
            ``[P, B]`` (``|x| > 2.4``), all computed on the new state.
        """
        if self.state is None:
            raise gym.error.ResetNeeded("Call reset() before step().")
        action = np.asarray(action)
        expected = self.state.shape[:2] + (ACT_DIM,)
        if action.shape != expected:
            raise ConfigError(f"action must have shape {expected}, got {action.shape}")
        self.state = step_physics(self.state, action[..., 0])
        return observe(self.state), reward(self.state), out_of_bounds(self.state)

    def start(
        self, seeds: Sequence[int], members: int
    ) -> tuple[np.ndarray, list[np.random.Generator]]:
        """:meth:`reset` from ``seeds``; the Generators go on to the perturbations."""
        rngs = episode_rngs(seeds)
        return self.reset(rngs, members), rngs

    def close(self) -> None:
        """Nothing to release: the simulator is plain arrays."""

    def keep_members(self, index: np.ndarray) -> None:
        """Keeps only the members in ``index`` (the rollout engine drops finished ones)."""
        if self.state is None:
            raise gym.error.ResetNeeded("Call reset() before keep_members().")
        self.state = self.state[index]

    def render(self, member: int, episode: int) -> np.ndarray:
        """Draws environment ``(member, episode)`` as a ``(384, 640, 3)`` uint8 frame."""
        if self.state is None:
            raise gym.error.ResetNeeded("Call reset() before render().")
        if self._renderer is None:
            self._renderer = CartPoleRenderer()
        return self._renderer(self.state[member, episode])
