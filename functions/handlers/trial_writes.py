"""A Katib Experiment's Trial resources, written by ``writeback``
(:mod:`functions.handlers.writeback`) as its trials change, never listed: each report writes the
trials changed since the last one (all of them the first time) and records the change it
reached, so an event costs as many writes as trials changed, at any study size.

A report that finds changed trials holds the store's write lock while it writes them: such
reports follow one another, each reads what the one before left, and none can write an older
state over a newer one; a report that fails records nothing, and the next one writes the same
trials again. The Trials are written before the Experiment's status, which counts no trial
change they do not show yet: as Katib's controller sums its Trials, a client that sees the
Experiment succeeded (``KatibClient.wait_for_experiment_condition``) and lists its Trials finds
each one finished. The status itself is written after the lock is let go.

What the written Trials show happened (a run started, lost or ended) is then recorded as
Kubernetes Events on the Trials (:mod:`functions.core.resource_events`), after the lock is let
go and whether or not the status write succeeded: each happening's Event has a name of its own,
so a report made again records none twice, and a failure to record one changes nothing else.
The names of a Trial's Events recorded are kept with its trial: a report of any process
(another worker, one restarted) asks for none again, nor makes again one the API server let
expire (its event TTL), as Katib's trial controller records each once, when the Trial's
condition changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from functions.core.errors import StudyNotFound, TemporaryError
from functions.core.katib_trials import (
    TRIAL_LISTS,
    TRIALS_LISTED,
    kept_trials,
    trial_name,
    trial_resource,
    trial_status,
)
from functions.core.metrics import Observation
from functions.core.pareto import best_trials
from functions.core.ports import Resources
from functions.core.records import FAIL, PRUNED, Counts, StudyRecord, TrialRecord
from functions.core.resource_events import Happening, Regarding, event_name, trial_happenings, trial_regarding
from functions.core.resources import Origin
from functions.core.store_port import Store
from functions.core.trial_query import TrialQuery

log = logging.getLogger("katuna.writeback")

Happened = dict[int, tuple[Regarding, list[Happening]]]
"""The happenings not recorded yet of the Trials a report wrote, by trial number, each with its
Trial (a Trial written again by a status computed again: the latest)."""


def record_trial_events(record: StudyRecord, store: Store, resources: Resources, happened: Happened) -> None:
    """Record the Events of what the Trials written show happened, and keep the names of those
    recorded with their trials (a store that fails to keep them leaves them to be asked for,
    and found there, by a later report)."""
    recorded = {number: names for number, (regarding, happenings) in happened.items()
                if happenings and (names := resources.record_events(regarding, happenings))}
    if not recorded:
        return
    try:
        store.add_recorded_events(record.name, recorded)
    except TemporaryError as exc:
        log.warning("the Events recorded about %d Trials of study %s were not kept (%s): a later report asks "
                    "for them again", len(recorded), record.name, exc)


def observed(trial: TrialRecord, store: Store) -> list[Observation]:
    """The reports of a Katib Experiment's trial that its metrics' ``min``, ``max`` and
    ``latest`` come from (its current attempt's, as stored): none before it has metrics."""
    return store.observations(trial.study, trial.number, trial.attempt) if trial.metrics else []


def listed_trials(record: StudyRecord, counts: Counts, store: Store) -> list[TrialRecord]:
    """The trials a Katib Experiment's per-state lists may name: the latest
    :data:`~functions.core.katib_trials.TRIALS_LISTED` of each state, and of the pruned as many
    more as were stopped because the study ended, which are listed apart (so both lists fill),
    and of the failed as many more as never reported their objective, up to as many again
    (listed apart too: of a study with more, the latest of each among its latest failed), each
    state read in one bounded query whatever the study's size."""
    listed: list[TrialRecord] = []
    for state in TRIAL_LISTS:
        limit = TRIALS_LISTED + (counts.stopped_at_end if state == PRUNED else 0)
        if state == FAIL:
            limit += min(counts.metrics_unavailable, TRIALS_LISTED)
        listed += _latest(record, store, (state,), limit)
    return listed


def _latest(record: StudyRecord, store: Store, states: tuple[str, ...], limit: int) -> list[TrialRecord]:
    """The study's latest ``limit`` trials in ``states`` (any state where none is given), by
    number from the latest, through the index of the trials by state and number and uncounted:
    as many rows read as returned, whatever the study's size."""
    query = TrialQuery(states, sort="number", descending=True, limit=limit)
    return [trial for _, trial in store.keyed_trials(record.name, query, None)]


def status_after_trials(record: StudyRecord, origin: Origin, store: Store, resources: Resources, kept: int,
                        happened: Happened, current_status: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A Katib Experiment's status (what ``current_status()`` computes from the store as it is
    when asked), computed once every trial change it counts is on its Trial resources. Where no
    trial changed since the last report, it is computed without the lock and stands if still
    none has changed after it (the last report wrote them all, up to a change later than any it
    counts); else the changed trials are written under the lock and the status computed before
    the lock is let go, while no trial can change. Called once the Experiment was read
    (:meth:`~functions.core.ports.Resources.write_status`), so no Trial is written for an
    Experiment that is gone."""
    if not changed(record, store):
        status = current_status()
        if not changed(record, store):
            return status
    with store.transaction():
        _report_trials(record, origin, store, resources, kept, happened)
        return current_status()


def changed(record: StudyRecord, store: Store) -> bool:
    """Whether a trial changed since the last report (read without the lock: most events of a
    redelivery, or of a report that came first, find nothing to write and take no lock), from
    the latest change alone: the trials changed are read under the lock, once."""
    return store.latest_trial_change(record.name) > store.trials_reported(record.name)


def _report_trials(record: StudyRecord, origin: Origin, store: Store, resources: Resources, kept: int,
                   happened: Happened) -> None:
    """Write the Trial resources of the trials changed since the last report, and delete those
    of ended trials that fell out of the ``kept`` latest (:func:`~functions.core.katib_trials.kept_trials`),
    then record the change this report reached; what each Trial written shows happened is
    added to ``happened``. A report whose study was deleted and submitted
    again under its name (a late one of a deleted Experiment) stops: the changes stored are the
    new study's, which only a report of the new study writes and records."""
    if not _current(record, store):
        return
    reported = store.trials_reported(record.name)
    changes, latest = store.trial_changes(record.name, reported)
    if changes:
        best = best_trials(store, record)
        written, dropped = kept_trials(changes, _newest(record, store), kept, best[0].number if best else None,
                                       partial(_ended, record, store))
        if written:
            uids = resources.put_trials(origin.ref, [{**trial_resource(record, origin, t),
                                                      "status": trial_status(t, record.spec, observed(t, store))}
                                                     for t in written])
            _add_happened(record, origin, store, uids, written, happened)
        if dropped:
            resources.delete_trials(origin.ref, origin.uid, [trial_name(origin.ref.name, n) for n in dropped])
    if latest > reported:
        store.set_trials_reported(record.name, latest)


def _add_happened(record: StudyRecord, origin: Origin, store: Store, uids: Mapping[str, str],
                  written: Sequence[TrialRecord], happened: Happened) -> None:
    """Add to ``happened`` what each Trial written (of uid ``uids[name]``) shows happened whose
    Event is not recorded (as its trial keeps the names of those that are)."""
    recorded = store.recorded_events(record.name, [t.number for t in written])
    for trial in written:
        name = trial_name(origin.ref.name, trial.number)
        if name in uids:
            regarding = trial_regarding(origin.ref.namespace, name, uids[name])
            kept = recorded.get(trial.number, frozenset())
            happened[trial.number] = (regarding, [h for h in trial_happenings(record, trial)
                                                  if event_name(regarding, h.key) not in kept])


def _newest(record: StudyRecord, store: Store) -> int:
    """The number of the study's latest trial (-1: none yet)."""
    latest = _latest(record, store, (), 1)
    return latest[0].number if latest else -1


def _ended(record: StudyRecord, store: Store, number: int) -> bool:
    """Whether the study's trial ``number`` is stored and has ended."""
    trial = store.get_trial(record.name, number)
    return trial is not None and trial.finished


def _current(record: StudyRecord, store: Store) -> bool:
    """Whether the study stored under the record's name is still the record's (read under the
    lock, so no study replaces it before the report records what it wrote)."""
    try:
        return store.get_study(record.name).uid == record.uid
    except StudyNotFound:
        return False
