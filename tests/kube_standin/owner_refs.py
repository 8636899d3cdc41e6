"""The ``OwnerReferencesPermissionEnforcement`` admission plugin (on in OpenShift, where Kubeflow
runs through Open Data Hub, and in other hardened clusters): an object created or replaced with
an ownerReference that has ``blockOwnerDeletion: true`` is refused (403) unless its user may
``update`` the owner's ``finalizers`` subresource, since a blocking reference holds up the
owner's foreground deletion. The stand-in enforces it, so that what katuna creates is taken by
the strictest cluster it may meet."""

from __future__ import annotations

from collections.abc import Callable

from kube_standin.objects import status
from kube_standin.rbac import Request, forbidden


def refusal(request: Request, body: object, resource_of: Callable[[str, str], str | None],
            allows: Callable[[Request], bool]) -> tuple[int, dict] | None:
    """The 403 of a create or replace whose blocking ownerReferences its user may not set;
    None where it may. ``resource_of(group, kind)`` names the owner's resource."""
    if request.verb not in ("create", "update") or not isinstance(body, dict):
        return None
    references = (body.get("metadata") or {}).get("ownerReferences") or []
    for reference in (r for r in references if isinstance(r, dict) and r.get("blockOwnerDeletion")):
        group = str(reference.get("apiVersion") or "").rpartition("/")[0]
        resource = resource_of(group, str(reference.get("kind") or ""))
        check = Request(request.user, "update", group, resource or "", "finalizers", request.namespace,
                        str(reference.get("name") or ""))
        if resource is None or not allows(check):
            denied = forbidden(check)[1]["message"].partition(" is forbidden: ")[2]
            subject = f'{request.qualified} "{request.name or (body.get("metadata") or {}).get("name", "")}"'
            return 403, status(403, "Forbidden", f"{subject} is forbidden: cannot set blockOwnerDeletion if an "
                                                 "ownerReference refers to a resource you can't set finalizers "
                                                 f"on: {denied}")
    return None
