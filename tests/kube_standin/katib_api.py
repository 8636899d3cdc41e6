"""Katib's own resources (``kubeflow.org``) as the API server serves them once the overlay's
CRDs (``knative/katib-api``) are installed: Experiment, Trial and Suggestion of ``v1beta1``,
StudyJob of ``v1alpha1``; created, read, listed, deleted and their status patched like
katuna's own resources.

Custom resources are kept by a key that names their group where it is not ``katuna.dev``
(``experiments.kubeflow.org``), so Katib's Experiment and katuna's live side by side. As the
API server, a create takes ``metadata.name`` or ``generateName``, refuses a name that is
taken (409 AlreadyExists), a name that is not a DNS subdomain and labels it would not take
(422), checks the object against its CRD's structural schema (:mod:`kube_standin.structural`:
unknown fields refused or pruned, values validated), and drops ``status`` (a status
subresource); a delete honours its preconditions, leaves an object its ``finalizers`` hold
marked deleting until an update takes the last one off, and the objects owned by the deleted one go
by the garbage collector (background propagation, the default for custom resources), which
may lag (``gc_seconds``), or are orphaned (``Orphan``).
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from kube_standin import etcd, manifests
from kube_standin.names import metadata_problems
from kube_standin.objects import (
    DNS_SUBDOMAIN,
    already_exists,
    deletes_nothing,
    generated_name,
    invalid,
    not_found,
    snapshot,
    unmet_precondition,
)
from kube_standin.rbac import MANIFESTS, RBAC_KINDS, _in_namespace
from kube_standin.server import Call, Kind
from kube_standin.structural import Refused, admitted, crd_schemas

KATUNA_GROUP = "katuna.dev"
KATIB_KINDS = {
    ("kubeflow.org", "experiments"): Kind("Experiment", "kubeflow.org/v1beta1"),
    ("kubeflow.org", "trials"): Kind("Trial", "kubeflow.org/v1beta1"),
    ("kubeflow.org", "suggestions"): Kind("Suggestion", "kubeflow.org/v1beta1"),
    ("kubeflow.org", "studyjobs"): Kind("StudyJob", "kubeflow.org/v1alpha1"),
}
"""What the overlay's CRDs serve, by (group, plural)."""

PLURAL_OF = {(kind.api_version, kind.kind): plural for (_, plural), kind in KATIB_KINDS.items()}


def key(group: str, plural: str) -> str:
    """The stand-in's name for a custom resource: the plural, qualified unless katuna's own."""
    return plural if group == KATUNA_GROUP else f"{plural}.{group}"


def keyed(call: Call) -> Call:
    """``call`` with its resource named by :func:`key` when it is one of Katib's."""
    return replace(call, resource=key(call.group, call.resource)) if (call.group, call.resource) in KATIB_KINDS else call


def key_of(api_version: str, kind: str, katuna_plurals: dict[str, str]) -> str:
    """The key of an object's resource, from its ``apiVersion`` and ``kind``."""
    group = api_version.rpartition("/")[0]
    if group == KATUNA_GROUP:
        return katuna_plurals[kind]
    return key(group, PLURAL_OF[(api_version, kind)])


def qualified(resource_key: str) -> str:
    """The resource as the API's messages name it: ``experiments.kubeflow.org``, ``studies.katuna.dev``."""
    return resource_key if "." in resource_key else f"{resource_key}.{KATUNA_GROUP}"


def kind_of(resource_key: str) -> Kind:
    plural, _, group = resource_key.partition(".")
    return KATIB_KINDS[(group, plural)] if group else Kind("", f"{KATUNA_GROUP}/v1")


def schemas(path) -> dict[str, dict]:
    """The schemas of the CRDs in a manifest, by the stand-in's key of their resource."""
    return {key(group, plural): schema for (group, plural), schema in crd_schemas(path).items()}


def create(cluster, resource_key: str, namespace: str, body: dict | None, directive: str | None = None,
           warnings: list[str] | None = None, dry_run: bool = False) -> tuple[int, dict]:
    """POST of a custom resource into ``namespace`` with the request's ``fieldValidation``
    ``directive``; what the API warns of goes to ``warnings``. A ``dry_run`` stores nothing."""
    obj = snapshot(body or {})
    metadata = obj.setdefault("metadata", {})
    with cluster.lock:
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = generated_name(metadata["generateName"],
                                              lambda taken: (resource_key, namespace, taken) in cluster.resources)
        name = metadata.get("name") or ""
        if namespace not in cluster.namespaces:
            return not_found("namespaces", namespace)
        try:
            obj, warned = admitted(cluster.schemas[resource_key], obj, qualified(resource_key), directive)
        except Refused as refused:
            return refused.code, refused.body
        if warnings is not None:
            warnings.extend(warned)
        metadata = obj["metadata"]
        if not name:
            return invalid(obj.get("kind", ""), qualified(resource_key), name,
                           [("metadata.name", "Required value: name or generateName is required")])
        if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
            return invalid(obj.get("kind", ""), qualified(resource_key), name,
                           [("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist '
                                              "of lower case alphanumeric characters, '-' or '.'")])
        refused = metadata_problems(metadata, "metadata")
        if refused:
            return invalid(obj.get("kind", ""), qualified(resource_key), name, refused)
        if (resource_key, namespace, name) in cluster.resources:
            return already_exists(qualified(resource_key), name)
        obj.pop("status", None)
        metadata.update(namespace=namespace, uid=str(uuid.uuid4()), generation=1, creationTimestamp=cluster.clock.stamp())
        if dry_run:
            return 201, obj
        if (too_large := etcd.store_refusal(obj)) is not None:
            return too_large
        cluster.resources[(resource_key, namespace, name)] = obj
        cluster.history.record("ADDED", resource_key, obj)
        return 201, snapshot(obj)


def delete(cluster, resource_key: str, namespace: str, name: str, options: dict | None = None,
           policy: str | None = None) -> tuple[int, dict]:
    """DELETE of a custom resource. A precondition of ``options`` that does not hold is a 409
    conflict, and deletes nothing; a dry run deletes nothing and is answered as the delete would
    be. What the resource owns is orphaned with ``Orphan`` (its ownerReferences to it removed,
    before the owner's name is free, as the API holds the owner until the garbage collector is
    done), and otherwise goes by the garbage collector (:func:`collect_owned`: ``Background``, the
    default for custom resources).

    The answer is the CRD store's (its registry sets no ``ReturnDeletedObject``): a Status
    naming the object where it went at once (:func:`deleted`), and the object marked deleting
    where a finalizer holds it, its own or the one the garbage collector's ``Orphan`` and
    ``Foreground`` add (``Store.Delete``, k8s.io/apiserver pkg/registry/generic/registry/store.go);
    the stand-in's collector takes that one off at once."""
    with cluster.lock:
        obj = cluster.resources.get((resource_key, namespace, name))
        if obj is None:
            return not_found(qualified(resource_key), name)
        unmet = unmet_precondition(obj["kind"], qualified(resource_key).partition(".")[2], obj, options or {})
        if unmet is not None:
            return unmet
        held = obj["metadata"].get("finalizers") or []
        if deletes_nothing(options or {}):
            return 200, (_marked(cluster, snapshot(obj), held + _collector_finalizer(policy))
                         if held or _collector_finalizer(policy) else deleted(resource_key, obj))
        if held:
            return 200, snapshot(_mark_deleting(cluster, resource_key, obj))
        remove(cluster, resource_key, obj, policy)
        if _collector_finalizer(policy):
            return 200, _marked(cluster, snapshot(obj), _collector_finalizer(policy))
        return 200, deleted(resource_key, obj)


def deleted(resource_key: str, obj: dict) -> dict:
    """The Status a delete that took the object at once is answered with: its name, uid, group
    and, in ``kind``, its resource (the registry's ``finalizeDelete``)."""
    plural, _, group = qualified(resource_key).partition(".")
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": obj["metadata"]["name"], "group": group, "kind": plural,
                        "uid": obj["metadata"]["uid"]}}


def _collector_finalizer(policy: str | None) -> list[str]:
    """The finalizer the API adds for the garbage collector to a delete of propagation
    ``policy`` (none for ``Background``)."""
    return {"Orphan": ["orphan"], "Foreground": ["foregroundDeletion"]}.get(policy or "", [])


def _marked(cluster, obj: dict, finalizers: list[str]) -> dict:
    """``obj`` (a copy) as the delete's answer shows it while ``finalizers`` hold it."""
    metadata = obj["metadata"]
    if not metadata.get("deletionTimestamp"):
        metadata.update(deletionTimestamp=cluster.clock.stamp(), deletionGracePeriodSeconds=0,
                        generation=metadata.get("generation", 1) + 1)
    metadata["finalizers"] = list(dict.fromkeys(finalizers))
    return obj


def _mark_deleting(cluster, resource_key: str, obj: dict) -> dict:
    """A delete of an object its finalizers hold: it stays, with a ``deletionTimestamp`` (the
    first delete's; a later one changes nothing) and its ``generation`` one up, as the
    registry's ``markAsDeleting`` writes them, until an update takes its last finalizer off."""
    metadata = obj["metadata"]
    if not metadata.get("deletionTimestamp"):
        metadata.update(deletionTimestamp=cluster.clock.stamp(), deletionGracePeriodSeconds=0,
                        generation=metadata.get("generation", 1) + 1)
        cluster.history.record("MODIFIED", resource_key, obj)
    return obj


def remove(cluster, resource_key: str, obj: dict, policy: str | None = None) -> None:
    """The object goes from the store; what it owned is orphaned (``Orphan``) or goes by the
    garbage collector. Called with the cluster's lock held."""
    metadata = obj["metadata"]
    cluster.resources.pop((resource_key, metadata["namespace"], metadata["name"]), None)
    cluster.history.record("DELETED", resource_key, obj)
    if policy == "Orphan":
        orphan(cluster, metadata["namespace"], metadata["uid"])
    else:
        collect_owned(cluster, metadata["namespace"], metadata["uid"])


def _owned(cluster, namespace: str, owner_uid: str) -> list[tuple[tuple[str, str, str], dict]]:
    return [(key, obj) for key, obj in list(cluster.resources.items())
            if key[1] == namespace and any(o.get("uid") == owner_uid for o in obj["metadata"].get("ownerReferences") or [])]


def orphan(cluster, namespace: str, owner_uid: str) -> None:
    """What the owner with ``owner_uid`` owned stays, no longer owned by it."""
    for (res, _, _), obj in _owned(cluster, namespace, owner_uid):
        obj["metadata"]["ownerReferences"] = [o for o in obj["metadata"]["ownerReferences"] if o.get("uid") != owner_uid]
        cluster.history.record("MODIFIED", res, obj)


def collect_owned(cluster, namespace: str, owner_uid: str) -> None:
    """The garbage collector: custom resources whose owner is gone go too, once it notices,
    ``cluster.gc_seconds`` after the owner went (a real one acts when its informers have seen
    the owner gone: within a second on a quiet control plane, later on a busy one); at once
    when that is 0."""
    if cluster.gc_seconds:
        cluster.garbage.append((cluster.clock.monotonic() + cluster.gc_seconds, namespace, owner_uid))
        return
    for (res, ns, name), _ in _owned(cluster, namespace, owner_uid):
        delete(cluster, res, ns, name)


def collect_due(cluster, until: float | None = None) -> None:
    """The garbage collector's pass: the dependents of each owner gone by ``until`` (now,
    unless given) go."""
    now = cluster.clock.monotonic() if until is None else until
    with cluster.lock:
        due = [entry for entry in cluster.garbage if entry[0] <= now]
        cluster.garbage = [entry for entry in cluster.garbage if entry[0] > now]
        for _, namespace, owner_uid in due:
            for (res, ns, name), _ in _owned(cluster, namespace, owner_uid):
                delete(cluster, res, ns, name)


def install(cluster) -> None:
    """Install the overlay as ``kubectl apply -k`` with ``components: [katib-api]`` would: its
    CRDs (the kinds above become served) and its RBAC, in katuna's namespace."""
    directory = MANIFESTS / "katib-api"
    component = manifests.document(directory / "kustomization.yaml")
    with cluster.lock:
        cluster.kinds.update(KATIB_KINDS)
        cluster.schemas.update(schemas(directory / "crds.yaml"))
        for resource in component["resources"]:
            for obj in manifests.documents(directory / resource):
                if obj and obj.get("kind") in RBAC_KINDS:
                    cluster.authorizer.objects.append(_in_namespace(obj, "katuna"))


def bind(cluster, user: str, cluster_role: str, namespace: str) -> None:
    """A RoleBinding of ``cluster_role`` to ``user`` in ``namespace``, as a cluster admin makes one."""
    with cluster.lock:
        cluster.authorizer.objects.append({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": f"{cluster_role}-{user}", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
            "subjects": [{"kind": "User", "name": user}]})
