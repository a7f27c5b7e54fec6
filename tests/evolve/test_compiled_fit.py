"""The DAgger fit with the student's step compiled (``distill.compile_fit``)."""

from __future__ import annotations

import logging
import re
import shutil

import numpy as np
import pytest
import torch

import evolve.training.compiled as compiled_module
from evolve.presets import DistillConfig, get_preset
from evolve.training.compiled import CompiledStep, compiled_step
from evolve.training.dataset import Dataset
from evolve.training.distill import imitation_loss, initial_params
from sensoryneuron import AttentionNeuronModel, ConfigError


def _episodes(steps: int, episodes: int, width: int) -> Dataset:
    rng = np.random.default_rng(0)
    obs = np.cumsum(rng.normal(0, 0.3, size=(steps, episodes, width)), axis=0).astype(np.float32)
    labels = np.tanh(rng.normal(size=(steps, episodes, 1))).astype(np.float32)
    mask = np.ones((steps, episodes), dtype=bool)
    mask[steps // 2 :, 0] = False  # an episode that ended early
    carried = np.minimum(np.arange(width), 5)  # slots past the 5 sensors carry noise
    order = np.stack([rng.permutation(carried) for _ in range(episodes)])
    sources = np.broadcast_to(order, (steps, episodes, width)).astype(np.int16)
    return Dataset(obs, labels, mask, sources, labels.copy())


def _loss_and_gradient(model, data: Dataset, compiled: bool) -> tuple[float, np.ndarray]:
    params = torch.tensor(initial_params(model, 0, 0.3), requires_grad=True)
    loss = imitation_loss(model, params, data, attention_sensors=5, compiled=compiled).total(
        0.0, 1.0
    )
    loss.backward()
    return float(loss.detach()), params.grad.numpy()


@pytest.mark.skipif(
    not any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++")),
    reason="torch.compile's CPU backend needs a C++ compiler",
)
def test_the_compiled_fit_gives_the_eager_losses_and_gradients():
    # the default recipe's student (softmax attention, input changes, lateral messages, an
    # LSTM head), with 2 noise channels
    model = get_preset("cartpole-swingup-harder").model
    data = _episodes(12, 3, 7)
    eager_loss, eager_grad = _loss_and_gradient(model, data, compiled=False)
    loss, grad = _loss_and_gradient(model, data, compiled=True)
    assert compiled_step(model).compiled  # compiled, not fallen back to the eager step
    assert loss == pytest.approx(eager_loss, rel=1e-5)
    np.testing.assert_allclose(grad, eager_grad, rtol=1e-4, atol=1e-6 * np.abs(eager_grad).max())
    again_loss, again_grad = _loss_and_gradient(model, data, compiled=True)
    assert again_loss == loss and np.array_equal(again_grad, grad)  # it repeats exactly


def test_a_failed_compile_warns_once_and_goes_on_eager(monkeypatch):
    def failing(*args, **kwargs):
        raise torch._dynamo.exc.BackendCompilerFailed(
            None, RuntimeError("no C++ compiler found"), None
        )

    monkeypatch.setattr(compiled_module.torch, "compile", lambda fn, **kw: failing)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("evolve").addHandler(handler)
    try:
        model = AttentionNeuronModel(act_dim=1, head_lstm=4, hidden=(8,))
        step = CompiledStep(model)
        params = torch.from_numpy(initial_params(model, 0, 0.3))
        weights = model.prepare(params[None])
        obs = torch.from_numpy(_episodes(2, 3, 5).obs[0])[None]
        state = model.init_state(1, 3)
        for _ in range(2):
            output, _ = step(weights, obs, state)
            expected, _ = model.step_prepared(weights, obs, state)
            assert torch.equal(output, expected)
    finally:
        logging.getLogger("evolve").removeHandler(handler)
    assert not step.compiled
    messages = [r.getMessage() for r in records]
    assert len(messages) == 1 and messages[0].startswith("warning: torch.compile failed (")
    assert messages[0].endswith("); the fit goes on with the eager step")


def test_compile_fit_is_a_bool_for_vector_tasks():
    msg = "distill.compile_fit must be true or false; got 1"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        DistillConfig(compile_fit=1)
    msg = "distill.compile_fit compiles the step of a vector task's student; CarRacing-v3 gives "
    with pytest.raises(ConfigError, match=re.escape(msg)):
        get_preset("carracing").replace(distill={"compile_fit": True})
