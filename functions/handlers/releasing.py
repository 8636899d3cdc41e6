"""A study's pool use moved on one step: its pending cloud operation checked, a pool found
rather than created ensured again, and once the study is over its pool released (deleted,
given back the autoscaling settings it was found with, or scaled back), the shared pool a
release leaves emptied (:mod:`functions.handlers.emptying`).

The node-pool handler (:mod:`functions.handlers.provision`) asks for pools and takes each use
through these steps on its events and ticks; the requests to the configured provider that both
make (:func:`node_pools`, :func:`whose`) live here too.
"""

from __future__ import annotations

from dataclasses import replace

from functions.core.errors import PermanentError, TemporaryError
from functions.core.events import Event
from functions.core.nodepool import NodePool, OperationStatus, PoolChange, owner_value
from functions.core.pool_use import CREATING, POOL_FAILED, READY, RELEASED, RELEASING, PoolUse
from functions.core.ports import NodePools
from functions.core.records import FAILED, StudyRecord
from functions.core.stop import Decision
from functions.core.store_port import Store
from functions.handlers.asking import complete
from functions.handlers.deps import Deps
from functions.handlers.emptying import empty_step, running_others
from functions.handlers.node_hours import look_at_the_end


class NoNodePools(PermanentError):
    """A study asks for a node pool where no provider is configured."""


def node_pools(deps: Deps, pool: NodePool) -> NodePools:
    """The configured provider's node pools, which the study's pool must be on."""
    pools = deps.node_pools
    if pools is None or pools.provider != pool.provider:
        raise NoNodePools(f"nodePool.provider: no {pool.provider} node pools are configured for this service")
    return pools


def whose(use: PoolUse, change: PoolChange, store: Store) -> PoolUse:
    """The use after a request to ensure its pool: one more request made, and the pool's owner as
    the cloud reports it. An adopted pool keeps the settings the first study still using it
    found, not those an earlier study's change left."""
    adopted = use.adopted
    if adopted is None and change.adopted is not None:
        earlier = [other.adopted for other in store.pool_uses((CREATING, READY, RELEASING), pool=use.pool)
                   if other.uid != use.uid and other.provider == use.provider and other.adopted is not None]
        adopted = earlier[0] if earlier else change.adopted
    return replace(use, operation=change.operation, requests=use.requests + 1, created=use.created or change.created,
                   owned=use.owned or change.owned, adopted=adopted)


def advance(use: PoolUse, record: StudyRecord | None, deps: Deps) -> list[Event]:
    """Check the pending operation; once the pool is ready and the study over, release it; once
    released, empty a shared pool nobody uses (:func:`functions.handlers.emptying.empty_step`)."""
    if use.phase == RELEASED:
        deps.store.save_pool_use(empty_step(use, deps))
        return []
    events: list[Event] = []
    pool = _pool_of(use, record)
    if use.operation:
        status = _check(use.operation, pool, deps)
        if not status.done:
            return []
        if status.error:
            releasing = use.phase == RELEASING
            use = replace(use, phase=POOL_FAILED, operation=None, released_at=deps.clock() if releasing else None,
                          message=_left(use.pool, use.deleted, status.error) if releasing else status.error)
            if use.ready_at is None and record is not None and not record.terminal:
                events = complete(record, deps, Decision(FAILED, f"node pool {use.pool}: {status.error}"))
                record = deps.store.get_study(record.name)
        elif use.phase == CREATING and not use.created:
            use, events = _ensure_found(use, pool, record, deps)
        elif use.phase == CREATING:
            use = replace(use, phase=READY, operation=None, ready_at=deps.clock())
        elif use.phase == RELEASING:
            use = replace(use, phase=RELEASED, operation=None, released_at=deps.clock())
    if (record is None or record.terminal) and use.phase in (READY, POOL_FAILED) and use.released_at is None:
        use = _release(look_at_the_end(use, None if record is None else record.completed_at, deps), pool, deps)
    deps.store.save_pool_use(empty_step(use, deps))
    return events


def _check(operation: str, pool: NodePool, deps: Deps) -> OperationStatus:
    """The operation's status; one the cloud refuses to tell for good (a permission lost, the
    operation gone) has failed, so that the pool's use ends instead of every tick failing on it."""
    try:
        return node_pools(deps, pool).check(operation)
    except PermanentError as exc:
        return OperationStatus(True, f"checking {operation}: {exc}")


def _ensure_found(use: PoolUse, pool: NodePool, record: StudyRecord | None, deps: Deps) -> tuple[PoolUse, list[Event]]:
    """A pool found, not created: once its own change is done, ensure it again, since it may
    still need the larger maximum this study asks for."""
    try:
        change = node_pools(deps, pool).ensure(pool, owner=use.uid, request_id=use.request_id)
    except PermanentError as exc:
        use = replace(use, phase=POOL_FAILED, operation=None, message=str(exc))
        if record is None or record.terminal:
            return use, []
        return use, complete(record, deps, Decision(FAILED, f"node pool {pool.name}: {exc}"))
    use = whose(use, change, deps.store)
    if change.operation is not None:
        return use, []
    return replace(use, phase=READY, ready_at=deps.clock()), []


def _pool_of(use: PoolUse, record: StudyRecord | None) -> NodePool:
    """The pool as its study asked for it (or as recorded, once the study is gone)."""
    if record is not None and record.spec.node_pool is not None:
        return record.spec.node_pool
    return NodePool(use.pool, use.provider, use.capacity, use.machine_types, use.max_nodes, shared=use.shared)


def _release(use: PoolUse, pool: NodePool, deps: Deps) -> PoolUse:
    """Delete a pool katuna created that is not shared and nobody else uses (one whose creation
    failed only if this study created it); give an adopted pool nobody else uses its settings
    back; scale any other back to a minimum of 0 and to the maximum it keeps (:func:`_kept_maximum`).
    A cloud that cannot take the change now leaves the use as it is, for the next tick (the events
    of the same step are kept)."""
    others = running_others(use, deps.store)
    if use.phase == POOL_FAILED and not use.created:
        try:
            use = _created_after_all(use, pool, deps)
        except TemporaryError:
            return use
    deleting = use.owned and not use.shared and not others
    if use.phase == POOL_FAILED and not (deleting and use.created):
        return replace(use, released_at=deps.clock())
    if others and use.adopted is not None:
        return replace(use, phase=RELEASED, operation=None, released_at=deps.clock())
    pools = node_pools(deps, pool)
    try:
        if deleting:
            change = pools.delete(pool.name)
        elif use.adopted is not None:
            change = pools.scale_back(pool, use.adopted, request_id=use.request_id)
        else:
            change = pools.scale_back(replace(pool, max_nodes=_kept_maximum(use, others, pools, deps)),
                                      request_id=use.request_id)
    except TemporaryError:
        return use
    except PermanentError as exc:
        return replace(use, phase=POOL_FAILED, message=_left(pool.name, deleting, str(exc)), released_at=deps.clock())
    use = replace(use, deleted=deleting, requests=use.requests + 1)
    if change.operation is None:
        return replace(use, phase=RELEASED, operation=None, released_at=deps.clock())
    return replace(use, phase=RELEASING, operation=change.operation)


def _created_after_all(use: PoolUse, pool: NodePool, deps: Deps) -> PoolUse:
    """A failed use recorded as not created whose pool the study's own request made all the
    same: a create the cloud took with its answer lost past ``KATUNA_POOL_WAIT``, or a pool its
    own earlier create left in error. Found by the study's uid on it, as
    :func:`functions.handlers.provision._release_unrecorded` finds one, it is recorded as created, so that it is deleted; a
    pool absent, another's, or not to be looked at (a refusal for good) leaves the use as it is."""
    pools = deps.node_pools
    if pools is None or pools.provider != pool.provider:
        return use
    try:
        found = pools.describe(pool.name)
    except PermanentError:
        return use
    if found is None or found.owner != owner_value(use.uid):
        return use
    return replace(use, created=True, owned=True)


def _left(pool: str, deleting: bool, error: str) -> str:
    """A release the cloud refused for good, and what it leaves in the cluster for an operator."""
    left = "is left in the cluster; delete it by hand" if deleting else "keeps its autoscaling limits; set them by hand"
    return f"releasing the pool: {error}; node pool {pool} {left}"


def _kept_maximum(use: PoolUse, others: list[PoolUse], pools: NodePools, deps: Deps) -> int:
    """The maximum a pool keeps once this study is done with it: the one katuna's latest create
    of it gave it, or what the running studies still using it ask for if more. A raise lasts
    only while a running study needs it, so a shared pool does not stay at the largest size any
    study ever asked for. A pool of unknown origin (found before ownership was recorded) keeps
    the maximum it has."""
    made = [other.max_nodes for other in deps.store.pool_uses(pool=use.pool)
            if other.provider == use.provider and other.created]
    if use.owned and made:
        base = made[-1]
    else:
        found = pools.describe(use.pool)
        base = use.max_nodes if found is None else found.max_nodes
    return max([base, *(other.max_nodes for other in others)])
