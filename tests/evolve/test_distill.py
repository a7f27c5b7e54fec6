"""The staged recipe: teacher, DAgger distillation, then evolution from the student."""

from __future__ import annotations

import os
import re

import gymnasium as gym
import numpy as np
import pytest
import torch

import evolve.training.distill as distill_module
import evolve.training.held_out as held_out_module
import sensoryneuron as sn
from evolve.cli import main as cli_main
from evolve.presets import DistillConfig, TaskPreset, get_preset
from evolve.seeds import distill_seeds
from evolve.training.dataset import ARRAYS, EpisodeStore
from evolve.training.distill import (
    LOG_COLUMNS,
    Dataset,
    DistillState,
    collect,
    distill,
    imitation_loss,
    initial_params,
    load_distill_data,
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
    # 200 steps: after 100 the fraction below was 0.80 on one CPU and above it on another
    for step in range(200):
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
    # killed after the third iteration's chunk was written, before its state was saved
    chunks = tmp_path / "b" / "data"
    assert load_distill_state(tmp_path / "b").chunks == [4, 4]
    assert (chunks / "00002.obs.npy").exists()
    (chunks / "00002.obs.npy").write_bytes(b"torn")  # a chunk the saved state does not cover
    (chunks / "00007.mask.npy").write_bytes(b"junk")  # is never read, and is replaced
    monkeypatch.setattr(distill_module, "imitation_loss", real)
    resumed = distill(preset, tmp_path / "b", TEACHER, resume=True, backend=_backend())
    assert not resumed.interrupted and resumed.iteration == 4
    a, b = load_distill_state(tmp_path / "a"), load_distill_state(tmp_path / "b")
    np.testing.assert_array_equal(a.params, b.params)
    assert a.identity.shape == (6 * (STUDENT.pos_dim + 1),)  # the sensor classifier
    np.testing.assert_array_equal(a.identity, b.identity)
    for name in ("exp_avg", "exp_avg_sq", "step"):
        np.testing.assert_array_equal(a.adam[name], b.adam[name])
    assert a.chunks == b.chunks == [4] * 4
    data_a, data_b = (
        load_distill_data(tmp_path / "a").read(),
        load_distill_data(tmp_path / "b").read(),
    )
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(data_a, name), getattr(data_b, name))
    assert data_a.episodes == 4 * 4
    # the chunk files themselves, byte for byte, and nothing else
    files_a = sorted(p.name for p in (tmp_path / "a" / "data").iterdir())
    assert files_a == sorted(p.name for p in chunks.iterdir())
    assert len(files_a) == 4 * len(ARRAYS)
    for name in files_a:
        assert (tmp_path / "a" / "data" / name).read_bytes() == (chunks / name).read_bytes()
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


def test_iterations_cycle_through_the_noise_channel_counts_and_each_step_fits_one(
    tmp_path, monkeypatch
):
    preset = tiny_staged(iterations=4).replace(
        distill={"noise_channels": [0, 3], "grad_steps": 3, "test_every": 4}
    )
    assert preset.distill.noise_channels == (0, 3)
    assert TaskPreset.from_dict(preset.to_dict()) == preset  # JSON gives a list back
    widths, tested = [], []
    real_loss, real_eval = distill_module.imitation_loss, held_out_module.evaluate_policy

    def record_width(model, params, batch, *args):
        widths.append(batch.obs.shape[2])
        return real_loss(model, params, batch, *args)

    def record_conditions(policy, env_id, conditions, *args, **kwargs):
        tested.append([c.perturbations.noise_channels for c in conditions])
        return real_eval(policy, env_id, conditions, *args, **kwargs)

    monkeypatch.setattr(distill_module, "imitation_loss", record_width)
    monkeypatch.setattr(held_out_module, "evaluate_policy", record_conditions)
    distill(preset, tmp_path, TEACHER, backend=_backend())
    store = load_distill_data(tmp_path)
    assert [store.width(k) for k in range(4)] == [5, 8, 5, 8]
    assert [pool.tolist() for pool in store.pools()] == [
        [0, 1, 2, 3, 8, 9, 10, 11],
        [4, 5, 6, 7, 12, 13, 14, 15],
    ]
    # iteration 1 holds only noise-free episodes; later, the steps take the widths in turn
    assert widths == [5, 5, 5] + [5, 8, 5] * 3
    assert tested == [[0, 3]]  # one test per count, averaged
    with pytest.raises(
        ConfigError,
        match=r"distill.noise_channels must be a list of non-negative integers; got \(0, -1\)",
    ):
        DistillConfig(noise_channels=(0, -1))
    with pytest.raises(ConfigError, match="distill.noise_channels adds noise inputs to a vector"):
        get_preset("carracing").replace(distill={"noise_channels": [0, 2]})
    with pytest.raises(
        ConfigError, match=re.escape("distill.backgrounds: background pool 'none|x:*'")
    ):
        DistillConfig(backgrounds="none|x:*")
    with pytest.raises(ConfigError, match="distill.backgrounds swaps the background of image"):
        get_preset("cartpole-swingup-harder").replace(distill={"backgrounds": "none|noise:*"})
    msg = "distill.backgrounds draws an image per episode, which only the gym engine's envs do"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        get_preset("carracing").replace(distill={"backgrounds": "noise:*"}, engine="envpool")


def _backend():
    from evolve.backends import LocalBackend

    return LocalBackend(1)


def test_perturbations_of_the_recipe_reach_the_student():
    preset = tiny_staged().replace(perturbations=Perturbations(noise_channels=2))
    student_model = AttentionNeuronModel(act_dim=1)
    student = sn.Policy(student_model, initial_params(student_model, 1, 0.1))
    data = collect(student, TEACHER, preset, distill_seeds(0, 0, 2), 5, np.zeros(2, dtype=bool))
    assert data.obs.shape == (5, 2, 7)


def test_teacher_driven_episodes_feed_the_student_the_executed_action(monkeypatch):
    # what the student reads as its previous action, at collection and in the replay
    preset = tiny_staged()
    student = sn.Policy(STUDENT, initial_params(STUDENT, 0, 0.5))
    driven = np.array([True, False, True])
    real = type(STUDENT).step_prepared
    calls: list[tuple[np.ndarray, np.ndarray]] = []  # (previous action read, output)

    def spy(self, weights, obs, state, with_attention=False):
        prev = state.carry["prev_action"].detach().numpy().copy()
        result = real(self, weights, obs, state, with_attention)
        calls.append((prev, result[0].detach().numpy().copy()))
        return result

    monkeypatch.setattr(type(STUDENT), "step_prepared", spy)  # the teacher is an FNN
    data = collect(student, TEACHER, preset, distill_seeds(0, 0, 3), 40, driven)
    collected = calls[:]
    assert len(collected) == 40 and data.mask[:, ~driven].all()  # the student's survives
    prev = np.stack([c[0][0] for c in collected])  # [T, E, A]
    out = np.stack([c[1][0] for c in collected])
    np.testing.assert_array_equal(prev[0], 0.0)
    # the executed action is the teacher's where it drives, the student's own elsewhere
    np.testing.assert_array_equal(data.executed[:, driven], data.labels[:, driven])
    np.testing.assert_array_equal(data.executed[:, ~driven], out[:, ~driven])
    np.testing.assert_array_equal(prev[1:], data.executed[:-1])  # and the student reads it
    assert np.abs(out[:, driven] - data.labels[:, driven]).max() > 0.1  # which is not its own

    calls.clear()
    params = torch.from_numpy(student.params.copy())
    imitation_loss(STUDENT, params, data, np.arange(3))
    replayed = calls[:]
    np.testing.assert_array_equal(np.stack([c[0][0] for c in replayed]), prev)
    # the replay steps the student exactly as the episodes did
    np.testing.assert_allclose(np.stack([c[1][0] for c in replayed]), out, atol=1e-6)
    calls.clear()
    unrecorded = Dataset(data.obs, data.labels, data.mask, data.sources)
    imitation_loss(STUDENT, params, unrecorded, np.arange(3))  # own outputs fed back
    own = np.stack([c[1][0] for c in calls])
    assert np.abs(own[:, driven] - out[:, driven]).max() > 1e-3


def test_bytes_written_per_iteration_do_not_grow_with_the_run(tmp_path, monkeypatch):
    preset = tiny_staged(iterations=4)
    stage = tmp_path / "distill"
    sizes, first_chunk = [], {}
    real = distill_module.save_distill_state

    def record(stage_dir, state):
        real(stage_dir, state)
        sizes.append((stage_dir / "state.npz").stat().st_size)
        if not first_chunk:
            for path in (stage_dir / "data").iterdir():
                first_chunk[path.name] = os.stat(path).st_ino

    monkeypatch.setattr(distill_module, "save_distill_state", record)
    distill(preset, stage, TEACHER, backend=_backend())
    assert len(sizes) == 4
    # the state holds no episodes: it grows by a log row and a chunk count per iteration
    assert sizes[-1] - sizes[0] < 400, sizes
    cfg = preset.distill
    obs_dim, act_dim = 5, 1
    per_step = obs_dim * 4 + act_dim * 4 + act_dim * 4 + 1 + obs_dim * 2  # obs labels exec mask src
    for chunk in range(4):
        files = [stage / "data" / f"{chunk:05d}.{name}.npy" for name in ARRAYS]
        written = sum(p.stat().st_size for p in files)
        headers = written - cfg.episodes * cfg.window * per_step
        assert 0 < headers <= 128 * len(ARRAYS)  # one iteration's data, plus .npy headers
    # the first chunk was written once and never rewritten
    assert {p: os.stat(stage / "data" / p).st_ino for p in first_chunk} == first_chunk


def test_episode_store_gathers_the_chosen_episodes_from_its_chunks(tmp_path):
    rng = np.random.default_rng(0)

    def chunk(episodes):
        t = 7
        return Dataset(
            rng.standard_normal((t, episodes, 5)).astype(np.float32),
            rng.standard_normal((t, episodes, 1)).astype(np.float32),
            rng.random((t, episodes)) < 0.8,
            rng.integers(0, 6, (t, episodes, 5)).astype(np.int16),
            rng.standard_normal((t, episodes, 1)).astype(np.float32),
        )

    parts = [chunk(3), chunk(2), chunk(4)]
    store = EpisodeStore(tmp_path / "data")
    for part in parts:
        store.append(part)
    whole = parts[0].extend(parts[1]).extend(parts[2])
    index = np.array([0, 2, 2, 3, 5, 8, 8])
    got, expected = store.gather(index), whole.select(index)
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))
        assert getattr(got, name).dtype == getattr(expected, name).dtype
    # a store that covers two chunks ignores the third, and removes its files
    covering = EpisodeStore(tmp_path / "data", [3, 2])
    assert covering.episodes == 5
    removed = covering.discard_uncovered()
    assert sorted(p.name for p in removed) == sorted(f"00002.{name}.npy" for name in ARRAYS)
    covering.check()
    (tmp_path / "data" / "00001.labels.npy").unlink()
    with pytest.raises(
        sn.CheckpointError,
        match=re.escape(
            f"{tmp_path / 'data' / '00001.labels.npy'}: missing; the distillation dataset is "
            "incomplete"
        ),
    ):
        covering.check()
    with pytest.raises(
        ConfigError,
        match=re.escape("a stored chunk must have the 7 steps of the chunks before it; got 3"),
    ):
        covering.append(
            Dataset(
                *(getattr(whole, n)[:3] for n in ("obs", "labels", "mask", "sources", "executed"))
            )
        )
    with pytest.raises(ConfigError, match=re.escape("a stored chunk needs the executed actions")):
        covering.append(Dataset(whole.obs, whole.labels, whole.mask, whole.sources))
    with pytest.raises(
        ConfigError, match=re.escape("a stored chunk must hold the same arrays as those before it")
    ):
        covering.append(Dataset(whole.obs, whole.labels, whole.mask, None, whole.executed))


def test_a_version_1_state_loads_but_does_not_resume(tmp_path):
    # version 1 held the dataset inline and no executed actions
    row = [1.0, 0.5, 0.7, np.nan, np.nan, 12.0]
    arrays = {
        "params": np.ones(STUDENT.num_params, np.float32),
        "identity": np.full(6 * (STUDENT.pos_dim + 1), 2.0, np.float32),
        "log": np.asarray([row]),
        "data.obs": np.zeros((30, 4, 5), np.float32),
        "data.labels": np.zeros((30, 4, 1), np.float32),
        "data.mask": np.ones((30, 4), bool),
    }
    meta = {
        "format": "sensoryneuron.distill-state",
        "version": 1,
        "iteration": 1,
        "best_test": None,
        "best_iteration": -1,
        "wall_time": 3.0,
    }
    save_npz(tmp_path / "state.npz", arrays, meta)
    state = load_distill_state(tmp_path)  # what the benchmarks read still loads
    assert state.version == 1 and state.iteration == 1 and state.chunks == []
    np.testing.assert_array_equal(state.identity, arrays["identity"])
    with pytest.raises(
        sn.CheckpointError,
        match=re.escape(
            f"{tmp_path / 'state.npz'}: a version-1 distillation state holds its dataset inline, "
            "without the executed actions that version 2 replays; it cannot be resumed "
            "(delete it to distil this stage afresh)"
        ),
    ):
        distill(tiny_staged(), tmp_path, TEACHER, resume=True, backend=_backend())
    save_npz(tmp_path / "state.npz", arrays, dict(meta, version=3))
    with pytest.raises(
        sn.CheckpointError,
        match=re.escape(
            f"{tmp_path / 'state.npz'}: not a sensoryneuron distillation state (version 1 or 2)"
        ),
    ):
        load_distill_state(tmp_path)


def test_the_distillation_fits_with_the_compiled_step_when_the_recipe_says_so(
    tmp_path, monkeypatch
):
    compiled_calls = []

    class Counting:  # stands for the compiled step: counts its calls, runs the eager one
        def __init__(self, model):
            self.model = model

        def __call__(self, *args, **kwargs):
            compiled_calls.append(1)
            return self.model.step_prepared(*args, **kwargs)

    monkeypatch.setattr(distill_module, "compiled_step", Counting)
    for compile_fit in (False, True):
        compiled_calls.clear()
        preset = tiny_staged(iterations=1).replace(distill={"compile_fit": compile_fit})
        distill(preset, tmp_path / str(compile_fit), TEACHER, backend=_backend())
        # 2 Adam steps, each replaying 30 steps; the collection plays the eager policy
        assert len(compiled_calls) == (2 * 30 if compile_fit else 0)
