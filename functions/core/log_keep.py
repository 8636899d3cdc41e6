"""A cluster trial's observations kept as its running log is read, so that none is lost to the
kubelet's log rotation.

The kubelet starts a new log file for a running container each time the current one passes
``containerLogMaxSize`` (10 Mi by default), and the Kubernetes API serves only the current file
(:mod:`functions.core.log_rotation`): read only at the end, a chatty trial's log has lost its
first lines, with any best value of a ``min`` or ``max`` metric among them. So katuna reads every
running cluster trial's log a piece at a time (the scan of :mod:`functions.handlers.progress_scan`)
and keeps the observations of the study's metrics as it reads them: the observations themselves
(at most :data:`~functions.core.metric_summary.MAX_OBSERVATIONS`, the first and the last), and the
:class:`~functions.core.metric_summary.Summary`'s tally of all of them, so a ``min``, ``max`` or
``latest`` reduces over the whole run. :class:`Kept` is what was kept of an attempt: how far each
of its pods' logs was read (a :class:`~functions.core.log_cursor.Cursor` each), and the tally. At
the end, the lines of the final read past each pod's cursor are added to it (:func:`unread`), so
no line counts twice. A pod disrupted and replaced inside its Job (its replacement runs the
trial again from its start) leaves what was kept of it behind (:func:`lost_run`): the keeping
starts over with the replacement's log, so the lost run's steps and metrics never count.

A TensorFlow event collector's records are printed only once the trial's command ended, and
sorted by step when read: they are read at the end only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from functions.core import tfevent_lines
from functions.core.file_collector import file_lines
from functions.core.launch import TrialLaunch
from functions.core.log_cursor import Cursor, RunningLog, complete_lines, pieces, returns_cut
from functions.core.metric_summary import Summary
from functions.core.metrics import Observation, StepCounter, parse_json_lines, parse_text
from functions.core.spec import Study

Parse = Callable[[Iterable[str]], list[Observation]]
"""The observations of the study's metrics in some lines of a trial's log."""


def keeps(spec: Study) -> bool:
    """Whether a cluster trial of the study has its observations kept as its log is read: its
    metrics are in its output, or in a metrics file its wrapper copies to the output as it grows
    (not a TensorFlow event collector's, printed at the end)."""
    return spec.metrics_collector.kind != "tfevent"


def line_parser(spec: Study, launch: TrialLaunch) -> Parse:
    """How the study's metrics are read from a cluster trial's log lines: its collector's format
    and filters, from the metrics file's lines where its wrapper copies a file to the log."""
    parse = format_parser(spec)
    if launch.metrics_file is None:
        return parse
    return lambda lines: parse(file_lines(lines))


def format_parser(spec: Study) -> Parse:
    """How the study's metrics are read from lines in its collector's format, with its filters:
    a TensorFlowEvent collector's reports are JSON lines (:mod:`functions.core.tfevent_lines`)."""
    collector = spec.metrics_collector
    if collector.format == "json" or collector.kind == "tfevent":
        return partial(parse_json_lines, metrics=spec.metric_names)
    return partial(parse_text, metrics=spec.metric_names, filters=collector.filters)


def observed_lines(spec: Study, lines: Iterable[str]) -> Iterable[str]:
    """The lines holding the observations in what a File or TensorFlowEvent collector reads
    (``lines``), to read with :func:`format_parser`: the metrics file's own lines, or each report
    of the study's metrics among the event folder's records, as a JSON line
    (:func:`~functions.core.tfevent_lines.metric_lines`)."""
    if spec.metrics_collector.kind == "tfevent":
        return tfevent_lines.metric_lines(lines, spec.metric_names)
    return lines


@dataclass(frozen=True)
class Kept:
    """What was kept of attempt ``attempt``'s running log: how far each of its pods' logs was
    read (the pod read last, last), and the tally of the observations kept (see
    :meth:`functions.core.metric_summary.Summary.tally`)."""

    attempt: int
    cursors: tuple[Cursor, ...] = ()
    tally: Mapping[str, Any] = field(default_factory=dict)

    def of(self, pod: str) -> Cursor | None:
        """How far pod ``pod``'s log was read, None when it never was."""
        return next((c for c in self.cursors if c.pod == pod), None)

    @property
    def latest(self) -> Cursor | None:
        """The cursor of the pod read last."""
        return self.cursors[-1] if self.cursors else None

    def on(self, cursor: Cursor, tally: Mapping[str, Any]) -> Kept:
        """Kept further: ``cursor`` replaces its pod's, and ``tally`` the tally."""
        return Kept(self.attempt, (*(c for c in self.cursors if c.pod != cursor.pod), cursor), tally)

    def to_dict(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "cursors": [c.to_dict() for c in self.cursors], "tally": dict(self.tally)}

    @classmethod
    def from_dict(cls, raw: object) -> Kept | None:
        """The record ``raw`` holds, or None when it holds none."""
        if not isinstance(raw, Mapping):
            return None
        attempt, cursors, tally = raw.get("attempt"), raw.get("cursors"), raw.get("tally")
        if not isinstance(attempt, int) or not isinstance(cursors, list) or not isinstance(tally, Mapping):
            return None
        read = [Cursor.from_dict(c) for c in cursors]
        try:
            Summary({}).resume(tally, ())
        except ValueError:
            return None
        return None if None in read else cls(attempt, tuple(c for c in read if c is not None), tally)


@dataclass(frozen=True)
class LogRead:
    """How far a trial's running log was read, as stored with the trial: the cursor past the
    last report of the objective handled (a study with early stopping), and what was kept of
    the log of its latest attempt read (each None when none is stored)."""

    cursor: Cursor | None = None
    kept: Kept | None = None

    def kept_of(self, attempt: int) -> Kept:
        """What was kept of attempt ``attempt``'s running log: nothing yet when what is stored
        is an earlier attempt's, or nothing is."""
        return self.kept if self.kept is not None and self.kept.attempt == attempt else Kept(attempt)


@dataclass(frozen=True)
class Taken:
    """The observations of a read's lines past the kept cursor, and the cursor past the last."""

    observations: list[Observation]
    cursor: Cursor


def start(kept: Cursor | None, progress: Cursor | None) -> Cursor | None:
    """Where a read of a study with early stopping starts, so that neither the lines to keep nor
    the reports of the objective not yet handled are skipped: at the kept cursor when every
    report before it was handled (the progress cursor, of the same pod, counts as many), else
    at the progress cursor (the log's start when there is none of that pod), so the reports not
    handled are sent again; at the progress cursor when nothing was kept."""
    if kept is None:
        return progress
    handled = progress if progress is not None and progress.pod == kept.pod else None
    if (handled.reports if handled is not None else 0) >= kept.reports:
        return kept
    return handled


def new_summary(spec: Study) -> Summary:
    """An empty summary of a trial's observations of the study's metrics, each reduced by its strategy."""
    return Summary({m: spec.strategy(m) for m in spec.metric_names}, objectives=[o.metric for o in spec.objectives],
                   skip_non_finite=spec.metrics_collector.non_finite == "skip")


def take(log: RunningLog, parse: Parse, objective: str, after: Cursor | None) -> Taken | None:
    """The observations in the complete lines of ``log`` past ``after`` (from its first line when
    ``after`` is of another pod, or None), with the cursor past the last of those lines (the
    reports of ``objective`` counted on); None when no line is past it."""
    if after is None or after.pod != log.pod:
        after = Cursor(log.pod, 0, 0, 0)
    counter = StepCounter(objective)
    counter.reports, counter.named = after.reports, after.named
    found: list[Observation] = []
    cursor = None
    for at, same, texts in complete_lines(log.lines):
        if (at, same) <= (after.at, after.same):
            continue
        observations = parse(returns_cut(texts))
        found += observations
        deque(counter.steps(observations), maxlen=0)
        cursor = Cursor(log.pod, at, same, counter.reports, counter.named)
    return None if cursor is None else Taken(found, cursor)


def lost_run(kept: Kept, counted: frozenset[str]) -> bool:
    """Whether some of what was ``kept`` is of a pod whose output no longer counts, ``counted``
    being the pods whose output is the attempt's: a disrupted pod that a later one replaced, which
    ran the trial again from its start. The tally holds that run's observations with the rest,
    so none of it can count: the attempt's observations are read again from the pods that count."""
    return any(cursor.pod not in counted for cursor in kept.cursors)


def unread(output: Iterable[tuple[str, Iterable[str]]], kept: Kept) -> Iterator[tuple[str, bool]]:
    """Each piece of each line of an ended attempt's output (``(pod, lines)`` for each of its
    pods, each line behind the time it was written, as a read with ``timestamps`` gives it),
    without its time, cut at its carriage returns (:func:`~functions.core.log_cursor.returns_cut`),
    and whether it is past what was kept of its pod's log (its observations are not kept yet). A
    last line without its line break counts as a line: the container ended."""
    for pod, lines in output:
        cursor = kept.of(pod)
        position = (cursor.at, cursor.same) if cursor is not None else (0, 0)
        for at, same, text, _ in pieces(lines):
            for part in returns_cut([text]):
                yield part, (at, same) > position
