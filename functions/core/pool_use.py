"""A study's use of a node pool (:class:`PoolUse`) and the phases it goes through, from the
request that ensured the pool to its scale-back or deletion.

Kept apart from the study and trial records (:mod:`functions.core.records`), which it names by
the study's uid only: node pools are a cloud cluster's concern, which a study that asks for
none never meets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from functions.core.node_hours import NodeLife, running, seen, shared_node_hours

CREATING, READY, RELEASING, RELEASED, POOL_FAILED = "creating", "ready", "releasing", "released", "failed"
WATCH_AFTER_RELEASE = 3600.0
"""Seconds a released pool's nodes are still looked at: its nodes are gone well within it (the
autoscaler removes an idle node after 10 minutes, a deleted or emptied pool's nodes go in
minutes); a shared pool katuna has still to empty is looked for as long."""
POOL_IN_USE = (CREATING, READY)


@dataclass(frozen=True)
class PoolUse:
    """One study's use of a node pool, from the request that ensured it to its scale-back or
    deletion: the pending cloud operation, and the times a node-hour estimate needs."""

    uid: str
    study: str
    pool: str
    provider: str
    capacity: str
    machine_types: tuple[str, ...]
    max_nodes: int
    shared: bool
    phase: str = CREATING
    operation: str | None = None
    requests: int = 0
    """How many changes this use has asked the cloud for: with :attr:`uid`, it names the next one
    (:attr:`request_id`), the same when that request is retried and new once it is stored."""
    created: bool = False
    """Whether this study's request created the pool (rather than finding it)."""
    owned: bool = False
    """Whether katuna created the pool (for this study or another): only such a pool is ever
    deleted, once it is not ``shared`` and no running study uses it."""
    adopted: Mapping[str, Any] | None = None
    """A pool katuna did not create: its autoscaling settings as first found (provider's terms),
    given back when the last study using it ends."""
    deleted: bool = False
    empty_asked: bool = False
    """Whether the step that empties the pool after this study's release was taken: the cloud
    asked to resize the pool to 0 nodes (or the cloud, EKS, resizes none), or it refused for good.
    Asked once per release, so a redelivered event or the next tick does not ask again."""
    emptied: bool = False
    """Whether the cloud took the resize to 0 nodes: the nodes left are this study's, until gone."""
    message: str = ""
    requested_at: float = 0.0
    ready_at: float | None = None
    released_at: float | None = None
    nodes: tuple[NodeLife, ...] = ()
    """The pool's nodes as looks at the Kubernetes API found them (:mod:`functions.core.node_hours`)."""
    looked_at: float | None = None
    """When the pool's nodes were last asked for."""
    nodes_problem: str = ""
    """Why the last look at the nodes failed (no permission to list nodes, say); empty when it did not."""

    @property
    def request_id(self) -> str:
        """The id of the next change this use asks the cloud for (an idempotency token's seed)."""
        return f"{self.uid}/{self.requests}"

    def watching(self, now: float, others: Iterable[PoolUse] = ()) -> bool:
        """Whether the pool's nodes still count for this study: while it uses the pool, and after,
        until the nodes of a pool it left to nobody (``others``: the pool's other uses) are gone,
        those it found there excepted (:meth:`_tail`), for :data:`WATCH_AFTER_RELEASE` at most."""
        if self.released_at is None:
            return True
        return not self._left_to_others(others) and running(self._tail()) > 0 and \
            now - self.released_at < WATCH_AFTER_RELEASE

    def node_hours(self, now: float, others: Iterable[PoolUse] = ()) -> float:
        """The measured node-hours: the pool's nodes from the pool's request on, shared out with
        the ``others`` using the pool at the same time (:func:`shared_node_hours`); the nodes it
        found there, while it held the pool, and no longer (:meth:`_tail`)."""
        sharing = [other for other in others if other.uid != self.uid
                   and (other.pool, other.provider) == (self.pool, self.provider)]
        start, end = self._held(now, sharing)
        spans = [other._held(now, [*sharing, self]) for other in sharing]
        found = [] if self.emptied else [life for life in self.nodes if not self._made_since_request(life)]
        released = end if self.released_at is None else min(end, self.released_at)
        return shared_node_hours(self._tail(), start, end, spans) + shared_node_hours(found, start, released, spans)

    def _held(self, now: float, others: Iterable[PoolUse]) -> tuple[float, float]:
        """When the study held the pool, for its node-hours: from its request until it left the
        pool to others, or, left to nobody, until the last node of its :meth:`_tail` was gone (or now)."""
        if self.released_at is None:
            return self.requested_at, now
        if self._left_to_others(others):
            return self.requested_at, self.released_at
        return self.requested_at, max([self.released_at, *(life.ended_at or life.last_seen for life in self._tail())])

    def _tail(self) -> tuple[NodeLife, ...]:
        """The nodes that count after the study left the pool to nobody, until they are gone:
        every node of a pool katuna emptied (the resize removes them), else those made since the
        study's request (the autoscaler removes them once idle). The nodes a pool it did not
        empty had before the request, an adopted pool's minimum, stay as they were before the
        study: they count only while it held the pool."""
        if self.emptied:
            return self.nodes
        return tuple(life for life in self.nodes if self._made_since_request(life))

    def _made_since_request(self, life: NodeLife) -> bool:
        """Whether the node was made since the study asked for the pool (on katuna's clock)."""
        return life.created_at + life.shift >= self.requested_at

    def _left_to_others(self, others: Iterable[PoolUse]) -> bool:
        """Whether the pool's nodes were others' once this study released it: a shared pool katuna
        did not empty after it (:attr:`emptied`), or one that another study of ``others`` was using then."""
        released = self.released_at
        return self.shared and not self.emptied or released is not None and any(
            other.uid != self.uid and (other.pool, other.provider) == (self.pool, self.provider)
            and other.requested_at <= released and (other.released_at is None or other.released_at > released)
            for other in others)

    def to_dict(self, now: float, others: Iterable[PoolUse] = ()) -> dict[str, Any]:
        """The summary a user reads: which pool, what capacity, for how long, and how many node-hours
        (its share of them with the pool's ``others`` uses)."""
        end = self.released_at or now
        hours = max(0.0, end - self.requested_at) / 3600
        return {"pool": self.pool, "provider": self.provider, "capacity": self.capacity,
                "machineTypes": list(self.machine_types), "maxNodes": self.max_nodes, "shared": self.shared,
                "phase": self.phase, "created": self.created, "owned": self.owned,
                "adopted": self.adopted is not None, "deleted": self.deleted, "message": self.message or None,
                "requestedAt": self.requested_at, "readyAt": self.ready_at, "releasedAt": self.released_at,
                "hours": round(hours, 4), "maxNodeHours": round(hours * self.max_nodes, 4),
                "nodeHours": round(self.node_hours(now, others), 4) if self._measured else None,
                "nodesSeen": seen(self.nodes), "nodesRunning": running(self.nodes), "nodesLookedAt": self.looked_at,
                "nodesProblem": self.nodes_problem or None}

    @property
    def _measured(self) -> bool:
        """Whether a look at the nodes ever succeeded."""
        return self.looked_at is not None and (bool(self.nodes) or not self.nodes_problem)
