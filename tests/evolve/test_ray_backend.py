"""The Ray backend: same results as the local one, survives a killed worker, clear errors.

Everything runs on one local Ray instance on 127.0.0.1, started once for the session (it
costs seconds). Tests that need Ray skip where it is not installed; the tests of its
absence and of the lazy import run everywhere.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import sensoryneuron as sn
from evolve.backends import Backend, LocalBackend, make_backend
from evolve.presets import get_preset
from evolve.rollout import EpisodeJob, RolloutResult
from evolve.strategies.population import PopulationSpec
from evolve.training.loop import _job, build_strategy, train
from evolve.training.run_folder import load_state
from sensoryneuron.errors import ConfigError

# A Ray started by this process listens on loopback only (Ray's single-machine mode).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

REPO = Path(__file__).resolve().parents[2]
TINY_CLI = [
    "cartpole-swingup-harder-es", "--generations", "2", "--popsize", "8", "--repeats", "1", "--test-every", "2",
    "--test-episodes", "2", "--final-episodes", "0", "--no-progress",
]  # fmt: skip


def tiny(**training):
    settings = {"generations": 3, "repeats": 1, "test_every": 3, "test_episodes": 2, "seed": 5}
    settings.update(training)
    return get_preset("cartpole-swingup-harder-es").replace(
        strategy={"popsize": 16}, training=settings
    )


def evolve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "evolve", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("evolve: error: "), result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.fixture(scope="session")
def ray_address():
    """One local Ray for the whole session: 2 CPUs, loopback, its own temp dir."""
    ray = pytest.importorskip("ray")
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        _temp_dir=temp_dir,
    )
    address = ray.get_runtime_context().gcs_address
    assert address.startswith("127.0.0.1:"), address
    yield address
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


class Recording(Backend):
    """Delegates to another backend and keeps the fitness of every population it evaluates."""

    def __init__(self, inner: Backend) -> None:
        self.inner, self.name, self.workers = inner, inner.name, inner.workers
        self.fitness: list[np.ndarray] = []

    def run(self, tasks: list[tuple[EpisodeJob, np.ndarray]]) -> list[RolloutResult]:
        return self.inner.run(tasks)

    def evaluate(self, job: EpisodeJob, population: np.ndarray | PopulationSpec) -> RolloutResult:
        result = self.inner.evaluate(job, population)
        self.fitness.append(result.fitness)
        return result


def run_tiny(backend: Backend, run_dir: Path, **training) -> tuple[np.ndarray, np.ndarray]:
    """Fitness ``[generations, popsize]`` and final centre of a tiny run on ``backend``."""
    recording = Recording(backend)
    train(tiny(**training), run_dir, backend=recording, final_episodes=0, progress=False)
    return np.array(recording.fitness), sn.load_policy(run_dir / "latest.npz").params


@pytest.fixture(scope="module")
def undisturbed(ray_address, tmp_path_factory):
    """The tiny run on Ray with 2 workers, no faults: what the other runs must reproduce."""
    from evolve.backends.ray import RayBackend

    with RayBackend(2) as backend:
        return run_tiny(backend, tmp_path_factory.mktemp("ray") / "run")


def test_ray_and_local_backends_give_bit_identical_runs(undisturbed, tmp_path):
    with LocalBackend(2) as local:  # same workers, so the same shards
        fitness, center = run_tiny(local, tmp_path / "local")
    assert fitness.shape == (3, 16)
    np.testing.assert_array_equal(undisturbed[0], fitness)
    np.testing.assert_array_equal(undisturbed[1], center)


def test_explicit_parameter_shards_match_the_local_backend(ray_address):
    """Strategies without a compact population (CMA-ES) send float32 shards."""
    from evolve.backends.ray import RayBackend

    preset = tiny().replace(strategy={"name": "sep-cma"})
    strategy, _ = build_strategy(preset)
    assert strategy.compact_population() is None
    params = strategy.ask().astype(np.float32)
    job = _job(preset, [3, 4])
    with RayBackend(2) as ray_backend, LocalBackend(1) as inline:
        on_ray = ray_backend.evaluate(job, params)
        shards = [inline.evaluate(job, params[a:b]) for a, b in [(0, 8), (8, 16)]]
    np.testing.assert_array_equal(on_ray.returns, np.concatenate([s.returns for s in shards]))
    np.testing.assert_array_equal(on_ray.steps, np.concatenate([s.steps for s in shards]))


def test_ray_and_local_agree_bit_for_bit_on_a_pool_task(ray_address):
    """Pendulum on the gym engine: each Ray worker keeps a pool of gym envs, like a local one."""
    model = sn.AttentionNeuronModel(act_dim=1)
    rng = np.random.default_rng(8)
    params = (0.3 * rng.standard_normal((6, model.num_params))).astype(np.float32)
    job = EpisodeJob(
        model=model.to_dict(),
        env_id="Pendulum-v1",
        perturbations={"shuffle": True, "reshuffle_every": 20},
        seeds=(41, 42),
        engine="gym",
    )
    with make_backend("ray", 2) as on_ray, LocalBackend(2) as local, LocalBackend(1) as inline:
        ray_result = on_ray.evaluate(job, params)
        local_result = local.evaluate(job, params)
        shards = [inline.evaluate(job, params[a:b]) for a, b in [(0, 3), (3, 6)]]
    assert ray_result.returns.shape == (6, 2)
    np.testing.assert_array_equal(ray_result.returns, local_result.returns)
    np.testing.assert_array_equal(ray_result.steps, local_result.steps)
    np.testing.assert_array_equal(ray_result.returns, np.concatenate([s.returns for s in shards]))


def test_a_worker_killed_mid_generation_is_rerun_with_the_same_result(undisturbed, tmp_path):
    from evolve.backends.ray import RayBackend

    marker = tmp_path / "crashed"
    with RayBackend(2, crash_once=marker) as backend:
        fitness, center = run_tiny(backend, tmp_path / "run")
    assert marker.exists(), "a worker should have killed itself"
    np.testing.assert_array_equal(undisturbed[0], fitness)
    np.testing.assert_array_equal(undisturbed[1], center)


def test_resume_on_ray_reaches_the_same_parameters(undisturbed, tmp_path):
    from evolve.backends.ray import RayBackend

    with RayBackend(2) as backend:
        train(tiny(generations=2), tmp_path, backend=backend, final_episodes=0, progress=False)
        train(tiny(), tmp_path, resume=True, backend=backend, final_episodes=0, progress=False)
    assert load_state(tmp_path)[0].generation == 3
    np.testing.assert_array_equal(sn.load_policy(tmp_path / "latest.npz").params, undisturbed[1])


@pytest.mark.parametrize("num_params", [913, 3000])
def test_pgpe_sends_seeds_not_parameters(num_params):
    from evolve.backends.ray import message_bytes
    from evolve.strategies import make_strategy

    strategy = make_strategy("pgpe", num_params, 256, seed=1)
    full = strategy.ask().astype(np.float32)
    spec = strategy.compact_population()
    job = _job(tiny(repeats=4), [1, 2, 3, 4])
    compact, explicit = message_bytes(job, spec, 8), message_bytes(job, full, 8)
    assert explicit["total"] > full.nbytes  # every parameter travels
    assert compact["broadcast"] < 2 * 8 * num_params + 1000  # centre and stdev, once
    assert compact["tasks"] < 8 * 1000  # per task: the job, a reference, a member range
    assert compact["total"] < explicit["total"] / 30


def test_workers_max_is_the_cluster_and_more_is_refused(ray_address):
    from evolve.backends.ray import RayBackend

    with RayBackend("max") as backend:
        assert backend.workers == 2
    msg = "workers=3 is more than the 2 CPUs of the Ray cluster; use at most 2, or 'max'"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        RayBackend(3)
    import ray

    assert ray.is_initialized()  # a Ray the backend found running stays running


def test_cli_trains_on_a_cluster_with_clean_output(ray_address, tmp_path):
    result = evolve(
        "train", *TINY_CLI, "--backend", "ray", "--address", ray_address, "--workers", "max",
        "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 workers (ray)" in result.stderr
    timestamped = re.compile(r"^\d\d:\d\d:\d\d ")  # every console line is a log line
    assert all(timestamped.match(line) for line in result.stderr.splitlines()), result.stderr


def test_cli_refuses_more_workers_than_the_cluster_has(ray_address):
    result = evolve("train", *TINY_CLI, "--backend", "ray", "--address", ray_address,
                    "--workers", "3")  # fmt: skip
    assert_one_line_error(result, "workers=3 is more than the 2 CPUs of the Ray cluster")


def test_cli_reports_an_unreachable_address(ray_address):
    result = evolve("train", *TINY_CLI, "--backend", "ray", "--address", "127.0.0.1:1")
    assert_one_line_error(result, "cannot reach a Ray cluster at 127.0.0.1:1: Connection refused")


# -- no Ray needed ----------------------------------------------------------------------------


def test_importing_evolve_does_not_import_ray():
    code = (
        "import sys, evolve.cli, evolve.training.loop, evolve.backends; print('ray' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.stdout.strip() == "False", result.stderr


def test_without_ray_the_backend_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    msg = "the ray backend needs Ray: pip install -e '.[ray]'"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        make_backend("ray", 2)
    code = "import sys; sys.modules['ray'] = None; from evolve.cli import main; sys.exit(main())"
    result = subprocess.run(
        [sys.executable, "-c", code, "train", *TINY_CLI, "--backend", "ray"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert_one_line_error(result, msg)


def test_address_needs_the_ray_backend():
    with pytest.raises(ConfigError, match=re.escape("--address applies only to the ray backend")):
        make_backend("local", 1, address="127.0.0.1:6379")
