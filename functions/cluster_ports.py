"""The cluster's study resources and nodes as the runtime's ports, with the Kubernetes client
imported and connected at first use: only a cluster sends their events, and a service without
one should not pay for the import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from functions.core.node_hours import NodeSeen
from functions.core.resource_events import Happening, Regarding
from functions.core.resources import Ref
from functions.core.timeouts import REMOTE_TIMEOUT
from functions.settings import Settings


def watched_namespace(settings: Settings) -> str | None:
    """Where the study resources this service reconciles live: the trial Jobs' namespace
    (``KATUNA_K8S_NAMESPACE``, else ``default``); None where there is no cluster to ask (no
    ``KATUNA_K8S_API`` and not running in a cluster: a kubeconfig on a laptop is not asked)."""
    if not (settings.k8s_api or settings.in_cluster):
        return None
    return settings.k8s_namespace or "default"


class ClusterResources:
    """Study resources on the cluster's API (:class:`functions.core.ports.Resources`)."""

    def __init__(self, host: str | None, namespace: str | None = None, katib_api: bool = False,
                 timeout: float = REMOTE_TIMEOUT) -> None:
        self._host = host
        self._timeout = timeout
        self._resources: Any = None
        self.namespace = namespace
        self.katib_api = katib_api

    def _target(self) -> Any:
        if self._resources is None:
            from functions.adapters.kubernetes_client import api_client
            from functions.adapters.kubernetes_resources import KubernetesResources

            self._resources = KubernetesResources(lambda: api_client(self._host, self._timeout), self.katib_api)
        return self._resources

    def get(self, ref: Ref) -> Mapping[str, Any] | None:
        return self._target().get(ref)

    def write_status(self, ref: Ref, uid: str, status: Callable[[], Mapping[str, Any]]) -> bool:
        return self._target().write_status(ref, uid, status)

    def list(self, namespace: str) -> list[Mapping[str, Any]]:
        return self._target().list(namespace)

    def list_katib(self) -> Sequence[Mapping[str, Any]]:
        return self._target().list_katib() if self.katib_api else []

    def put_trials(self, owner: Ref, trials: Sequence[Mapping[str, Any]]) -> Mapping[str, str]:
        return self._target().put_trials(owner, trials)

    def put_suggestion(self, owner: Ref, uid: str, wanted: Callable[[], Mapping[str, Any]]) -> None:
        self._target().put_suggestion(owner, uid, wanted)

    def record_events(self, regarding: Regarding, happenings: Sequence[Happening]) -> Sequence[str]:
        return self._target().record_events(regarding, happenings)

    def delete_trials(self, owner: Ref, uid: str, names: Sequence[str]) -> None:
        self._target().delete_trials(owner, uid, names)

    def read_config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self._target().read_config_map(namespace, name)


class ClusterNodes:
    """The cluster's Node objects (:class:`functions.core.ports.Nodes`)."""

    def __init__(self, host: str | None, timeout: float = REMOTE_TIMEOUT) -> None:
        self._host = host
        self._timeout = timeout
        self._nodes: Any = None

    def list(self, labels: Mapping[str, str]) -> list[NodeSeen]:
        if self._nodes is None:
            from functions.adapters.kubernetes_client import api_client
            from functions.adapters.kubernetes_resources import KubernetesNodes

            self._nodes = KubernetesNodes(lambda: api_client(self._host, self._timeout))
        return self._nodes.list(labels)
