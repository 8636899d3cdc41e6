"""The ``OwnerReferencesPermissionEnforcement`` admission plugin (on in OpenShift, where Kubeflow
runs through Open Data Hub, and in other hardened clusters), on creates and updates (a PATCH is
one: the plugin sees the patched object beside the stored one).

A create, replace or patch that adds an ownerReference with ``blockOwnerDeletion: true``, or
turns a reference's ``blockOwnerDeletion`` to true, is refused (403) unless its user may
``update`` the owner's ``finalizers`` subresource, since a blocking reference holds up the
owner's foreground deletion; a reference already blocking is not asked about again. A replace
or patch that changes the ownerReferences at all is refused unless its user may ``delete`` the
object itself (a create is not: who may create an object may as well not have). A write of a
``status`` subresource changes no metadata, so it is not looked at. The stand-in enforces it
(kube-apiserver plugin/pkg/admission/gc/gc_admission.go), so that what katuna writes is taken
by the strictest cluster it may meet."""

from __future__ import annotations

from collections.abc import Callable

from kube_standin.objects import status
from kube_standin.patches import MERGE_PATCH, STRATEGIC_MERGE_PATCH, applied
from kube_standin.rbac import Request, forbidden
from kube_standin.structural import Refused


def refusal(request: Request, body: object, content_type: str, stored: dict | None,
            resource_of: Callable[[str, str], str | None], allows: Callable[[Request], bool]) -> tuple[int, dict] | None:
    """The 403 of a create, replace or patch (``body``, sent as ``content_type``) that sets
    ownerReferences its user may not set; None where it may, or where the write is no such
    (a replace or patch of an object not ``stored`` is for serving it to answer).
    ``resource_of(group, kind)`` names an owner's resource."""
    if request.verb not in ("create", "update", "patch") or request.subresource == "status":
        return None
    if request.verb != "create" and stored is None:
        return None
    new = _written(request.verb, body, content_type, stored)
    if not isinstance(new, dict):
        return None
    old = _references(stored) if stored is not None else None
    references = _references(new)
    if references == (old or []):
        return None
    subject = f'{request.qualified} "{request.name or (new.get("metadata") or {}).get("name", "")}"'
    if old is not None:
        check = Request(request.user, "delete", request.group, request.resource, request.subresource,
                        request.namespace, request.name)
        if not allows(check):
            return _forbidden(subject, "cannot set an ownerRef on a resource you can't delete", check)
    for reference in _newly_blocking(references, old or []):
        group = str(reference.get("apiVersion") or "").rpartition("/")[0]
        resource = resource_of(group, str(reference.get("kind") or ""))
        check = Request(request.user, "update", group, resource or "", "finalizers", request.namespace,
                        str(reference.get("name") or ""))
        if resource is None or not allows(check):
            return _forbidden(subject, "cannot set blockOwnerDeletion if an ownerReference refers to a resource "
                                       "you can't set finalizers on", check)
    return None


def _written(verb: str, body: object, content_type: str, stored: dict | None) -> object:
    """The object as the write would make it: a patch applied to the stored object (a strategic
    merge patch as a merge, as the stand-in applies one), None where the patch cannot apply
    (serving it refuses it)."""
    if verb != "patch" or stored is None:
        return body
    try:
        return applied(stored, body, MERGE_PATCH if content_type == STRATEGIC_MERGE_PATCH else content_type)
    except Refused:
        return None


def _references(obj: dict) -> list:
    references = (obj.get("metadata") or {}).get("ownerReferences") or []
    return references if isinstance(references, list) else []


def _newly_blocking(references: list, old: list) -> list[dict]:
    """The references of ``references`` that block their owner's deletion and did not in
    ``old`` (matched by uid): added so, or turned so."""
    blocking = {str(r.get("uid")) for r in old if isinstance(r, dict) and r.get("blockOwnerDeletion") is True}
    return [r for r in references if isinstance(r, dict) and r.get("blockOwnerDeletion") is True
            and str(r.get("uid")) not in blocking]


def _forbidden(subject: str, cause: str, check: Request) -> tuple[int, dict]:
    denied = forbidden(check)[1]["message"].partition(" is forbidden: ")[2]
    return 403, status(403, "Forbidden", f"{subject} is forbidden: {cause}: {denied}")
