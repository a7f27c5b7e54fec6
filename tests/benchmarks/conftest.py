"""Benchmark scripts are not a package: each test module names its script in ``SCRIPT``."""

import importlib.util

import pytest


@pytest.fixture(scope="module")
def bench(request):
    """The module of the benchmark script at the test module's ``SCRIPT`` path."""
    script = request.module.SCRIPT
    spec = importlib.util.spec_from_file_location(script.stem, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
