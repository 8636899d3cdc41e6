"""A node pool as a study asks for it: the providers, capacities and labels katuna speaks of,
the pool's own name and owner, and where its trials land (:func:`place_trials`)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from typing import Any

from functions.core import eks_gpus
from functions.core.cluster import TRIAL_TAINT, Cluster
from functions.core.errors import PermanentError

GKE, EKS = "gke", "eks"
PROVIDERS = (GKE, EKS)
SPOT, PREEMPTIBLE, ON_DEMAND = "spot", "preemptible", "on-demand"
CAPACITIES = (SPOT, PREEMPTIBLE, ON_DEMAND)
POOL_LABEL = "katuna.dev/pool"
SELECTOR_KEYS = {GKE: "cloud.google.com/gke-nodepool", EKS: "eks.amazonaws.com/nodegroup"}
OWNER_KEY = "katuna-study-uid"
"""The label (GKE ``resourceLabels``) or tag (EKS) naming the study whose request created a pool."""
MADE_BY_KEY = "katuna-made-by"
"""The label (GKE ``resourceLabels``) or tag (EKS) naming what made a pool outside any study:
``python -m infra.provision``'s ``up`` marks the pools it creates so (:data:`SCRIPT_MARK`), and
its ``down`` deletes only pools so marked unless told otherwise."""
SCRIPT_MARK = "infra-provision"
"""The :data:`MADE_BY_KEY` value of a pool the provisioning script's ``up`` created."""
ANY_POOL_FLAG = "--any-katuna-pool"
"""The provisioning script's ``down`` flag that deletes a tainted pool without :data:`SCRIPT_MARK`
(one ``up`` did not make), named wherever the script advises deleting such a pool."""
INSTALLATION_KEY = "katuna-installation"
"""The label (GKE ``resourceLabels``) or tag (EKS) naming the installation whose study's request
created a pool (:func:`installation_value`): a sweep finds its own pools whose study the store
lost by it, and never another installation's, the provisioning script's or the user's."""
CREATED_KEY = "katuna-created-at"
"""The GKE resource label holding when katuna asked for the pool (whole seconds since the epoch):
GKE's NodePool has no creation time, as an EKS node group has (``createdAt``)."""
_GCE_VALUE = re.compile(r"[a-z0-9_-]{1,63}")
_DIGEST = 16


class NodePoolFailed(PermanentError):
    """The cloud refused a node-pool request for good (a bad machine type, a quota, a permission).

    ``field`` names what to change, where one thing is to blame: a study's field
    (``nodePool.machineType``) or a setting of the service (``KATUNA_GKE_CLUSTER``); the message
    begins with it, and the provisioning script names its own flag instead (:attr:`reason` is
    the message without it)."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        super().__init__(f"{field}: {reason}" if field else reason)


@dataclass(frozen=True)
class NodePool:
    """A node pool as a study (or the provisioning script) asks for it.

    ``machine_types`` holds one GKE machine type or several EKS instance types. A pool that is
    not ``shared`` belongs to its study: deleted when the study ends and no other running study
    uses it; a shared pool is only scaled back to a minimum of 0.
    """

    name: str
    provider: str
    capacity: str = SPOT
    machine_types: tuple[str, ...] = ()
    max_nodes: int = 3
    disk_size_gb: int | None = None
    accelerators: tuple[tuple[str, int], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    shared: bool = False
    price_per_node_hour: float | None = None
    """What one node of the pool costs an hour (the user's figure, in their currency), for the
    cost of a study's measured node-hours; None when not given."""
    currency: str | None = None
    """The price's currency (an ISO 4217 code), shown with the cost; None when not given."""

    @property
    def node_labels(self) -> dict[str, str]:
        """The study's labels and katuna's own, which names the pool; on an EKS group of NVIDIA
        GPUs also those that tell NVIDIA's device plugin and the cluster-autoscaler so
        (:func:`functions.core.eks_gpus.node_labels`), unless the study gives them itself."""
        gpus = eks_gpus.node_labels(self.machine_types) if self.provider == EKS else {}
        return {**gpus, **dict(self.labels), POOL_LABEL: self.name}

    @property
    def selector(self) -> tuple[str, str]:
        """The node label that the provider sets to the pool's name, for trials' nodeSelector."""
        return SELECTOR_KEYS[self.provider], self.name

    def to_dict(self) -> dict[str, Any]:
        machine = ({"machineType": self.machine_types[0]} if self.provider == GKE
                   else {"instanceTypes": list(self.machine_types)})
        out: dict[str, Any] = {"name": self.name, "provider": self.provider, "capacity": self.capacity, **machine,
                               "maxNodes": self.max_nodes, "shared": self.shared}
        if self.disk_size_gb is not None:
            out["diskSizeGb"] = self.disk_size_gb
        if self.accelerators:
            out["accelerators"] = [{"type": t, "count": c} for t, c in self.accelerators]
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.price_per_node_hour is not None:
            out["pricePerNodeHour"] = self.price_per_node_hour
        if self.currency is not None:
            out["currency"] = self.currency
        return out


def owner_value(uid: str) -> str:
    """A study uid as a label value every cloud accepts (GCE allows lower-case letters, digits,
    '_' and '-', at most 63 characters)."""
    return re.sub(r"[^a-z0-9_-]", "_", uid.lower())[:63]


def installation_value(identity: str) -> str:
    """An installation's identity (:func:`functions.core.installation.identity`) as a value every
    cloud's labels take (GCE's: lower-case letters, digits, '_' and '-', at most 63): itself
    where it is one, else its lower-cased safe part and a digest of the whole identity, so two
    identities that differ (in case, or in a '.') never share a value."""
    if _GCE_VALUE.fullmatch(identity):
        return identity
    digest = hashlib.sha256(identity.encode()).hexdigest()[:_DIGEST]
    readable = re.sub(r"[^a-z0-9_-]+", "-", identity.lower())[:63 - _DIGEST - 1].strip("-_")
    return f"{readable}-{digest}" if readable else digest


def default_pool_name(study: str) -> str:
    """``katuna-<study>``, shortened with a hash to fit GKE's 40 characters."""
    name = f"katuna-{study}"
    if len(name) <= 40:
        return name
    digest = hashlib.sha256(study.encode()).hexdigest()[:8]
    return f"katuna-{study[:24].rstrip('-')}-{digest}"


def place_trials(cluster: Cluster, pool: NodePool | None) -> Cluster:
    """The trial Jobs' placement: on the pool's nodes, tolerating its taint."""
    if pool is None:
        return cluster
    key, value = pool.selector
    selector = dict(cluster.node_selector) | {key: value}
    tolerations = cluster.tolerations if TRIAL_TAINT in cluster.tolerations else (*cluster.tolerations, TRIAL_TAINT)
    return replace(cluster, node_selector=tuple(sorted(selector.items())), tolerations=tolerations)

