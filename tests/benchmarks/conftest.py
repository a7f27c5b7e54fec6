"""Benchmark scripts are not a package: each test module names its script in ``SCRIPT``."""

import importlib.util
import sys

import pytest


@pytest.fixture(scope="module")
def bench(request):
    """The module of the benchmark script at the test module's ``SCRIPT`` path, registered in
    ``sys.modules`` while the test module runs (dataclasses look their module up there)."""
    script = request.module.SCRIPT
    name = f"benchmark_{script.stem}"
    spec = importlib.util.spec_from_file_location(name, script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)
