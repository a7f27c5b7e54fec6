"""Behavioural tests of the ask/tell strategies: convergence, exact resume, sign, determinism."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evolve.strategies import (
    FULL_CMA_WARN_PARAMS,
    STRATEGIES,
    AskTellError,
    DivergedError,
    Strategy,
    load_strategy,
    make_strategy,
    save_strategy,
)
from evolve.strategies.base import _rank_non_finite_last, _to_minimisation
from evolve.strategies.cma import full_cma_warning
from evolve.strategies.pgpe import _centered_ranks
from evolve.strategies.population import NOISE_STREAM, noise_rows
from sensoryneuron.errors import CheckpointError, ConfigError, SensoryNeuronError
from sensoryneuron.files import META_KEY, load_npz, save_npz

NAMES = sorted(STRATEGIES)
CMA_NAMES = [n for n in NAMES if "cma" in n]
REPO = Path(__file__).resolve().parents[2]


def sphere(x_star: np.ndarray):
    """Fitness to maximise: minus the squared distance to ``x_star``."""
    return lambda population: -np.sum((population - x_star) ** 2, axis=1)


def run(strategy: Strategy, fitness_fn, generations: int) -> list[np.ndarray]:
    asked = []
    for _ in range(generations):
        population = strategy.ask()
        asked.append(population)
        strategy.tell(fitness_fn(population))
    return asked


# ---------------------------------------------------------------------------------------------
# Does it learn
# ---------------------------------------------------------------------------------------------

# (popsize, generations, hyperparameters) per strategy; ClipUp moves at a fixed speed, so a
# small max_speed is what lets PGPE settle within 0.05.
SPHERE_SETTINGS = {
    "pgpe": (32, 500, {"sigma_init": 0.3, "center_lr": 0.006, "max_speed": 0.012}),
    "pgpe-adam": (32, 300, {"sigma_init": 0.3, "optimizer": "adam", "center_lr": 0.05}),
    "cma": (16, 150, {"sigma_init": 0.5}),
    "sep-cma": (16, 150, {"sigma_init": 0.5}),
}


@pytest.mark.parametrize("case", [*NAMES, "pgpe-adam"])
def test_converges_on_sphere(case: str) -> None:
    name = case.removesuffix("-adam")
    popsize, generations, hyper = SPHERE_SETTINGS.get(case, (16, 300, {}))
    dim = 16
    x_star = np.random.default_rng(2024).uniform(-1.0, 1.0, dim)
    strategy = make_strategy(name, dim, popsize, seed=3, **hyper)
    start = np.linalg.norm(strategy.center - x_star)
    run(strategy, sphere(x_star), generations)
    assert strategy.generation == generations
    assert start > 1.0
    assert np.linalg.norm(strategy.center - x_star) < 0.05


# ---------------------------------------------------------------------------------------------
# Save and restore resume the identical sequence
# ---------------------------------------------------------------------------------------------


def _continue(strategy: Strategy, fitness_fn, generations: int) -> tuple[list, list]:
    asked, centers = [], []
    for _ in range(generations):
        population = strategy.ask()
        strategy.tell(fitness_fn(population))
        asked.append(population)
        centers.append(strategy.center)
    return asked, centers


# PGPE resumes with a step schedule whose milestone falls after the resume
ROUND_TRIP_HYPER = {"pgpe": {"center_lr_decay": 0.9, "center_lr_milestones": [7]}}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("between_ask_and_tell", [False, True], ids=["after-tell", "after-ask"])
@pytest.mark.parametrize("popsize", [16, 4])  # below 6, pycma mirrors (and keeps a range)
def test_state_round_trip_resumes_identically(
    name: str, between_ask_and_tell: bool, popsize: int, tmp_path: Path
) -> None:
    dim = 50
    fitness_fn = sphere(np.linspace(-0.5, 0.5, dim))
    original = make_strategy(name, dim, popsize, seed=11, **ROUND_TRIP_HYPER.get(name, {}))
    run(original, fitness_fn, 5)
    pending = original.ask() if between_ask_and_tell else None

    meta, arrays = original.state_dict()
    json.dumps(meta, allow_nan=False)  # strict JSON
    assert all(isinstance(a, np.ndarray) and not a.dtype.hasobject for a in arrays.values())
    from_dict = make_strategy(name, dim, popsize, seed=999)  # seed is overwritten by the state
    from_dict.load_state_dict(meta, arrays)
    save_strategy(original, tmp_path / "state.npz")
    from_file = load_strategy(tmp_path / "state.npz")

    copies = [from_dict, from_file]
    for strategy in [original, *copies]:
        assert strategy.generation == 5
        if pending is not None:
            strategy.tell(fitness_fn(pending))
    expected_asks, expected_centers = _continue(original, fitness_fn, 5)
    for strategy in copies:
        asks, centers = _continue(strategy, fitness_fn, 5)
        assert all(np.array_equal(a, b) for a, b in zip(asks, expected_asks, strict=True))
        assert all(np.array_equal(a, b) for a, b in zip(centers, expected_centers, strict=True))
        assert strategy.generation == original.generation == 10 + int(between_ask_and_tell)


def test_loaded_state_is_independent_of_the_dict() -> None:
    a = make_strategy("cma", 10, 8, seed=0)
    run(a, sphere(np.ones(10)), 2)
    meta, arrays = a.state_dict()
    b, c = make_strategy("cma", 10, 8, seed=0), make_strategy("cma", 10, 8, seed=0)
    b.load_state_dict(meta, arrays)
    c.load_state_dict(meta, arrays)
    run(b, sphere(np.ones(10)), 2)  # must not touch c through shared arrays
    assert np.array_equal(c.ask(), a.ask())


@pytest.mark.parametrize("name", CMA_NAMES)
def test_cma_resumes_identically_in_another_process(name: str, tmp_path: Path) -> None:
    """A fresh interpreter with another hash seed (pycma keys solutions by bytes hashes)."""
    dim, popsize = 20, 8
    fitness_fn = sphere(np.full(dim, 0.25))
    strategy = make_strategy(name, dim, popsize, seed=5)
    run(strategy, fitness_fn, 3)
    pending = strategy.ask()
    save_strategy(strategy, tmp_path / "state.npz")
    strategy.tell(fitness_fn(pending))
    expected, _ = _continue(strategy, fitness_fn, 3)

    script = textwrap.dedent(
        """
        import sys, numpy as np
        from evolve.strategies import load_strategy
        f = lambda p: -np.sum((p - 0.25) ** 2, axis=1)
        s = load_strategy(sys.argv[1])
        s.tell(f(np.load(sys.argv[2])))
        asked = []
        for _ in range(3):
            p = s.ask(); asked.append(p); s.tell(f(p))
        np.save(sys.argv[3], np.array(asked))
        """
    )
    np.save(tmp_path / "pending.npy", pending)
    hash_seed = "4242" if os.environ.get("PYTHONHASHSEED") != "4242" else "7"
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "state.npz"), str(tmp_path / "pending.npy"),
         str(tmp_path / "asked.npy")],
        cwd=REPO, env=env, check=True, timeout=120,
    )  # fmt: skip
    assert np.array_equal(np.load(tmp_path / "asked.npy"), np.array(expected))


# ---------------------------------------------------------------------------------------------
# One fitness sign: the better member ranks first
# ---------------------------------------------------------------------------------------------


def test_to_minimisation_is_the_one_flip() -> None:
    fitness = np.array([3.0, -1.0, 0.0, 2.5])
    assert np.array_equal(_to_minimisation(fitness), np.array([-3.0, 1.0, -0.0, -2.5]))
    assert np.argmin(_to_minimisation(fitness)) == np.argmax(fitness)


SCHEDULES = {
    "decay to a floor": (
        {"center_lr_decay": 0.5, "center_lr_floor": 0.01},
        [0.1, 0.05, 0.025, 0.0125, 0.01, 0.01],
    ),
    "milestones": (
        {"center_lr_milestones": [2, 5], "center_lr_gamma": 0.2},
        [0.1, 0.1, 0.02, 0.02, 0.02, 0.004],
    ),
    "decay and a milestone": (
        {"center_lr_decay": 0.5, "center_lr_floor": 0.02, "center_lr_milestones": [3]},
        [0.1, 0.05, 0.025, 0.002, 0.002, 0.002],
    ),
}


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("optimizer", ["adam", "clipup"])
def test_pgpe_center_lr_follows_its_schedule(optimizer: str, schedule: str) -> None:
    # fitness by member index: the noise, stdev and gradients do not depend on the centre, so
    # the scheduled run's steps are the constant run's, scaled by the schedule
    def make(**options: Any) -> Strategy:
        extra = {"momentum": 0.0} if optimizer == "clipup" else {}  # one generation's step
        return make_strategy(
            "pgpe", 6, 8, seed=0, optimizer=optimizer, center_lr=0.1, **extra, **options
        )

    options, expected = SCHEDULES[schedule]
    decayed, constant = make(**options), make()
    assert [decayed.center_lr_at(g) for g in range(6)] == pytest.approx(expected, rel=1e-12)
    for lr in expected:
        steps = []
        for strategy in (decayed, constant):
            before = strategy.center
            strategy.ask()
            strategy.tell(np.arange(8.0))
            steps.append(strategy.center - before)
        if optimizer == "adam":
            np.testing.assert_allclose(steps[0], steps[1] * lr / 0.1, rtol=1e-12)
        else:  # ClipUp without momentum moves exactly the step size
            assert np.linalg.norm(steps[0]) == pytest.approx(lr, rel=1e-12)
            assert np.linalg.norm(steps[1]) == pytest.approx(0.1, rel=1e-12)


@pytest.mark.parametrize("optimizer", ["adam", "clipup"])
def test_pgpe_weight_decay_pulls_the_centre_towards_zero_by_lr_times_decay(optimizer: str) -> None:
    # fitness by member index: both runs take the same optimizer steps, and the decayed run
    # also loses lr * decay of its centre each generation (lr after the schedule)
    def make(**options: Any) -> Strategy:
        x0 = np.linspace(-2.0, 2.0, 6)
        return make_strategy(
            "pgpe", 6, 8, seed=0, x0=x0, optimizer=optimizer, center_lr=0.1, **options
        )

    schedule = {"center_lr_milestones": [2], "center_lr_gamma": 0.5}
    decayed, plain = make(center_weight_decay=0.3, **schedule), make(**schedule)
    expected = decayed.center
    for generation in range(4):
        lr = plain.center_lr_at(generation)
        before = plain.center
        for strategy in (decayed, plain):
            strategy.ask()
            strategy.tell(np.arange(8.0))
        expected = expected + (plain.center - before) - lr * 0.3 * expected
        np.testing.assert_allclose(decayed.center, expected, rtol=1e-12, atol=1e-15)
    assert np.linalg.norm(decayed.center) < np.linalg.norm(plain.center)


def test_centered_ranks_best_gets_plus_half() -> None:
    ranks = _centered_ranks(np.array([0.3, -2.0, 7.0, 1.0, 1.0]))
    assert np.array_equal(ranks, np.array([-0.25, -0.5, 0.5, 0.125, 0.125]))
    assert np.array_equal(_centered_ranks(np.full(4, 2.0)), np.zeros(4))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("k", [2, 13])
def test_center_moves_toward_the_best_member(name: str, k: int) -> None:
    strategy = make_strategy(name, 20, 16, seed=1)
    population = strategy.ask()
    before = np.linalg.norm(strategy.center - population[k])
    strategy.tell(sphere(population[k])(population))  # member k is best, by a margin
    assert np.linalg.norm(strategy.center - population[k]) < before
    if name in CMA_NAMES:  # pycma itself ranks member k first (it minimises -fitness)
        assert strategy._es.fit.idx[0] == k


# ---------------------------------------------------------------------------------------------
# Determinism and the global RNG
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_asks_different_seed_differs(name: str) -> None:
    fitness_fn = sphere(np.full(12, 0.5))
    first = run(make_strategy(name, 12, 8, seed=7), fitness_fn, 3)
    again = run(make_strategy(name, 12, 8, seed=7), fitness_fn, 3)
    other = run(make_strategy(name, 12, 8, seed=8), fitness_fn, 3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])


def _global_state() -> tuple:
    state = np.random.get_state(legacy=False)  # noqa: NPY002 (the global RNG is under test)
    return (
        state["state"]["key"].tobytes(),
        state["state"]["pos"],
        state["has_gauss"],
        state["gauss"],
    )


@pytest.mark.parametrize("name", CMA_NAMES)
def test_cma_leaves_the_global_rng_untouched(name: str) -> None:
    np.random.seed(1234)  # noqa: NPY002
    np.random.standard_normal()  # noqa: NPY002 (leaves a cached Gaussian in the state)
    before = _global_state()
    strategy = make_strategy(name, 10, 8, seed=0)
    assert _global_state() == before
    population = strategy.ask()
    assert _global_state() == before
    strategy.tell(sphere(np.zeros(10))(population))
    assert _global_state() == before

    # ... and draws elsewhere do not change the strategy's sequence.
    quiet = make_strategy(name, 10, 8, seed=0)
    quiet.ask()
    quiet.tell(sphere(np.zeros(10))(population))
    np.random.standard_normal(100)  # noqa: NPY002
    assert np.array_equal(strategy.ask(), quiet.ask())


# ---------------------------------------------------------------------------------------------
# Compact populations: a worker regenerates PGPE's members from a few seeds
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("antithetic", [True, False])
def test_pgpe_compact_population_regenerates_the_asked_members(antithetic: bool) -> None:
    popsize = 12 if antithetic else 11
    strategy = make_strategy("pgpe", 30, popsize, seed=4, antithetic=antithetic)
    fitness_fn = sphere(np.full(30, 0.3))
    for generation in range(3):
        population = strategy.ask()
        spec = strategy.compact_population()
        assert (spec.generation, spec.popsize, spec.antithetic) == (generation, popsize, antithetic)
        expected = population.astype(np.float32)
        for start, stop in [(0, popsize), (0, 1), (3, 9), (5, 7), (popsize - 1, popsize)]:
            np.testing.assert_array_equal(spec.members(start, stop), expected[start:stop])
        strategy.tell(fitness_fn(population))


def test_a_noise_row_depends_only_on_seed_generation_and_row() -> None:
    rows = noise_rows(seed=3, generation=2, rows=range(8), num_params=50)
    np.testing.assert_array_equal(noise_rows(3, 2, [5], 50)[0], rows[5])
    np.testing.assert_array_equal(noise_rows(3, 2, [6, 1], 50), rows[[6, 1]])
    for other in [noise_rows(3, 3, [5], 50), noise_rows(4, 2, [5], 50), rows[[4]]]:
        assert not np.array_equal(other[0], rows[5])


@pytest.mark.parametrize("name", NAMES)
def test_compact_population_is_pgpe_only_and_needs_a_pending_ask(name: str) -> None:
    strategy = make_strategy(name, 4, 8, seed=0)
    if name in CMA_NAMES:
        strategy.ask()
        assert strategy.compact_population() is None  # sent as float32 parameter shards
        return
    msg = "compact_population() describes a pending population; call ask()"
    with pytest.raises(AskTellError, match=re.escape(msg)):
        strategy.compact_population()


def test_pgpe_state_of_the_sequential_generator_is_refused(tmp_path: Path) -> None:
    meta, arrays = _saved(tmp_path, "pgpe")
    del meta["noise"]
    msg = (
        "state draws its noise from 'a sequential generator', not "
        f"{NOISE_STREAM!r}; it cannot resume identically with this version"
    )
    with pytest.raises(CheckpointError, match=re.escape(msg)):
        make_strategy("pgpe", 6, 8, seed=0).load_state_dict(meta, arrays)


# ---------------------------------------------------------------------------------------------
# Errors, with exact messages
# ---------------------------------------------------------------------------------------------


def test_unknown_strategy_name() -> None:
    msg = "unknown strategy 'cmaes'; allowed: 'cma', 'pgpe', 'sep-cma'"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        make_strategy("cmaes", 4, 8, seed=0)


@pytest.mark.parametrize(
    ("name", "kwargs", "msg"),
    [
        ("pgpe", {"lr": 0.1}, "unknown hyperparameter 'lr' for strategy 'pgpe'; allowed: "
         "antithetic, center_lr, center_lr_decay, center_lr_floor, center_lr_gamma, "
         "center_lr_milestones, center_weight_decay, max_speed, momentum, optimizer, "
         "sigma_init, stdev_lr, stdev_max_change"),
        ("pgpe", {"center_weight_decay": -0.1}, "center_weight_decay must be a finite number "
         "in [0, inf), got -0.1"),
        ("pgpe", {"center_lr_milestones": [5, 5]}, "center_lr_milestones must be a list of "
         "strictly increasing positive generations, got [5, 5]"),
        ("pgpe", {"center_lr_milestones": 5}, "center_lr_milestones must be a list of "
         "strictly increasing positive generations, got 5"),
        ("pgpe", {"center_lr_milestones": [0.5]}, "center_lr_milestones must be a list of "
         "strictly increasing positive generations, got [0.5]"),
        ("pgpe", {"center_lr_gamma": 0}, "center_lr_gamma must be a finite number in (0, inf), "
         "got 0"),
        ("pgpe", {"center_lr_decay": 0}, "center_lr_decay must be a finite number in (0, 1], got 0"),
        ("pgpe", {"center_lr_decay": 1.01}, "center_lr_decay must be a finite number in (0, 1], "
         "got 1.01"),
        ("pgpe", {"optimizer": "adam", "center_lr": 0.1, "center_lr_floor": 0.5},
         "center_lr_floor must be a finite number in [0, 0.1], got 0.5"),
        ("pgpe", {"sigma_init": -1.0}, "sigma_init must be a finite number in (0, inf), got -1.0"),
        ("pgpe", {"optimizer": "sgd"}, "optimizer must be one of 'adam', 'clipup', got 'sgd'"),
        ("pgpe", {"momentum": 1.0}, "momentum must be a finite number in [0, 1), got 1.0"),
        ("pgpe", {"stdev_max_change": 0}, "stdev_max_change must be a finite number in (0, 1), got 0"),
        ("pgpe", {"center_lr": float("nan")}, "center_lr must be a finite number in (0, inf), got nan"),
        ("pgpe", {"optimizer": "adam", "max_speed": 0.3}, "max_speed applies only to optimizer='clipup'"),
        ("pgpe", {"antithetic": 1}, "antithetic must be True or False, got 1"),
        ("cma", {"sigma_init": 0}, "sigma_init must be a finite number in (0, inf), got 0"),
        ("cma", {"cma_options": {"popsize": 4}}, "cma_options may not set 'popsize'; the strategy "
         "sets CMA_diagonal, popsize, randn, seed, verb_disp, verb_log, verbose"),
        ("sep-cma", {"cma_options": {"no_such": 1}}, "unknown pycma option 'no_such' in cma_options"),
        ("cma", {"cma_options": {"tolx": float("inf")}}, "cma_options['tolx'] must be plain JSON "
         "data (None, bool, int, finite float, str, list, dict), got inf"),
        ("cma", {"x0": np.zeros(3)}, "x0 must have shape (4,), got (3,)"),
    ],
)  # fmt: skip
def test_bad_hyperparameters(name: str, kwargs: dict, msg: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(msg)):
        make_strategy(name, 4, 8, seed=0, **kwargs)


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        ((0, 8, 0), "num_params must be an integer >= 1, got 0"),
        ((4, 1, 0), "popsize must be an integer >= 2, got 1"),
        ((4, 8, -1), "seed must be an integer >= 0, got -1"),
        ((4, 8.0, 0), "popsize must be an integer >= 2, got 8.0"),
    ],
)
def test_bad_sizes(args: tuple, msg: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(msg)):
        make_strategy("cma", *args)


def test_odd_popsize_with_antithetic_pgpe() -> None:
    msg = "popsize must be even when antithetic=True, got 7"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        make_strategy("pgpe", 4, 7, seed=0)
    make_strategy("pgpe", 4, 7, seed=0, antithetic=False).ask()  # fine without mirroring


@pytest.mark.parametrize("name", NAMES)
def test_tell_checks_fitness_and_call_order(name: str) -> None:
    strategy = make_strategy(name, 4, 8, seed=0)
    msg = "tell() was called without a pending population; call ask() first"
    with pytest.raises(AskTellError, match=re.escape(msg)):
        strategy.tell(np.zeros(8))
    strategy.ask()
    msg = (
        "ask() was called twice without tell(); "
        "pass the fitness of the pending population to tell() first"
    )
    with pytest.raises(AskTellError, match=re.escape(msg)):
        strategy.ask()
    with pytest.raises(ConfigError, match=re.escape("fitness must have shape (8,), got (7,)")):
        strategy.tell(np.zeros(7))
    with pytest.raises(ConfigError, match=re.escape("fitness must have shape (8,), got (8, 1)")):
        strategy.tell(np.zeros((8, 1)))
    strategy.tell(np.arange(8.0))  # the pending population survives the failed calls
    assert strategy.generation == 1
    assert isinstance(AskTellError("x"), RuntimeError)


# ---------------------------------------------------------------------------------------------
# Non-finite fitness: ranked last; a whole generation of it is a divergence
# ---------------------------------------------------------------------------------------------


def test_rank_non_finite_last_puts_them_below_every_finite_value() -> None:
    f = np.array([3.0, np.nan, -2.0, np.inf, 7.0, -np.inf])
    out = _rank_non_finite_last(f)
    np.testing.assert_array_equal(out, [3.0, -11.0, -2.0, -11.0, 7.0, -11.0])
    np.testing.assert_array_equal(f[[0, 2, 4]], [3.0, -2.0, 7.0])  # the input is untouched
    assert np.isnan(f[1])
    huge = _rank_non_finite_last(np.array([-1.7e308, np.nan, 1.7e308]))
    assert np.isfinite(huge).all() and huge[1] < -1.7e308
    clean = np.array([1.0, 2.0])
    assert _rank_non_finite_last(clean) is clean


@pytest.mark.parametrize("name", NAMES)
def test_non_finite_fitness_ranks_last(name: str) -> None:
    """NaN and +-inf members move the centre exactly as members far below the rest would."""
    with_nan, with_worst = make_strategy(name, 20, 16, seed=1), make_strategy(name, 20, 16, seed=1)
    population = with_nan.ask()
    np.testing.assert_array_equal(with_worst.ask(), population)
    fitness = sphere(np.full(20, 0.3))(population)
    bad = [1, 4, 9]
    worst = fitness.copy()
    worst[bad] = fitness.min() - 1000.0
    fitness[bad] = [np.nan, np.inf, -np.inf]
    with_nan.tell(fitness)
    with_worst.tell(worst)
    assert with_nan.generation == 1
    assert np.all(np.isfinite(with_nan.center))
    np.testing.assert_array_equal(with_nan.center, with_worst.center)
    np.testing.assert_array_equal(with_nan.ask(), with_worst.ask())  # stdev/covariance too
    if name in CMA_NAMES:  # pycma ranks the three last, not at the median (its NaN default)
        assert sorted(with_nan._es.fit.idx[-3:].tolist()) == bad


@pytest.mark.parametrize("name", NAMES)
def test_a_generation_without_a_finite_fitness_is_a_divergence(name: str) -> None:
    strategy = make_strategy(name, 4, 8, seed=0)
    run(strategy, sphere(np.zeros(4)), 2)
    population = strategy.ask()
    center = strategy.center
    msg = "generation 3: every member's fitness is non-finite (NaN or inf); the run has diverged"
    for fitness in (np.full(8, np.nan), np.array([np.nan, np.inf, -np.inf] * 2 + [np.nan] * 2)):
        with pytest.raises(DivergedError, match=re.escape(msg)):
            strategy.tell(fitness)
    assert isinstance(DivergedError("x"), SensoryNeuronError)
    assert not isinstance(DivergedError("x"), ConfigError)  # not a usage error
    assert strategy.generation == 2  # nothing changed; the population is still pending
    np.testing.assert_array_equal(strategy.center, center)
    strategy.tell(sphere(np.zeros(4))(population))
    assert strategy.generation == 3


# ---------------------------------------------------------------------------------------------
# Malformed state
# ---------------------------------------------------------------------------------------------


def _saved(tmp_path: Path, name: str = "cma") -> tuple[dict, dict]:
    strategy = make_strategy(name, 6, 8, seed=0)
    run(strategy, sphere(np.zeros(6)), 2)
    save_strategy(strategy, tmp_path / "good.npz")
    arrays, meta = load_npz(tmp_path / "good.npz")
    return meta, arrays


def test_state_file_that_is_not_an_npz(tmp_path: Path) -> None:
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"definitely not a zip file")
    msg = f"{path}: not a readable .npz file ("
    with pytest.raises(CheckpointError, match=re.escape(msg)):
        load_strategy(path)
    msg = f"{tmp_path / 'none.npz'}: no such file"
    with pytest.raises(CheckpointError, match=re.escape(msg)):
        load_strategy(tmp_path / "none.npz")


def test_state_file_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickled.npz"
    np.savez(path, **{META_KEY: np.array("{}"), "x": np.array([{"a": 1}], dtype=object)})
    msg = f"{path}: not a readable .npz file ("
    with pytest.raises(CheckpointError, match=re.escape(msg)):
        load_strategy(path)


def test_state_file_without_or_with_bad_metadata(tmp_path: Path) -> None:
    path = tmp_path / "nometa.npz"
    np.savez(path, center=np.zeros(3))
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: no 'meta' entry")):
        load_strategy(path)
    np.savez(path, **{META_KEY: np.array("{not json")})
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: metadata is not valid JSON (")):
        load_strategy(path)


def test_state_of_another_shape_or_strategy(tmp_path: Path) -> None:
    meta, arrays = _saved(tmp_path, "pgpe")
    msg = "state has num_params=6 but this strategy has num_params=7"
    with pytest.raises(CheckpointError, match=re.escape(msg)):
        make_strategy("pgpe", 7, 8, seed=0).load_state_dict(meta, arrays)
    msg = "state has strategy='pgpe' but this strategy has strategy='cma'"
    with pytest.raises(CheckpointError, match=re.escape(msg)):
        make_strategy("cma", 6, 8, seed=0).load_state_dict(meta, arrays)
    del arrays["stdev"]
    with pytest.raises(CheckpointError, match=re.escape("state array 'stdev' is missing")):
        make_strategy("pgpe", 6, 8, seed=0).load_state_dict(meta, arrays)


def _replace_first(node, tag: str, value) -> bool:
    """Replace the value of the first ``tag`` found in an encoded tree (depth first)."""
    if isinstance(node, dict):
        if tag in node:
            node[tag] = value
            return True
        return any(_replace_first(v, tag, value) for v in node.values())
    if isinstance(node, list):
        return any(_replace_first(v, tag, value) for v in node)
    return False


@pytest.mark.parametrize(
    ("tag", "value", "msg"),
    [
        ("$obj", "subprocess:Popen", "class 'subprocess:Popen' is not allowed; only classes from cma"),
        ("$global", "builtins:eval", "callable 'builtins:eval' is not allowed"),
        ("$global", "cma.evolution_strategy:np.save",
         "callable 'cma.evolution_strategy:np.save' is defined outside the whitelist"),
        ("$ref", 10**6, "reference to unknown object 1000000"),
    ],
)  # fmt: skip
def test_cma_graph_outside_the_whitelist_is_refused(
    tmp_path: Path, tag: str, value, msg: str
) -> None:
    meta, arrays = _saved(tmp_path)
    assert _replace_first(meta["pycma"]["graph"], tag, value)
    save_npz(tmp_path / "evil.npz", arrays, meta)
    with pytest.raises(CheckpointError, match=re.escape(msg)):
        load_strategy(tmp_path / "evil.npz")


def test_cma_state_from_another_pycma_version(tmp_path: Path) -> None:
    meta, arrays = _saved(tmp_path)
    meta["pycma"]["version"] = "0.0.1"
    import cma

    msg = f"state was saved with pycma '0.0.1', but pycma {cma.__version__} is installed"
    with pytest.raises(CheckpointError, match=re.escape(msg)):
        make_strategy("cma", 6, 8, seed=0).load_state_dict(meta, arrays)


# ---------------------------------------------------------------------------------------------
# Full CMA-ES on a large model: said before it starts
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def evolve_log():
    """Messages logged to the ``evolve`` logger (whether or not it propagates)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("evolve")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_full_cma_on_more_than_3000_params_warns_with_its_cost(evolve_log) -> None:
    make_strategy("sep-cma", 5000, 4, seed=0)
    make_strategy("pgpe", 5000, 4, seed=0)
    make_strategy("cma", 50, 4, seed=0)
    assert evolve_log == []
    assert full_cma_warning(FULL_CMA_WARN_PARAMS) is None and FULL_CMA_WARN_PARAMS == 3000
    make_strategy("cma", 3001, 4, seed=0)
    msg = (
        "warning: full-covariance CMA-ES on 3,001 parameters keeps two 3,001 x 3,001 float64 "
        "matrices (the covariance and its eigenvectors): 0.1 GB in memory, copied into "
        "state.npz at every checkpoint; pycma takes ~6 s per generation at 3,000 parameters "
        "(population 256) and the cost grows at least as n^2, so expect ~6 s or more per "
        "generation; use --strategy sep-cma (diagonal covariance, O(n)) for a model this size"
    )
    assert [(r.levelno, r.getMessage()) for r in evolve_log] == [(logging.WARNING, msg)]
    assert "keeps two 12,929 x 12,929 float64 matrices" in full_cma_warning(12_929)
    assert "2.7 GB in memory" in full_cma_warning(12_929)


def test_full_cma_keeps_two_n_by_n_matrices() -> None:
    """What the warning counts: pycma's covariance and eigenvectors, each n x n float64."""
    n = 200
    strategy = make_strategy("cma", n, 8, seed=0)
    run(strategy, sphere(np.zeros(n)), 2)
    sampler = strategy._es.sm
    assert sampler.C.shape == sampler.B.shape == (n, n)
    assert sampler.C.dtype == sampler.B.dtype == np.float64
    assert not np.shares_memory(sampler.C, sampler.B)
    sizes = sorted(a.nbytes for a in strategy.state_dict()[1].values())
    assert sizes[-2:] == [n * n * 8] * 2 and sizes[-3] < n * n  # the state holds both
