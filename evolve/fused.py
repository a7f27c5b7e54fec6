"""The ``fused`` engine: whole cart-pole episodes of the paper's AttentionNeuron, compiled.

:func:`evolve.rollout.episodes` pays Python and kernel-dispatch costs at every step, whatever
the batch: a step of 256 members takes a few hundred microseconds, most of it overhead. For
the one hot path that needs the speed, evolution strategies on cart-pole swing-up, this engine
runs the same episodes as one numba function: policy, perturbation and physics for every
(member, episode) pair, the pairs spread over the worker's threads. It computes what the loop
computes (:mod:`tasks.cartpole`'s physics, :class:`~sensoryneuron.AttentionNeuronModel`'s
step, the perturbation's own draws) and agrees with it to round-off: tests compare them.

What it runs (:func:`unsupported` says why not, and :func:`evolve.rollout.rollout` then runs
the loop on the simulator, so ``fused`` is always a valid engine for these tasks):

- tasks: ``CartPoleSwingUp``, ``CartPoleSwingUpHarder`` (``harder`` start states) and its
  training variant with starts near balanced (``CartPoleSwingUpHarderTopStarts``), and
  ``CartPoleBalance`` (every start near balanced);
- models: :class:`~sensoryneuron.AttentionNeuronModel` with tanh FC layers, without
  ``head_lstm`` or ``lateral_dim`` (the paper's model, with or without query/key biases,
  ``input_change``, softmax attention);
- perturbations: any vector perturbation (duplicates, shuffles, reshuffles, noise channels);
  their draws are made beforehand from the episodes' own Generators, exactly as the loop
  draws them; not ``realign``, and no observers (those runs use the loop).

Float32 runs compute ``tanh`` and the LSTM's sigmoids with a rational approximation (at most
4e-7 from the true value, as XLA does on the CPU); float64 runs use ``math.tanh`` and
``math.exp``. Needs numba (``pip install -e '.[fast]'``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from sensoryneuron.actions import ActionMap
from sensoryneuron.errors import ConfigError
from sensoryneuron.models import AttentionNeuronModel, Model
from tasks import cartpole
from tasks.perturbations import Perturbations
from tasks.spec import (
    CARTPOLE_BALANCE_ID,
    CARTPOLE_SWINGUP_HARDER_ID,
    CARTPOLE_SWINGUP_HARDER_TOP_ID,
    CARTPOLE_SWINGUP_ID,
    get_task,
)

# their simulator, compiled
TASKS = (
    CARTPOLE_SWINGUP_ID,
    CARTPOLE_SWINGUP_HARDER_ID,
    CARTPOLE_SWINGUP_HARDER_TOP_ID,
    CARTPOLE_BALANCE_ID,
)
# the kernel's weight arguments, in order (see weights_of)
WEIGHTS = (
    "lstm",
    "lstm_bias",
    "query_key",
    "query_key_bias",
    "latent_gain",
    "dense",
    "dense_bias",
    "dense_sizes",
)


def unsupported(
    model: Model, env_id: str, realign: bool = False, action: ActionMap | None = None
) -> str | None:
    """Why the kernel cannot run these episodes (None: it can); see the module doc.

    ``action``: the policy's action map, if not the task's own.
    """
    if env_id not in TASKS:
        return f"the fused kernel runs cart-pole swing-up only, not {env_id}"
    if not isinstance(model, AttentionNeuronModel):
        return f"the fused kernel runs the AttentionNeuron model only, not the {model.kind} model"
    if model.head_lstm or model.lateral_dim:
        return (
            "the fused kernel runs the paper's AttentionNeuron and its options attention, "
            "input_change and attention biases; no head LSTM, no lateral_dim"
        )
    if model.act_dim != 1 or (action is not None and not action.is_identity):
        return "the fused kernel sends the policy's one output to the cart unchanged"
    if realign:
        return "the fused kernel does not realign the state at reshuffles"
    return None


def schedule(
    perturbations: Perturbations, seeds: list[int] | tuple[int, ...], env_id: str, limit: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The episodes' start states and every perturbation draw, as the loop makes them.

    The task's simulator starts the episodes (one member), each from its seed's Generator;
    the same Generators then draw the permutations, reshuffle intervals and noise, in the
    loop's order (:class:`~tasks.perturbations.BatchPerturbation` on that one-member batch):
    draws never depend on the observations.

    Returns:
        ``starts`` float64 ``[B, 4]``; ``sources`` int64 ``[S, B, N]``, the raw input each
        shuffled slot reads at step ``t`` (row ``min(t, S - 1)``); ``noise`` float32
        ``[S, B, K]``, the noise channels' values (``K`` may be 0).
    """
    task = get_task(env_id).make_batched("simulator")
    raw, rngs = task.start(seeds, members=1)
    starts = task.state[0]
    perturb = perturbations.batch(cartpole.OBS_DIM)
    steps = 1 if perturb.reshuffle_every is None and not perturb.noise_channels else limit
    sources, noise = [], []
    for t in range(steps):
        obs = perturb.reset(raw, rngs) if t == 0 else perturb.step(raw, rngs)
        sources.append(perturb.permutations % cartpole.OBS_DIM)
        noise.append(obs[0, :, perturb.n_shuffled :])
    return starts, np.stack(sources), np.stack(noise).astype(np.float32)


def weights_of(model: AttentionNeuronModel, params: torch.Tensor) -> dict[str, np.ndarray]:
    """The kernel's weights: the model's prepared weights, transposed so that every inner loop
    runs over contiguous memory."""
    w = model.prepare(params)
    out = {
        "lstm": w["neuron.weight"].transpose(1, 2),  # [P, I + H, 4H]
        "lstm_bias": w["neuron.bias"],  # [P, 4H]
        "query_key": w["query_key"].transpose(1, 2),  # [P, H, M]
    }
    bias = w.get("query_key_bias")
    out["query_key_bias"] = (
        bias[..., 0] if bias is not None else params.new_zeros(params.shape[0], model.num_latents)
    )
    # softmax attention scales each latent by a learned gain; the kernel reads no gain (an
    # empty array) for tanh attention
    gain = w.get("latent.gain")
    out["latent_gain"] = gain if gain is not None else params.new_zeros(params.shape[0], 0)
    names = [f"fc{i}" for i in range(len(model.hidden))] + ["out"]
    width = max([model.num_latents, *model.hidden, model.act_dim])
    layers = len(names)
    # Every layer padded into one [P, L, width, width] block (transposed: input rows).
    dense = params.new_zeros(params.shape[0], layers, width, width)
    dense_bias = params.new_zeros(params.shape[0], layers, width)
    sizes = np.zeros((layers, 2), dtype=np.int64)
    for i, name in enumerate(names):
        weight = w[f"{name}.weight"]  # [P, O, I]
        o, n = weight.shape[1:]
        dense[:, i, :n, :o] = weight.transpose(1, 2)
        dense_bias[:, i, :o] = w[f"{name}.bias"]
        sizes[i] = (n, o)
    out["dense"], out["dense_bias"] = dense, dense_bias
    arrays = {k: np.ascontiguousarray(v.detach().cpu().numpy()) for k, v in out.items()}
    arrays["dense_sizes"] = sizes
    return arrays


def rollout(
    model: AttentionNeuronModel,
    params: torch.Tensor,
    env_id: str,
    perturbations: Perturbations,
    seeds: list[int] | tuple[int, ...],
    max_steps: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Returns and lengths ``[P, B]`` of every member of ``params[P, D]`` on every episode.

    Raises:
        ConfigError: numba is missing, or :func:`unsupported` gives a reason.
    """
    reason = unsupported(model, env_id)
    if reason is not None:
        raise ConfigError(reason)
    get_task(env_id).check_engine("fused")  # numba installed
    if params.dtype not in (torch.float32, torch.float64):
        raise ConfigError(f"params must be float32 or float64; got {params.dtype}")
    limit = cartpole.MAX_STEPS if max_steps is None else min(max_steps, cartpole.MAX_STEPS)
    starts, sources, noise = schedule(perturbations, seeds, env_id, limit)
    w = weights_of(model, params)
    members, episodes = params.shape[0], len(seeds)
    returns = np.zeros((members, episodes))
    lengths = np.zeros((members, episodes), dtype=np.int64)
    numba = _numba()
    torch_threads = torch.get_num_threads()
    threads = max(1, min(torch_threads, numba.config.NUMBA_NUM_THREADS))
    kernel = _kernel(fast=params.dtype == torch.float32)
    weights = tuple(w[name] for name in WEIGHTS)
    draws = (starts, sources, noise.astype(w["lstm"].dtype))
    # input_change: each slot's change since the last step, times this (0.0: off)
    change = float(model.change_scale) if model.input_change else 0.0
    if not kernel.signatures:
        # compile, and start numba's thread pool, on episodes of no steps: the pool starts
        # with every core, and under OpenMP (shared with torch) torch's count follows it
        kernel(*weights, *draws, change, 0, returns, lengths)
        torch.set_num_threads(torch_threads)
    numba.set_num_threads(threads)
    kernel(*weights, *draws, change, limit, returns, lengths)
    return returns, lengths


def _numba() -> Any:
    import numba

    return numba


_KERNELS: dict[bool, Any] = {}


def _kernel(fast: bool) -> Any:
    """The kernel, compiled at its first call in a process. ``fast`` (float32 runs): with
    LLVM's fast-math flags (reassociation, fused multiply-adds: the loops vectorise, 1.4x
    here); float64 runs keep IEEE order, and agree with the loop to about 1e-14. Always the
    parallel build: on one thread it ran 2.2x faster here than ``parallel=False``."""
    if fast not in _KERNELS:
        _KERNELS[fast] = _numba().njit(parallel=True, nogil=True, fastmath=fast)(_build())
    return _KERNELS[fast]


def _build() -> Any:  # noqa: C901  (one kernel, its helpers inlined)
    """The kernel as a Python function for ``numba.njit``, with its tanh and sigmoid."""
    numba = _numba()
    from numba.extending import overload

    gravity, m_cart, m_pole = cartpole.GRAVITY, cartpole.MASS_CART, cartpole.MASS_POLE
    length, dt, friction = cartpole.POLE_LENGTH, cartpole.DT, cartpole.FRICTION
    force_mag, x_limit = cartpole.FORCE_MAG, cartpole.X_THRESHOLD
    total = m_cart + m_pole
    # A rational approximation of tanh on [-7.9053, 7.9053] (beyond it tanh rounds to +-1 in
    # float32): odd polynomial of degree 13 over even polynomial of degree 6.
    num = (
        -2.76076847742355e-16,
        2.00018790482477e-13,
        -8.60467152213735e-11,
        5.12229709037114e-08,
        1.48572235717979e-05,
        6.37261928875436e-04,
        4.89352455891786e-03,
    )
    den = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)
    clamp = 7.90531110763549805

    def act_tanh(x):  # pragma: no cover - replaced by the overload below
        return math.tanh(x)

    @overload(act_tanh, inline="always")
    def _act_tanh(x):
        if isinstance(x, numba.types.Float) and x.bitwidth == 32:
            n0, n1, n2, n3, n4, n5, n6 = (np.float32(v) for v in num)
            d0, d1, d2, d3 = (np.float32(v) for v in den)
            hi = np.float32(clamp)

            def fast(x):
                x = min(max(x, -hi), hi)
                x2 = x * x
                p = ((((((n0 * x2 + n1) * x2 + n2) * x2 + n3) * x2 + n4) * x2 + n5) * x2 + n6) * x
                q = ((d0 * x2 + d1) * x2 + d2) * x2 + d3
                return p / q

            return fast
        return lambda x: math.tanh(x)

    def act_sigmoid(x):  # pragma: no cover - replaced by the overload below
        return 1.0 / (1.0 + math.exp(-x))

    @overload(act_sigmoid, inline="always")
    def _act_sigmoid(x):
        if isinstance(x, numba.types.Float) and x.bitwidth == 32:
            half = np.float32(0.5)
            return lambda x: half * act_tanh(half * x) + half
        return lambda x: 1.0 / (1.0 + math.exp(-x))

    def kernel(
        lstm, lstm_bias, query_key, query_key_bias, latent_gain, dense, dense_bias, dense_sizes,
        starts, sources, noise, change_scale, limit, returns, lengths,
    ):  # fmt: skip
        members, episodes = returns.shape
        hidden = lstm_bias.shape[1] // 4
        # a slot's own input: [o_i, a_{t-1}], then with input_change (change_scale > 0) the
        # change d_i = change_scale * (o_i - its last value) and d_i * a_{t-1}
        inputs = lstm.shape[1] - hidden
        with_change = change_scale > 0.0
        act_dim = (inputs - 2) // 2 if with_change else inputs - 1
        latents = query_key.shape[2]
        softmax = latent_gain.shape[1] > 0  # else tanh attention
        shuffled, extra = sources.shape[2], noise.shape[2]
        slots = shuffled + extra
        steps_drawn = sources.shape[0]
        layers, width = dense.shape[1], dense.shape[2]
        for item in numba.prange(members * episodes):
            m, b = item // episodes, item % episodes
            x, x_dot = starts[b, 0], starts[b, 1]
            theta, theta_dot = starts[b, 2], starts[b, 3]
            h = np.zeros((slots, hidden), dtype=lstm.dtype)
            c = np.zeros((slots, hidden), dtype=lstm.dtype)
            gates = np.empty(4 * hidden, dtype=lstm.dtype)
            scores = np.empty(latents, dtype=lstm.dtype)
            slot_scores = np.empty((slots, latents), dtype=lstm.dtype)  # softmax: all slots
            prev = np.zeros(act_dim, dtype=lstm.dtype)
            raw = np.empty(5, dtype=lstm.dtype)
            obs = np.empty(slots, dtype=lstm.dtype)
            last = np.zeros(slots, dtype=lstm.dtype)  # each slot's value a step ago
            scale = lstm.dtype.type(change_scale)
            zero = lstm.dtype.type(0.0)
            acts = np.empty((2, width), dtype=lstm.dtype)
            total_reward = 0.0
            steps = 0
            for t in range(limit):
                # the observation, rounded to float32 as the loop's is
                s, co = math.sin(theta), math.cos(theta)
                raw[0] = np.float32(x)
                raw[1] = np.float32(x_dot)
                raw[2] = np.float32(co)
                raw[3] = np.float32(s)
                raw[4] = np.float32(theta_dot)
                row = t if t < steps_drawn else steps_drawn - 1
                for j in range(shuffled):
                    obs[j] = raw[sources[row, b, j]]
                for j in range(extra):
                    obs[shuffled + j] = noise[row, b, j]
                # the sensory neurons: one LSTM cell per slot, keys against the queries
                for i in range(latents):
                    acts[0, i] = 0.0
                for j in range(slots):
                    for g in range(4 * hidden):
                        gates[g] = lstm_bias[m, g] + lstm[m, 0, g] * obs[j]
                    for k in range(act_dim):
                        for g in range(4 * hidden):
                            gates[g] += lstm[m, 1 + k, g] * prev[k]
                    if with_change:
                        d = scale * (obs[j] - last[j]) if t > 0 else zero
                        last[j] = obs[j]
                        for g in range(4 * hidden):
                            gates[g] += lstm[m, 1 + act_dim, g] * d
                        for k in range(act_dim):
                            dk = d * prev[k]
                            for g in range(4 * hidden):
                                gates[g] += lstm[m, 2 + act_dim + k, g] * dk
                    for k in range(hidden):
                        hk = h[j, k]
                        for g in range(4 * hidden):
                            gates[g] += lstm[m, inputs + k, g] * hk
                    for k in range(hidden):
                        gi = act_sigmoid(gates[k])
                        gf = act_sigmoid(gates[hidden + k])
                        gg = act_tanh(gates[2 * hidden + k])
                        go = act_sigmoid(gates[3 * hidden + k])
                        ck = gf * c[j, k] + gi * gg
                        c[j, k] = ck
                        h[j, k] = go * act_tanh(ck)
                    for i in range(latents):
                        scores[i] = query_key_bias[m, i]
                    for k in range(hidden):
                        hk = h[j, k]
                        for i in range(latents):
                            scores[i] += query_key[m, k, i] * hk
                    oj = obs[j]
                    if softmax:
                        for i in range(latents):
                            slot_scores[j, i] = scores[i]
                    else:
                        for i in range(latents):
                            acts[0, i] += act_tanh(scores[i]) * oj
                if softmax:
                    # each latent's attention: a softmax over the slots, times its gain
                    for i in range(latents):
                        top = slot_scores[0, i]
                        for j in range(1, slots):
                            top = max(top, slot_scores[j, i])
                        norm = zero
                        for j in range(slots):
                            e = math.exp(slot_scores[j, i] - top)
                            slot_scores[j, i] = e
                            norm += e
                        mixed = zero
                        for j in range(slots):
                            mixed += slot_scores[j, i] / norm * obs[j]
                        acts[0, i] = mixed * latent_gain[m, i]
                for i in range(latents):
                    acts[0, i] = act_tanh(acts[0, i])
                # the head: tanh layers, the last one the action
                src = 0
                for layer in range(layers):
                    n_in, n_out = dense_sizes[layer, 0], dense_sizes[layer, 1]
                    dst = 1 - src
                    for o in range(n_out):
                        acts[dst, o] = dense_bias[m, layer, o]
                    for i in range(n_in):
                        ai = acts[src, i]
                        for o in range(n_out):
                            acts[dst, o] += dense[m, layer, i, o] * ai
                    for o in range(n_out):
                        acts[dst, o] = act_tanh(acts[dst, o])
                    src = dst
                for k in range(act_dim):
                    prev[k] = acts[src, k]
                # the physics (tasks.cartpole.step_physics), float64
                force = force_mag * min(max(np.float64(prev[0]), -1.0), 1.0)
                c2 = co * co
                w2 = theta_dot * theta_dot
                x_acc = (
                    -2.0 * m_pole * length * w2 * s
                    + 3.0 * m_pole * gravity * s * co
                    + 4.0 * force
                    - 4.0 * friction * x_dot
                ) / (4.0 * total - 3.0 * m_pole * c2)
                theta_acc = (
                    -3.0 * m_pole * length * w2 * s * co
                    + 6.0 * total * gravity * s
                    + 6.0 * (force - friction * x_dot) * co
                ) / (4.0 * length * total - 3.0 * m_pole * length * c2)
                x, x_dot = x + x_dot * dt, x_dot + x_acc * dt
                theta, theta_dot = theta + theta_dot * dt, theta_dot + theta_acc * dt
                upright = (math.cos(theta) + 1.0) / 2.0
                total_reward += upright * math.cos(x / x_limit * (math.pi / 2))
                steps += 1
                if abs(x) > x_limit:
                    break
            returns[m, b] = total_reward
            lengths[m, b] = steps

    return kernel
