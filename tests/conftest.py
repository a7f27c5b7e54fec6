"""Shared fixtures: published reference weights (in ../shared/reference, never committed) and
tiny ES runs for quick training."""

from __future__ import annotations

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
