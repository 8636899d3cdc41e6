"""A study submitted under the name of a stored one with another definition: which fields
differ, and what to do about it, in the one error the CLI and the HTTP API (409) report."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from functions.core import katib_defaults
from functions.core.errors import InvalidStudy, StudyConflict
from functions.core.records import StudyRecord
from functions.core.resources import Origin, description
from functions.core.resume import is_experiment
from functions.core.spec import Study

SHOWN = 8
"""The most changed paths a message lists; the error's ``changed`` has them all."""
_ABSENT = object()


def same_study(stored: StudyRecord, spec: Study, definition: Mapping[str, Any]) -> bool:
    """Whether the study ``spec`` (submitted as ``definition``) is the ``stored`` one submitted
    again: the same study as this katuna converts both documents (:func:`restated`), with the
    same ``description``, which the normalised study leaves out, so a changed description is a
    conflict as any other changed field is. The stored spec is the conversion of the katuna that
    stored it, which may lack a default added since: the user's documents decide, not it."""
    if description(stored.definition) != description(definition):
        return False
    return stored.spec == spec or restated(stored, spec, definition) == spec or \
        _same_experiment(stored.definition, definition)


def _same_experiment(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether two Katib Experiments are one study once each spec is as Katib stores it, its
    defaults written in (:mod:`functions.core.katib_defaults`): one submitted again as ``kubectl
    get -o yaml`` gives it back (``resumePolicy: Never``, the objective's ``metricStrategies``, a
    Job's ``successCondition``, ...) is the same Experiment to Katib, and so to katuna."""
    if not (is_experiment(before) and is_experiment(after)) or \
            not all(isinstance(document.get("spec"), Mapping) for document in (before, after)):
        return False
    converted = [_converted({**document, "spec": katib_defaults.stored(document["spec"])})
                 for document in (before, after)]
    return converted[0] is not None and converted[0] == converted[1]


def restated(stored: StudyRecord, spec: Study, definition: Mapping[str, Any]) -> Study | None:
    """The ``stored`` study as this katuna converts its document: ``spec`` where ``definition``
    is that document (:func:`same_document`), else the stored document converted again (None
    where this katuna refuses it, or it names a warm-start file: only the CLI reads one). Its
    namespace and warm start are kept as stored, as they come from outside the document too (a
    study resource's namespace, the results a warm-start file held)."""
    today = spec if same_document(stored.definition, definition) else _converted(stored.definition)
    if today is None:
        return None
    kept = replace(today.kubernetes, namespace=stored.spec.kubernetes.namespace)
    return replace(today, kubernetes=kept, warm_start=stored.spec.warm_start)


def same_document(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether two definitions are the same document as parsed: the same JSON, whatever the
    order of keys (``1`` and ``1.0``, or ``true`` and ``1``, stay different values)."""
    try:
        return _canonical(before) == _canonical(after)
    except (TypeError, ValueError):
        return False


def _canonical(definition: Mapping[str, Any]) -> str:
    return json.dumps(definition, sort_keys=True, allow_nan=True)


def _converted(definition: Mapping[str, Any]) -> Study | None:
    """The study this katuna makes of a stored document, under the default limits (which only
    refuse; a refusal leaves the stored spec to compare), or None where it refuses it."""
    # Imported here: formats brings YAML, which a trial's end (handled with this module loaded)
    # never needs in a fresh process.
    from functions.core.formats import load_definition

    try:
        return load_definition(dict(definition), stored=lambda name: True)[0]
    except InvalidStudy:
        return None


def study_conflict(stored: StudyRecord, spec: Study, definition: Mapping[str, Any], why: str = "") -> StudyConflict:
    """The error for the study ``spec`` (submitted as ``definition``) meeting the ``stored``
    one under its name: the paths at which the definitions differ, as their author wrote them
    (``parameters[0].max``; those of the normalised studies where only what the document reads
    changed, the stored one as this katuna converts it), ``why`` it cannot go on as it is (if
    anything more), and the two ways forward: another name, or deleting the stored study."""
    changed = changed_paths(stored.definition, definition) or \
        changed_paths((restated(stored, spec, definition) or stored.spec).to_dict(), spec.to_dict())
    listed = ", ".join(changed[:SHOWN]) + (f" and {len(changed) - SHOWN} more" if len(changed) > SHOWN else "")
    name = stored.name
    command = f"katuna delete {name}" if stored.origin is None else ""
    return StudyConflict(
        f"study {name!r} already exists with a different definition"
        + (f" (changed: {listed})" if changed else "") + (f"; {why}" if why else "")
        + f"; give it another name, or delete the stored study and its trials first ({_deleting(stored, command)})",
        changed, command)


def _deleting(stored: StudyRecord, command: str) -> str:
    """How the ``stored`` study is deleted: by either delete (``command`` the CLI's), or, for one
    that follows a cluster resource (which ``katuna delete`` refuses), by the service watching
    it once that is gone."""
    name = stored.name
    if stored.origin is None:
        return f"{command}, or DELETE /studies/{name}"
    return Origin.from_dict(stored.origin).delete_through_service(name, "the cluster")


def changed_paths(before: Any, after: Any, path: str = "") -> list[str]:
    """The paths at which two JSON-like values differ, in the order of their fields: into
    mappings by key (``trialTemplate.timeout``) and into lists of the same length by index
    (``parameters[0].max``); a list whose length changed is one path (``parameters``)."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        keys = [*before, *(k for k in after if k not in before)]
        return [found for key in keys
                for found in changed_paths(before.get(key, _ABSENT), after.get(key, _ABSENT),
                                           f"{path}.{key}" if path else str(key))]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [found for i, (old, new) in enumerate(zip(before, after)) for found in changed_paths(old, new, f"{path}[{i}]")]
    return [] if before == after else [path]
