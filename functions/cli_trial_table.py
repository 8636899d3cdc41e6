"""The table of trials the CLI prints (``katuna trials``, ``best``, ``show``, a run's summary).

rich measures every cell of a table three times over before it draws it, which for a study of
20,000 trials took most of ten seconds. Here each cell is formatted once, the column widths are
taken from those strings (the widths rich would choose for a table that fits), and rich is given
them fixed; the rows, which rich would leave unstyled, are written as rich would draw them,
without rich laying out a cell at all. Every value passes through
:func:`functions.terminal.printable`, so none is shown as markup or control sequences, and is
made one line (:func:`_one_line`), so a trial is a row.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from functions.core import pbt
from functions.core.records import StudyRecord, TrialRecord
from functions.core.spec import Study
from functions.terminal import printable

INACTIVE = "—"
"""How a table shows a parameter a trial does not have (a conditional one whose ``when`` did not hold)."""

REASON_WIDTH = 50
"""Columns a trial's reason takes at most; a longer one folds onto the lines below."""

_ONE_LINE = str.maketrans({"\t": " ", "\n": "\\n", "\u2028": "\\u2028", "\u2029": "\\u2029"})
"""What of a printable value breaks a cell's line: a tab (a trial's output, ``epoch\\t1``) is a
space there, a line break (a categorical value may hold one) shows as its escape."""

EARLIER_ATTEMPT = re.compile(r"^attempt \d+ [a-z]+: ")
"""How the notes of a trial's earlier attempts begin, which follow its reason (``attempt 1
interrupted: ...``, :func:`functions.handlers.collect._run_again`): katuna's words, not the
trial's output."""


def trial_table(record: StudyRecord, trials: Sequence[TrialRecord], title: str | None = None) -> RenderableType:
    """Trials with their values, additional metrics and parameters; without a title (all
    trials) with their state (and, under population-based training, their generation and
    parent), and with their reasons in a line when any has one (:func:`reason_cell`)."""
    return _TrialTable(record.spec, trials, title)


def split_reason(reason: str) -> tuple[list[str], list[str]]:
    """A trial's reason as its own lines (the first, then the last lines the trial printed,
    where it has them), and the notes of its earlier attempts that follow."""
    lines = [line for line in reason.splitlines() if line.strip()]
    notes: list[str] = []
    while len(lines) > 1 and EARLIER_ATTEMPT.match(lines[-1]):
        notes.insert(0, lines.pop())
    return lines, notes


def reason_cell(reason: str) -> str:
    """A trial's reason in one line: its first, and where that ends on the trial's last lines
    (a failure's), the last of them, which is most often what went wrong."""
    lines, _ = split_reason(reason)
    if len(lines) > 1 and lines[0].endswith("last lines:"):
        return f"{lines[0]} … {lines[-1].strip()}"
    return lines[0] if lines else ""


@dataclass(frozen=True)
class _Column:
    """A column as rich is told of it: its header, and how its cells are laid out."""

    header: str
    justify: Literal["left", "right"] = "left"
    no_wrap: bool = False
    overflow: Literal["ellipsis", "fold"] = "ellipsis"
    max_width: int | None = None


class _TrialTable:
    """A table of trials laid out for the width it is printed in: a column for each value,
    metric and parameter where they fit side by side; else a column for each value, and the
    metrics and the parameters as ``name=value`` lists, which wrap between entries. So a wide
    study stays readable in an 80-column terminal, and no number is split across lines.

    A parameter a trial does not have (its ``when`` did not hold) shows as ``—`` in its column
    and is left out of a list; a value or metric not measured (yet) is blank."""

    def __init__(self, spec: Study, trials: Sequence[TrialRecord], title: str | None) -> None:
        self._spec = spec
        self._trials = trials
        self._title = title
        self._title_width = Text.from_markup(title).cell_len if title else 0
        self._with_reason = title is None and any(t.reason for t in trials)
        self._with_lineage = title is None and spec.algorithm.name == pbt.NAME

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        columns, rows = self._columns(wide=True), [self._row(t, wide=True) for t in self._trials]
        natural, min_width = _widths(columns, rows), self._title_width
        if max(_table_width(natural), min_width) > options.max_width:
            columns, rows = self._columns(wide=False), [self._row(t, wide=False) for t in self._trials]
            natural, min_width = _widths(columns, rows), min(min_width, options.max_width)
        widths = _fitted(self._table(columns, _extremes(rows), min_width), console, options)
        if _drawable(columns, widths, natural):
            yield from _drawn(console, options, self._table(columns, [], min_width, widths), columns, widths, rows)
        else:
            yield self._table(columns, rows, min_width, widths if min(widths) > 0 else None)

    def _columns(self, wide: bool) -> list[_Column]:
        spec = self._spec
        columns = [_Column("trial", "right", no_wrap=True)]
        if self._title is None:
            columns.append(_Column("state", no_wrap=True))
        if self._with_lineage:
            columns += [_Column("generation", "right", no_wrap=True), _Column("parent", "right", no_wrap=True)]
        columns += [_Column(_one_line(o.metric), "right", no_wrap=True) for o in spec.objectives]
        if wide:
            columns += [_Column(_one_line(m), "right") for m in spec.additional_metrics]
            columns += [_Column(_one_line(p.name)) for p in spec.parameters]
        else:
            if spec.additional_metrics:
                columns.append(_Column("metrics", overflow="fold"))
            columns.append(_Column("params", overflow="fold"))
        if self._with_reason:
            columns.append(_Column("reason", overflow="fold", max_width=REASON_WIDTH))
        return columns

    def _row(self, trial: TrialRecord, wide: bool) -> list[str]:
        row = [str(trial.number), *([trial.state] if self._title is None else []), *self._lineage(trial),
               *self._values(trial), *(self._cells(trial) if wide else self._lists(trial))]
        if self._with_reason:
            row.append(reason_cell(trial.reason))
        return [_one_line(cell) for cell in row]

    def _table(self, columns: list[_Column], rows: list[list[str]], min_width: int,
               widths: list[int] | None = None) -> Table:
        """The rich table, at least as wide as its title where there is room for it (rich fails
        on a table whose least width is past the room it is given: a terminal a few columns
        wide); with the columns' ``widths`` where they are known, so rich measures no cell."""
        table = Table(title=self._title, box=box.SIMPLE_HEAD, pad_edge=False, min_width=min_width or None)
        for index, column in enumerate(columns):
            table.add_column(Text(column.header), justify=column.justify, no_wrap=column.no_wrap, overflow=column.overflow,
                             max_width=column.max_width, width=None if widths is None else widths[index])
        for row in rows:
            table.add_row(*map(Text, row))
        return table

    def _lineage(self, trial: TrialRecord) -> list[str]:
        """The trial's generation and parent (blank for none), under population-based training."""
        if not self._with_lineage:
            return []
        return ["" if trial.generation is None else str(trial.generation), "" if trial.parent is None else str(trial.parent)]

    def _values(self, trial: TrialRecord) -> list[str]:
        """Each objective's value once the trial completed; before, or without one (a failed or
        pruned trial), the last it reported of each, as the dashboard and the CSV export show."""
        values = [*trial.values] if trial.values else [trial.metrics.get(o.metric) for o in self._spec.objectives]
        return [_number(v, ".6g") for v in values]

    def _cells(self, trial: TrialRecord) -> list[str]:
        """A cell for each additional metric, then one for each parameter."""
        return [*[_number(trial.metrics.get(m), ".4g") for m in self._spec.additional_metrics],
                *[_short(trial.params[p.name]) if p.name in trial.params else INACTIVE for p in self._spec.parameters]]

    def _lists(self, trial: TrialRecord) -> list[str]:
        """The measured additional metrics as one ``name=value`` list (when the study has any),
        then the parameters the trial has as another."""
        metrics = " ".join(f"{m}={trial.metrics[m]:.4g}" for m in self._spec.additional_metrics if m in trial.metrics)
        params = " ".join(f"{p.name}={_short(trial.params[p.name])}" for p in self._spec.parameters
                          if p.name in trial.params)
        return [metrics, params] if self._spec.additional_metrics else [params]


def _widths(columns: list[_Column], rows: list[list[str]]) -> list[int]:
    """Each column's natural width: its longest cell or header, up to the column's most."""
    widths = [cell_len(column.header) for column in columns]
    for row in rows:
        widths = [max(width, cell_len(cell)) for width, cell in zip(widths, row, strict=True)]
    return [width if column.max_width is None else min(width, column.max_width)
            for width, column in zip(widths, columns, strict=True)]


def _drawable(columns: list[_Column], widths: list[int], natural: list[int]) -> bool:
    """Whether every column shows: rich hides a column it had to make 0 wide, and cuts a cell
    of a column that may not wrap short of its end; those tables are left to rich."""
    return all(width > 0 and (width >= most or not column.no_wrap)
               for column, width, most in zip(columns, widths, natural, strict=True))


def _extremes(rows: list[list[str]]) -> list[list[str]]:
    """The rows that hold, for some column, its widest cell or its widest word: what rich
    measures a column by (as wide as its widest cell, at least as wide as its widest word)."""
    if not rows:
        return []
    chosen: set[int] = set()
    for index in range(len(rows[0])):
        for measure in (cell_len, _widest_word):
            sizes = [measure(row[index]) for row in rows]
            chosen.add(sizes.index(max(sizes)))
    return [rows[position] for position in sorted(chosen)]


def _widest_word(cell: str) -> int:
    return max(map(cell_len, cell.split()), default=0)


def _fitted(table: Table, console: Console, options: ConsoleOptions) -> list[int]:
    """The widths rich gives ``table``'s columns in ``options.max_width``: each as wide as its
    widest cell where they all fit, else narrowed, and widened to the table's least width (its
    title's); rich's own reckoning, which its table keeps private."""
    padded = table._calculate_column_widths(console, options.update_width(options.max_width - table._extra_width))
    return [width - _padding(index, len(padded)) for index, width in enumerate(padded)]


def _padding(index: int, count: int) -> int:
    """The padding beside a column's cells: a space on each side but the table's outer sides."""
    return (index > 0) + (index < count - 1)


def _table_width(widths: list[int]) -> int:
    """The width of the drawn table: a space at each edge, one between columns, and a space of
    padding on each side of a cell but the outer sides of the first and last."""
    return sum(widths) + 2 + (len(widths) - 1) + sum(_padding(index, len(widths)) for index in range(len(widths)))


def _drawn(console: Console, options: ConsoleOptions, head: Table, columns: list[_Column], widths: list[int],
           rows: list[list[str]]) -> Iterator[Segment]:
    """The table's lines as rich draws them: its head (its title, a blank line, the headers, a
    rule) drawn by rich from the table of no row ``head``, then each row's lines, which rich
    would leave unstyled, then a blank line; a cell wider than its column folded as rich does."""
    width = _table_width(widths)
    for line in console.render_lines(head, options.update_width(width))[:-1]:
        yield from line
        yield Segment.line()
    for row in rows:
        yield from map(Segment, _lines(console, columns, widths, row))
    yield Segment(" " * width + "\n")


def _lines(console: Console, columns: list[_Column], widths: list[int], row: list[str]) -> Iterator[str]:
    """One row's lines: one, unless a cell is wider than its column."""
    if all(cell_len(cell) <= width for cell, width in zip(row, widths, strict=True)):
        yield _line(columns, widths, row)
        return
    folded = [[cell] if cell_len(cell) <= width else
              [line.plain for line in Text(cell).wrap(console, width, overflow=column.overflow)]
              for cell, width, column in zip(row, widths, columns, strict=True)]
    for index in range(max(map(len, folded))):
        yield _line(columns, widths, [cells[index] if index < len(cells) else "" for cells in folded])


def _line(columns: list[_Column], widths: list[int], cells: list[str]) -> str:
    padded = [_justified(cell, width, column.justify) for cell, width, column in zip(cells, widths, columns, strict=True)]
    return " " + "   ".join(padded) + " \n"


def _justified(cell: str, width: int, justify: str) -> str:
    gap = " " * (width - cell_len(cell))
    return gap + cell if justify == "right" else cell + gap


def _one_line(value: object) -> str:
    """``value`` as a cell shows it: printable, in one line (:data:`_ONE_LINE`)."""
    return printable(value).translate(_ONE_LINE)


def _number(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
