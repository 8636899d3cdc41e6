"""The trial table draws what rich draws from the same cells: its widths, given to rich fixed,
and its own lines where nothing is styled, are those rich would lay out measuring every cell."""

from __future__ import annotations

import io
import math

import pytest
from conftest import study_definition
from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement

from functions.cli_trial_table import _TrialTable, trial_table
from functions.core.records import COMPLETE, FAILED, PRUNED, RUNNING, STOPPED_AT_END, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.terminal import UNBOUNDED

PARAMETERS = [{"name": "x", "type": "float", "min": -5.0, "max": 5.0},
              {"name": "kernel", "type": "categorical",
               "values": ["poly", "日本語のカーネル", "[bold]rbf[/bold]", "two\nlines\tand\u2028more"]},
              {"name": "degree", "type": "int", "min": 2, "max": 5000, "when": {"kernel": ["poly"]}}]
LONG_REASON = ("exited with code 1; last lines:\nTraceback (most recent call last):\n"
               "ValueError: " + "a-word-far-longer-than-any-column-of-the-table-" * 2 + " and then some words")


def _record() -> StudyRecord:
    definition = study_definition(name="cells", parameters=PARAMETERS, objective={
        "metric": "loss", "direction": "minimize", "additionalMetrics": ["accuracy", "epoch"]})
    definition["trialTemplate"]["env"] = {p["name"].upper(): f"${{trialParameters.{p['name']}}}" for p in PARAMETERS}
    return StudyRecord(parse_study(definition), definition, ".", "uid-cells")


def _trials() -> list[TrialRecord]:
    return [
        TrialRecord("cells", 0, {"x": 1.25, "kernel": "poly", "degree": 4000}, COMPLETE, values=[0.123456789],
                    metrics={"accuracy": 0.9, "epoch": 3.0}),
        TrialRecord("cells", 1, {"x": -4.5e-7, "kernel": "日本語のカーネル"}, FAILED, reason=LONG_REASON),
        TrialRecord("cells", 2, {"x": 0.0, "kernel": "[bold]rbf[/bold]"}, COMPLETE, values=[math.nan],
                    metrics={"accuracy": -1.5e12}, reason="a short reason\x1b[31m"),
        TrialRecord("cells", 10_000, {"x": 2.0, "kernel": "poly", "degree": 2}, RUNNING),
        TrialRecord("cells", 10_001, {"x": 3.0, "kernel": "two\nlines\tand\u2028more"}, FAILED,
                    reason="exited with code 1; last lines:\nepoch\t1\tloss\t0.5"),
    ]


def _rich_laid_out(table: _TrialTable, console: Console) -> object:
    """The table as rich lays it out measuring every cell itself: wide where its natural width
    fits, else narrow."""
    wide = table._table(table._columns(wide=True), [table._row(t, wide=True) for t in table._trials],
                        table._title_width)
    natural = Measurement.get(console, console.options.update_width(UNBOUNDED), wide).maximum
    if natural <= console.width:
        return wide
    return table._table(table._columns(wide=False), [table._row(t, wide=False) for t in table._trials],
                        min(table._title_width, console.width))


def _printed(renderable: object, width: int, terminal: bool) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=terminal, color_system="truecolor" if terminal else None,
                      emoji=False)
    console.print(renderable)
    return out.getvalue()


@pytest.mark.parametrize("terminal", [False, True], ids=["plain", "terminal"])
@pytest.mark.parametrize("width", [400, 130, 60, 30])
@pytest.mark.parametrize("title", [None, "Best trials", "[bold]A title longer than the narrowest terminal[/bold]"])
def test_the_table_is_what_rich_draws_from_the_same_cells(width: int, terminal: bool, title: str | None):
    record, trials = _record(), _trials()
    table = trial_table(record, trials, title)
    assert isinstance(table, _TrialTable)
    console = Console(file=io.StringIO(), width=width, force_terminal=terminal, emoji=False)
    expected = _printed(_rich_laid_out(table, console), width, terminal)
    assert _printed(table, width, terminal) == expected


def test_a_wide_table_without_styles_folds_a_long_reason_as_rich_does_and_shows_no_markup():
    printed = _printed(trial_table(_record(), _trials()), 400, terminal=False)
    lines = printed.splitlines()
    assert lines[1].split() == ["trial", "state", "loss", "accuracy", "epoch", "x", "kernel", "degree", "reason"]
    assert "[bold]rbf[/bold]" in printed and "\\x1b[31m" in printed and "\x1b" not in printed
    assert len({cell_len(line) for line in lines}) == 1, "every line as wide as the table"
    assert len(lines) > 3 + len(_trials()) + 1, "the long reason folded onto more lines at 50 columns"


@pytest.mark.parametrize("width", [400, 60])
def test_a_cell_is_one_line_its_line_breaks_shown_as_escapes(width: int):
    printed = _printed(trial_table(_record(), _trials()[-1:]), width, terminal=False)
    rows = [line for line in printed.splitlines() if line.strip().startswith("10001")]
    assert len(rows) == 1 and "\\n" in printed and "\\u2028" in printed, printed
    assert "\t" not in printed and "\u2028" not in printed


def test_a_tab_in_a_cell_is_a_space():
    printed = _printed(trial_table(_record(), _trials()[-1:]), 400, terminal=False)
    assert "exited with code 1; last lines: … epoch 1 loss 0.5" in printed


def test_a_trial_without_values_shows_the_objectives_it_reported():
    """Before, a failed trial's objective cells were blank though it reported them, which the
    dashboard, the CSV export and ``--json`` show."""
    definition = study_definition(name="two", objective={"metrics": [{"name": "f1", "direction": "minimize"},
                                                                      {"name": "f2", "direction": "maximize"}]},
                                  algorithm={"name": "nsga2"})
    record = StudyRecord(parse_study(definition), definition, ".", "uid-two")
    failed = TrialRecord("two", 0, {"x": 1.0}, FAILED, metrics={"f1": 0.25}, reason="exited with code 1")
    row = trial_table(record, [failed])._row(failed, wide=True)
    assert row[:4] == ["0", FAILED, "0.25", ""]



def test_a_trial_its_studys_end_stopped_shows_stopped_apart_from_the_pruned_as_the_counts_say():
    """Both stored ``PRUNED``, as ``--state PRUNED`` matches them: the table says which is which,
    as the dashboard and ``katuna show``'s counts do."""
    record = _record()
    pruned = TrialRecord("cells", 0, {"x": 1.0, "kernel": "poly"}, PRUNED, reason="pruned at step 2 by the median rule")
    stopped = TrialRecord("cells", 1, {"x": 1.0, "kernel": "poly"}, PRUNED, reason=f"{STOPPED_AT_END} (max trials)")
    table = trial_table(record, [pruned, stopped])
    assert [table._row(t, wide=True)[1] for t in (pruned, stopped)] == ["PRUNED", "STOPPED"]


ALIGNED = [{"name": "x", "type": "float", "min": -5.0, "max": 5.0},
           {"name": "layers", "type": "int", "min": 1, "max": 1000},
           {"name": "batch", "type": "categorical", "values": ["16", "256"]},
           {"name": "seed", "type": "discrete", "values": [7, 1234]},
           {"name": "flag", "type": "categorical", "values": [10, True]},
           {"name": "opt", "type": "categorical", "values": ["sgd", "adam-long"]}]


def alignments(printed: str) -> dict[str, str]:
    """Each column of a table drawn without borders (its header over cells of several widths),
    by header: ``right`` where every cell ends at the column's right edge, ``left`` where every
    one starts at its left, else ``mixed``. A column spans the places some line writes in
    between the places no line does (the space between columns)."""
    lines = [line for line in printed.splitlines() if line.strip() and "─" not in line]
    width = max(map(len, lines))
    lines = [line.ljust(width) for line in lines]
    written = [any(line[at] != " " for line in lines) for at in range(width)]
    spans, start = [], None
    for at, used in enumerate([*written, False]):
        if used and start is None:
            start = at
        elif not used and start is not None:
            spans.append((start, at))
            start = None
    shown = {}
    for begin, end in spans:
        cells = [line[begin:end] for line in lines]
        right, left = (all(not c.endswith(" ") for c in cells), all(not c.startswith(" ") for c in cells))
        shown[cells[0].strip()] = "right" if right and not left else "left" if left and not right else "mixed"
    return shown


@pytest.mark.parametrize("title", [None, "Best trial"], ids=["trials", "best"])
def test_a_column_of_numbers_is_right_aligned_one_of_labels_left_aligned(title: str | None):
    """A parameter whose values are all numbers (an int, a float, a discrete one, a categorical
    one of numbers, written as strings or not) lines up on its right edge, as the metrics and
    the dashboard's columns do; a categorical one with a label among its values (text, true or
    false) lines up on its left, as the state does."""
    definition = study_definition(name="aligned", parameters=ALIGNED)
    definition["trialTemplate"]["env"] = {p["name"].upper(): f"${{trialParameters.{p['name']}}}" for p in ALIGNED}
    record = StudyRecord(parse_study(definition), definition, ".", "uid-aligned")
    trials = [TrialRecord("aligned", 0, {"x": 1.0, "layers": 3, "batch": "16", "seed": 7, "flag": True,
                                         "opt": "adam-long"}, COMPLETE, values=[1.0]),
              TrialRecord("aligned", 12, {"x": -2.5, "layers": 999, "batch": "256", "seed": 1234, "flag": 10,
                                          "opt": "sgd"}, COMPLETE, values=[0.25])]
    shown = alignments(_printed(trial_table(record, trials, title), 200, terminal=False)
                       .replace(title or "\0", ""))
    assert shown == {"trial": "right", **({"state": "left"} if title is None else {}), "loss": "right",
                     "x": "right", "layers": "right", "batch": "right", "seed": "right", "flag": "left",
                     "opt": "left"}
