"""The paper's Pong figures beside this project's, measured on the same held-out games.

Tang & Ha (NeurIPS 2021) report, for Pong with shuffled 6x6 patches: the agent distilled
from a PPO teacher wins every game shuffled (21 ± 0), scores about -10 reshuffled every 100
steps and about -20 every 25; trained on 50% of the patches hidden and tested so, about 10
(read off their figures; they give no spread). :func:`measure_pong_table` evaluates an agent
shuffled, reshuffled every t steps and with a fraction of its patches hidden, on one set of
held-out games of stock Gymnasium ``ALE/Pong-v5`` (sticky actions, as the task prepares it),
and, when given, an agent trained on occluded patches (``pong-occluded``) at each fraction.

A game's score is ours minus the opponent's, in [-21, 21]. Games are long (a won game is
3,000 to 4,000 agent steps), so each row is kept in ``cells`` as soon as it is measured, as
CarRacing's table does (:func:`evolve.evaluation.carracing_table.measure_cells`): a table
killed part way resumes from the rows on disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from evolve.backends import Backend
from evolve.evaluation.carracing_table import measure_cells, paper_cell, plot_rows, table_rows
from evolve.evaluation.paper_table import PAPER_CITATION, PaperFigure, _markdown, _ours_text
from sensoryneuron.policy import Policy

PONG_ID = "ALE/Pong-v5"
PONG_EPISODES = 100
FORMAT = "sensoryneuron.pong-table"
RESHUFFLE_INTERVALS = (25, 50, 100, 200, 500)
OCCLUSIONS = (0.1, 0.3, 0.5, 0.7)
READ_OFF = "about; read off the paper's figure, which gives no spread"

# (row, condition, the paper's figure, or what it says)
ROWS: tuple[tuple[str, str, PaperFigure | str], ...] = (
    ("shuffled", "shuffled", PaperFigure(21, 0)),
    *(
        (
            f"reshuffle every {t}",
            f"reshuffle={t}",
            {25: PaperFigure(-20, None, READ_OFF), 100: PaperFigure(-10, None, READ_OFF)}.get(
                t, "not reported"
            ),
        )
        for t in RESHUFFLE_INTERVALS
    ),
    *((f"{f:.0%} occluded", f"occlude={f}", "not reported") for f in OCCLUSIONS),
)
# The agent trained on occluded patches, at each fraction (the paper trained and tested one
# at 50%).
OCCLUDED_ROWS: tuple[tuple[str, str, PaperFigure | str], ...] = tuple(
    (
        f"trained occluded, {f:.0%} occluded",
        f"occlude={f}",
        PaperFigure(10, None, READ_OFF) if f == 0.5 else "not reported",
    )
    for f in OCCLUSIONS
)


def measure_pong_table(
    agent: Policy,
    episodes: int,
    backend: Backend,
    *,
    occluded: Policy | None = None,
    seed_offset: int = 0,
    agent_source: str = "",
    occluded_source: str = "",
    max_steps: int | None = None,
    cells: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Measure every row of :data:`ROWS` for ``agent`` (and of :data:`OCCLUDED_ROWS` for
    ``occluded``), all on the same ``episodes`` held-out games from ``seed_offset`` of stock
    Gymnasium; ``max_steps`` cuts games short (for tests); ``cells`` keeps each row (see
    :func:`~evolve.evaluation.carracing_table.measure_cells`). Returns a JSON-ready dict:
    sources, settings, ``rows`` and ``occluded`` (condition, paper, ours; None without
    ``occluded``), and ``measured`` (who -> condition -> evaluation row with per-game
    scores)."""
    run = dict(episodes=episodes, seed_offset=seed_offset, backend=backend, max_steps=max_steps)
    settings = {
        "env_id": PONG_ID,
        "engine": "gym",
        "episodes": episodes,
        "seed_offset": seed_offset,
        "max_steps": max_steps,
    }
    cells_dir = None if cells is None else Path(cells)
    measured = {
        "agent": measure_cells(
            "agent", agent, agent_source, [c for _, c, _ in ROWS], run, settings, cells_dir
        )
    }
    occluded_rows = None
    if occluded is not None:
        conditions = [c for _, c, _ in OCCLUDED_ROWS]
        measured["occluded"] = measure_cells(
            "occluded", occluded, occluded_source, conditions, run, settings, cells_dir
        )
        occluded_rows = table_rows(OCCLUDED_ROWS, measured["occluded"])
    return {
        "format": FORMAT,
        "paper": {"citation": PAPER_CITATION},
        "sources": {"agent": agent_source, "occluded": occluded_source or None},
        **settings,
        "rows": table_rows(ROWS, measured["agent"]),
        "occluded": occluded_rows,
        "measured": measured,
    }


def format_pong_table(result: dict[str, Any]) -> str:
    """The rows as aligned markdown, the paper's figure beside ours."""
    cut = f", games cut at {result['max_steps']} steps" if result.get("max_steps") else ""
    lines = [
        f"{result['env_id']} ({result['engine']}): paper vs ours ({result['episodes']} held-out "
        f"games from seed offset {result['seed_offset']}{cut}); mean ± std of the score",
        f"agent: {result['sources']['agent'] or 'unnamed'}",
    ]
    if result["occluded"] is not None:
        lines.append(f"trained occluded: {result['sources']['occluded'] or 'unnamed'}")
    rows = [*result["rows"], *(result["occluded"] or [])]
    body = [[r["row"], paper_cell(r["paper"]), _ours_text(r["ours"])] for r in rows]
    lines += ["", *_markdown(["condition", "paper", "ours"], body)]
    notes = {f"* {r['paper']['note']}" for r in rows if r["paper"].get("note")}
    return "\n".join([*lines, "", *sorted(notes)])


def plot_pong_table(result: dict[str, Any], path: str | os.PathLike) -> None:
    """Write a PNG: paper vs ours as bars, one group per row."""
    rows = [*result["rows"], *(result["occluded"] or [])]
    labels = [
        r["row"]
        .replace("reshuffle every ", "t=")
        .replace("trained occluded, ", "trained\noccluded\n")
        .replace(" occluded", "\noccluded")
        for r in rows
    ]
    title = (
        f"Pong, patches shuffled: paper vs ours ({result['episodes']} held-out games, "
        "sticky actions); the paper's reshuffle and occlusion figures are read off its plots"
    )
    plot_rows(rows, labels, title, path, 4 + 0.9 * len(rows), ylim=(-21.5, 21.5))
