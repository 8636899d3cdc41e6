"""A study's trials as CSV, the columns of the dashboard's **Export CSV** and of ``katuna trials
--csv``, and the cells of the trial table they share: one writer, so the two exports agree."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from functions.core import pbt
from functions.core.records import TrialRecord
from functions.core.spec import Study

CSV_CHUNK = 64 * 1024
"""Bytes of CSV text gathered before they are handed on: any number of trials streams in bounded memory."""
GIVEN = "given (initialTrials entry)"
"""The column of a study that gives ``initialTrials``: the index of the entry a trial ran."""
FORMULA_STARTS = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20")
"""What makes a spreadsheet read a cell as a formula: OWASP's CSV injection list, and the
full-width forms (＝＋－＠) that an East Asian spreadsheet's input may take as the same signs."""
RUNS_AS_FORMULA = re.compile(r"[\t\r\n\0]|[\s\0]*[" + re.escape("".join(FORMULA_STARTS)) + "]")
"""A cell a spreadsheet may run: one starting with a tab, a line break or NUL (OWASP's list, ASVS's
NUL), or whose first character but blanks (any Unicode space, NUL) is a formula start, as an
import that trims spaces (LibreOffice's **Trim spaces**) would see ``" =1+1"``."""


def csv_rows(spec: Study, trials: Iterable[TrialRecord], front: Collection[int] | None = None) -> Iterator[str]:
    """The trials as CSV text in chunks (header first), for streaming any number of them; under
    population-based training, each with its generation and parent after its state; given the
    numbers of a multi-objective study's Pareto ``front``, each with whether it is on it
    (``pareto``: ``true`` or ``false``, as a spreadsheet or pandas reads a boolean); of a study
    that gives ``initialTrials``, each with the index of the entry it ran (:data:`GIVEN`), blank
    for a trial the sampler suggested. A trial's state is the one the tables show (``STOPPED`` for
    one its study's end stopped)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    metrics, params = spec.metric_names, [p.name for p in spec.parameters]
    lineage = ("generation", "parent") if spec.algorithm.name == pbt.NAME else ()
    marked = ("pareto",) if front is not None else ()
    given = (GIVEN,) if spec.initial_trials else ()
    writer.writerow([_csv(title) for title in ("number", "state", *lineage, *marked, *given, *metrics, *params, "attempt",
                                               "started (UTC)", "finished (UTC)", "duration (s)", "reason")])
    for trial in trials:
        on_front = [str(trial.number in front).lower()] if front is not None else []
        entry = [_csv(trial.initial_trial)] if given else []
        writer.writerow([trial.number, trial.shown_state, *[_csv(cell(trial, field)) for field in lineage], *on_front, *entry,
                         *[_csv(trial.metrics.get(m)) for m in metrics],
                         *[_csv(trial.params.get(p)) for p in params], trial.attempt, timestamp(trial.started_at),
                         timestamp(trial.finished_at), _csv(_seconds(duration(trial.started_at, trial.finished_at))),
                         _csv(summary(trial.reason))])
        if buffer.tell() > CSV_CHUNK:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _csv(value: Any) -> Any:
    """A cell's value; text a spreadsheet would run as a formula gets a leading ``'``."""
    if value is None:
        return ""
    if isinstance(value, str) and RUNS_AS_FORMULA.match(value):
        return "'" + value
    return value


def cell(trial: TrialRecord, field: str) -> Any:
    """The raw value of ``field`` for ``trial`` (None when it has none)."""
    kind, _, name = field.partition(":")
    if kind == "param":
        return trial.params.get(name)
    if kind == "metric":
        return trial.metrics.get(name)
    if field == "duration":
        return duration(trial.started_at, trial.finished_at)
    return {"number": trial.number, "state": trial.shown_state, "generation": trial.generation, "parent": trial.parent,
            "startedAt": trial.started_at,
            "finishedAt": trial.finished_at, "value": trial.values[0] if trial.values else None}[field]


def summary(reason: str) -> str:
    """A reason's headline: its first line, without the output that follows it."""
    return reason.splitlines()[0].split("; last lines:")[0] if reason else ""


def duration(start: float | None, end: float | None) -> float | None:
    """How long a trial ran, never less than nothing: its start and end are read off the wall
    clock, which a time sync may set back between them (or two service replicas read apart)."""
    return None if start is None or end is None else max(end - start, 0.0)


def _seconds(value: float | None) -> float | None:
    """A duration's cell: to the millisecond, as far as the wall clock it was read off is worth
    telling (a float's every digit, 12.345678806304932, says nothing more)."""
    return None if value is None else round(value, 3)


def timestamp(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")
