"""Early stopping for cluster trials that only print their metrics, as Katib's collector gives
it: the running trials' logs are read now and then, and each new report of the objective
becomes the ``trial.progress`` event the ``prune`` handler judges, as a local trial's does.

The watcher of ``katuna serve`` scans every ``KATUNA_K8S_PROGRESS_SECONDS``; on Knative the
reconcile tick scans. A scan only reads and sends: how far each log has been read is the
cursor (:mod:`functions.core.log_cursor`) stored with the trial's intermediate values when a
report is handled, so a scan that finds nothing new sends nothing, and two scans at once, or a
scan racing the handling of its events, send events with the same ids (named by the step).

A scan is bounded: only running trials of running studies with early stopping, only pods that
run, at most :data:`MAX_READS` logs (a different slice each window when there are more), each
read at most :data:`READ_LIMIT` bytes from about where the last read stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from optuna.storages import BaseStorage

from functions.core.errors import KatunaError
from functions.core.events import Event, trial_progress
from functions.core.launch import trial_launch
from functions.core.log_cursor import Cursor, reports
from functions.core.records import RUNNING, StudyRecord, TrialRecord
from functions.core.rotation import rotated
from functions.handlers.base import Deps

log = logging.getLogger("katuna.progress")

MAX_READS = 50
"""Logs one scan reads."""

READ_LIMIT = 1 << 20
"""Bytes of one log read: a trial that printed more since the last read is read on at the next."""

CURSOR = "katuna:log_cursor"
"""The Optuna trial system attribute holding how far the trial's log has been read."""


def scan(deps: Deps, studies: Sequence[StudyRecord], window: int = 0) -> list[Event]:
    """The ``trial.progress`` events of every new report in the running trials' logs."""
    if deps.logs is None:
        return []
    running = [(record, trial) for record in studies if not record.terminal and record.spec.early_stopping
               for trial in deps.store.trials(record.name, (RUNNING,))]
    events: list[Event] = []
    for record, trial in rotated(running, window, MAX_READS)[:MAX_READS]:
        try:
            events += trial_reports(record, trial, deps)
        except KatunaError as exc:
            log.warning("reading the progress of %s trial %d: %s", record.name, trial.number, exc)
    return events


def trial_reports(record: StudyRecord, trial: TrialRecord, deps: Deps) -> list[Event]:
    """The progress events of the reports in the trial's running log past its stored cursor."""
    if deps.logs is None:
        return []
    launch = trial_launch(record, trial)
    cursor = stored_cursor(deps.store.optuna_storage(), record.name, trial.number)
    running = deps.logs.running_log(launch, cursor, READ_LIMIT)
    if running is None:
        return []
    ids = (record.name, record.uid, trial.number, trial.attempt)
    return [trial_progress(*ids, found.step, found.value, found.cursor.to_dict())
            for found in reports(launch, running, cursor)]


def _trial_id(storage: BaseStorage, study: str, number: int) -> int:
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study), number)


def stored_cursor(storage: BaseStorage, study: str, number: int) -> Cursor | None:
    """How far the trial's log has been read, as the handled reports left it."""
    return Cursor.from_dict(storage.get_trial_system_attrs(_trial_id(storage, study, number)).get(CURSOR))


def remember(storage: BaseStorage, trial_id: int, raw: object) -> None:
    """Store the cursor a handled report came with, unless the stored one is further on."""
    cursor = Cursor.from_dict(raw)
    if cursor is not None and cursor.passes(Cursor.from_dict(storage.get_trial_system_attrs(trial_id).get(CURSOR))):
        storage.set_trial_system_attr(trial_id, CURSOR, cursor.to_dict())
