"""What the API server refuses in an update of a Job's spec (``ValidateJobSpecUpdate``,
kubernetes/kubernetes pkg/apis/batch/validation/validation.go): the new spec validated as a
created one's, and the fields fixed once the Job is made, each refused ``field is immutable``
(``ValidateImmutableField``). ``completions`` alone may change in an Indexed Job, and only
together with ``parallelism`` to the same count (elastic Indexed Jobs, GA since 1.31:
``validateCompletions``). The pod template stays immutable whole: the scheduling directives a
queue may set on a suspended Job that never started (``AllowMutableSchedulingDirectives``) are
not modelled, as nothing here patches a template."""

from __future__ import annotations

import json

from kube_standin.validation import job_problems

IMMUTABLE = ("completions", "selector", "template", "completionMode", "podFailurePolicy", "backoffLimitPerIndex",
             "managedBy", "successPolicy")
"""The spec fields ``ValidateJobSpecUpdate`` holds to their value at creation, in its order."""


def update_problems(old: dict, new: dict) -> list[tuple[str, str]]:
    """Why the API server refuses to change the Job ``old`` into ``new`` (each ``(field, message)``)."""
    checked = {**new, "metadata": {k: v for k, v in new["metadata"].items() if k != "resourceVersion"}}
    problems = job_problems(checked)
    for field in IMMUTABLE:
        if field == "completions":
            problems += _completions_problems(old["spec"], new["spec"])
        elif new["spec"].get(field) != old["spec"].get(field):
            problems.append((f"spec.{field}", f"Invalid value: {_shown(new['spec'].get(field))}: field is immutable"))
    return problems


def _completions_problems(old: dict, new: dict) -> list[tuple[str, str]]:
    """``completions`` unchanged, or in an Indexed Job changed to the new ``parallelism``."""
    value = new.get("completions")
    if value == old.get("completions") or (new.get("completionMode") == "Indexed" and value is None):
        return []
    if new.get("completionMode") != "Indexed":
        return [("spec.completions", f"Invalid value: {_shown(value)}: field is immutable")]
    if value != new.get("parallelism"):
        return [("spec.completions", f"Invalid value: {_shown(value)}: can only be modified in tandem with "
                                     "spec.parallelism")]
    return []


def _shown(value: object) -> str:
    """A value as the API's message shows it: a number as it is, a string quoted, an unset field
    ``"null"``; a structure (which the API prints as a Go value) as ``...``."""
    if value is None:
        return '"null"'
    if isinstance(value, dict | list):
        return "..."
    return json.dumps(value)
