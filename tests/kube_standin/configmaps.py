"""ConfigMaps as the API server keeps them: created with the API server's validation (a DNS
subdomain for a name, config keys, string values, at most 1 MiB of data, labels and annotations
as every object's); reads (404 when
absent) are the API's generic ones (:meth:`kube_standin.api.ApiServer.read`). katuna only reads them (a trial template held in one); tests create them as
``kubectl create configmap`` would."""

from __future__ import annotations

import re

from kube_standin.names import metadata_problems, object_name_problems
from kube_standin.objects import added, invalid, snapshot, status

CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
MAX_DATA_BYTES = 1024 * 1024
"""``MaxSecretSize``: what a ConfigMap's data may hold in all."""


def create(cluster, namespace: str, body: dict | None, dry_run: bool = False) -> tuple[int, dict]:
    """POST of a ConfigMap into ``namespace``; a ``dry_run`` stores nothing."""
    obj = snapshot(body or {})
    metadata = obj.setdefault("metadata", {})
    name = metadata.get("name") or ""
    data = obj.get("data") or {}
    if not isinstance(data, dict) or any(not isinstance(v, str) for v in data.values()):
        return 400, status(400, "BadRequest", 'ConfigMap in version "v1" cannot be handled as a ConfigMap: '
                                              "json: cannot unmarshal into Go struct field ConfigMap.data of type string")
    problems = problems_of(name, data) + metadata_problems(metadata, "metadata")
    if problems:
        return invalid("ConfigMap", "configmaps", name, problems)
    return added(cluster, cluster.configmaps, "configmaps", namespace, obj, dry_run,
                 lambda made: made.update(apiVersion="v1", kind="ConfigMap"))


def problems_of(name: str, data: dict) -> list[tuple[str, str]]:
    """The API server's validation of a ConfigMap (``ValidateConfigMap``), and of a Secret's name
    and keys (``ValidateSecret`` checks them alike)."""
    problems = object_name_problems(name)
    for key in data:
        if not CONFIG_KEY.match(key) or len(key) > 253 or key in (".", ".."):
            problems.append((f"data[{key}]", f'Invalid value: "{key}": a valid config key must consist of '
                                             "alphanumeric characters, '-', '_' or '.'"))
    if sum(len(key) + len(value.encode()) for key, value in data.items()) > MAX_DATA_BYTES:
        problems.append(("[]", f"Too long: must have at most {MAX_DATA_BYTES} bytes"))
    return problems

