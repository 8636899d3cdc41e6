"""A study's node-hours, measured: the nodes of its pool as the Kubernetes API lists them.

Each look lists the pool's Node objects (by the label its cloud puts on them) and keeps, per
node, when it was created (its ``creationTimestamp``), when it was last seen, and when it was
first found gone. A node found gone is counted until halfway between the two looks that bracket
its end (the looks are a tick apart: a minute on Knative); a node still there, until the last
look (so the figure moves only when a look finds something). A Node whose kubelet stopped
posting its status is not listed (its VM stopped: GKE stops a preempted spot VM and keeps its
Node), so it is found gone; when the same Node (its creation time unchanged) is listed again, its
VM started again under its name, and it counts anew from the look that found it back. Only
the time inside the study's use of the pool counts (a shared or adopted pool's nodes may be older
than the study): a pool's nodes stop counting when the study releases it to others (a shared
pool, or one another running study still uses); a pool left to nobody, until its last node made
since the study's request is gone (those it had before count until the release:
:meth:`~functions.core.pool_use.PoolUse.node_hours`). While several studies use one pool, each
moment of its nodes counts evenly to each of them (:func:`shared_node_hours`), so that the
studies' figures add up to the pool's. These are the hours a cloud bills for the pool's
machines, whatever ran on them.

A ``creationTimestamp`` is the API server's clock, the looks katuna's: where the two differ by
more than :data:`SKEW_TOLERANCE` (katuna run off the cluster, on a clock minutes off), a node's
creation is moved onto katuna's clock by the difference the list answer's ``Date`` told when the
node was first seen (:attr:`NodeLife.shift`), lest each node count minutes short or long; the
node stays known by its ``creationTimestamp`` as written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

LOOK_EVERY = 30.0
"""Seconds between two looks at a pool's nodes, by default (the watcher ticks faster)."""


@dataclass(frozen=True)
class NodeSeen:
    """A Node object as listed: its name and when the API created it (epoch seconds)."""

    name: str
    created_at: float
    listed_at: float | None = None
    """The API server's time when it listed the node (its answer's ``Date``); None: not told."""


SKEW_TOLERANCE = 5.0
"""Seconds the API server's clock may differ from katuna's before a node's creation is moved onto
katuna's clock: a ``Date`` header has whole seconds, and an answer takes a moment to arrive."""


def skew(node: NodeSeen, now: float) -> float:
    """How far katuna's clock (``now`` at the answer) is ahead of the API server's that listed
    ``node``: 0 within :data:`SKEW_TOLERANCE`, or when the answer told no time."""
    ahead = 0.0 if node.listed_at is None else now - node.listed_at
    return ahead if abs(ahead) > SKEW_TOLERANCE else 0.0


@dataclass(frozen=True)
class NodeLife:
    """One node of a pool, as a study's looks saw it."""

    name: str
    created_at: float
    last_seen: float
    gone_seen: float | None = None
    """The first look that found it gone; None while it is there."""
    since: float | None = None
    """The look that found it back, after an earlier life of the same Node ended (its VM stopped
    and started again); None: it counts from its creation."""
    shift: float = 0.0
    """Seconds katuna's clock was ahead of the API server's when the node was first seen
    (:func:`skew`): its creation on katuna's clock is ``created_at + shift``."""

    @property
    def ended_at(self) -> float | None:
        return None if self.gone_seen is None else (self.last_seen + self.gone_seen) / 2

    def seconds(self, start: float, end: float) -> float:
        """How long the node ran within ``[start, end]``, as far as the looks saw."""
        until = min(end, self.ended_at if self.ended_at is not None else self.last_seen)
        return max(0.0, until - max(start, self.created_at + self.shift if self.since is None else self.since))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "createdAt": self.created_at, "lastSeen": self.last_seen,
                "goneSeen": self.gone_seen, **({"since": self.since} if self.since is not None else {}),
                **({"shift": self.shift} if self.shift else {})}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> NodeLife:
        return NodeLife(str(data["name"]), float(data["createdAt"]), float(data["lastSeen"]),
                        None if data.get("goneSeen") is None else float(data["goneSeen"]),
                        None if data.get("since") is None else float(data["since"]), float(data.get("shift") or 0.0))


def observe(known: Sequence[NodeLife], seen: Iterable[NodeSeen], now: float) -> tuple[NodeLife, ...]:
    """The nodes after a look at ``now`` that listed ``seen``: new ones added, listed ones seen
    again, the rest found gone (once; a name that comes back is a new node of that name, or the
    same Node back, counted from ``now``)."""
    listed = {node.name: node for node in seen}
    ended = {(life.name, life.created_at) for life in known if life.gone_seen is not None}
    lives = []
    for life in known:
        current = listed.get(life.name)
        if life.gone_seen is None and current is not None and current.created_at == life.created_at:
            lives.append(replace(life, last_seen=now))
            del listed[life.name]
        elif life.gone_seen is None:
            lives.append(replace(life, gone_seen=now))
        else:
            lives.append(life)
    lives += [NodeLife(node.name, node.created_at, now, since=now if (node.name, node.created_at) in ended else None,
                       shift=skew(node, now)) for node in listed.values()]
    return tuple(lives)


def running(lives: Sequence[NodeLife]) -> int:
    """How many of the nodes the last look found."""
    return sum(1 for life in lives if life.gone_seen is None)


def seen(lives: Sequence[NodeLife]) -> int:
    """How many nodes the looks found: a Node found back after its VM stopped (the same name and
    creation) is one node of two lives."""
    return len({(life.name, life.created_at) for life in lives})


def node_hours(lives: Sequence[NodeLife], start: float, end: float) -> float:
    """The nodes' hours within ``[start, end]``."""
    return sum(life.seconds(start, end) for life in lives) / 3600


def shared_node_hours(lives: Sequence[NodeLife], start: float, end: float,
                      others: Iterable[tuple[float, float]]) -> float:
    """The nodes' hours within ``[start, end]``, each moment counted evenly to this use of the
    pool and to the ``others`` (their ``(start, end)``) that held the pool then."""
    spans = list(others)
    cuts = sorted({start, end, *(moment for span in spans for moment in span if start < moment < end)})
    hours = 0.0
    for begin, until in zip(cuts, cuts[1:]):
        holders = 1 + sum(1 for held_from, held_to in spans if held_from <= begin and until <= held_to)
        hours += node_hours(lives, begin, until) / holders
    return hours
