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
subresource); a delete removes the objects owned by the deleted one (the garbage collector's
background propagation, the default for custom resources).
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import yaml

from kube_standin.names import label_problems
from kube_standin.objects import DNS_SUBDOMAIN, invalid, not_found, snapshot, status, suffix
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
           warnings: list[str] | None = None) -> tuple[int, dict]:
    """POST of a custom resource into ``namespace`` with the request's ``fieldValidation``
    ``directive``; what the API warns of goes to ``warnings``."""
    obj = snapshot(body or {})
    metadata = obj.setdefault("metadata", {})
    if not metadata.get("name") and metadata.get("generateName"):
        metadata["name"] = metadata["generateName"] + suffix()
    name = metadata.get("name") or ""
    with cluster.lock:
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
        labels = label_problems(metadata.get("labels"), "metadata.labels")
        if labels:
            return invalid(obj.get("kind", ""), qualified(resource_key), name, labels)
        if (resource_key, namespace, name) in cluster.resources:
            plural, _, group = qualified(resource_key).partition(".")
            return 409, status(409, "AlreadyExists", f'{qualified(resource_key)} "{name}" already exists',
                               {"name": name, "group": group, "kind": plural})
        obj.pop("status", None)
        metadata.update(namespace=namespace, uid=str(uuid.uuid4()), generation=1, creationTimestamp=cluster.clock.stamp())
        cluster.resources[(resource_key, namespace, name)] = obj
        cluster.history.record("ADDED", resource_key, obj)
        return 201, snapshot(obj)


def delete(cluster, resource_key: str, namespace: str, name: str) -> tuple[int, dict]:
    """DELETE of a custom resource, and (background propagation) of what it owns."""
    with cluster.lock:
        obj = cluster.resources.pop((resource_key, namespace, name), None)
        if obj is None:
            return not_found(qualified(resource_key), name)
        cluster.history.record("DELETED", resource_key, obj)
        collect_owned(cluster, namespace, obj["metadata"]["uid"])
        return 200, snapshot(obj)


def collect_owned(cluster, namespace: str, owner_uid: str) -> None:
    """The garbage collector: custom resources whose owner is gone go too."""
    for (res, ns, name), obj in list(cluster.resources.items()):
        owners = obj["metadata"].get("ownerReferences") or []
        if ns == namespace and any(o.get("uid") == owner_uid for o in owners):
            delete(cluster, res, ns, name)


def install(cluster) -> None:
    """Install the overlay as ``kubectl apply -k`` with ``components: [katib-api]`` would: its
    CRDs (the kinds above become served) and its RBAC, in katuna's namespace."""
    directory = MANIFESTS / "katib-api"
    component = yaml.safe_load((directory / "kustomization.yaml").read_text())
    with cluster.lock:
        cluster.kinds.update(KATIB_KINDS)
        cluster.schemas.update(schemas(directory / "crds.yaml"))
        for resource in component["resources"]:
            for obj in yaml.safe_load_all((directory / resource).read_text()):
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
