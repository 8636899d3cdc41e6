"""Node pools for studies: ensured on ``study.created``, scaled back or deleted on
``study.completed``, pending cloud operations checked again on each ``POOL_CHECK`` tick.

No request waits for the cloud: a change that takes minutes is stored as an operation in the
study's pool use and checked on later events. Each tick also looks at the pools' nodes, for
the studies' measured node-hours (:mod:`functions.handlers.node_hours`). Every step is safe to
repeat: a pool that exists is success, an absent pool deleted is success, and a pool use in
progress is only checked.
A permanent refusal from the cloud (machine type, quota, permission) fails the study with the
cloud's message; throttling, server errors, a cluster busy with another operation and a token
that cannot be refreshed now raise ``TemporaryError``, so the event is retried (on a tick, a
pool use the cloud cannot serve now is left for the next tick), until ``KATUNA_POOL_WAIT`` after
the study was stored: the study then fails with the cloud's last answer. A release the cloud refuses for
now is left to the ticks, which try it again until it goes through (that of a pool whose
creation failed included); one it refuses for good ends the use as failed, its message saying
what is left in the cluster.

katuna deletes only the pools it created (:attr:`PoolUse.owned`), once they are not shared and
no running study uses them, and empties a shared one it created once its last study is done
(:mod:`functions.handlers.emptying`); a pool an ended study created with no use recording it (the
create's answer lost) is found by the study's uid on it. The ready pool of a running study is looked for at the pace of the looks at
its nodes; one deleted meanwhile (by hand, say) is created again as the study's own. A pool it found is adopted when it can serve the study
(:func:`functions.core.nodepool.claim`; otherwise the study fails naming the field),
and the last study using it gives it back its autoscaling settings as first found.
Each use's steps after its request (its operation checked, its pool released) are
:mod:`functions.handlers.releasing`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from functions.core.errors import PermanentError, StudyNotFound, TemporaryError
from functions.core.events import POOL_CHECK, STUDY_CREATED, Event, pool_check
from functions.core.log_context import about
from functions.core.nodepool import NodePool, owner_value
from functions.core.pool_count import HOLDING, held_pools, pools_problem
from functions.core.pool_use import CREATING, POOL_FAILED, READY, RELEASING, PoolUse
from functions.core.records import FAILED, StudyRecord
from functions.core.stop import Decision
from functions.core.store_port import Store
from functions.handlers.asking import complete
from functions.handlers.deps import Deps, study_here
from functions.handlers.emptying import due_to_empty, unprovisioned
from functions.handlers.node_hours import due, look_at_nodes
from functions.handlers.releasing import advance, node_pools, whose

log = logging.getLogger("katuna.pools")


def handle(event: Event, deps: Deps) -> list[Event]:
    if event.type == POOL_CHECK:
        events = reconcile(deps) + _create_missing(deps)
        look_at_nodes(deps)
        return events
    record = study_here(deps, event.data["study"])
    pool = record.spec.node_pool
    if not record.owns(event.data) or pool is None:
        return []
    use = deps.store.pool_use(record.uid)
    if event.type == STUDY_CREATED:
        if record.terminal:
            return []
        if use is None:
            return _provision(record, pool, deps)
    if use is None:
        return _release_unrecorded(record, pool, deps) if record.terminal else []
    return advance(use, record, deps)


def idle(event: Event, deps: Deps) -> bool:
    """Whether the event leaves nothing to do whenever it is handled: it is about a study run
    here without a node pool, or no longer stored under its name (not a tick's ``POOL_CHECK``).
    A study's uid keeps its node pool for good (an edit or a restart that would change it is
    refused), so no later handling of the event could find one to act on. A study run
    elsewhere, or gone, raises as the handling would (which then drops the event)."""
    if event.type == POOL_CHECK:
        return False
    record = study_here(deps, event.data["study"])
    return not record.owns(event.data) or record.spec.node_pool is None


def reconcile(deps: Deps) -> list[Event]:
    """Move every pool use that waits on the cloud, or on its study's end, one step on; and
    provision the pool of a running study whose ``study.created`` never got that far."""
    events: list[Event] = []
    for record, pool in unprovisioned(deps.store):
        events += _on_tick(_provision, record, pool, deps)
    for released in due_to_empty(deps.store, deps.clock()):
        events += _on_tick(advance, released, None, deps)
    for use in _unreleased(deps.store):
        owner: StudyRecord | None
        try:
            owner = deps.store.get_study(use.study)
        except StudyNotFound:
            owner = None
        if owner is not None and owner.uid != use.uid:
            owner = None
        if use.operation or owner is None or owner.terminal:
            events += _on_tick(advance, use, owner, deps)
    return events


def _create_missing(deps: Deps) -> list[Event]:
    """Create again the pools of running studies found deleted (:func:`_create_again`)."""
    events: list[Event] = []
    for use, record, pool in _ready_in_use(deps):
        events += _on_tick(_create_again, use, record, pool, deps)
    return events


def _ready_in_use(deps: Deps) -> list[tuple[PoolUse, StudyRecord, NodePool]]:
    """The ready pools of running studies whose nodes are due for a look (at most every
    ``KATUNA_NODE_LOOK_SECONDS``), each with its study, on the provider configured."""
    now, found = deps.clock(), []
    for use in deps.store.pool_uses((READY,)):
        if use.operation or use.released_at is not None or not due(use, now, deps.node_look_seconds):
            continue
        if deps.node_pools is None or deps.node_pools.provider != use.provider:
            continue
        try:
            record = deps.store.get_study(use.study)
        except StudyNotFound:
            continue
        if record.uid == use.uid and not record.terminal and record.spec.node_pool is not None:
            found.append((use, record, record.spec.node_pool))
    return found


def _create_again(use: PoolUse, record: StudyRecord, pool: NodePool, deps: Deps) -> list[Event]:
    """Create again the pool of a running study that was deleted meanwhile (by hand, or by the
    provisioning script's ``down``): the study asked for it, and its trials wait for nodes that
    never come without it. Created as on ``study.created``, carrying the study's uid, so it is
    this study's own and deleted when it ends; a create refused for good fails the study,
    naming the pool."""
    pools = node_pools(deps, pool)
    try:
        if pools.describe(use.pool) is not None:
            return []
    except PermanentError:
        return []
    log.warning("node pool %s of the running study %s is gone; creating it again", use.pool, use.study,
                extra=about(use.study))
    use = replace(use, phase=CREATING, adopted=None, ready_at=None)
    try:
        change = pools.ensure(pool, owner=record.uid, request_id=use.request_id)
    except PermanentError as exc:
        message = f"deleted while the study ran, and not created again: {exc}"
        deps.store.save_pool_use(replace(use, phase=POOL_FAILED, message=message))
        return complete(record, deps, Decision(FAILED, f"node pool {use.pool}: {message}"))
    use = whose(use, change, deps.store)
    if change.operation is None:
        use = replace(use, phase=READY, ready_at=deps.clock())
    deps.store.save_pool_use(use)
    return []


def _on_tick(step: Callable[..., list[Event]], *args: Any) -> list[Event]:
    """One pool's step on a tick: a cloud busy or unreachable now leaves that pool for the next
    tick rather than undoing the steps of the others (their cloud changes are made already)."""
    try:
        return step(*args)
    except TemporaryError:
        return []


def _unreleased(store: Store) -> list[PoolUse]:
    """Pool uses not yet released: in progress, or failed with a pool still to delete or give back."""
    return [use for use in store.pool_uses((CREATING, READY, RELEASING, POOL_FAILED)) if use.released_at is None]


def waiting_on_pools(store: Store, now: float) -> bool:
    """Whether a pool use waits on a cloud operation or on being released after its study, a
    released shared pool waits to be emptied (:mod:`functions.handlers.emptying`), or a running
    study still waits for its pool to be asked for."""
    if unprovisioned(store) or due_to_empty(store, now):
        return True
    for use in _unreleased(store):
        if use.operation:
            return True
        try:
            record = store.get_study(use.study)
        except StudyNotFound:
            return True
        if record.uid != use.uid or record.terminal:
            return True
    return False


def _new_use(record: StudyRecord, pool: NodePool, deps: Deps) -> PoolUse:
    return PoolUse(uid=record.uid, study=record.name, pool=pool.name, provider=pool.provider,
                   capacity=pool.capacity, machine_types=pool.machine_types, max_nodes=pool.max_nodes,
                   shared=pool.shared, requested_at=deps.clock())


def _refused(record: StudyRecord, use: PoolUse, message: str, deps: Deps) -> list[Event]:
    """Fail the study whose pool the cloud refused; the use stays unreleased, so the ticks
    delete whatever the refused request may have left in the cloud."""
    deps.store.save_pool_use(replace(use, phase=POOL_FAILED, message=message))
    return complete(record, deps, Decision(FAILED, f"node pool {use.pool}: {message}"))


def _provision(record: StudyRecord, pool: NodePool, deps: Deps) -> list[Event]:
    """Ask for the study's pool, unless it would be one more than ``KATUNA_MAX_POOLS`` allows:
    counted in this handler's transaction with the use it stores, so concurrent workers never
    hold more. Submission refuses such a study first; one still found here (stored before the
    limit was lowered) fails, naming the limit, and nothing is asked of the cloud.

    Once the cloud has refused the pool for now for ``deps.pool_wait`` seconds since the study
    was stored, its refusal counts as final: the study fails with the cloud's last answer rather
    than waiting for its pool for good.

    A pool found with a lower maximum than the study asks for is raised only once the use that
    records its settings as found is stored: here it waits on an operation, and the tick this
    handling sends raises it (:func:`~functions.handlers.releasing.advance`). Raised here, a
    raise whose answer was lost (a timeout, the process killed before its commit) was found on
    the redelivery as the pool's own settings, and given back as such when the study ended."""
    use = _new_use(record, pool, deps)
    problem = pools_problem(pool, held_pools(deps.store.pool_uses(HOLDING)), deps.limits.pools)
    if problem is not None:
        deps.store.save_pool_use(replace(use, phase=POOL_FAILED, message=str(problem), released_at=deps.clock()))
        return complete(record, deps, Decision(FAILED, f"node pool {pool.name}: {problem}"))
    try:
        change = node_pools(deps, pool).ensure(pool, owner=record.uid, request_id=use.request_id, raising=False)
    except PermanentError as exc:
        return _refused(record, use, str(exc), deps)
    except TemporaryError as exc:
        waited = deps.clock() - record.created_at
        if waited < deps.pool_wait:
            raise
        return _refused(record, use, f"not created within {waited:.0f} s of the study's submission; "
                                     f"the cloud's last answer: {exc}", deps)
    use = whose(use, change, deps.store)
    if change.operation is None:
        use = replace(use, phase=READY, ready_at=deps.clock())
    deps.store.save_pool_use(use)
    return [] if change.created or change.operation is None else [pool_check()]


def _release_unrecorded(record: StudyRecord, pool: NodePool, deps: Deps) -> list[Event]:
    """Release the pool an ended study had created with no use recording it: the cloud took the
    create, but its answer, or the handler's commit, was lost before the study ended, so no
    ``study.created`` comes to record it. Found by the study's uid on it (:data:`~functions.core.nodepool.OWNER_KEY`),
    it is recorded as created and released as any pool the study made (deleted unless shared or
    used by another running study); none found, or another's, leaves nothing to do."""
    pools = deps.node_pools
    if pools is None or pools.provider != pool.provider:
        return []
    found = pools.describe(pool.name)
    if found is None or found.owner != owner_value(record.uid):
        return []
    use = replace(_new_use(record, pool, deps), phase=READY, created=True, owned=True, ready_at=deps.clock())
    return advance(use, record, deps)


