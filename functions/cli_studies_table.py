"""The table ``katuna studies`` prints: one row a study, laid out for the terminal it is printed
in so that no column splits a word, narrowing the widest and leaving out the least needed where
the terminal is too narrow for them all."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from functions.terminal import printable

STUDY_COLUMNS = ("name", "resource", "status", "algorithm", "trials", "best", "reason")
KEPT_FIRST = ("name", "best", "trials", "algorithm", "resource", "status")
"""Columns of ``katuna studies`` kept whole where the table is too wide for its terminal, first
the first (a study's name is what every other command takes, a number is read whole, then the
algorithm, the resource a study follows, then its status), as long as the others fit at their
least (:func:`_least`)."""
LEFT_OUT_FIRST = ("reason", "algorithm", "resource", "status", "best", "trials")
"""Columns of ``katuna studies`` left out, first the first, where the terminal is too narrow for
every column at its least: a column never splits a word (``algo``/``rith``/``m``, ``comp``/``lete``/
``d``), so in 40 columns the table shows fewer columns, and says which (``katuna show`` and
``--json`` give them all). The name is never left out: a name wider than the terminal alone is
the one word that folds."""
NUMBER_COLUMNS = ("trials", "best")
"""Columns of ``katuna studies`` right-aligned, as numbers are in the trial table and the
dashboard's list of studies (a multi-objective study's best, ``3 on the front``, too)."""


def studies_table(views: list[dict[str, Any]]) -> _StudiesTable:
    """``katuna studies``: one row per study view."""
    rows = []
    for view in views:
        best = view["best"]
        shown = f"{best['value']:.6g}" if isinstance(best, dict) else (f"{view['frontSize']} on the front" if best else "")
        rows.append([printable(cell) for cell in (view["name"], _follows(view.get("resource")), view["status"],
                                                  view["algorithm"], view["trials"], shown, _one_line(view["reason"]))])
    return _StudiesTable(rows)


def _one_line(reason: str | None) -> str:
    """A study's reason in one line, its lines and runs of spaces each one space: the table
    cuts it to its column (``katuna show`` and ``--json`` give it whole)."""
    return " ".join((reason or "").split())


def _follows(resource: dict[str, str] | None) -> str:
    """The cluster resource a study follows, as ``Experiment team-b/random`` (``-`` for none):
    Experiments of one name in two namespaces are studies ``random`` and ``random--team-b``."""
    return "-" if not resource else f"{resource['kind']} {resource['namespace']}/{resource['name']}"


class _StudiesTable:
    """The studies as a table laid out for the width it is printed in: where it is too narrow
    for every cell in one line, the columns of :data:`KEPT_FIRST` that fit stay whole and the
    others are narrowed, the widest first (most often the reason), never below their longest
    word, and where even that is too wide, columns are left out (:data:`LEFT_OUT_FIRST`). A
    reason stays on one line, cut to its column with an ellipsis (a failed study's can run to
    hundreds of characters); no other value is cut, a cell wider than its column wraps between
    its words onto the lines below."""

    def __init__(self, rows: list[list[str]]) -> None:
        self._rows = rows
        cells = {column: [row[index] for row in rows] for index, column in enumerate(STUDY_COLUMNS)}
        self._natural = {column: max(cell_len(text) for text in (column, *cells[column])) for column in STUDY_COLUMNS}
        self._least = {column: _least(column, cells[column]) for column in STUDY_COLUMNS}

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        room = options.max_width
        shown = self._shown(room)
        widths = self._widths(shown, room)
        table = Table()
        for column in shown:
            table.add_column(column, justify="right" if column in NUMBER_COLUMNS else "left", overflow="fold",
                             width=widths[column])
        for row in self._rows:
            cells = [cell for column, cell in zip(STUDY_COLUMNS, row, strict=True) if column in shown]
            last = Text(cells[-1], no_wrap=True, overflow="ellipsis") if shown[-1] == "reason" else Text(cells[-1])
            table.add_row(*map(Text, cells[:-1]), last)
        yield table
        left = [column for column in STUDY_COLUMNS if column not in shown and (column != "resource" or self._follows())]
        if left:
            yield Text(f"left out for width: {', '.join(left)}")

    def _follows(self) -> bool:
        return any(row[1] != "-" for row in self._rows)

    def _shown(self, room: int) -> list[str]:
        """The columns drawn: all, but the resource where no study follows one (each ``-``) and
        the table is too wide for ``room``, which it leaves to the reason; then, while they are
        too wide for ``room`` at their least, less of them (:data:`LEFT_OUT_FIRST`)."""
        shown = list(STUDY_COLUMNS)
        if _width(self._natural, shown) > room and not self._follows():
            shown.remove("resource")
        for column in LEFT_OUT_FIRST:
            if _width(self._least, shown) <= room:
                break
            if column in shown:
                shown.remove(column)
        return shown

    def _widths(self, shown: list[str], room: int) -> dict[str, int]:
        """Each shown column's width in ``room``: whole where all fit; else the columns of
        :data:`KEPT_FIRST` whole, in order, while the others fit at their least, and the others
        narrowed from their widest, the widest first, down to their least (a name wider than
        ``room`` alone, below it)."""
        widths = {column: self._natural[column] for column in shown}
        if _width(widths, shown) <= room:
            return widths
        whole: set[str] = set()
        for column in KEPT_FIRST:
            trial = {name: widths[name] if name in whole | {column} else self._least[name] for name in shown}
            if column in shown and _width(trial, shown) <= room:
                whole.add(column)
        narrowed = [column for column in shown if column not in whole]
        while (excess := _width(widths, shown) - room) > 0:
            wider = [column for column in narrowed if widths[column] > self._least[column]]
            if not wider:
                widths["name"] = max(1, widths["name"] - excess)
                break
            widest = max(wider, key=lambda column: widths[column])
            widths[widest] -= 1
        return widths


def _least(title: str, cells: list[str]) -> int:
    """The least width of a column: its longest word, of its ``title`` and ``cells``, so that
    it wraps between words and never inside one; a reason's, its title's (a reason is cut to
    one line, with an ellipsis)."""
    texts = (title,) if title == "reason" else (title, *cells)
    return max(cell_len(word) for text in texts for word in text.split() or [""])


def _width(widths: dict[str, int], shown: Iterable[str]) -> int:
    """The studies table's width with the ``shown`` columns at ``widths``: each column has a
    space of padding each side, and a border after it."""
    return 1 + sum(widths[name] + 3 for name in shown)
