"""The LimitRanges of the namespaces katuna's own containers run in, so that they ask for what
those allow (:mod:`functions.core.limit_ranges`): the checkpoint init container of a trial's pod,
and the checkpoint-drop Job's container.

A namespace's LimitRanges are listed where such a container is about to be created (a trial of
population-based training, a study's checkpoints deleted), never for other trials. An account that
may not list them (an older ``katuna-trials`` grant, 403) reads none, logged once per namespace: the
containers then ask for their own resources, as before."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from kubernetes import client

from functions.adapters.kubernetes_client import call
from functions.core.limit_ranges import fit_containers

log = logging.getLogger("katuna.kubernetes")


class LimitRanges:
    """Reads a namespace's LimitRanges and fits katuna's own containers into them."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._core = client.CoreV1Api(api)
        self._told: set[str] = set()

    def items(self, namespace: str) -> list[dict[str, Any]]:
        """The items (``type``, ``min``, ``max``, ``maxLimitRequestRatio``, ...) of every
        LimitRange of ``namespace``; none where the account may not list them."""
        listed = call(lambda: self._core.list_namespaced_limit_range(namespace),
                      f"list the LimitRanges of namespace {namespace}", tolerate=(403,))
        if listed is None:
            if namespace not in self._told:
                self._told.add(namespace)
                log.warning("katuna may not list the LimitRanges of namespace %s (grant it the katuna-trials "
                            "ClusterRole of this release): its own containers ask for their usual resources there, "
                            "which a LimitRange may refuse", namespace)
            return []
        return [item for found in listed.items
                for item in (self._api.sanitize_for_serialization(found.spec) or {}).get("limits") or []]

    def fit(self, namespace: str, workload: Mapping[str, Any], names: Iterable[str], alone: bool = False) -> None:
        """Fit the containers ``names`` of the Job ``workload``'s pod template into the LimitRanges
        of ``namespace``; nothing is listed where the pod has none of them."""
        pod = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
        own = set(names)
        if not any(c.get("name") in own for group in ("initContainers", "containers") for c in pod.get(group) or []):
            return
        fit_containers(pod, own, self.items(namespace), alone)
