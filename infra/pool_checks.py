"""What the provisioning script holds a pool found to before ``up`` or ``down`` changes it,
beyond what a study's claim holds it to: whose the pool is, and settings a cloud cannot change
in place (GKE nodes' service account, an EKS group's node role and subnets).

``up`` refuses the pool the service made for a study (it carries the study's uid,
:data:`functions.core.nodepool.OWNER_KEY`): the service deletes it once no running study uses
it, or, made for a shared pool, gives it back the maximum it was made with, so what ``up`` would
give it does not last, and ``up`` would report ready a pool that goes.

``down`` deletes a pool only if it carries the trial taint (another runs other workloads) and,
unless told ``any_pool`` (``--any-katuna-pool``), only one ``up`` made, which carries its mark
(:data:`functions.core.nodepool.MADE_BY_KEY` = ``infra-provision``): not the pool the service
made for a study (which it deletes itself once no running study uses it, and makes again while
one does), nor one made by hand or by an ``up`` from before pools were marked. Each check reads
the pool alone, so a ``--dry-run`` plan refuses what the command would, in its words."""

from __future__ import annotations

from typing import Any

from functions.core.cluster import TRIAL_TAINT
from functions.core.nodepool import (
    ANY_POOL_FLAG,
    GKE,
    MADE_BY_KEY,
    OWNER_KEY,
    SCRIPT_MARK,
    NodePool,
    NodePoolFailed,
    PoolChange,
    PoolStatus,
)
from infra.eks_requests import EksCluster

GOING = frozenset({"STOPPING", "DELETING"})
"""A pool's states while it is being deleted (GKE's ``STOPPING``, EKS's ``DELETING``)."""
FAILED = frozenset({"CREATE_FAILED", "DELETE_FAILED"})
"""An EKS group's states once its create or delete failed: what to do about it comes first."""


def check_gke(adapter: Any, pool: NodePool, account: str | None) -> None:
    """A study's pool is refused (:func:`check_whose`); and GKE cannot change the service
    account of an existing pool's nodes: one running as another than ``--node-service-account``
    asks for is refused, naming it, not left as it is with "nothing to change"."""
    check_whose(adapter.describe(pool.name), pool.name)
    found = adapter.node_service_account(pool.name) if account else None
    if found is not None and found != account:
        raise NodePoolFailed(f"node pool {pool.name} exists with its nodes running as {found}; the flags ask for "
                             f"{account}", "nodePool.serviceAccount")


def check_eks(adapter: Any, pool: NodePool, where: EksCluster) -> None:
    """A study's group is refused (:func:`check_whose`); and EKS cannot change the instance
    types, the node role or the subnets of an existing group: one whose differ from
    ``--instance-types``, ``--node-role`` or ``--subnets`` (in any order) is refused, naming them,
    not left as it is with "nothing to change". A study takes a group of some of the types it
    accepts; the flags name the types the group is to have (more types, more spot capacity to
    come from), so a group lacking some of them is refused too; one that failed to create or to
    delete is refused as such first (:func:`infra.eks_errors.stuck`), whatever its types."""
    described = adapter.describe(pool.name)
    check_whose(described, pool.name)
    if described is not None and described.state not in GOING | FAILED and set(described.machine_types) != set(
            pool.machine_types):
        raise NodePoolFailed(f"node pool {pool.name} exists with instance types {', '.join(described.machine_types)}; "
                             f"the flags ask for {', '.join(pool.machine_types)}", "nodePool.instanceTypes")
    found = adapter.node_settings(pool.name)
    if found is None:
        return
    role, subnets = found
    if role != where.node_role:
        raise NodePoolFailed(f"node pool {pool.name} exists with node role {role}; the flags ask for "
                             f"{where.node_role}", "nodePool.nodeRole")
    if subnets != set(where.subnets):
        raise NodePoolFailed(f"node pool {pool.name} exists with subnets {', '.join(sorted(subnets))}; the flags ask "
                             f"for {', '.join(sorted(set(where.subnets)))}", "nodePool.subnets")


def check_whose(found: PoolStatus | None, name: str) -> None:
    """Refuse ``up`` of the pool the service made for a study, unless it is being deleted (``up``
    waits until it is gone, then creates its own): the service, not ``up``, decides what becomes
    of it."""
    if found is None or found.owner is None or found.state in GOING:
        return
    raise NodePoolFailed(f"node pool {name} is the one katuna made for a study ({OWNER_KEY} {found.owner}): the "
                         "service deletes it once no running study uses it, or, made as a shared pool, gives it back "
                         "the maximum it was made with, so what `up` gives it would not last; name another pool, or "
                         f"delete this one (`down {ANY_POOL_FLAG}`, once no study runs on it) and run `up` again",
                         "nodePool.name")


def check_delete(found: PoolStatus | None, name: str, provider: str, any_pool: bool) -> None:
    """Refuse ``down`` of a pool without the trial taint (a cluster's ``default-pool``, a pool
    of other workloads that happens to have the name), and, unless ``any_pool``, of one ``up``
    did not make, naming the pool's flag and what deletes it."""
    if found is None:
        return
    if not found.tainted:
        raise NodePoolFailed(f"node pool {name} is not katuna's: its nodes lack the taint katuna.dev/trial=true:"
                             "NoSchedule, so other workloads may run on it; `down` deletes only katuna's pools "
                             "(delete it with the cloud's own tools if you mean to)", "nodePool.name")
    if any_pool or found.made_by == SCRIPT_MARK:
        return
    mark = f"{'resource label' if provider == GKE else 'tag'} {MADE_BY_KEY}={SCRIPT_MARK}"
    if found.owner is not None:
        raise NodePoolFailed(f"node pool {name} is the one katuna made for a study ({OWNER_KEY} {found.owner}): the "
                             "service deletes it once no running study uses it, and makes it again while one does; "
                             "`down` deletes only pools `up` made: "
                             f"stop the study (`katuna stop`), or give {ANY_POOL_FLAG} to delete it all the same",
                             "nodePool.name")
    raise NodePoolFailed(f"node pool {name} was not made by `up`: it lacks the {mark} `up` gives the pools it creates "
                         "(one made by hand, or by `up` before it marked them); `down` deletes only pools `up` made: "
                         f"give {ANY_POOL_FLAG} to delete this one, which carries katuna's trial taint "
                         f"{TRIAL_TAINT['key']}={TRIAL_TAINT['value']}:{TRIAL_TAINT['effect']}", "nodePool.name")


def delete(adapter: Any, name: str, any_pool: bool) -> PoolChange:
    """``down``: the pool deleted, if :func:`check_delete` lets it be."""
    check_delete(adapter.describe(name), name, adapter.provider, any_pool)
    return adapter.delete(name)
