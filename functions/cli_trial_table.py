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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from functions.cli_table_widths import Column, Layout, Spill, drawable, fitted, measured, table_width
from functions.core import pbt
from functions.core.parameters import numeric
from functions.core.records import StudyRecord, TrialRecord
from functions.core.spec import Study
from functions.terminal import printable

INACTIVE = "—"
"""How a table shows a parameter a trial does not have (a conditional one whose ``when`` did not hold)."""

FRONT_MARK = "◆ front"
"""How the table marks a trial on the Pareto front, as the dashboard's trial table does."""

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
    parent), and with their reasons in a line when any has one (:func:`reason_cell`); of a
    study that gives ``initialTrials``, with the entry each trial ran (:func:`given_cell`)."""
    return _TrialTable(record.spec, trials, title)


HELD = 2_000
"""Trials ``katuna trials`` holds to print them as one table; a listing of more is printed a
page at a time (:func:`print_trials`)."""

PRINTED = 500
"""Rows of a listing of more than :data:`HELD` trials printed at a time."""


def print_trials(console: Console, record: StudyRecord, listing: Callable[[], Iterator[TrialRecord]],
                 front: frozenset[int] | None = None) -> None:
    """The table of the trials ``listing`` reads (each call reads them anew), marking those of
    a multi-objective study's Pareto ``front`` (the numbers of its trials on it), printed in the
    memory of :data:`HELD` trials at any study size: up to them as :func:`trial_table`; past
    them, each row is measured as it is read and formatted, and kept in a temporary file, then
    printed from there :data:`PRINTED` at a time. A table too wide for the output reads the
    trials a second time, for its narrow layout. No trial prints nothing, not even the headers:
    output piped on is empty, as ``kubectl get`` leaves it (the command says why on stderr)."""
    first = listing()
    held = list(islice(first, HELD + 1))
    if not held:
        return
    if len(held) <= HELD:
        console.print(_TrialTable(record.spec, held, None, front))
        return
    passes = [chain(held, first)]
    del held
    table = _TrialTable(record.spec, lambda: passes.pop() if passes else listing(), None, front)
    try:
        _print_spilled(console, table)
    finally:
        table.close()


def _print_spilled(console: Console, table: _TrialTable) -> None:
    """The table laid out, then printed a page of rows at a time: drawn, or where rich must lay
    it out (an output too narrow for it), as rich's tables, the headers atop the first alone."""
    layout = table.layout(console, console.options)
    if not layout.drawable:
        for page, rows in enumerate(_batched(table.rows(layout.wide))):
            shown = table.rich_table(layout, rows)
            shown.show_header = page == 0
            console.print(shown)
        return
    console.print(_Drawn(list(layout.head_lines(console, console.options))))
    for rows in _batched(table.rows(layout.wide)):
        console.print(_Drawn([Segment(line) for row in rows for line in layout.lines(console, row)]))
    console.print(_Drawn([Segment(layout.foot())]))


def _batched(rows: Iterator[list[str]]) -> Iterator[list[list[str]]]:
    while batch := list(islice(rows, PRINTED)):
        yield batch


@dataclass(frozen=True)
class _Drawn:
    """Lines of a table already drawn, printed as they are."""

    segments: list[Segment]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.segments


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


class _TrialTable:
    """A table of trials laid out for the width it is printed in: a column for each value,
    metric and parameter where they fit side by side; else a column for each value, and the
    metrics and the parameters as ``name=value`` lists, which wrap between entries. So a wide
    study stays readable in an 80-column terminal, and no number is split across lines. A
    column of numbers (the trial's number, values, metrics, and a parameter whose values are
    all numbers: :func:`~functions.core.parameters.numeric`, the dashboard's rule) is
    right-aligned, one of labels left-aligned.

    A parameter a trial does not have (its ``when`` did not hold) shows as ``—`` in its column
    and is left out of a list; a value or metric not measured (yet) is blank. Given a ``front``,
    a ``pareto`` column marks its trials ``◆ front``, as the dashboard's trial table does."""

    def __init__(self, spec: Study, trials: Sequence[TrialRecord] | Callable[[], Iterable[TrialRecord]],
                 title: str | None, front: frozenset[int] | None = None) -> None:
        self._spec = spec
        self._trials = trials if isinstance(trials, Sequence) else None
        self._listing = trials if callable(trials) else lambda: trials
        self._title = title
        self._title_width = Text.from_markup(title).cell_len if title else 0
        self._with_reason = title is None and (self._trials is None or any(t.reason for t in self._trials))
        self._reasoned = False
        self._with_lineage = title is None and spec.algorithm.name == pbt.NAME
        self._with_given = bool(spec.initial_trials)
        self._front = front
        self._held: tuple[bool, list[list[str]]] | None = None
        self._spill = Spill()

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        layout = self.layout(console, options)
        if layout.drawable:
            yield from layout.head_lines(console, options)
            for row in self.rows(layout.wide):
                yield from map(Segment, layout.lines(console, row))
            yield Segment(layout.foot())
        else:
            yield self.rich_table(layout, list(self.rows(layout.wide)))

    def layout(self, console: Console, options: ConsoleOptions) -> Layout:
        """How the table is laid out in ``options.max_width``: wide where its natural width
        fits, else narrow, each column as wide as rich would make it; its trials read once for
        each layout it measures."""
        columns, natural, extremes = self._measured(wide=True)
        wide, min_width = True, self._title_width
        if max(table_width(natural), min_width) > options.max_width:
            columns, natural, extremes = self._measured(wide=False)
            wide, min_width = False, min(min_width, options.max_width)
        widths = fitted(self._table(columns, extremes, min_width), console, options)
        head = self._table(columns, [], min_width, widths)
        return Layout(wide, columns, widths, head, drawable(columns, widths, natural))

    def rows(self, wide: bool) -> Iterator[list[str]]:
        """The trials' rows, wide or narrow, each formatted once: those of trials held kept in
        memory, those of a listing in the file they were spilled to as they were measured."""
        if self._trials is None:
            return self._spill.rows(len(self._columns(wide)))
        if self._held is None or self._held[0] != wide:
            self._held = (wide, [self._row(t, wide) for t in self._trials])
        return iter(self._held[1])

    def rich_table(self, layout: Layout, rows: list[list[str]]) -> Table:
        """``rows`` laid out by rich, in the widths of ``layout`` where none is 0 (a terminal
        too narrow for the table, where rich hides columns or cuts cells)."""
        widths = layout.widths if min(layout.widths) > 0 else None
        return self._table(layout.columns, rows, layout.head.min_width or 0, widths)

    def close(self) -> None:
        """Delete the file a listing's rows were spilled to, if any."""
        self._spill.close()

    def _listed(self, wide: bool) -> Iterator[list[str]]:
        """The rows of a listing, read anew and formatted as they are read."""
        for trial in self._listing():
            self._reasoned = self._reasoned or bool(trial.reason)
            yield self._row(trial, wide)

    def _measured(self, wide: bool) -> tuple[list[Column], list[int], list[list[str]]]:
        """The columns, their natural widths and the rows rich measures them by. A listing's
        rows are measured as they are spilled (:class:`Spill`: what :meth:`rows` reads after),
        with a reason column, which is left out after where no trial had a reason."""
        rows = self.rows(wide) if self._trials is not None else self._spill.passing(self._listed(wide))
        measure = measured(rows, len(self._columns(wide)))
        dropped = self._trials is None and self._with_reason and not self._reasoned
        self._with_reason = self._with_reason and not dropped
        columns = self._columns(wide)
        return columns, measure.widths(columns, dropped), measure.extremes(dropped)

    def _columns(self, wide: bool) -> list[Column]:
        spec = self._spec
        columns = [Column("trial", "right", no_wrap=True)]
        if self._title is None:
            columns.append(Column("state", no_wrap=True))
        if self._front is not None:
            columns.append(Column("pareto", no_wrap=True))
        if self._with_lineage:
            columns += [Column("generation", "right", no_wrap=True), Column("parent", "right", no_wrap=True)]
        if self._with_given:
            columns.append(Column("given", no_wrap=True))
        columns += [Column(_one_line(o.metric), "right", no_wrap=True) for o in spec.objectives]
        if wide:
            columns += [Column(_one_line(m), "right") for m in spec.additional_metrics]
            columns += [Column(_one_line(p.name), "right" if numeric(p) else "left") for p in spec.parameters]
        else:
            if spec.additional_metrics:
                columns.append(Column("metrics", overflow="fold"))
            columns.append(Column("params", overflow="fold"))
        if self._with_reason:
            columns.append(Column("reason", overflow="fold", max_width=REASON_WIDTH))
        return columns

    def _row(self, trial: TrialRecord, wide: bool) -> list[str]:
        marks = [] if self._front is None else [FRONT_MARK if trial.number in self._front else ""]
        row = [str(trial.number), *([trial.shown_state] if self._title is None else []), *marks, *self._lineage(trial),
               *([given_cell(trial)] if self._with_given else []), *self._values(trial), *(self._cells(trial) if wide else self._lists(trial))]
        if self._with_reason:
            row.append(reason_cell(trial.reason))
        return [_one_line(cell) for cell in row]

    def _table(self, columns: list[Column], rows: list[list[str]], min_width: int,
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


def given_cell(trial: TrialRecord) -> str:
    """The entry of the study's ``initialTrials`` the trial ran (``[1]``: ``initialTrials[1]``),
    blank for a trial the sampler suggested: a given point told from a sampled one at a glance."""
    return "" if trial.initial_trial is None else f"[{trial.initial_trial}]"


def _one_line(value: object) -> str:
    """``value`` as a cell shows it: printable, in one line (:data:`_ONE_LINE`)."""
    return printable(value).translate(_ONE_LINE)


def _number(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
