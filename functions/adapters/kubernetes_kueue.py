"""The Kueue Workloads of trial Jobs, deactivated to stop a retained trial for good.

Kueue (its ``manageJobsWithoutQueueName``, or a Job labelled ``kueue.x-k8s.io/queue-name``)
makes a Workload of each Job it manages and keeps the Job's ``spec.suspend`` to the Workload's
admission: a suspended Job whose Workload is admitted it resumes ("Job admitted, unsuspending",
``ReconcileGenericJob``, kubernetes-sigs/kueue pkg/controller/jobframework/reconciler.go). So a
retained trial's Job suspended by katuna alone would run again from its start, holding its
quota and nodes. A Workload's ``spec.active: false`` is Kueue's own stop: it evicts the Workload
(condition ``Evicted``, reason ``Deactivated``), suspends its Job, releases its quota and never
admits it again (docs/concepts/workload.md, "active"); the Job stays, with its status and its
ended pods, as ``retain`` keeps it. A Workload carries its Job's uid as the label
``kueue.x-k8s.io/job-uid`` (``ConstructWorkload``), which is how the Jobs' Workloads are found,
in one list per namespace and hundred trials.

Where Kueue is not installed its Workloads are not served (404): no Job is managed. Kueue serves
``v1beta2`` since 0.15 and ``v1beta1`` (deprecated since) before and beside it: each is asked in
turn. Where katuna's account may not list them (its namespace bound to the ClusterRole of an
older katuna's manifests: 403), the Jobs are taken as unmanaged, and said so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from functions.adapters.kubernetes_client import call, translate

log = logging.getLogger("katuna.kubernetes")

GROUP = "kueue.x-k8s.io"
PLURAL = "workloads"
VERSIONS = ("v1beta2", "v1beta1")
"""The Workload API versions Kueue serves, newest first."""
JOB_UID = "kueue.x-k8s.io/job-uid"
"""The label of a Workload naming the uid of the Job it stands for."""


class KueueWorkloads:
    """Finds and deactivates the Workloads Kueue made of trial Jobs."""

    def __init__(self, api: client.ApiClient) -> None:
        self._objects = client.CustomObjectsApi(api)

    def deactivate(self, namespace: str, uids: Sequence[str], jobs: str) -> set[str]:
        """Deactivate the Workload of each Job of ``uids`` in ``namespace`` that Kueue manages
        (``spec.active: false``; Kueue then suspends the Job and keeps it so); the uids of those
        Jobs, none where Kueue manages none. ``jobs`` says whose Jobs they are, for errors."""
        found = self._listed(namespace, uids, jobs) if uids else None
        if found is None:
            return set()
        version, workloads = found
        for workload in workloads:
            if (workload.get("spec") or {}).get("active") is not False:
                self._deactivate(namespace, version, workload["metadata"]["name"])
        return {workload["metadata"]["labels"][JOB_UID] for workload in workloads}

    def _listed(self, namespace: str, uids: Sequence[str], jobs: str) -> tuple[str, list[dict[str, Any]]] | None:
        """The API version that served the Workloads of ``uids``, and those Workloads; None where
        no version is served (no Kueue), or katuna may not list them."""
        selector = f"{JOB_UID} in ({','.join(sorted(uids))})"
        for version in VERSIONS:
            try:
                answer = self._objects.list_namespaced_custom_object(GROUP, version, namespace, PLURAL,
                                                                     label_selector=selector)
            except ApiException as exc:
                if exc.status == 404:
                    continue
                if exc.status == 403:
                    log.warning("katuna may not list workloads.kueue.x-k8s.io in namespace %s (grant it, as the "
                                "katuna-trials ClusterRole does): the Jobs of %s are suspended, and Kueue resumes "
                                "those it manages", namespace, jobs)
                    return None
                raise translate(exc, f"list the Kueue Workloads of {jobs}") from exc
            except HTTPError as exc:
                raise translate(exc, f"list the Kueue Workloads of {jobs}") from exc
            return version, list(cast(dict[str, Any], answer).get("items") or [])
        return None

    def _deactivate(self, namespace: str, version: str, name: str) -> None:
        """``spec.active: false`` on one Workload; one gone already (its Job deleted) is left."""
        call(lambda: self._objects.patch_namespaced_custom_object(
            GROUP, version, namespace, PLURAL, name, {"spec": {"active": False}},
            _content_type="application/merge-patch+json"), f"deactivate Kueue Workload {name}", tolerate=(404,))
