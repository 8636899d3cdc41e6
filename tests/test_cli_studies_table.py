"""``katuna studies`` in a terminal too narrow for its table: a study's name, the one thing the
other commands take, and its numbers are never cut to an ellipsis; its reason, which ``show``
and ``--json`` give whole, is cut to one line."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from functions.cli_studies_table import STUDY_COLUMNS, studies_table

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


def _headers(printed: str) -> list[str]:
    """The columns drawn, by their headers' words (a header read whole again)."""
    lines = [line.split("┃")[1:-1] for line in printed.splitlines() if line.startswith("┃")]
    return ["".join(cells[index].strip() for cells in lines) for index in range(len(lines[0]))]


@pytest.mark.parametrize("width", [80, 60, 40])
def test_no_name_or_number_is_cut_to_an_ellipsis_at_any_width(width: int):
    printed = _printed(VIEWS, width)
    headers = _headers(printed)
    numbers = [header for header in headers if header != "reason"]
    assert not any("…" in _column(printed, headers.index(header)) for header in numbers), printed
    assert _column(printed, 0) == "".join(NAMES)
    if "trials" in headers:
        assert _column(printed, headers.index("trials")) == "12123456"
    if "best" in headers:
        assert _column(printed, headers.index("best")) == "0.9777780.887949"


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
    """In 107 columns, where the status wraps in a column as wide as its longest word
    (``interrupted``) and the reason's is as wide as its header."""
    follows = [{**VIEWS[0], "resource": {"kind": "Experiment", "namespace": "team-b", "name": "random"}}]
    printed = _printed(follows, 107)
    assert "│ Experiment team-b/random │" in printed, printed
    assert max(map(len, printed.splitlines())) <= 107


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
    if "status" not in _headers(printed):  # too narrow for it beside the name and numbers: left out, and said
        assert "status" in " ".join(printed.split()).partition("left out for width: ")[2], printed
        return
    status = _headers(printed).index("status")
    lines = [line.split("│")[status + 1].strip() for line in printed.splitlines() if line.startswith("│")]
    words = {word for view in views for word in view["status"].split()}
    assert all(word in words for line in lines for word in line.split()), printed
    assert " ".join(line for line in lines if line) == " ".join(view["status"] for view in views), printed


ALGORITHMS = [{**VIEWS[0], "name": "digits", "algorithm": "bayesianoptimization", "status": "completed"},
              {**VIEWS[0], "name": "quickstart-tpe", "algorithm": "tpe", "status": "running"}]


@pytest.mark.parametrize("width", [80, 60, 50, 40, 30])
def test_in_a_narrow_terminal_no_header_or_value_but_a_reason_breaks_inside_a_word(width: int):
    """``algorithm`` read ``algo``/``rith``/``m`` and ``bayesianoptimization`` ``baye``/``sian``/...:
    each column is now at least as wide as its longest word, header included, and where the
    terminal is too narrow for them all, columns are left out (the reason first) and named
    under the table."""
    printed = _printed(ALGORITHMS, width)
    assert max(map(len, printed.splitlines())) <= width, printed
    headers = _headers(printed)
    assert headers[0] == "name" and set(headers) <= set(STUDY_COLUMNS), printed
    heads = [line.split("┃")[1:-1] for line in printed.splitlines() if line.startswith("┃")]
    assert all(cell.strip() in ("", header) for cells in heads for cell, header in zip(cells, headers, strict=True)), printed
    rows = [line.split("│")[1:-1] for line in printed.splitlines() if line.startswith("│")]
    words = {word for view in ALGORITHMS for key in ("name", "status", "algorithm") for word in str(view[key]).split()}
    for index, header in enumerate(headers):
        if header in ("name", "status", "algorithm"):
            assert all(word in words for cells in rows for word in cells[index].split()), printed
    left = [column for column in STUDY_COLUMNS if column not in headers and column != "resource"]
    assert (f"left out for width: {', '.join(left)}" in " ".join(printed.split())) == bool(left), printed


def test_in_forty_columns_the_name_and_numbers_stay_and_the_left_out_columns_are_named():
    printed = _printed(ALGORITHMS, 40)
    assert _headers(printed) == ["name", "trials", "best"], printed
    assert "left out for width: status, algorithm, reason" in " ".join(printed.split()), printed
