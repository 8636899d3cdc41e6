"""A pod's container as its kubelet runs it (:class:`Run`), and what the kubelet writes of it
in the pod's status: its conditions, its containers' statuses, their images' ids."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from kube_standin.containers import Container, SimulatedProcess
from kube_standin.logs import Capture, Line

RESOURCES = ("memory", "ephemeral-storage")
"""What a container may run short of (:meth:`kube_standin.kubelet.Kubelets.exhaust`)."""


def image_id(image: str) -> str:
    """The ``imageID`` the kubelet (containerd's) reports for a container of ``image``: the
    image's repository, fully qualified, by its digest, a tag it was named by left out
    (``python:3.12`` runs as ``docker.io/library/python@sha256:…``)."""
    name = image.split("@")[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    first = name.split("/")[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return f"{name}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


@dataclass
class Run:
    """A pod's container on its kubelet."""

    pod: dict
    index: int
    creating_since: float
    process: Container | SimulatedProcess | None = None
    log: Capture | None = None
    started_at: str = ""
    disrupt_at: float | None = None
    scenario: bool = False
    """Whether the disruption comes from the stand-in's ``disrupt`` scenario."""
    cause: str = "PreemptionByScheduler"
    """What ends the run at ``disrupt_at``: a ``DisruptionTarget`` reason, or one of
    :data:`RESOURCES` its container runs short of."""
    seen_running: float = 0.0
    """The last moment the container was seen running (its start, at first)."""
    pull_backoff: float = 0.0
    """The image manager's back-off after the latest failed pull (10 s, doubled to 300 s)."""
    pull_retry_at: float | None = None
    """When the image is pulled again, after a failed pull."""
    pull_failed_at: float = 0.0
    config_retry_at: float | None = None
    """When the kubelet makes the containers' environment again, after it could not."""
    init_done: int = 0
    """How many of the pod's init containers, in their order, have completed (a native sidecar:
    started) (:mod:`kube_standin.pod_inits`)."""
    init_process: Container | SimulatedProcess | None = None
    """The init container running now."""
    init_log: Capture | None = None
    init_logs: dict[str, list[Line]] = field(default_factory=dict)
    """The logs of the init containers that ended, by name."""
    init_retry_at: float | None = None
    """When a failed init container is run again (``restartPolicy: OnFailure``)."""
    stop_at: float | None = None
    """While its kubelet stops the pod's containers, when it kills those still running
    (:mod:`kube_standin.pod_stops`)."""
    overtaken: bool = False
    """Whether the container was found exited only after its disruption was due (a kubelet pass
    late on a busy machine): it is taken as ended by the SIGTERM due first (143), as a process
    that does not handle SIGTERM is, not as having run to its own end."""
    stop_failed: bool = False
    """Whether the pod so stopped fails whatever its containers exit with (its kubelet ends it)."""
    previous_log: list[Line] = field(default_factory=list)
    """The log of the first container's run before its current one, once it was run again in
    place (:meth:`kube_standin.pod_ends.PodEnds.restart`)."""
    restart_at: float | None = None
    """When the first container, exited under ``restartPolicy: OnFailure``, is run again."""
    ended: dict | None = None
    """The first container's ``terminated`` state, once it ended while the pod's other
    containers run on (:meth:`kube_standin.pod_ends.PodEnds._end`)."""


def set_condition(pod: dict, kind: str, value: str, stamp: str, reason: str | None = None,
                  message: str | None = None) -> None:
    conditions = [c for c in pod["status"].get("conditions", []) if c["type"] != kind]
    condition = {"type": kind, "status": value, "lastProbeTime": None, "lastTransitionTime": stamp}
    condition.update({k: v for k, v in (("reason", reason), ("message", message)) if v})
    pod["status"]["conditions"] = [*conditions, condition]


def set_statuses(pod: dict, state: dict, ready: bool, others: dict | None = None) -> None:
    """Each container's status, listed by name as the kubelet lists them: the first container
    (the one that runs the command) in ``state``, the others and the native sidecars
    (its init containers with ``restartPolicy: Always``, in
    ``initContainerStatuses``) in ``others``, else in ``state`` too.
    A native sidecar that has not started keeps its status while the containers wait, and every
    other init container keeps its own (:mod:`kube_standin.pod_inits`); one not started yet
    waits ``PodInitializing``. Only a running container is ever ready. A container's
    ``restartCount`` and ``lastState`` stay as they were: only a restart in place changes them
    (:meth:`kube_standin.kubelet.Kubelets.restart`)."""
    first = pod["spec"]["containers"][0]["name"]
    held = {s["name"]: s for s in pod["status"].get("containerStatuses", [])}
    pod["status"]["containerStatuses"] = sorted((
        identified(pod, restarted(container_status(c, state if c["name"] == first or others is None else others,
                                                   ready), held.get(c["name"])))
        for c in pod["spec"]["containers"]), key=lambda status: status["name"])
    inits = pod["spec"].get("initContainers") or []
    if inits:
        kept = {s["name"]: s for s in pod["status"].get("initContainerStatuses", [])}
        beside = state if others is None else others
        pod["status"]["initContainerStatuses"] = [
            identified(pod, container_status(c, beside, ready))
            if c.get("restartPolicy") == "Always" and "waiting" not in beside
            else kept.get(c["name"]) or container_status(c, {"waiting": {"reason": "PodInitializing"}}, False)
            for c in inits]


def restarted(status: dict, old: dict | None) -> dict:
    """``status`` with the ``restartCount`` and ``lastState`` of ``old``, the container's status before."""
    if old is not None:
        status["restartCount"] = old.get("restartCount", 0)
        if old.get("lastState"):
            status["lastState"] = old["lastState"]
    return status


def set_init_status(pod: dict, name: str, state: dict, restarts: int | None = None, last: dict | None = None) -> None:
    """The status of the pod's init container ``name``: in ``state``, with ``restarts`` and its
    ``last`` state where given (a native sidecar that started is ready)."""
    container = next(c for c in pod["spec"]["initContainers"] if c["name"] == name)
    statuses = pod["status"].setdefault("initContainerStatuses", [])
    old = next((s for s in statuses if s["name"] == name), None)
    status = container_status(container, state, container.get("restartPolicy") == "Always")
    status["restartCount"] = restarts if restarts is not None else (old or {}).get("restartCount", 0)
    last = last if last is not None else (old or {}).get("lastState")
    if last is not None:
        status["lastState"] = last
    status = identified(pod, status)
    if old is None:
        statuses.append(status)
    else:
        statuses[statuses.index(old)] = status


UNLOCATED = "ContainerStatusUnknown"
"""The reason of a ``terminated`` state the kubelet writes of a container it cannot find: one
with no ``containerID``."""


def container_id(pod: dict, name: str, run: int) -> str:
    """The ``containerID`` of the pod's container ``name`` in its run ``run`` (its
    ``restartCount`` then), as containerd's runtime names it: ``containerd://`` and 64 hex digits."""
    return "containerd://" + hashlib.sha256(f"{pod['metadata']['uid']}/{name}/{run}".encode()).hexdigest()


def identified(pod: dict, status: dict) -> dict:
    """``status`` with the ids the kubelet writes in it: a running or ended run's ``containerID``
    (in its ``terminated`` state too), none of a container it could not find (:data:`UNLOCATED`);
    a container waiting to run again keeps its last run's."""
    state, ended = status["state"], status["state"].get("terminated")
    last = ((status.get("lastState") or {}).get("terminated") or {}).get("containerID")
    if ended is not None and ended.get("reason") != UNLOCATED:
        ended = {**ended, "containerID": ended.get("containerID") or container_id(
            pod, status["name"], status.get("restartCount", 0))}
        status["state"] = {**state, "terminated": ended}
    made = (ended or {}).get("containerID") or (
        container_id(pod, status["name"], status.get("restartCount", 0)) if "running" in state else last)
    if made:
        status["containerID"] = made
    else:
        status.pop("containerID", None)
    return status


def container_status(container: dict, state: dict, ready: bool) -> dict:
    return {"name": container["name"], "ready": ready and "running" in state, "restartCount": 0,
            "image": container.get("image", ""),
            "imageID": image_id(container.get("image", "")) if "waiting" not in state else "",
            "started": "running" in state, "state": state}
