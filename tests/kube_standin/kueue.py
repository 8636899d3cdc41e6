"""Kueue installed with ``manageJobsWithoutQueueName: true``, as far as Jobs meet it
(kubernetes-sigs/kueue): its Job webhook creates every Job suspended (:meth:`ApiServer.create_job`);
its Job reconciler (``ReconcileGenericJob``, pkg/controller/jobframework/reconciler.go) makes
each Job's Workload and holds the Job's ``spec.suspend`` to the Workload's admission; its
Workload reconciler (pkg/controller/core/workload_controller.go) evicts a Workload deactivated
(``spec.active: false``). What a ClusterQueue decides is the test's: it admits a Workload
(:func:`admit`, Kueue's scheduler reserving quota with no admission check).

Each pass, per Job a controller does not own, in the reconciler's order: a finished Job's
Workload is finished; a Job without one gets one (``job-<name>-<hash>``, labelled with the
Job's uid, owned by the Job); an evicted Workload's Job is suspended (``stopJob``), and its
quota released once no pod of it is active; a suspended Job whose Workload is admitted is
resumed ("Job admitted, unsuspending"), whoever suspended it; a running Job whose Workload is
not admitted is suspended ("Running job is not admitted by a cluster queue, suspending"). A
deactivated Workload not yet evicted is evicted (reason ``Deactivated``); Kueue never admits
an inactive one. A Workload whose Job is gone goes with it, as the garbage collector deletes it.
"""

from __future__ import annotations

import hashlib
import uuid

from kube_standin.objects import snapshot
from kube_standin.workloads import Crd

GROUP = "kueue.x-k8s.io"
PLURAL = "workloads"
VERSIONS = ("v1beta2", "v1beta1")
"""What Kueue serves Workloads as: ``v1beta2`` since 0.15, ``v1beta1`` before it and (deprecated) beside it."""
JOB_UID = "kueue.x-k8s.io/job-uid"
QUEUE_NAME = "kueue.x-k8s.io/queue-name"
MAX_PREFIX = 253 - 1 - 5
"""A Workload's name is at most 253 characters, its hash and the dash before it included."""


def crd(versions: tuple[str, ...] = VERSIONS) -> Crd:
    return Crd(GROUP, versions, PLURAL, "Workload")


def workload_name(job: dict) -> str:
    """The name Kueue gives a Job's Workload (``GetWorkloadNameForOwnerWithGVK``): ``job-`` and
    the Job's name, then five hex digits of a SHA-1 of its kind, group, name and uid."""
    name, uid = job["metadata"]["name"], job["metadata"]["uid"]
    digest = hashlib.sha1(f"Job\nbatch\n{name}\n{uid}".encode(), usedforsecurity=False).hexdigest()[:5]
    return f"{('job-' + name)[:MAX_PREFIX]}-{digest}"


def workload_of(cluster, job: dict) -> dict | None:
    """The Workload Kueue made of ``job``, None before it has made one."""
    uid = job["metadata"]["uid"]
    return next((w for (plural, _, _), w in cluster.workloads.items()
                 if plural == PLURAL and (w["metadata"].get("labels") or {}).get(JOB_UID) == uid), None)


def admit(cluster, workload: dict) -> None:
    """A ClusterQueue admits ``workload``: its quota reserved, it is admitted (an earlier
    eviction over); a ValueError for an inactive one, which Kueue never admits."""
    if workload["spec"].get("active") is False:
        raise ValueError(f"Kueue admits no inactive Workload: {workload['metadata']['name']}")
    stamp = cluster.clock.stamp()
    workload["status"]["admission"] = {"clusterQueue": "cluster-queue"}
    for kind, reason in (("QuotaReserved", "QuotaReserved"), ("Admitted", "Admitted")):
        _condition(workload, kind, "True", reason, f"{reason} by ClusterQueue cluster-queue", stamp)
    if _true(workload, "Evicted"):
        _condition(workload, "Evicted", "False", "QuotaReserved", "Previously: evicted", stamp)
    cluster.modified(PLURAL, workload)


class Kueue:
    """Kueue's Job and Workload reconcilers, one pass over the cluster a step."""

    def step(self, cluster) -> None:
        for job in list(cluster.jobs.values()):
            if not job["metadata"].get("ownerReferences"):
                self._reconcile(cluster, job)
        uids = {job["metadata"]["uid"] for job in cluster.jobs.values()}
        for key, workload in list(cluster.workloads.items()):
            if key[0] == PLURAL and workload["metadata"]["labels"].get(JOB_UID) not in uids:
                del cluster.workloads[key]
                cluster.history.record("DELETED", PLURAL, workload)

    def _reconcile(self, cluster, job: dict) -> None:
        workload = workload_of(cluster, job)
        if workload is None:
            if not _finished(job):
                self._create(cluster, job)
            return
        self._deactivated(cluster, workload)
        suspended = bool(job["spec"].get("suspend"))
        if _finished(job):
            if not _true(workload, "Finished"):
                _condition(workload, "Finished", "True", "Succeeded", "Job finished", cluster.clock.stamp())
                cluster.modified(PLURAL, workload)
        elif _true(workload, "Evicted"):
            if not suspended:
                cluster.set_suspended(job["metadata"]["namespace"], job["metadata"]["name"], True)
            if _true(workload, "QuotaReserved") and not job["status"].get("active"):
                self._release(cluster, workload)
        elif suspended and _true(workload, "Admitted"):
            cluster.set_suspended(job["metadata"]["namespace"], job["metadata"]["name"], False)
        elif not suspended and not _true(workload, "Admitted"):
            cluster.set_suspended(job["metadata"]["namespace"], job["metadata"]["name"], True)

    @staticmethod
    def _create(cluster, job: dict) -> None:
        meta = job["metadata"]
        queue = (meta.get("labels") or {}).get(QUEUE_NAME)
        workload = {
            "apiVersion": f"{GROUP}/{cluster.crds[(GROUP, PLURAL)].versions[0]}", "kind": "Workload",
            "metadata": {"name": workload_name(job), "namespace": meta["namespace"], "uid": str(uuid.uuid4()),
                         "labels": {JOB_UID: meta["uid"]},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                              "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
            "spec": {"active": True, **({"queueName": queue} if queue else {}),
                     "podSets": [{"name": "main", "count": job["spec"].get("parallelism", 1),
                                  "template": snapshot(job["spec"]["template"])}]},
            "status": {"conditions": []}}
        cluster.add_workload(PLURAL, workload)

    @staticmethod
    def _deactivated(cluster, workload: dict) -> None:
        """The Workload reconciler: a Workload deactivated and not yet evicted is evicted."""
        if workload["spec"].get("active") is False and not _true(workload, "Evicted"):
            stamp = cluster.clock.stamp()
            _condition(workload, "Evicted", "True", "Deactivated", "The workload is deactivated", stamp)
            _condition(workload, "Requeued", "False", "Deactivated", "The workload is deactivated", stamp)
            cluster.modified(PLURAL, workload)

    @staticmethod
    def _release(cluster, workload: dict) -> None:
        """The evicted Workload's Job has no active pod: its quota reservation is released."""
        stamp = cluster.clock.stamp()
        workload["status"].pop("admission", None)
        _condition(workload, "QuotaReserved", "False", "Pending", "The workload is evicted", stamp)
        _condition(workload, "Admitted", "False", "NoReservation", "The workload has no reservation", stamp)
        cluster.modified(PLURAL, workload)


def _finished(job: dict) -> bool:
    return any(c["type"] in ("Complete", "Failed") and c["status"] == "True"
               for c in job.get("status", {}).get("conditions", []))


def _true(workload: dict, kind: str) -> bool:
    return any(c["type"] == kind and c["status"] == "True" for c in workload["status"].get("conditions", []))


def _condition(workload: dict, kind: str, value: str, reason: str, message: str, stamp: str) -> None:
    """Set a condition of the Workload's status; its transition time moves only with its status."""
    conditions = workload["status"].setdefault("conditions", [])
    found = next((c for c in conditions if c["type"] == kind), None)
    if found is None:
        conditions.append({"type": kind, "status": value, "reason": reason, "message": message,
                           "lastTransitionTime": stamp})
        return
    if found["status"] != value:
        found["lastTransitionTime"] = stamp
    found.update(status=value, reason=reason, message=message)
