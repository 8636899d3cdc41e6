"""The Secret that hands a Kubernetes trial attempt its report token (:mod:`functions.core.report_token`).

The attempt's workload reads its token from a Secret of its own (``secretKeyRef``), never from a
value of its pod template, which anyone who may read the namespace's Jobs or pods reads. The
Secret is created once the workload is, since it names the workload's uid: it is owned by it
(an ``ownerReference``), so Kubernetes' garbage collector deletes it with the workload,
whoever deletes that (katuna, a TTL, a user), and deletes at once one whose workload is gone
already. Until the Secret is there the kubelet holds the container in
``CreateContainerConfigError`` and tries again at each sync. katuna creates and deletes
Secrets, and never reads one (``katuna-trials`` grants ``create`` and ``deletecollection``
only: a Secret is deleted by a collection delete selecting it by name and label). A Secret of
the name katuna did not make (without its ``app.kubernetes.io/managed-by: katuna`` label) is
never deleted: a study's name is a user's, and the name of its attempt's Secret with it, which
must not reach a Secret of anyone else's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from kubernetes import client

from functions.adapters.kubernetes_client import call
from functions.core.errors import PermanentError
from functions.core.report_token import HOLDER_KEY, holder_name
from functions.core.workload_labels import MANAGED_BY

OWN = f"{MANAGED_BY}=katuna"
"""The label selector of the Secrets katuna made: the only ones it deletes to make its own."""


class ReportSecrets:
    """Create the Secrets holding trial attempts' report tokens."""

    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)

    def hand(self, namespace: str, workload: Mapping[str, Any], uid: str, value: str) -> None:
        """Create the Secret holding ``value`` for the attempt whose ``workload`` (as rendered)
        the API holds with ``uid``, owned by it. A Secret of katuna's of its name there already
        (an earlier delivery's of the launch, or one whose owner is gone: an earlier study's of
        the same name, an earlier Job of the attempt, which the collector will delete) is deleted
        and made again, owned by this workload; one made meanwhile by another delivery is taken.
        One of its name that is not katuna's is left, and refused for good
        (:class:`~functions.core.errors.PermanentError`): the workload is deleted again. So is
        any Secret of its name where katuna's grant lacks ``deletecollection`` (a namespace bound
        to an older release's role): katuna, which never reads a Secret, cannot tell it is its own,
        and the pod would read the ``token`` key of whoever's it is."""
        metadata = workload["metadata"]
        name = holder_name(metadata["name"])
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": name, "labels": dict(metadata.get("labels") or {}),
                             "ownerReferences": [{"apiVersion": workload["apiVersion"], "kind": workload["kind"],
                                                  "name": metadata["name"], "uid": uid}]},
                "stringData": {HOLDER_KEY: value}}
        if self._create(namespace, body):
            return
        # Twice: a Secret that no delete found, yet there at the create after it, is another
        # delivery's made meanwhile (taken, once deleted and made again) or not katuna's.
        for _ in range(2):
            cleared = self._delete_own(namespace, name)
            if cleared is None:
                raise PermanentError(
                    f"Kubernetes refused to create Secret {name} in namespace {namespace} (the attempt's report "
                    f"token): a Secret of that name is there, and katuna may not deletecollection secrets in "
                    f"namespace {namespace}, its only way to tell (and delete) one of its own: katuna leaves it, "
                    "whoever's it is. Grant katuna deletecollection on secrets there (the katuna-trials "
                    "ClusterRole does), or rename that Secret, or the study")
            if self._create(namespace, body) or cleared:
                return
        raise PermanentError(
            f"Kubernetes refused to create Secret {name} in namespace {namespace} (the attempt's report "
            f"token): a Secret of that name is there and is not katuna's (no label {OWN}); katuna leaves it. "
            "Rename that Secret, or the study")

    def _create(self, namespace: str, body: dict[str, Any]) -> bool:
        """Create the Secret; False when one of its name is there (409)."""
        doing = f"create Secret {body['metadata']['name']} (its attempt's report token)"
        return call(lambda: self._core.create_namespaced_secret(namespace, cast(client.V1Secret, body)),
                    doing, tolerate=(409,)) is not None

    def _delete_own(self, namespace: str, name: str) -> bool | None:
        """Delete the Secret ``name`` where katuna made it (labelled :data:`OWN`), in one
        collection delete selecting it by name and label, so a Secret of the name that is not
        katuna's is never touched; whether one was deleted. None where katuna's grant lacks
        ``deletecollection`` (its namespace bound to an older release's role: 403): the Secret
        is left, whoever's it is."""
        deleted = call(lambda: self._core.delete_collection_namespaced_secret(
            namespace, label_selector=OWN, field_selector=f"metadata.name={name}", _preload_content=False),
            f"delete Secret {name}", tolerate=(403,))
        if deleted is None:
            return None
        # Read raw: the API answers with the list of the Secrets deleted, which the client's
        # V1Status model would drop.
        return bool(json.loads(deleted.data or b"{}").get("items"))
