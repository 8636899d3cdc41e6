"""``trial.suggested``, ``study.completed``: the status of a study that came from a Kubernetes
resource follows it there.

Both events are emitted after the state they follow was stored (a trial ended and the next was
asked for; the study ended), so even a Trigger delivering in parallel with the other handlers
reads fresh counts. The status is computed from the store alone, after the resource was read,
and written whole over the resourceVersion read: a write that another landed before is
computed again from the store (:meth:`functions.core.ports.Resources.write_status`). So of two
reports running at once, the one computed earlier never lands last (a Running status over a
Stopped one), and a duplicate or late event writes the same status again, or a fresher one. Studies submitted over HTTP have
no resource and cost one read; where no study resources are watched (``katuna run``), none.

A Katib Experiment's Trial resources are written first, as its trials change
(:mod:`functions.handlers.trial_writes`): the Experiment's status counts no trial change they do
not show yet.

A Katib Experiment's Suggestion (:mod:`functions.core.katib_suggestion`) is written with its
status, just before it, from the study as stored once that status was computed: a client that
sees the Experiment succeeded finds its Suggestion succeeded too (or, under ``LongRunning``,
running), as Katib's conformance program checks.

What the written Trials show happened and a study's end are then recorded as Kubernetes
Events on the Trials and the study's resource (:mod:`functions.core.resource_events`), after the
lock is let go and whether or not the status write succeeded: each happening's Event has a name
of its own, so a report made again records none twice, and the names recorded are kept in the
store (the Trials' with their trials, the end's with the study), so no other process asks for
them again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from functions.core.errors import PermanentError, StudyNotFound, TemporaryError
from functions.core.events import Event
from functions.core.katib_suggestion import suggestion
from functions.core.katib_trials import trial_lists, trials_owner
from functions.core.pareto import best_trials, katib_optimal
from functions.core.ports import Resources
from functions.core.records import StudyRecord
from functions.core.resource_events import Happening, event_name, study_end, study_regarding
from functions.core.resource_status import study_status
from functions.core.resources import Origin
from functions.core.status_room import fitted, room
from functions.core.store_port import Store, with_stopped, with_unavailable
from functions.handlers.deps import Deps
from functions.handlers.trial_writes import (
    Happened,
    changed,
    listed_trials,
    observed,
    record_trial_events,
    status_after_trials,
)

log = logging.getLogger("katuna.writeback")


def handle(event: Event, deps: Deps) -> list[Event]:
    if deps.resources is None:
        return []
    try:
        record = deps.store.get_study(event.data["study"])
    except StudyNotFound:
        return []
    if record.owns(event.data):
        report(record, deps)
    return []


def report(record: StudyRecord, deps: Deps) -> None:
    """Write the study's status to its resource, if it has one (and it is still there), then
    record the Events of what the Trials written show, and of the study's end."""
    resources = deps.resources
    if record.origin is None or resources is None:
        return
    origin = Origin.from_dict(record.origin)
    happened: Happened = {}
    current = partial(_current_status, record, origin, deps.store)
    status: Callable[[], Mapping[str, Any]] = current
    if trials_owner(record) is not None:
        after_trials = partial(status_after_trials, record, origin, deps.store, resources, deps.katib_trials_kept,
                               happened, current)
        status = partial(_with_suggestion, after_trials, record, origin, deps.store, resources)
    try:
        written = resources.write_status(origin.ref, origin.uid, status)
    finally:
        record_trial_events(record, deps.store, resources, happened)
    ended = study_end(record, origin)
    if written and ended is not None:
        _record_end(record, origin, ended, deps.store, resources)


def _record_end(record: StudyRecord, origin: Origin, ended: Happening, store: Store, resources: Resources) -> None:
    """Record the Event of the study's end unless a report, of this process or another, recorded
    it already (its name kept with the study): one Event an end, neither asked for again by
    another worker or a restarted service nor made again once the API server let it expire. A
    store that fails to keep the name leaves it to be asked for, and found there, by a later report."""
    regarding = study_regarding(origin)
    if event_name(regarding, ended.key) in store.recorded_study_events(record.name, record.uid):
        return
    names = resources.record_events(regarding, [ended])
    if not names:
        return
    try:
        store.add_recorded_study_events(record.name, record.uid, names)
    except TemporaryError as exc:
        log.warning("the Event of the end of study %s was not kept (%s): a later report asks for it again",
                    record.name, exc)


def behind(record: StudyRecord, origin: Origin, resource: Mapping[str, Any], store: Store) -> bool:
    """Whether the study's ``resource`` (as listed) lags the store: its status is not the one a
    report would write now (cut as the write cuts it to fit etcd beside the resource:
    :mod:`functions.core.status_room`), or a trial changed since its Trial resources were
    written. Store reads only: the tick asks it of resources it listed (:mod:`functions.handlers.resource_check`)."""
    status = {key: value for key, value in fitted(_status(record, origin, store), room(resource)).items()
              if value is not None}
    return (resource.get("status") or {}) != status or (trials_owner(record) is not None and changed(record, store))


def _status(record: StudyRecord, origin: Origin, store: Store) -> dict[str, Any]:
    """The status of the study's resource, from the store: with its best trial, or the Pareto
    front of a study of several objectives (which reads its completed trials, as
    ``GET /studies/{name}`` does)."""
    counts = with_stopped(store, record.name, store.count_trials(record.name))
    best = katib_optimal(store, record) if origin.ref.katib else best_trials(store, record)
    if trials_owner(record) is None:
        return study_status(record, counts, best, origin)
    counts = with_unavailable(store, record.name, counts)
    status = study_status(record, counts, best, origin, observed(best[0], store) if best else ())
    return status | trial_lists(origin.ref.name, listed_trials(record, counts, store))


def _with_suggestion(status: Callable[[], Mapping[str, Any]], record: StudyRecord, origin: Origin, store: Store,
                     resources: Resources) -> Mapping[str, Any]:
    """A Katib Experiment's status (what ``status()`` computes), its Suggestion written first
    (:mod:`functions.core.katib_suggestion`): the Suggestion is read, then the Experiment's
    status computed, then the Suggestion's from the study as stored after it, and written over
    the version read. So the Suggestion is never behind the status written after it: a client
    that sees the Experiment succeeded (``wait_for_experiment_condition``) reads a Suggestion
    that has too, as Katib's conformance program checks. One katuna may not write (a
    Suggestion of another's holding the name, or a role without Katib's Suggestions) is
    logged, and the Experiment's status written all the same."""
    computed: list[Mapping[str, Any]] = []

    def wanted() -> dict[str, Any]:
        computed.append(status())
        current, _ = _now(record, origin, store)
        return suggestion(current, origin, store.count_trials(current.name).created)

    try:
        resources.put_suggestion(origin.ref, origin.uid, wanted)
    except PermanentError as exc:
        log.warning("%s: its Suggestion is not written: %s", origin.ref, exc)
    return computed[-1] if computed else status()


def _now(record: StudyRecord, origin: Origin, store: Store) -> tuple[StudyRecord, Origin]:
    """The study and its origin as stored now: ``record`` and ``origin`` where the study was
    deleted or replaced since."""
    try:
        current = store.get_study(record.name)
    except StudyNotFound:
        return record, origin
    if current.uid != record.uid or current.origin is None:
        return record, origin
    now = Origin.from_dict(current.origin)
    return current, now if now.uid == origin.uid else origin


def _current_status(record: StudyRecord, origin: Origin, store: Store) -> dict[str, Any]:
    """The status from the store as it is when asked: the study is read again (unless it was
    deleted or replaced since), its origin with it, as a write computed again must not reuse the
    record a report started with. An edit handled since (refused, or applied) is the generation
    the status observes; with the origin read at the start, a report that began before it would
    put the generation before back over the edit's own report.

    A writer under way is waited for first (:meth:`~functions.core.store_port.Store.await_writers`):
    the ``resource`` function reports an edit inside its transaction, so the status it wrote
    (and the resource version this write was read at) may already hold a generation the store
    commits only later; computed from the store before that commit, this status would put the
    generation before back over it."""
    store.await_writers()
    return _status(*_now(record, origin, store), store)
