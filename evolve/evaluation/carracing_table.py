"""The paper's CarRacing figures beside this project's, measured on the same held-out tracks.

Tang & Ha (NeurIPS 2021) report, for CarRacing with shuffled 6x6 patches: the
AttentionNeuron agent shuffled (801 ± 147), reshuffled every t steps, and on swapped
backgrounds (171 to 661; the non-invariant AttentionAgent, 901 ± 54 on its own background,
fell below 0 on new ones). :func:`measure_carracing_table` evaluates an agent under the same
conditions on one set of held-out seeds of stock Gymnasium ``CarRacing-v3`` (the paper used
``CarRacing-v0``, whose camera and drawing differ; see DESIGN), the published
``carracing_pi.npz`` beside it when given, and a non-invariant baseline (the CNN of
``carracing-cnn``) on its own frames, shuffled, and on the new backgrounds when given.

The backgrounds are four of scikit-image's sample photographs (the ``images`` extra), none
of which a recipe of this project trains on.

The table is long to measure on 2 cores (about 9 minutes a row of 100 tracks for an
AttentionNeuron, 16 rows in all). With ``cells`` each row is written to its own file as
soon as it is measured; a table killed part way resumes from the rows on disk, which are
reused only for the same policy (its parameters' digest) and the same settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

from evolve.backends import Backend
from evolve.evaluation.conditions import parse_condition
from evolve.evaluation.evaluate import evaluate_policy
from evolve.evaluation.paper_table import (
    PAPER_CITATION,
    PaperFigure,
    _bars,
    _markdown,
    _mean,
    _ours_text,
    _paper_text,
)
from evolve.logs import get_logger
from sensoryneuron.errors import CheckpointError
from sensoryneuron.files import atomic_write_text
from sensoryneuron.policy import Policy

CARRACING_ID = "CarRacing-v3"
CARRACING_EPISODES = 100
FORMAT = "sensoryneuron.carracing-table"
# one measured row of an image table (CarRacing's, Pong's); the rows kept before Pong's table
# say "sensoryneuron.carracing-table-cell", and read the same
CELL_FORMAT = "sensoryneuron.table-cell"
BACKGROUNDS = ("astronaut", "coffee", "chelsea", "hubble_deep_field")
RESHUFFLE_INTERVALS = (25, 50, 100, 200, 500)
BACKGROUND_RANGE = "171 to 661"  # the paper's range over its own backgrounds

# (row, condition, the paper's AttentionNeuron figure, or the range it reports)
ROWS: tuple[tuple[str, str, PaperFigure | str], ...] = (
    ("shuffled", "shuffled", PaperFigure(801, 147)),
    *(
        (f"background {name}", f"shuffled+background={name}", BACKGROUND_RANGE)
        for name in BACKGROUNDS
    ),
    ("reshuffle every 25", "reshuffle=25", PaperFigure(732, 161)),
    ("reshuffle every 50", "reshuffle=50", PaperFigure(772, 163)),
    ("reshuffle every 100", "reshuffle=100", PaperFigure(768, 167)),
    ("reshuffle every 200", "reshuffle=200", PaperFigure(774, 182)),
    ("reshuffle every 500", "reshuffle=500", PaperFigure(805, 158)),
)
PUBLISHED_PAPER = PaperFigure(846.6, 94.2, "on CarRacing-v0, 100 episodes")
# The baseline's rows: the paper's non-invariant AttentionAgent on its own frames, and fallen
# below 0 on new backgrounds (it reports no shuffled figure for it).
BASELINE_ROWS: tuple[tuple[str, str, PaperFigure | str], ...] = (
    ("CNN, own frames", "unshuffled", PaperFigure(901, 54, "the paper's AttentionAgent")),
    ("CNN, shuffled", "shuffled", "not reported"),
    *((f"CNN, background {name}", f"background={name}", "below 0") for name in BACKGROUNDS),
)


def measure_carracing_table(
    agent: Policy,
    episodes: int,
    backend: Backend,
    *,
    published: Policy | None = None,
    baseline: Policy | None = None,
    seed_offset: int = 0,
    agent_source: str = "",
    published_source: str = "",
    baseline_source: str = "",
    max_steps: int | None = None,
    engine: str | None = "gym",
    cells: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Measure every row for ``agent`` (the shuffled row for ``published``, and the rows of
    :data:`BASELINE_ROWS` for ``baseline``).

    All rows run on the same held-out seeds (``episodes`` of them from ``seed_offset``), on
    ``engine`` (stock Gymnasium by default, the reference); ``max_steps`` cuts episodes
    short (for tests). ``cells``: a folder where each measured row is kept (one JSON file per
    policy and condition) and read back instead of measured again; a file there measured
    with another policy or settings raises :class:`~sensoryneuron.errors.CheckpointError`
    (nothing is overwritten). Returns a JSON-ready dict: sources, settings, ``rows`` (one per row:
    condition, paper, ours), ``published`` (the published file's shuffled row, or None),
    ``baseline`` (its rows, or None), and ``measured`` (condition -> the agent's evaluation
    row with per-episode returns).
    """
    run = dict(
        episodes=episodes,
        seed_offset=seed_offset,
        backend=backend,
        max_steps=max_steps,
        engine=engine,
    )
    settings = {
        "env_id": CARRACING_ID,
        "engine": engine,
        "episodes": episodes,
        "seed_offset": seed_offset,
        "max_steps": max_steps,
    }
    cells_dir = None if cells is None else Path(cells)

    def measure(who: str, policy: Policy, source: str, conditions: list[str]) -> dict:
        return measure_cells(who, policy, source, conditions, run, settings, cells_dir)

    # the short rows first (one for the published file; the CNN's steps are cheap), so that a
    # table cut short keeps them
    published_row = None
    if published is not None:
        row = measure("published", published, published_source, ["shuffled"])["shuffled"]
        published_row = {
            "row": "published carracing_pi.npz, shuffled",
            "condition": "shuffled",
            "paper": PUBLISHED_PAPER.to_dict(),
            "ours": {"mean": row["mean"], "std": row["std"]},
            "returns": row["returns"],
        }
    baseline_rows = None
    if baseline is not None:
        by_condition = measure("cnn", baseline, baseline_source, [c for _, c, _ in BASELINE_ROWS])
        baseline_rows = table_rows(BASELINE_ROWS, by_condition)
    measured = measure("agent", agent, agent_source, [c for _, c, _ in ROWS])
    rows = table_rows(ROWS, measured)
    return {
        "format": FORMAT,
        "paper": {"citation": PAPER_CITATION},
        "sources": {
            "agent": agent_source,
            "published": published_source or None,
            "baseline": baseline_source or None,
        },
        "env_id": CARRACING_ID,
        "engine": engine,
        "episodes": episodes,
        "seed_offset": seed_offset,
        "max_steps": max_steps,
        "rows": rows,
        "published": published_row,
        "baseline": baseline_rows,
        "measured": measured,
    }


def policy_digest(policy: Policy) -> str:
    """SHA-256 of a policy's model description and parameters: what a kept row was measured
    with.

    The description leaves out the settings at their defaults, so that a setting a later
    version adds (whose default computes what the model computed before it) keeps the rows
    measured before it."""
    model = policy.model
    description = model.to_dict()
    for field in dataclasses.fields(model):  # type: ignore[arg-type]
        if field.default is not dataclasses.MISSING and getattr(model, field.name) == field.default:
            del description[field.name]
    digest = hashlib.sha256(json.dumps(description, sort_keys=True).encode())
    digest.update(policy.params.astype("<f4").tobytes())
    return digest.hexdigest()


def measure_cells(
    who: str,
    policy: Policy,
    source: str,
    conditions: list[str],
    run: dict[str, Any],
    settings: dict[str, Any],
    cells: Path | None,
) -> dict[str, dict[str, Any]]:
    """condition -> ``policy``'s evaluation row under it on ``settings["env_id"]``, each read
    from ``cells`` where it was measured before with the same policy and settings, else
    measured (and kept there as ``cells/WHO-CONDITION.json``)."""
    log = get_logger()
    key = {"policy": policy_digest(policy), **settings}
    measured: dict[str, dict[str, Any]] = {}
    for condition in conditions:
        path = None if cells is None else cells / f"{who}-{_file_stem(condition)}.json"
        if path is not None and path.exists():
            try:
                cell = json.loads(path.read_text())
                kept_key, row = cell["key"], cell["row"]
                if not isinstance(kept_key, dict) or not isinstance(row, dict):
                    raise TypeError("its key and row are not objects")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise CheckpointError(
                    f"{path}: not a table row this version wrote ({exc})"
                ) from exc
            if kept_key != key:
                differ = sorted(k for k in key if kept_key.get(k) != key[k])
                raise CheckpointError(
                    f"{path}: measured with another {' and '.join(differ)} than this table's; "
                    "measure into another folder, or delete the file to measure it again"
                )
            log.info("%s, %s: %.1f (kept in %s)", who, condition, row["mean"], path)
            measured[condition] = row
            continue
        (row,) = evaluate_policy(policy, settings["env_id"], [parse_condition(condition)], **run)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            cell = {"format": CELL_FORMAT, "key": key, "source": source, "row": row}
            atomic_write_text(path, json.dumps(cell, indent=1) + "\n")
        log.info("%s, %s: %.1f +- %.1f", who, condition, row["mean"], row["std"])
        measured[condition] = row
    return measured


def _file_stem(condition: str) -> str:
    """A condition as a file name: ``shuffled+background=coffee`` -> ``shuffled+background-coffee``."""
    return condition.replace("=", "-").replace("/", "_")


def table_rows(
    table: tuple[tuple[str, str, PaperFigure | str], ...], measured: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per entry of ``table``: its condition, the paper's cell, and ours."""
    return [
        {
            "row": name,
            "condition": condition,
            "paper": paper.to_dict() if isinstance(paper, PaperFigure) else {"range": paper},
            "ours": {"mean": measured[condition]["mean"], "std": measured[condition]["std"]},
        }
        for name, condition, paper in table
    ]


def _all_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The published file's row (if measured), the agent's, then the baseline's."""
    rows = list(result["rows"]) + list(result.get("baseline") or [])
    if result["published"] is not None:
        rows.insert(0, result["published"])
    return rows


def paper_cell(cell: dict[str, Any]) -> str:
    if "range" not in cell:
        return _paper_text(cell)
    return f"{cell['range']} (range)" if cell["range"][0].isdigit() else cell["range"]


def format_carracing_table(result: dict[str, Any]) -> str:
    """The rows as aligned markdown, the paper's figure beside ours."""
    cut = f", episodes cut at {result['max_steps']} steps" if result.get("max_steps") else ""
    lines = [
        f"{result['env_id']} ({result['engine']}): paper vs ours ({result['episodes']} held-out "
        f"tracks from seed offset {result['seed_offset']}{cut}); mean ± std of the episode return",
        f"agent: {result['sources']['agent'] or 'unnamed'}",
        "",
    ]
    rows = _all_rows(result)
    body = [[r["row"], paper_cell(r["paper"]), _ours_text(r["ours"])] for r in rows]
    lines += _markdown(["condition", "paper", "ours"], body)
    notes = {f"* {r['paper']['note']}" for r in rows if r["paper"].get("note")}
    return "\n".join([*lines, "", *sorted(notes)])


def plot_carracing_table(result: dict[str, Any], path: str | os.PathLike) -> None:
    """Write a PNG: paper vs ours as bars, one group per row."""
    rows = _all_rows(result)
    if result["published"] is not None:
        rows[0] = {**rows[0], "row": "published file"}
    labels = [
        r["row"]
        .replace("background ", "bg\n")
        .replace("reshuffle every ", "t=")
        .replace(", ", "\n")
        .replace("_", "\n")  # hubble_deep_field: narrow enough for its bar
        for r in rows
    ]
    title = (
        f"CarRacing, patches shuffled: paper vs ours ({result['episodes']} held-out tracks, "
        f"{result['engine']}); the paper reports only a range (171-661) for backgrounds, and "
        "'below 0' for its non-invariant agent on them"
    )
    width = 13 + 0.8 * len(result.get("baseline") or [])
    plot_rows(rows, labels, title, path, width)


def plot_rows(
    rows: list[dict[str, Any]],
    labels: list[str],
    title: str,
    path: str | os.PathLike,
    width: float,
    ylim: tuple[float, float] | None = None,
) -> None:
    """Write a PNG of a table's ``rows``: the paper's figure (where it gives one) beside ours,
    one group of bars per row, under ``labels``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sensoryneuron.files import atomic_write

    fig, ax = plt.subplots(figsize=(width, 4.8), dpi=100)
    _bars(
        ax,
        labels,
        [
            (
                "paper",
                "#a6c8e8",
                [None if "range" in r["paper"] else _mean(r["paper"]) for r in rows],
            ),
            ("ours", "#2b6cb0", [_mean(r["ours"]) for r in rows]),
        ],
    )
    if ylim is not None:
        ax.axhline(0, color="0.6", linewidth=0.8)
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
