"""A node pool on a simulated clock: nodes that boot, run one trial each, get preempted and go.

What is simulated here, and nothing else: time (a clock that jumps from one cluster event to
the next), the cloud's nodes (boot delay, list price, spot preemptions at a rate per node-hour
with the cloud's notice before the VM stops), the cluster autoscaler (a node per pending pod up
to the pool's maximum, an idle node removed after ``idle_seconds`` down to the minimum), the
scheduler (a trial's pod takes a whole node: it requests 3 of a 4-cpu machine's cpus) and the
trials themselves (each lasts a seeded few minutes, then prints ``loss=<value>``). A pod whose
node is preempted is replaced by its Job on another node (katuna's ``podFailurePolicy`` ignores
the disruption) and starts over.

:class:`SimNodePools` and :class:`SimExecutor` put the pool and the trials behind katuna's own
ports (:class:`functions.core.ports.NodePools`, ``Executor`` and ``Nodes``), so katuna's
handlers decide when the pool is made, what runs, and when the pool is deleted, and measure the
study's node-hours from the nodes they list.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from functions.core.events import Event, trial_finished
from functions.core.launch import TrialLaunch
from functions.core.node_hours import NodeSeen
from functions.core.nodepool import NodePool, OperationStatus, PoolChange, PoolStatus


@dataclass(frozen=True)
class Machine:
    """A machine type as a pool offers it: its hourly list price, and how spot capacity ends."""

    name: str
    price_per_hour: float
    preemptions_per_hour: float = 0.0
    """The chance per node-hour that the cloud takes a node back (0 for on-demand)."""
    notice_seconds: float = 0.0
    """Between the cloud's preemption notice and the VM stopping (GKE 30 s, AWS 120 s)."""


@dataclass
class Node:
    name: str
    created: float
    ready_at: float
    removed: float | None = None
    pod: Pod | None = None
    idle_since: float | None = None
    doomed: bool = False
    """The cloud gave notice: the node stops at the end of its notice period."""


@dataclass
class Pod:
    """The running attempt of one trial (its Job's current pod)."""

    launch: TrialLaunch
    seconds: float
    node: Node | None = None
    started: float | None = None
    runs: int = 0


@dataclass
class Pool:
    """The autoscaled pool: limits, nodes, and the pods waiting for one."""

    machine: Machine
    min_nodes: int = 0
    max_nodes: int = 0
    nodes: list[Node] = field(default_factory=list)
    pending: list[Pod] = field(default_factory=list)

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.removed is None]


class SimCluster:
    """The clock, the pool, and the events that move them (a heap of ``(time, seq, action)``)."""

    def __init__(self, machine: Machine, seed: int, boot_seconds: float = 90.0, idle_seconds: float = 600.0,
                 start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.start = start
        self.pool = Pool(machine)
        self.boot_seconds = boot_seconds
        self.idle_seconds = idle_seconds
        self.rng = random.Random(seed)
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._names = itertools.count()
        self.preemptions = 0

    def clock(self) -> float:
        return self.now

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), action))

    def advance(self) -> bool:
        """Jump to the next cluster event and run it; False when nothing is left to happen."""
        if not self._heap:
            return False
        self.now, _, action = heapq.heappop(self._heap)
        action()
        return True

    def resize(self, min_nodes: int, max_nodes: int, boot: bool = True) -> None:
        """New limits; nodes up to the minimum are added (booted, or already running)."""
        self.pool.min_nodes, self.pool.max_nodes = min_nodes, max_nodes
        while len(self.pool.live()) < min_nodes:
            self._add_node(booted=not boot)
        self.autoscale()

    def remove_all(self) -> None:
        for node in self.pool.live():
            self._remove(node)

    def submit(self, pod: Pod) -> None:
        self.pool.pending.append(pod)
        self.autoscale()

    def autoscale(self) -> None:
        """Bind pending pods to idle Ready nodes, boot nodes for the rest, remove idle ones."""
        for node in self.pool.live():
            if self.pool.pending and node.pod is None and not node.doomed and node.ready_at <= self.now:
                self._bind(self.pool.pending.pop(0), node)
        free = [n for n in self.pool.live() if n.pod is None and not n.doomed]
        booting = sum(1 for n in free if n.ready_at > self.now)
        for _ in range(min(len(self.pool.pending) - booting, self.pool.max_nodes - len(self.pool.live()))):
            self._add_node(booted=False)

    def _add_node(self, booted: bool) -> None:
        ready = self.now if booted else self.now + self.boot_seconds
        node = Node(f"node-{next(self._names)}", self.now, ready, idle_since=ready)
        self.pool.nodes.append(node)
        rate = self.pool.machine.preemptions_per_hour
        if rate > 0:
            self.at(self.now + self.rng.expovariate(rate / 3600), lambda: self._notice(node))
        self.at(ready, self._idle_check(node) if booted else self.autoscale)
        if not booted:
            self.at(ready + self.idle_seconds, self._idle_check(node))

    def _bind(self, pod: Pod, node: Node) -> None:
        node.pod, node.idle_since, pod.node, pod.started = pod, None, node, self.now
        pod.runs += 1
        runs = pod.runs
        self.at(self.now + pod.seconds, lambda: self._finish(pod, runs))

    def _finish(self, pod: Pod, runs: int) -> None:
        node = pod.node
        if node is None or pod.runs != runs or node.removed is not None:
            return
        node.pod, node.idle_since, pod.node = None, self.now, None
        self.finished(pod)
        self.autoscale()
        self.at(self.now + self.idle_seconds, self._idle_check(node))

    def finished(self, pod: Pod) -> None:
        """Told of each pod that ran to its end (the executor reports the trial's end)."""

    def _idle_check(self, node: Node) -> Callable[[], None]:
        def check() -> None:
            idle = node.pod is None and node.idle_since is not None and self.now - node.idle_since >= self.idle_seconds
            if node.removed is None and idle and len(self.pool.live()) > self.pool.min_nodes:
                self._remove(node)
        return check

    def _notice(self, node: Node) -> None:
        if node.removed is not None:
            return
        node.doomed = True
        self.preemptions += 1
        self.at(self.now + self.pool.machine.notice_seconds, lambda: self._preempt(node))

    def _preempt(self, node: Node) -> None:
        if node.removed is None:
            self._remove(node)
            self.autoscale()

    def _remove(self, node: Node) -> None:
        node.removed = self.now
        pod, node.pod = node.pod, None
        if pod is not None:
            pod.node = None
            self.pool.pending.insert(0, pod)

    def node_seconds(self, until: float) -> float:
        return sum((n.removed if n.removed is not None else until) - n.created for n in self.pool.nodes)


class SimExecutor:
    """Implements :class:`functions.core.ports.Executor` over the simulated pool: a launch is a
    Job whose pod waits for a node; the trial's end is published as its Job's end would be."""

    def __init__(self, cluster: SimCluster, publish: Callable[[Event], None], seconds: Callable[[int], float],
                 objective: Callable[[Mapping[str, Any]], float]) -> None:
        self.cluster = cluster
        self._publish = publish
        self._seconds = seconds
        self._objective = objective
        self.pods: dict[tuple[str, int, int], Pod] = {}
        cluster.finished = self._finished  # type: ignore[method-assign]

    @staticmethod
    def _key(launch: TrialLaunch) -> tuple[str, int, int]:
        return launch.study, launch.number, launch.attempt

    def launch(self, launch: TrialLaunch) -> None:
        if self._key(launch) not in self.pods:
            pod = self.pods[self._key(launch)] = Pod(launch, self._seconds(launch.number))
            self.cluster.submit(pod)

    def _finished(self, pod: Pod) -> None:
        launch = pod.launch
        self._publish(trial_finished(launch.study, launch.uid, launch.number, launch.attempt, outcome="exited",
                                     exit_code=0))

    def exists(self, launch: TrialLaunch) -> bool:
        return self._key(launch) in self.pods

    def stop(self, launch: TrialLaunch) -> None:
        """The study ended: its pods are deleted."""
        for key, pod in list(self.pods.items()):
            if key[:2] == (launch.study, launch.number) and pod in self.cluster.pool.pending:
                self.cluster.pool.pending.remove(pod)

    def poll(self, launch: TrialLaunch) -> Event | None:
        return None

    def running(self, study: str) -> int:
        return 0

    def output(self, launch: TrialLaunch) -> Iterator[str]:
        yield f"loss={self._objective(launch.params or {})!r}\n"

    def read_file(self, launch: TrialLaunch, path: str) -> Iterator[str]:
        return iter(())


class SimNodePools:
    """Implements :class:`functions.core.ports.NodePools` over the simulated pool: creating the
    pool takes ``create_seconds``, deleting it ``delete_seconds`` (its nodes go at the end)."""

    def __init__(self, cluster: SimCluster, provider: str, create_seconds: float = 60.0,
                 delete_seconds: float = 60.0) -> None:
        self.cluster = cluster
        self.provider = provider
        self.create_seconds = create_seconds
        self.delete_seconds = delete_seconds
        self.done_at: dict[str, tuple[float, Callable[[], None]]] = {}
        self.exists = False

    def _operation(self, name: str, seconds: float, effect: Callable[[], None]) -> PoolChange:
        operation = f"{name}-{len(self.done_at)}"
        self.done_at[operation] = (self.cluster.now + seconds, effect)
        self.cluster.at(self.cluster.now + seconds, effect)
        return PoolChange(operation=operation, created=True, owned=True)

    def ensure(self, pool: NodePool, owner: str | None = None) -> PoolChange:
        if self.exists:
            return PoolChange(created=True, owned=True)
        self.exists = True
        return self._operation("create", self.create_seconds, lambda: self.cluster.resize(0, pool.max_nodes))

    def scale_back(self, pool: NodePool, adopted: Mapping[str, Any] | None = None) -> PoolChange:
        self.cluster.resize(0, self.cluster.pool.max_nodes)
        return PoolChange()

    def delete(self, name: str) -> PoolChange:
        self.exists = False
        return self._operation("delete", self.delete_seconds, self.cluster.remove_all)

    def check(self, operation: str) -> OperationStatus:
        return OperationStatus(done=self.cluster.now >= self.done_at[operation][0])

    def describe(self, name: str) -> PoolStatus | None:
        if not self.exists:
            return None
        pool = self.cluster.pool
        return PoolStatus(name, "RUNNING", pool.min_nodes, pool.max_nodes, "spot")



class SimNodes:
    """Implements :class:`functions.core.ports.Nodes` over the simulated pool: the Node objects
    of its nodes that registered (a Node exists from its kubelet's registration, so the boot
    before it is billed but never listed) and are not gone."""

    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster

    def list(self, labels: Mapping[str, str]) -> list[NodeSeen]:
        now = self.cluster.now
        return [NodeSeen(n.name, n.ready_at) for n in self.cluster.pool.live() if n.ready_at <= now]
