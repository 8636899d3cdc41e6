"""Failures that are not temporary end the study that causes them, after a bounded count.

A handler (or the watcher) that fails on a study's behalf with anything but a temporary error
(an unexpected exception included) counts a failure in the study's row, where restarts and
redeliveries add up instead of starting over. At :data:`MAX_FAILURES` the study fails with the
error as its reason, through its ``study.completed``, so its trials and node pool are released
the usual way. Temporary errors (a busy database, a cloud's 503) count nothing: they are
retried with back-off. Nor does a forged progress report: its sender is at fault, not the study.
A dead letter fails its study only while its event still matters to the study's current run
(:func:`dead_letter_ends`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from functions.core.errors import ForgedEvent, KatunaError, StudyNotFound
from functions.core.event_data import attempt_named
from functions.core.events import ADVISORY, STUDY_COMPLETED, STUDY_CREATED, Event, of_this_run
from functions.core.log_context import about, of_event
from functions.core.records import FAILED, StudyRecord, stale_attempt
from functions.core.stop import Decision
from functions.handlers.asking import complete
from functions.handlers.deps import Deps

log = logging.getLogger("katuna.failures")

MAX_FAILURES = 3
"""Failed handlings of a study's events, counted over the study's life, after which the study
fails: a sampler setting that breaks every ask ends the study with its reason instead of
being retried forever."""


def temporary(exc: BaseException) -> bool:
    """Whether retrying later may help (and the failure counts nothing)."""
    return isinstance(exc, KatunaError) and exc.retryable


def counts(exc: BaseException) -> bool:
    """Whether the failure counts against the study: not when retrying may help, nor when the
    event was refused for its sender's fault (a forged event or progress report)."""
    return not temporary(exc) and not isinstance(exc, ForgedEvent)


def count_failure(deps: Deps, study: str, uid: str, where: str, exc: Exception,
                  event: Event | None = None) -> list[Event] | None:
    """Count ``exc`` (raised by ``where``, handling ``event`` where it was an event's handling)
    against the study: the events that end it once it has failed :data:`MAX_FAILURES` times,
    else None (the error stands). Its line names the event and trial, as every line about an
    event does."""
    count = deps.store.count_failure(study, uid)
    log.warning("%s failed for study %s (failure %s of %d): %s: %s", where, study, count, MAX_FAILURES,
                type(exc).__name__, exc, exc_info=not isinstance(exc, KatunaError),
                extra=about(study) if event is None else of_event(event))
    if count is None or count < MAX_FAILURES:
        return None
    return fail_study(deps, study, uid, f"{type(exc).__name__}: {exc} ({where} failed {count} times)")


def dead_letter_ends(deps: Deps, event: Event, reason: str) -> list[Event]:
    """A dead letter of a delivery refused for good, whether a Knative broker or katuna's own
    queue gave up on it: its study fails with the reason (the events that end it), unless the
    event is one the study can do without (:data:`ADVISORY`), names no study, or no longer
    matters to the study's current run (:func:`_matters`)."""
    study, uid = event.data.get("study"), event.data.get("uid")
    if event.type in ADVISORY or not isinstance(study, str) or not isinstance(uid, str):
        return []
    return fail_study(deps, study, uid, f"an event could not be delivered ({event.type}): {reason}",
                      lambda record: _matters(deps, record, event))


def _matters(deps: Deps, record: StudyRecord, event: Event) -> bool:
    """Whether the dead letter's event still matters to the study's current run: a letter may
    come back late (a lagging delivery to the dead-letter sink), after the study was restarted
    (a larger ``maxTrials``) or the trial ran again, and an event that no longer matters would
    then fail a run it was never part of (:func:`_moot`). One that does not is logged, and
    fails nothing."""
    moot = _moot(deps, record, event)
    if moot is not None:
        log.warning("dead letter %s (%s) of study %s fails nothing: %s", event.type, event.id, record.name, moot,
                    extra=of_event(event))
    return moot is None


def _moot(deps: Deps, record: StudyRecord, event: Event) -> str | None:
    """Why the dead letter's event no longer matters to the study's current run, None while it
    does. A ``study.created`` or ``study.completed`` matters only if it is of this run
    (:func:`~functions.core.events.of_this_run`): the restarted run was started by a
    ``study.created`` of its own, and the earlier run's start or end is over. A trial's event
    matters only while that trial exists, has not ended, and is still at the event's attempt
    (:func:`~functions.core.records.stale_attempt`). Any other event of the study matters."""
    data = event.data
    if event.type in (STUDY_CREATED, STUDY_COMPLETED):
        return None if of_this_run(data, record.restarts) else \
            f"it is of the study's run {data.get('restarts', 0)!r:.20}, and the study is at run {record.restarts}"
    if "trial" in data and "attempt" in data:
        named = attempt_named(data)
        if named is None:
            return "its data names no trial attempt the study could have"
        return stale_attempt(deps.store.get_trial(record.name, named[0]), *named)
    return None


def fail_study(deps: Deps, study: str, uid: str, reason: str,
               matters: Callable[[StudyRecord], bool] = lambda record: True) -> list[Event]:
    """End the study as failed with ``reason``, unless it has ended already (or is another
    study of the same name), or what failed it does not ``matter`` to it as it is stored now
    (read in the same transaction): the ``study.completed`` to deliver."""
    store = deps.store
    with store.transaction():
        try:
            record = store.get_study(study)
        except StudyNotFound:
            return []
        if record.terminal or not record.owns({"uid": uid}) or not matters(record):
            return []
        return complete(record, deps, Decision(FAILED, reason))
