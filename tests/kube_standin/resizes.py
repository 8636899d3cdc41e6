"""A pool resized by the cloud (GKE's ``setSize``), as the cluster lives it.

While the resize runs (``NodePool.resizing``: the node count it takes the pool to) the nodes
above that count are drained: cordoned, their pods evicted (``DisruptionTarget`` reason
``EvictionByEvictionAPI``, gracefully terminated as the autoscaler's scale-down evicts them).
Nodes still booting there go first, never made; then registered nodes, picked at random,
whatever runs on them (gcloud's reference for a resize: "when resizing down, instances running
pods and instances without pods are not differentiated. Resize will pick instances to remove at
random"), so a resize under running trials may stop them while empty nodes stay. Once the
resize is done (the pool no longer resizing, or gone) their VMs are deleted and their Node
objects removed, billed until then. A resize upwards makes the missing nodes at once, which the
autoscaler may remove later as unneeded.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from kube_standin.nodes import NodePool, pool_of
from kube_standin.scheduling import TERMINATED

REASON = "EvictionByEvictionAPI"


@dataclass
class Resizes:
    """The nodes being drained by a resize under way, each with its pool."""

    draining: dict[str, str] = field(default_factory=dict)
    choice: random.Random = field(default_factory=lambda: random.Random(0))
    """Which nodes a resize removes: at random, seeded so that a run is repeatable."""

    def step(self, cluster, pools: dict[str, NodePool], booting: dict, boot: Callable[[NodePool], object]) -> None:
        """Remove the drained nodes of resizes done; drain, or make, the nodes of those under way
        (the cluster's lock held). ``booting``: the nodes on their way, by name, each with its
        ``pool``; ``boot``: make one more node of a pool."""
        for name, pool in list(self.draining.items()):
            current = pools.get(pool)
            if current is None or current.resizing is None:
                del self.draining[name]
                cluster.remove_node(name, reason=REASON)
        for pool in pools.values():
            if pool.resizing is not None:
                self._resize(cluster, pool, pool.resizing, booting, boot)

    def _resize(self, cluster, pool: NodePool, size: int, booting: dict, boot: Callable[[NodePool], object]) -> None:
        kept = [name for name, node in cluster.nodes.items() if pool_of(node) == pool.name and name not in self.draining]
        coming = [name for name, b in booting.items() if b.pool.name == pool.name]
        extra = len(kept) + len(coming) - size
        if extra < 0:
            for _ in range(-extra):
                boot(pool)
            return
        for name in coming[:extra]:
            del booting[name]
        extra -= min(extra, len(coming))
        for name in self.choice.sample(kept, extra):
            self._drain(cluster, name, pool.name)

    def _drain(self, cluster, name: str, pool: str) -> None:
        node = cluster.nodes[name]
        node["spec"]["unschedulable"] = True
        cluster.modified("nodes", node)
        for pod in [p for p in cluster.pods.values() if p["spec"].get("nodeName") == name]:
            if pod["status"].get("phase") not in TERMINATED:
                cluster.kubelets.disrupt(cluster, pod, REASON)
        self.draining[name] = pool
