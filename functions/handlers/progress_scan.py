"""Cluster trials' running logs read now and then: for early stopping, as Katib's collector gives
it, each new report of the objective becomes the ``trial.progress`` event the ``prune`` handler
judges, as a local trial's does; and for every cluster study, the observations of its metrics are
kept as they are read (:mod:`functions.core.log_keep`), so the kubelet's rotation of a chatty
trial's log loses none of them.

The watcher of ``katuna serve`` scans the studies with early stopping every
``KATUNA_K8S_PROGRESS_SECONDS``, and every study every ``KATUNA_K8S_KEEP_SECONDS``; on Knative the
reconcile tick scans every study. A scan reads and sends, and keeps what it read: how far each
log's reports were handled is the cursor (:mod:`functions.core.log_cursor`) stored with the
trial in katuna's store when a report is handled (in the transaction that gives Optuna the
report as an intermediate value), so a scan that finds nothing new sends nothing, and two scans
at once, or a scan racing the handling of its events, send events with the same ids (named by
the step). How far each log was kept is stored with the trial too, with what was kept, in one
transaction that first checks that nothing was kept since the read began (else the read is
dropped: the next one goes on from what is stored), and that the attempt still runs. Both are
one row of the trials table, read and written by its key: a scan of many running trials costs
no lookup or write in Optuna's storage.

A scan is bounded: only running trials of running studies, only pods that run, their pods
listed together per study (:meth:`~functions.core.ports.Executor.together`), at most
:data:`MAX_READS` logs (a different slice each window when there are more), each read at most
:data:`READ_LIMIT` bytes from about where the last read stopped, and at most
:data:`REPORTS_PER_READ` reports sent of each read, besides the ones the study's rule judges a
trial on (medianstop's first ``start_step``); a trial printing faster than
that between two scans falls behind, and the lines the kubelet rotates away before they are
read are lost (the trial's reason says so: :mod:`functions.core.log_rotation`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from functions.core.errors import KatunaError
from functions.core.events import Event, trial_progress
from functions.core.launch import trial_launch
from functions.core.log_context import about
from functions.core.log_cursor import Cursor, Report, RunningLog, reports
from functions.core.log_keep import Kept, keeps, line_parser, lost_run, new_summary, start, take
from functions.core.metric_summary import MAX_OBSERVATIONS
from functions.core.records import RUNNING, StudyRecord, TrialRecord
from functions.core.rotation import rotated
from functions.core.store_port import Store
from functions.handlers.deps import Deps
from functions.handlers.starting import current_attempt

log = logging.getLogger("katuna.progress")

MAX_READS = 50
"""Logs one scan reads."""

READ_LIMIT = 1 << 20
"""Bytes of one log read: a trial that printed more since the last read is read on at the next."""

REPORTS_PER_READ = 100
"""Reports of one log read sent, besides those the study's rule judges a trial on (:func:`_sent`):
the first ones and the latest. A megabyte of short lines holds tens of thousands, each an event
ahead of every other study's; those passed over are never judged (the latest handled moves the
cursor past them), as a local trial's flood is paced (:mod:`functions.adapters.local_progress`)."""


def scan(deps: Deps, studies: Sequence[StudyRecord], window: int = 0, every_study: bool = True) -> list[Event]:
    """The ``trial.progress`` events of every new report in the running trials' logs of the
    studies with early stopping, the observations of the running trials' logs kept; those of the
    studies without early stopping only when ``every_study``."""
    if deps.logs is None:
        return []
    running = [(record, trial) for record in studies
               if not record.terminal and (record.spec.early_stopping or (every_study and keeps(record.spec)))
               for trial in deps.store.trials(record.name, (RUNNING,))]
    by_study: dict[str, list[tuple[StudyRecord, TrialRecord]]] = {}
    for record, trial in rotated(running, window, MAX_READS)[:MAX_READS]:
        by_study.setdefault(record.name, []).append((record, trial))
    events: list[Event] = []
    for chosen in by_study.values():
        with deps.executor.together([trial_launch(record, trial) for record, trial in chosen]):
            for record, trial in chosen:
                try:
                    events += trial_reports(record, trial, deps)
                except KatunaError as exc:
                    log.warning("reading the progress of %s trial %d: %s", record.name, trial.number, exc,
                                extra=about(record.name, trial.number))
    return events


def trial_reports(record: StudyRecord, trial: TrialRecord, deps: Deps) -> list[Event]:
    """The progress events of the reports in the trial's running log past its stored cursor;
    the observations past what was kept of it kept."""
    if deps.logs is None:
        return []
    launch = trial_launch(record, trial)
    read = deps.store.log_read(record.name, trial.number)
    kept = read.kept_of(trial.attempt) if keeps(record.spec) else None
    latest = kept.latest if kept is not None else None
    begin = start(latest, read.cursor) if launch.progress is not None else latest
    running = deps.logs.running_log(launch, begin, READ_LIMIT)
    if running is None:
        return []
    if kept is not None:
        _keep(record, trial, deps, running, kept)
    if launch.progress is None:
        return []
    ids = (record.name, record.uid, trial.number, trial.attempt)
    sent = _sent(reports(launch, running, begin), launch.progress.keep)
    return [trial_progress(*ids, report.step, report.value, launch.progress.token, report.cursor.to_dict(),
                           counted=not report.cursor.named)
            for report in sent]


def _sent(found: list[Report], keep: int) -> list[Report]:
    """The reports of one read sent: all of them, up to :data:`REPORTS_PER_READ`; else the first
    ones, every one among the first ``keep`` reports of the log (the study's rule judges a trial
    at that count of steps: medianstop's ``start_step``, on all of them, as a local trial's
    pace keeps them: :mod:`functions.adapters.local_pace`), and the latest. At most
    ``keep`` more: the count of reports grows along a read."""
    if len(found) <= REPORTS_PER_READ:
        return found
    last = len(found) - 1
    return [report for index, report in enumerate(found)
            if index < REPORTS_PER_READ - 1 or report.cursor.reports <= keep or index == last]


def _keep(record: StudyRecord, trial: TrialRecord, deps: Deps, running: RunningLog, kept: Kept) -> None:
    """Store the observations of the lines of ``running`` past what was ``kept``, with how far
    they go and the tally of all kept so far; unless the attempt ended, or a read that raced
    this one kept lines first (this read goes, and the next goes on from the stored). The first
    read of a pod that replaced a disrupted one whose log was kept
    (:func:`~functions.core.log_keep.lost_run`) starts the keeping over: the lost run's
    observations go, and the replacement's count from its first line."""
    spec = record.spec
    launch = trial_launch(record, trial)
    lost = bool(kept.cursors) and kept.of(running.pod) is None and deps.logs is not None \
        and lost_run(kept, deps.logs.counted_pods(launch))
    base = Kept(kept.attempt) if lost else kept
    taken = take(running, line_parser(spec, launch), spec.objectives[0].metric, base.of(running.pod))
    if taken is None:
        return
    summary = new_summary(spec)
    if base.tally:
        summary.resume(base.tally, ())
    summary.add(taken.observations)
    store = deps.store
    with store.transaction():
        if (current_attempt(store, record, trial) is None
                or store.log_read(record.name, trial.number).kept_of(trial.attempt) != kept):
            return
        if lost:
            store.add_observations(record.name, trial.number, trial.attempt, [])
        store.append_observations(record.name, trial.number, trial.attempt, taken.observations, MAX_OBSERVATIONS)
        store.set_log_kept(record.name, trial.number, base.on(taken.cursor, summary.tally()))


def remember(store: Store, study: str, number: int, raw: object) -> None:
    """Store the cursor a handled report came with, unless the stored one is further on."""
    cursor = Cursor.from_dict(raw)
    if cursor is not None and cursor.passes(store.log_read(study, number).cursor):
        store.set_log_cursor(study, number, cursor)
