"""How the trial table (:mod:`functions.cli_trial_table`) is laid out and drawn: its columns'
widths, measured from its rows one at a time (what a column's natural width is, and which rows
rich is given to lay the table out by, kept without keeping the rows between them), so that a
table of any number of trials is measured in the memory of a few rows; and its rows' lines, as
rich would draw them."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Literal

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions
from rich.segment import Segment
from rich.table import Table
from rich.text import Text


@dataclass(frozen=True)
class Column:
    """A column as rich is told of it: its header, and how its cells are laid out."""

    header: str
    justify: Literal["left", "right"] = "left"
    no_wrap: bool = False
    overflow: Literal["ellipsis", "fold"] = "ellipsis"
    max_width: int | None = None


class Measure:
    """The rows of a table as they are added: each column's longest cell, and the rows that
    hold, for some column, its widest cell or its widest word (the first such row where
    several do): what rich measures a column by (as wide as its widest cell, at least as wide as
    its widest word). Those rows alone are kept, at most two a column."""

    def __init__(self, columns: int) -> None:
        self._longest = [0] * columns
        self._largest: list[list[tuple[int, int]]] = [[(-1, -1), (-1, -1)] for _ in range(columns)]
        self._kept: dict[int, list[str]] = {}
        self.count = 0

    def add(self, row: list[str]) -> None:
        position, held = self.count, False
        self.count += 1
        for index, cell in enumerate(row):
            length = cell_len(cell)
            self._longest[index] = max(self._longest[index], length)
            cell_most, word_most = self._largest[index]
            if length > cell_most[0]:
                self._largest[index][0], held = (length, position), True
            if length > word_most[0] and (word := _widest_word(cell)) > word_most[0]:
                self._largest[index][1], held = (word, position), True
        if held:
            self._kept[position] = row
            if len(self._kept) > 4 * len(row):
                chosen = self._chosen()
                self._kept = {at: kept for at, kept in self._kept.items() if at in chosen}

    def widths(self, columns: list[Column], without_last: bool = False) -> list[int]:
        """Each column's natural width: its longest cell or header, up to the column's most."""
        longest = self._longest[:-1] if without_last else self._longest
        return [min(max(length, cell_len(column.header)), column.max_width or UNCAPPED)
                for length, column in zip(longest, columns, strict=True)]

    def extremes(self, without_last: bool = False) -> list[list[str]]:
        """The rows rich is to lay the table out by, in the order they were added."""
        rows = [self._kept[at] for at in sorted(self._chosen())]
        return [row[:-1] for row in rows] if without_last else rows

    def _chosen(self) -> set[int]:
        return {position for most in self._largest for _, position in most if position >= 0}


UNCAPPED = 1 << 62
"""The most width of a column that has none."""


class Spill:
    """Rows kept in a temporary file as they pass, to be read back a line at a time: a table
    of any number of rows is drawn, once measured, without holding them. A row's cells hold
    neither a NUL nor a line break (values are printable, and made one line), which part them
    there. The file has no name, and is gone once closed (or its process is)."""

    def __init__(self) -> None:
        self._file: IO[str] | None = None

    def passing(self, rows: Iterable[list[str]]) -> Iterator[list[str]]:
        """``rows``, each written as it passes, in place of those written before."""
        self.close()
        self._file = tempfile.TemporaryFile("w+", encoding="utf-8", newline="\n")  # noqa: SIM115 (closed by close)
        for row in rows:
            self._file.write("\0".join(row) + "\n")
            yield row

    def rows(self, count: int) -> Iterator[list[str]]:
        """The rows written last, each cut to its first ``count`` cells."""
        if self._file is None:
            return iter([])
        self._file.seek(0)
        return (line[:-1].split("\0")[:count] for line in self._file)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def measured(rows: Iterable[list[str]], columns: int) -> Measure:
    measure = Measure(columns)
    for row in rows:
        measure.add(row)
    return measure


def _widest_word(cell: str) -> int:
    return max(map(cell_len, cell.split()), default=0)


def drawable(columns: list[Column], widths: list[int], natural: list[int]) -> bool:
    """Whether every column shows: rich hides a column it had to make 0 wide, and cuts a cell
    of a column that may not wrap short of its end; those tables are left to rich."""
    return all(width > 0 and (width >= most or not column.no_wrap)
               for column, width, most in zip(columns, widths, natural, strict=True))


def fitted(table: Table, console: Console, options: ConsoleOptions) -> list[int]:
    """The widths rich gives ``table``'s columns in ``options.max_width``: each as wide as its
    widest cell where they all fit, else narrowed, and widened to the table's least width (its
    title's); rich's own reckoning, which its table keeps private."""
    padded = table._calculate_column_widths(console, options.update_width(options.max_width - table._extra_width))
    return [width - padding(index, len(padded)) for index, width in enumerate(padded)]


def padding(index: int, count: int) -> int:
    """The padding beside a column's cells: a space on each side but the table's outer sides."""
    return (index > 0) + (index < count - 1)


def table_width(widths: list[int]) -> int:
    """The width of the drawn table: a space at each edge, one between columns, and a space of
    padding on each side of a cell but the outer sides of the first and last."""
    return sum(widths) + 2 + (len(widths) - 1) + sum(padding(index, len(widths)) for index in range(len(widths)))


@dataclass(frozen=True)
class Layout:
    """A table laid out: ``wide`` or narrow, its columns and their widths, its ``head`` (the
    rich table of no row), and whether it is ``drawable`` here (:func:`drawable`), else left
    to rich. Drawn, it is its head (its title, a blank line, the headers, a rule) as rich draws
    it, then each row's lines, which rich would leave unstyled (:func:`_lines`), then a blank
    line (:meth:`foot`)."""

    wide: bool
    columns: list[Column]
    widths: list[int]
    head: Table
    drawable: bool

    def head_lines(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        for line in console.render_lines(self.head, options.update_width(table_width(self.widths)))[:-1]:
            yield from line
            yield Segment.line()

    def lines(self, console: Console, row: list[str]) -> Iterator[str]:
        return _lines(console, self.columns, self.widths, row)

    def foot(self) -> str:
        return " " * table_width(self.widths) + "\n"


def _lines(console: Console, columns: list[Column], widths: list[int], row: list[str]) -> Iterator[str]:
    """One row's lines: one, unless a cell is wider than its column."""
    if all(cell_len(cell) <= width for cell, width in zip(row, widths, strict=True)):
        yield _line(columns, widths, row)
        return
    folded = [[cell] if cell_len(cell) <= width else
              [line.plain for line in Text(cell).wrap(console, width, overflow=column.overflow)]
              for cell, width, column in zip(row, widths, columns, strict=True)]
    for index in range(max(map(len, folded))):
        yield _line(columns, widths, [cells[index] if index < len(cells) else "" for cells in folded])


def _line(columns: list[Column], widths: list[int], cells: list[str]) -> str:
    padded = [_justified(cell, width, column.justify) for cell, width, column in zip(cells, widths, columns, strict=True)]
    return " " + "   ".join(padded) + " \n"


def _justified(cell: str, width: int, justify: str) -> str:
    gap = " " * (width - cell_len(cell))
    return gap + cell if justify == "right" else cell + gap
