"""Shared fixtures: the published reference weights live in ../shared/reference (never committed)."""

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
