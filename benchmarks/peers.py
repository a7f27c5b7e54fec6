"""Member-steps per second against a peer: ours, EvoJAX and the original way, in one run.

The task is CartPoleSwingUpHarder with the inputs shuffled at reset, one episode per member,
a population of 256 (``--popsize``), the paper's AttentionNeuron (16 latents, 32-wide
messages, an 8-cell sensory LSTM):

- ``sensoryneuron``: the ``fused`` engine (:mod:`evolve.fused`: whole episodes as one
  compiled kernel) on 2 worker processes (``LocalBackend(2)``), what ``evolve train
  cartpole-swingup-harder-es --engine fused`` runs; ``sensoryneuron_1_process`` is one
  process; ``sensoryneuron_loop`` the episode loop (:mod:`evolve.rollout`, the
  ``simulator`` engine) on 2 workers, what every other model and task runs. Our model has
  EvoJAX's biases (``attention_bias=True``: 977 parameters; EvoJAX counts 945 because
  flax's LSTM cell has one bias per gate where torch's has two).
  Counted over the steps of live episodes only: finished members leave the batch. The
  population is the paper's published weights (``../shared/reference/cartpole_pi.npz``, no
  query/key biases) plus noise of std ``--spread``, so its episodes last about as long as
  in training (972 of 1,000 steps on average in the committed results); random weights
  would end in a few dozen steps.
- ``evojax``: EvoJAX's ``SimManager`` with its ``PermutationInvariantPolicy`` on its own
  ``CartPoleSwingUp(harder=True)``, one ``jax.lax.scan`` over all 1,000 steps, on 2 host
  devices (``--xla_force_host_platform_device_count=2``), in a subprocess. Every one of its
  1,000 steps is counted, dead members too (this favours EvoJAX). Needs the ``peers``
  extra (``pip install -e ".[peers]"``); without it the key is null and ``evojax_error``
  says why.
- ``original``: one member at a time, an ``nn.Module`` policy with its LSTM state in
  attributes and a per-step Gymnasium env, as the paper's code ran (timed on a few members).
- ``default_student``: the default recipe's 12,929-parameter student on the episode loop
  (2 workers; the kernel does not run its options), for scale: the shipped
  ``cartpole-swingup-harder`` agent plus noise.

Every figure is the best of ``--rounds`` timed population episodes (fresh seeds each),
after a warm-up (EvoJAX's jit compilation is not timed). Usage::

    python benchmarks/peers.py --json benchmarks/results/peers.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from throughput import run_baseline  # benchmarks/ is on the path when run

import sensoryneuron as sn
from evolve.backends import LocalBackend
from evolve.presets import get_preset
from evolve.rollout import EpisodeJob
from sensoryneuron import AttentionNeuronModel

ENV_ID = "SensoryNeuron/CartPoleSwingUpHarder-v0"
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "cartpole_pi.npz"

EVOJAX_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import jax
    import jax.numpy as jnp
    if not hasattr(jax, "tree_map"):  # EvoJAX 0.2.17's multi-device path still calls it
        jax.tree_map = jax.tree_util.tree_map
    from evojax.policy.mlp_pi import PermutationInvariantPolicy
    from evojax.sim_mgr import SimManager
    from evojax.task.cartpole import CartPoleSwingUp

    popsize, rounds, scale = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    policy = PermutationInvariantPolicy(act_dim=1, hidden_dim=16)
    sim = SimManager(
        n_repeats=1, test_n_repeats=1, pop_size=popsize, n_evaluations=popsize,
        policy_net=policy,
        train_vec_task=CartPoleSwingUp(harder=True, test=False),
        valid_vec_task=CartPoleSwingUp(harder=True, test=True),
        seed=0,
    )
    key = jax.random.PRNGKey(0)
    params = scale * jax.random.normal(key, (popsize, policy.num_params))
    scores, _ = sim.eval_params(params, test=False)  # compiles
    scores.block_until_ready()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        scores, _ = sim.eval_params(params, test=False)
        scores.block_until_ready()
        best = min(best, time.perf_counter() - start)
    print(json.dumps({
        "seconds": best, "member_steps": popsize * 1000, "num_params": int(policy.num_params),
        "devices": jax.local_device_count(), "jax": jax.__version__,
    }))
    """
)


def population(
    model: AttentionNeuronModel, popsize: int, scale: float, spread: float, rng
) -> tuple[np.ndarray, str]:
    """Our population: the paper's published cart-pole weights plus noise of std ``spread``.

    Episodes then last about as long as in training (most of their 1,000 steps), where
    random weights end in a few dozen steps and time mostly the set-up of a rollout. The
    published file has no query/key biases; they start at zero. Where
    ``../shared/reference`` is absent, random weights of std ``scale``.
    """
    if not REFERENCE.is_file():
        flat = scale * rng.standard_normal((popsize, model.num_params))
        return flat.astype(np.float32), f"random, std {scale} (no {REFERENCE.name})"
    published = sn.load_reference_policy(REFERENCE, name="cartpole_pi")
    tensors = published.model.unflatten(torch.tensor(published.params, dtype=torch.float64)[None])
    spec = model.param_spec
    full = {
        name: tensors.get(name, torch.zeros((1, *shape), dtype=torch.float64))
        for name, shape in spec.entries
    }
    base = model.flatten(full)[0].numpy()
    flat = base[None] + spread * rng.standard_normal((popsize, model.num_params))
    return flat.astype(np.float32), f"{REFERENCE.name} + noise of std {spread}"


def time_ours(model, params: np.ndarray, workers: int, rounds: int, engine: str) -> dict:
    """Best member-steps/s of ``rounds`` population episodes on ``engine``."""
    best = None
    with LocalBackend(workers) as backend:
        job = EpisodeJob(model.to_dict(), ENV_ID, {"shuffle": True}, engine=engine)
        backend.evaluate(replace(job, seeds=(10**6,)), params)  # compiles the fused kernel
        for r in range(rounds):
            job = replace(job, seeds=(r,))
            start = time.perf_counter()
            result = backend.evaluate(job, params)
            elapsed = time.perf_counter() - start
            rate = result.member_steps / elapsed
            if best is None or rate > best["member_steps_per_s"]:
                best = {
                    "member_steps_per_s": rate,
                    "seconds": elapsed,
                    "member_steps": result.member_steps,
                    "mean_episode_steps": result.member_steps / len(params),
                }
    assert best is not None
    return best


def time_original(model, params: np.ndarray, members: int) -> dict:
    """Member-steps/s of the unbatched way (``benchmarks/throughput.py``), member m on seed m."""
    rate, steps = run_baseline(params, 1000, members, model, ENV_ID, list(range(members)))
    return {"member_steps_per_s": rate, "members": members, "member_steps": steps}


def time_evojax(python: str, popsize: int, rounds: int, scale: float, devices: int) -> dict:
    """EvoJAX in a subprocess (its XLA flags must be set before jax is imported)."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [python, "-c", EVOJAX_SCRIPT, str(popsize), str(rounds), str(scale)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"EvoJAX run failed ({python}): {last}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["member_steps_per_s"] = out["member_steps"] / out["seconds"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--popsize", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3, help="timed population episodes")
    parser.add_argument("--original-members", type=int, default=4)
    parser.add_argument("--scale", type=float, default=0.1, help="std of the random weights")
    parser.add_argument(
        "--spread", type=float, default=0.01, help="std of the noise on the published weights"
    )
    parser.add_argument(
        "--evojax-python",
        default=sys.executable,
        help="the Python that has EvoJAX (default: this one)",
    )
    parser.add_argument("--no-evojax", action="store_true", help="skip the EvoJAX run")
    args = parser.parse_args()

    torch.set_num_threads(1)
    model = AttentionNeuronModel(act_dim=1, attention_bias=True)
    rng = np.random.default_rng(0)
    params, weights = population(model, args.popsize, args.scale, args.spread, rng)
    results: dict = {
        "task": ENV_ID,
        "popsize": args.popsize,
        "num_params": model.num_params,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_at_start": list(os.getloadavg()),
        "our_weights": weights,
    }
    results["sensoryneuron_run"] = time_ours(model, params, 2, args.rounds, "fused")
    results["sensoryneuron_1_process_run"] = time_ours(model, params, 1, args.rounds, "fused")
    results["sensoryneuron_loop_run"] = time_ours(model, params, 2, args.rounds, "simulator")
    results["original_run"] = time_original(model, params, args.original_members)
    # the shipped default agent plus noise, so that its episodes last as in training
    shipped = sn.load_policy("cartpole-swingup-harder")
    student = shipped.model
    assert student == get_preset("cartpole-swingup-harder").model
    noise = args.spread * rng.standard_normal((args.popsize, student.num_params))
    student_params = (np.asarray(shipped.params)[None] + noise).astype(np.float32)
    results["default_student_run"] = {
        "num_params": student.num_params,
        **time_ours(student, student_params, 2, args.rounds, "simulator"),
    }
    results["evojax_run"] = None
    if not args.no_evojax:
        try:
            results["evojax_run"] = time_evojax(
                args.evojax_python, args.popsize, args.rounds, args.scale, devices=2
            )
            results["evojax_1_device_run"] = time_evojax(
                args.evojax_python, args.popsize, args.rounds, args.scale, devices=1
            )
        except (RuntimeError, OSError, ValueError) as exc:
            results["evojax_error"] = str(exc)
    for key in (
        "sensoryneuron",
        "sensoryneuron_1_process",
        "sensoryneuron_loop",
        "original",
        "default_student",
    ):
        results[key] = results[f"{key}_run"]["member_steps_per_s"]
    results["evojax"] = (
        None if results["evojax_run"] is None else results["evojax_run"]["member_steps_per_s"]
    )
    results["load_average_at_end"] = list(os.getloadavg())

    ours = results["sensoryneuron"]
    print(f"{ENV_ID}, population {args.popsize}, one episode per member, shuffled at reset")
    print(f"  sensoryneuron, 2 workers   : {ours:12,.0f} member-steps/s (live steps)")
    print(f"  sensoryneuron, 1 process   : {results['sensoryneuron_1_process']:12,.0f}")
    print(f"  episode loop, 2 workers    : {results['sensoryneuron_loop']:12,.0f}")
    if results["evojax"] is not None:
        print(f"  EvoJAX, 2 host devices     : {results['evojax']:12,.0f} (all 1,000 steps)")
        one = results["evojax_1_device_run"]["member_steps_per_s"]
        print(f"  EvoJAX, 1 device           : {one:12,.0f}")
    else:
        print(f"  EvoJAX                     : not run ({results.get('evojax_error', 'skipped')})")
    print(f"  original (unbatched)       : {results['original']:12,.0f}")
    print(f"  default student, 2 workers : {results['default_student']:12,.0f}")
    ratios = {
        "sensoryneuron_over_evojax": None if not results["evojax"] else ours / results["evojax"],
        "sensoryneuron_over_original": ours / results["original"],
        "two_workers_over_one": ours / results["sensoryneuron_1_process"],
        "fused_over_loop": ours / results["sensoryneuron_loop"],
    }
    results["ratios"] = ratios
    for name, value in ratios.items():
        if value is not None:
            print(f"  {name:28s}: {value:8.2f}x")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
