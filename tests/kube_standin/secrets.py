"""Secrets as the API server keeps them: created with its validation (``ValidateSecret``: a DNS
subdomain for a name, config keys, at most 1 MiB of data), ``stringData`` merged into
``data`` base64-encoded, as the API server does on write. katuna never reads them; the
kubelets do, to make a container's environment (:mod:`kube_standin.environment`). Tests create
them as ``kubectl create secret generic`` would."""

from __future__ import annotations

import base64
import binascii
import uuid

from kube_standin.configmaps import MAX_DATA_BYTES, problems_of
from kube_standin.objects import already_exists, invalid, not_found, snapshot, status


def create(cluster, namespace: str, body: dict | None) -> tuple[int, dict]:
    """POST of a Secret into ``namespace``."""
    obj = snapshot(body or {})
    name = obj.setdefault("metadata", {}).get("name") or ""
    try:
        data = {key: base64.b64decode(value, validate=True) for key, value in (obj.get("data") or {}).items()}
    except (binascii.Error, TypeError):
        return 400, status(400, "BadRequest", 'Secret in version "v1" cannot be handled as a Secret: illegal base64 '
                                              "data at input byte 0")
    data.update({key: value.encode() for key, value in (obj.pop("stringData", None) or {}).items()})
    problems = problems_of(name, dict.fromkeys(data, ""))
    if sum(len(value) for value in data.values()) > MAX_DATA_BYTES:
        problems.append(("data", f"Too long: must have at most {MAX_DATA_BYTES} bytes"))
    if problems:
        return invalid("Secret", "secrets", name, problems)
    with cluster.lock:
        if namespace not in cluster.namespaces:
            return not_found("namespaces", namespace)
        if (namespace, name) in cluster.secrets:
            return already_exists("secrets", name)
        obj["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=cluster.clock.stamp())
        obj.update(apiVersion="v1", kind="Secret", type=obj.get("type") or "Opaque",
                   data={key: base64.b64encode(value).decode() for key, value in data.items()})
        cluster.secrets[(namespace, name)] = obj
        cluster.history.record("ADDED", "secrets", obj)
        return 201, snapshot(obj)


def data_of(cluster, namespace: str, name: str) -> dict[str, str] | None:
    """The Secret's data, decoded, as a container's environment gets it; None when there is none."""
    found = cluster.secrets.get((namespace, name))
    if found is None:
        return None
    return {key: base64.b64decode(value).decode(errors="replace") for key, value in (found.get("data") or {}).items()}
