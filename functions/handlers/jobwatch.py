"""``dev.knative.apiserver.resource.*``: a trial's workload changed; report its attempt's end, once.

The event carries the workload: a Job, or another trial kind a component of
``knative/trial-kinds/`` watches (a PyTorchJob, a JobSet, a Workflow, ...). Its labels name the
study (and its uid), the trial and the attempt; an object without them, or whose labels name no
running attempt of the study katuna has under that uid, is not katuna's and is ignored. Only
the end the executor reads (a Job's final ``Complete`` or ``Failed`` condition, another kind's
success or failure condition), or the workload's disappearance, ends an attempt: the executor
reads the workload and its pods again rather than trusting the event's copy, and the
``trial.finished`` it returns has a derived id, so a duplicate event emits nothing new. A Job
suspended until a queue admits it says so in its trial's reason (:func:`~functions.handlers.starting.look`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.cluster import ATTEMPT_LABEL, STUDY_LABEL, TRIAL_LABEL, UID_LABEL
from functions.core.errors import StudyNotFound
from functions.core.event_data import MAX_STORED_INT
from functions.core.events import Event
from functions.core.records import RUNNING
from functions.handlers.deps import Deps
from functions.handlers.starting import look


def handle(event: Event, deps: Deps) -> list[Event]:
    labels = _labels(event.data)
    if labels is None:
        return []
    try:
        record = deps.store.get_study(labels[STUDY_LABEL])
    except StudyNotFound:
        return []
    trial = deps.store.get_trial(record.name, int(labels[TRIAL_LABEL]))
    if (record.uid != labels[UID_LABEL] or trial is None or trial.state != RUNNING
            or trial.attempt != int(labels[ATTEMPT_LABEL])):
        return []
    finished = look(record, trial, deps)
    return [finished] if finished is not None else []


def _labels(workload: Mapping[str, Any]) -> dict[str, Any] | None:
    """The workload's labels when they name a trial attempt of katuna's; None for any other object."""
    metadata = workload.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    if not isinstance(labels, dict) or not {STUDY_LABEL, UID_LABEL, TRIAL_LABEL, ATTEMPT_LABEL} <= labels.keys():
        return None
    if not all(isinstance(labels[key], str) for key in (STUDY_LABEL, UID_LABEL)):
        return None
    if not all(_stored_int(labels[key]) for key in (TRIAL_LABEL, ATTEMPT_LABEL)):
        return None
    return labels


def _stored_int(label: object) -> bool:
    """Whether a label is a whole number the store holds (a label value is at most 63
    characters, but 20 digits already pass SQLite's integers)."""
    return (isinstance(label, str) and label.isascii() and label.isdigit() and len(label) <= 19
            and int(label) <= MAX_STORED_INT)
