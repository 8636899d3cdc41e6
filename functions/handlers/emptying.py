"""A shared node pool katuna made is emptied once its last study is done with it.

Scaling a pool back to a minimum of 0 leaves its nodes to the cluster autoscaler, which removes
each only once it has been unneeded for its ``--scale-down-unneeded-time`` (10 minutes by
default): billed all that while, with no study to use them. So once such a pool is released by
the study that used it last, and no running study uses it or waits for it, katuna asks the cloud
to resize it to 0 nodes at once (:meth:`functions.core.ports.NodePools.empty`); the autoscaler
grows it again for the next study's trials. Only a pool katuna made (:attr:`PoolUse.owned`),
never one it adopted; a pool it does not share is deleted instead.

Each step is checked again as it is taken, since a study may start using the pool at any
moment, and is safe to take twice: the resize is asked once per release, recorded on the
releasing study's pool use (:attr:`PoolUse.empty_asked`), and only once every other use of the
pool was released before it with no operation of theirs pending, since a cloud takes one
operation on a cluster at a time (a cluster busy with another is left for the next tick), and
once the trials of the studies that ended on it are stopped (a stop the cluster refused is
tried again by the tick first: a pool emptied under their Jobs has them boot fresh nodes). A
refusal for good fails nothing: it is logged, the nodes are left to the autoscaler, and the
use's message says so. A cloud that resizes no pool the autoscaler sizes (EKS) answers no
operation, and the nodes are left to the autoscaler as before.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from functions.core.errors import PermanentError, StudyNotFound, TemporaryError
from functions.core.log_context import about
from functions.core.nodepool import NodePool, OperationStatus
from functions.core.pool_use import POOL_IN_USE, RELEASED, WATCH_AFTER_RELEASE, PoolUse
from functions.core.ports import NodePools
from functions.core.records import StudyRecord
from functions.core.store_port import Store, stored_study
from functions.handlers.deps import Deps

log = logging.getLogger("katuna.pools")


def running_others(use: PoolUse, store: Store) -> list[PoolUse]:
    """The uses of the same pool by other running studies."""
    found = []
    for other in store.pool_uses(POOL_IN_USE, pool=use.pool):
        if other.uid == use.uid or other.provider != use.provider:
            continue
        try:
            record = store.get_study(other.study)
        except StudyNotFound:
            continue
        if record.uid == other.uid and not record.terminal:
            found.append(other)
    return found


def due_to_empty(store: Store, now: float) -> list[PoolUse]:
    """The released uses (within :data:`WATCH_AFTER_RELEASE`) whose pool's resize is pending, or
    is to be asked for now."""
    return [use for use in store.pool_uses((RELEASED,), released_after=now - WATCH_AFTER_RELEASE)
            if use.operation or _may_empty(use, store)]


def empty_step(use: PoolUse, deps: Deps) -> PoolUse:
    """One step of emptying a released use's pool: check the pending resize, or ask for it if
    the pool is still to be emptied (:func:`_may_empty`). A cloud that cannot take it now leaves
    the use as it is, for the next tick."""
    pools = deps.node_pools
    if use.phase != RELEASED or pools is None or pools.provider != use.provider:
        return use
    if use.operation:
        return _checked(use, pools)
    if not _may_empty(use, deps.store):
        return use
    try:
        change = pools.empty(use.pool)
    except TemporaryError:
        return use
    except PermanentError as exc:
        return _left(use, str(exc))
    if change.operation is None:
        return replace(use, empty_asked=True)
    return replace(use, empty_asked=True, emptied=True, operation=change.operation, requests=use.requests + 1)


def _may_empty(use: PoolUse, store: Store) -> bool:
    """Whether the use's release is to empty its pool now: a shared pool katuna made, kept (not
    deleted), not asked yet; the latest release of the pool, every other use of it released
    before with no operation pending; no running study using the pool or waiting for it; and no
    trial of an ended one left on it (:func:`_trials_left_on`)."""
    if not (use.phase == RELEASED and use.owned and use.shared and use.adopted is None and not use.deleted
            and not use.empty_asked and use.released_at is not None):
        return False
    for other in store.pool_uses(pool=use.pool):
        if other.uid == use.uid or other.provider != use.provider:
            continue
        if other.released_at is None or other.operation or (other.released_at, other.uid) > (use.released_at, use.uid):
            return False
    return not running_others(use, store) and not _waited_for(use, store) and not _trials_left_on(use, store)


def _trials_left_on(use: PoolUse, store: Store) -> bool:
    """Whether a study that ended on the pool may still run trials there: trials still active
    (its ``study.completed`` not yet handled by ``stop``, which Knative delivers beside
    ``provision``) or still marked to stop (the cluster refused their stop, which the tick tries
    again: :mod:`functions.handlers.stopping`). Emptying the pool under them only evicts their
    pods, which their Jobs replace; once the resize is done the autoscaler boots nodes for those,
    and bills them for its unneeded time after the stop goes through. The pool is emptied once
    they are stopped instead."""
    for other in store.pool_uses(pool=use.pool):
        if other.provider != use.provider or not (
                store.count_trials(other.study).active or store.stopping_trials(1, other.study)):
            continue
        record = stored_study(store, other.study, other.uid)
        if record is not None and record.terminal:
            return True
    return False


def unprovisioned(store: Store) -> list[tuple[StudyRecord, NodePool]]:
    """Running studies with a node pool that was never asked for (their ``study.created`` not
    handled that far yet), each with its pool."""
    return [(record, record.spec.node_pool) for record in store.list_studies()
            if record.spec.node_pool is not None and not record.terminal and store.pool_use(record.uid) is None]


def _waited_for(use: PoolUse, store: Store) -> bool:
    """Whether a running study asks for the pool with no use of it stored yet."""
    return any((pool.name, pool.provider) == (use.pool, use.provider) for _, pool in unprovisioned(store))


def _checked(use: PoolUse, pools: NodePools) -> PoolUse:
    """The use once its pending resize is checked: done, failed (the nodes left to the
    autoscaler), or still running."""
    try:
        status = pools.check(use.operation or "")
    except PermanentError as exc:
        status = OperationStatus(True, f"checking {use.operation}: {exc}")
    if not status.done:
        return use
    if status.error:
        return _left(replace(use, operation=None), status.error)
    return replace(use, operation=None)


def _left(use: PoolUse, error: str) -> PoolUse:
    """A resize the cloud refused for good: logged, and said in the use's message; the nodes are
    the autoscaler's to remove, as for a pool katuna does not empty."""
    log.warning("node pool %s was not emptied after study %s: %s; its nodes are left to the cluster autoscaler",
                use.pool, use.study, error, extra=about(use.study))
    message = (f"emptying the pool: {error}; node pool {use.pool}'s nodes are left to the cluster autoscaler, "
               "which removes each once it is unneeded")
    return replace(use, empty_asked=True, emptied=False, message=message)
