"""PGPE: policy-gradient parameter exploration with rank shaping (ClipUp or Adam on the centre)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from evolve.strategies.base import AskTellError, Strategy, _check_bool, _check_real, _state_array
from evolve.strategies.population import NOISE_STREAM, PopulationSpec, noise_rows
from sensoryneuron.errors import CheckpointError, ConfigError


def _centered_ranks(fitness: np.ndarray) -> np.ndarray:
    """Map fitness to ranks spread evenly over [-0.5, 0.5]; the best gets +0.5.

    Tied values share their average rank, so a flat fitness gives all zeros.
    """
    _, inverse, counts = np.unique(fitness, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts
    ranks = (first + (counts - 1) / 2.0)[inverse]
    return ranks / (fitness.size - 1) - 0.5


def _check_milestones(name: str, value: Any) -> list[int]:
    """Strictly increasing positive generations (a list or tuple of ints)."""
    ok = isinstance(value, (list, tuple)) and all(
        not isinstance(m, bool) and isinstance(m, (int, np.integer)) and m > 0 for m in value
    )
    if not ok or any(a >= b for a, b in zip(value[:-1], value[1:], strict=True)):
        raise ConfigError(
            f"{name} must be a list of strictly increasing positive generations, got {value!r}"
        )
    return [int(m) for m in value]


class PGPE(Strategy):
    """Policy-gradient parameter exploration (Sehnke et al. 2010) with rank shaping.

    Each parameter has its own Gaussian stdev. With ``antithetic=True`` the population is
    ``[center + eps; center - eps]`` (first half plus, second half minus; ``eps`` has
    ``popsize // 2`` rows). Noise row ``r`` of generation ``g`` is drawn from a counter-based
    generator keyed by ``(seed, g, r)`` (:func:`evolve.strategies.population.noise_rows`), so
    :meth:`compact_population` describes a whole population in a few numbers and two
    vectors, and the state needs no generator. The center gradient comes from each pair's
    fitness difference, the stdev gradient from each pair's mean fitness against the baseline
    (mean fitness). Fitness is centred-rank shaped to [-0.5, 0.5].

    Hyperparameters:
        sigma_init (0.1): initial stdev of every parameter.
        optimizer ("clipup"): "clipup" (Toklu et al. 2020) or "adam" for the center.
        center_lr (0.15 for ClipUp, 0.01 for Adam): center step size.
        center_lr_decay (1.0): the centre step size (and ClipUp's ``max_speed``) is
            multiplied by this factor every generation: generation ``g`` steps with
            ``center_lr * center_lr_decay**g``, down to ``center_lr_floor``.
        center_lr_floor (0.0): the smallest step size the decay reaches.
        center_lr_milestones ([]): generations, strictly increasing, from which the step
            size (and ClipUp's ``max_speed``) is multiplied by ``center_lr_gamma`` once more
            (as torch's ``MultiStepLR``): a step schedule, on top of the decay.
        center_lr_gamma (0.1): the factor applied at each milestone.
        center_weight_decay (0.0): decoupled weight decay on the centre (as AdamW): each
            generation also moves the centre by ``-lr * center_weight_decay * center``,
            ``lr`` the generation's step size, so the parameters stay small unless the
            fitness pays for them.
        max_speed (ClipUp only; 2 * center_lr): cap on the ClipUp velocity norm.
        momentum (ClipUp only; 0.9): ClipUp velocity decay.
        stdev_lr (0.1): stdev step size (plain gradient step; 0 keeps stdev fixed).
        stdev_max_change (0.2): one update changes each stdev by at most this fraction.
        antithetic (True): mirrored sampling; popsize must then be even.

    Adam uses beta1=0.9, beta2=0.999, eps=1e-8.
    """

    name = "pgpe"
    _DEFAULTS: ClassVar[dict[str, Any]] = {
        "sigma_init": 0.1,
        "optimizer": "clipup",
        "center_lr": None,
        "center_lr_decay": 1.0,
        "center_lr_floor": 0.0,
        "center_lr_milestones": (),
        "center_lr_gamma": 0.1,
        "center_weight_decay": 0.0,
        "max_speed": None,
        "momentum": None,
        "stdev_lr": 0.1,
        "stdev_max_change": 0.2,
        "antithetic": True,
    }
    _ADAM_BETAS = (0.9, 0.999)
    _ADAM_EPS = 1e-8

    def _resolve_hyper(self, given: Mapping[str, Any]) -> dict[str, Any]:
        self._reject_unknown(given, self._DEFAULTS)
        h = {**self._DEFAULTS, **given}
        out: dict[str, Any] = {}
        out["sigma_init"] = _check_real("sigma_init", h["sigma_init"], low=0.0, low_open=True)
        if h["optimizer"] not in ("clipup", "adam"):
            raise ConfigError(f"optimizer must be one of 'adam', 'clipup', got {h['optimizer']!r}")
        out["optimizer"] = h["optimizer"]
        clipup = h["optimizer"] == "clipup"
        center_lr = h["center_lr"] if h["center_lr"] is not None else (0.15 if clipup else 0.01)
        out["center_lr"] = _check_real("center_lr", center_lr, low=0.0, low_open=True)
        out["center_lr_decay"] = _check_real(
            "center_lr_decay",
            h["center_lr_decay"],
            low=0.0,
            high=1.0,
            low_open=True,
            high_open=False,
        )
        out["center_lr_floor"] = _check_real(
            "center_lr_floor",
            h["center_lr_floor"],
            low=0.0,
            high=out["center_lr"],
            low_open=False,
            high_open=False,
        )
        out["center_lr_milestones"] = _check_milestones(
            "center_lr_milestones", h["center_lr_milestones"]
        )
        out["center_lr_gamma"] = _check_real(
            "center_lr_gamma", h["center_lr_gamma"], low=0.0, low_open=True
        )
        out["center_weight_decay"] = _check_real(
            "center_weight_decay", h["center_weight_decay"], low=0.0, low_open=False
        )
        if clipup:
            max_speed = h["max_speed"] if h["max_speed"] is not None else 2.0 * out["center_lr"]
            out["max_speed"] = _check_real("max_speed", max_speed, low=0.0, low_open=True)
            momentum = h["momentum"] if h["momentum"] is not None else 0.9
            out["momentum"] = _check_real("momentum", momentum, low=0.0, high=1.0, low_open=False)
        else:
            for key in ("max_speed", "momentum"):
                if h[key] is not None:
                    raise ConfigError(f"{key} applies only to optimizer='clipup'")
            out["max_speed"] = out["momentum"] = None
        out["stdev_lr"] = _check_real("stdev_lr", h["stdev_lr"], low=0.0, low_open=False)
        out["stdev_max_change"] = _check_real(
            "stdev_max_change", h["stdev_max_change"], low=0.0, high=1.0, low_open=True
        )
        out["antithetic"] = _check_bool("antithetic", h["antithetic"])
        if out["antithetic"] and self.popsize % 2:
            raise ConfigError(f"popsize must be even when antithetic=True, got {self.popsize}")
        return out

    def _setup(self, x0: np.ndarray) -> None:
        if self.seed >= 2**128:
            raise ConfigError(
                f"seed must be below 2**128 for pgpe (the noise key), got {self.seed}"
            )
        self._center = x0.copy()
        self._stdev = np.full(self.num_params, self.hyper["sigma_init"])
        self._velocity = np.zeros(self.num_params)  # ClipUp
        self._adam_m = np.zeros(self.num_params)
        self._adam_v = np.zeros(self.num_params)
        self._adam_t = 0
        self._eps: np.ndarray | None = None  # pending noise, [popsize // 2 or popsize, D]

    @property
    def _has_pending(self) -> bool:
        return self._eps is not None

    @property
    def _num_noise(self) -> int:
        return self.popsize // 2 if self.hyper["antithetic"] else self.popsize

    @property
    def center(self) -> np.ndarray:
        return self._center.copy()

    @property
    def stdev(self) -> np.ndarray:
        """The current per-parameter stdev (a copy)."""
        return self._stdev.copy()

    def ask(self) -> np.ndarray:
        self._begin_ask()
        rows = range(self._num_noise)
        eps = noise_rows(self.seed, self._generation, rows, self.num_params) * self._stdev
        self._eps = eps
        if self.hyper["antithetic"]:
            return np.concatenate([self._center + eps, self._center - eps])
        return self._center + eps

    def compact_population(self) -> PopulationSpec | None:
        if self._eps is None:
            raise AskTellError("compact_population() describes a pending population; call ask()")
        return PopulationSpec(
            center=self._center.copy(),
            stdev=self._stdev.copy(),
            seed=self.seed,
            generation=self._generation,
            popsize=self.popsize,
            antithetic=self.hyper["antithetic"],
        )

    def tell(self, fitness: np.ndarray) -> None:
        f = self._begin_tell(fitness)
        assert self._eps is not None
        eps, stdev = self._eps, self._stdev
        shaped = _centered_ranks(f)
        baseline = shaped.mean()
        n = eps.shape[0]
        if self.hyper["antithetic"]:
            plus, minus = shaped[:n], shaped[n:]
            grad_center = ((plus - minus) / 2.0) @ eps / n
            weight = (plus + minus) / 2.0 - baseline
        else:
            grad_center = (shaped - baseline) @ eps / n
            weight = shaped - baseline
        grad_stdev = weight @ ((eps**2 - stdev**2) / stdev) / n

        lr = self.center_lr_at(self._generation)
        step = self._center_step(grad_center, lr)
        if self.hyper["center_weight_decay"] > 0:
            step = step - lr * self.hyper["center_weight_decay"] * self._center
        self._center = self._center + step
        change = self.hyper["stdev_max_change"] * stdev
        self._stdev = np.clip(
            stdev + self.hyper["stdev_lr"] * grad_stdev, stdev - change, stdev + change
        )
        self._eps = None
        self._generation += 1

    def center_lr_at(self, generation: int) -> float:
        """The centre step size of ``generation`` (after the decay and the milestones)."""
        h = self.hyper
        decayed = max(h["center_lr_floor"], h["center_lr"] * h["center_lr_decay"] ** generation)
        passed = sum(1 for m in h["center_lr_milestones"] if generation >= m)
        return decayed * h["center_lr_gamma"] ** passed

    def _center_step(self, grad: np.ndarray, lr: float) -> np.ndarray:
        """The step to add to the center for the (ascent) gradient ``grad``, step size ``lr``."""
        if self.hyper["optimizer"] == "clipup":
            max_speed = self.hyper["max_speed"] * lr / self.hyper["center_lr"]
            norm = np.linalg.norm(grad)
            direction = grad / norm if norm > 0 else np.zeros_like(grad)
            velocity = self.hyper["momentum"] * self._velocity + lr * direction
            speed = np.linalg.norm(velocity)
            if speed > max_speed:
                velocity = velocity * (max_speed / speed)
            self._velocity = velocity
            return velocity
        beta1, beta2 = self._ADAM_BETAS
        self._adam_t += 1
        self._adam_m = beta1 * self._adam_m + (1.0 - beta1) * grad
        self._adam_v = beta2 * self._adam_v + (1.0 - beta2) * grad**2
        m_hat = self._adam_m / (1.0 - beta1**self._adam_t)
        v_hat = self._adam_v / (1.0 - beta2**self._adam_t)
        return lr * m_hat / (np.sqrt(v_hat) + self._ADAM_EPS)

    def state_dict(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = self._meta()
        meta["noise"] = NOISE_STREAM
        meta["adam_t"] = self._adam_t
        arrays = {
            "center": self._center.copy(),
            "stdev": self._stdev.copy(),
            "velocity": self._velocity.copy(),
            "adam_m": self._adam_m.copy(),
            "adam_v": self._adam_v.copy(),
        }
        if self._eps is not None:
            arrays["pending_eps"] = self._eps.copy()
        return meta, arrays

    def load_state_dict(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        hyper, generation, pending, seed = self._check_meta(meta)
        d = (self.num_params,)
        center = _state_array(arrays, "center", d)
        stdev = _state_array(arrays, "stdev", d)
        if not np.all(stdev > 0):
            raise CheckpointError("state array 'stdev' must be positive")
        velocity = _state_array(arrays, "velocity", d)
        adam_m = _state_array(arrays, "adam_m", d)
        adam_v = _state_array(arrays, "adam_v", d)
        adam_t = meta.get("adam_t")
        if type(adam_t) is not int or adam_t < 0:
            raise CheckpointError("state metadata needs a non-negative int 'adam_t'")
        num_noise = self.popsize // 2 if hyper["antithetic"] else self.popsize
        eps = _state_array(arrays, "pending_eps", (num_noise, d[0])) if pending else None
        if meta.get("noise") != NOISE_STREAM:
            raise CheckpointError(
                f"state draws its noise from {meta.get('noise', 'a sequential generator')!r}, "
                f"not {NOISE_STREAM!r}; it cannot resume identically with this version"
            )
        self.hyper, self._generation = hyper, generation
        self.seed = seed
        self._center, self._stdev, self._eps = center, stdev, eps
        self._velocity, self._adam_m, self._adam_v, self._adam_t = velocity, adam_m, adam_v, adam_t
