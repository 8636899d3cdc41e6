"""The Job controller and the TTL-after-finished controller, for what katuna reads of a Job.

A Job gets ``status.startTime`` at its first sync; ``activeDeadlineSeconds`` counts from it
(in Go's nanoseconds, which wrap past about 292 years: :func:`_go_seconds`), Pending time included: past it the active pods are deleted and the Job fails with
``DeadlineExceeded``. A suspended Job (``spec.suspend``, as Kueue sets it on every Job it
queues) gets no start time and makes no pods; its active pods are deleted (not counted as
failed: the real controller takes their tracking finalizer off first), it gets the
``Suspended`` condition (``JobSuspended``), and its deadline does not run. Resumed, the
condition turns ``False`` (``JobResumed``) and the start time, with the deadline, starts again. A failed pod is judged by ``podFailurePolicy`` (``Ignore`` does not count
it and a replacement pod is made, after the back-off if one is set; ``FailJob`` fails the Job;
otherwise it counts; a deleted pod counts, and is replaced, once it failed, or at once without a
``podFailurePolicy``: :func:`~kube_standin.pod_failures.failed`); more counted failures than ``backoffLimit`` fail the Job with
``BackoffLimitExceeded``. Ignored failures are not bounded: a Job whose every pod is disrupted
makes pods for ever, as the real controller does, and its status counts none of them (a
preempted pod, deleted once seen, leaves no trace of it). Pods are created by ``generateName`` as the
real controller creates them (``<job>-``, ``<job>-<index>-`` in an Indexed Job, then five
random characters the API draws again while the name is taken), so no pod of an earlier Job of
the same name, Terminating or orphaned, ever holds a new pod's name. A Job's end is written
first as ``SuccessCriteriaMet`` or ``FailureTarget``, and ``Complete`` or ``Failed`` follows once
none of its pods is terminating (:mod:`kube_standin.job_status`); ``ttlSecondsAfterFinished``
after that it is deleted with its pods. A Job without ``completions`` (a work queue: its
``parallelism`` alone given) succeeds once one pod has, and its others have ended.
"""

from __future__ import annotations

import time
from calendar import timegm

from kube_standin import job_status
from kube_standin.admission import Forbidden
from kube_standin.clock import RealClock
from kube_standin.job_policies import JOB_CONTROLLER
from kube_standin.objects import snapshot
from kube_standin.pod_failures import failed, failure_action
from kube_standin.scheduling import requests

NANOS = 1_000_000_000
MOST_DEADLINE = (2**63 - 1) // NANOS
"""The longest ``activeDeadlineSeconds`` the Job controller counts as given."""


def _seconds(stamp: str) -> float:
    return float(timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))


def _go_seconds(deadline: int | None) -> float | None:
    """``activeDeadlineSeconds`` as the Job controller counts it (``pastActiveDeadline``:
    ``time.Duration(*ActiveDeadlineSeconds) * time.Second``), in int64 nanoseconds that wrap
    past about 292 years (:data:`MOST_DEADLINE`): a longer deadline reads as another, most often
    one already past (``2**63 - 1`` seconds as -1 s), and fails the Job at its first sync."""
    if deadline is None:
        return None
    nanos = (deadline * NANOS + 2**63) % 2**64 - 2**63
    return nanos / NANOS


def new_pod(job: dict, made: int = 0) -> dict:
    """A pod of ``job`` from its template, as the Job controller creates it (named by the API:
    ``generateName``), with its template's labels alone (the API server put the Job's own there,
    unless ``manualSelector``); the ``made``-th pod of an Indexed Job carries its completion
    index (indexes in the order pods are made)."""
    template = snapshot(job["spec"]["template"])
    meta = job["metadata"]
    labels = dict((template.get("metadata") or {}).get("labels", {}))
    prefix = f"{meta['name']}-"
    if job["spec"].get("completionMode") == "Indexed":
        index = str(made % job["spec"].get("completions", 1))
        labels["batch.kubernetes.io/job-completion-index"] = index
        prefix += f"{index}-"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": prefix, "namespace": meta["namespace"], "labels": labels,
                         "annotations": (template.get("metadata") or {}).get("annotations", {}),
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                              "uid": meta["uid"], "controller": True,
                                              "blockOwnerDeletion": True}]},
            "spec": {**template["spec"], "schedulerName": "default-scheduler"},
            "status": {"phase": "Pending", "qosClass": "Burstable" if requests({"spec": template["spec"]}) else "BestEffort"}}


def owned_pods(cluster, job: dict) -> list[dict]:
    uid = job["metadata"]["uid"]
    return sorted((p for p in cluster.pods.values()
                   if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences", []))),
                  key=lambda p: p["metadata"]["creationTimestamp"])


def pods_by_owner(cluster) -> dict[str, list[dict]]:
    """The pods of each owner's uid, oldest first (one pass over the pods for every Job)."""
    owned: dict[str, list[dict]] = {}
    for pod in sorted(cluster.pods.values(), key=lambda p: p["metadata"]["creationTimestamp"]):
        for owner in pod["metadata"].get("ownerReferences", []):
            owned.setdefault(owner.get("uid"), []).append(pod)
    return owned


def _finished(job: dict) -> bool:
    return any(c["type"] in ("Complete", "Failed") and c["status"] == "True"
               for c in job["status"].get("conditions", []))


class JobController:
    def __init__(self, clock: RealClock | None = None) -> None:
        self.clock = clock or RealClock()
        self.pods_made: dict[str, int] = {}
        """Pods made per Job uid: the index a disruption scenario names a pod by."""
        self.started: dict[str, float] = {}
        self.counted: dict[str, dict[str, set[str]]] = {}
        """Per Job uid, the uids of its pods counted ``failed`` and ``succeeded`` (pods may be gone)."""
        self.backoff_seconds = 0.0
        """The first delay before a failed pod is replaced, doubled with each failure up to ten
        minutes (the real controller's is 10 s; ignored failures such as preemptions count too)."""
        self.failures: dict[str, tuple[set[str], float]] = {}
        """Per Job uid, its failed pods (counted or ignored) and when the last one was seen."""
        self.tracked: set[str] = set()
        """The uids of the terminated pods the controller has seen (counted, or ignored): the real
        one then takes their ``batch.kubernetes.io/job-tracking`` finalizer off, so a pod deleted
        meanwhile (a preempted one) goes only once it has been seen (:meth:`seen`)."""
        self.expires: dict[str, float] = {}
        """Per finished Job's uid with a ``ttlSecondsAfterFinished``, when it is deleted."""
        self.released: dict[str, set[str]] = {}
        """Per Job uid, its pods deleted as it was suspended: the Job no longer counts them."""
        self.refusals: dict[str, tuple[int, float]] = {}
        """Per Job uid whose last pod create the API server refused, how many it refused in a row
        and when the last: the real controller syncs such a Job again after its queue's back-off
        (``DefaultJobApiBackOff`` 1 s, doubled up to ``MaxJobApiBackOff``, 60 s), and forgets it
        once a sync succeeds."""

    def step(self, cluster) -> None:
        """One sync of every Job (the cluster's lock held) but those another controller manages
        (``spec.managedBy``: ``syncJob`` skips them, and their pods and status are that
        controller's to make); the TTL of a finished one runs whoever finished it."""
        owned = pods_by_owner(cluster)
        for job in list(cluster.jobs.values()):
            if _finished(job):
                self._expire(cluster, job)
            elif job["spec"].get("managedBy", JOB_CONTROLLER) == JOB_CONTROLLER:
                self._sync(cluster, job, owned.get(job["metadata"]["uid"], []))

    def _sync(self, cluster, job: dict, owned: list[dict]) -> None:
        """Count the Job's pods that ended, decide its end (:meth:`_verdict`) or keep its pods up
        to its parallelism (or, suspended, delete them), then write its status (:mod:`kube_standin.job_status`)."""
        status, uid = job["status"], job["metadata"]["uid"]
        before = snapshot(status)
        suspended = bool(job["spec"].get("suspend"))
        released = self.released.setdefault(uid, set())
        pods = [p for p in owned if p["metadata"]["uid"] not in released]
        if not suspended:
            self._start(job)
        counted = self.counted.setdefault(uid, {"failed": set(), "succeeded": set()})
        fail_job = self._count(job, pods, counted)
        live = [p for p in pods if job_status.active(p)]
        ended = job_status.interim(job) or self._verdict(job, counted, fail_job, suspended, live)
        made: list[dict] = []
        if ended is not None:
            self._end(cluster, job, live, counted, ended)
        elif suspended:
            self._suspend(cluster, job, live, released)
        else:
            made = self._replace(cluster, job, [p for p in pods if p["status"].get("phase") not in job_status.TERMINAL
                                                and not failed(job, p)], len(counted["succeeded"]))
        kept = [p for p in owned if cluster.pods.get((p["metadata"]["namespace"], p["metadata"]["name"])) is p]
        job_status.write_counts(status, [*kept, *made], len(counted["succeeded"]), len(counted["failed"]))
        if ended is not None:
            self._finish(job, kept, ended)
        if status != before:
            cluster.modified("jobs", job)

    def _count(self, job: dict, pods: list[dict], counted: dict[str, set[str]]) -> str | None:
        """Count the Job's pods that ended (a failed one as its ``podFailurePolicy`` says); the
        message of a ``FailJob`` rule one matched, if one did."""
        fail_job = None
        for pod in pods:
            if pod["status"].get("phase") == "Succeeded" and pod["metadata"]["uid"] not in counted["failed"]:
                self.tracked.add(pod["metadata"]["uid"])
                counted["succeeded"].add(pod["metadata"]["uid"])
            elif failed(job, pod) and pod["metadata"]["uid"] not in counted["succeeded"]:
                self._failed(job["metadata"]["uid"], pod)
                action, message = failure_action(job, pod)
                if action != "Ignore":
                    counted["failed"].add(pod["metadata"]["uid"])
                fail_job = message if action == "FailJob" else fail_job
        return fail_job

    def _verdict(self, job: dict, counted: dict[str, set[str]], fail_job: str | None, suspended: bool,
                 live: list[dict]) -> tuple[str, str, str] | None:
        """The Job's end, as ``syncJob`` decides it in its order: a ``FailJob`` rule matched, more
        counted failures than ``backoffLimit``, past ``activeDeadlineSeconds``, then its
        completions reached with no pod active (without ``completions``, one pod succeeded and
        none active); None while it runs."""
        spec = job["spec"]
        deadline = None if suspended else _go_seconds(spec.get("activeDeadlineSeconds"))
        started = self.started.get(job["metadata"]["uid"], 0.0)
        if deadline is not None:
            self.clock.wake_at(started + deadline)
        succeeded, completions = len(counted["succeeded"]), spec.get("completions")
        if fail_job is not None:
            return "FailureTarget", "PodFailurePolicy", fail_job
        if len(counted["failed"]) > spec.get("backoffLimit", 6):
            return "FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        if deadline is not None and self.clock.time() - started >= deadline:
            return "FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline"
        if not live and (succeeded > 0 if completions is None else succeeded >= completions):
            return "SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"
        return None

    def _end(self, cluster, job: dict, live: list[dict], counted: dict[str, set[str]],
             ended: tuple[str, str, str]) -> None:
        """Write the interim condition of the Job's end; a failed Job's active pods are deleted,
        and count as failed."""
        kind, reason, message = ended
        if kind == "FailureTarget":
            for pod in live:
                counted["failed"].add(pod["metadata"]["uid"])
                cluster.delete_pod(pod)
        if job_status.interim(job) is None:
            job_status.add_condition(job, kind, reason, message, self.clock.stamp())
            cluster.modified("jobs", job)

    def _finish(self, job: dict, kept: list[dict], ended: tuple[str, str, str]) -> None:
        """The terminal condition after the interim one, once no pod of the Job is terminating;
        ``completionTime`` with ``Complete``."""
        if any(job_status.terminating(p) for p in kept):
            return
        kind, reason, message = ended
        stamp = self.clock.stamp()
        job_status.add_condition(job, job_status.INTERIM[kind], reason, message, stamp)
        if kind == "SuccessCriteriaMet":
            job["status"].setdefault("completionTime", stamp)

    def _start(self, job: dict) -> None:
        """Start the Job's clock at its first sync not suspended; a resumed Job's starts again
        (its ``Suspended`` condition turned ``False``, ``JobResumed``)."""
        status, uid = job["status"], job["metadata"]["uid"]
        resumed = job_status.set_suspended(job, "False", "JobResumed", "Job resumed", self.clock.stamp())
        if resumed or "startTime" not in status:
            status["startTime"] = self.clock.stamp()
            self.started[uid] = self.clock.time()
        self.started.setdefault(uid, self.clock.time())

    def _suspend(self, cluster, job: dict, live: list[dict], released: set[str]) -> None:
        """Delete the suspended Job's active pods (no longer its to count) and say it is suspended."""
        for pod in live:
            released.add(pod["metadata"]["uid"])
            cluster.delete_pod(pod)
        job_status.set_suspended(job, "True", "JobSuspended", "Job suspended", self.clock.stamp())

    def seen(self, cluster, pod: dict) -> bool:
        """Whether the terminated pod was seen by the controller of its Job, was released by it
        (deleted as its Job was suspended), or has no Job to be seen by: the real controller takes the tracking finalizer off a pod whose Job is gone
        (``syncOrphanPod``), so a Job deleted before it counted the pod does not keep it."""
        if pod["metadata"]["uid"] in self.tracked or any(pod["metadata"]["uid"] in r for r in self.released.values()):
            return True
        owners = {o.get("uid") for o in pod["metadata"].get("ownerReferences", []) if o.get("kind") == "Job"}
        return not any(job["metadata"]["uid"] in owners for job in cluster.jobs.values())

    def _failed(self, uid: str, pod: dict) -> None:
        self.tracked.add(pod["metadata"]["uid"])
        failed = self.failures.get(uid, (set(), 0.0))[0]
        if pod["metadata"]["uid"] not in failed:
            self.failures[uid] = (failed | {pod["metadata"]["uid"]}, self.clock.monotonic())

    def _backing_off(self, uid: str) -> bool:
        failed, last = self.failures.get(uid, (set(), 0.0))
        delay = min(self.backoff_seconds * 2 ** (len(failed) - 1), 600.0) if failed else 0.0
        self.clock.wake_at(last + delay)
        return self.clock.monotonic() - last < delay

    def _replace(self, cluster, job: dict, active: list[dict], succeeded: int) -> list[dict]:
        """Make pods up to the Job's parallelism (what is left of its completions; a Job without
        ``completions`` makes none once one of its pods succeeded), once the back-off after the last
        failure has passed; the pods made. The ``active`` pods count, terminating ones included
        under ``podReplacementPolicy: Failed``, where a pod is replaced only once it has failed
        (:func:`~kube_standin.pod_failures.failed`)."""
        uid, spec = job["metadata"]["uid"], job["spec"]
        if self._backing_off(uid) or self._refused_lately(uid):
            return []
        completions = spec.get("completions")
        wanted = spec.get("parallelism", 1) if completions is None else min(spec.get("parallelism", 1),
                                                                             completions - succeeded)
        made: list[dict] = []
        while len(active) + len(made) < wanted and not (completions is None and succeeded):
            try:
                made.append(cluster.add_pod(new_pod(job, self.pods_made.get(uid, 0)), self.pods_made.get(uid, 0)))
            except Forbidden as refused:
                cluster.record_event(job, "Warning", "FailedCreate", f"Error creating: {refused}", "job-controller")
                self.refusals[uid] = (self.refusals.get(uid, (0, 0.0))[0] + 1, self.clock.monotonic())
                self._refused_lately(uid)  # the clock wakes when the back-off has passed
                return made
            self.refusals.pop(uid, None)
            self.pods_made[uid] = self.pods_made.get(uid, 0) + 1
        return made

    def _refused_lately(self, uid: str) -> bool:
        """Whether the Job's last pod create was refused less than its back-off ago (:attr:`refusals`)."""
        if uid not in self.refusals:
            return False
        count, last = self.refusals[uid]
        due = last + min(2.0 ** (count - 1), 60.0)
        self.clock.wake_at(due)
        return self.clock.monotonic() < due

    def _expire(self, cluster, job: dict) -> None:
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        uid = job["metadata"]["uid"]
        if uid not in self.expires:
            finished = next(c["lastTransitionTime"] for c in job["status"]["conditions"]
                            if c["type"] in ("Complete", "Failed"))
            self.expires[uid] = _seconds(finished) + ttl
            self.clock.wake_at(self.expires[uid])
        if self.clock.time() >= self.expires[uid]:
            cluster.remove_job(job["metadata"]["namespace"], job["metadata"]["name"], "Foreground")

