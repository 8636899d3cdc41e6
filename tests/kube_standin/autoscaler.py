"""A cluster autoscaler over the pools a provider reports (a cloud stand-in, or a test).

It adds a node to a pool when a pod the scheduler found no room for would fit the pool's node
template and the pool is below its maximum, in the pass of its next scan of the pools (every
``--scan-interval``: as its FAQ says, "scale-up is considered up to 10 seconds after pod is
marked as unschedulable"), out of the pools it last asked the provider for (kept for the provider's
``refresh_seconds`` where it has one, as the AWS provider keeps its Auto Scaling groups a minute,
and asked again after a node was removed; a hundredth of that on the machine's clock, as the
scans are); the node registers Ready after ``boot_seconds``
(the VM's boot and the kubelet's registration). A node is removed while its pool is above its
minimum once it has been unneeded for ``idle_seconds`` (the real one's
``--scale-down-unneeded-time``; a pool's own where it has one, ``NodePool.unneeded_seconds``), and no sooner than ``delay_after_add`` after the latest scale-up
(``--scale-down-delay-after-add``; by default the same, as the real one's two defaults are),
at most ten at once (:mod:`kube_standin.scale_down`). Nodes of a pool the provider no longer
reports are drained, their pods disrupted; a pool being deleted (``NodePool.deleting``) keeps its
nodes, cordoned, until it is gone; a pool the cloud is changing (``NodePool.reconciling``) is
left alone, and one it resizes loses the nodes above its new size (:mod:`kube_standin.resizes`). Pods already promised a booting node do not ask for another,
as the real autoscaler's binpacking estimate.

The autoscaler says what it did about each such pod, in Events on the pod as the real one
records them (``EventingScaleUpStatusProcessor``, processors/status): ``TriggeredScaleUp``
("pod triggered scale-up: [{POOL 0->1 (max: 3)}]") on the pods a new node is for; else, in a
pass that added no node, ``NotTriggerScaleUp`` ("pod didn't trigger scale-up: " and, counted over
the pools, why each could not help: the scheduler's reason the pool's node would not fit it,
``max node group size reached``, ``in backoff after failed scale-up``), at every scan while the
pod waits (the recorder counts a repeat up). A pool the cloud has no machines for
(``NodePool.stocked_out``) makes no node: its scale-up fails once the node would have booted,
the pods it was for get ``FailedScaleUp`` (GKE's wording), and the pool is in backoff for
:data:`BACKOFF_SECONDS` (``--initial-node-group-backoff-duration``).

Spot capacity may be taken back (``interruptions``, :mod:`kube_standin.interruptions`). Every
machine is kept in a ledger from its creation (the boot included) until it is gone, which is
what a cloud bills (:meth:`Autoscaler.node_seconds`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from kube_standin.clock import RealClock
from kube_standin.interruptions import Interruptions
from kube_standin.nodes import NodePool, pool_of, template
from kube_standin.objects import suffix
from kube_standin.resizes import Resizes
from kube_standin.scale_down import ScaleDown
from kube_standin.scheduling import TERMINATED, bound_by_node, misfit

SIMULATED_SCAN_SECONDS = 10.0
"""How often the autoscaler scans the cluster on a simulated clock: the real autoscaler's default
``--scan-interval`` (on the machine's clock the stand-in scans every tenth of a second)."""

BACKOFF_SECONDS = 300.0
"""How long a pool whose scale-up failed is not asked for another node."""
COMPONENT = "cluster-autoscaler"
"""The component its Events name as their source."""


@dataclass
class Booting:
    """A node on its way: its pool, when it registers, the pods it is meant for."""

    pool: NodePool
    ready_at: float
    planned: list[dict] = field(default_factory=list)
    fails: bool = False
    """The cloud cannot make it (its pool was stocked out when asked)."""


@dataclass
class Machine:
    """A pool's VM as the cloud bills it: from its creation until it is gone."""

    pool: str
    created: float
    removed: float | None = None
    stopped: list[tuple[float, float]] = field(default_factory=list)
    """When it was stopped before the cloud recreated it under its name (a spot VM whose
    shutdown was cut short, :mod:`kube_standin.interruptions`): not billed."""

    def seconds(self, since: float, until: float) -> float:
        """How long it ran between ``since`` and ``until``."""
        def within(start: float, end: float) -> float:
            return max(0.0, min(until, end) - max(since, start))
        ran = within(self.created, self.removed if self.removed is not None else until)
        return ran - sum(within(start, end) for start, end in self.stopped)


class Autoscaler:
    def __init__(self, pools: Callable[[], Iterable[NodePool]], boot_seconds: float = 0.5,
                 idle_seconds: float = 2.0, resize: Callable[[str, int], None] | None = None,
                 clock: RealClock | None = None, delay_after_add: float | None = None) -> None:
        self.clock = clock or RealClock()
        self.pools = pools
        self.resize = resize
        """Told ``(pool, nodes)`` when a pool's node count changes, as a cloud learns it."""
        self.boot_seconds = boot_seconds
        self.booting: dict[str, Booting] = {}
        self.started = self.clock.monotonic()
        self.scan_seconds = SIMULATED_SCAN_SECONDS if self.clock.simulated else 0.1
        self.scale_down = ScaleDown(self.clock, idle_seconds, idle_seconds if delay_after_add is None else delay_after_add,
                                    self.scan_seconds, self.started)
        self.scanned_at = float("-inf")
        self.refresh_seconds = getattr(pools, "refresh_seconds", 0.0) * self.scan_seconds / SIMULATED_SCAN_SECONDS
        """How long the pools the provider reported are used before it is asked again: the
        provider's own on a simulated clock, as much shorter as the scans are on the machine's."""
        self.refreshed_at = float("-inf")
        self.known: dict[str, NodePool] = {}
        self.timeline: list[tuple[float, dict[str, int]]] = []
        """(seconds since start, Ready nodes per pool) at every change."""
        self.machines: dict[str, Machine] = {}
        """Every VM a pool had, by node name."""
        self.interruptions: Interruptions | None = None
        """How the cloud takes spot nodes back; None: it never does."""
        self.backoff: dict[str, float] = {}
        """Until when each pool whose scale-up failed is not asked for another node."""
        self.fresh = False
        """Whether the pools were scanned for this pass: the real one's loop, which records its Events."""
        self.resizes = Resizes()
        """The nodes the cloud drains for a resize of their pool (GKE's ``setSize``)."""

    def peak(self, pool: str | None = None) -> int:
        """The most Ready nodes seen at once, in ``pool`` or in all pools."""
        return max((counts.get(pool, 0) if pool else sum(counts.values()) for _, counts in self.timeline), default=0)

    def scan(self) -> dict[str, NodePool]:
        """The pools for this pass: a scan every ``scan_seconds``, each asking the provider for
        them again once ``refresh_seconds`` went by (a cloud's API is slow; call this without the
        cluster's lock)."""
        now = self.clock.monotonic()
        if now - self.scanned_at >= self.scan_seconds:
            if now - self.refreshed_at >= self.refresh_seconds:
                self.known = {pool.name: pool for pool in self.pools()}
                self.refreshed_at = now
            self.scanned_at = now
            self.fresh = True
            self.clock.wake_at(self.scanned_at + self.scan_seconds)
        return self.known

    def node_seconds(self, since: float = float("-inf"), until: float | None = None, pool: str | None = None) -> float:
        """Machine-seconds of ``pool`` (or of all pools) between ``since`` and ``until`` (now)."""
        until = self.clock.monotonic() if until is None else until
        return sum(m.seconds(since, until) for m in self.machines.values() if pool in (None, m.pool))

    def step(self, cluster, pools: dict[str, NodePool]) -> None:
        """One pass over the cluster (its lock held) with the pools of the last scan."""
        now = self.clock.monotonic()
        self._drain_gone(cluster, pools)
        counts = self._counts(cluster, pools)
        self.resizes.step(cluster, pools, self.booting, lambda pool: self._boot(pool, now, counts))
        self._register(cluster, pools, now)
        if self.interruptions is not None:
            self.interruptions.step(cluster, now)
        counts = self._counts(cluster, pools)
        active = {name: pool for name, pool in pools.items() if not (pool.deleting or pool.reconciling)}
        for pool in active.values():
            while counts[pool.name] < pool.min_nodes:
                self._boot(pool, now, counts)
        if self.fresh:
            self._scale_up(cluster, active, now, counts)
        self.fresh = False
        self.scale_down.step(cluster, active, now, counts)
        if self.scale_down.removed_at == now:
            self.refreshed_at = float("-inf")
        self._record(cluster, pools, now)
        self._bill(cluster, now)

    def _counts(self, cluster, pools: dict[str, NodePool]) -> dict[str, int]:
        counts = dict.fromkeys(pools, 0)
        for node in cluster.nodes.values():
            if pool_of(node) in counts:
                counts[pool_of(node)] += 1
        for booting in self.booting.values():
            counts[booting.pool.name] = counts.get(booting.pool.name, 0) + 1
        return counts

    def _drain_gone(self, cluster, pools: dict[str, NodePool]) -> None:
        """Remove the nodes of the pools gone, cordon those of the pools being deleted; a node
        booting for either is never made."""
        for name, node in list(cluster.nodes.items()):
            pool = pools.get(pool_of(node) or "")
            if pool_of(node) and pool is None:
                cluster.remove_node(name, reason="DeletionByPodGC")
            elif pool is not None and pool.deleting and not node["spec"].get("unschedulable"):
                node["spec"]["unschedulable"] = True
                cluster.modified("nodes", node)
        self.booting = {n: b for n, b in self.booting.items()
                        if b.pool.name in pools and not pools[b.pool.name].deleting}

    def _register(self, cluster, pools: dict[str, NodePool], now: float) -> None:
        for name, booting in list(self.booting.items()):
            if now >= booting.ready_at:
                del self.booting[name]
                if booting.fails:
                    self._failed(cluster, name, booting, now)
                else:
                    cluster.add_node(template(booting.pool, name, self.clock.stamp()))

    def _failed(self, cluster, name: str, booting: Booting, now: float) -> None:
        """A node the cloud could not make: never billed, its pool in backoff, its pods told."""
        self.machines[name].removed = self.machines[name].created
        self.backoff[booting.pool.name] = now + BACKOFF_SECONDS
        self.clock.wake_at(now + BACKOFF_SECONDS)
        zone = booting.pool.labels.get("topology.kubernetes.io/zone", "us-central1-a")
        for pod in booting.planned:
            if not pod["spec"].get("nodeName"):
                cluster.record_event(pod, "Warning", "FailedScaleUp",
                                     f"Node scale up in zones {zone} associated with this pod failed: GCE out of "
                                     "resources. Pod is at risk of not being scheduled.", COMPONENT)

    def _boot(self, pool: NodePool, now: float, counts: dict[str, int]) -> Booting:
        name = f"{pool.name}-{suffix()}"
        booting = self.booting[name] = Booting(pool, now + self.boot_seconds, fails=pool.stocked_out)
        self.machines[name] = Machine(pool.name, now)
        self.clock.wake_at(booting.ready_at)
        self.scale_down.scaled_up(now)
        counts[pool.name] += 1
        return booting

    def _scale_up(self, cluster, pools: dict[str, NodePool], now: float, counts: dict[str, int]) -> None:
        """Room for each unschedulable pod: on a node that registered since the scheduler's
        pass, on a booting node, else on a new node of the first pool whose template fits it."""
        promised = {id(p) for b in self.booting.values() for p in b.planned}
        pods = list(cluster.pods.values())
        landing = bound_by_node(pods, list(cluster.nodes))
        templates = {p.name: template(p, "new") for p in [*pools.values(), *(b.pool for b in self.booting.values())]}
        triggered: dict[str, list] = {}
        helpless: list[tuple[dict, list[str]]] = []
        for pod in _unschedulable(pods):
            if id(pod) in promised:
                continue
            ready = next((n for n, bound in landing.items() if misfit(pod, cluster.nodes[n], bound) is None), None)
            if ready is not None:
                landing[ready].append(pod)
                continue
            room = next((b for b in self.booting.values() if misfit(pod, templates[b.pool.name], b.planned) is None),
                        None)
            if room is not None:
                room.planned.append(pod)
                continue
            reasons = []
            for pool in sorted(pools.values(), key=lambda p: p.name):
                reason = self._why_not(pod, pool, templates[pool.name], now, counts)
                if reason is None:
                    before = counts[pool.name]
                    self._boot(pool, now, counts).planned.append(pod)
                    triggered.setdefault(pool.name, [before, 0, pool.max_nodes, []])[3].append(pod)
                    triggered[pool.name][1] = counts[pool.name]
                    break
                reasons.append(reason)
            else:
                helpless.append((pod, reasons))
        if self.fresh:
            self._tell(cluster, triggered, helpless)

    def _why_not(self, pod: dict, pool: NodePool, node: dict, now: float, counts: dict[str, int]) -> str | None:
        """Why a new node of ``pool`` cannot be the pod's, in the real autoscaler's words: the
        pool is skipped (at its maximum, in backoff), or its node would not fit the pod (the
        scheduler's reason); None when it can."""
        if counts[pool.name] >= pool.max_nodes:
            return "max node group size reached"
        if self.backoff.get(pool.name, float("-inf")) > now:
            return "in backoff after failed scale-up"
        return misfit(pod, node, [])

    def _tell(self, cluster, triggered: dict[str, list], helpless: list[tuple[dict, list[str]]]) -> None:
        """The pass's Events: ``TriggeredScaleUp`` on the pods of each new node; else (no pool
        grew) ``NotTriggerScaleUp`` on each pod no pool could help, its reasons counted."""
        infos = ", ".join(f"{{{name} {before}->{after} (max: {most})}}"
                          for name, (before, after, most, _) in sorted(triggered.items()))
        for _, _, _, planned in triggered.values():
            for pod in planned:
                cluster.record_event(pod, "Normal", "TriggeredScaleUp", f"pod triggered scale-up: [{infos}]", COMPONENT)
        if triggered:
            return
        for pod, reasons in helpless:
            counted = ", ".join(f"{n} {reason}" for reason, n in sorted(Counter(reasons).items()))
            cluster.record_event(pod, "Normal", "NotTriggerScaleUp", f"pod didn't trigger scale-up: {counted}", COMPONENT)

    def _record(self, cluster, pools: dict[str, NodePool], now: float) -> None:
        ready = dict.fromkeys(pools, 0)
        for node in cluster.nodes.values():
            if pool_of(node) in ready:
                ready[pool_of(node)] += 1
        if not self.timeline or self.timeline[-1][1] != ready:
            before = self.timeline[-1][1] if self.timeline else {}
            self.timeline.append((now - self.started, ready))
            for name, count in ready.items():
                if self.resize is not None and before.get(name) != count:
                    self.resize(name, count)

    def _bill(self, cluster, now: float) -> None:
        """Machines neither registered nor booting any more, or stopped, are gone from now on; a
        stopped one whose Node is reachable again was recreated, and is billed again."""
        for name, machine in self.machines.items():
            gone = name not in cluster.nodes and name not in self.booting
            if machine.removed is None and (gone or name in cluster.unreachable):
                machine.removed = now
            elif machine.removed is not None and name in cluster.nodes and name not in cluster.unreachable:
                machine.stopped.append((machine.removed, now))
                machine.removed = None


def _unschedulable(pods: Iterable[dict]) -> list[dict]:
    """Pods the scheduler marked Unschedulable, oldest first."""
    return sorted((p for p in pods if not p["spec"].get("nodeName") and p["status"].get("phase") not in TERMINATED
                   and any(c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable"
                           for c in p["status"].get("conditions", []))),
                  key=lambda p: p["metadata"]["creationTimestamp"])

