"""Katib's ``kubeflow.org/v1beta1`` Suggestion of an Experiment, as katuna keeps it: one per
Experiment, named as it and owned by it (``controller: true``, as Katib's controller sets it),
labelled as its Trials are (the Experiment's labels and its name: so one an earlier
Experiment of the same name left is told from another's, as a Trial is:
:func:`~functions.core.katib_trials.holder`), so that Katib's tools reading it (its SDK's
``get_suggestion``, its conformance program's ``verify.py``, ``kubectl get suggestions``) find
what Katib's controllers would write.

The spec is Katib's ``createSuggestion``'s: the Experiment's ``algorithm``, its
``earlyStopping`` if any, its ``resumePolicy`` (``Never`` where it gives none, as Katib's
webhook defaults it) and ``requests``, the trials asked for so far. The status counts them
(``suggestionCount``) and has Katib's conditions, reasons and messages
(pkg/controller.v1beta1/suggestion and experiment_controller_util.go's
``cleanupSuggestionResources``): ``Created``, ``Running`` once the study runs, and, once it has
ended, ``Succeeded`` with ``Running`` turned False, unless its ``resumePolicy`` is
``LongRunning``, whose Suggestion Katib keeps running. A study restarted runs again: its
Suggestion is ``Running`` again, without ``Succeeded``, as Katib's is once it restarts
(``MarkSuggestionStatusRunning`` removes it).

Left out, as katuna has no suggestion service: ``status.suggestions`` (Katib's list of every
assignment handed out, which grows with each trial toward etcd's 1.5 MiB limit; each
assignment is on its Trial's ``spec.parameterAssignments``), ``algorithmSettings`` (none
changed by a service) and the ``DeploymentReady`` condition (no Deployment). Computed from
the store alone: written twice, it is the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.katib_trials import experiment_labels
from functions.core.records import StudyRecord
from functions.core.resource_status import timestamp
from functions.core.resources import KATIB_API_VERSIONS, Origin
from functions.core.status_room import message as condition_message

PLURAL = "suggestions"
NEVER = "Never"

CREATED = ("Created", "SuggestionCreated", "Suggestion is created")
RUNNING = ("Running", "SuggestionRunning", "Suggestion is running")
NOT_RUNNING = ("Running", "Suggestion is succeeded", "Suggestion is not running")
SUCCEEDED = {NEVER: ("Succeeded", "Experiment is succeeded", "Suggestion is succeeded, can't be restarted"),
             "FromVolume": ("Succeeded", "Experiment is succeeded",
                            "Suggestion is succeeded, suggestion volume is not deleted, can be restarted")}
"""Katib's words: the type, reason and message of each condition, by resume policy where they
differ (a ``LongRunning`` Suggestion never succeeds)."""


def resume_policy(definition: Mapping[str, Any]) -> str:
    """The Experiment's ``resumePolicy``, ``Never`` where it gives none (Katib's default)."""
    spec = definition.get("spec") or {}
    return str(spec.get("resumePolicy") or NEVER)


def suggestion(record: StudyRecord, origin: Origin, trials: int) -> dict[str, Any]:
    """The Suggestion of the Experiment at ``origin`` whose study is ``record``, having asked
    for ``trials`` trials so far: metadata, spec and status."""
    spec = record.definition.get("spec") or {}
    policy = resume_policy(record.definition)
    wanted: dict[str, Any] = {"algorithm": spec.get("algorithm") or {}, "requests": trials, "resumePolicy": policy}
    if spec.get("earlyStopping"):
        wanted["earlyStopping"] = spec["earlyStopping"]
    ref = origin.ref
    return {
        "apiVersion": KATIB_API_VERSIONS[0], "kind": "Suggestion",
        "metadata": {"name": ref.name, "namespace": ref.namespace,
                     "labels": experiment_labels(record.definition, ref.name),
                     "ownerReferences": [{"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name,
                                          "uid": origin.uid, "controller": True}]},
        "spec": wanted,
        "status": suggestion_status(record, policy, trials),
    }


def suggestion_status(record: StudyRecord, policy: str, trials: int) -> dict[str, Any]:
    """Katib's Suggestion status for the study ``record`` under ``policy``: ``Created`` at its
    creation, ``Running`` from its start (or its latest restart), then, once it has ended
    (``Never``, ``FromVolume``), ``Running`` False and ``Succeeded``, both timed at its end;
    ``suggestionCount`` the ``trials`` asked for."""
    conditions = [_condition(CREATED, record.created_at)]
    succeeded = SUCCEEDED.get(policy) if record.terminal else None
    if record.started_at is not None:
        if succeeded is None:
            conditions.append(_condition(RUNNING, record.restarted_at or record.started_at))
        else:
            conditions.append(_condition(NOT_RUNNING, record.completed_at, "False"))
    if succeeded is not None:
        conditions.append(_condition(succeeded, record.completed_at))
    return {"startTime": timestamp(record.created_at), "suggestionCount": trials, "conditions": conditions}


def _condition(words: tuple[str, str, str], when: float | None, status: str = "True") -> dict[str, Any]:
    kind, reason, message = words
    return {"type": kind, "status": status, "reason": reason, "message": condition_message(message),
            "lastTransitionTime": timestamp(when), "lastUpdateTime": timestamp(when)}

