"""How a kubelet stops a pod's containers (:class:`PodStops`, of :class:`kube_standin.kubelet.Kubelets`):
gracefully, as ``killPod`` does for a pod deleted through the API (a preemption, an eviction,
``kubectl delete``, its Job's deletion) or ended by its kubelet (its node shutting down, node
pressure).

Each running container is sent SIGTERM (:func:`kube_standin.containers.terminate`: its main
process), and is given the grace period to exit: the pod's ``terminationGracePeriodSeconds``
(30 unless set), or what the deletion or the kubelet grants instead (the node's shutdown grace
for its pods, 0 for a hard eviction), never less than the runtime's minimum of 2 seconds
(``minimumGracePeriodInSeconds``, kuberuntime_container.go). Those still running then are
killed (SIGKILL, 137). A container that exited in time reports its own code: 0
(``Completed``) for one that handled SIGTERM and exited cleanly, 143 (``Error``) for one
SIGTERM ended. The pod's other containers (modelled sidecars) end with it: with 0, as an Istio
proxy or a Vault agent exits on SIGTERM, or with the code their image gives
(:attr:`kube_standin.kubelet.Kubelets.sidecar_term_codes`: Cloud SQL Auth Proxy v2's 143, say).
The pod then ends in the phase its regular containers give it (``Succeeded`` when every one
exited 0, else ``Failed``; a native sidecar's code counts for nothing), or, ended by its
kubelet, in ``Failed`` whatever they gave, as the kubelet's eviction and shutdown managers set it.
"""

from __future__ import annotations

from kube_standin.containers import exit_code, kill, terminate
from kube_standin.pod_runs import Run

DEFAULT_GRACE_SECONDS = 30.0
"""A pod's ``terminationGracePeriodSeconds`` unless it sets one."""
MIN_GRACE_SECONDS = 2.0
"""The least a container runtime gives a container between SIGTERM and SIGKILL."""
STOPPED = {"exitCode": 0, "reason": "Completed"}
"""How a modelled sidecar ends once sent SIGTERM."""
KILLED = {"exitCode": 137, "reason": "Error"}
"""How a container ends once killed."""


def first(pod: dict) -> str:
    """The name of the pod's container that runs the command."""
    return pod["spec"]["containers"][0]["name"]


def grace_of(pod: dict) -> float:
    """The pod's own grace period (``terminationGracePeriodSeconds``)."""
    return float(pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS))


class PodStops:
    """The graceful stops of pods' containers, for the kubelets' state."""

    def stoppable(self, pod: dict) -> bool:
        """Whether the pod has a container (or init container) running for its kubelet to stop."""
        run = self.runs.get(pod["metadata"]["uid"])
        return run is not None and pod["status"].get("phase") not in ("Succeeded", "Failed") and (
            run.process is not None or run.init_process is not None)

    def terminate(self, cluster, pod: dict, grace: float | None = None, failed: bool = False) -> None:
        """Stop the pod's containers: SIGTERM now, SIGKILL to those still running once ``grace``
        seconds (the pod's own unless given; at least :data:`MIN_GRACE_SECONDS`) are over. The
        pod ends then (:meth:`stopping`), ``failed`` whatever its containers exit with, where its
        kubelet ends it. A pod with nothing running fails at once. A stop already under way keeps
        its SIGKILL's moment, unless this one's comes earlier (a deletion's shorter grace)."""
        run = self.runs.get(pod["metadata"]["uid"])
        if run is None or not self.stoppable(pod):
            self.kill(cluster, pod)
            return
        seconds = max(grace_of(pod) if grace is None else grace, MIN_GRACE_SECONDS)
        until = self.clock.monotonic() + seconds
        run.stop_failed = run.stop_failed or failed
        if run.stop_at is not None and run.stop_at <= until:
            return
        run.stop_at = until
        self.clock.wake_at(until)
        for process in (run.process, run.init_process):
            if process is not None:
                terminate(process)

    def stopping(self, cluster, pod: dict, run: Run) -> None:
        """A pass of the kubelet over a pod whose containers it stops: the pod ends once its
        running container exited, or, its grace period over, is killed."""
        process = run.process if run.process is not None else run.init_process
        assert process is not None and run.stop_at is not None
        running = run.ended is None and process.poll() is None
        if running and self.clock.monotonic() < run.stop_at:
            log = run.log if run.process is not None else run.init_log
            if log is not None:
                log.read()
            return
        if running:
            kill(process)
        code = 143 if run.overtaken else exit_code(process.wait() or 0)
        if run.process is None:
            self._init_stopped(cluster, pod, run, code)
            return
        own = run.ended["terminated"]["exitCode"] if run.ended is not None else code
        sidecars = [self.sidecar_term_codes.get(c.get("image", ""), 0) for c in pod["spec"]["containers"][1:]]
        phase = "Failed" if run.stop_failed or own != 0 or any(sidecars) else "Succeeded"
        self._end(cluster, pod, run, phase, code, "Completed" if code == 0 else "Error", others=STOPPED)
        for status in pod["status"]["containerStatuses"]:
            sidecar = self.sidecar_term_codes.get(status["image"], 0) if status["name"] != first(pod) else 0
            if sidecar:
                status["state"]["terminated"].update(exitCode=sidecar, reason="Error")

    def _init_stopped(self, cluster, pod: dict, run: Run, code: int) -> None:
        """The init container that ran as the pod was stopped ended with ``code``: the pod fails,
        its containers never started."""
        assert run.init_log is not None
        run.init_log.read(final=True)
        name = pod["spec"]["initContainers"][run.init_done]["name"]
        run.init_logs[name] = run.init_log.lines
        started = next(s for s in pod["status"]["initContainerStatuses"] if s["name"] == name)
        run.init_process, run.init_log = None, None
        self._init_failed(cluster, pod, name, {"terminated": {
            "exitCode": code, "reason": "Completed" if code == 0 else "Error",
            "startedAt": started["state"]["running"]["startedAt"], "finishedAt": self.clock.stamp()}})
        cluster.modified("pods", pod)
