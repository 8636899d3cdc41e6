"""PATCH of a custom resource (and of its status subresource) as the API server takes one.

The API server takes three patch types for a custom resource: a JSON merge patch (RFC 7386:
the body an object, ``null`` deletes), a JSON patch (RFC 6902: a list of operations applied in
order, all or none) and a server-side apply patch; a strategic merge patch is refused (415),
as a custom resource has no patch strategy. The stand-in does not implement server-side
apply and says so (501), where the API server would take it.

The patch applies to the whole object as stored. The result must keep the object's name and
namespace (400, as the URL names them), its uid (422, immutable; a status patch's metadata
is ignored) and the resourceVersion the
patch was made against (409 Conflict when the patch carries another; a patch that removes it
is 422, as a custom resource takes no unconditional update); system fields
(``creationTimestamp``, ``generation``, a uid left out) keep their stored values.
The result is then checked as a create is (:func:`kube_standin.structural.admitted`: unknown
fields refused under ``Strict``, as the patch's 422, or pruned; the schema's values; labels).
A PATCH of the resource leaves ``status`` as it was, one of ``/status`` changes only
``status``; ``metadata.generation`` goes up when anything but ``metadata`` changes, and a
patch that changes nothing writes nothing (no new resourceVersion, no watch event). A patch
that takes the last finalizer off an object being deleted deletes it; one adding a finalizer to
it is refused (422).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import jsonpointer

from kube_standin import etcd, katib_api
from kube_standin.names import metadata_problems
from kube_standin.objects import invalid, merge, snapshot, status
from kube_standin.structural import Refused, admitted, unknown_fields

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
"""A built-in kind's patch type, which no custom resource takes."""
ACCEPTED = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH)
"""The patch types the API server takes for a custom resource, in the order it lists them."""
KEPT_METADATA = ("uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds")
"""Metadata an update cannot change: the stored values stand whatever the patch says (a uid it
gives that is not the object's is refused first)."""


def patch(cluster, resource_key: str, qualified: str, namespace: str, name: str, body: Any, content_type: str,
          directive: str | None = None, subresource: str = "", warnings: list[str] | None = None,
          dry_run: bool = False) -> tuple[int, dict]:
    """PATCH of the custom resource (``subresource`` ``status``: of its status) keyed
    ``resource_key`` in the cluster's store; the API's status code and body. A ``dry_run`` is
    decoded, checked and answered alike, and writes nothing."""
    with cluster.lock:
        key = (resource_key, namespace, name)
        current = cluster.resources.get(key)
        if current is None:
            plural, _, group = qualified.partition(".")
            return 404, status(404, "NotFound", f'{qualified} "{name}" not found',
                               {"name": name, "group": group, "kind": plural})
        try:
            new, warned = updated(cluster.schemas[resource_key], current, body, content_type, directive,
                                  qualified, subresource)
        except Refused as refused:
            return refused.code, refused.body
        if warnings is not None:
            warnings.extend(warned)
        if dry_run:
            return 200, snapshot(new)
        if new != current and (too_large := etcd.store_refusal(new)) is not None:
            return too_large
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            katib_api.remove(cluster, resource_key, new)
            return 200, snapshot(new)
        if new != current:
            cluster.resources[key] = new
            cluster.history.record("MODIFIED", resource_key, new)
        return 200, snapshot(new)


def updated(schema: dict | None, current: dict, body: Any, content_type: str, directive: str | None, qualified: str,
            subresource: str) -> tuple[dict, list[str]]:
    """What the patch makes of ``current`` as the API server stores it, and what it warns of:
    the patched object decoded (unknown fields refused under ``Strict``), what the update may
    change of it taken, then the result checked as a create is (against ``schema``; for a kind
    without one, whose CRD keeps every field, its metadata only)."""
    patched = applied(current, body, content_type, directive)
    check_identity(current, patched, qualified, subresource)
    if directive == "Strict" and schema is not None and (unknown := unknown_fields(schema, patched)):
        raise _invalid_patch(patched, "strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown))
    new = _status_only(current, patched) if subresource == "status" else without_status(current, patched)
    kept, warned = admitted(schema, new, qualified, directive) if schema is not None else (new, [])
    refused = metadata_problems(kept["metadata"], "metadata") + _finalizers_added(current, kept)
    if refused:
        raise Refused(*invalid(kept.get("kind", ""), qualified, kept["metadata"]["name"], refused))
    if subresource != "status" and _content(kept) != _content(current):
        kept["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
    return kept, warned


def _finalizers_added(current: dict, new: dict) -> list[tuple[str, str]]:
    """What ``ValidateObjectMetaUpdate`` refuses of an object being deleted: a finalizer it did
    not hold (one taken off lets its deletion go on; the last taken off ends it)."""
    metadata = current["metadata"]
    added = [f for f in new["metadata"].get("finalizers") or [] if f not in (metadata.get("finalizers") or [])]
    if not metadata.get("deletionTimestamp") or not added:
        return []
    shown = ", ".join(json.dumps(str(f)) for f in added)
    return [("metadata.finalizers", f"Forbidden: no new finalizers can be added if the object is being deleted, "
                                    f"found new finalizers []string{{{shown}}}")]


def _status_only(current: dict, patched: dict) -> dict:
    """A PATCH of ``/status``: the stored object with the patched status (or none)."""
    new = snapshot(current)
    new.pop("status", None)
    if "status" in patched:
        new["status"] = patched["status"]
    return new


def without_status(current: dict, patched: dict) -> dict:
    """A PATCH of the resource: the patched object with the stored status and system metadata."""
    new = {k: v for k, v in patched.items() if k != "status"}
    if "status" in current:
        new["status"] = copy.deepcopy(current["status"])
    kept = {f: current["metadata"][f] for f in KEPT_METADATA if f in current["metadata"]}
    new["metadata"] = {**patched["metadata"], **kept}
    return new


def applied(current: dict, body: Any, content_type: str, directive: str | None = None) -> dict:
    """``current`` with the patch applied (a copy); :class:`Refused` as the API refuses a patch
    it cannot take or apply."""
    if content_type == APPLY_PATCH:
        raise Refused(501, status(501, "NotImplemented", "the loopback stand-in does not implement server-side apply "
                                                         f"({APPLY_PATCH}), which the API server takes; use a merge "
                                                         "or a JSON patch"))
    if content_type not in ACCEPTED:
        raise Refused(415, status(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                                                               "accepted media types include: " + ", ".join(ACCEPTED)))
    if content_type == JSON_PATCH:
        return _json_patched(current, body, directive)
    if not isinstance(body, dict):
        if directive == "Ignore":
            raise _invalid_patch(body, "Object 'Kind' is missing in the patched object")
        raise Refused(400, status(400, "BadRequest", f"error decoding patch: json: cannot unmarshal {_json_type(body)} "
                                                     "into Go value of type map[string]interface {}"))
    return merge(snapshot(current), body)


def _json_patched(current: dict, operations: Any, directive: str | None) -> dict:
    """RFC 6902: each operation in order on a copy; the first that fails refuses the whole
    patch with the API's 422, its cause saying which and why."""
    if not isinstance(operations, list):
        message = (f"json: cannot unmarshal {_json_type(operations)} into Go value of type jsonpatch.Patch"
                   if directive == "Ignore" else
                   f"error decoding patch: json: cannot unmarshal {_json_type(operations)} into Go value of type "
                   "[]handlers.jsonPatchOp")
        raise Refused(400, status(400, "BadRequest", message))
    doc = snapshot(current)
    for operation in operations:
        kind = operation.get("op") if isinstance(operation, dict) else None
        path = operation.get("path", "") if isinstance(operation, dict) else ""
        if kind == "test":
            if not _holds(doc, path, operation.get("value")):
                raise _unprocessable(f"testing value {path} failed: test failed")
            continue
        if kind not in ("add", "remove", "replace", "move", "copy"):
            raise _unprocessable(f"Unexpected kind: {kind}")
        try:
            doc = jsonpatch.apply_patch(doc, [operation])
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, KeyError, IndexError, TypeError):
            raise _unprocessable(f"{kind} operation does not apply: doc is missing path: {path}: missing value") \
                from None
    if not isinstance(doc, dict):
        raise _invalid_patch(doc, "Object 'Kind' is missing in the patched object")
    return doc


def _holds(doc: dict, path: str, value: Any) -> bool:
    """Whether a ``test`` operation holds: the value at ``path`` is ``value`` as JSON compares
    (``true`` is not ``1``)."""
    try:
        found = jsonpointer.resolve_pointer(doc, path)
    except jsonpointer.JsonPointerException:
        return False
    return json.dumps(found, sort_keys=True) == json.dumps(value, sort_keys=True)


def check_identity(current: dict, patched: dict, qualified: str, subresource: str) -> None:
    """What a patch cannot change: the name and namespace the URL gives (400), the version it
    was made against (409; none at all: 422) and, for the resource, the uid (422; a status
    patch takes nothing of the metadata, so a uid there is ignored)."""
    before, after = current["metadata"], patched.get("metadata")
    if not isinstance(after, dict):
        raise _invalid_patch(patched, "metadata must be an object")
    if after.get("name") != before["name"]:
        raise Refused(400, status(400, "BadRequest", f"the name of the object ({after.get('name') or ''}) does not "
                                                     f"match the name on the URL ({before['name']})"))
    if after.get("namespace") != before["namespace"]:
        raise Refused(400, status(400, "BadRequest", "the namespace of the provided object does not match the "
                                                     "namespace sent on the request"))
    kind = patched.get("kind", "")
    version = after.get("resourceVersion")
    if not version:
        raise Refused(*invalid(kind, qualified, before["name"],
                               [("metadata.resourceVersion", "Invalid value: 0x0: must be specified for an update")]))
    if version != before["resourceVersion"]:
        plural, _, group = qualified.partition(".")
        raise Refused(409, status(409, "Conflict", f'Operation cannot be fulfilled on {qualified} "{before["name"]}": '
                                                   "the object has been modified; please apply your changes to the "
                                                   "latest version and try again",
                                  {"name": before["name"], "group": group, "kind": plural}))
    if after.get("uid") not in (None, "", before["uid"]) and subresource != "status":
        raise Refused(*invalid(kind, qualified, before["name"],
                               [("metadata.uid", f'Invalid value: "{after.get("uid") or ""}": field is immutable')]))


def _content(obj: dict) -> dict:
    """What a change of bumps the generation: everything but ``metadata``."""
    return {k: v for k, v in obj.items() if k != "metadata"}


def _unprocessable(reason: str) -> Refused:
    """The API's answer to a JSON patch that does not apply: a generic 422 whose one cause
    gives the reason."""
    body = status(422, "Invalid", "the server rejected our request due to an error in our request",
                  {"causes": [{"reason": "UnexpectedServerResponse", "message": reason}]})
    return Refused(422, body)


def _invalid_patch(patched: Any, reason: str) -> Refused:
    """422 naming the field ``patch``, as the API refuses a patched object it cannot decode."""
    shown = json.dumps(patched, separators=(",", ":"))
    return Refused(*invalid("", "", "", [("patch", f"Invalid value: {json.dumps(shown)}: {reason}")]))


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "bool", type(None): "null"}.get(type(value), "number")
