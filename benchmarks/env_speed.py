"""Environment steps per second: envpool's C++ envs against Gymnasium, CarRacing and Ant.

For each task, in one run, with random actions (the same for every config) and a fixed
number of environment steps per config:

1. ``gym 1``: one ``gym.make`` env in a plain ``step`` loop (the baseline);
2. ``GymPool 8``: the engine's pool of 8 ``gym.make`` envs (one member, 8 episodes);
3. ``envpool 1`` and ``envpool 8``: ``envpool.make(..., num_threads=1)`` with 1 and 8 envs;
4. ``EnvpoolPool 8``: the engine's envpool pool of 8 envs (one member, 8 episodes).

Resets inside the timed loop count (an env that ends is reset, or a pool restarted); the
first reset does not. Both wall time and CPU time (of every thread of this process) are
reported: on a shared machine the CPU time is the steadier figure. Ant is Ant-v5 without contact forces in the observation (27 values).
It also compares the first CarRacing frame after a reset with the same seed on both, and,
for scale, two Gymnasium frames of different seeds. Usage::

    python benchmarks/env_speed.py [--ant-steps 2000] [--carracing-steps 600] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from sensoryneuron.actions import ActionMap
from tasks.pools import EnvpoolPool, GymPool
from tasks.spec import PatchObservation, TaskSpec, get_task

POOL_ENVS = 8
CARRACING_RAW = TaskSpec(  # raw RGB frames: the envs' own speed, no frame preparation
    env_id="CarRacing-v3",
    observation=PatchObservation(frames=1, height=96, width=96, patch=6),
    action=ActionMap.box([-1.0, 0.0, 0.0], [1.0, 1.0, 1.0]),
    max_steps=1000,
    engines=("gym", "envpool"),
    envpool_id="CarRacing-v3",
    description="Box2D CarRacing-v3, raw 96x96 RGB (benchmark only)",
)


Timing = tuple[float, float, int]  # wall seconds, CPU seconds (all threads), env steps


class Clock:
    """Wall time and this process's CPU time (every thread: envpool steps in its own)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def random_actions(spec: TaskSpec, count: int, seed: int = 0) -> np.ndarray:
    """``count`` uniform actions within the task's Box, float64 ``[count, dim]``."""
    low, high = np.asarray(spec.action.low), np.asarray(spec.action.high)
    return np.random.default_rng(seed).uniform(low, high, size=(count, low.size))


def envpool_make(spec: TaskSpec, envs: int) -> Any:
    import envpool

    kwargs = {"use_contact_force": True} if spec.env_id == "Ant-v5" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # envpool's Box spaces warn about float64 bounds
        env = envpool.make(
            spec.envpool_id,
            env_type="gymnasium",
            num_envs=envs,
            num_threads=1,
            seed=list(range(envs)),
            max_episode_steps=spec.max_steps,
            **kwargs,
        )
        env.reset()
    return env


def time_gym(spec: TaskSpec, steps: int, actions: np.ndarray) -> Timing:
    env = spec.make_env()
    env.reset(seed=0)
    clock = Clock()
    for t in range(steps):
        _, _, terminated, truncated, _ = env.step(actions[t])
        if terminated or truncated:
            env.reset()
    elapsed = clock.read()
    env.close()
    return (*elapsed, steps)


def time_envpool(spec: TaskSpec, steps: int, actions: np.ndarray, envs: int) -> Timing:
    env = envpool_make(spec, envs)
    calls = steps // envs
    batches = actions[: calls * envs].reshape(calls, envs, -1)
    clock = Clock()
    for t in range(calls):
        env.step(batches[t])  # ended envs reset on their next step
    elapsed = clock.read()
    env.close()
    return (*elapsed, calls * envs)


def time_pool(pool: Any, steps: int, actions: np.ndarray, envs: int) -> Timing:
    """Env steps of a pool playing ``envs`` episodes; restarted when all have ended."""
    seeds = list(range(envs))
    pool.start(seeds, members=1)
    done = np.zeros((1, envs), dtype=bool)
    taken, t = 0, 0
    clock = Clock()
    while taken < steps:
        live = int((~done).sum())
        _, _, done = pool.step(actions[t : t + envs][None])
        taken, t = taken + live, (t + envs) % (len(actions) - envs)
        if done.all():
            seeds = [s + envs for s in seeds]
            pool.start(seeds, members=1)
            done = np.zeros((1, envs), dtype=bool)
    elapsed = clock.read()
    pool.close()
    return (*elapsed, taken)


def first_frames(seed: int) -> dict[str, float]:
    """Mean absolute pixel difference of CarRacing's first frames after a reset."""
    gym_frames = []
    for s in (seed, seed + 1):
        env = gym.make("CarRacing-v3")
        gym_frames.append(env.reset(seed=s)[0].astype(np.float64))
        env.close()
    import envpool

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = envpool.make("CarRacing-v3", env_type="gymnasium", num_envs=1, seed=seed)
        frame = env.reset()[0][0].astype(np.float64)
    env.close()
    return {
        "gym_vs_envpool_same_seed": float(np.abs(gym_frames[0] - frame).mean()),
        "gym_vs_gym_next_seed": float(np.abs(gym_frames[0] - gym_frames[1]).mean()),
        "identical": bool(np.array_equal(gym_frames[0], frame)),
    }


def benchmark(spec: TaskSpec, steps: int) -> list[dict[str, Any]]:
    """Steps/s of every config on ``spec``; the first row is the baseline."""
    actions = random_actions(spec, steps + 2 * POOL_ENVS)
    configs: list[tuple[str, Callable[[], Timing]]] = [
        ("gym 1", lambda: time_gym(spec, steps, actions)),
        (f"GymPool {POOL_ENVS}", lambda: time_pool(GymPool(spec), steps, actions, POOL_ENVS)),
        ("envpool 1", lambda: time_envpool(spec, steps, actions, 1)),
        (f"envpool {POOL_ENVS}", lambda: time_envpool(spec, steps, actions, POOL_ENVS)),
        (
            f"EnvpoolPool {POOL_ENVS}",
            lambda: time_pool(EnvpoolPool(spec), steps, actions, POOL_ENVS),
        ),
    ]
    rows: list[dict[str, Any]] = []
    for name, run in configs:
        wall, cpu, taken = run()
        rows.append(
            {"task": spec.env_id, "config": name, "steps": taken, "seconds": wall,
             "cpu_seconds": cpu, "steps_per_s": taken / wall, "steps_per_cpu_s": taken / cpu}
        )  # fmt: skip
    for row in rows:
        row["vs_gym_1"] = row["steps_per_s"] / rows[0]["steps_per_s"]
        row["cpu_vs_gym_1"] = row["steps_per_cpu_s"] / rows[0]["steps_per_cpu_s"]
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ant-steps", type=int, default=2000)
    parser.add_argument("--carracing-steps", type=int, default=600)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    print(f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    rows = benchmark(CARRACING_RAW, args.carracing_steps)
    rows += benchmark(get_task("Ant-v5"), args.ant_steps)
    print(
        f"{'task':<14}{'config':<16}{'steps':>6}{'wall s':>8}{'steps/s':>9}{'x gym 1':>9}"
        f"{'CPU s':>8}{'steps/CPU s':>13}{'x gym 1':>9}"
    )
    for r in rows:
        print(
            f"{r['task']:<14}{r['config']:<16}{r['steps']:>6}{r['seconds']:>8.2f}"
            f"{r['steps_per_s']:>9.0f}{r['vs_gym_1']:>9.2f}{r['cpu_seconds']:>8.2f}"
            f"{r['steps_per_cpu_s']:>13.0f}{r['cpu_vs_gym_1']:>9.2f}"
        )
    frames = first_frames(seed=3)
    print(
        "CarRacing first frame, seed 3: mean |gym - envpool| = "
        f"{frames['gym_vs_envpool_same_seed']:.2f} of 255 (identical: {frames['identical']}); "
        f"gym seed 3 vs seed 4: {frames['gym_vs_gym_next_seed']:.2f}"
    )
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    result = {
        "rows": rows,
        "carracing_first_frame": frames,
        "load_before": list(load_before),
        "load_after": list(load_after),
        "cpus": os.cpu_count(),
        "args": {"ant_steps": args.ant_steps, "carracing_steps": args.carracing_steps},
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
