"""The cluster autoscaler's scale-down, as the real one's defaults make it.

A node is unneeded while it runs no pod, or is under-used (its pods request less than half of
its allocatable cpu and memory, or of its GPUs on a GPU node: ``--scale-down-utilization-threshold``)
with every pod movable (made by a controller, a Job's included, and not annotated
``cluster-autoscaler.kubernetes.io/safe-to-evict: "false"``) and fitting on the other nodes.
Once unneeded for ``unneeded_seconds`` (``--scale-down-unneeded-time``, 10 minutes; a pool's
own where it has one, ``NodePool.unneeded_seconds``, as the real one's per node group options)
it is removed while its pool is above its minimum, but never within ``delay_after_add`` of the latest
scale-up in any pool, nor of the autoscaler's start (``--scale-down-delay-after-add``, 10
minutes: the real one goes on timing the unneeded nodes meanwhile, and removes none). At most
:data:`PARALLELISM` nodes go at once (``--max-scale-down-parallelism``), the next ones a scan
later (the real one's next loop), of which one non-empty node, drained first: its pods are
evicted (``DisruptionTarget`` reason ``EvictionByEvictionAPI``), as the real one drains one at a
time (``--max-drain-parallelism``).
Pods with local storage, which the real one also keeps unless annotated, are not modelled: the
stand-in drains more, never less.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kube_standin.clock import RealClock
from kube_standin.nodes import NodePool, pool_of
from kube_standin.objects import quantity
from kube_standin.scheduling import bound_by_node, misfit, requests

UTILIZATION_THRESHOLD = 0.5
"""The real autoscaler's default ``--scale-down-utilization-threshold``."""
PARALLELISM = 10
"""The real autoscaler's default ``--max-scale-down-parallelism``: nodes removed in one pass."""
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
GPU = "nvidia.com/gpu"


@dataclass
class ScaleDown:
    """Which nodes are unneeded since when, and when the latest scale-up was."""

    clock: RealClock
    unneeded_seconds: float
    delay_after_add: float
    scan_seconds: float
    last_scale_up: float
    """The latest scale-up, or the autoscaler's start (the real one's ``lastScaleUpTime`` starts so)."""
    removed_at: float = float("-inf")
    """The latest removal: the next one waits for the next scan."""
    unneeded_since: dict[str, float] = field(default_factory=dict)

    def scaled_up(self, now: float) -> None:
        """A pool grew: no node goes for ``delay_after_add``."""
        self.last_scale_up = now
        self.clock.wake_at(now + self.delay_after_add)

    def step(self, cluster, pools: dict[str, NodePool], now: float, counts: dict[str, int]) -> None:
        """Time the unneeded nodes; remove those unneeded long enough, each pool down to its
        minimum, unless a scale-up was too recent."""
        bound = bound_by_node(list(cluster.pods.values()), list(cluster.nodes))
        due = []
        for name, node in list(cluster.nodes.items()):
            pool = pools.get(pool_of(node) or "")
            if pool is None or not _unneeded(cluster, name, bound):
                self.unneeded_since.pop(name, None)
                continue
            since = self.unneeded_since.setdefault(name, now)
            wait = self.unneeded_seconds if pool.unneeded_seconds is None else pool.unneeded_seconds
            self.clock.wake_at(since + wait)
            if now - since >= wait:
                due.append((name, pool))
        if now < max(self.last_scale_up + self.delay_after_add, self.removed_at + self.scan_seconds):
            return
        if self._remove(cluster, due, bound, counts):
            self.removed_at = now
            self.clock.wake_at(now + self.scan_seconds)

    def _remove(self, cluster, due: list[tuple[str, NodePool]], bound: dict[str, list[dict]],
                counts: dict[str, int]) -> int:
        """Remove up to :data:`PARALLELISM` of the ``due`` nodes, one of them drained; how many went."""
        removed, drained = 0, False
        for name, pool in due:
            if removed == PARALLELISM or (bound[name] and drained) or counts[pool.name] <= pool.min_nodes:
                continue
            evicted = bound.pop(name)
            for pod in evicted:
                cluster.kubelets.disrupt(cluster, pod, "EvictionByEvictionAPI")
            drained = drained or bool(evicted)
            cluster.remove_node(name, reason="DeletionByPodGC")
            self.unneeded_since.pop(name, None)
            counts[pool.name] -= 1
            removed += 1
        return removed


def _unneeded(cluster, name: str, bound: dict[str, list[dict]]) -> bool:
    """Whether the autoscaler may remove the node: it runs no pod, or it is under-used and each
    of its pods may be evicted and fits on another node."""
    pods = bound[name]
    if not pods:
        return True
    if _utilization(cluster.nodes[name], pods) >= UTILIZATION_THRESHOLD or not all(_movable(p) for p in pods):
        return False
    landing = {other: list(on) for other, on in bound.items() if other != name}
    for pod in pods:
        room = next((other for other, on in landing.items() if misfit(pod, cluster.nodes[other], on) is None), None)
        if room is None:
            return False
        landing[room].append(pod)
    return True


def _utilization(node: dict, pods: list[dict]) -> float:
    """The share of the node's allocatable its pods request: of its GPUs on a GPU node, else of
    cpu or memory, whichever is higher."""
    allocatable = {k: quantity(v) for k, v in node["status"]["allocatable"].items()}
    used: dict = {}
    for pod in pods:
        for resource, amount in requests(pod).items():
            used[resource] = used.get(resource, 0) + amount
    kinds = (GPU,) if allocatable.get(GPU) else ("cpu", "memory")
    return max((float(used.get(k, 0) / allocatable[k]) for k in kinds if allocatable.get(k)), default=0.0)


def _movable(pod: dict) -> bool:
    """Whether the autoscaler may evict the pod to empty its node: one a controller made (a
    Job's, a ReplicaSet's), unless annotated not to be."""
    metadata = pod["metadata"]
    return (metadata.get("annotations") or {}).get(SAFE_TO_EVICT) != "false" and \
        any(owner.get("controller") for owner in metadata.get("ownerReferences") or [])
