"""Spot capacity taken back by the cloud, as each cloud gives notice and as the cluster reacts.

A spot node (GKE's ``cloud.google.com/gke-spot`` or ``gke-preemptible`` label, EKS's
``eks.amazonaws.com/capacityType: SPOT``) is interrupted after a time drawn from an
exponential distribution with ``per_hour`` interruptions per node-hour, counted from its
registration. At the notice its pods are disrupted at once, and the VM stops ``notice_seconds``
later (billed until then):

* GKE gives 30 seconds: the kubelet's graceful node shutdown marks the node not ready ("node is
  shutting down") and stops its pods, SIGTERM then SIGKILL, in the 15 seconds its shutdown grace
  leaves ordinary pods (``shutdownGracePeriod`` 30 s less ``shutdownGracePeriodCriticalPods``
  15 s), or their own ``terminationGracePeriodSeconds`` if shorter; it fails them with
  ``DisruptionTarget`` reason ``TerminationByKubelet``.
  The VM is stopped, not deleted, so its Node stays, its kubelet unreachable (``Ready``
  ``Unknown``: the API server answers 500 to a read of a log there), with its failed pods, for
  ``unreachable_seconds`` (300: the managed instance group recreates the VM, and the taint
  manager deletes the pods of a node not ready for five minutes), then goes;
* GKE's graceful shutdown may be cut short (``cut_short``): the VM stops before its kubelet
  tells the API of the shutdown or of its pods, which stay ``Running`` there, its kubelet
  silent (``Ready`` ``Unknown``); the managed instance group recreates it under the same name
  ``recreate_seconds`` later, and its kubelet, started again, fails the pods bound there with
  their containers lost (``ContainerStatusUnknown``, :meth:`kube_standin.pod_ends.PodEnds.lose`)
  and no ``DisruptionTarget`` condition. The Node is Ready again, and billed again;
* AWS gives two minutes: an EKS managed node group cordons and drains the node, its pods evicted
  with ``DisruptionTarget`` reason ``EvictionByEvictionAPI`` and stopped in their own grace
  period; the instance is terminated, whatever still runs there with it, and the cloud's node
  controller deletes its Node at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from kube_standin.scheduling import TERMINATED

SPOT_LABELS = {"cloud.google.com/gke-spot": "true", "cloud.google.com/gke-preemptible": "true",
               "eks.amazonaws.com/capacityType": "SPOT"}
"""A label each cloud puts on its spot nodes, with the value that says so."""


@dataclass
class Interruptions:
    """The cloud's interruptions of spot nodes: how often, with what notice, and their record."""

    per_hour: float
    notice_seconds: float
    drain: bool = False
    """The node is cordoned and drained (EKS); otherwise its kubelet shuts down (GKE)."""
    shutdown_grace_seconds: float | None = None
    """The grace period a kubelet shutting down gives a pod at most (GKE: 15 s); None: the pod's own."""
    unreachable_seconds: float = 0.0
    """How long a Node stays, its kubelet unreachable, once its VM stopped (0: it goes then)."""
    cut_short: bool = False
    """The VM stops at its notice, before its kubelet says anything, and comes back (GKE)."""
    recreate_seconds: float = 60.0
    """How long a VM whose shutdown was cut short stays stopped before it is recreated."""
    seed: int = 0
    due: dict[str, float] = field(default_factory=dict)
    """When each spot node that registered gets its notice."""
    stopping: dict[str, float] = field(default_factory=dict)
    """When each node that got its notice stops."""
    count: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    @classmethod
    def gke(cls, per_hour: float, seed: int = 0, cut_short: bool = False) -> Interruptions:
        return cls(per_hour, 30.0, drain=False, shutdown_grace_seconds=15.0, unreachable_seconds=300.0,
                   cut_short=cut_short, seed=seed)

    @classmethod
    def eks(cls, per_hour: float, seed: int = 0) -> Interruptions:
        return cls(per_hour, 120.0, drain=True, seed=seed)

    def step(self, cluster, now: float) -> None:
        """Give notice to the nodes whose time has come, stop those whose notice ran out (the
        cluster's lock held)."""
        for name, node in list(cluster.nodes.items()):
            if name not in self.due and self.per_hour > 0 and _spot(node):
                self.due[name] = now + self._random.expovariate(self.per_hour / 3600)
                cluster.clock.wake_at(self.due[name])
            if name not in self.stopping and self.due.get(name, float("inf")) <= now:
                self._notice(cluster, node, now)
        for name, stops in list(self.stopping.items()):
            if stops <= now and name in cluster.nodes and name not in cluster.unreachable:
                self._stop(cluster, name, now)
            if self.cut_short and stops + self.recreate_seconds <= now and name in cluster.nodes:
                self._recreate(cluster, name)
            elif stops + self.unreachable_seconds <= now and name in cluster.nodes:
                cluster.remove_node(name, reason=self._reason())

    def _stop(self, cluster, name: str, now: float) -> None:
        """The VM stops: its Node stays ``unreachable_seconds`` longer (``recreate_seconds``, cut
        short), its kubelet silent."""
        if not self.unreachable_seconds:
            return
        cluster.unreachable[name] = now
        cluster.clock.wake_at(now + (self.recreate_seconds if self.cut_short else self.unreachable_seconds))
        _ready(cluster, cluster.nodes[name], "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")

    def _recreate(self, cluster, name: str) -> None:
        """The managed instance group recreates the stopped VM under its name: its kubelet, back,
        posts the Node Ready and fails the pods bound there, their containers lost; the new VM
        may be interrupted in its turn."""
        del self.stopping[name], self.due[name]
        cluster.unreachable.pop(name, None)
        _ready(cluster, cluster.nodes[name], "True", "KubeletReady", "kubelet is posting ready status")
        cluster.restart_node(name)

    def _reason(self) -> str:
        return "EvictionByEvictionAPI" if self.drain else "TerminationByKubelet"

    def _notice(self, cluster, node: dict, now: float) -> None:
        name = node["metadata"]["name"]
        self.count += 1
        self.stopping[name] = now + (0.0 if self.cut_short else self.notice_seconds)
        cluster.clock.wake_at(self.stopping[name])
        if self.cut_short:
            return
        if self.drain:
            node["spec"]["unschedulable"] = True
            cluster.modified("nodes", node)
        else:
            _ready(cluster, node, "False", "KubeletNotReady", "node is shutting down")
        for pod in [p for p in cluster.pods.values() if p["spec"].get("nodeName") == name]:
            if pod["status"].get("phase") not in TERMINATED:
                cluster.kubelets.disrupt(cluster, pod, self._reason(), self.shutdown_grace_seconds)


def _spot(node: dict) -> bool:
    labels = node["metadata"].get("labels") or {}
    return any(labels.get(key) == value for key, value in SPOT_LABELS.items())


def _ready(cluster, node: dict, status: str, reason: str, message: str) -> None:
    """The Node's ``Ready`` condition changes, as its kubelet (or the node controller) says."""
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    ready.update(status=status, reason=reason, message=message, lastTransitionTime=cluster.clock.stamp())
    cluster.modified("nodes", node)
