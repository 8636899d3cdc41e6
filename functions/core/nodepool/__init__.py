"""Node pools for trials: a study's ``nodePool`` section, where its trials land, and the plain
values the node-pool port speaks in.

A study may ask for an autoscaling pool of spot (or preemptible, or on-demand) machines on GKE
or EKS. The pool scales from 0 to ``maxNodes`` while trials wait for room and back to 0 when
they are gone; it is tainted ``katuna.dev/trial=true:NoSchedule`` so nothing else lands on it,
and trial Jobs select it by its name and tolerate the taint.

A pool katuna creates for a study carries that study's uid (a GKE resource label, an EKS tag,
:data:`OWNER_KEY`): katuna may delete it once no study uses it, and a create answered "already
exists" by the pool its own earlier create made is still the study's. A pool that was there
before (``default-pool``, one made by hand or by ``python -m infra.provision``) is *adopted*:
it must carry the trial taint and the capacity and machine types the study asks for
(:func:`claim`), its maximum is raised if the study needs more, and when the last
study using it ends its autoscaling limits are given back as they were found; it is never deleted.

A pool katuna creates for a study also carries the installation's identity
(:data:`INSTALLATION_KEY`) and, on GKE, when it was asked for (:data:`CREATED_KEY`): a pool whose
use the database lost (a lost database, a backup restored from before the pool) is found by it
and deleted once no stored study may use it (:mod:`functions.handlers.pool_orphans`).
"""

from __future__ import annotations

from functions.core.nodepool._cloud import OperationStatus, PoolChange, PoolStatus, adoption_problem, claim
from functions.core.nodepool._parse import GKE_POOL_NODES, parse_node_pool
from functions.core.nodepool._pool import (
    ANY_POOL_FLAG,
    CAPACITIES,
    CREATED_KEY,
    EKS,
    GKE,
    INSTALLATION_KEY,
    MADE_BY_KEY,
    ON_DEMAND,
    OWNER_KEY,
    POOL_LABEL,
    PREEMPTIBLE,
    PROVIDERS,
    SCRIPT_MARK,
    SELECTOR_KEYS,
    SPOT,
    NodePool,
    NodePoolFailed,
    default_pool_name,
    installation_value,
    owner_value,
    place_trials,
)

__all__ = [
    "ANY_POOL_FLAG",
    "GKE_POOL_NODES",
    "CAPACITIES", "CREATED_KEY", "EKS", "GKE", "INSTALLATION_KEY", "MADE_BY_KEY", "ON_DEMAND", "OWNER_KEY", "POOL_LABEL", "PREEMPTIBLE", "PROVIDERS",
    "SCRIPT_MARK", "SELECTOR_KEYS", "SPOT", "NodePool", "NodePoolFailed", "OperationStatus", "PoolChange", "PoolStatus",
    "adoption_problem", "claim", "default_pool_name", "installation_value", "owner_value", "parse_node_pool", "place_trials",
]
