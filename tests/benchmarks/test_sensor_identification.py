"""The sensor-identification benchmark: its bookkeeping, and a run over a tiny staged run."""

import json
from pathlib import Path

import numpy as np
import pytest

from evolve.presets import DistillConfig, get_preset
from evolve.training.loop import train
from sensoryneuron import AttentionNeuronModel

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sensor_identification.py"


def tiny_run(path: Path, identity_weight: float, attention_weight: float = 0.0) -> Path:
    teacher = get_preset("cartpole-swingup-harder-fnn").replace(
        strategy={"popsize": 8}, training={"generations": 2, "test_every": 2, "test_episodes": 4}
    )
    preset = get_preset("cartpole-swingup-harder").replace(
        model=AttentionNeuronModel(
            act_dim=1,
            pos_dim=4,
            input_change=True,
            lateral_dim=2,
            attention="softmax" if attention_weight else "tanh",
        ),
        strategy={"popsize": 8},
        training={"generations": 1, "repeats": 1, "test_every": 1, "test_episodes": 2},
        teacher=teacher,
        distill=DistillConfig(
            iterations=2,
            episodes=3,
            grad_steps=2,
            batch=2,
            window=20,
            test_every=2,
            test_episodes=2,
            identity_weight=identity_weight,
            attention_weight=attention_weight,
        ),
    )
    train(preset, path, final_episodes=0, progress=False)
    return path


def test_accuracy_is_counted_per_age_bucket_over_live_steps_only(bench):
    correct = np.zeros((4, 2, 3), dtype=bool)
    correct[0, 0] = [True, False, False]  # age 0: 1 of 3
    correct[1, 0] = True  # age 1: 3 of 3
    correct[2:, 1] = True  # episode 1 has ended by then: never counted
    alive = np.array([[1, 1], [1, 1], [1, 0], [1, 0]], dtype=bool)
    age = np.array([[0, -1], [1, -1], [2, -1], [3, -1]])
    rows = bench.accuracy_by_age(correct, alive, age, edges=(0, 1, 2, 4))
    assert [r["slots"] for r in rows] == [3, 3, 6]
    assert [r["accuracy"] for r in rows] == pytest.approx([1 / 3, 1.0, 0.0])
    empty = bench.accuracy_by_age(correct, alive, np.full((4, 2), -1), edges=(0, 1))
    assert empty == [{"from": 0, "to": 1, "slots": 0, "accuracy": None}]


def test_scores_the_classifier_of_a_staged_run(bench, tmp_path, capsys):
    run = tiny_run(tmp_path / "run", identity_weight=1.0)
    out = tmp_path / "ident.json"
    bench.main(
        [str(run), "--episodes", "3", "--steps", "30", "--reshuffle", "7", "--json", str(out)]
    )
    (row,) = json.loads(out.read_text())
    assert row["perturbation"] == "reshuffled every 7 steps" and row["episodes"] == 3
    assert 0.0 <= row["overall"] <= 1.0
    first = row["since_reset"][0]
    assert first["from"] == 0 and first["slots"] == 3 * 5  # every slot of every episode
    assert row["since_reshuffle"][0]["slots"] > 0  # reshuffles happened and were counted
    assert "slots named right" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:  # the classifier fits the distilled student
        bench.main([str(run), "--episodes", "2", "--stage", "final"])
    assert exit_info.value.code == 2
    assert "use --stage distill" in capsys.readouterr().err


def test_reads_the_supervised_attention_of_the_evolved_agent(bench, tmp_path, capsys):
    run = tiny_run(tmp_path / "run", identity_weight=0.0, attention_weight=1.0)
    out = tmp_path / "ident.json"
    bench.main(
        [str(run), "--episodes", "3", "--steps", "30", "--stage", "final", "--json", str(out)]
    )
    (row,) = json.loads(out.read_text())
    assert row["stage"] == "final" and row["readout"] == "attention"
    assert 0.0 <= row["overall"] <= 1.0
    assert row["since_reset"][0]["slots"] == 3 * 5  # every sensor of every episode
    assert "sensors found" in capsys.readouterr().out


def test_a_run_without_either_readout_is_a_usage_error(bench, tmp_path, capsys):
    run = tiny_run(tmp_path / "run", identity_weight=0.0)
    with pytest.raises(SystemExit) as exit_info:
        bench.main([str(run), "--episodes", "2"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "its distillation trained neither a sensor classifier nor the attention" in err
