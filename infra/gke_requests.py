"""GKE node-pool requests as plain dicts, built by pure functions that import no Google SDK.

What ``--dry-run`` prints is what :mod:`infra.gke` sends: the cluster a pool belongs to
(:class:`GkeCluster`, with the full names GKE takes), a pool's create request, its autoscaling
limits, its size, and the name-only requests of a get or a delete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from functions.core.cluster import TRIAL_TAINT
from functions.core.nodepool import (
    CREATED_KEY,
    INSTALLATION_KEY,
    MADE_BY_KEY,
    ON_DEMAND,
    OWNER_KEY,
    PREEMPTIBLE,
    SPOT,
    NodePool,
    owner_value,
)

CLUSTER_SETTINGS = "KATUNA_GKE_CLUSTER/KATUNA_GKE_LOCATION"
"""The service's settings that name the cluster: what to fix when GKE has no such cluster."""
LOCATION_SETTING = "KATUNA_GKE_LOCATION"
"""The service's setting that names the cluster's location: what to fix when Google Cloud has no such location."""
NODE_ACCOUNT_SETTING = "KATUNA_GKE_NODE_SERVICE_ACCOUNT"
"""The service's setting that names the nodes' service account: what to fix when it does not exist."""


@dataclass(frozen=True)
class GkeCluster:
    """The cluster whose node pools are managed."""

    project: str
    location: str
    cluster: str
    node_service_account: str | None = None
    """The Google service account (email) the nodes of katuna's pools run as; None: the
    cluster's default (the Compute Engine default service account, unless the cluster says)."""
    made_by: str | None = None
    """The mark (resource label :data:`~functions.core.nodepool.MADE_BY_KEY`) of the pools
    created here outside any study: the provisioning script's; None for the service's."""
    installation: str | None = None
    """The installation's identity as a label value
    (:func:`~functions.core.nodepool.installation_value`) that the pools created here for a
    study carry (:data:`~functions.core.nodepool.INSTALLATION_KEY`); None outside the service."""

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/clusters/{self.cluster}"

    def pool_path(self, name: str) -> str:
        return f"{self.parent}/nodePools/{name}"

    def operation_path(self, operation: str) -> str:
        if operation.startswith("projects/"):
            return operation
        return f"projects/{self.project}/locations/{self.location}/operations/{operation}"


def autoscaling(pool: NodePool, max_nodes: int, min_nodes: int = 0) -> dict[str, Any]:
    """Pool-wide limits; spot and preemptible capacity is taken from any zone that has it."""
    return {"enabled": True, "total_min_node_count": min_nodes, "total_max_node_count": max_nodes,
            "location_policy": "BALANCED" if pool.capacity == ON_DEMAND else "ANY"}


def create_request(cluster: GkeCluster, pool: NodePool, owner: str | None = None,
                   now: float | None = None) -> dict[str, Any]:
    """``create_node_pool``: no nodes at first, autoscaling 0..max, tainted for trials only;
    labelled with the uid of the study it is made for, if any (with the cluster's
    :attr:`GkeCluster.installation` and the time ``now`` it is asked for, where given, but for a
    ``shared`` pool, which stays for the next study whatever the store holds), or with
    the cluster's :attr:`GkeCluster.made_by` mark (the provisioning script's). Its nodes run the GKE metadata
    server (``GKE_METADATA``), so trial pods never read the node's service account token from
    the metadata server, only what Workload Identity grants their own account (GKE refuses it
    on a cluster without Workload Identity, which katuna's own identity needs too); they run as
    the cluster's :attr:`GkeCluster.node_service_account` where one is set."""
    config: dict[str, Any] = {
        "machine_type": pool.machine_types[0],
        "labels": pool.node_labels,
        "taints": [{"key": TRIAL_TAINT["key"], "value": TRIAL_TAINT["value"], "effect": "NO_SCHEDULE"}],
        "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
        "workload_metadata_config": {"mode": "GKE_METADATA"},
    }
    if cluster.node_service_account is not None:
        config["service_account"] = cluster.node_service_account
    if pool.capacity == SPOT:
        config["spot"] = True
    elif pool.capacity == PREEMPTIBLE:
        config["preemptible"] = True
    if owner is not None:
        config["resource_labels"] = {OWNER_KEY: owner_value(owner)} | ({} if pool.shared else _made_here(cluster, now))
    elif cluster.made_by is not None:
        config["resource_labels"] = {MADE_BY_KEY: cluster.made_by}
    if pool.disk_size_gb is not None:
        config["disk_size_gb"] = pool.disk_size_gb
    if pool.accelerators:
        config["accelerators"] = [
            {"accelerator_type": kind, "accelerator_count": count,
             "gpu_driver_installation_config": {"gpu_driver_version": "DEFAULT"}}
            for kind, count in pool.accelerators
        ]
    return {"parent": cluster.parent, "node_pool": {
        "name": pool.name,
        "initial_node_count": 0,
        "config": config,
        "autoscaling": autoscaling(pool, pool.max_nodes),
        "management": {"auto_repair": True, "auto_upgrade": True},
    }}


def _made_here(cluster: GkeCluster, now: float | None) -> dict[str, str]:
    """The resource labels that tell the installation's own pools, and when each was asked for."""
    if cluster.installation is None:
        return {}
    return {INSTALLATION_KEY: cluster.installation} | ({} if now is None else {CREATED_KEY: str(int(now))})


def list_request(cluster: GkeCluster) -> dict[str, Any]:
    """``list_node_pools``: every pool of the cluster, in one answer (GKE pages none)."""
    return {"parent": cluster.parent}


def autoscaling_request(cluster: GkeCluster, pool: NodePool, max_nodes: int, min_nodes: int = 0) -> dict[str, Any]:
    return {"name": cluster.pool_path(pool.name), "autoscaling": autoscaling(pool, max_nodes, min_nodes)}


def size_request(cluster: GkeCluster, name: str, nodes: int) -> dict[str, Any]:
    """``set_node_pool_size``: the pool's node count (in each of its zones), which GKE reaches by
    draining and deleting nodes, or by adding them; the autoscaler sizes the pool again after."""
    return {"name": cluster.pool_path(name), "node_count": nodes}


def name_request(cluster: GkeCluster, name: str) -> dict[str, Any]:
    """``get_node_pool`` and ``delete_node_pool`` take the pool's full name only."""
    return {"name": cluster.pool_path(name)}


SERVICE_SIGN_IN = ("sign in again (`gcloud auth application-default login`), or give the service's Kubernetes service "
                   "account a Google service account again (Workload Identity)")
"""What to do about Google Cloud credentials refused for good (revoked, a deleted account's,
``invalid_grant``), as the service is told; the provisioning script tells its own
(:data:`infra.refusals.SCRIPT_SIGN_IN`)."""
