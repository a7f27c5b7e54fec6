"""A vector student's step compiled by ``torch.compile``, for the replays of the DAgger fit.

The fit backpropagates through hundreds of steps of a small recurrent student, and each step
is dozens of tiny tensor operations: eager PyTorch spends its time dispatching them.
Inductor fuses each step's forward and backward into a few loops of generated C++, which
runs the fit's Adam step about twice as fast on two cores
(``benchmarks/distill_fit_speed.py``). It compiles once per process and shape (the first
step, whose state has no slots yet, and the later ones; each count of inputs), some tens of
seconds each. The losses equal the eager step's to round-off.

Compiling needs a C++ compiler; where it fails, the fit warns once and goes on with the eager
step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from evolve.logs import get_logger
from sensoryneuron.models import Model

log = get_logger()


class CompiledStep:
    """``model.step_prepared``, compiled at its first call; the eager step if that fails."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self._step: Callable[..., Any] = torch.compile(model.step_prepared, dynamic=False)
        self.compiled = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled:
            try:
                return self._step(*args, **kwargs)
            except torch._dynamo.exc.BackendCompilerFailed as exc:  # no C++ compiler, say
                log.warning(
                    "warning: torch.compile failed (%s); the fit goes on with the eager step",
                    str(exc).splitlines()[0],
                )
                self.compiled = False
                self._step = self.model.step_prepared
        return self._step(*args, **kwargs)


@functools.cache
def compiled_step(model: Model) -> CompiledStep:
    """The compiled step of ``model`` (one per model and process, so it compiles once)."""
    return CompiledStep(model)
