"""Node pools this installation created for a study whose use the store no longer holds, found
and deleted.

A pool katuna creates for a study is released through its pool use, which the database holds
(:mod:`functions.handlers.releasing`). After a lost database, or a backup restored from before
the pool, no use names it, and it stays for ever: the autoscaler empties a pool of minimum 0,
but not one whose minimum or size was raised by hand, and the pool itself is never deleted.
Each such pool carries the installation's identity and its study's uid
(:data:`~functions.core.nodepool.INSTALLATION_KEY`, :data:`~functions.core.nodepool.OWNER_KEY`),
so the sweep the tick runs (:func:`functions.handlers.strays.sweep`) finds them in one list of
the cloud's (:meth:`~functions.core.ports.NodePools.made`) and deletes each that:

- no stored study may use: its study's uid is no stored study's, and no stored study names it
  (a ``shared`` pool another study uses, a pool of the same name a study made again under its
  name found and uses), nor any pool use not yet released;
- is older than ``KATUNA_ORPHAN_GRACE`` (counted from its creation), so that the pool of a
  handling not committed yet is never taken;
- is not being deleted already;

at most :data:`POOLS_PER_SWEEP` a sweep, and none after a delete the cloud refuses for now (GKE
runs one operation of a cluster at a time: the next sweep asks again). A delete asked twice (two ticks at once) is success
(an absent pool, or one being deleted, is). A pool of another installation, the provisioning
script's and the user's own carry no identity of this installation, and are never taken.
What katuna made beside a pool deleted so (an EKS group's launch template) is deleted by a later
sweep once the pool is gone (:meth:`~functions.core.ports.NodePools.tidy`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from functions.core.errors import KatunaError, TemporaryError
from functions.core.nodepool import PoolStatus, owner_value
from functions.core.pool_use import CREATING, POOL_FAILED, READY, RELEASING
from functions.core.ports import NodePools
from functions.core.store_port import Store
from functions.core.study_brief import StudyBrief
from functions.handlers.deps import Deps

log = logging.getLogger("katuna.pools")

POOLS_PER_SWEEP = 10
"""The most orphaned pools one sweep deletes (EKS deletes groups side by side): a lost database of
many pools is cleared over a few ticks, each tick's cost bounded."""

BEING_DELETED = frozenset({"STOPPING", "DELETING"})
"""The states of a pool being deleted: GKE's and EKS's words."""


def release_orphans(deps: Deps, studies: Collection[StudyBrief]) -> None:
    """Delete the pools this installation created that no stored study (of ``studies``, every
    one the store holds) may use, once older than the grace; a cloud that cannot list or
    delete now is logged, and the next sweep tries again."""
    pools = deps.node_pools
    if pools is None:
        return
    held = held_pools(deps.store, studies, pools.provider)
    try:
        made = pools.made(skip=held)
    except KatunaError as exc:
        log.warning("listing the node pools this installation made: %s", exc)
        return
    owners = {owner_value(record.uid) for record in studies}
    now = deps.clock()
    tidy(pools, now - deps.orphan_grace)
    orphans = [found for found in made if orphaned(found, owners, held, now, deps.orphan_grace)]
    for found in orphans[:POOLS_PER_SWEEP]:
        try:
            pools.delete(found.name)
        except TemporaryError as exc:
            log.warning("deleting node pool %s, which no stored study uses, refused for now: %s", found.name, exc)
            return
        except KatunaError as exc:
            log.warning("deleting node pool %s, which no stored study uses: %s", found.name, exc)
            continue
        log.warning("deleting node pool %s: made for study uid %s, which the store does not hold, %.0f s ago, "
                    "and no stored study uses it", found.name, found.owner, now - (found.created_at or now))


def tidy(pools: NodePools, before: float) -> None:
    """Delete what katuna made beside pools now gone, made before ``before`` (an orphan's EKS
    launch template, which its delete leaves: no pool use checks that delete); a cloud that
    cannot now is logged, and the next sweep tries again."""
    try:
        deleted = pools.tidy(before)
    except KatunaError as exc:
        log.warning("deleting what katuna made for node pools now gone: %s", exc)
        return
    if deleted:
        log.warning("deleted %s, which katuna made for node pools now gone", ", ".join(deleted))


def held_pools(store: Store, studies: Collection[StudyBrief], provider: str) -> set[str]:
    """The names of the ``provider``'s pools stored studies may use: each one a study names
    (whether it runs or has ended: its use may not be stored yet, or a restart may ask for it
    again), and each one a pool use not yet released names."""
    named = {brief.node_pool[1] for brief in studies if brief.node_pool is not None and brief.node_pool[0] == provider}
    used = {use.pool for use in store.pool_uses((CREATING, READY, RELEASING, POOL_FAILED))
            if use.provider == provider and use.released_at is None}
    return named | used


def orphaned(found: PoolStatus, owners: Collection[str], held: Collection[str], now: float, grace: float) -> bool:
    """Whether a pool the installation made is an orphan: its study's uid none of ``owners``,
    its name none of ``held``, made ``grace`` seconds ago or more, and not being deleted."""
    if found.owner is None or found.owner in owners or found.name in held or found.state in BEING_DELETED:
        return False
    return found.created_at is not None and now - found.created_at >= grace
