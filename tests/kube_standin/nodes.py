"""Nodes and node pools: what a node looks like when its kubelet registers, and the template
the cluster autoscaler reasons with for a pool."""

from __future__ import annotations

from dataclasses import dataclass, field

STATIC_NODE = "node-static"
STATIC_ALLOCATABLE = {"cpu": "64", "memory": "256Gi", "pods": "1000", "ephemeral-storage": "1Ti"}
"""The always-ready node of a stand-in given no pools: room for every test's trials."""
DEFAULT_ALLOCATABLE = {"cpu": "4", "memory": "16Gi", "pods": "110"}


@dataclass(frozen=True)
class NodePool:
    """A pool the autoscaler may grow and shrink, as a cloud's node group describes it."""

    name: str
    min_nodes: int = 0
    max_nodes: int = 1
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict, ...] = ()
    """``{"key", "value", "effect"}`` as on a Node (``NoSchedule``)."""
    allocatable: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ALLOCATABLE))
    stocked_out: bool = False
    """The cloud has no machine of the pool's type now (a spot or GPU stockout): a node the
    autoscaler asks for is never made (:mod:`kube_standin.autoscaler`)."""
    deleting: bool = False
    """The cloud is deleting the pool: the autoscaler makes no node there and removes none, and
    its nodes stay, cordoned, until the pool is gone (GKE drains and deletes them inside its
    delete operation, and bills them until then)."""
    reconciling: bool = False
    """The cloud is changing the pool (GKE's ``RECONCILING``): the autoscaler neither adds nor
    removes its nodes meanwhile."""
    resizing: int | None = None
    """The node count a resize the cloud is carrying out takes the pool to (GKE's ``setSize``):
    the nodes above it are drained, and go once the resize is done (:mod:`kube_standin.resizes`)."""
    unneeded_seconds: float | None = None
    """How long a node of the pool is unneeded before it goes, where the pool says (an EKS
    group's ``scaledownunneededtime`` option tag); None: the autoscaler's own
    (``--scale-down-unneeded-time``)."""


def node(name: str, labels: dict[str, str], taints: list[dict] | tuple[dict, ...],
         allocatable: dict[str, str], stamp: str, pool: str | None = None) -> dict:
    """A Ready Node object as a kubelet registers it at ``stamp``."""
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": f"node-{name}", "creationTimestamp": stamp,
                     "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **labels},
                     **({"annotations": {"katuna.test/pool": pool}} if pool else {})},
        "spec": {"taints": [dict(t) for t in taints]} if taints else {},
        "status": {"capacity": dict(allocatable), "allocatable": dict(allocatable),
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                   "message": "kubelet is posting ready status", "lastTransitionTime": stamp}]},
    }


def template(pool: NodePool, name: str, stamp: str = "") -> dict:
    """The node the pool would add, which the autoscaler checks a pending pod against (with
    ``stamp``: the node registering then)."""
    return node(name, pool.labels, pool.taints, pool.allocatable, stamp, pool=pool.name)


def pool_of(node_obj: dict) -> str | None:
    return (node_obj["metadata"].get("annotations") or {}).get("katuna.test/pool")
