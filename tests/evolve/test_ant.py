"""The Ant (Ant-v5): the paper's Ant table on the same seeds, and videos coloured by sensor group.

Tests that step the Ant skip without the mujoco extra.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import sensoryneuron as sn
from evolve import cli
from evolve.backends import LocalBackend
from evolve.evaluation.conditions import parse_condition
from evolve.evaluation.evaluate import evaluate_policy
from evolve.evaluation.paper_table import (
    ANT_COLUMNS,
    ANT_ENV_ID,
    FNN_ROW,
    NEVER,
    PAPER_ANT,
    PAPER_ANT_RESHUFFLE,
    PI_ROW,
    format_paper_table,
    measure_paper_table,
    pi_conditions,
    plot_paper_table,
)
from evolve.presets import get_preset
from evolve.seeds import distill_seeds
from evolve.training.distill import collect, imitation_loss, initial_params
from evolve.video.frames import SENSOR_COLOURS, FrameComposer
from evolve.video.record import LockstepEpisodes, record
from sensoryneuron import AttentionNeuronModel
from sensoryneuron.errors import ConfigError
from tasks import Perturbations
from tasks.spec import VectorObservation, get_task

EPISODES = 2
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def ant_policy(preset: str, seed: int) -> sn.Policy:
    """A random-weight policy of ``preset``'s model on Ant-v5."""
    model = get_preset(preset).model
    params = np.random.default_rng(seed).normal(0.0, 0.1, model.num_params).astype(np.float32)
    return sn.Policy(model, params, task={"env_id": ANT_ENV_ID}, action=get_task(ANT_ENV_ID).action)


@pytest.fixture(scope="module")
def result():
    pytest.importorskip("mujoco")
    return measure_paper_table(
        ant_policy("ant", 0),
        ant_policy("ant-fnn", 1),
        ANT_ENV_ID,
        EPISODES,
        LocalBackend(1),
        pi_source="ant.npz",
        fnn_source="ant-fnn.npz",
        max_steps=40,
    )


def test_the_ant_constants_are_the_published_figures():
    assert dict(ANT_COLUMNS) == {"27 obs": "unshuffled", "27 obs shuffled": "shuffled"}
    fnn = PAPER_ANT[FNN_ROW]
    assert (fnn["27 obs"].mean, fnn["27 obs"].std) == (2700, None)
    assert (fnn["27 obs shuffled"].mean, fnn["27 obs shuffled"].std) == (232, None)
    shuffled = PAPER_ANT[PI_ROW]["27 obs shuffled"]
    assert (shuffled.mean, shuffled.std) == (2576, 75) and "runs" in shuffled.note
    assert PAPER_ANT[PI_ROW]["27 obs"] is None  # not reported
    assert (PAPER_ANT_RESHUFFLE[25].mean, PAPER_ANT_RESHUFFLE[25].std) == (2053, None)
    assert [t for t, f in PAPER_ANT_RESHUFFLE.items() if f is None] == [50, 100, 200, 500]
    assert PAPER_ANT_RESHUFFLE[NEVER] is shuffled


def test_the_ant_table_measures_every_row_on_the_same_seeds(result):
    table = pi_conditions(cli.PAPER_TABLES[ANT_ENV_ID])
    assert table == ["unshuffled", "shuffled"] + [
        f"reshuffle={t}" for t in (25, 50, 100, 200, 500)
    ] + [f"realigned={t}" for t in (25, 50, 100, 200, 500)]
    assert list(result["measured"][PI_ROW]) == table
    assert list(result["measured"][FNN_ROW]) == ["unshuffled", "shuffled"]
    for rows in result["measured"].values():
        assert all(len(row["returns"]) == EPISODES for row in rows.values())
    assert set(result["ant"]) == {PI_ROW, FNN_ROW} and "cartpole" not in result
    assert [e["t"] for e in result["reshuffle"]] == [25, 50, 100, 200, 500, NEVER]
    assert result["ant"][FNN_ROW]["27 obs"]["paper"] == {"mean": 2700, "std": None}
    assert result["ant"][PI_ROW]["27 obs"]["paper"] is None
    assert result["reshuffle"][1]["paper"] is None
    assert "AntBulletEnv" in result["paper"]["note"] and result["paper"]["episodes"] is None


def test_ant_realigned_rows_equal_the_never_row_episode_by_episode(result):
    never = result["measured"][PI_ROW]["shuffled"]["returns"]
    for entry in result["reshuffle"][:-1]:
        returns = result["measured"][PI_ROW][entry["realigned"]["condition"]]["returns"]
        assert returns == never, entry["t"]
        assert entry["realigned"]["equal"] and entry["realigned"]["episodes_equal"] == EPISODES
    assert result["all_realigned_equal"]


def test_the_ant_table_prints_dashes_for_unreported_figures_and_plots(result, tmp_path):
    text = format_paper_table(result)
    assert "| FNN             | 2700 " in text and "| 232 " in text
    assert "2576 ± 75*" in text and "| 25                | 2053 " in text
    assert "| 50                | -    " in text
    assert "paper: on PyBullet's AntBulletEnv" in text
    assert "yes, all 5 x 2 realigned episodes" in text
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    plot_paper_table(result, tmp_path / "table.png")
    assert (tmp_path / "table.png").read_bytes().startswith(PNG_SIGNATURE)


def test_the_cli_picks_the_task_table_and_its_default_episodes(tmp_path, capsys, monkeypatch):
    seen = []

    def fake_measure(pi, fnn, env_id, episodes, backend, **kwargs):
        seen.append((env_id, episodes, fnn is None, kwargs["fnn_source"]))
        return {"env_id": env_id}

    monkeypatch.setattr(cli, "measure_paper_table", fake_measure)
    monkeypatch.setattr(cli, "format_paper_table", lambda result: "")
    monkeypatch.setattr(cli, "plot_paper_table", lambda result, path: None)
    agent = tmp_path / "ant.npz"
    sn.save_policy(agent, ant_policy("ant", 0))
    fnn = tmp_path / "ant-fnn.npz"
    sn.save_policy(fnn, ant_policy("ant-fnn", 1))
    assert cli.main(["eval", str(agent), "--paper-table", str(tmp_path / "a")]) == 0
    assert (
        cli.main(["eval", str(agent), "--paper-table", str(tmp_path / "b"), "--fnn", str(fnn)]) == 0
    )
    assert cli.main(["eval", "cartpole-swingup-harder", "--paper-table", str(tmp_path / "c")]) == 0
    assert seen == [
        (ANT_ENV_ID, 100, False, "ant-fnn"),  # the shipped baseline
        (ANT_ENV_ID, 100, False, str(fnn)),
        ("SensoryNeuron/CartPoleSwingUpHarder-v0", 1000, False, "fnn-baseline"),
    ]
    capsys.readouterr()


def test_the_shipped_ant_walks_with_its_inputs_shuffled_where_the_fnn_collapses():
    pytest.importorskip("mujoco")
    pi, fnn = sn.load_policy("ant"), sn.load_policy("ant-fnn")
    assert pi.model == get_preset("ant").model and fnn.model == get_preset("ant-fnn").model
    conditions = [parse_condition(c) for c in ("unshuffled", "shuffled")]
    # held-out seeds (training and validation used seeds below 5000)
    _, shuffled = evaluate_policy(pi, ANT_ENV_ID, conditions, episodes=2, seed_offset=5000)
    true_order, fnn_shuffled = evaluate_policy(
        fnn, ANT_ENV_ID, conditions, episodes=2, seed_offset=5000
    )
    # 100 episodes (seeds from 6000): 2379.3 +- 323.7 shuffled; the FNN 2646.3 +- 383.2,
    # and -657.0 +- 517.7 shuffled
    assert min(shuffled["returns"]) > 1800, shuffled["returns"]
    assert true_order["mean"] > 2000 and max(fnn_shuffled["returns"]) < 500


def test_a_cartpole_checkpoint_still_gives_the_cartpole_table():
    pi = sn.load_policy("cartpole-swingup-harder")
    out = measure_paper_table(
        pi, None, "SensoryNeuron/CartPoleSwingUpHarder-v0", 1, LocalBackend(1), max_steps=20
    )
    assert "cartpole" in out and "ant" not in out
    assert list(out["cartpole"][PI_ROW]) == ["5 obs", "5 obs shuffled", "10 obs (duplicated)",
                                             "5 obs + 5 noise"]  # fmt: skip
    with pytest.raises(ConfigError, match="Ant-v5"):
        measure_paper_table(pi, None, "Pendulum-v1", 1, LocalBackend(1))


def test_the_ant_sensor_groups_cover_the_27_inputs_once():
    observation = get_task(ANT_ENV_ID).observation
    assert observation.size == 27
    assert [name for name, _ in observation.groups] == [
        "torso height", "orientation", "joint angles", "torso velocity", "angular velocity",
        "joint velocities",
    ]  # fmt: skip
    group_of = observation.group_of()
    assert len(group_of) == 27 and sorted(group_of) == list(group_of)
    assert [group_of.count(g) for g in range(6)] == [1, 4, 8, 3, 3, 8]
    names = observation.names
    assert [names[i] for i, g in enumerate(group_of) if g == 2] == [
        n for n in names if n.endswith(" angle")
    ]
    with pytest.raises(ConfigError, match="do not cover the 2 sensors once each"):
        VectorObservation(("a", "b"), (("x", 1), ("y", 2)))


def test_an_ant_recording_colours_slots_by_sensor_group(tmp_path, monkeypatch):
    pytest.importorskip("mujoco")
    monkeypatch.setenv("MUJOCO_GL", "egl")
    policy = ant_policy("ant", 0)
    with LockstepEpisodes([policy], ANT_ENV_ID, Perturbations(), seed=0, steps=2) as episodes:
        first = next(iter(episodes))[0]
    group_of = get_task(ANT_ENV_ID).observation.group_of()
    for source in first.sources:
        assert first.colour(int(source)) == SENSOR_COLOURS[group_of[source]]
    legend = FrameComposer([first]).columns[0][-1]
    assert [name for name, _ in legend.entries][:2] == ["torso height", "orientation"]
    out = tmp_path / "ant.gif"
    result = record([policy], ANT_ENV_ID, out, Perturbations(), steps=3, fps=10, progress=False)
    assert result.frames == 3 and out.stat().st_size > 0


def test_an_ant_video_follows_the_ant_and_changes_no_episode(monkeypatch):
    pytest.importorskip("mujoco")
    monkeypatch.setenv("MUJOCO_GL", "egl")
    spec = get_task(ANT_ENV_ID)
    rendering, plain = spec.make_env(render_mode="rgb_array"), spec.make_env()
    rendering.reset(seed=3)
    plain.reset(seed=3)
    for action in np.random.default_rng(0).uniform(-1, 1, (20, 8)):
        seen, unseen = rendering.step(action), plain.step(action)
        np.testing.assert_array_equal(seen[0], unseen[0])
        assert seen[1] == unseen[1]

    def ant_pixels(frame):  # the ant is orange on a green and black floor under a grey sky
        red, blue = frame[..., 0].astype(int), frame[..., 2].astype(int)
        return int(((red > 150) & (red - blue > 60)).sum())

    before = ant_pixels(rendering.render())
    sim = rendering.unwrapped
    qpos = sim.data.qpos.copy()
    qpos[:2] += (20.0, 10.0)  # far out of the stock camera's view
    sim.set_state(qpos, sim.data.qvel.copy())
    assert before > 1000 and ant_pixels(rendering.render()) > before / 2


def test_a_pi_student_learns_the_shipped_teacher_on_episodes_it_never_saw():
    """The ant recipe's distillation, short: 200 Adam steps on 8 teacher-driven episodes of
    30 steps. On 4 other episodes the student's action error falls to under 40% of where it
    started and its attention leaves the even spread over the 27 slots (log 27 = 3.30)."""
    pytest.importorskip("mujoco")
    torch.manual_seed(0)
    model = AttentionNeuronModel(
        act_dim=8, num_latents=27, msg_dim=16, pos_dim=8, attention="softmax", hidden=(16,)
    )
    preset = get_preset("ant").replace(model=model, engine="gym")
    student, teacher = sn.Policy(model, initial_params(model, 0, 0.1)), sn.load_policy("ant-fnn")
    data = collect(student, teacher, preset, distill_seeds(0, 0, 8), 30, np.ones(8, dtype=bool))
    other = collect(student, teacher, preset, distill_seeds(0, 1, 4), 30, np.ones(4, dtype=bool))
    params = torch.nn.Parameter(torch.from_numpy(student.params.copy()))
    sensors = get_task(ANT_ENV_ID).observation.size  # 27

    def held_out() -> tuple[float, float]:
        with torch.no_grad():
            losses = imitation_loss(model, params, other, None, attention_sensors=sensors)
        return float(losses.action), float(losses.attention)

    action_before, attention_before = held_out()
    assert attention_before == pytest.approx(np.log(sensors), abs=0.01)
    opt = torch.optim.Adam([params], lr=1e-2)
    for _ in range(200):
        losses = imitation_loss(model, params, data, None, attention_sensors=sensors)
        opt.zero_grad()
        (losses.action + losses.attention).backward()
        opt.step()
    action_after, attention_after = held_out()  # measured: 1.99 -> 0.51, 3.30 -> 3.03
    assert action_after < 0.4 * action_before, (action_before, action_after)
    assert attention_after < 0.95 * attention_before, (attention_before, attention_after)
