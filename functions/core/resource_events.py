"""The Kubernetes Events katuna records about the resources it keeps on a cluster, so that
``kubectl describe trial``, ``kubectl describe experiment`` and ``kubectl get events`` say what
happened, as Katib's controllers make them say.

A Katib Experiment's Trial gets those of Katib's trial controller (``JobCreated``,
``JobRunning``, ``JobSucceeded``, ``JobFailed``, ``MetricsUnavailable``, ``JobDeleted``), with
the reasons of its Trial conditions where Katib records no Event (``TrialEarlyStopped``,
``TrialKilled``), and ``TrialAttemptLost`` when a run of the trial was lost (preempted,
interrupted, its output lost) and it runs again. ``JobCreated`` is dated when katuna created the
attempt's workload, ``JobDeleted`` when it deleted the ended trial's (a template that ``retain``s
its workloads keeps them: none). A study's resource (a Katib Experiment, katuna's Study or
Experiment) gets one when the study ends, with its end condition's reason
(``ExperimentGoalReached``, ``ExperimentMaxTrialsReached``, ``ExperimentFailed``,
``StoppedByUser`` ...). Failures are ``Warning``, so ``kubectl get events --field-selector
type=Warning`` finds them (Katib records its ``JobFailed`` as ``Normal``).

``kubectl describe`` lists an object's Events by their ``eventTime`` (they have no ``series``
and no ``lastTimestamp``), in no set order where two share one: a trial's are dated one
microsecond apart at least, in the order they happened (:func:`trial_happenings`), so its
workload's creation never shows after its run, nor its run after its end, however late they are
recorded (a trial that started and ended between two reports gets them all at once).

Each happening has a key of its own (:attr:`Happening.key`: which attempt ran, or the end), and
its Event a name made from the resource's uid and that key (:func:`event_name`): a handler run
twice makes the same Event again, which the API refuses as already there (409), so one happening
is one Event however often it is reported. A trial gets at most three Events per attempt and two
for its end; a study one for each end. Nothing is recorded per metric line."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from functions.core.job import runs_as_job
from functions.core.naming import job_name
from functions.core.records import (
    COMPLETE,
    COMPLETED,
    FAIL,
    FAILED,
    PRUNED,
    RUNNING,
    STOPPED,
    StudyRecord,
    TrialRecord,
)
from functions.core.resource_status import end_reason
from functions.core.resources import KATIB_API_VERSIONS, Origin
from functions.core.trial_kinds import kept_for_ever

NORMAL, WARNING = "Normal", "Warning"
NOTE_BYTES = 1024
"""The longest note (message) the API takes, in bytes (``NoteLengthLimit``)."""
NAME_CHARS = 253
"""The longest Event name (a DNS subdomain)."""
DIGEST_CHARS = 16
MICROSECOND = 1e-6
"""How far apart a trial's Events are dated at least: ``eventTime`` is a ``MicroTime``."""


@dataclass(frozen=True)
class Regarding:
    """The object an Event is about, as its ``regarding`` (``involvedObject``) names it."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class Happening:
    """One thing that happened to a resource: its Event's ``reason``, ``type``, ``action``,
    ``note`` (message), when it happened (seconds since the epoch) and its key among the
    resource's happenings."""

    reason: str
    type: str
    action: str
    note: str
    at: float
    key: str


def event_name(regarding: Regarding, key: str) -> str:
    """The Event's name: the object's (cut to fit), then a digest of its uid and the happening's
    ``key``, the same each time it is made, as a DNS subdomain."""
    digest = hashlib.sha256(f"{regarding.uid}/{key}".encode()).hexdigest()[:DIGEST_CHARS]
    head = regarding.name[:NAME_CHARS - DIGEST_CHARS - 1].rstrip(".-")
    return f"{head}.{digest}"


def note(text: str) -> str:
    """``text`` cut to :data:`NOTE_BYTES` bytes of UTF-8 (whole characters), its start kept."""
    data = text.encode()
    if len(data) <= NOTE_BYTES:
        return text
    return data[:NOTE_BYTES - 3].decode(errors="ignore") + "..."


def trial_regarding(namespace: str, name: str, uid: str) -> Regarding:
    """A Katib Trial, as an Event regards it."""
    return Regarding(KATIB_API_VERSIONS[0], "Trial", namespace, name, uid)


def study_regarding(origin: Origin) -> Regarding:
    """The resource a study came from, as an Event regards it."""
    ref = origin.ref
    return Regarding(ref.api_version, ref.kind, ref.namespace, ref.name, origin.uid)


def trial_happenings(record: StudyRecord, trial: TrialRecord) -> list[Happening]:
    """What the trial's Trial shows happened, in the order it happened, each dated after the one
    before (:func:`_in_order`): its last attempt's run lost, its current attempt's workload
    created and run, its end, and its workload deleted."""
    job = job_name(record.spec.name, trial.number, trial.attempt)
    found: list[Happening] = []
    lost = _lost(trial)
    if lost is not None:
        found.append(lost)
    started = _started(trial)
    if started is not None:
        attempt = trial.attempt
        found += [Happening("JobCreated", NORMAL, "Created", f"Job {job} has been created", started,
                            f"created/{attempt}"),
                  Happening("JobRunning", NORMAL, "Running", f"Job {job} is running", started, f"running/{attempt}")]
    if trial.finished:
        found.append(_end(trial, job))
        if started is not None and _deleted(record, trial):
            found.append(Happening("JobDeleted", NORMAL, "Deleted", f"Job {job} has been deleted", found[-1].at,
                                   "deleted"))
    return _in_order(found)


def _started(trial: TrialRecord) -> float | None:
    """When katuna created the current attempt's workload (and marked the trial running): None
    before, and for an attempt that never started (a trial whose start was refused, or one the
    study's end stopped while its next attempt waited: its ``started_at`` is an earlier
    attempt's, from before the current one was asked for)."""
    if trial.started_at is None or not (trial.state == RUNNING or trial.finished):
        return None
    if trial.attempt > 1 and trial.started_at < trial.suggested_since:
        return None
    return trial.started_at


def _deleted(record: StudyRecord, trial: TrialRecord) -> bool:
    """Whether katuna deleted the ended trial's workload: unless its template ``retain``s it, a
    trial the study's end or an early-stopping rule stopped has its workload deleted, and an
    ended one too where it is a Job (which its TTL would keep) or of a kind no TTL deletes.
    (One of another kind is deleted only where pods of it still ran: not said.)"""
    template = record.spec.trial_template
    if template.retain:
        return False
    spec = template.trial_spec
    return trial.state == PRUNED or spec is None or runs_as_job(spec) or kept_for_ever(spec)


def _in_order(happenings: list[Happening]) -> list[Happening]:
    """The happenings, each dated a :data:`MICROSECOND` after the one before at least, whole
    microseconds: ``kubectl describe`` shows them in this order."""
    ordered: list[Happening] = []
    for happening in happenings:
        micros = round(happening.at / MICROSECOND)
        if ordered:
            micros = max(micros, round(ordered[-1].at / MICROSECOND) + 1)
        ordered.append(replace(happening, at=micros * MICROSECOND))
    return ordered


def _lost(trial: TrialRecord) -> Happening | None:
    """The loss of the trial's attempt before its current one, as its reason tells it
    (``attempt N preempted: ...``); None for a trial at its first attempt."""
    if trial.attempt < 2:
        return None
    lost = trial.attempt - 1
    said = next((line for line in trial.reason.splitlines() if line.startswith(f"attempt {lost} ")),
                f"attempt {lost} was lost")
    return Happening("TrialAttemptLost", WARNING, "Rerunning",
                     note(f"{said}; the trial runs again as attempt {trial.attempt}"),
                     trial.suggested_since, f"lost/{lost}")


def _end(trial: TrialRecord, job: str) -> Happening:
    """The trial's end, with Katib's reason and words, katuna's reason after them."""
    why = f": {trial.reason}" if trial.reason else ""
    at = trial.finished_at if trial.finished_at is not None else trial.created_at
    if trial.state == COMPLETE:
        return Happening("JobSucceeded", NORMAL, "Succeeded", f"Job {job} has succeeded", at, "end")
    if trial.metrics_unavailable:
        return Happening("MetricsUnavailable", WARNING, "Failed", note(f"Metrics are not available for Job {job}{why}"),
                         at, "end")
    if trial.state == FAIL:
        return Happening("JobFailed", WARNING, "Failed", note(f"Job {job} has failed{why}"), at, "end")
    if trial.state == PRUNED and trial.stopped_at_end:
        return Happening("TrialKilled", NORMAL, "Killed", note(f"Trial is killed{why}"), at, "end")
    return Happening("TrialEarlyStopped", NORMAL, "EarlyStopped", note(f"Trial is early stopped{why}"), at, "end")


_ENDED = {COMPLETED: ("Succeeded", "has succeeded"), FAILED: ("Failed", "has failed"),
          STOPPED: ("Stopped", "was stopped")}


def study_end(record: StudyRecord, origin: Origin) -> Happening | None:
    """The end of the study its resource shows (None while it runs), one per end: a study
    restarted after it ended (its trial budget raised) can end again."""
    if not record.terminal or record.completed_at is None:
        return None
    action, words = _ENDED.get(record.status, ("Ended", "has ended"))
    kind = origin.ref.kind
    why = f": {record.reason}" if record.reason else ""
    return Happening(end_reason(record.reason), WARNING if record.status == FAILED else NORMAL, action,
                     note(f"{kind} {words}{why}"), record.completed_at, f"end/{record.restarts}")
