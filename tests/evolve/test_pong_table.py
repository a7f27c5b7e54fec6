"""The paper's Pong table: every row measured beside the paper's figure, kept, and its
command's options checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sensoryneuron import Policy, VisionAttentionNeuronModel, save_policy
from tasks.spec import get_task

pytest.importorskip("ale_py")

PONG = "ALE/Pong-v5"


@pytest.fixture(scope="module")
def pong_policy():
    model = VisionAttentionNeuronModel(
        act_dim=6, grid=4, msg_dim=8, head="pool", hidden=8, output="logits"
    )
    params = 0.5 * np.random.default_rng(0).standard_normal(model.num_params)
    return Policy(model, params, task={"env_id": PONG}, action=get_task(PONG).action)


def test_the_pong_table_puts_the_paper_beside_every_row_and_keeps_them(
    pong_policy, tmp_path, monkeypatch
):
    from evolve.backends import LocalBackend
    from evolve.evaluation import carracing_table
    from evolve.evaluation.pong_table import (
        OCCLUDED_ROWS,
        ROWS,
        format_pong_table,
        measure_pong_table,
        plot_pong_table,
    )

    run = dict(episodes=1, backend=LocalBackend(1), max_steps=6, cells=tmp_path / "cells")
    result = measure_pong_table(pong_policy, occluded=pong_policy, **run)
    assert [r["condition"] for r in result["rows"]] == [c for _, c, _ in ROWS]
    assert [r["condition"] for r in result["occluded"]] == [c for _, c, _ in OCCLUDED_ROWS]
    assert "occlude=0.7" in result["measured"]["occluded"]
    for row in [*result["rows"], *result["occluded"]]:  # 6 steps: no point is scored
        assert row["ours"] == {"mean": 0.0, "std": 0.0}
    text = format_pong_table(result)
    assert "| shuffled " in text and "| 21 ± 0 " in text and "| -20* " in text
    assert "| trained occluded, 50% occluded | 10* " in text and "not reported" in text
    plot_pong_table(result, tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    kept = sorted(p.name for p in (tmp_path / "cells").iterdir())
    assert len(kept) == len(ROWS) + len(OCCLUDED_ROWS) and "occluded-occlude-0.5.json" in kept
    cell = json.loads((tmp_path / "cells" / "agent-reshuffle-25.json").read_text())
    assert cell["format"] == "sensoryneuron.table-cell" and cell["key"]["env_id"] == PONG

    def refuse(*args, **kwargs):
        raise AssertionError("a kept row was measured again")

    monkeypatch.setattr(carracing_table, "evaluate_policy", refuse)  # measure_cells' own
    again = measure_pong_table(pong_policy, occluded=pong_policy, **run)
    assert again["rows"] == result["rows"]


def test_the_pong_tables_options_are_checked(pong_policy, tmp_path, evolve_cli):
    save_policy(tmp_path / "pong.npz", pong_policy)
    agent = str(tmp_path / "pong.npz")
    code, _, err = evolve_cli("eval", agent, "--occluded", agent)
    assert code == 2 and "--occluded is measured by --paper-table; add --paper-table DIR" in err
    table = ["--paper-table", str(tmp_path / "t")]
    code, _, err = evolve_cli("eval", agent, *table, "--cnn", agent)
    assert code == 2 and "--cnn is not measured by the ALE/Pong-v5 table" in err
    car = Policy(
        VisionAttentionNeuronModel(head="pool", hidden=8),
        np.zeros(VisionAttentionNeuronModel(head="pool", hidden=8).num_params),
        task={"env_id": "CarRacing-v3"},
        action=get_task("CarRacing-v3").action,
    )
    save_policy(tmp_path / "car.npz", car)
    code, _, err = evolve_cli("eval", tmp_path / "car.npz", *table, "--occluded", agent)
    assert code == 2 and "--occluded is for the ALE/Pong-v5 table, not CarRacing-v3's" in err
    code, _, err = evolve_cli("eval", agent, *table, "--occluded", tmp_path / "car.npz")
    assert code == 2 and "an agent of CarRacing-v3, not ALE/Pong-v5" in err
    assert not (tmp_path / "t").exists()
