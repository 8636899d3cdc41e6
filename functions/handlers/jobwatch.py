"""``dev.knative.apiserver.resource.*``: a trial Job changed; report its attempt's end, once.

The event carries the Job; its labels name the study (and its uid), the trial and the attempt.
Only a final ``Complete`` or ``Failed`` condition, or the Job's disappearance, ends an attempt;
the executor reads the Job and its pods again rather than trusting the event's copy, and the
``trial.finished`` it returns has a derived id, so a duplicate event emits nothing new.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.cluster import ATTEMPT_LABEL, STUDY_LABEL, TRIAL_LABEL, UID_LABEL
from functions.core.errors import StudyNotFound
from functions.core.events import Event
from functions.core.launch import trial_launch
from functions.core.records import RUNNING
from functions.handlers.base import Deps


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
    finished = deps.executor.poll(trial_launch(record, trial))
    return [finished] if finished is not None else []


def _labels(job: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Job's labels when they name a trial attempt of katuna's; None for any other object."""
    metadata = job.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    if not isinstance(labels, dict) or not {STUDY_LABEL, UID_LABEL, TRIAL_LABEL, ATTEMPT_LABEL} <= labels.keys():
        return None
    if not all(isinstance(labels[key], str) for key in (STUDY_LABEL, UID_LABEL)):
        return None
    if not all(isinstance(labels[key], str) and labels[key].isascii() and labels[key].isdigit() for key in (TRIAL_LABEL, ATTEMPT_LABEL)):
        return None
    return labels
