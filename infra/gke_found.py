"""What katuna makes of a GKE node pool it finds: its status as katuna judges pools, its
autoscaling limits pool-wide, and what an ``ensure`` does with a pool that already exists.

Apart from :mod:`infra.gke`, which sends the requests: these read a pool GKE answered with
(a ``container_v1.NodePool``) and decide, calling nothing, so the reading of per-zone limits,
taints and labels is in one place for every call that looks at a pool.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

from infra.gke_errors import SUPPORT_NOTICES

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=FutureWarning, module=SUPPORT_NOTICES)
    from google.cloud import container_v1

from functions.core.cluster import TRIAL_TAINT
from functions.core.errors import TemporaryError
from functions.core.nodepool import (
    CREATED_KEY,
    INSTALLATION_KEY,
    MADE_BY_KEY,
    ON_DEMAND,
    OWNER_KEY,
    POOL_LABEL,
    PREEMPTIBLE,
    SPOT,
    NodePool,
    NodePoolFailed,
    PoolStatus,
    claim,
)
from infra.gke_requests import GkeCluster, autoscaling_request
from infra.verdict import Verdict

POOL_TOKEN = "pool:"
"""An operation that is a pool's own status: an existing pool found still provisioning, or found
with a lower maximum, raised by the next ``ensure`` once it may be changed."""
PENDING = ("PROVISIONING", "RECONCILING", "STOPPING")
"""The states of a pool still being made, changed or deleted: an operation on it is under way."""


def status_of(current: container_v1.NodePool) -> PoolStatus:
    """The pool as katuna judges it: state, limits, capacity, taint, and who made it (a study,
    by its uid, or the provisioning script, by its mark)."""
    config = current.config
    capacity = SPOT if config.spot else PREEMPTIBLE if config.preemptible else ON_DEMAND
    low, high = pool_limits(current)
    tainted = any(taint.key == TRIAL_TAINT["key"] and taint.value == TRIAL_TAINT["value"]
                  and container_v1.NodeTaint.Effect(taint.effect).name == "NO_SCHEDULE" for taint in config.taints)
    return PoolStatus(current.name, container_v1.NodePool.Status(current.status).name, low, high, capacity,
                      (config.machine_type,) if config.machine_type else (), tainted=tainted,
                      autoscaling=current.autoscaling.enabled, owner=config.resource_labels.get(OWNER_KEY),
                      made_by=config.resource_labels.get(MADE_BY_KEY),
                      labels=tuple(sorted((k, v) for k, v in config.labels.items() if k != POOL_LABEL)),
                      message=current.status_message or None,
                      installation=config.resource_labels.get(INSTALLATION_KEY),
                      created_at=_created(config.resource_labels.get(CREATED_KEY)))


def _created(label: str | None) -> float | None:
    """The time a :data:`CREATED_KEY` label holds, None where there is none or it is no number
    (changed by hand): such a pool's age is unknown, so it is never taken for an orphan."""
    return float(label) if label and label.isdigit() else None


def existing(cluster: GkeCluster, current: container_v1.NodePool, pool: NodePool, owner: str | None) -> Verdict:
    """What :meth:`infra.gke.GkeNodePools.ensure` does with a pool that exists: refuse one being deleted
    for now, and for good one in error or one that cannot serve (:func:`claim`); wait for one
    still being made; raise a maximum below the one asked (``set_node_pool_autoscaling``)."""
    found = status_of(current)
    if found.state == "STOPPING":
        raise TemporaryError(f"GKE: node pool {pool.name} is being deleted; try again when it is gone")
    if found.state == "ERROR":
        raise NodePoolFailed(f"GKE node pool {pool.name} is in error: {current.status_message or 'no message'}")
    whose = claim(pool, found, owner, autoscaling_settings(current))
    if found.state in PENDING:
        return Verdict(replace(whose, operation=POOL_TOKEN + pool.name))
    if found.autoscaling and found.max_nodes >= pool.max_nodes:
        return Verdict(whose)
    return Verdict(whose, "set_node_pool_autoscaling", _raise_request(cluster, current, pool, found.min_nodes))


def autoscaling_settings(current: container_v1.NodePool) -> dict[str, Any]:
    """The pool's autoscaling settings as a request would set them again (defaults left out)."""
    settings = container_v1.NodePoolAutoscaling.to_dict(current.autoscaling, preserving_proto_field_name=True,
                                                        use_integers_for_enums=False)
    return {key: value for key, value in settings.items()
            if value and value != "LOCATION_POLICY_UNSPECIFIED" and key != "autoprovisioned"}


def per_zone(pool: container_v1.NodePool) -> bool:
    """Whether the pool's autoscaling limits are per zone (``min/max_node_count``), not pool-wide."""
    return pool.autoscaling.enabled and not pool.autoscaling.total_max_node_count


def pool_limits(pool: container_v1.NodePool) -> tuple[int, int]:
    """The pool-wide autoscaling minimum and maximum: per-zone limits hold in each of the pool's
    zones (``locations``), so a regional pool at 1..3 per zone has 3..9 nodes."""
    scaling = pool.autoscaling
    if not per_zone(pool):
        return scaling.total_min_node_count, scaling.total_max_node_count
    zones = max(len(pool.locations), 1)
    return scaling.min_node_count * zones, scaling.max_node_count * zones


def _raise_request(cluster: GkeCluster, current: container_v1.NodePool, pool: NodePool,
                   min_nodes: int) -> dict[str, Any]:
    """``set_node_pool_autoscaling`` to the study's maximum, pool-wide, keeping the pool's
    minimum (pool-wide: a per-zone one counted in each of its zones) and its location policy,
    if it has one. A pool with per-zone limits gets pool-wide ones: a per-zone maximum spreads
    a maximum over its zones only in whole nodes, so 10 over 3 zones would allow 12 (or 9),
    never the 10 asked; its limits as found are given back when no study uses it."""
    request = autoscaling_request(cluster, pool, pool.max_nodes, min_nodes)
    policy = autoscaling_settings(current).get("location_policy")
    if policy:
        request["autoscaling"]["location_policy"] = policy
    return request
