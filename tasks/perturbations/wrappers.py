"""Gymnasium observation wrappers: shuffle, duplicate and append noise channels.

All randomness comes from ``self.np_random`` (the inner env's generator in Gymnasium 1.x), so
``reset(seed=...)`` fixes the whole episode. The draws go through the helpers in
:mod:`tasks.perturbations`, which :class:`tasks.perturbations.BatchPerturbation` also uses:
the stack ``DuplicateObservation -> ShuffleObservation -> NoiseChannels`` and the batched path
give bit-identical observations.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from tasks.perturbations.draws import (
    ReshuffleEvery,
    check_vector_box,
    draw_noise,
    draw_shuffle,
    validate_int,
    validate_reshuffle_every,
    validate_std,
)
from tasks.perturbations.vector import append_noise, apply_permutation, duplicate_observation


class ShuffleObservation(
    gym.ObservationWrapper[np.ndarray, Any, np.ndarray], gym.utils.RecordConstructorArgs
):
    """Permutes the elements of a 1-D observation: ``obs[j] = raw[permutation[j]]``.

    A permutation is drawn at every reset. With ``reshuffle_every`` a new one is drawn during
    the episode: after every ``t`` steps (an int), or after random intervals drawn uniformly
    from ``[low, high]`` (a pair). The observation returned by the step where the reshuffle
    happens already uses the new permutation. Both reset and step infos carry
    ``info["permutation"]`` (a copy of the current permutation) and ``info["reshuffled"]``
    (True where a new permutation was drawn at this step; always False at reset).

    The observation space keeps the inner shape and dtype; as every slot can receive any
    element, each bound is the loosest inner bound (the space does not change between
    permutations).

    Example:
        >>> import gymnasium as gym
        >>> import numpy as np
        >>> import tasks
        >>> from tasks.cartpole import observe
        >>> env = ShuffleObservation(
        ...     gym.make("SensoryNeuron/CartPoleSwingUp-v0"), reshuffle_every=2
        ... )
        >>> obs, info = env.reset(seed=0)
        >>> raw = observe(env.unwrapped.state)
        >>> bool(np.array_equal(obs, raw[info["permutation"]]))
        True
        >>> [env.step(np.zeros(1, dtype=np.float32))[4]["reshuffled"] for _ in range(4)]
        [False, True, False, True]
    """

    def __init__(self, env: gym.Env, reshuffle_every: ReshuffleEvery = None) -> None:
        """Wraps ``env``.

        Args:
            env: An env with a 1-D Box observation space.
            reshuffle_every: ``None`` (shuffle at reset only), an int ``t >= 1`` or a
                ``(low, high)`` pair with ``1 <= low <= high``.
        """
        gym.utils.RecordConstructorArgs.__init__(self, reshuffle_every=reshuffle_every)
        gym.ObservationWrapper.__init__(self, env)
        box = check_vector_box(env.observation_space, "ShuffleObservation")
        self.reshuffle_every = validate_reshuffle_every(reshuffle_every)
        self.n = box.shape[0]
        self.observation_space = gym.spaces.Box(
            low=np.full(box.shape, np.min(box.low), dtype=box.dtype),
            high=np.full(box.shape, np.max(box.high), dtype=box.dtype),
            dtype=box.dtype,
        )
        self._permutation: np.ndarray | None = None
        self._steps = 0
        self._next_reshuffle: int | None = None

    @property
    def permutation(self) -> np.ndarray | None:
        """A copy of the current permutation (``None`` before the first reset)."""
        return None if self._permutation is None else self._permutation.copy()

    def _info(self, info: dict[str, Any], reshuffled: bool) -> dict[str, Any]:
        info = dict(info)
        info["permutation"] = self._permutation.copy()
        info["reshuffled"] = reshuffled
        return info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Resets the inner env, then draws the permutation (and the first interval)."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._permutation, self._next_reshuffle = draw_shuffle(
            self.np_random, self.n, self.reshuffle_every
        )
        self._steps = 0
        return self.observation(obs), self._info(info, False)

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Steps the inner env and reshuffles where due."""
        if self._permutation is None:
            raise gym.error.ResetNeeded("Call reset() before step().")
        obs, rew, terminated, truncated, info = self.env.step(action)
        self._steps += 1
        reshuffled = self._next_reshuffle == self._steps
        if reshuffled:
            self._permutation, interval = draw_shuffle(self.np_random, self.n, self.reshuffle_every)
            self._next_reshuffle = self._steps + interval
        return self.observation(obs), rew, terminated, truncated, self._info(info, reshuffled)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """Returns ``observation[permutation]``."""
        return apply_permutation(np.asarray(observation), self._permutation)


class NoiseChannels(
    gym.ObservationWrapper[np.ndarray, Any, np.ndarray], gym.utils.RecordConstructorArgs
):
    """Appends ``n`` channels of i.i.d. N(0, std^2) noise after a 1-D float observation.

    Fresh noise is drawn from ``self.np_random`` at reset and at every step. The observation
    space grows from ``N`` to ``N + n`` with unbounded noise channels. ``n`` must be at least
    1: to add no noise, leave the wrapper out.

    Example:
        >>> import gymnasium as gym
        >>> import tasks
        >>> env = NoiseChannels(gym.make("SensoryNeuron/CartPoleSwingUp-v0"), n=5)
        >>> env.reset(seed=0)[0].shape
        (10,)
    """

    def __init__(self, env: gym.Env, n: int, std: float = 0.1) -> None:
        """Wraps ``env``.

        Args:
            env: An env with a 1-D float Box observation space.
            n: Number of noise channels, an int >= 1.
            std: Standard deviation of the noise, finite and > 0.
        """
        gym.utils.RecordConstructorArgs.__init__(self, n=n, std=std)
        gym.ObservationWrapper.__init__(self, env)
        box = check_vector_box(env.observation_space, "NoiseChannels", floating=True)
        self.n = validate_int("n", n, 1)
        self.std = validate_std("std", std)
        self.observation_space = gym.spaces.Box(
            low=np.concatenate([box.low, np.full(self.n, -np.inf, dtype=box.dtype)]),
            high=np.concatenate([box.high, np.full(self.n, np.inf, dtype=box.dtype)]),
            dtype=box.dtype,
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """Returns ``[observation, noise]`` with noise freshly drawn."""
        noise = draw_noise(self.np_random, self.n, self.std)
        return append_noise(np.asarray(observation), noise)


class DuplicateObservation(
    gym.ObservationWrapper[np.ndarray, Any, np.ndarray], gym.utils.RecordConstructorArgs
):
    """Repeats a 1-D observation ``copies`` times (``np.tile``): 5 inputs become 10 with 2.

    Example:
        >>> import gymnasium as gym
        >>> import tasks
        >>> env = DuplicateObservation(gym.make("SensoryNeuron/CartPoleSwingUp-v0"), copies=2)
        >>> env.observation_space.shape
        (10,)
    """

    def __init__(self, env: gym.Env, copies: int = 2) -> None:
        """Wraps ``env``.

        Args:
            env: An env with a 1-D Box observation space.
            copies: Number of copies, an int >= 1.
        """
        gym.utils.RecordConstructorArgs.__init__(self, copies=copies)
        gym.ObservationWrapper.__init__(self, env)
        box = check_vector_box(env.observation_space, "DuplicateObservation")
        self.copies = validate_int("copies", copies, 1)
        self.observation_space = gym.spaces.Box(
            low=np.tile(box.low, self.copies),
            high=np.tile(box.high, self.copies),
            dtype=box.dtype,
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """Returns ``np.tile(observation, copies)``."""
        return duplicate_observation(np.asarray(observation), self.copies)
