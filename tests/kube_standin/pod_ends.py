"""How a pod's run ends on its kubelet (:class:`PodEnds`, of :class:`kube_standin.kubelet.Kubelets`):
its container exits (and, under ``restartPolicy: OnFailure``, other than 0, is run again in
place: :meth:`PodEnds.restart`), is disrupted (a scenario's, or its node going away), runs short of memory
or disk, or is killed (or stopped gracefully: :mod:`kube_standin.pod_stops`); a pod deleted
stops its container and loses its log; and the pod GC deletes terminated pods.
"""

from __future__ import annotations

from kube_standin.containers import exit_code, kill
from kube_standin.logs import Line
from kube_standin.pod_inits import fallback_message
from kube_standin.pod_runs import Run, container_id, set_condition, set_statuses
from kube_standin.pod_stops import KILLED, STOPPED, grace_of

DISRUPTION_MESSAGES = {
    "PreemptionByScheduler": "default-scheduler: preempting to accommodate a higher priority pod",
    "DeletionByTaintManager": "Taint manager: deleting due to NoExecute taint",
    "TerminationByKubelet": "Pod was terminated in response to imminent node shutdown.",
    "EvictionByEvictionAPI": "Eviction API: evicting",
    "DeletionByPodGC": "PodGC: node no longer exists",
}
KUBELET_REASONS = {"TerminationByKubelet": "Terminated"}
"""The ``status.reason`` of a pod its kubelet disrupted: killed as its node shut down."""
DELETING = frozenset({"PreemptionByScheduler", "EvictionByEvictionAPI", "DeletionByTaintManager", "DeletionByPodGC"})
"""Disruptions whose controller deletes the pod after marking it, as the real ones do: the
scheduler's preemption (``preemption.go``, ``util.DeletePod``), the Eviction API
(``eviction.go``, ``addConditionAndDeletePod``), the taint manager (``taint_eviction.go``) and
the pod GC (``gc_controller.go``, ``gcOrphaned``). A Job's pod goes once its Job controller has
seen it failed (its tracking finalizer holds it until then): nothing is left to count later."""
LOST = {"exitCode": 137, "reason": "ContainerStatusUnknown",
        "message": "The container could not be located when the pod was terminated"}
"""The ``terminated`` state the kubelet writes of a container it had seen running and can no
longer find (``convertToAPIContainerStatuses``, pkg/kubelet/kubelet_pods.go: "this code
indicates an error")."""


class PodEnds:
    """The ends of pods' runs, and the pod GC, for the kubelets' state."""

    def disrupt(self, cluster, pod: dict, reason: str, grace: float | None = None) -> None:
        """Mark the pod with the ``DisruptionTarget`` condition and stop it; a pod its kubelet
        ends (its node shutting down) says so in ``status.reason`` too, and its containers are
        stopped by its kubelet in ``grace`` seconds (the node's shutdown grace for its pods, at
        most the pod's own), the pod failed whatever they exit with. One disrupted by a controller
        that deletes it (:data:`DELETING`) is deleted: ``Terminating`` while its containers stop
        in its grace period (:mod:`kube_standin.pod_stops`), then ended as they exited, and gone
        once its Job controller has seen it. Where its node is gone (no kubelet, no VM) its
        containers are gone with it: the pod fails at once. A pod stopping for an earlier
        disruption keeps that one's condition (the cluster autoscaler removes a node it drained
        once its pods stopped: the stand-in removes it at once, and ends them then)."""
        message = DISRUPTION_MESSAGES.get(reason, reason)
        marked = any(c["type"] == "DisruptionTarget" for c in pod["status"].get("conditions", []))
        if self.disruption_conditions and not marked:
            set_condition(pod, "DisruptionTarget", "True", self.clock.stamp(), reason, message)
        if reason in KUBELET_REASONS:
            pod["status"].update(reason=KUBELET_REASONS[reason], message=message)
        if pod["spec"].get("nodeName") not in cluster.nodes:
            self.kill(cluster, pod)
        if reason in DELETING:
            self.deleting.add(pod["metadata"]["uid"])
            cluster.delete_pod(pod)
        elif pod["status"].get("phase") not in ("Succeeded", "Failed"):
            self.terminate(cluster, pod, min(grace_of(pod), grace) if grace is not None else None, failed=True)

    def lose(self, cluster, pod: dict) -> None:
        """The pod's kubelet lost its containers: its node's VM stopped and came back under the
        same name before the kubelet could tell the API (a GKE spot VM preempted, its graceful
        shutdown cut short, and recreated by its instance group; a crash), and the kubelet, started
        again, finds none of the containers the API says run, nor their log files. It fails the
        pod with each container :data:`LOST`, and no ``status.reason`` and no ``DisruptionTarget``
        condition: a failure a ``podFailurePolicy`` cannot tell from the trial's own exit 137."""
        run = self.runs.get(pod["metadata"]["uid"])
        if run is not None:
            self.stop_init(run)
        if run is not None and run.process is not None:
            kill(run.process)
        stamp = self.clock.stamp()
        pod["status"]["phase"] = "Failed"
        set_statuses(pod, {"terminated": dict(LOST)}, ready=False)
        for kind in ("ContainersReady", "Ready"):
            set_condition(pod, kind, "False", stamp, "PodFailed")
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        cluster.logs[key] = []
        cluster.lost_logs.add(key)
        self.finished_at[pod["metadata"]["uid"]] = self.clock.monotonic()
        cluster.modified("pods", pod)

    def exhaust(self, cluster, pod: dict, resource: str) -> None:
        """The pod's container uses more ``resource`` (one of :data:`kube_standin.pod_runs.RESOURCES`) than it may.
        Over its own memory limit, the kernel kills it (``OOMKilled``, 137); over its own
        ephemeral-storage limit, the kubelet evicts the pod with no condition: failures the Job
        counts. An eviction stops the pod as a hard eviction threshold does: with no grace
        period but the runtime's minimum (:mod:`kube_standin.pod_stops`). With no limit it takes
        its node's, and the kubelet's node-pressure eviction fails the pod ``Evicted`` with
        ``DisruptionTarget`` (``TerminationByKubelet``), which the Job's ``podFailurePolicy`` may
        ignore: its replacement runs into the same pressure."""
        container = pod["spec"]["containers"][0]
        resources = container.get("resources") or {}
        limit = resources.get("limits", {}).get(resource)
        run = self.runs[pod["metadata"]["uid"]]
        if limit is not None and resource == "memory":
            kill(run.process)
            self._end(cluster, pod, run, "Failed", 137, "OOMKilled")
            return
        if limit is not None:
            message = f'Container {container["name"]} exceeded its local ephemeral storage limit "{limit}". '
        else:
            request = resources.get("requests", {}).get(resource, "0")
            message = (f"The node was low on resource: {resource}. Threshold quantity: 100Mi, available: 0. "
                       f"Container {container['name']} was using 14Gi, request is {request}, has larger "
                       f"consumption of {resource}. ")
            if self.disruption_conditions:
                set_condition(pod, "DisruptionTarget", "True", self.clock.stamp(), "TerminationByKubelet", message)
        pod["status"].update(reason="Evicted", message=message)
        self.terminate(cluster, pod, 0.0, failed=True)

    def kill(self, cluster, pod: dict) -> None:
        """Kill the pod's containers (or the init container running), if they run, and fail the
        pod: no SIGTERM first, as where their node is gone."""
        run = self.runs.get(pod["metadata"]["uid"])
        if run is not None:
            self.stop_init(run)
        if run is not None and run.process is not None:
            kill(run.process)
            code = exit_code(run.process.wait() or 0)
            self._end(cluster, pod, run, "Failed", code, "Completed" if code == 0 else "Error", others=KILLED)
        else:
            pod["status"]["phase"] = "Failed"
            self.finished_at[pod["metadata"]["uid"]] = self.clock.monotonic()
            cluster.modified("pods", pod)

    def _end(self, cluster, pod: dict, run: Run, phase: str, code: int, reason: str,
             others: dict | None = None) -> None:
        """The first container's end with ``code``, or with the pod's other containers stopped
        with it, ending as ``others`` says (:data:`~kube_standin.pod_stops.KILLED`,
        :data:`~kube_standin.pod_stops.STOPPED`). Otherwise the pod's other containers (sidecars:
        an Istio proxy, a Vault agent) run on after it, as a kubelet runs them: the pod stays
        ``Running``, not ready, until they are stopped with it (it is deleted or disrupted), so
        its Job counts no end (kubernetes/kubernetes#73118). With no other container, the pod
        ends in ``phase``; its native sidecars (init containers with ``restartPolicy: Always``)
        are stopped then, exiting 0, or as ``others`` says."""
        stamp = self.clock.stamp()
        if run.ended is None:
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            if run.log is not None:
                run.log.read(final=True)
            cluster.logs[key] = run.log.lines if run.log is not None else []
            run.ended = {"terminated": {"exitCode": code, "reason": reason, "startedAt": run.started_at,
                                        "finishedAt": stamp}}
            if code != 0 and pod["spec"]["containers"][0].get("terminationMessagePolicy") == "FallbackToLogsOnError":
                run.ended["terminated"]["message"] = fallback_message(cluster.logs[key])
        times = {"startedAt": run.started_at, "finishedAt": stamp}
        if len(pod["spec"]["containers"]) > 1 and others is None:
            set_statuses(pod, run.ended, ready=True, others={"running": {"startedAt": run.started_at}})
            unready = f"containers with unready status: [{pod['spec']['containers'][0]['name']}]"
            for kind in ("ContainersReady", "Ready"):
                set_condition(pod, kind, "False", stamp, "ContainersNotReady", unready)
            cluster.modified("pods", pod)
            return
        pod["status"]["phase"] = phase
        set_statuses(pod, run.ended, ready=False, others={"terminated": {**(others or STOPPED), **times}})
        for kind in ("ContainersReady", "Ready"):
            set_condition(pod, kind, "False", stamp, "PodCompleted")
        self.finished_at[pod["metadata"]["uid"]] = self.clock.monotonic()
        cluster.modified("pods", pod)

    def restart(self, cluster, pod: dict, run: Run, code: int) -> None:
        """The first container exited with ``code`` (not 0) under ``restartPolicy: OnFailure``:
        the kubelet runs it again in place after its crash-loop back-off (10 s, doubled up to
        300 s: ``restart_backoff``), the pod staying ``Running``, not ready. Its status counts the restart
        (``restartCount``) and keeps the run that ended as ``lastState.terminated``; of its log,
        the runtime keeps the run that ended beside the new one's (``previous``), and only that
        one: the one before goes (the kubelet keeps a container's last dead instance only)."""
        assert run.log is not None
        run.log.read(final=True)
        run.previous_log = run.log.lines
        held = next(s for s in pod["status"]["containerStatuses"] if s["name"] == pod["spec"]["containers"][0]["name"])
        restarts = held["restartCount"] + 1
        ended = {"exitCode": code, "reason": "Error", "startedAt": run.started_at, "finishedAt": self.clock.stamp()}
        if pod["spec"]["containers"][0].get("terminationMessagePolicy") == "FallbackToLogsOnError":
            ended["message"] = fallback_message(run.log.lines)
        first, most = self.restart_backoff
        backoff = min(first * 2 ** (restarts - 1), most)
        run.process, run.log, run.restart_at = None, None, self.clock.monotonic() + backoff
        self.clock.wake_at(run.restart_at)
        name = held["name"]
        set_statuses(pod, {"waiting": {"reason": "CrashLoopBackOff", "message": (
            f"back-off {backoff:g}s restarting failed container={name} pod="
            f"{pod['metadata']['name']}_{pod['metadata']['namespace']}({pod['metadata']['uid']})")}}, ready=False)
        held = next(s for s in pod["status"]["containerStatuses"] if s["name"] == name)
        held.update(restartCount=restarts, containerID=container_id(pod, name, restarts - 1),
                    lastState={"terminated": {**ended, "containerID": container_id(pod, name, restarts - 1)}})
        for kind in ("ContainersReady", "Ready"):
            set_condition(pod, kind, "False", self.clock.stamp(), "ContainersNotReady",
                          f"containers with unready status: [{name}]")
        cluster.modified("pods", pod)

    def previous_log_of(self, pod: dict) -> list[Line]:
        """The log of the first container's run before its current one (:meth:`restart`)."""
        run = self.runs.get(pod["metadata"]["uid"])
        return run.previous_log if run is not None else []

    def stop(self, pod: dict) -> None:
        """The pod is deleted: its containers (or the init container running) are killed and their logs go."""
        run = self.runs.pop(pod["metadata"]["uid"], None)
        self.tried.pop(pod["metadata"]["uid"], None)
        self.finished_at.pop(pod["metadata"]["uid"], None)
        self.deleting.discard(pod["metadata"]["uid"])
        if run is not None:
            self.stop_init(run)
        if run is not None and run.process is not None:
            kill(run.process)
        if run is not None and run.log is not None:
            run.log.output.unlink(missing_ok=True)

    def _collect(self, cluster, pod: dict) -> None:
        """Pod GC: a terminated pod goes ``pod_gc_seconds`` after it ended; one whose node is gone, at once;
        one its disruption deletes (:data:`DELETING`), once its Job controller has seen it."""
        ended = self.finished_at.setdefault(pod["metadata"]["uid"], self.clock.monotonic())
        node = pod["spec"].get("nodeName")
        orphan = node is not None and node not in cluster.nodes
        if pod["metadata"]["uid"] in self.deleting and cluster.job_controller.seen(cluster, pod):
            self.deleting.discard(pod["metadata"]["uid"])
            cluster.delete_pod(pod)
            return
        if self.pod_gc_seconds is not None:
            self.clock.wake_at(ended + self.pod_gc_seconds)
        if orphan or (self.pod_gc_seconds is not None and self.clock.monotonic() - ended >= self.pod_gc_seconds):
            cluster.delete_pod(pod)
