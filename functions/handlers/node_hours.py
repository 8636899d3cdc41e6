"""On the tick: a look at the nodes of every pool a study uses, for its measured node-hours.

Each look lists the pool's Node objects by the label its cloud sets to the pool's name
(:data:`functions.core.nodepool.SELECTOR_KEYS`) and stores what it found in the study's pool use
(:func:`functions.core.node_hours.observe`); a pool is looked at most every
``KATUNA_NODE_LOOK_SECONDS`` (30 s), from its request until its nodes are gone (a shared pool
katuna emptied after the study: until the nodes the resize removes are gone). A look that
fails (the API unreachable, or no permission to list nodes) is logged, kept as the reason, and
tried again a period later: node-hours are a figure for the user, never a reason to fail a
study. Looking twice at the same moment finds the same nodes, so a redelivered tick changes
nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace

from functions.core.errors import KatunaError
from functions.core.node_hours import NodeSeen, observe, skew
from functions.core.nodepool import SELECTOR_KEYS
from functions.core.pool_use import WATCH_AFTER_RELEASE, PoolUse
from functions.core.ports import Nodes
from functions.handlers.deps import Deps

log = logging.getLogger("katuna.nodes")


def due(use: PoolUse, now: float, every: float, others: Iterable[PoolUse] = ()) -> bool:
    """Whether the pool's nodes are due for a look: watched (``others``: the other uses of pools,
    which a released pool's nodes may be left to), and not looked at for ``every`` seconds."""
    return use.watching(now, others) and (use.looked_at is None or now - use.looked_at >= every)


def _watched(deps: Deps, now: float) -> list[PoolUse]:
    """The pool uses whose nodes may still be watched: not released, or released within
    :data:`WATCH_AFTER_RELEASE` (older ones, however many a long-lived service keeps, are not read)."""
    return deps.store.pool_uses(released_after=now - WATCH_AFTER_RELEASE)


def looks_due(deps: Deps) -> bool:
    """Whether a pool's nodes are due for a look (the watcher then sends a tick)."""
    if deps.nodes is None:
        return False
    now = deps.clock()
    uses = _watched(deps, now)
    return any(due(use, now, deps.node_look_seconds, uses) for use in uses)


def look_at_nodes(deps: Deps) -> None:
    """List the nodes of each pool use not looked at for ``deps.node_look_seconds``, and store
    what the look found."""
    if deps.nodes is None:
        return
    now = deps.clock()
    uses = _watched(deps, now)
    for use in uses:
        if due(use, now, deps.node_look_seconds, uses):
            deps.store.save_pool_use(look(use, deps.nodes, now))


def look_at_the_end(use: PoolUse, ended_at: float | None, deps: Deps) -> PoolUse:
    """The use after a look at its pool's nodes as its study ends, unless one was made since
    ``ended_at`` (the study's end; a release the cloud put off is tried again without a look). The
    ticks' looks are ``KATUNA_NODE_LOOK_SECONDS`` apart: without this one, a study shorter than
    that, or the nodes added since the last tick's look, would never be seen while the study
    held the pool (a pool it leaves to others is not looked at for it after the release)."""
    if deps.nodes is None or use.released_at is not None or \
            ended_at is not None and use.looked_at is not None and use.looked_at >= ended_at:
        return use
    return look(use, deps.nodes, deps.clock())


def look(use: PoolUse, nodes: Nodes, now: float) -> PoolUse:
    """The use after a look at ``now`` at its pool's nodes (listed by the label its cloud sets to
    the pool's name); one that failed keeps the reason and the nodes as they were."""
    labels = {SELECTOR_KEYS[use.provider]: use.pool}
    try:
        seen = nodes.list(labels)
    except KatunaError as exc:
        log.warning("looking at the nodes of pool %s: %s", use.pool, exc)
        return replace(use, looked_at=now, nodes_problem=str(exc))
    return replace(use, nodes=observe(use.nodes, _its_own(use, seen, now), now), looked_at=now, nodes_problem="")


def _its_own(use: PoolUse, seen: list[NodeSeen], now: float) -> list[NodeSeen]:
    """The nodes a look counts for the use: after katuna emptied a shared pool the study released,
    only those made before the release (the nodes the resize removes); a node made since is for
    a study that has started on the pool meanwhile, not the ended one's."""
    if use.released_at is None or not use.emptied:
        return seen
    return [node for node in seen if node.created_at + skew(node, now) <= use.released_at]
