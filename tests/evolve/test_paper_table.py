"""`evolve eval --paper-table`: the paper's cart-pole tables beside ours, on the same seeds."""

from __future__ import annotations

import argparse
import copy
import json
import shutil

import pytest

import sensoryneuron as sn
from evolve import cli
from evolve.backends import LocalBackend
from evolve.evaluation.paper_table import (
    COLUMNS,
    EQUAL_TOLERANCE,
    FNN_ROW,
    PAPER_CARTPOLE,
    PAPER_ENV_ID,
    PAPER_RESHUFFLE,
    PI_ROW,
    compare_returns,
    format_paper_table,
    measure_paper_table,
    pi_conditions,
    plot_paper_table,
)
from sensoryneuron.checkpoints import PRETRAINED_DIR
from sensoryneuron.errors import ConfigError

EPISODES = 6
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result():
    pi = sn.load_policy("cartpole-swingup-harder")
    fnn = sn.load_policy("fnn-baseline")
    return measure_paper_table(
        pi,
        fnn,
        PAPER_ENV_ID,
        EPISODES,
        LocalBackend(1),
        pi_source="cartpole-swingup-harder",
        fnn_source="fnn-baseline",
    )


def test_paper_constants_are_the_published_figures():
    def figures(row):
        return {column: (f.mean, f.std) for column, f in row.items()}

    assert figures(PAPER_CARTPOLE[PI_ROW]) == {
        "5 obs": (472, 426),
        "5 obs shuffled": (471, 426),
        "10 obs (duplicated)": (471, 425),
        "5 obs + 5 noise": (461, 410),
    }
    assert figures(PAPER_CARTPOLE[FNN_ROW]) == {
        "5 obs": (593, 433),
        "5 obs shuffled": (38, 120),
        "10 obs (duplicated)": (593, 433),
        "5 obs + 5 noise": (137, 242),
    }
    assert "trained on 10" in PAPER_CARTPOLE[FNN_ROW]["10 obs (duplicated)"].note
    assert figures(PAPER_RESHUFFLE) == {
        25: (107, 146),
        50: (163, 198),
        100: (242, 254),
        200: (318, 310),
        500: (407, 380),
        "never": (472, 426),
    }
    assert dict(COLUMNS) == {
        "5 obs": "unshuffled",
        "5 obs shuffled": "shuffled",
        "10 obs (duplicated)": "duplicate=2",
        "5 obs + 5 noise": "noise=5",
    }


def test_every_distinct_condition_is_measured_once_with_per_episode_returns(result):
    assert pi_conditions() == list(dict.fromkeys(pi_conditions()))
    assert list(result["measured"][PI_ROW]) == pi_conditions()
    assert len(pi_conditions()) == 4 + 5 + 5  # 4 columns, 5 reshuffles, 5 realigned
    for rows in result["measured"].values():
        for row in rows.values():
            assert "skipped" in row or len(row["returns"]) == EPISODES
    assert result["precision"] == "float64" and result["episodes"] == EPISODES
    assert result["env_id"] == PAPER_ENV_ID
    assert result["sources"] == {PI_ROW: "cartpole-swingup-harder", FNN_ROW: "fnn-baseline"}


def test_realigned_reshuffles_equal_the_never_reshuffled_episodes(result):
    never = result["measured"][PI_ROW]["shuffled"]["returns"]
    for entry in result["reshuffle"][:-1]:
        realigned = entry["realigned"]
        returns = result["measured"][PI_ROW][realigned["condition"]]["returns"]
        worst = max(abs(a - b) for a, b in zip(returns, never, strict=True))
        assert realigned["max_abs_diff"] == worst == EQUAL_TOLERANCE == 0.0, entry["t"]
        assert realigned["equal"] and realigned["episodes_equal"] == EPISODES
    assert result["reshuffle"][-1]["realigned"] is None  # never: nothing to realign
    assert result["all_realigned_equal"]
    # Without realignment a reshuffle is a real perturbation.
    assert result["measured"][PI_ROW]["reshuffle=25"]["returns"] != never


def test_never_is_the_shuffled_cell_and_cells_carry_paper_and_ours(result):
    never = result["reshuffle"][-1]
    assert never["t"] == "never" and never["condition"] == "shuffled"
    assert never["ours"] == result["cartpole"][PI_ROW]["5 obs shuffled"]["ours"]
    shuffled = result["measured"][PI_ROW]["shuffled"]
    assert never["ours"] == {"mean": shuffled["mean"], "std": shuffled["std"]}
    assert result["cartpole"][PI_ROW]["5 obs shuffled"]["paper"] == {"mean": 471, "std": 426}
    assert result["reshuffle"][0]["paper"] == {"mean": 107, "std": 146}


def test_feed_forward_cells_that_do_not_apply_carry_the_reason(result):
    fnn = result["cartpole"][FNN_ROW]
    for column in ("10 obs (duplicated)", "5 obs + 5 noise"):
        assert fnn[column]["ours"] == {
            "skipped": "the feed-forward policy takes exactly 5 inputs, this condition gives 10"
        }
        assert "mean" in fnn[column]["paper"]  # the paper's figure is still shown
    for column in ("5 obs", "5 obs shuffled"):
        assert set(fnn[column]["ours"]) == {"mean", "std"}


def test_without_a_baseline_the_whole_fnn_row_says_why():
    pi = sn.load_policy("cartpole-swingup-harder")
    out = measure_paper_table(pi, None, PAPER_ENV_ID, 1, LocalBackend(1), max_steps=30)
    for column, _ in COLUMNS:
        assert out["cartpole"][FNN_ROW][column]["ours"] == {
            "skipped": "no feed-forward baseline was given"
        }
    assert out["sources"][FNN_ROW] is None


def test_only_the_harder_task_has_a_paper_table():
    pi = sn.load_policy("cartpole-swingup-harder")
    with pytest.raises(ConfigError, match="CartPoleSwingUpHarder"):
        measure_paper_table(pi, None, "SensoryNeuron/CartPoleSwingUp-v0", 1, LocalBackend(1))


def test_compare_returns_counts_episodes_within_tolerance():
    assert compare_returns([1.0, 2.0], [1.0, 2.0]) == {
        "max_abs_diff": 0.0,
        "episodes_equal": 2,
        "equal": True,
    }
    assert compare_returns([1.0], [1.0 + 1e-12])["equal"] is False  # bit-identical or not equal
    out = compare_returns([1.0, 2.0, 3.0], [1.0, 2.5, 3.0])
    assert out == {"max_abs_diff": 0.5, "episodes_equal": 2, "equal": False}


def test_formatted_tables_show_paper_and_ours_side_by_side(result):
    text = format_paper_table(result)
    shuffled = result["cartpole"][PI_ROW]["5 obs shuffled"]["ours"]
    assert "471 ± 426" in text and f"{shuffled['mean']:.1f} ± {shuffled['std']:.1f}" in text
    assert "107 ± 146" in text and "593 ± 433*" in text
    assert "* paper: a separate FNN trained on 10 inputs" in text
    assert "n/a (FNN): the feed-forward policy takes exactly 5 inputs" in text
    assert "Realigned = never, episode by episode: yes" in text
    table_rows = [line for line in text.splitlines() if line.startswith("|")]
    assert len({line.count("|") for line in table_rows[:4]}) == 1  # no stray column separators
    realigned = result["reshuffle"][0]["realigned"]
    assert f"{realigned['mean']:.1f} ± {realigned['std']:.1f}" in text


def test_a_realigned_mismatch_is_reported_with_counts(result):
    broken = copy.deepcopy(result)
    broken["reshuffle"][0]["realigned"].update(max_abs_diff=3.5, episodes_equal=4, equal=False)
    broken["all_realigned_equal"] = False
    text = format_paper_table(broken)
    assert "Realigned = never, episode by episode: NO (max |diff| 3.5)" in text
    assert f"t=25: 4/{EPISODES}" in text


def test_json_ready_and_png_written(result, tmp_path):
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    path = tmp_path / "sub" / "table.png"
    plot_paper_table(result, path)
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert [p.name for p in path.parent.iterdir()] == ["table.png"]  # no temporary file left


def test_cli_prints_the_tables_and_writes_json_and_png(tmp_path, capsys):
    out = tmp_path / "results"
    code = cli.main(
        ["eval", "cartpole-swingup-harder", "--paper-table", str(out), "--episodes", "2",
         "--workers", "1"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "471 ± 426" in captured.out and "107 ± 146" in captured.out
    assert f"wrote {out / 'paper_table.json'}" in captured.out
    assert f"wrote {out / 'paper_table.png'}" in captured.out
    payload = json.loads((out / "paper_table.json").read_text())
    assert payload["episodes"] == 2 and payload["precision"] == "float64"
    assert payload["sources"] == {PI_ROW: "cartpole-swingup-harder", FNN_ROW: "fnn-baseline"}
    assert len(payload["measured"][PI_ROW]["realigned=25"]["returns"]) == 2
    assert (out / "paper_table.png").read_bytes().startswith(PNG_SIGNATURE)


def test_cli_episodes_default_to_1000_with_the_paper_table(tmp_path, capsys, monkeypatch, result):
    seen = {}

    def fake_measure(pi, fnn, env_id, episodes, backend, **kwargs):
        seen.update(episodes=episodes, fnn=fnn, **kwargs)
        return result

    monkeypatch.setattr(cli, "measure_paper_table", fake_measure)
    assert cli.main(["eval", "cartpole-swingup-harder", "--paper-table", str(tmp_path)]) == 0
    assert seen["episodes"] == 1000 and seen["fnn_source"] == "fnn-baseline"

    def fake_evaluate(policy, env_id, conditions, episodes, **kwargs):
        seen["plain"] = episodes
        return []

    monkeypatch.setattr(cli, "evaluate_policy", fake_evaluate)
    assert cli.main(["eval", "cartpole-swingup-harder", "--condition", "shuffled"]) == 0
    assert seen["plain"] == 100


def _fnn_args(source, fnn=None):
    return argparse.Namespace(source=str(source), fnn=fnn, reference=None)


def test_the_fnn_is_given_or_the_runs_teacher_or_the_shipped_baseline(tmp_path):
    run = tmp_path / "run"
    (run / "teacher").mkdir(parents=True)
    shutil.copy(PRETRAINED_DIR / "cartpole-swingup-harder.npz", run / "best.npz")
    shutil.copy(PRETRAINED_DIR / "fnn-baseline.npz", run / "teacher" / "best.npz")
    _, source = cli._paper_table_fnn(_fnn_args(run))
    assert source == str(run / "teacher" / "best.npz")
    _, source = cli._paper_table_fnn(_fnn_args(run, fnn=str(PRETRAINED_DIR / "fnn-baseline.npz")))
    assert source == str(PRETRAINED_DIR / "fnn-baseline.npz")
    policy, source = cli._paper_table_fnn(_fnn_args("cartpole-swingup-harder"))
    assert source == "fnn-baseline" and isinstance(policy.model, sn.FeedForwardModel)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--paper-table", "{tmp}", "--condition", "shuffled"],
            "--condition cannot be used with --paper-table",
        ),
        (
            ["--paper-table", "{tmp}", "--env-id", "SensoryNeuron/CartPoleSwingUp-v0"],
            "--paper-table reproduces the paper's tables of SensoryNeuron/CartPoleSwingUpHarder-v0, "
            "Ant-v5, CarRacing-v3, ALE/Pong-v5, not SensoryNeuron/CartPoleSwingUp-v0's",
        ),
        (
            ["--paper-table", "{tmp}", "--fnn", "cartpole-swingup-harder"],
            "cartpole-swingup-harder is not a feed-forward baseline (its model is attention-neuron)",
        ),
        (["--fnn", "fnn-baseline"], "--fnn names the baseline of --paper-table"),
        (["--paper-table", "{tmp}", "--json", "x.json"], "--json cannot be used with"),
        (["--cnn", "x.npz"], "--cnn is measured by --paper-table; add --paper-table DIR"),
        (
            ["--paper-table", "{tmp}", "--cnn", "x.npz"],
            "--cnn is for the CarRacing-v3 table, not SensoryNeuron/CartPoleSwingUpHarder-v0's",
        ),
    ],
)
def test_bad_paper_table_options_are_one_line_with_exit_code_2(args, message, tmp_path, capsys):
    argv = ["eval", "cartpole-swingup-harder", *(a.format(tmp=tmp_path) for a in args)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("evolve: error: ") and message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "paper_table.json").exists()
