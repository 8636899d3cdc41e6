"""A pod's init containers on its kubelet (:class:`PodInits`, of :class:`kube_standin.kubelet.Kubelets`).

As a kubelet runs them (``kuberuntime_container.go``, ``computeInitContainerActions``): in their
order, each once the one before it has completed, before any of the pod's containers, which wait
``PodInitializing`` meanwhile while the pod stays ``Pending``. Each pulls its image first: an
image the registry has not holds the pod there with the init container waiting ``ErrImagePull``
then ``ImagePullBackOff`` (``Init:ImagePullBackOff``, as kubectl shows it), for ever. An init
container that exits other than 0 fails the pod under ``restartPolicy: Never`` (``Init:Error``):
its containers never start, and its Job counts the failure; under ``OnFailure`` it runs again
after a back-off (10 s, doubled up to 300 s). A native sidecar (an init container with
``restartPolicy: Always``) only starts, and the next one goes on at once. An init container's
log is kept once it ended, and the API serves it by the container's name.
"""

from __future__ import annotations

from kube_standin import claims
from kube_standin.containers import exec_refusal, kill
from kube_standin.environment import Unresolved, environment
from kube_standin.image_refs import invalid_image_message
from kube_standin.logs import Capture, Line
from kube_standin.pod_runs import Run, set_condition, set_init_status

RESTART_BACKOFF = (10.0, 300.0)
"""The kubelet's crash-loop back-off: its first wait, and the most it doubles to."""


FALLBACK_LINES, FALLBACK_BYTES = 80, 2048
"""What the kubelet keeps of a failed container's log as its termination message under
``terminationMessagePolicy: FallbackToLogsOnError`` (its last lines, at most so many bytes)."""


def fallback_message(lines: list[Line]) -> str:
    """The last lines of a log as the kubelet's termination message."""
    tail = b"".join(line.data + (b"\n" if line.complete else b"") for line in lines[-FALLBACK_LINES:])
    return tail[-FALLBACK_BYTES:].decode(errors="replace")


class PodInits:
    """The init containers of pods, for the kubelets' state."""

    def _initializing(self, cluster, pod: dict, run: Run) -> bool:
        """Whether the pod's init containers still hold its containers back: one waits for its
        image or its environment, runs, or failed the pod."""
        inits = pod["spec"].get("initContainers") or []
        while run.init_done < len(inits):
            container = inits[run.init_done]
            if run.init_process is None and not self._init_start(cluster, pod, run, container):
                return True
            if run.init_process is None:
                run.init_done += 1
                continue
            assert run.init_log is not None
            code = run.init_process.poll()
            if code is None:
                run.init_log.read()
                return True
            if not self._init_exited(cluster, pod, run, container, code):
                return True
        return False

    def _init_start(self, cluster, pod: dict, run: Run, container: dict) -> bool:
        """Start the init ``container`` once its image is pulled and its environment made; False
        while it waits (its status says why). A native sidecar starts with no process of its own."""
        now = self.clock.monotonic()
        name, image = container["name"], container.get("image", "")
        invalid = invalid_image_message(image) if image else None
        waiting = None
        if run.init_retry_at is not None and now < run.init_retry_at:
            return False
        if invalid is not None:
            waiting = {"reason": "InvalidImageName", "message": invalid}
        elif now - run.creating_since < self.image_pull_seconds:
            return False
        elif image in self.missing_images:
            waiting = self._pull_waiting(run, image)
        else:
            try:
                env = environment(cluster, pod, container)
            except Unresolved as unresolved:
                waiting = {"reason": "CreateContainerConfigError", "message": str(unresolved)}
        if waiting is not None:
            self._init_waiting(cluster, pod, name, waiting)
            return False
        folder = container.get("workingDir")
        if folder and not folder.startswith("/"):
            self._init_start_error(cluster, pod, name, f"runc create failed: cwd {folder!r} is not an absolute path")
            return False
        run.pull_retry_at, run.pull_backoff, run.init_retry_at = None, 0.0, None
        started = {"running": {"startedAt": self.clock.stamp()}}
        if container.get("restartPolicy") != "Always":
            run.init_log = Capture(self.logs_dir / f"{pod['metadata']['namespace']}.{pod['metadata']['name']}.{name}.log",
                                   self.clock)
            try:
                run.init_process = self.containers.start(pod, run.init_log.output, env, container,
                                                         mounts=claims.mounts(cluster, pod, container))
            except OSError as exc:
                self._init_start_error(cluster, pod, name, exec_refusal(container, exc))
                return False
            cluster.processes.append(run.init_process)
        set_init_status(pod, name, started)
        cluster.modified("pods", pod)
        return True

    def _init_start_error(self, cluster, pod: dict, name: str, refusal: str) -> None:
        """The OCI runtime cannot start the init container ``name`` (runc's ``refusal``: a
        relative ``workingDir``, a command it cannot execute): containerd reports it terminated,
        ``StartError`` with exit code 128, and under ``restartPolicy: Never`` the pod fails;
        otherwise its kubelet tries it again and again, the init container waiting in
        ``CrashLoopBackOff``."""
        message = ("failed to create containerd task: failed to create shim task: OCI runtime create failed: "
                   f"{refusal}: unknown")
        if pod["spec"].get("restartPolicy") != "Never":
            self._init_waiting(cluster, pod, name, {"reason": "CrashLoopBackOff", "message": message})
            return
        self._init_failed(cluster, pod, name, {"terminated": {
            "exitCode": 128, "reason": "StartError", "message": message, "startedAt": "1970-01-01T00:00:00Z",
            "finishedAt": self.clock.stamp()}})
        cluster.modified("pods", pod)

    def _init_waiting(self, cluster, pod: dict, name: str, waiting: dict) -> None:
        """The init container ``name`` waits, for the ``reason`` and ``message`` of ``waiting``."""
        held = next(s for s in pod["status"]["initContainerStatuses"] if s["name"] == name)
        if held["state"] != {"waiting": waiting}:
            set_init_status(pod, name, {"waiting": waiting})
            cluster.modified("pods", pod)

    def _init_exited(self, cluster, pod: dict, run: Run, container: dict, code: int) -> bool:
        """The running init ``container`` exited with ``code``: the next one may go on (True), or
        it failed, and the pod with it, or it runs again after a back-off (False)."""
        assert run.init_log is not None and run.init_process is not None
        run.init_log.read(final=True)
        run.init_logs[container["name"]] = run.init_log.lines
        started = next(s for s in pod["status"]["initContainerStatuses"] if s["name"] == container["name"])
        ended = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                "startedAt": started["state"]["running"]["startedAt"], "finishedAt": self.clock.stamp()}}
        if code != 0 and container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            ended["terminated"]["message"] = fallback_message(run.init_logs[container["name"]])
        run.init_process, run.init_log = None, None
        if code == 0:
            set_init_status(pod, container["name"], ended)
            run.init_done += 1
        elif pod["spec"].get("restartPolicy") == "OnFailure":
            restarts = started["restartCount"] + 1
            backoff = min(RESTART_BACKOFF[0] * 2 ** (restarts - 1), RESTART_BACKOFF[1])
            run.init_retry_at = self.clock.monotonic() + backoff
            self.clock.wake_at(run.init_retry_at)
            set_init_status(pod, container["name"], {"waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {backoff:g}s restarting failed container={container['name']} pod="
                           f"{pod['metadata']['name']}_{pod['metadata']['namespace']}({pod['metadata']['uid']})"}},
                restarts, ended)
        else:
            self._init_failed(cluster, pod, container["name"], ended)
        cluster.modified("pods", pod)
        return code == 0

    def _init_failed(self, cluster, pod: dict, name: str, ended: dict) -> None:
        """The init container ``name`` ``ended`` other than 0 under ``restartPolicy: Never``: the
        pod fails, its containers never started."""
        set_init_status(pod, name, ended)
        pod["status"]["phase"] = "Failed"
        stamp = self.clock.stamp()
        set_condition(pod, "Initialized", "False", stamp, "ContainersNotInitialized",
                      f"containers with incomplete status: [{name}]")
        for kind in ("ContainersReady", "Ready"):
            set_condition(pod, kind, "False", stamp, "PodFailed")
        self.finished_at[pod["metadata"]["uid"]] = self.clock.monotonic()

    def stop_init(self, run: Run) -> None:
        """Kill the init container that runs, if one does, and drop its log file."""
        if run.init_process is not None:
            kill(run.init_process)
        if run.init_log is not None:
            run.init_log.output.unlink(missing_ok=True)

    def init_log_of(self, pod: dict, name: str) -> list[Line]:
        """The log of the pod's init container ``name`` so far: kept once it ended, else read now."""
        run = self.runs.get(pod["metadata"]["uid"])
        if run is None:
            return []
        if name in run.init_logs:
            return run.init_logs[name]
        inits = pod["spec"].get("initContainers") or []
        if run.init_log is not None and run.init_done < len(inits) and inits[run.init_done]["name"] == name:
            run.init_log.read()
            return run.init_log.lines
        return []
