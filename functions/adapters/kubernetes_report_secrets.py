"""The Secret that hands a Kubernetes trial attempt its report token (:mod:`functions.core.report_token`).

The attempt's workload reads its token from a Secret of its own (``secretKeyRef``), never from a
value of its pod template, which anyone who may read the namespace's Jobs or pods reads. The
Secret is created once the workload is, since it names the workload's uid: it is owned by it
(an ``ownerReference``), so Kubernetes' garbage collector deletes it with the workload,
whoever deletes that (katuna, a TTL, a user), and deletes at once one whose workload is gone
already. Until the Secret is there the kubelet holds the container in
``CreateContainerConfigError`` and tries again at each sync. katuna creates and deletes
Secrets, and never reads one (``katuna-trials`` grants ``create`` and ``delete`` only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from kubernetes import client

from functions.adapters.kubernetes_client import call
from functions.core.report_token import HOLDER_KEY, holder_name


class ReportSecrets:
    """Create the Secrets holding trial attempts' report tokens."""

    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)

    def hand(self, namespace: str, workload: Mapping[str, Any], uid: str, value: str) -> None:
        """Create the Secret holding ``value`` for the attempt whose ``workload`` (as rendered)
        the API holds with ``uid``, owned by it. A Secret of its name there already (an earlier
        delivery's of the launch, or one whose owner is gone: an earlier study's of the same
        name, an earlier Job of the attempt, which the collector will delete) is deleted and
        made again, owned by this workload; one made meanwhile by another delivery is taken."""
        metadata = workload["metadata"]
        name = holder_name(metadata["name"])
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": name, "labels": dict(metadata.get("labels") or {}),
                             "ownerReferences": [{"apiVersion": workload["apiVersion"], "kind": workload["kind"],
                                                  "name": metadata["name"], "uid": uid}]},
                "stringData": {HOLDER_KEY: value}}
        if self._create(namespace, body):
            return
        self._delete(namespace, name)
        self._create(namespace, body)

    def _create(self, namespace: str, body: dict[str, Any]) -> bool:
        """Create the Secret; False when one of its name is there (409)."""
        doing = f"create Secret {body['metadata']['name']} (its attempt's report token)"
        return call(lambda: self._core.create_namespaced_secret(namespace, cast(client.V1Secret, body)),
                    doing, tolerate=(409,)) is not None

    def _delete(self, namespace: str, name: str) -> None:
        """Delete the Secret ``name``; one gone already is left."""
        call(lambda: self._core.delete_namespaced_secret(name, namespace), f"delete Secret {name}", tolerate=(404,))
