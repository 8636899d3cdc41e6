"""PersistentVolumeClaims as the API server keeps them, and the folders their volumes are.

Created with the API server's validation (``ValidatePersistentVolumeClaim``,
``pkg/apis/core/validation/validation.go``): a DNS subdomain for a name; ``spec.accessModes``
required, each one of ``ReadWriteOnce``, ``ReadOnlyMany``, ``ReadWriteMany`` and
``ReadWriteOncePod``, the last alone; ``spec.resources.requests.storage`` required and more than
zero. A claim is bound at once (``status.phase: Bound``, its access modes and capacity) to a
volume that is a folder of this machine (:func:`folder_of`), one per claim, shared by every pod
and node that mounts it, as a ReadWriteMany volume (an NFS share, Filestore, EFS) is: what a pod
writes there, the next pod finds. A pod's ``persistentVolumeClaim`` volume whose claim is absent
holds the pod unscheduled, as the scheduler's VolumeBinding plugin does
(``persistentvolumeclaim "x" not found``: :func:`missing_claim`), until it exists. Reads are the
API's generic ones.
"""

from __future__ import annotations

import json
from pathlib import Path

from kube_standin.names import metadata_problems, object_name_problems
from kube_standin.objects import added, invalid, quantity, snapshot, status

ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")


def create(cluster, namespace: str, body: dict | None, dry_run: bool = False) -> tuple[int, dict]:
    """POST of a PersistentVolumeClaim into ``namespace``; a ``dry_run`` stores nothing."""
    obj = snapshot(body or {})
    metadata = obj.setdefault("metadata", {})
    name = metadata.get("name") or ""
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict):
        return 400, status(400, "BadRequest", "PersistentVolumeClaim in version \"v1\" cannot be handled")
    problems = problems_of(name, spec) + metadata_problems(metadata, "metadata")
    if problems:
        return invalid("PersistentVolumeClaim", "persistentvolumeclaims", name, problems)
    made = added(cluster, cluster.claims, "persistentvolumeclaims", namespace, obj, dry_run, lambda claim: claim.update(
        apiVersion="v1", kind="PersistentVolumeClaim", status={
            "phase": "Bound", "accessModes": list(spec["accessModes"]),
            "capacity": {"storage": spec["resources"]["requests"]["storage"]}}))
    if made[0] == 201 and not dry_run:
        folder_of(cluster, namespace, name).mkdir(parents=True, exist_ok=True)
    return made


def problems_of(name: str, spec: dict) -> list[tuple[str, str]]:
    """The API server's validation of a claim's name, access modes and storage request."""
    problems = object_name_problems(name)
    modes = spec.get("accessModes") or []
    if not modes:
        problems.append(("spec.accessModes", "Required value: at least 1 access mode is required"))
    for mode in modes:
        if mode not in ACCESS_MODES:
            problems.append(("spec.accessModes", f"Unsupported value: {json.dumps(mode)}: supported values: "
                                                 + ", ".join(json.dumps(m) for m in ACCESS_MODES)))
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        problems.append(("spec.accessModes", 'Forbidden: may not use ReadWriteOncePod with other access modes'))
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage is None:
        problems.append(("spec.resources[storage]", "Required value"))
    elif quantity(storage) <= 0:
        problems.append(("spec.resources[storage]", "Invalid value: must be greater than zero"))
    return problems


def folder_of(cluster, namespace: str, name: str) -> Path:
    """The folder of this machine that is the claim's volume."""
    return cluster.volumes_dir / namespace / name


def missing_claim(cluster, pod: dict) -> str | None:
    """The scheduler's word for a pod one of whose claims is absent, if one is."""
    for volume in pod["spec"].get("volumes") or []:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim is not None and (pod["metadata"]["namespace"], claim) not in cluster.claims:
            return f'persistentvolumeclaim "{claim}" not found'
    return None


def mounts(cluster, pod: dict, container: dict) -> dict[str, Path]:
    """The folders of this machine the ``container`` finds at each of its mount paths of a claim:
    the claim's folder, or its ``subPath`` in it, made if absent, as the kubelet makes it."""
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["spec"].get("volumes") or []
              if v.get("persistentVolumeClaim")}
    found = {}
    for mount in container.get("volumeMounts") or []:
        claim = claims.get(mount.get("name"))
        if claim is None:
            continue
        folder = folder_of(cluster, pod["metadata"]["namespace"], claim) / mount.get("subPath", "")
        folder.mkdir(parents=True, exist_ok=True)
        found[mount["mountPath"]] = folder
    return found
