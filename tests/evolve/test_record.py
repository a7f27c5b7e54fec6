"""Videos (`evolve record`): one readable frame per step, banners at reshuffles, clear errors."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import sensoryneuron as sn
from evolve.rollout import EpisodeJob, rollout
from evolve.video.frames import compose_frame, overlay_text, slot_sources
from evolve.video.record import LockstepEpisodes, banner_steps, record
from sensoryneuron.errors import ConfigError
from tasks import Perturbations
from tasks.spec import get_task

ENV = "SensoryNeuron/CartPoleSwingUp-v0"  # starts near rest: no episode ends within 40 steps
HARDER = "SensoryNeuron/CartPoleSwingUpHarder-v0"


def attention_policy(seed: int = 0) -> sn.Policy:
    model = sn.AttentionNeuronModel(act_dim=1)
    params = np.random.default_rng(seed).normal(0.0, 0.1, model.num_params)
    return sn.Policy(model, params.astype(np.float32), task={"env_id": ENV})


def fnn_policy() -> sn.Policy:
    model = sn.FeedForwardModel(obs_dim=5, act_dim=1, hidden=(16,))
    return sn.Policy(model, np.zeros(model.num_params, dtype=np.float32), task={"env_id": ENV})


def frames_of(policies, perturbations, steps, seed=0, env_id=ENV, **kwargs):
    with LockstepEpisodes(
        policies, env_id, perturbations, seed=seed, steps=steps, **kwargs
    ) as episodes:
        frames = list(episodes)
    return frames, episodes.results()


@pytest.mark.parametrize("ext", ["mp4", "gif"])
def test_recording_n_steps_writes_exactly_n_frames_of_the_reported_size(tmp_path, ext):
    out = tmp_path / f"video.{ext}"
    perturbations = Perturbations(reshuffle_every=4, noise_channels=2)
    result = record([attention_policy()], ENV, out, perturbations, steps=12, progress=False)
    frames = list(iio.imiter(out))
    assert result.frames == len(frames) == 12
    width, height = result.size
    assert width % 16 == 0 and height % 16 == 0
    assert all(frame.shape[:2] == (height, width) for frame in frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary file left


def test_the_recording_plays_the_rollout_loop_of_training_and_evaluation():
    policy = attention_policy()
    perturbations = Perturbations(reshuffle_every=(3, 9), noise_channels=2, duplicate=2)
    frames, (agent,) = frames_of([policy], perturbations, steps=40, seed=5)
    job = EpisodeJob(
        model=policy.model.to_dict(),
        env_id=ENV,
        perturbations=perturbations.to_dict(),
        seeds=(5,),
        max_steps=40,
    )
    engine = rollout(job, policy.params[None])
    assert agent.steps == engine.steps[0, 0] == 40
    assert agent.episode_return == engine.returns[0, 0]  # the same episode, to the bit
    assert len(frames) == 40 and agent.reshuffle_steps


@pytest.mark.parametrize(("env_id", "kind"), [("CartPole-v1", "discrete"), ("Pendulum-v1", "box")])
def test_a_gymnasium_task_records_end_to_end(tmp_path, env_id, kind):
    action = get_task(env_id).action
    model = sn.AttentionNeuronModel(act_dim=action.output_dim)
    params = np.random.default_rng(0).normal(0.0, 0.1, model.num_params).astype(np.float32)
    policy = sn.Policy(model, params, action=action)
    assert action.kind == kind
    frames, _ = frames_of(
        [policy], Perturbations(reshuffle_every=2, noise_channels=1), 4, env_id=env_id
    )
    assert all(f.env_frame.ndim == 3 and f.env_frame.dtype == np.uint8 for (f,) in frames)
    for (f,) in frames:  # the action shown is the env's: an index, or a torque within bounds
        if kind == "discrete":
            assert f.action.shape == () and int(f.action) in (0, 1)
        else:
            assert f.action.shape == (1,) and -2.0 <= float(f.action[0]) <= 2.0
    out = tmp_path / "gym.gif"
    result = record([policy, policy], env_id, out, seed=1, steps=4, progress=False)
    assert result.frames == len(list(iio.imiter(out))) == 4
    assert [a.steps for a in result.agents] == [4, 4]


def test_banner_steps_cover_the_frames_from_each_reshuffle_on():
    assert banner_steps([100, 200], 250, duration=15) == [*range(100, 115), *range(200, 215)]
    assert banner_steps([245], 250, duration=15) == list(range(245, 250))  # cut at the end
    assert banner_steps([10, 12], 30, duration=5) == list(range(10, 17))  # overlapping
    assert banner_steps([], 30) == []


def test_frames_show_the_banner_exactly_after_each_reshuffle():
    frames, results = frames_of(
        [attention_policy()], Perturbations(reshuffle_every=10), steps=40, banner_frames=3
    )
    column = [columns[0] for columns in frames]
    assert [f.step for f in column] == list(range(40))
    changed = [
        f.step
        for before, f in zip(column, column[1:], strict=False)
        if not np.array_equal(before.permutation, f.permutation)
    ]
    assert changed == [10, 20, 30]
    assert results[0].reshuffle_steps == (10, 20, 30)
    expected = [10, 11, 12, 20, 21, 22, 30, 31, 32]
    assert banner_steps(results[0].reshuffle_steps, 40, duration=3) == expected
    assert [f.step for f in column if f.banner] == expected
    assert [f.step for f in column if overlay_text(f)["banner"]] == expected
    assert overlay_text(column[10])["banner"].startswith("RESHUFFLE")
    # the status line: a Box action as signed values, a discrete one as its index
    box = dataclasses.replace(column[5], action=np.array([0.5, -0.25], np.float32))
    assert overlay_text(box)["status"].endswith("action +0.50 -0.25")
    choice = dataclasses.replace(column[5], action=np.int64(3))
    assert overlay_text(choice)["status"].endswith("action 3")


def test_side_by_side_agents_share_start_permutations_and_noise():
    frames, _ = frames_of(
        [attention_policy(0), attention_policy(1)],
        Perturbations(reshuffle_every=5, noise_channels=3),
        steps=20,
        seed=3,
    )
    assert np.array_equal(frames[0][0].obs, frames[0][1].obs)  # the same start state
    for a, b in frames:
        assert np.array_equal(a.permutation, b.permutation) and a.banner == b.banner
        assert np.array_equal(a.obs[-3:], b.obs[-3:])  # the same noise
    assert not np.array_equal(frames[-1][0].obs[:5], frames[-1][1].obs[:5])  # acted apart
    assert torch.is_grad_enabled()  # two loops in lockstep leave torch's grad mode as it was


def test_each_slot_is_coloured_by_the_sensor_it_carries():
    frames, _ = frames_of(
        [attention_policy()], Perturbations(duplicate=2, noise_channels=3), steps=3
    )
    for (frame,) in frames:
        sources = frame.sources
        assert sources[-3:].tolist() == [-1, -1, -1]
        assert sorted(sources[:-3].tolist()) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
        for sensor in range(5):  # the two copies of a sensor carry the same value
            first, second = frame.obs[np.flatnonzero(sources == sensor)]
            assert first == second
    assert slot_sources(np.array([3, 0, 4, 1, 2, 5]), 3, 2).tolist() == [0, 0, 1, 1, 2, 2, -1, -1]


def test_compose_frame_sizes_for_one_and_two_columns():
    frames, _ = frames_of([attention_policy(), fnn_policy()], Perturbations(), steps=2)
    pi, fnn = frames[1]
    assert pi.attention.shape == (16, 5) and fnn.attention.shape == (0, 5)
    one = compose_frame([pi], "title")
    two = compose_frame([pi, fnn], "title")
    assert one.dtype == np.uint8 and one.shape[2] == 3
    assert one.shape[0] % 16 == 0 and one.shape[1] % 16 == 0
    assert two.shape == (one.shape[0], 2 * one.shape[1], 3)


def test_the_video_ends_once_every_episode_has_ended(tmp_path):
    out = tmp_path / "short.gif"
    result = record([fnn_policy()], HARDER, out, seed=3, steps=1000, progress=False)
    (agent,) = result.agents
    assert agent.ended and result.frames == agent.steps == 8  # the cart leaves the track
    assert len(list(iio.imiter(out))) == 8


def test_a_failed_recording_leaves_the_old_file_and_no_temporary_one(tmp_path, monkeypatch):
    out = tmp_path / "video.mp4"
    out.write_bytes(b"old")
    policy = attention_policy()
    step, calls = sn.AttentionNeuronModel.step_prepared, []

    def failing_step(*args, **kwargs):  # the rollout loop calls the model, not Policy.act
        calls.append(1)
        if len(calls) > 5:
            raise RuntimeError("boom")
        return step(*args, **kwargs)

    monkeypatch.setattr(sn.AttentionNeuronModel, "step_prepared", failing_step)
    with pytest.raises(RuntimeError, match="boom"):
        record([policy], ENV, out, steps=10, progress=False)
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "video.avi",
            "video.avi: unsupported video format '.avi'; the format follows the extension, "
            "allowed: .gif, .mp4",
        ),
        ("video", "video: no extension; the format follows the extension"),
        ("file/video.mp4", "cannot create folder"),
    ],
)
def test_bad_output_paths_are_refused_before_anything_runs(tmp_path, name, message):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConfigError, match=re.escape(message)):
        record([attention_policy()], ENV, tmp_path / name, steps=2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_settings_a_video_cannot_have_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=re.escape("a GIF plays at most 50 frames per second")):
        record([attention_policy()], ENV, tmp_path / "v.gif", fps=60, progress=False)
    message = "the feed-forward policy takes exactly 5 inputs, but the observation (shuffled at reset, +2 noise) has 7"
    with pytest.raises(ConfigError, match=re.escape(message)):
        record([fnn_policy()], ENV, tmp_path / "v.mp4", Perturbations(noise_channels=2))
    assert list(tmp_path.iterdir()) == []


def test_a_reference_model_beside_a_feed_forward_one(reference_path):
    policy = sn.load_reference_policy(reference_path("cartpole_pi"))
    frames, results = frames_of(
        [policy, fnn_policy()], Perturbations(reshuffle_every=100), steps=150, seed=9, env_id=HARDER
    )
    pi, fnn = results
    assert len(frames) == 150 and not pi.ended and pi.reshuffle_steps == (100,)
    assert fnn.ended and fnn.steps < 150
    held = [b for _, b in frames[fnn.steps :]]
    assert all(b.done and b.step == fnn.steps and not b.banner for b in held)
    assert overlay_text(held[0])["status"].startswith(f"episode over after {fnn.steps} steps")
    assert compose_frame(frames[-1]).shape == compose_frame(frames[0]).shape


def evolve(*args):
    return subprocess.run(
        [sys.executable, "-m", "evolve", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def checkpoint(tmp_path):
    sn.save_policy(tmp_path / "pi.npz", attention_policy())
    sn.save_policy(tmp_path / "fnn.npz", fnn_policy())
    return tmp_path


def test_cli_records_a_gif(checkpoint):
    out = checkpoint / "videos" / "pi_vs_fnn.gif"
    result = evolve(
        "record", checkpoint / "pi.npz", "--compare", checkpoint / "fnn.npz",
        "--reshuffle-every", "2", "--steps", "5", "-o", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}: 5 frames, 1280x" in result.stdout
    assert len(list(iio.imiter(out))) == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "{tmp}/video.avi"], "unsupported video format '.avi'"),
        (["-o", "{tmp}/pi.npz/video.mp4"], "cannot create folder"),
        (
            ["--compare", "{tmp}/fnn.npz", "--noise-channels", "2", "-o", "{tmp}/v.mp4"],
            "the feed-forward policy takes exactly 5 inputs",
        ),
    ],
)
def test_cli_errors_are_one_line_with_exit_code_2(checkpoint, args, message):
    args = [a.format(tmp=checkpoint) for a in args]
    result = evolve("record", checkpoint / "pi.npz", *args)
    assert result.returncode == 2
    assert result.stderr.startswith("evolve: error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sorted(p.name for p in checkpoint.iterdir()) == ["fnn.npz", "pi.npz"]
