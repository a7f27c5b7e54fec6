"""Generations per second of the local and Ray backends, and Ray's per-generation overhead.

Compares, in one run, ``local`` with 1 and 2 worker processes and ``ray`` with 1 and 2
tasks per generation on a local Ray (127.0.0.1), on the same fixed generations: PGPE
populations of the cart-pole harder preset (population 256, 4 episodes per member) around
the shipped agent, so that episodes last as long as they do in a trained run. Each backend
gets what ``train()`` gives it (PGPE's compact population), the backends take turns for
``--rounds`` rounds (a shared machine's load hits all alike), and the medians are printed.

Overhead per generation is timed with a trivial job (one env step per episode), so that it
holds dispatch, parameter regeneration, set-up and gathering but almost no simulation.
The script then projects a cluster of w workers two ways: evenly split work, W/w + o (W one
worker's generation, o the per-generation overhead), and the slowest of the w shards timed
inline (a shard whose episodes run long sets the pace). It also prints the bytes sent per
generation. Usage::

    python benchmarks/backends.py [--generations 5] [--rounds 3] [--cluster-workers 1,8,64]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import pickle
import statistics
import time

import numpy as np
import torch

import sensoryneuron as sn
from evolve.backends import Backend, LocalBackend, population_shard, shard_bounds
from evolve.presets import get_preset
from evolve.rollout import EpisodeJob, RolloutResult, rollout
from evolve.seeds import training_seeds
from evolve.strategies import Strategy, make_strategy
from evolve.strategies.population import PopulationSpec
from evolve.training.loop import _job

PRESET = "cartpole-swingup-harder"


def generations(strategy: Strategy, preset, count: int) -> list[tuple[EpisodeJob, PopulationSpec]]:
    """``count`` consecutive (job, population) pairs, told a fixed made-up fitness."""
    out = []
    for gen in range(count):
        strategy.ask()
        spec = strategy.compact_population()
        assert spec is not None
        out.append((_job(preset, training_seeds(0, gen, preset.training.repeats)), spec))
        strategy.tell(np.linspace(0.0, 1.0, strategy.popsize))
    return out


def timed(backend: Backend, work: list[tuple[EpisodeJob, PopulationSpec]]) -> tuple[float, list]:
    """Seconds per generation of ``work`` on ``backend``, and the fitness arrays."""
    start = time.perf_counter()
    fitness = [backend.evaluate(job, population).fitness for job, population in work]
    return (time.perf_counter() - start) / len(work), fitness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=5, help="timed generations per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of turns per backend")
    parser.add_argument("--popsize", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=4, help="episodes per member")
    parser.add_argument(
        "--cluster-workers",
        default="1,2,4,8,16,32,64",
        help="worker counts to project (each one's shards are timed inline)",
    )
    args = parser.parse_args()
    load = os.getloadavg()[0]

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # local Ray on loopback
    from evolve.backends.ray import RayBackend, import_ray, message_bytes

    preset = get_preset(PRESET).replace(
        strategy={"popsize": args.popsize}, training={"repeats": args.repeats}
    )
    center = sn.load_policy(PRESET).params.astype(np.float64)
    s = preset.strategy
    strategy = make_strategy(
        s.name, center.size, s.popsize, seed=1, x0=center, sigma_init=s.sigma_init, **s.options
    )
    started = time.perf_counter()
    strategy.ask()
    strategy.tell(np.linspace(0.0, 1.0, args.popsize))
    ask_tell = time.perf_counter() - started
    work = generations(strategy, preset, args.generations)
    trivial = [(dataclasses.replace(job, max_steps=1), spec) for job, spec in work]

    ray = import_ray(local=True)
    started = time.perf_counter()
    ray.init(
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
    )
    ray_init = time.perf_counter() - started

    backends = {
        "local, 1 worker": LocalBackend(1),
        "local, 2 workers": LocalBackend(2),
        "ray, 1 worker": RayBackend(1),
        "ray, 2 workers": RayBackend(2),
    }
    full: dict[str, list[float]] = {name: [] for name in backends}
    fixed: dict[str, list[float]] = {name: [] for name in backends}
    results: dict[str, list] = {}
    for backend in backends.values():  # warm up: workers start and import torch
        timed(backend, trivial[:1])
    for _ in range(args.rounds):
        for name, backend in backends.items():
            seconds, results[name] = timed(backend, work)
            full[name].append(seconds)
            fixed[name].append(timed(backend, trivial)[0])
    for backend in backends.values():
        backend.close()
    ray.shutdown()
    for workers in ("1 worker", "2 workers"):  # same shards, so the very same fitness
        local, on_ray = results[f"local, {workers}"], results[f"ray, {workers}"]
        assert all(np.array_equal(a, b) for a, b in zip(local, on_ray, strict=True))

    torch.set_num_threads(1)  # as in a worker
    cluster = [int(w) for w in args.cluster_workers.split(",")]
    slowest = {w: 0.0 for w in cluster}  # per generation, the slowest of its w shards
    for job, spec in work:
        for w in cluster:
            times = []
            for start, stop in shard_bounds(args.popsize, w):
                started = time.perf_counter()
                rollout(job, population_shard(spec, start, stop))
                times.append(time.perf_counter() - started)
            slowest[w] += max(times) / len(work)

    print(
        f"{PRESET}, population {args.popsize} x {args.repeats} episodes around the shipped "
        f"agent, {args.generations} generations x {args.rounds} rounds (medians); "
        f"load average {load:.2f} at the start, {os.cpu_count()} cores"
    )
    print(f"{'backend':<18} {'s/generation':>13} {'generations/s':>14} {'overhead s':>11}")
    for name in backends:
        seconds, overhead = statistics.median(full[name]), statistics.median(fixed[name])
        print(f"{name:<18} {seconds:13.3f} {1 / seconds:14.3f} {overhead:11.3f}")
    for workers in ("1 worker", "2 workers"):
        extra = statistics.median(full[f"ray, {workers}"]) - statistics.median(
            full[f"local, {workers}"]
        )
        print(f"ray - local, {workers}: {extra:+.3f} s per generation")
    print(f"ray.init: {ray_init:.1f} s once; PGPE ask + tell: {ask_tell * 1000:.1f} ms")
    overhead = statistics.median(fixed["ray, 2 workers"]) + ask_tell
    whole = slowest[1] if 1 in slowest else statistics.median(full["local, 1 worker"])
    print(
        f"projection for w workers: one worker's generation W = {whole:.3f} s, overhead "
        f"o = Ray's {overhead - ask_tell:.3f} s + ask/tell {ask_tell:.3f} s = {overhead:.3f} s"
    )
    print(f"{'workers':>8} {'W/w + o':>9} {'gen/s':>7} {'slowest shard + o':>18} {'gen/s':>7}")
    for w in cluster:
        even, measured = whole / w + overhead, slowest[w] + overhead
        print(f"{w:>8} {even:9.3f} {1 / even:7.2f} {measured:18.3f} {1 / measured:7.2f}")

    print("bytes sent per generation (population 256, 8 workers):")
    for num_params in (913, 3000):
        es = make_strategy("pgpe", num_params, 256, seed=0)
        params = es.ask().astype(np.float32)
        compact = message_bytes(job, es.compact_population(), 8)
        explicit = message_bytes(job, params, 8)
        print(
            f"  {num_params:>5} params: seeds {compact['total']:>9,} "
            f"(tasks {compact['tasks']:,} + spec {compact['broadcast']:,} once per node); "
            f"float32 parameters {explicit['total']:>10,}"
        )
    back = RolloutResult(np.zeros((256, args.repeats)), np.zeros((256, args.repeats), np.int64))
    print(f"  results back (returns and steps, all members): {len(pickle.dumps(back, 5)):,}")


if __name__ == "__main__":
    main()
