"""The paper's cart-pole and Ant tables beside this project's figures, on the same seeds.

Tang & Ha (NeurIPS 2021) report two tables for CartPoleSwingUpHarder, each over 1000 test
episodes: FNN vs AttentionNeuron under four input conditions, and AttentionNeuron with its
inputs reshuffled every t steps. For the Ant (PyBullet's AntBulletEnv; here MuJoCo Ant-v5)
they report the same two tables in short: the FNN in the true and a shuffled order, the
AttentionNeuron shuffled, and reshuffled every 25 steps. A :class:`PaperTable` holds one
task's columns and published figures (:data:`PAPER_TABLES`). :func:`measure_paper_table`
evaluates an AttentionNeuron agent and a feed-forward baseline under the task's conditions,
on one set of held-out seeds, in double precision; :func:`format_paper_table` prints both
figures side by side and :func:`plot_paper_table` draws them.

Besides the paper's rows, every reshuffle interval t is also measured as ``realigned=t``:
each neuron's state moves with its input at every reshuffle. The agent is then exactly
invariant, so each episode must return what the shuffled-at-reset ("never") episode of
the same seed returns, to the last bit: in float64 the model sums over its input slots in
a canonical order (see ``sensoryneuron.models``). The table records, per t, the largest
difference and how many episodes are identical.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any

from evolve.backends import Backend
from evolve.evaluation.conditions import parse_condition
from evolve.evaluation.evaluate import evaluate_policy
from sensoryneuron.errors import ConfigError
from sensoryneuron.policy import Policy

PAPER_ENV_ID = "SensoryNeuron/CartPoleSwingUpHarder-v0"
PAPER_EPISODES = 1000
PAPER_CITATION = "Tang & Ha, The Sensory Neuron as a Transformer (NeurIPS 2021)"
EQUAL_TOLERANCE = 0.0  # |realigned - never| per episode, in float64: bit-identical
FORMAT = "sensoryneuron.paper-table"


@dataclass(frozen=True)
class PaperFigure:
    """One published cell: mean ± std of the episode return (std None where the paper gives
    none), and a note where it needs one."""

    mean: float
    std: float | None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mean": self.mean, "std": self.std}
        if self.note:
            d["note"] = self.note
        return d


# The cart-pole table's columns, each with the test condition that reproduces it.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("5 obs", "unshuffled"),
    ("5 obs shuffled", "shuffled"),
    ("10 obs (duplicated)", "duplicate=2"),
    ("5 obs + 5 noise", "noise=5"),
)
PI_ROW = "AttentionNeuron"
FNN_ROW = "FNN"

# The paper's figures for CartPoleSwingUpHarder, 1000 test episodes. The FNN's "10 obs"
# figure is not the 5-input FNN given duplicated inputs (it cannot take them): the paper
# trained a separate FNN on the 10 inputs.
PAPER_CARTPOLE: dict[str, dict[str, PaperFigure]] = {
    FNN_ROW: {
        "5 obs": PaperFigure(593, 433),
        "5 obs shuffled": PaperFigure(38, 120),
        "10 obs (duplicated)": PaperFigure(593, 433, note="a separate FNN trained on 10 inputs"),
        "5 obs + 5 noise": PaperFigure(137, 242),
    },
    PI_ROW: {
        "5 obs": PaperFigure(472, 426),
        "5 obs shuffled": PaperFigure(471, 426),
        "10 obs (duplicated)": PaperFigure(471, 425),
        "5 obs + 5 noise": PaperFigure(461, 410),
    },
}

# AttentionNeuron on CartPoleSwingUpHarder, inputs reshuffled every t steps ("never":
# shuffled once at reset).
NEVER = "never"
PAPER_RESHUFFLE: dict[int | str, PaperFigure] = {
    25: PaperFigure(107, 146),
    50: PaperFigure(163, 198),
    100: PaperFigure(242, 254),
    200: PaperFigure(318, 310),
    500: PaperFigure(407, 380),
    NEVER: PaperFigure(472, 426),
}


ANT_ENV_ID = "Ant-v5"
ANT_EPISODES = 100  # held-out episodes of `evolve eval --paper-table` on the Ant
ANT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("27 obs", "unshuffled"),
    ("27 obs shuffled", "shuffled"),
)
ANT_SHUFFLED = PaperFigure(2576, 75, note="std over training runs, not episodes")
# The paper's Ant figures, on PyBullet's AntBulletEnv (not MuJoCo Ant-v5: rewards differ):
# the FNN's without a std, the AttentionNeuron's only shuffled (None: not reported).
PAPER_ANT: dict[str, dict[str, PaperFigure | None]] = {
    FNN_ROW: {"27 obs": PaperFigure(2700, None), "27 obs shuffled": PaperFigure(232, None)},
    PI_ROW: {"27 obs": None, "27 obs shuffled": ANT_SHUFFLED},
}
PAPER_ANT_RESHUFFLE: dict[int | str, PaperFigure | None] = {
    25: PaperFigure(2053, None),
    50: None,
    100: None,
    200: None,
    500: None,
    NEVER: ANT_SHUFFLED,
}


@dataclass(frozen=True)
class PaperTable:
    """One task's paper tables: which conditions they hold, and the published figures.

    Attributes:
        env_id: the task measured.
        name: the key of the task's conditions table in the result.
        title: the task's name in the plot's title.
        columns: the conditions table's columns, each with the condition measuring it.
        figures: policy row -> column -> the paper's figure (None: not reported).
        reshuffle: reshuffle interval t (or ``NEVER``) -> the paper's AttentionNeuron figure.
        paper_episodes: the paper's test episodes per figure (None: not stated here).
        episodes: the default held-out episodes of ``evolve eval --paper-table``.
        shipped_fnn: the shipped feed-forward baseline (None: none ships for the task).
        paper_note: where the paper's figures differ from ours in kind ("": nowhere).
    """

    env_id: str
    name: str
    title: str
    columns: tuple[tuple[str, str], ...]
    figures: dict[str, dict[str, PaperFigure | None]]
    reshuffle: dict[int | str, PaperFigure | None]
    paper_episodes: int | None
    episodes: int
    shipped_fnn: str | None
    paper_note: str = ""

    @property
    def intervals(self) -> tuple[int, ...]:
        """The reshuffle intervals t, each also measured with the state realigned."""
        return tuple(t for t in self.reshuffle if t != NEVER)


CARTPOLE_TABLE = PaperTable(
    env_id=PAPER_ENV_ID,
    name="cartpole",
    title="CartPoleSwingUpHarder",
    columns=COLUMNS,
    figures=PAPER_CARTPOLE,
    reshuffle=PAPER_RESHUFFLE,
    paper_episodes=PAPER_EPISODES,
    episodes=PAPER_EPISODES,
    shipped_fnn="fnn-baseline",
)
ANT_TABLE = PaperTable(
    env_id=ANT_ENV_ID,
    name="ant",
    title="Ant",
    columns=ANT_COLUMNS,
    figures=PAPER_ANT,
    reshuffle=PAPER_ANT_RESHUFFLE,
    paper_episodes=None,
    episodes=ANT_EPISODES,
    shipped_fnn="ant-fnn",
    paper_note="on PyBullet's AntBulletEnv; ours on MuJoCo Ant-v5, whose returns differ in scale",
)
PAPER_TABLES: dict[str, PaperTable] = {t.env_id: t for t in (CARTPOLE_TABLE, ANT_TABLE)}


def paper_table(env_id: str) -> PaperTable:
    """The paper's table of ``env_id``; a ConfigError names the tasks that have one."""
    if env_id not in PAPER_TABLES:
        raise ConfigError(
            f"the paper's tables are for {' and '.join(PAPER_TABLES)}, not {env_id!r}"
        )
    return PAPER_TABLES[env_id]


def reshuffle_condition(t: int | str) -> str:
    """The condition measuring the reshuffle table's entry for interval ``t``."""
    return "shuffled" if t == NEVER else f"reshuffle={t}"


def realigned_condition(t: int) -> str:
    """The condition with reshuffles every ``t`` steps and the state moved with the inputs."""
    return f"realigned={t}"


def pi_conditions(table: PaperTable = CARTPOLE_TABLE) -> list[str]:
    """Every distinct condition the AttentionNeuron agent is measured under, each once."""
    names = [condition for _, condition in table.columns]
    names += [reshuffle_condition(t) for t in table.reshuffle]
    names += [realigned_condition(t) for t in table.intervals]
    return list(dict.fromkeys(names))


def fnn_conditions(table: PaperTable = CARTPOLE_TABLE) -> list[str]:
    """The conditions table's conditions for the feed-forward baseline."""
    return [condition for _, condition in table.columns]


def _measure(
    policy: Policy,
    conditions: list[str],
    env_id: str,
    episodes: int,
    backend: Backend,
    seed_offset: int,
    max_steps: int | None,
) -> dict[str, dict[str, Any]]:
    """Rows of :func:`evaluate_policy` in float64, keyed by condition name."""
    rows = evaluate_policy(
        policy,
        env_id,
        [parse_condition(c) for c in conditions],
        episodes=episodes,
        seed_offset=seed_offset,
        backend=backend,
        float64=True,
        max_steps=max_steps,
    )
    return {row["condition"]: row for row in rows}


def _ours(row: dict[str, Any]) -> dict[str, Any]:
    """A measured cell: mean and std, or why the condition does not apply."""
    if "skipped" in row:
        return {"skipped": row["skipped"]}
    return {"mean": row["mean"], "std": row["std"]}


def _paper(figure: PaperFigure | None) -> dict[str, Any] | None:
    return None if figure is None else figure.to_dict()


def _conditions_table(
    table: PaperTable, measured: dict[str, dict[str, dict[str, Any]]]
) -> dict[str, Any]:
    """Policy row -> column -> its condition, the paper's figure (None: not reported), ours."""
    cells: dict[str, Any] = {}
    for policy_row in (PI_ROW, FNN_ROW):
        cells[policy_row] = {
            column: {
                "condition": condition,
                "paper": _paper(table.figures[policy_row][column]),
                "ours": _ours(measured[policy_row][condition]),
            }
            for column, condition in table.columns
        }
    return cells


def compare_returns(realigned: list[float], never: list[float]) -> dict[str, Any]:
    """Compare two per-episode return lists of the same seeds.

    Returns ``max_abs_diff`` (the largest per-episode difference), ``episodes_equal`` (how
    many are within :data:`EQUAL_TOLERANCE`) and ``equal`` (whether all are).
    """
    if len(realigned) != len(never):
        raise ValueError(f"{len(realigned)} realigned episodes but {len(never)} never-reshuffled")
    diffs = [abs(a - b) for a, b in zip(realigned, never, strict=True)]
    worst = max(diffs, default=0.0)
    return {
        "max_abs_diff": worst,
        "episodes_equal": sum(d <= EQUAL_TOLERANCE for d in diffs),
        "equal": worst <= EQUAL_TOLERANCE,
    }


def _reshuffle_table(
    figures: dict[int | str, PaperFigure | None], pi_rows: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    never = pi_rows[reshuffle_condition(NEVER)]
    table = []
    for t, paper in figures.items():
        condition = reshuffle_condition(t)
        entry: dict[str, Any] = {
            "t": t,
            "condition": condition,
            "paper": _paper(paper),
            "ours": _ours(pi_rows[condition]),
            "realigned": None,
        }
        if t != NEVER:
            realigned = pi_rows[realigned_condition(t)]
            entry["realigned"] = {
                "condition": realigned["condition"],
                "mean": realigned["mean"],
                "std": realigned["std"],
                **compare_returns(realigned["returns"], never["returns"]),
            }
        table.append(entry)
    return table


def _no_fnn_rows(table: PaperTable, reason: str) -> dict[str, dict[str, Any]]:
    return {c: {"condition": c, "skipped": reason} for c in fnn_conditions(table)}


def measure_paper_table(
    pi: Policy,
    fnn: Policy | None,
    env_id: str,
    episodes: int,
    backend: Backend,
    seed_offset: int = 0,
    pi_source: str = "",
    fnn_source: str = "",
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Measure the paper's two tables of ``env_id`` for ``pi`` and ``fnn``, in float64.

    ``env_id`` is one of :data:`PAPER_TABLES` (else a ConfigError). Every condition runs on
    the same held-out seeds (``episodes`` of them from ``seed_offset``), once: ``shuffled``
    serves both the shuffled column (cart-pole's "5 obs shuffled") and the reshuffle
    table's "never". Conditions the feed-forward baseline cannot take (more
    inputs than it has) carry the reason instead of figures; with ``fnn=None`` its whole
    row does. ``pi_source`` and ``fnn_source`` name the agents in the result;
    ``max_steps`` cuts episodes short (for tests; None: the task's full 1000 steps).

    Returns a JSON-ready dict: the sources, ``env_id``, ``episodes``, ``seed_offset``,
    ``precision``, ``max_steps``, the conditions table under the task's
    :attr:`PaperTable.name` (``cartpole`` or ``ant``: policy -> column -> paper and ours),
    ``reshuffle`` (one entry per t: paper, ours, and realigned ours with
    :func:`compare_returns`' fields), ``all_realigned_equal``, and ``measured`` (policy ->
    condition -> the evaluation row, per-episode returns included).
    """
    table = paper_table(env_id)
    run = (env_id, episodes, backend, seed_offset, max_steps)
    measured = {PI_ROW: _measure(pi, pi_conditions(table), *run)}
    if fnn is None:
        measured[FNN_ROW] = _no_fnn_rows(table, "no feed-forward baseline was given")
    else:
        measured[FNN_ROW] = _measure(fnn, fnn_conditions(table), *run)
    reshuffle = _reshuffle_table(table.reshuffle, measured[PI_ROW])
    paper: dict[str, Any] = {"citation": PAPER_CITATION, "episodes": table.paper_episodes}
    if table.paper_note:
        paper["note"] = table.paper_note
    return {
        "format": FORMAT,
        "paper": paper,
        "sources": {PI_ROW: pi_source, FNN_ROW: fnn_source if fnn is not None else None},
        "env_id": env_id,
        "episodes": episodes,
        "seed_offset": seed_offset,
        "precision": "float64",
        "max_steps": max_steps,
        table.name: _conditions_table(table, measured),
        "reshuffle": reshuffle,
        "all_realigned_equal": all(e["realigned"]["equal"] for e in reshuffle if e["realigned"]),
        "measured": measured,
    }


def _paper_text(cell: dict[str, Any] | None) -> str:
    """The paper's figure: ``mean ± std``, the mean alone without a std, ``-`` if not reported."""
    if cell is None:
        return "-"
    std = "" if cell["std"] is None else f" ± {cell['std']:.0f}"
    return f"{cell['mean']:.0f}{std}" + ("*" if cell.get("note") else "")


def _ours_text(cell: dict[str, Any]) -> str:
    return "n/a" if "skipped" in cell else f"{cell['mean']:.1f} ± {cell['std']:.1f}"


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table padded to aligned columns, so it reads as plain text too."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return [line(header), rule, *(line(r) for r in rows)]


def _result_table(result: dict[str, Any]) -> PaperTable:
    """The :class:`PaperTable` a measured result belongs to."""
    return paper_table(result["env_id"])


def _conditions_lines(result: dict[str, Any]) -> list[str]:
    table = _result_table(result)
    header = ["policy"]
    for column, _ in table.columns:
        header += [f"{column}: paper", "ours"]
    rows, notes = [], {}
    for policy_row in (FNN_ROW, PI_ROW):
        cells = [policy_row]
        for column, _ in table.columns:
            cell = result[table.name][policy_row][column]
            cells += [_paper_text(cell["paper"]), _ours_text(cell["ours"])]
            if cell["paper"] and cell["paper"].get("note"):
                notes["* paper: " + cell["paper"]["note"]] = None
            if "skipped" in cell["ours"]:
                notes[f"n/a ({policy_row}): {cell['ours']['skipped']}"] = None
        rows.append(cells)
    return [*_markdown(header, rows), "", *notes]


def _reshuffle_lines(result: dict[str, Any]) -> list[str]:
    header = ["reshuffle every t", "paper", "ours", "ours, state realigned", "max diff vs never"]
    rows = []
    for entry in result["reshuffle"]:
        realigned = entry["realigned"]
        rows.append(
            [
                str(entry["t"]),
                _paper_text(entry["paper"]),
                _ours_text(entry["ours"]),
                _ours_text(realigned) if realigned else "(= never)",
                f"{realigned['max_abs_diff']:.3g}" if realigned else "",
            ]
        )
    return _markdown(header, rows)


def _equality_line(result: dict[str, Any]) -> str:
    """Whether every realigned episode returned what its never-reshuffled episode did."""
    realigned = [(e["t"], e["realigned"]) for e in result["reshuffle"] if e["realigned"]]
    worst = max((r["max_abs_diff"] for _, r in realigned), default=0.0)
    episodes = result["episodes"]
    if result["all_realigned_equal"]:
        return (
            f"Realigned = never, episode by episode: yes, all {len(realigned)} x {episodes} "
            f"realigned episodes return exactly what their never-reshuffled twins do."
        )
    counts = ", ".join(f"t={t}: {r['episodes_equal']}/{episodes}" for t, r in realigned)
    return (
        f"Realigned = never, episode by episode: NO (max |diff| {worst:.3g}); identical "
        f"episodes {counts}. The invariance is exact, so this is a bug: please report it."
    )


def _paper_label(paper: dict[str, Any]) -> str:
    """``paper (N test episodes)``, or ``paper`` where the count is not stated."""
    return f"paper ({paper['episodes']} test episodes)" if paper["episodes"] else "paper"


def format_paper_table(result: dict[str, Any]) -> str:
    """Both tables as aligned markdown, the paper's figure beside ours for every cell."""
    sources = result["sources"]
    cut = f", episodes cut at {result['max_steps']} steps" if result.get("max_steps") else ""
    paper = result["paper"]
    lines = [
        f"{result['env_id']}: {_paper_label(paper)} vs ours "
        f"({result['episodes']} held-out episodes from seed offset {result['seed_offset']}, "
        f"{result['precision']}{cut}); mean ± std of the episode return",
        f"AttentionNeuron: {sources[PI_ROW] or 'unnamed'}; FNN: {sources[FNN_ROW] or 'none'}",
        *([f"paper: {paper['note']}"] if paper.get("note") else []),
        "",
        *_conditions_lines(result),
        "",
        "AttentionNeuron, inputs reshuffled every t steps (never: shuffled once at reset)",
        "",
        *_reshuffle_lines(result),
        "",
        _equality_line(result),
    ]
    return "\n".join(lines)


def _bars(
    ax: Any,
    groups: list[str],
    series: list[tuple[str, str, list[float | None]]],
    headroom: float | None = None,
) -> None:
    """Grouped bars: one group per label, one bar per series; ``None`` values are left out.

    ``headroom``: the y axis runs from 0 (or the lowest mean, where one is negative: a
    collapse stays in view, under a line at 0) to that many times its automatic top, room
    for a legend above the bars; None: matplotlib's own limits."""
    width = 0.8 / len(series)
    for i, (label, color, values) in enumerate(series):
        xs = [
            g + (i - (len(series) - 1) / 2) * width for g, v in enumerate(values) if v is not None
        ]
        ys = [v for v in values if v is not None]
        ax.bar(xs, ys, width=width, label=label, color=color)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("episode return (mean)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if headroom is not None:
        low, high = ax.get_ylim()
        ax.set_ylim(min(0.0, low), headroom * high)
        ax.axhline(0.0, color="#444444", linewidth=0.8)


def _mean(cell: dict[str, Any] | None) -> float | None:
    return None if cell is None or "skipped" in cell else float(cell["mean"])


def plot_paper_table(result: dict[str, Any], path: str | os.PathLike) -> None:
    """Write a PNG: (a) the conditions table, (b) the reshuffle row; paper vs ours as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sensoryneuron.files import atomic_write

    table = _result_table(result)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), dpi=100)
    cells = result[table.name]
    columns = [column for column, _ in table.columns]

    def row(policy_row: str, side: str) -> list[float | None]:
        return [_mean(cells[policy_row][c][side]) for c in columns]

    _bars(
        left,
        [c.replace(" (duplicated)", "\n(duplicated)") for c in columns],
        [
            (f"{PI_ROW}, paper", "#a6c8e8", row(PI_ROW, "paper")),
            (f"{PI_ROW}, ours", "#2b6cb0", row(PI_ROW, "ours")),
            (f"{FNN_ROW}, paper", "#f5c39a", row(FNN_ROW, "paper")),
            (f"{FNN_ROW}, ours", "#c0601a", row(FNN_ROW, "ours")),
        ],
        headroom=1.25,
    )
    left.set_title("(a) input conditions (FNN n/a cells left out)")
    left.legend(fontsize=8, loc="upper center", ncol=2)

    entries = result["reshuffle"]
    _bars(
        right,
        [str(e["t"]) for e in entries],
        [
            ("paper", "#a6c8e8", [_mean(e["paper"]) for e in entries]),
            ("ours", "#2b6cb0", [_mean(e["ours"]) for e in entries]),
            ("ours, state realigned", "#5aa469", [_mean(e["realigned"]) for e in entries]),
        ],
        headroom=1.2,
    )
    right.set_xlabel("reshuffle every t steps")
    right.set_title(f"(b) {PI_ROW}, inputs reshuffled every t steps")
    right.legend(fontsize=8, loc="upper center", ncol=3)

    cut = f", cut at {result['max_steps']} steps" if result.get("max_steps") else ""
    fig.suptitle(
        f"{table.title}: {_paper_label(result['paper']).replace(' test', '')} vs ours "
        f"({result['episodes']} held-out episodes, {result['precision']}{cut})"
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
