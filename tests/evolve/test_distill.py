"""The staged recipe: teacher, DAgger distillation, then evolution from the student."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
import torch

import evolve.training.distill as distill_module
import sensoryneuron as sn
from evolve.cli import main as cli_main
from evolve.presets import DistillConfig, TaskPreset, get_preset
from evolve.seeds import distill_seeds
from evolve.training.distill import (
    LOG_COLUMNS,
    Dataset,
    DistillState,
    collect,
    distill,
    imitation_loss,
    initial_params,
    load_distill_state,
    save_distill_state,
    sensors_found,
)
from evolve.training.loop import train
from evolve.training.run_folder import load_state
from sensoryneuron import AttentionNeuronModel, ConfigError
from sensoryneuron.files import load_npz, save_npz
from tasks.perturbations import Perturbations

TEACHER = sn.load_policy("fnn-baseline")
STUDENT = AttentionNeuronModel(act_dim=1, head_lstm=4, hidden=(8,))


def tiny_staged(iterations: int = 3, generations: int = 2) -> TaskPreset:
    teacher = get_preset("cartpole-swingup-harder-fnn").replace(
        strategy={"popsize": 8}, training={"generations": 2, "test_every": 2, "test_episodes": 4}
    )
    return get_preset("cartpole-swingup-harder").replace(
        model=STUDENT,
        strategy={"popsize": 8},
        training={"generations": generations, "repeats": 1, "test_every": 2, "test_episodes": 4},
        teacher=teacher,
        distill=DistillConfig(
            iterations=iterations,
            episodes=4,
            grad_steps=2,
            batch=3,
            window=30,
            teacher_iterations=2,
            test_every=2,
            test_episodes=4,
            identity_weight=0.5,
            clip_grad=1.0,
        ),
    )


def test_collected_labels_are_the_teachers_actions_on_the_true_state():
    preset = tiny_staged()
    seeds = distill_seeds(0, 0, 3)
    student = sn.Policy(STUDENT, initial_params(STUDENT, 0, 0.1))
    data = collect(student, TEACHER, preset, seeds, 40, teacher_driven=np.ones(3, dtype=bool))
    assert data.obs.shape == (40, 3, 5) and data.labels.shape == (40, 3, 1)
    for e, seed in enumerate(seeds):  # replay the teacher-driven episode in the gym env
        env = gym.make(preset.env_id)
        raw, _ = env.reset(seed=seed)
        for t in range(40):
            if not data.mask[t, e]:
                break
            action = TEACHER.act(raw[None], TEACHER.reset())[0][0]
            np.testing.assert_allclose(data.labels[t, e], action, atol=1e-6)
            # the student saw the same state, its inputs shuffled; sources name the sensors
            np.testing.assert_allclose(np.sort(data.obs[t, e]), np.sort(raw), atol=1e-6)
            np.testing.assert_allclose(data.obs[t, e], raw[data.sources[t, e]], atol=1e-6)
            raw, _, terminated, _, _ = env.step(data.labels[t, e])
            if terminated:
                assert not data.mask[t + 1 :, e].any()
                break


def test_imitation_loss_falls_as_the_student_fits_the_labels():
    preset = tiny_staged()
    student = sn.Policy(STUDENT, initial_params(STUDENT, 0, 0.1))
    data = collect(student, TEACHER, preset, distill_seeds(0, 0, 4), 50, np.ones(4, dtype=bool))
    params = torch.nn.Parameter(torch.from_numpy(student.params.copy()))
    opt = torch.optim.Adam([params], lr=1e-2)
    index = np.arange(4)
    losses = []
    for _ in range(40):
        loss = imitation_loss(STUDENT, params, data, index).action
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_padding_rows_do_not_count_in_the_loss():
    obs = np.random.default_rng(0).standard_normal((6, 2, 5)).astype(np.float32)
    labels = np.zeros((6, 2, 1), dtype=np.float32)
    mask = np.ones((6, 2), dtype=bool)
    mask[3:, 1] = False
    params = torch.from_numpy(initial_params(STUDENT, 0, 0.5))
    sources = np.tile(np.arange(5, dtype=np.int16), (6, 2, 1))
    classifier = torch.zeros(6, STUDENT.pos_dim + 1)
    base = imitation_loss(
        STUDENT, params, Dataset(obs, labels, mask, sources), np.arange(2), classifier
    )
    labels[3:, 1] = 100.0  # garbage where the episode had ended
    sources[3:, 1] = 0
    same = imitation_loss(
        STUDENT, params, Dataset(obs, labels, mask, sources), np.arange(2), classifier
    )
    assert float(same.action) == pytest.approx(float(base.action), rel=1e-6)
    assert float(same.identity) == pytest.approx(float(base.identity), rel=1e-6)
    # a classifier that knows nothing: the cross-entropy of 6 equally likely classes
    assert float(base.identity) == pytest.approx(np.log(6), rel=1e-6)


def test_identity_loss_teaches_the_sensory_neurons_which_sensor_they_read():
    model = AttentionNeuronModel(act_dim=1, input_change=True, pos_dim=16)
    preset = tiny_staged().replace(model=model)
    student = sn.Policy(model, initial_params(model, 0, 0.1))
    data = collect(student, TEACHER, preset, distill_seeds(0, 0, 8), 60, np.ones(8, dtype=bool))
    assert data.sources.shape == (60, 8, 5)
    theta = torch.nn.Parameter(
        torch.cat([torch.from_numpy(student.params.copy()), torch.zeros(6 * 17)])
    )
    opt = torch.optim.Adam([theta], lr=1e-2)
    index = np.arange(8)
    first = None
    for _ in range(80):
        losses = imitation_loss(
            model, theta[: model.num_params], data, index, theta[-6 * 17 :].view(6, 17)
        )
        opt.zero_grad()
        losses.identity.backward()
        opt.step()
        first = first or float(losses.identity.detach())
    assert first == pytest.approx(np.log(6), rel=1e-5)
    assert float(losses.identity.detach()) < 0.5 * first


def test_identity_loss_needs_the_sources_and_a_student_with_sensory_neurons():
    data = Dataset(
        np.zeros((3, 1, 5), np.float32), np.zeros((3, 1, 1), np.float32), np.ones((3, 1), bool)
    )
    params = torch.from_numpy(initial_params(STUDENT, 0, 0.1))
    with pytest.raises(
        ConfigError, match=re.escape("the identity loss needs the sensor of every slot")
    ):
        imitation_loss(STUDENT, params, data, np.arange(1), torch.zeros(6, 9))
    fnn = get_preset("cartpole-swingup-harder-fnn").model
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "distill.identity_weight needs a student with sensory neurons; a fnn model has none"
        ),
    ):
        tiny_staged().replace(model=fnn)
    with pytest.raises(
        ConfigError,
        match=re.escape("distill.identity_weight must be a non-negative number; got -1"),
    ):
        DistillConfig(identity_weight=-1)


SOFTMAX = AttentionNeuronModel(
    act_dim=1, attention="softmax", input_change=True, lateral_dim=4, head_lstm=4, hidden=(8,)
)


def test_attention_loss_of_an_even_attention_is_the_log_of_the_slot_count():
    # zero parameters: every latent attends evenly to every slot, whatever the target
    params = torch.zeros(SOFTMAX.num_params)
    for copies in (1, 2):
        sources = np.tile(np.arange(5, dtype=np.int16).repeat(copies), (4, 2, 1))
        data = Dataset(
            np.ones((4, 2, 5 * copies), np.float32),
            np.zeros((4, 2, 1), np.float32),
            np.ones((4, 2), bool),
            sources,
        )
        losses = imitation_loss(SOFTMAX, params, data, np.arange(2), attention_sensors=5)
        assert losses.identity is None
        assert float(losses.attention) == pytest.approx(np.log(5 * copies), rel=1e-6)
    assert imitation_loss(SOFTMAX, params, data, np.arange(2)).attention is None


def test_attention_loss_teaches_latent_k_to_find_sensor_k():
    preset = tiny_staged().replace(model=SOFTMAX)
    student = sn.Policy(SOFTMAX, initial_params(SOFTMAX, 0, 0.1))
    data = collect(student, TEACHER, preset, distill_seeds(0, 0, 8), 40, np.ones(8, dtype=bool))
    params = torch.nn.Parameter(torch.from_numpy(student.params.copy()))
    opt = torch.optim.Adam([params], lr=1e-2)
    index = np.arange(8)
    for step in range(100):
        losses = imitation_loss(SOFTMAX, params, data, index, attention_sensors=5)
        opt.zero_grad()
        losses.attention.backward()
        opt.step()
        if step == 0:
            first = float(losses.attention.detach())
    assert float(losses.attention.detach()) < 0.5 * first
    # after training, latent k's strongest slot carries sensor k on most live steps
    trained = sn.Policy(SOFTMAX, params.detach().numpy())
    state = trained.reset(8)
    found = []
    for t in range(40):
        _, state, attention = trained.act(data.obs[t], state, return_attention=True)
        found.append(sensors_found(attention, data.sources[t], 5)[data.mask[t]])
    assert np.concatenate(found).mean() > 0.8


def test_attention_loss_needs_softmax_attention_and_a_latent_per_sensor():
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "distill.attention_weight needs a student with softmax attention; "
            "this attention-neuron model has tanh"
        ),
    ):
        tiny_staged().replace(distill={"attention_weight": 1.0})
    with pytest.raises(
        ConfigError,
        match=re.escape("distill.attention_weight must be a non-negative number; got -1"),
    ):
        DistillConfig(attention_weight=-1)
    few = AttentionNeuronModel(act_dim=1, attention="softmax", num_latents=3, hidden=(8,))
    data = Dataset(
        np.zeros((3, 1, 5), np.float32),
        np.zeros((3, 1, 1), np.float32),
        np.ones((3, 1), bool),
        np.tile(np.arange(5, dtype=np.int16), (3, 1, 1)),
    )
    params = torch.zeros(few.num_params)
    with pytest.raises(
        ConfigError,
        match=re.escape("the attention loss needs a latent per sensor: 5 sensors, 3 latents"),
    ):
        imitation_loss(few, params, data, np.arange(1), attention_sensors=5)
    with pytest.raises(
        ConfigError, match=re.escape("the attention loss needs a model with softmax attention")
    ):
        imitation_loss(STUDENT, torch.zeros(STUDENT.num_params), data, np.arange(1), None, 5)


def test_logs_written_before_the_identity_and_attention_losses_still_load(tmp_path):
    row = [1.0, 0.5, 0.7, 0.2, 300.0, 12.0]
    save_distill_state(tmp_path, DistillState(1, np.zeros(3, np.float32), log=[row]))
    arrays, meta = load_npz(tmp_path / "state.npz")
    assert len(LOG_COLUMNS) == len(row)
    for dropped, expected in (
        ([3], [1.0, 0.5, 0.7, np.nan, 300.0, 12.0]),  # before the attention loss
        ([2, 3], [1.0, 0.5, np.nan, np.nan, 300.0, 12.0]),  # before the identity loss too
    ):
        old = dict(arrays, log=np.delete(arrays["log"], dropped, axis=1))
        save_npz(tmp_path / "state.npz", old, meta)
        np.testing.assert_array_equal(load_distill_state(tmp_path).log, [expected])


def test_distillation_is_deterministic_and_resumes_exactly(tmp_path, monkeypatch):
    preset = tiny_staged(iterations=4)
    distill(preset, tmp_path / "a", TEACHER, backend=_backend())
    calls = {"n": 0}
    real = distill_module.imitation_loss

    def interrupt_in_iteration_3(*args):
        calls["n"] += 1
        if calls["n"] == 2 * 2 + 1:  # the first Adam step of the third iteration
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(distill_module, "imitation_loss", interrupt_in_iteration_3)
    stopped = distill(preset, tmp_path / "b", TEACHER, backend=_backend())
    assert stopped.interrupted and stopped.iteration == 2
    monkeypatch.setattr(distill_module, "imitation_loss", real)
    resumed = distill(preset, tmp_path / "b", TEACHER, resume=True, backend=_backend())
    assert not resumed.interrupted and resumed.iteration == 4
    a, b = load_distill_state(tmp_path / "a"), load_distill_state(tmp_path / "b")
    np.testing.assert_array_equal(a.params, b.params)
    assert a.identity.shape == (6 * (STUDENT.pos_dim + 1),)  # the sensor classifier
    np.testing.assert_array_equal(a.identity, b.identity)
    np.testing.assert_array_equal(a.data.obs, b.data.obs)
    np.testing.assert_array_equal(a.data.sources, b.data.sources)
    assert a.data.episodes == 4 * 4
    # the same iterations and losses (NaN where no test ran); wall times differ
    np.testing.assert_array_equal(np.asarray(a.log)[:, :3], np.asarray(b.log)[:, :3])
    assert [r[0] for r in b.log] == [1, 2, 3, 4]
    np.testing.assert_array_equal(
        sn.load_policy(tmp_path / "a" / "best.npz").params,
        sn.load_policy(tmp_path / "b" / "best.npz").params,
    )


def test_staged_run_trains_teacher_then_student_and_starts_evolution_from_it(tmp_path, capsys):
    preset = tiny_staged(generations=1)
    result = train(preset, tmp_path / "run", final_episodes=0, progress=False)
    run = tmp_path / "run"
    assert not result.interrupted and result.generation == 1
    teacher = sn.load_policy(run / "teacher")
    assert teacher.model == preset.teacher.model and load_state(run / "teacher")[0].generation == 2
    student = sn.load_policy(run / "distill" / "best.npz")
    assert student.model == preset.model
    evolved = sn.load_policy(run / "latest.npz")
    # one Adam step of PGPE moves each parameter by about the learning rate at most
    step = np.abs(evolved.params - student.params).max()
    assert 0 < step <= 1.5 * preset.strategy.options["center_lr"]
    with pytest.raises(sn.CheckpointError, match="already holds a run"):
        train(preset, run, final_episodes=0, progress=False)
    code = cli_main(["train", "--resume", str(run), "--distill-iterations", "9"])
    assert code == 2
    assert capsys.readouterr().err == (
        "evolve: error: cannot change --distill-iterations when resuming; "
        "only --generations may change\n"
    )


def test_staged_run_resumes_in_the_stage_it_was_in(tmp_path, monkeypatch):
    preset = tiny_staged(generations=2)
    train(preset, tmp_path / "whole", final_episodes=0, progress=False)

    real = distill_module.imitation_loss
    calls = {"n": 0}

    def interrupt(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(distill_module, "imitation_loss", interrupt)
    stopped = train(preset, tmp_path / "split", final_episodes=0, progress=False)
    assert stopped.interrupted
    assert not (tmp_path / "split" / "state.npz").exists()
    monkeypatch.setattr(distill_module, "imitation_loss", real)
    train(preset, tmp_path / "split", resume=True, final_episodes=0, progress=False)
    for name in ("latest.npz", "distill/best.npz", "teacher/latest.npz"):
        np.testing.assert_array_equal(
            sn.load_policy(tmp_path / "whole" / name).params,
            sn.load_policy(tmp_path / "split" / name).params,
        )


def test_staged_recipe_round_trips_and_validates():
    preset = get_preset("cartpole-swingup-harder")
    assert preset.teacher is not None and preset.distill is not None
    assert TaskPreset.from_dict(preset.to_dict()) == preset
    with pytest.raises(ConfigError, match="needs both a teacher and a distill section"):
        preset.replace(distill=None)
    with pytest.raises(ConfigError, match="the teacher trains on"):
        preset.replace(
            teacher=get_preset("cartpole-swingup-harder-fnn").replace(
                env_id="SensoryNeuron/CartPoleSwingUp-v0"
            )
        )
    with pytest.raises(ConfigError, match="distill.batch must be a positive integer; got 0"):
        DistillConfig(batch=0)
    with pytest.raises(ConfigError, match=r"unknown distill field\(s\) \['epochs'\]"):
        DistillConfig.from_dict({"epochs": 3})


def _backend():
    from evolve.backends import LocalBackend

    return LocalBackend(1)


def test_perturbations_of_the_recipe_reach_the_student():
    preset = tiny_staged().replace(perturbations=Perturbations(noise_channels=2))
    student_model = AttentionNeuronModel(act_dim=1)
    student = sn.Policy(student_model, initial_params(student_model, 1, 0.1))
    data = collect(student, TEACHER, preset, distill_seeds(0, 0, 2), 5, np.zeros(2, dtype=bool))
    assert data.obs.shape == (5, 2, 7)
