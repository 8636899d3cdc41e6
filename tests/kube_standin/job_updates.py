"""What the API server refuses in an update of a Job's spec (``ValidateJobSpecUpdate``,
kubernetes/kubernetes pkg/apis/batch/validation/validation.go): the new spec validated as a
created one's, and the fields fixed once the Job is made, each refused ``field is immutable``
(``ValidateImmutableField``). ``completions`` alone may change in an Indexed Job, and only
together with ``parallelism`` to the same count (elastic Indexed Jobs, GA since 1.31:
``validateCompletions``). The pod template stays immutable whole: the scheduling directives a
queue may set on a suspended Job that never started (``AllowMutableSchedulingDirectives``) are
not modelled, as nothing here patches a template. Before validation, the patched Job must
decode (``patch.go``): a field of the wrong type, or an unknown one under ``fieldValidation=Strict``,
refuses the whole patch, and it must keep its name, namespace and uid; a resourceVersion it names
must be the stored one (409 Conflict: the registry's optimistic lock), one it leaves out or
clears makes the update unconditional, as a Job allows (``AllowUnconditionalUpdate``).

What is stored (:func:`stored`) is the patched metadata whole (labels, annotations,
ownerReferences, finalizers) but for the fields the registry keeps (``BeforeUpdate``), with the
stored status (``PrepareForUpdate``) and the generation one up only where the spec changed; an
update that changes nothing is no write (etcd3's ``GuaranteedUpdate``: no new resourceVersion,
no watch event)."""

from __future__ import annotations

import json

from kube_standin import job_fields
from kube_standin.names import finalizer_problems
from kube_standin.objects import invalid, status
from kube_standin.secrets import owner_problems
from kube_standin.validation import job_problems, undecodable

IMMUTABLE = ("completions", "selector", "template", "completionMode", "podFailurePolicy", "backoffLimitPerIndex",
             "managedBy", "successPolicy")
"""The spec fields ``ValidateJobSpecUpdate`` holds to their value at creation, in its order."""


def update_problems(old: dict, new: dict) -> list[tuple[str, str]]:
    """Why the API server refuses to change the Job ``old`` into ``new`` (each ``(field, message)``)."""
    checked = {**new, "metadata": {k: v for k, v in new["metadata"].items() if k != "resourceVersion"}}
    problems = job_problems(checked) + owner_problems(new["metadata"].get("ownerReferences"))
    problems += finalizer_problems(new["metadata"].get("finalizers"))
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


def patch_refusal(old: dict, patched: dict, directive: str, warnings: list[str] | None) -> tuple[int, dict] | None:
    """The API server's answer to a patch of the Job ``old`` that made ``patched``, where it
    refuses it before validation (:func:`update_problems`): 422 for a patched Job that does not
    decode (a field of the wrong type, an unknown field under the ``Strict`` ``directive``; one
    under ``Warn`` is warned of), 400 for one renamed, 409 for a changed uid (the patched
    object's uid is the update's precondition); None otherwise."""
    unreadable = undecodable(patched)
    unknown = [] if directive == "Ignore" or unreadable else job_fields.unknown_fields(patched)
    if unknown and directive == "Strict":
        unreadable = "strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown)
    elif warnings is not None:
        warnings += [f'unknown field "{f}"' for f in unknown]
    if unreadable:
        shown = json.dumps(patched, separators=(",", ":"))
        return invalid("", "", "", [("patch", f"Invalid value: {json.dumps(shown)}: {unreadable}")])
    name, meta = old["metadata"]["name"], patched["metadata"]
    if meta.get("namespace") not in (None, "", old["metadata"]["namespace"]):
        return 400, status(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                                              "sent on the request")
    if meta.get("name") != name:
        return 400, status(400, "BadRequest", f"the name of the object ({meta.get('name') or ''}) does not match the "
                                              f"name on the URL ({name})")
    uid = meta.get("uid") or old["metadata"]["uid"]
    if uid != old["metadata"]["uid"]:
        return 409, status(409, "Conflict", f'Operation cannot be fulfilled on jobs.batch "{name}": Precondition '
                                            f"failed: UID in precondition: {uid}, UID in object meta: "
                                            f"{old['metadata']['uid']}")
    return None


def version_refusal(old: dict, patched: dict) -> tuple[int, dict] | None:
    """The registry's answer where the patched Job names a resourceVersion (``ObjectResourceVersion``)
    that is no number (422) or not the stored one (409 Conflict, ``OptimisticLockErrorMsg``); None
    where it names the stored one or none (``""`` or ``"0"``: an unconditional update)."""
    name, version = old["metadata"]["name"], str(patched["metadata"].get("resourceVersion") or "0")
    if not version.isdigit() or not version.isascii():
        return invalid("jobs", "jobs.batch", name, [("resourceVersion", f"Invalid value: {json.dumps(version)}: "
                                                                       f'strconv.ParseUint: parsing "{version}": '
                                                                       "invalid syntax")])
    if int(version) in (0, int(old["metadata"]["resourceVersion"])):
        return None
    return 409, status(409, "Conflict", f'Operation cannot be fulfilled on jobs.batch "{name}": the object has been '
                                        "modified; please apply your changes to the latest version and try again",
                       {"name": name, "group": "batch", "kind": "jobs"})


KEPT_METADATA = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp", "generation",
                 "deletionTimestamp", "deletionGracePeriodSeconds")
"""Metadata an update of a Job does not take from the patched object (``BeforeUpdate``,
``FillObjectMetaSystemFields``): the stored values stand."""


def stored(old: dict, patched: dict) -> dict:
    """The Job ``old`` updated to ``patched`` as the registry stores it: the patched spec and
    metadata, the stored status and system metadata, the generation one up where the spec changed."""
    kept = {key: old["metadata"][key] for key in KEPT_METADATA if key in old["metadata"]}
    new = {**old, "spec": patched["spec"], "metadata": {**patched["metadata"], **kept}}
    new["metadata"] = {key: value for key, value in new["metadata"].items() if value is not None}
    if patched["spec"] != old["spec"]:
        new["metadata"]["generation"] = old["metadata"]["generation"] + 1
    return new
