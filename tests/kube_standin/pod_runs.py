"""A pod's container as its kubelet runs it (:class:`Run`), and what the kubelet writes of it
in the pod's status: its conditions, its containers' statuses, their images' ids."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from kube_standin.containers import Container, SimulatedProcess
from kube_standin.logs import Capture

RESOURCES = ("memory", "ephemeral-storage")
"""What a container may run short of (:meth:`kube_standin.kubelet.Kubelets.exhaust`)."""


def image_id(image: str) -> str:
    """The ``imageID`` the kubelet reports for a container of ``image``: the image by its digest."""
    return f"docker.io/library/{image}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


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
    ended: dict | None = None
    """The first container's ``terminated`` state, once it ended while the pod's other
    containers run on (:meth:`kube_standin.pod_ends.PodEnds._end`)."""


def set_condition(pod: dict, kind: str, value: str, stamp: str, reason: str | None = None,
                  message: str | None = None) -> None:
    conditions = [c for c in pod["status"].get("conditions", []) if c["type"] != kind]
    condition = {"type": kind, "status": value, "lastProbeTime": None, "lastTransitionTime": stamp}
    condition.update({k: v for k, v in (("reason", reason), ("message", message)) if v})
    pod["status"]["conditions"] = [*conditions, condition]


def native_sidecars(pod: dict) -> list[dict]:
    """The pod's native sidecars: its init containers with ``restartPolicy: Always`` (Kubernetes
    1.29+). The kubelet starts them before the pod's containers, runs them beside those, and
    stops them once every one of those has ended, so they never hold the pod's end."""
    return [c for c in pod["spec"].get("initContainers") or [] if c.get("restartPolicy") == "Always"]


def set_statuses(pod: dict, state: dict, ready: bool, others: dict | None = None) -> None:
    """Each container's status, listed by name as the kubelet lists them: the first container
    (the one that runs the command) in ``state``, the others and the native sidecars
    (:func:`native_sidecars`, in ``initContainerStatuses``, in their order) in ``others``, else
    in ``state`` too. Only a running container is ever ready."""
    first = pod["spec"]["containers"][0]["name"]
    pod["status"]["containerStatuses"] = sorted((
        container_status(c, state if c["name"] == first or others is None else others, ready)
        for c in pod["spec"]["containers"]), key=lambda status: status["name"])
    sidecars = native_sidecars(pod)
    if sidecars:
        pod["status"]["initContainerStatuses"] = [container_status(c, state if others is None else others, ready)
                                                  for c in sidecars]


def container_status(container: dict, state: dict, ready: bool) -> dict:
    return {"name": container["name"], "ready": ready and "running" in state, "restartCount": 0,
            "image": container.get("image", ""),
            "imageID": image_id(container.get("image", "")) if "waiting" not in state else "",
            "started": "running" in state, "state": state}
