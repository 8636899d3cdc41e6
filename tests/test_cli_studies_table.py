"""``katuna studies`` in a terminal too narrow for its table: a study's name, the one thing the
other commands take, and its numbers are never cut to an ellipsis."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from functions.cli_output import studies_table

NAMES = ("digits-early-stopping", "a" * 62 + "z")
VIEWS = [{"name": NAMES[0], "status": "interrupted (the katuna process that ran it is gone)", "algorithm": "random",
          "trials": 12, "best": {"value": 0.977777777}, "frontSize": None, "reason": "max trials reached (12)"},
         {"name": NAMES[1], "status": "completed", "algorithm": "tpe", "trials": 123456,
          "best": {"value": 0.887949}, "frontSize": None, "reason": None}]


def _printed(views: list[dict], width: int) -> str:
    console = Console(file=io.StringIO(), width=width, emoji=False)
    console.print(studies_table(views))
    return console.file.getvalue()


def _column(printed: str, index: int) -> str:
    """The text of one column, its cells' lines joined (a folded cell is read whole again)."""
    return "".join(line.split("│")[index + 1].strip() for line in printed.splitlines() if line.startswith("│"))


@pytest.mark.parametrize("width", [80, 60, 40])
def test_no_name_or_number_is_cut_to_an_ellipsis_at_any_width(width: int):
    printed = _printed(VIEWS, width)
    assert "…" not in printed
    assert _column(printed, 0) == "".join(NAMES)
    assert _column(printed, 4) == "12123456"
    assert _column(printed, 5) == "0.9777780.887949"


def test_in_eighty_columns_a_name_is_kept_on_one_line_and_the_status_and_reason_wrap():
    printed = _printed(VIEWS[:1], 80)
    assert f"│ {NAMES[0]} │" in printed
    assert max(map(len, printed.splitlines())) <= 80


def test_the_trials_and_best_columns_are_right_aligned_as_numbers_are():
    """Before, ``trials`` and ``best`` were left-aligned, their digits out of line; the
    dashboard's list right-aligns its best (a multi-objective study's ``2 on the front`` too)."""
    views = [*VIEWS, {"name": "two", "status": "running", "algorithm": "nsga2", "trials": 3, "best": [{}],
                      "frontSize": 2, "reason": None}]
    rows = [line.split("│")[1:-1] for line in _printed(views, 200).splitlines() if line.startswith("│")]
    for index in (4, 5):
        cells = [row[index] for row in rows]
        assert all(cell.endswith(" ") and not cell.endswith("  ") for cell in cells), cells
        assert any(cell.startswith("  ") for cell in cells), cells
    assert all(row[0].startswith(" ") and not row[0].startswith("  ") for row in rows), "the name left-aligned"


def test_each_study_names_the_cluster_resource_it_follows_or_a_dash():
    """Experiments ``random`` of two namespaces are studies ``random`` and ``random--team-b``:
    the list says which namespace's each is, as ``katuna show`` does, and ``-`` for a study
    that follows none."""
    follows = [{**VIEWS[0], "name": "random", "resource": {"kind": "Experiment", "namespace": "team-a", "name": "random"}},
               {**VIEWS[0], "name": "random--team-b",
                "resource": {"kind": "Experiment", "namespace": "team-b", "name": "random"}},
               {**VIEWS[1], "resource": None}]
    printed = _printed(follows, 260)
    header = next(line for line in printed.splitlines() if "name" in line)
    assert header.split("┃")[1:-1][1].strip() == "resource", header
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in printed.splitlines() if line.startswith("│")]
    assert [row[:2] for row in rows] == [["random", "Experiment team-a/random"],
                                         ["random--team-b", "Experiment team-b/random"], [NAMES[1], "-"]]


def test_in_a_narrow_terminal_a_resource_is_kept_whole_once_the_name_and_numbers_are():
    follows = [{**VIEWS[0], "resource": {"kind": "Experiment", "namespace": "team-b", "name": "random"}}]
    printed = _printed(follows, 100)
    assert "│ Experiment team-b/random │" in printed, printed
    assert max(map(len, printed.splitlines())) <= 100
