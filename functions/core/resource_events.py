"""The Kubernetes Events katuna records about the resources it keeps on a cluster, so that
``kubectl describe trial``, ``kubectl describe experiment`` and ``kubectl get events`` say what
happened, as Katib's controllers make them say.

A Katib Experiment's Trial gets those of Katib's trial controller (``JobRunning``,
``JobSucceeded``, ``JobFailed``, ``MetricsUnavailable``), with the reasons of its Trial
conditions where Katib records no Event (``TrialEarlyStopped``, ``TrialKilled``), and
``TrialAttemptLost`` when a run of the trial was lost (preempted, interrupted, its output lost)
and it runs again. A study's resource (a Katib Experiment, katuna's Study or Experiment) gets
one when the study ends, with its end condition's reason (``ExperimentGoalReached``,
``ExperimentMaxTrialsReached``, ``ExperimentFailed``, ``StoppedByUser`` ...). Failures are
``Warning``, so ``kubectl get events --field-selector type=Warning`` finds them (Katib records
its ``JobFailed`` as ``Normal``).

Each happening has a key of its own (:attr:`Happening.key`: which attempt ran, or the end), and
its Event a name made from the resource's uid and that key (:func:`event_name`): a handler run
twice makes the same Event again, which the API refuses as already there (409), so one happening
is one Event however often it is reported. A trial gets at most two Events per attempt and one
for its end; a study one for each end. Nothing is recorded per metric line."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

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

NORMAL, WARNING = "Normal", "Warning"
NOTE_BYTES = 1024
"""The longest note (message) the API takes, in bytes (``NoteLengthLimit``)."""
NAME_CHARS = 253
"""The longest Event name (a DNS subdomain)."""
DIGEST_CHARS = 16
METRICS_UNAVAILABLE = "metrics unavailable"
"""How a trial's reason begins when it ended without its objective's metrics."""


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
    """What the trial's Trial shows happened: its current attempt's run started, its last
    attempt's run lost, its end."""
    job = job_name(record.spec.name, trial.number, trial.attempt)
    found: list[Happening] = []
    lost = _lost(trial)
    if lost is not None:
        found.append(lost)
    if trial.started_at is not None and (trial.state == RUNNING or trial.finished):
        found.append(Happening("JobRunning", NORMAL, "Running", f"Job {job} is running", trial.started_at,
                               f"running/{trial.attempt}"))
    if trial.finished:
        found.append(_end(trial, job))
    return found


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
    if trial.state == FAIL and trial.reason.startswith(METRICS_UNAVAILABLE):
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
