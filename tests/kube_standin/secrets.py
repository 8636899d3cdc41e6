"""Secrets as the API server keeps them: created with its validation (``ValidateSecret``: a DNS
subdomain for a name, config keys, at most 1 MiB of data, labels and annotations as every
object's (``ValidateObjectMeta``); ``ValidateOwnerReferences`` of
apimachinery's objectmeta.go for its owners), ``stringData`` merged into ``data``
base64-encoded, as the API server does on write, and deleted. katuna creates the Secrets of
its attempts' report tokens and never reads one; the kubelets do, to make a container's
environment (:mod:`kube_standin.environment`). Tests create them as ``kubectl create secret
generic`` would.

The garbage collector deletes a Secret all of whose owners are absent (``attemptToDeleteItem``
in pkg/controller/garbagecollector/garbagecollector.go: an owner is absent when no object of
its kind and name in the Secret's namespace has its uid), whether the owner went after the
Secret was made or before (:func:`collect`); a Secret without owners stays."""

from __future__ import annotations

import base64
import binascii
import json

from kube_standin import decoding, fields
from kube_standin.configmaps import MAX_DATA_BYTES, problems_of
from kube_standin.names import metadata_problems
from kube_standin.objects import added, invalid, not_found, snapshot, status
from kube_standin.selectors import matches


def create(cluster, namespace: str, body: dict | None, dry_run: bool = False, directive: str | None = None,
           warnings: list[str] | None = None) -> tuple[int, dict]:
    """POST of a Secret into ``namespace``, decoded as ``directive`` (the request's
    ``fieldValidation``) says (:mod:`kube_standin.decoding`); a ``dry_run`` stores nothing."""
    obj = snapshot(body or {})
    if (unreadable := decoding.decoded("Secret", obj, directive, warnings)) is not None:
        return 400, status(400, "BadRequest", f'Secret in version "v1" cannot be handled as a Secret: {unreadable}')
    name = obj.setdefault("metadata", {}).get("name") or ""
    try:
        data = {key: base64.b64decode(value, validate=True) for key, value in (obj.get("data") or {}).items()}
    except (binascii.Error, TypeError):
        return 400, status(400, "BadRequest", 'Secret in version "v1" cannot be handled as a Secret: illegal base64 '
                                              "data at input byte 0")
    data.update({key: value.encode() for key, value in (obj.pop("stringData", None) or {}).items()})
    problems = problems_of(name, dict.fromkeys(data, "")) + metadata_problems(obj["metadata"], "metadata")
    problems += owner_problems(obj["metadata"].get("ownerReferences"))
    if sum(len(value) for value in data.values()) > MAX_DATA_BYTES:
        problems.append(("data", f"Too long: must have at most {MAX_DATA_BYTES} bytes"))
    if problems:
        return invalid("Secret", "secrets", name, problems)
    return added(cluster, cluster.secrets, "secrets", namespace, obj, dry_run, lambda made: made.update(
        apiVersion="v1", kind="Secret", type=made.get("type") or "Opaque",
        data={key: base64.b64encode(value).decode() for key, value in data.items()}))


def data_of(cluster, namespace: str, name: str) -> dict[str, str] | None:
    """The Secret's data, decoded, as a container's environment gets it; None when there is none."""
    found = cluster.secrets.get((namespace, name))
    if found is None:
        return None
    return {key: base64.b64decode(value).decode(errors="replace") for key, value in (found.get("data") or {}).items()}


def owner_problems(references: list | None) -> list[tuple[str, str]]:
    """The API server's refusals of ``metadata.ownerReferences`` (``ValidateOwnerReferences``,
    apimachinery pkg/api/validation/objectmeta.go): an apiVersion that is no ``<group>/<version>``
    or ``<version>``, an empty kind, name or uid, an owner of a kind that may own nothing (a
    ``v1`` Event), or a second reference marked ``controller``."""
    problems, controller = [], ""
    for index, reference in enumerate(references or []):
        field = f"metadata.ownerReferences[{index}]"
        version = str(reference.get("apiVersion") or "")
        parts = version.split("/")
        if not version:
            problems.append((f"{field}.apiVersion", "Required value: must not be empty"))
        elif len(parts) > 2 or not parts[-1]:
            problems.append((f"{field}.apiVersion", f"Invalid value: {json.dumps(version)}: must be <group>/<version> "
                                                    "or <version>"))
        problems += [(f"{field}.{key}", "Required value: must not be empty") for key in ("kind", "name", "uid")
                     if not reference.get(key)]
        if version == "v1" and reference.get("kind") == "Event":
            problems.append((field, "Invalid value: ...: /v1, Kind=Event is disallowed from being an owner"))
        if reference.get("controller") is True:
            named = f"{reference.get('kind')}/{reference.get('name')}"
            if controller:
                problems.append(("metadata.ownerReferences", "Invalid value: ...: Only one reference can have "
                                 f'Controller set to true. Found "true" in references for {controller} and {named}'))
            controller = controller or named
    return problems


def delete(cluster, namespace: str, name: str, dry_run: bool = False) -> tuple[int, dict]:
    """DELETE of a Secret: gone at once (it has no finalizers), answered with the Status the
    registry's store gives for a kind that does not return the deleted object; a ``dry_run`` is
    answered so, and deletes nothing."""
    with cluster.lock:
        obj = cluster.secrets.get((namespace, name)) if dry_run else cluster.secrets.pop((namespace, name), None)
        if obj is None:
            return not_found("secrets", name)
        if not dry_run:
            cluster.history.record("DELETED", "secrets", obj)
        return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                     "details": {"name": name, "kind": "secrets", "uid": obj["metadata"]["uid"]}}


def delete_collection(cluster, namespace: str, label_selector: str | None, field_selector: str | None,
                      dry_run: bool = False) -> tuple[int, dict]:
    """DELETE of the Secrets of ``namespace`` that both selectors select (``DeleteCollection``:
    a field selector the kind does not make selectable is 400 before anything is deleted),
    answered with the list of those deleted (a ``dry_run``'s, none deleted)."""
    try:
        chosen = fields.terms("secrets", field_selector)
    except ValueError as exc:
        return 400, status(400, "BadRequest", str(exc))
    with cluster.lock:
        found = [obj for (held, _), obj in sorted(cluster.secrets.items())
                 if held == namespace and matches(obj["metadata"].get("labels") or {}, label_selector)
                 and fields.matches("secrets", obj, chosen)]
        for obj in [] if dry_run else found:
            delete(cluster, namespace, obj["metadata"]["name"])
        return 200, {"kind": "SecretList", "apiVersion": "v1",
                     "metadata": {"resourceVersion": str(cluster.history.version)}, "items": [snapshot(o) for o in found]}


def collect(cluster) -> None:
    """The garbage collector's pass over Secrets: one that has owners, none of them present, goes."""
    with cluster.lock:
        for (namespace, name), obj in list(cluster.secrets.items()):
            owners = obj["metadata"].get("ownerReferences") or []
            if owners and not any(_present(cluster, namespace, owner) for owner in owners):
                delete(cluster, namespace, name)


def _present(cluster, namespace: str, owner: dict) -> bool:
    """Whether the object an ownerReference names is there, with its uid."""
    if owner.get("kind") == "Job":
        found = cluster.jobs.get((namespace, owner.get("name")))
    else:
        found = next((o for (_, ns, name), o in [*cluster.workloads.items(), *cluster.resources.items()]
                      if ns == namespace and name == owner.get("name") and o.get("kind") == owner.get("kind")), None)
    return found is not None and found["metadata"].get("uid") == owner.get("uid")
