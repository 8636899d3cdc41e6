"""Field selectors as the API server reads them for a list or a watch: terms ``key=value``,
``key==value`` or ``key!=value`` joined by commas, over the fields its kind makes selectable
(each registry's ``ToSelectableFields``: ``metadata.name`` and, for a namespaced kind,
``metadata.namespace``, and a few of its own). A selector it cannot read is 400 ``invalid
selector``, and a key its kind does not make selectable 400 ``field label not supported: KEY``
(apimachinery's field label conversion), before anything is listed or watched."""

from __future__ import annotations

import re
from collections.abc import Callable

TERM = re.compile(r"^(?P<key>[^!=]+)(?P<operator>==|!=|=)(?P<value>.*)$")
Fields = Callable[[dict], dict[str, str]]


def _meta(obj: dict, namespaced: bool = True) -> dict[str, str]:
    """``generic.ObjectMetaFieldsSet``: the name, and the namespace of a namespaced kind."""
    metadata = obj.get("metadata") or {}
    found = {"metadata.name": metadata.get("name") or ""}
    return {**found, "metadata.namespace": metadata.get("namespace") or ""} if namespaced else found


def _pod(pod: dict) -> dict[str, str]:
    """``PodToSelectableFields`` (pkg/registry/core/pod/strategy.go)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    ips = status.get("podIPs") or []
    return {**_meta(pod), "spec.nodeName": spec.get("nodeName") or "",
            "spec.restartPolicy": spec.get("restartPolicy") or "", "spec.schedulerName": spec.get("schedulerName") or "",
            "spec.serviceAccountName": spec.get("serviceAccountName") or "",
            "spec.hostNetwork": str(bool(spec.get("hostNetwork"))).lower(), "status.phase": status.get("phase") or "",
            "status.podIP": ips[0].get("ip", "") if ips else "",
            "status.nominatedNodeName": status.get("nominatedNodeName") or ""}


SELECTABLE: dict[str, Fields] = {
    "pods": _pod,
    "jobs": lambda job: {**_meta(job), "status.successful": str((job.get("status") or {}).get("succeeded") or 0)},
    "nodes": lambda node: {**_meta(node, namespaced=False),
                           "spec.unschedulable": str(bool((node.get("spec") or {}).get("unschedulable"))).lower()},
    "namespaces": lambda namespace: {**_meta(namespace, namespaced=False),
                                     "status.phase": (namespace.get("status") or {}).get("phase") or ""},
    "secrets": lambda secret: {**_meta(secret), "type": secret.get("type") or ""},
}
"""The selectable fields of each kind with fields of its own; any other kind's are its
metadata's (:func:`selectable`)."""


def selectable(resource: str, obj: dict) -> dict[str, str]:
    """The fields of ``obj``, of ``resource``, that a field selector may name, with their values."""
    return SELECTABLE.get(resource, _meta)(obj)


Term = tuple[str, bool, str]
"""A selector's term: its key, whether it asks for equality, its value."""


def terms(resource: str, selector: str | None) -> list[Term]:
    """The terms of ``selector`` on ``resource``; ``ValueError`` with the API server's 400 message
    for one it cannot read, or whose key the kind does not make selectable."""
    known = selectable(resource, {"metadata": {}})
    found = []
    for term in (t.strip() for t in (selector or "").split(",") if t.strip()):
        parsed = TERM.match(term)
        if parsed is None:
            raise ValueError(f"invalid selector: '{selector}'; can't understand '{term}'")
        if parsed["key"] not in known:
            raise ValueError(f"field label not supported: {parsed['key']}")
        found.append((parsed["key"], parsed["operator"] != "!=", parsed["value"]))
    return found


def matches(resource: str, obj: dict, selected: list[Term]) -> bool:
    """Whether ``obj`` meets every term."""
    fields = selectable(resource, obj) if selected else {}
    return all((fields[key] == value) == equal for key, equal, value in selected)


def unreadable(call) -> str | None:
    """Why the API server cannot read the field selector of ``call``, a list or a watch (its
    400's message); None when it can, or ``call`` takes none. Events have fields of their own
    (:mod:`kube_standin.events`)."""
    selector = call.query.get("fieldSelector")
    if not selector or call.method != "GET" or call.name or call.resource == "events":
        return None
    try:
        terms(call.resource, selector)
    except ValueError as exc:
        return str(exc)
    return None
