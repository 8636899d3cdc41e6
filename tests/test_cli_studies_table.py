"""``katuna studies`` in a terminal too narrow for its table: a study's name, the one thing the
other commands take, and its numbers are never cut to an ellipsis; its reason, which ``show``
and ``--json`` give whole, is cut to one line."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from functions.cli_output import STUDY_COLUMNS, studies_table

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
    resource = printed.splitlines()[1].count("┃") - 1 == 7  # a column of dashes only is left out where room is short
    trials, best = (4, 5) if resource else (3, 4)
    assert not any("…" in _column(printed, index) for index in range(best + 1)), printed
    assert _column(printed, 0) == "".join(NAMES)
    assert _column(printed, trials) == "12123456"
    assert _column(printed, best) == "0.9777780.887949"


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
    """In 105 columns, where the status wraps in a column as wide as its longest word
    (``interrupted``)."""
    follows = [{**VIEWS[0], "resource": {"kind": "Experiment", "namespace": "team-b", "name": "random"}}]
    printed = _printed(follows, 105)
    assert "│ Experiment team-b/random │" in printed, printed
    assert max(map(len, printed.splitlines())) <= 105


COULD_NOT_START = ("every trial could not start: exec format error (3 trials); every attempt of image "
                   "registry.example.com/team/train:latest fails alike, so the study stops: check that the image is "
                   "built for the nodes' platform (linux/amd64) and that its entrypoint is an executable, then run "
                   "the study again with katuna run")


def test_in_eighty_columns_a_long_reason_is_cut_to_one_line_and_every_study_is_one_line():
    """A failed study's reason can run to hundreds of characters: it wrapped a word or two a
    line down dozens of lines; now each study is a line, its reason cut with an ellipsis, and
    where no study follows a cluster resource the column of dashes is left out for it."""
    views = [{**VIEWS[0], "name": "digits", "status": "failed", "reason": COULD_NOT_START},
             {**VIEWS[0], "name": "quickstart", "status": "completed", "reason": "max trials reached (30)\nand more"}]
    printed = _printed(views, 80)
    rows = [line for line in printed.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows] == ["digits", "quickstart"], printed
    assert max(map(len, printed.splitlines())) <= 80
    reasons = [row.split("│")[-2].strip() for row in rows]
    assert reasons[0].endswith("…") and COULD_NOT_START.startswith(reasons[0][:-1]), reasons
    assert len(reasons[0]) > 16, "the reason gets the room the other columns leave"
    assert "resource" not in printed, "a column of dashes only gives its room to the reason"
    assert "max trials reached (30) and more".startswith(reasons[1].rstrip("…")), reasons


def test_in_a_wide_terminal_or_a_pipe_a_reason_is_whole_on_its_line():
    views = [{**VIEWS[0], "name": "digits", "status": "failed", "reason": COULD_NOT_START}]
    rows = [line for line in _printed(views, 400).splitlines() if line.startswith("│")]
    assert len(rows) == 1 and rows[0].split("│")[7].strip() == COULD_NOT_START


@pytest.mark.parametrize("width", [80, 60, 50, 40])
def test_in_a_narrow_terminal_a_status_wraps_between_words_never_inside_one(width: int):
    """A status is read as words (``completed``; ``interrupted (the katuna process that ran it
    is gone)``): where its column is narrowed it wraps between them, so each line of its cells
    holds whole words, where it read ``comp``, ``lete``, ``d`` before."""
    views = [{**VIEWS[1], "name": "digits-early-stopping", "reason": "max trials reached (12)"}, VIEWS[0]]
    printed = _printed(views, width)
    drawn = [c for c in STUDY_COLUMNS if c != "resource"]  # no study follows one: its column gives way
    status = drawn.index("status")
    lines = [line.split("│")[status + 1].strip() for line in printed.splitlines() if line.startswith("│")]
    words = {word for view in views for word in view["status"].split()}
    assert all(word in words for line in lines for word in line.split()), printed
    assert " ".join(line for line in lines if line) == " ".join(view["status"] for view in views), printed
