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


def set_condition(pod: dict, kind: str, value: str, stamp: str, reason: str | None = None,
                  message: str | None = None) -> None:
    conditions = [c for c in pod["status"].get("conditions", []) if c["type"] != kind]
    condition = {"type": kind, "status": value, "lastProbeTime": None, "lastTransitionTime": stamp}
    condition.update({k: v for k, v in (("reason", reason), ("message", message)) if v})
    pod["status"]["conditions"] = [*conditions, condition]


def set_statuses(pod: dict, state: dict, ready: bool, others: dict | None = None) -> None:
    """Each container's status, listed by name as the kubelet lists them: the first container
    (the one that runs the command) in ``state``, the others (modelled as sidecars that run
    beside it) in ``others``, else in ``state`` too."""
    first = pod["spec"]["containers"][0]["name"]
    pod["status"]["containerStatuses"] = sorted((
        container_status(c, state if c["name"] == first or others is None else others, ready)
        for c in pod["spec"]["containers"]), key=lambda status: status["name"])


def container_status(container: dict, state: dict, ready: bool) -> dict:
    return {"name": container["name"], "ready": ready, "restartCount": 0, "image": container.get("image", ""),
            "imageID": image_id(container.get("image", "")) if "waiting" not in state else "",
            "started": "running" in state, "state": state}
