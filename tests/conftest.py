"""Shared fixtures: published reference weights (in ../shared/reference, never committed),
tiny ES runs for quick training, and the staged recipe in miniature."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO.parent / "shared" / "reference"


@pytest.fixture
def reference_path():
    """Path to a published reference model, or skip where ../shared/reference is absent."""

    def find(name: str) -> Path:
        path = REFERENCE_DIR / f"{name}.npz"
        if not path.is_file():
            pytest.skip(f"{path} absent (published weights are test data, not shipped)")
        return path

    return find


@pytest.fixture(scope="session")
def tiny_es_preset():
    """``preset(generations, seed)``: cartpole-swingup-harder-es shrunk to a population of 8,
    one episode a member and a 2-episode test every generation."""
    from evolve.presets import get_preset

    def preset(generations: int, seed: int):
        training = {"repeats": 1, "test_every": 1, "test_episodes": 2}
        return get_preset("cartpole-swingup-harder-es").replace(
            strategy={"popsize": 8},
            training={**training, "generations": generations, "seed": seed},
        )

    return preset


@pytest.fixture(scope="session")
def train_tiny_es():
    """``train(preset, run, **kwargs)``: a quick training that checkpoints every generation,
    with no final evaluation and no progress bar."""
    from evolve.training.loop import train

    def train_quickly(preset, run: Path, **kwargs) -> None:
        train(preset, run, checkpoint_every=1, final_episodes=0, progress=False, **kwargs)

    return train_quickly


@pytest.fixture(scope="session")
def tiny_staged_preset():
    """``preset(teacher_generations=4, iterations=5, generations=4, test_every=2, **training)``:
    the default cart-pole recipe in miniature, its three stages a few seconds in all (a
    teacher and an evolution of 8 members, DAgger on 2 episodes of 20 steps an iteration,
    held-out tests of one episode); ``training`` replaces more of the last stage's fields."""
    from evolve.presets import DistillConfig, get_preset
    from sensoryneuron import AttentionNeuronModel

    def preset(teacher_generations=4, iterations=5, generations=4, test_every=2, **training):
        tests = {"test_every": test_every, "test_episodes": 1}
        teacher = get_preset("cartpole-swingup-harder-fnn").replace(
            strategy={"popsize": 8}, training={"generations": teacher_generations, **tests}
        )
        distill = DistillConfig(
            iterations=iterations, episodes=2, grad_steps=1, batch=2, window=20, **tests
        )
        return get_preset("cartpole-swingup-harder").replace(
            model=AttentionNeuronModel(act_dim=1, head_lstm=4, hidden=(8,)),
            strategy={"popsize": 8},
            training={"generations": generations, "repeats": 1, **tests, **training},
            teacher=teacher,
            distill=distill,
        )

    return preset


@pytest.fixture
def evolve_cli(capsys):
    """``run(*args)``: ``evolve ARGS`` in this process (``evolve.cli.main``), returning its exit
    code, stdout and stderr (an argparse exit is a code too)."""
    from evolve import cli

    def run(*args) -> tuple[int, str, str]:
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code
        finally:  # the console handler writes to this test's captured stderr: drop it
            logger = logging.getLogger("evolve")
            for handler in [h for h in logger.handlers if getattr(h, "_evolve_console", False)]:
                logger.removeHandler(handler)
            logger.propagate = True
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
