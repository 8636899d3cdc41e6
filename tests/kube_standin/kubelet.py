"""The scheduler's binding, the kubelets and the pod garbage collector (how pods end, and the
collector, are :mod:`kube_standin.pod_ends`'s).

A Pending pod is bound to the first Ready node it fits, else marked ``PodScheduled=False``
(``Unschedulable``, with the scheduler's summary). A bound pod's container waits in
``ContainerCreating`` for ``image_pull_seconds``, then runs (:mod:`kube_standin.containers`: its
command as a local process, or a simulated run; a container whose image the registry has not
waits in ``ErrImagePull``/``ImagePullBackOff`` for ever, one whose image the kubelet cannot parse
in ``InvalidImageName``, :mod:`kube_standin.image_refs`; one whose env reads a ConfigMap, Secret or
key that is missing, in ``CreateContainerConfigError`` until it is there, :meth:`Kubelets._create`;
one that must not run as root from an image that may, in ``CreateContainerConfigError`` for ever,
:mod:`kube_standin.image_users`)
with its output as the container's log, read as
the container runtime reads it (:mod:`kube_standin.logs`: lines with the time they were read,
readable while the container runs). A pod's first container runs the command; any other is
modelled as a sidecar that runs until it is stopped, as an Istio proxy or a Vault agent does, so
the pod stays ``Running`` after the first one exits (statuses listed by container name, as the
kubelet lists them). A pod's init containers run first, in their order
(:mod:`kube_standin.pod_inits`); a native sidecar (an init container with ``restartPolicy:
Always``) starts among them, runs beside the containers and is stopped once they have ended;
then the pod ends. Under ``restartPolicy: OnFailure`` a first container that exits other than 0
is run again in place instead, after a back-off (:meth:`PodEnds.restart`). A disruption (a scenario's, or the node going away) marks the pod with the
``DisruptionTarget`` condition (and, when its kubelet ends it as its node shuts down,
``status.reason`` ``Terminated``) and stops its containers as a kubelet does: SIGTERM, then
SIGKILL once the grace period is over (:mod:`kube_standin.pod_stops`), or at once where the node
is gone; so is a pod deleted. A
container that runs short of memory or disk (a scenario's) is killed as the kernel and the
kubelet kill it (:meth:`Kubelets.exhaust`).
Terminated pods are deleted ``pod_gc_seconds`` after they end, pods whose node is gone at once,
and pods disrupted by a controller that deletes them (:data:`kube_standin.pod_ends.DELETING`: preemption, eviction)
once their Job controller has seen them; a deleted pod's log is gone with it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

from kube_standin import claims
from kube_standin.clock import RealClock
from kube_standin.containers import Processes, SimulatedContainers, exec_refusal, exit_code, exited
from kube_standin.environment import Unresolved, environment
from kube_standin.image_refs import invalid_image_message
from kube_standin.image_users import non_root_refusal
from kube_standin.logs import MAX_SIZE, Capture, Line
from kube_standin.pod_ends import PodEnds
from kube_standin.pod_inits import RESTART_BACKOFF, PodInits
from kube_standin.pod_runs import RESOURCES, Run, container_status, set_condition, set_statuses
from kube_standin.pod_stops import PodStops
from kube_standin.scheduling import TERMINATED, bound_by_node, misfit, unschedulable_message

EPOCH = "1970-01-01T00:00:00Z"
"""The start time containerd reports of a container that never started."""
SYNC_BACKOFF_SECONDS = 10.0
"""How long after a failed sync the kubelet syncs the pod again (``backOffPeriod``, kubelet.go):
a failed pull's ``ErrImagePull`` shows until then, ``ImagePullBackOff`` after; a container whose
environment could not be made is tried again then."""


class Kubelets(PodEnds, PodInits, PodStops):
    def __init__(self, disruption: Callable[[str, int], tuple[float, bool, str] | None],
                 clock: RealClock | None = None) -> None:
        self.clock = clock or RealClock()
        self.disruption = disruption
        """``(job, pod index)`` to ``(seconds after the container starts at which it is disrupted,
        whether to record it in the cluster's ``disrupted``, the cause: see :attr:`Run.cause`)``,
        or None."""
        self.image_pull_seconds = 0.0
        self.missing_images: set[str] = set()
        """Images the registry has not (its answer 404): a container of one never starts, its
        pod stays ``Pending`` (:meth:`_pull_failed`)."""
        self.image_users: dict[str, str] = {}
        """The ``USER`` of each image's config, as its registry serves it (``10001``, ``10001:10001``,
        ``app``); an image not listed names none and runs as root, as most do (``python``, ``ubuntu``)."""
        self.sidecar_term_codes: dict[str, int] = {}
        """The exit code a modelled sidecar of each image gives on SIGTERM (Cloud SQL Auth Proxy
        v2 exits 143 unless told ``--exit-zero-on-sigterm``); one not listed exits 0, as an Istio
        proxy or a Vault agent does (:mod:`kube_standin.pod_stops`)."""
        self.disruption_conditions = True
        """The ``PodDisruptionConditions`` feature (on from Kubernetes 1.26, GA in 1.31): off, a
        disrupted pod gets no ``DisruptionTarget`` condition, only its kubelet's ``status.reason``."""
        self.pod_gc_seconds: float | None = None
        self.restart_backoff = RESTART_BACKOFF
        """The crash-loop back-off of a container run again in place: its first wait, and the most it doubles to."""
        self.log_max_size = MAX_SIZE
        """The kubelets' ``containerLogMaxSize``, in bytes: a running container's log file is
        rotated once it passes it, and the API serves only the current file (:mod:`kube_standin.logs`)."""
        self.log_look_seconds = 0.0
        """Seconds between the log manager's rotation checks (10 on a kubelet; 0: every step)."""
        self.log_rotation_waits_for_reader = False
        """Opt-in, for tests of a reader racing the rotation (a kubelet rotates on its own schedule,
        whoever reads): a log that passed the size is rotated only once the API served a read
        reaching its last line (:attr:`Capture.waits_for_reader`)."""
        self.on_log_rotation: Callable[[str], None] | None = None
        """For tests: called with the pod's name at each rotation of its container's log."""
        self.on_log_read: Callable[[str, str], None] | None = None
        """For tests: called with the pod's name and its log's last line whenever the API served a
        read of the running container's log that reached that line."""
        self.runs: dict[str, Run] = {}
        """By pod uid."""
        self.finished_at: dict[str, float] = {}
        self.deleting: set[str] = set()
        """The uids of the pods disrupted by one of :data:`kube_standin.pod_ends.DELETING`, deleted once their Job saw them."""
        self.tried: dict[str, tuple] = {}
        """By pod uid, the cluster's state (nodes, pods bound) when the pod last found no node."""
        self.logs_dir = Path(tempfile.mkdtemp(prefix="kube-standin-"))
        self.containers: Processes | SimulatedContainers = Processes(self.logs_dir)
        """What runs the containers (:mod:`kube_standin.containers`)."""

    def step(self, cluster) -> None:
        """One pass of the scheduler, every kubelet and the pod GC (the cluster's lock held)."""
        pods = list(cluster.pods.values())
        bound = bound_by_node(pods, list(cluster.nodes))
        state = (tuple(bound), frozenset(p["metadata"]["uid"] for on in bound.values() for p in on))
        for pod in pods:
            phase = pod["status"].get("phase")
            if phase in TERMINATED:
                self._collect(cluster, pod)
            elif not pod["spec"].get("nodeName"):
                self._schedule(cluster, pod, bound, state)
            elif pod["spec"]["nodeName"] not in cluster.unreachable:  # a stopped VM's kubelet says nothing
                self._run(cluster, pod)

    def _schedule(self, cluster, pod: dict, bound: dict[str, list[dict]], state: tuple) -> None:
        """Bind the pod to the first node it fits, with the scheduler's ``Scheduled`` Event on it
        (``finishBinding``: "Successfully assigned NAMESPACE/POD to NODE"); a pod found
        unschedulable is tried again only once the nodes or what runs on them changed, or each
        pass while a claim it mounts is absent."""
        missing = claims.missing_claim(cluster, pod)
        if missing is None and self.tried.get(pod["metadata"]["uid"]) == state:
            return
        reasons = []
        for name, node in cluster.nodes.items() if missing is None else ():
            why = misfit(pod, node, bound[name])
            if why is None:
                pod["spec"]["nodeName"] = name
                bound[name].append(pod)
                self.tried.pop(pod["metadata"]["uid"], None)
                set_condition(pod, "PodScheduled", "True", self.clock.stamp())
                cluster.modified("pods", pod)
                cluster.record_event(pod, "Normal", "Scheduled", f"Successfully assigned "
                                     f"{pod['metadata']['namespace']}/{pod['metadata']['name']} to {name}",
                                     "default-scheduler")
                return
            reasons.append(why)
        if missing is None:
            self.tried[pod["metadata"]["uid"]] = state
        message = (unschedulable_message(reasons, len(cluster.nodes)) if missing is None else
                   f"0/{len(cluster.nodes)} nodes are available: {missing}. preemption: 0/{len(cluster.nodes)} "
                   "nodes are available: 1 Preemption is not helpful for scheduling.")
        scheduled = next((c for c in pod["status"].get("conditions", []) if c["type"] == "PodScheduled"), None)
        if scheduled is None or scheduled.get("message") != message:
            set_condition(pod, "PodScheduled", "False", self.clock.stamp(), "Unschedulable", message)
            cluster.modified("pods", pod)

    def _run(self, cluster, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        run = self.runs.get(uid)
        if run is None:
            run = self.runs[uid] = Run(pod, cluster.pod_index.get(uid, 0), self.clock.monotonic())
            self.clock.wake_at(run.creating_since + self.image_pull_seconds)
            initializing = bool(pod["spec"].get("initContainers"))
            set_statuses(pod, {"waiting": {"reason": "PodInitializing" if initializing else "ContainerCreating"}},
                         ready=False)
            cluster.modified("pods", pod)
        elif run.stop_at is not None:
            self.stopping(cluster, pod, run)
        elif run.process is None:
            if self._initializing(cluster, pod, run):
                return
            missing = next((c["image"] for c in pod["spec"]["containers"] if c.get("image") in self.missing_images), None)
            invalid = next((m for c in pod["spec"]["containers"] if c.get("image")
                            and (m := invalid_image_message(c["image"]))), None)
            if invalid is not None:
                self._waiting(cluster, pod, {"reason": "InvalidImageName", "message": invalid})
            elif self.clock.monotonic() < max(run.creating_since + self.image_pull_seconds, run.restart_at or 0.0):
                return  # the image is pulled, or the container waits out its crash-loop back-off
            elif missing is not None:
                self._pull_failed(cluster, pod, run, missing)
            else:
                self._create(cluster, pod, run)
        elif run.ended is not None:
            return
        elif _exited_first(run):
            code = exit_code(run.process.returncode)
            if code != 0 and pod["spec"].get("restartPolicy") == "OnFailure":
                self.restart(cluster, pod, run, code)
                return
            self._end(cluster, pod, run, "Succeeded" if code == 0 else "Failed", code,
                      "Completed" if code == 0 else "Error")
        elif run.disrupt_at is not None and self.clock.monotonic() >= run.disrupt_at:
            run.disrupt_at = None
            run.overtaken = exited(run.process)
            if run.scenario:
                cluster.disrupted.append((job_of(pod), run.index))
            if run.cause in RESOURCES:
                self.exhaust(cluster, pod, run.cause)
            else:
                self.disrupt(cluster, pod, run.cause)
        else:
            run.seen_running = self.clock.monotonic()
            if run.log is not None:
                run.log.read()

    def _pull_failed(self, cluster, pod: dict, run: Run, image: str) -> None:
        """A pull of ``image`` fails (:meth:`_pull_waiting`): the pod's containers wait; the
        kubelet never fails the pod, which stays ``Pending``."""
        self._waiting(cluster, pod, self._pull_waiting(run, image))

    def _pull_waiting(self, run: Run, image: str) -> dict:
        """How a container waits while a pull of ``image`` fails as a registry's 404 makes it
        fail: with ``ErrImagePull`` and the runtime's error until the pod's next sync, then with
        ``ImagePullBackOff`` until the image manager tries again after its back-off
        (``image_manager.go``: 10 s, doubled up to 300 s)."""
        now = self.clock.monotonic()
        if run.pull_retry_at is None or now >= run.pull_retry_at:
            run.pull_backoff = min(run.pull_backoff * 2 or 10.0, 300.0)
            run.pull_retry_at, run.pull_failed_at = now + run.pull_backoff, now
            self.clock.wake_at(run.pull_retry_at)
            self.clock.wake_at(now + SYNC_BACKOFF_SECONDS)
        if now < run.pull_failed_at + SYNC_BACKOFF_SECONDS:
            reference = _reference(image)
            return {"reason": "ErrImagePull", "message": (
                f'rpc error: code = NotFound desc = failed to pull and unpack image "{reference}": failed to '
                f'resolve reference "{reference}": {reference}: not found')}
        return {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}

    @staticmethod
    def _waiting(cluster, pod: dict, waiting: dict) -> None:
        """The pod's containers wait, for the ``reason`` and ``message`` of ``waiting``."""
        if pod["status"]["containerStatuses"][0]["state"] != {"waiting": waiting}:
            set_statuses(pod, {"waiting": waiting}, ready=False)
            cluster.modified("pods", pod)

    def _create(self, cluster, pod: dict, run: Run) -> None:
        """Make each container's environment (:mod:`kube_standin.environment`) and check its image's
        user (:mod:`kube_standin.image_users`), then start the pod. A container whose env reads a
        ConfigMap, Secret or key that is missing (and not optional), or that must not run as root
        from an image that may, waits with ``CreateContainerConfigError`` and the kubelet's
        message, and the kubelet tries again at its next sync, :data:`SYNC_BACKOFF_SECONDS` on: the
        pod starts once what it reads is there, and never fails for it. The stand-in starts a pod's containers
        together, so the others wait with it, in ``ContainerCreating``."""
        now = self.clock.monotonic()
        if run.config_retry_at is not None and now < run.config_retry_at:
            return
        envs, failed = {}, {}
        for container in pod["spec"]["containers"]:
            try:
                envs[container["name"]] = environment(cluster, pod, container)
            except Unresolved as unresolved:
                failed[container["name"]] = {"reason": "CreateContainerConfigError", "message": str(unresolved)}
                continue
            refusal = non_root_refusal(pod, container, self.image_users.get(container.get("image", ""), ""))
            if refusal is not None:
                failed[container["name"]] = {"reason": "CreateContainerConfigError", "message": refusal}
        if not failed:
            relative = next((c["workingDir"] for c in pod["spec"]["containers"]
                             if c.get("workingDir") and not c["workingDir"].startswith("/")), None)
            if relative is not None:
                self._start_error(cluster, pod, run, f"runc create failed: cwd {relative!r} is not an absolute path")
                return
            try:
                self._start(cluster, pod, run, envs[pod["spec"]["containers"][0]["name"]])
            except OSError as exc:
                self._start_error(cluster, pod, run, exec_refusal(pod["spec"]["containers"][0], exc))
            return
        run.config_retry_at = now + SYNC_BACKOFF_SECONDS
        self.clock.wake_at(run.config_retry_at)
        statuses = sorted((container_status(c, {"waiting": failed.get(c["name"], {"reason": "ContainerCreating"})}, ready=False)
                           for c in pod["spec"]["containers"]), key=lambda status: status["name"])
        if pod["status"]["containerStatuses"] != statuses:
            pod["status"]["containerStatuses"] = statuses
            cluster.modified("pods", pod)

    def _start_error(self, cluster, pod: dict, run: Run, refusal: str) -> None:
        """A container the OCI runtime cannot start: the API server takes it, but runc refuses a
        ``workingDir`` that is not absolute ("cwd must be an absolute path"), or a command it
        cannot execute (not found on the container's ``PATH``, not executable); containerd
        reports the container terminated, ``StartError`` with exit code 128 and runc's
        ``refusal``, its start time the epoch; with ``restartPolicy: Never`` the pod fails, and
        otherwise its kubelet starts it again and again, the container waiting in
        ``CrashLoopBackOff``."""
        message = ("failed to create containerd task: failed to create shim task: OCI runtime create failed: "
                   f"{refusal}: unknown")
        if pod["spec"].get("restartPolicy", "Always") != "Never":
            self._waiting(cluster, pod, {"reason": "CrashLoopBackOff", "message": message})
            return
        run.ended = {"terminated": {
            "exitCode": 128, "reason": "StartError", "message": message, "startedAt": EPOCH,
            "finishedAt": self.clock.stamp()}}
        self._end(cluster, pod, run, "Failed", 128, "StartError")

    def _start(self, cluster, pod: dict, run: Run, env: dict[str, str]) -> None:
        """Run the pod's first container, with its environment ``env``."""
        run.log = Capture(self.logs_dir / f"{pod['metadata']['namespace']}.{pod['metadata']['name']}.log", self.clock,
                          max_size=self.log_max_size, look_every=self.log_look_seconds,
                          waits_for_reader=self.log_rotation_waits_for_reader,
                          on_rotation=partial(self._log_rotated, pod["metadata"]["name"]),
                          on_read_to_end=partial(self._log_read, pod["metadata"]["name"]))
        run.process = self.containers.start(pod, run.log.output, env,
                                            mounts=claims.mounts(cluster, pod, pod["spec"]["containers"][0]))
        run.process.job = pod["metadata"]["labels"].get("job-name")  # type: ignore[union-attr]
        cluster.processes.append(run.process)
        run.started_at, run.seen_running = self.clock.stamp(), self.clock.monotonic()
        disruption = self.disruption(job_of(pod), run.index)
        if disruption is not None:
            run.disrupt_at, run.scenario, run.cause = run.seen_running + disruption[0], *disruption[1:]
            self.clock.wake_at(run.disrupt_at)
        pod["status"].update(phase="Running", startTime=pod["status"].get("startTime") or run.started_at)
        set_statuses(pod, {"running": {"startedAt": run.started_at}}, ready=True)
        for kind in ("Initialized", "ContainersReady", "Ready"):
            set_condition(pod, kind, "True", run.started_at)
        cluster.modified("pods", pod)
    def _log_rotated(self, name: str) -> None:
        if self.on_log_rotation is not None:
            self.on_log_rotation(name)

    def _log_read(self, name: str, last: Line) -> None:
        if self.on_log_read is not None:
            self.on_log_read(name, last.text)

    def served(self, pod: dict, query: dict[str, str], now: float) -> None:
        """The API served a read of the pod's running container's log with ``query`` at ``now``."""
        run = self.runs.get(pod["metadata"]["uid"])
        if run is not None and run.log is not None and run.process is not None and run.process.poll() is None:
            run.log.served(query, now)

    def log_of(self, pod: dict) -> list[Line]:
        """The container's log so far (what its runtime has read of its output by now)."""
        run = self.runs.get(pod["metadata"]["uid"])
        if run is None or run.log is None:
            return []
        if run.process is not None and run.process.poll() is None:
            run.log.read()
        return run.log.lines


def _reference(image: str) -> str:
    """The image's full reference, as the container runtime resolves a short one."""
    name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
    domain = name.split("/", 1)[0]
    if "/" not in name or ("." not in domain and ":" not in domain and domain != "localhost"):
        name = f"docker.io/{name if '/' in name else 'library/' + name}"
    return f"{name}:{tag}"


def _exited_first(run: Run) -> bool:
    """Whether the container has exited, and before its disruption, however late a pass finds
    both, as a busy machine's may: by the moment its process exited where that is known yet,
    else by when it was last seen running (a disruption due by then came first)."""
    if run.process is None or run.process.poll() is None:
        return False
    exited = run.process.exited_at
    return run.disrupt_at is None or run.disrupt_at > (run.seen_running if exited is None else exited)


def job_of(pod: dict) -> str:
    """The name of the workload that made the pod, as the scenarios name it: its Job's, else its
    Training Operator job's."""
    labels = pod["metadata"]["labels"]
    return labels.get("job-name") or labels.get("training.kubeflow.org/job-name", "")
