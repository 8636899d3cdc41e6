"""``study.created``: start or resume a study.

Every delivery reconciles, so a duplicate is harmless and a re-run resumes: attempts whose run
the executor no longer has end as preempted (a fresh attempt, while the trial has runs left
under ``trialTemplate.maxAttempts``), unless it proves they ended on their own (then their end is
handled), then free parallel slots get new trials.
A continuation (sent when one event could not ask for every free slot) only asks. A study's
first delivery also records what makes it reproducible (:mod:`functions.core.reproducible`) and
gives the sampler the study's known results (its warm start).
"""

from __future__ import annotations

import logging
import threading

from functions.core.events import Event, trial_suggested
from functions.core.launch import trial_launch
from functions.core.records import ACTIVE_STATES, RUNNING, StudyRecord, TrialRecord
from functions.core.reproducible import drift, provenance
from functions.handlers.ahead import CONTINUED
from functions.handlers.asking import ask_trials, check_stop, complete, discard, warm_start
from functions.handlers.deps import Deps, study_here
from functions.handlers.starting import gone

log = logging.getLogger("katuna.studies")


def handle(event: Event, deps: Deps) -> list[Event]:
    store = deps.store
    record = study_here(deps, event.data["study"])
    if record.terminal or not record.owns(event.data):
        return []
    if record.started_at is None:
        store.update_study(record.name, started_at=deps.clock(), **provenance(record, deps.lookahead))
        record = store.get_study(record.name)
        lost = warm_start(record, deps)
        if lost is not None:
            return complete(record, deps, lost)
    elif CONTINUED not in event.data:
        warn_of_drift(record, deps.lookahead)
    events = [] if CONTINUED in event.data else _resume(record, deps)
    counts = store.count_trials(record.name)  # read once for both: nothing between them writes
    decision = check_stop(record, deps, counts=counts)
    if decision is not None:
        return complete(record, deps, decision)
    return events + ask_trials(record, deps, counts)


class _Warned:
    """The studies (name and uid) a process has warned of drifting, each once: a service that
    starts warns of each study it goes on with, and a study-start event of the study still
    queued then would warn again of the same."""

    def __init__(self) -> None:
        self._studies: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def first(self, record: StudyRecord) -> bool:
        """Whether this is the process's first warning of the study (then it is counted)."""
        with self._lock:
            if (record.name, record.uid) in self._studies:
                return False
            self._studies.add((record.name, record.uid))
            return True


_WARNED = _Warned()


def warn_of_drift(record: StudyRecord, lookahead: int) -> None:
    """Log a warning, once per study in a process, when a process of releases or look-ahead
    other than those recorded when the study started goes on with it (resumes it, restarts it,
    or serves it after an upgrade): a seeded study then no longer repeats the trials an
    uninterrupted run of it suggests."""
    differs = drift(record, lookahead)
    if differs is not None and _WARNED.first(record):
        log.warning("%s", differs)


def _resume(record: StudyRecord, deps: Deps) -> list[Event]:
    """Suggest the waiting trials again, and end each running attempt whose run the executor
    lost (its process or Job is gone) as preempted. With look-ahead, waiting trials are
    released into the free slots by :func:`ask_trials` instead.

    A lost run is a run lost as a preempted one is (:func:`~functions.handlers.starting.gone`).
    An attempt the executor proves ended on its own (its exit recorded, its handling given up as
    katuna stopped: :meth:`Executor.recorded_end`) is no lost run: its own ``trial.finished`` is
    handled, from its output. Either event's id is the attempt's, so a delivery of
    ``study.created`` again, or the attempt's own end arriving too, changes nothing twice."""
    events, lost = [], []
    active = deps.store.trials(record.name, ACTIVE_STATES)
    for trial in active if deps.lookahead else _within_parallelism(record, deps, active):
        if trial.state != RUNNING:
            events.append(trial_suggested(record.name, record.uid, trial.number, trial.attempt))
            continue
        if not deps.executor.exists(trial_launch(record, trial)):
            lost.append(gone(record, trial, deps, "when the study resumed"))
    return lost if deps.lookahead else lost + events


def _within_parallelism(record: StudyRecord, deps: Deps, active: list[TrialRecord]) -> list[TrialRecord]:
    """Without look-ahead every active trial is launched at once, so a study holds no more of
    them than its parallelism: trials prepared beyond it by a process with look-ahead (``katuna
    run``), which never started, are discarded, the latest first (the sampler is asked again as
    slots free). The active trials that remain."""
    excess = len(active) - record.spec.parallelism
    if excess <= 0:
        return active
    surplus = [trial for trial in reversed(active) if trial.started_at is None
               and not deps.executor.exists(trial_launch(record, trial))][:excess]
    for trial in surplus:
        discard(record, deps, trial.number)
    return [trial for trial in active if trial not in surplus]
