"""A study submitted under the name of a stored one with another definition: which fields
differ, and what to do about it, in the one error the CLI and the HTTP API (409) report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.errors import StudyConflict
from functions.core.records import StudyRecord
from functions.core.resources import description
from functions.core.spec import Study

SHOWN = 8
"""The most changed paths a message lists; the error's ``changed`` has them all."""
_ABSENT = object()


def same_study(stored: StudyRecord, spec: Study, definition: Mapping[str, Any]) -> bool:
    """Whether the study ``spec`` (submitted as ``definition``) is the ``stored`` one submitted
    again: the same normalised study with the same ``description``, which the normalised study
    leaves out, so a changed description is a conflict as any other changed field is."""
    return stored.spec == spec and description(stored.definition) == description(definition)


def study_conflict(stored: StudyRecord, spec: Study, definition: Mapping[str, Any], why: str = "") -> StudyConflict:
    """The error for the study ``spec`` (submitted as ``definition``) meeting the ``stored``
    one under its name: the paths at which the definitions differ, as their author wrote them
    (``parameters[0].max``; those of the normalised studies where only a file they name
    changed), ``why`` it cannot go on as it is (if anything more), and the two ways forward:
    another name, or deleting the stored study."""
    changed = changed_paths(stored.definition, definition) or changed_paths(stored.spec.to_dict(), spec.to_dict())
    listed = ", ".join(changed[:SHOWN]) + (f" and {len(changed) - SHOWN} more" if len(changed) > SHOWN else "")
    name = stored.name
    return StudyConflict(
        f"study {name!r} already exists with a different definition"
        + (f" (changed: {listed})" if changed else "") + (f"; {why}" if why else "")
        + f"; give it another name, or delete the stored study and its trials first "
          f"(katuna delete {name}, or DELETE /studies/{name})",
        changed)


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
