"""The live progress display of ``katuna run``: trials done, failed, running, best, elapsed.

It is one line that fits the terminal's width: where the whole line does not fit, the parts
that matter least give way first (the counts drop their zeros, the bar goes, the best value
loses its metric's name, the study's name is shortened, then the name, the counts, the best
value and the spinner go), so the trials finished and the elapsed time always show whole.
The study's name and the metric's name are shown as text, never as markup.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, replace

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, Task, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from functions.core.records import Counts, StudyRecord
from functions.core.store_port import Store, has_study, with_stopped
from functions.core.trial_cap import shown_total
from functions.terminal import printable

BAR_WIDTH = (10, 40)
"""The narrowest bar worth showing, and the widest."""
SHORT_NAME = 16
"""The study's name is cut to this many characters (with an ellipsis) where the line is short of room."""


@dataclass(frozen=True)
class Look:
    """One way to show the line: which parts, each whole, short or left out."""

    counts: str = "long"
    """``long`` (every state), ``short`` (the states with trials) or ``""`` (none)."""
    bar: bool = True
    best: str = "long"
    """``long`` (``best accuracy=0.97``), ``short`` (``best 0.97``) or ``""``."""
    name: str = "long"
    """``long``, ``short`` (at most :data:`SHORT_NAME` characters) or ``""``."""
    spinner: bool = True


LOOKS = (
    Look(),
    Look(counts="short"),
    Look(counts="short", bar=False),
    Look(counts="short", bar=False, best="short"),
    Look(counts="short", bar=False, best="short", name="short"),
    Look(counts="short", bar=False, best="short", name=""),
    Look(counts="", bar=False, best="short", name=""),
    Look(counts="", bar=False, best="", name=""),
    Look(counts="", bar=False, best="", name="", spinner=False),
)
"""From the fullest line to the barest: the first that fits is shown."""


class StudyProgress:
    """A rich progress line fed from the store on every broker tick."""

    def __init__(self, console: Console, store: Store, record: StudyRecord) -> None:
        spec = record.spec
        self._store = store
        self._spec = spec
        self._uid = record.uid
        self._progress = _FittingProgress(spec.objectives[0].metric, console=console)
        self._task = self._progress.add_task(spec.name, total=shown_total(record), counts=Counts(), best=None)

    def __enter__(self) -> StudyProgress:
        self._progress.start()
        self.update()
        return self

    def __exit__(self, *exc: object) -> None:
        """Show the final counts (the last shown, of a study another process deleted); a
        terminal that hung up (SIGHUP) takes nothing more, and the run still has its trials to stop."""
        self.update()
        with suppress(OSError):
            self._progress.stop()

    def update(self) -> None:
        """Show the study's counts and best value now; those last shown once another process
        deleted it, or stored another under its name (read first, so none read after is shown;
        the run's own tick then ends the run, saying so)."""
        counts = with_stopped(self._store, self._spec.name, self._store.count_trials(self._spec.name))
        top = [] if self._spec.multi_objective else self._store.best_trials(self._spec.name, 1)
        if not has_study(self._store, self._spec.name, self._uid):
            return
        best = top[0].values[0] if top and top[0].values else None
        self._progress.update(self._task, completed=counts.finished, counts=counts, best=best)


class _FittingProgress(Progress):
    """A progress display whose one task is a :class:`_Line` (rich's own columns render its
    parts: the spinner, the bar, trials finished of all, the elapsed time)."""

    def __init__(self, metric: str, console: Console) -> None:
        self.metric = metric
        self.spinner_column, self.count_column, self.elapsed_column = SpinnerColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        super().__init__(console=console)

    def get_renderables(self) -> Iterable[RenderableType]:
        for task in self.tasks:
            yield _Line(self, task)


class _Line:
    """One task's line, in the fullest of :data:`LOOKS` that fits the width it is given."""

    def __init__(self, progress: _FittingProgress, task: Task) -> None:
        self._progress = progress
        self._task = task

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """The line; with no spinner where the output is not interactive (a pipe, a file, a dumb
        terminal), which gets the line once, as the run ends: a spinner's frame there would
        mean nothing."""
        for look in LOOKS if console.is_interactive else [replace(look, spinner=False) for look in LOOKS]:
            head, tail = self._parts(look)
            room = options.max_width - sum(part.cell_len + 1 for part in (*head, *tail)) + 1
            if not look.bar and room >= 0:
                yield _grid([*head, *tail])
                return
            if look.bar and room - 1 >= BAR_WIDTH[0]:
                yield _grid([*head, BarColumn(bar_width=min(room - 1, BAR_WIDTH[1]))(self._task), *tail])
                return
        yield _grid([*head, *tail])

    def _parts(self, look: Look) -> tuple[list[Text], list[Text]]:
        """The look's parts before the bar (spinner, name) and after it (trials finished of
        all, counts, best value, elapsed time)."""
        task, progress = self._task, self._progress
        best = task.fields["best"]
        head = [*([_text(progress.spinner_column(task))] if look.spinner else []),
                *([self._name(look.name)] if look.name else [])]
        tail = [_text(progress.count_column(task)),
                *([_counts(task.fields["counts"], look.counts)] if look.counts else []),
                *([Text(_best(progress.metric, best, look.best))] if look.best and best is not None else []),
                _text(progress.elapsed_column(task))]
        return head, tail

    def _name(self, look: str) -> Text:
        name = Text(printable(self._task.description), style="bold")
        if look == "short":
            name.truncate(SHORT_NAME, overflow="ellipsis")
        return name


def _grid(cells: list[RenderableType]) -> Table:
    """The cells side by side on one line, one space apart."""
    grid = Table.grid(padding=(0, 1))
    for _ in cells:
        grid.add_column(no_wrap=True)
    grid.add_row(*cells)
    return grid


def _text(renderable: RenderableType) -> Text:
    return renderable if isinstance(renderable, Text) else Text(str(renderable))


def _counts(counts: Counts, look: str) -> Text:
    """``done 3 · failed 1 · pruned 0 · running 2``; short: without the states at 0 (but done).
    The trials the study's end stopped are ``stopped`` where there are any, not ``pruned``
    (:func:`~functions.core.store_port.with_stopped`)."""
    states = (("done", counts.complete), ("failed", counts.failed),
              ("pruned", counts.pruned - counts.stopped_at_end), ("stopped", counts.stopped_at_end),
              ("running", counts.running))
    return Text(" · ".join(f"{state} {n}" for state, n in states
                           if (look == "long" and state != "stopped") or n or state == "done"))


def _best(metric: str, value: float, look: str) -> str:
    return printable(f"best {metric}={value:.6g}" if look == "long" else f"best {value:.4g}")
