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
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from functions.core import eks_ami, gpus
from functions.core.cluster import TRIAL_TAINT, Cluster
from functions.core.errors import PermanentError, Problem
from functions.core.labels import valid_key, valid_value
from functions.core.limits import DEFAULTS, EksQuotas, Limits
from functions.core.reader import Reader, join

GKE, EKS = "gke", "eks"
PROVIDERS = (GKE, EKS)
SPOT, PREEMPTIBLE, ON_DEMAND = "spot", "preemptible", "on-demand"
CAPACITIES = (SPOT, PREEMPTIBLE, ON_DEMAND)
POOL_LABEL = "katuna.dev/pool"
SELECTOR_KEYS = {GKE: "cloud.google.com/gke-nodepool", EKS: "eks.amazonaws.com/nodegroup"}
DEFAULT_MACHINE = {GKE: ("e2-standard-4",), EKS: ("m5.xlarge", "m5a.xlarge", "m6i.xlarge")}
GKE_NAME = re.compile(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?")
EKS_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?")
"""EKS's node-group name, which katuna also gives the nodes as a label value (``katuna.dev/pool``)
and trials select on: so it starts and ends with a letter or digit, as a label value must."""
GKE_POOL_NODES = 1000
"""GKE's limit of nodes in one node pool: "Nodes per node pool zone: 1,000", a system limit no
quota request raises (GKE's "Quotas and limits" page, cloud.google.com/kubernetes-engine/quotas).
katuna sets a pool's limits pool-wide (``total_max_node_count``); a regional pool could hold
1,000 in each of its zones, but how many zones a pool spans is not known when a study is
submitted, so the figure that holds for every pool is the bound. EKS's bound is its account's
quota (:class:`functions.core.limits.EksQuotas`)."""
GKE_LABEL_CHARACTERS = 1024
"""GKE's bound on a pool's node labels, keys and values together: "up to 1,024 total characters
in a single request" (``NodeConfig.labels`` in the v1 API), katuna's own ``katuna.dev/pool``
among them."""
_KUBERNETES_LABELS = ("kubernetes.io", "k8s.io")
_KUBELET_LABELS = ("kubelet.kubernetes.io", "node.kubernetes.io")
_CLOUD_LABELS = {GKE: ("cloud.google.com", "GKE"), EKS: ("eks.amazonaws.com", "EKS")}
"""Each cloud's own node-label namespace, and the cloud."""
OWNER_KEY = "katuna-study-uid"
"""The label (GKE ``resourceLabels``) or tag (EKS) naming the study whose request created a pool."""
_FIELDS = {"name", "provider", "capacity", "machineType", "instanceTypes", "maxNodes", "diskSizeGb",
           "accelerators", "labels", "shared", "pricePerNodeHour"}


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

    @property
    def node_labels(self) -> dict[str, str]:
        """The study's labels and katuna's own, which names the pool."""
        return {**dict(self.labels), POOL_LABEL: self.name}

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
        return out


def owner_value(uid: str) -> str:
    """A study uid as a label value every cloud accepts (GCE allows lower-case letters, digits,
    '_' and '-', at most 63 characters)."""
    return re.sub(r"[^a-z0-9_-]", "_", uid.lower())[:63]


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


def parse_node_pool(r: Reader, data: Any, study: str | None, parallelism: int | None,
                    limits: Limits = DEFAULTS) -> NodePool | None:
    """The ``nodePool`` section of a study; problems go to ``r``. Left out, ``maxNodes`` is one
    node per parallel trial, capped at ``limits.pool_nodes`` and at what the cloud allows (GKE's
    limit, the EKS account's quota ``limits.eks``; a pool smaller than the study's parallelism
    only makes trials wait for room); given, it is refused past what the cloud allows here, and
    past ``limits`` by
    :func:`functions.core.study_limits.over_limits`."""
    if data is None:
        return None
    path = "nodePool"
    item = r.mapping(data, path, _FIELDS)
    if not isinstance(data, Mapping):
        return None
    provider = r.get(item, "provider", path, "str", required=True)
    if provider is not None and provider not in PROVIDERS:
        r.fail(join(path, "provider"), f"expected gke or eks, got {provider!r}")
        provider = None
    name = r.get(item, "name", path, "str") or default_pool_name(study or "study")
    shared = bool(r.get(item, "shared", path, "bool"))
    if shared and "name" not in item:
        r.fail(join(path, "name"), "required for a shared pool: studies share a pool by its name")
    capacity = r.get(item, "capacity", path, "str") or SPOT
    max_nodes = r.get(item, "maxNodes", path, "int")
    disk = r.get(item, "diskSizeGb", path, "int")
    price = r.get(item, "pricePerNodeHour", path, "number")
    if price is not None and price < 0:
        r.fail(join(path, "pricePerNodeHour"), "expected a price of 0 or more per node-hour")
    if capacity not in CAPACITIES:
        r.fail(join(path, "capacity"), f"expected spot, preemptible or on-demand, got {capacity!r}")
    most = _most_nodes(provider, limits.eks)
    if max_nodes is not None and not 1 <= max_nodes <= most:
        r.fail(join(path, "maxNodes"), _too_many(provider, most))
    least = MIN_DISK_GB.get(provider or GKE, MIN_DISK_GB[GKE])
    if disk is not None and disk < least:
        r.fail(join(path, "diskSizeGb"), f"expected at least {least}" + (EKS_DISK_WHY if provider == EKS else ""))
    labels = _labels(r, item, path, provider, name)
    accelerators = _accelerators(r, item, path)
    machines = _machines(r, item, path, provider)
    if provider is None:
        return None
    _check_provider_fields(r, path, provider, name, capacity, accelerators)
    defaulted = not {"machineType", "instanceTypes"} & set(item)
    _check_allowed(r, path, provider, machines, limits.machine_types, defaulted)
    if provider == GKE:
        _check_gpus(r, path, machines[0], accelerators, defaulted="machineType" not in item)
    mixed = (eks_ami.unsupported_problem(machines) or eks_ami.mixed_problem(machines)) if provider == EKS else None
    if mixed is not None:
        r.fail(join(path, "instanceTypes"), mixed)
    default_nodes = min(parallelism or 3, limits.pool_nodes, most)
    return NodePool(name=name, provider=provider, capacity=capacity, machine_types=machines,
                    max_nodes=max_nodes or default_nodes, disk_size_gb=disk, accelerators=accelerators,
                    labels=labels, shared=shared, price_per_node_hour=None if price is None else float(price))


MIN_DISK_GB = {GKE: 10, EKS: 20}
"""The smallest boot disk each provider takes, in GiB."""
EKS_DISK_WHY = (" for an EKS node group: EKS refuses a disk smaller than its Amazon Linux 2023 AMIs' root "
                "snapshot (20 GiB)")


def _most_nodes(provider: str | None, quotas: EksQuotas) -> int:
    """The most nodes the cloud gives one pool: the EKS account's quota of nodes per managed
    node group, or GKE's limit (also for a provider not yet known)."""
    return quotas.nodes_per_group if provider == EKS else GKE_POOL_NODES


def _too_many(provider: str | None, most: int) -> str:
    if provider == EKS:
        return (f"expected an integer from 1 to {most}: EKS's quota of nodes per managed node group "
                "(a larger group would be refused when it is created; where the account's quota is raised, "
                "set KATUNA_EKS_NODES_PER_GROUP to it)")
    return f"expected an integer from 1 to {most}"


def _check_allowed(r: Reader, path: str, provider: str, machines: tuple[str, ...], allowed: tuple[str, ...],
                   defaulted: bool) -> None:
    """Machine types the service's operator does not allow (``KATUNA_POOL_MACHINE_TYPES``)."""
    field = join(path, "machineType" if provider == GKE else "instanceTypes")
    refused = [(i, machine) for i, machine in enumerate(machines) if allowed and machine not in allowed]
    expected = f"expected one of the machine types this service allows ({', '.join(allowed)}: KATUNA_POOL_MACHINE_TYPES)"
    if not refused:
        return
    if defaulted:
        r.fail(field, f"{expected}; the default, {', '.join(machines)}, is not one: set {field}")
    elif provider == GKE:
        r.fail(field, f"{expected}, got {machines[0]}")
    else:
        for i, machine in refused:
            r.fail(f"{field}[{i}]", f"{expected}, got {machine}")


def _check_provider_fields(r: Reader, path: str, provider: str, name: str, capacity: str,
                           accelerators: tuple[tuple[str, int], ...]) -> None:
    if provider == GKE and not GKE_NAME.fullmatch(name):
        r.fail(join(path, "name"), "expected a GKE node pool name: lower-case letters, digits and '-', "
                                   "starting with a letter, at most 40 characters")
    if provider == EKS and not EKS_NAME.fullmatch(name):
        r.fail(join(path, "name"), "expected an EKS node group name: letters, digits, '-' and '_', starting and "
                                   "ending with a letter or digit (the nodes carry it as a label value), at most 63")
    if provider == EKS and capacity == PREEMPTIBLE:
        r.fail(join(path, "capacity"), "preemptible is GKE's; EKS offers spot or on-demand")
    if provider == EKS and accelerators:
        r.fail(join(path, "accelerators"), "GKE only; on EKS choose GPU instance types (g5.xlarge, say)")


def _check_gpus(r: Reader, path: str, machine: str, accelerators: tuple[tuple[str, int], ...],
                defaulted: bool) -> None:
    """Accelerators the GKE machine type cannot carry: GKE would refuse the pool."""
    for i, (kind, _) in enumerate(accelerators):
        problem = gpus.accelerator_problem(machine, kind)
        if problem is not None:
            hint = f" ({machine} is the default; set {join(path, 'machineType')})" if defaulted else ""
            r.fail(f"{path}.accelerators[{i}].type", f"{problem}{hint}")


def _machines(r: Reader, item: Mapping[str, Any], path: str, provider: str | None) -> tuple[str, ...]:
    machine = r.get(item, "machineType", path, "str")
    types = r.get(item, "instanceTypes", path, "list")
    for i, value in enumerate(types or []):
        if not isinstance(value, str) or not value:
            r.fail(f"{path}.instanceTypes[{i}]", "expected an EC2 instance type such as m5.xlarge")
    if types is not None and not types:
        r.fail(join(path, "instanceTypes"), "expected at least one instance type")
    if provider == GKE and types is not None:
        r.fail(join(path, "instanceTypes"), "EKS only; a GKE pool takes one machineType")
    if provider == EKS and machine is not None:
        r.fail(join(path, "machineType"), "GKE only; an EKS node group takes instanceTypes (a list)")
    if provider is None:
        return ()
    if provider == GKE:
        return (machine,) if machine else DEFAULT_MACHINE[GKE]
    return tuple(t for t in types or () if isinstance(t, str) and t) or DEFAULT_MACHINE[EKS]


def _labels(r: Reader, item: Mapping[str, Any], path: str, provider: str | None,
            pool: str) -> tuple[tuple[str, str], ...]:
    """The nodes' labels, as Kubernetes takes them; EKS takes only keys of at most 63
    characters, prefix included, and no empty value; GKE at most :data:`GKE_LABEL_CHARACTERS`
    in all, with the pool's own label."""
    raw = r.get(item, "labels", path, "mapping") or {}
    out = []
    for key, value in raw.items():
        where = f"{path}.labels.{key}"
        if not valid_key(key):
            r.fail(where, "expected a Kubernetes label key (an optional DNS prefix of at most 253 characters "
                          "and '/', then a name)")
        elif not valid_value(value):
            r.fail(where, "expected a label value: a string of at most 63 letters, digits, '-', '_' or '.'")
        elif provider == EKS and (len(key) > 63 or not value):
            r.fail(where, "EKS takes node labels whose key (prefix included) and value are each 1 to 63 characters")
        elif (reserved := _reserved_label(key, provider)) is not None:
            r.fail(where, reserved)
        else:
            out.append((key, value))
    total = sum(len(key) + len(value) for key, value in [*out, (POOL_LABEL, pool)])
    if provider == GKE and total > GKE_LABEL_CHARACTERS:
        r.fail(join(path, "labels"), f"GKE takes node labels of at most {GKE_LABEL_CHARACTERS} characters in all, "
                                     f"keys and values with katuna's {POOL_LABEL}: these hold {total}")
    return tuple(sorted(out))


def _reserved_label(key: str, provider: str | None) -> str | None:
    """Why a node label is not the study's to set, or None. Kubernetes' own namespaces
    (``kubernetes.io``, ``k8s.io`` and their subdomains) are refused by GKE (400 "Applying
    kubernetes label is not allowed") and, on EKS, by kubelet, which then never starts, so the
    nodes never join: it takes only its own ``kubelet.kubernetes.io`` and ``node.kubernetes.io``.
    The cloud's own namespace holds the labels it sets on its nodes (the pool's name trials
    select on among them), which GKE refuses to have set and EKS's would be overridden."""
    namespace = key.rpartition("/")[0]
    domain, cloud = _CLOUD_LABELS.get(provider or "", ("", ""))
    if domain and _under(namespace, domain):
        return f"expected a label outside {domain}: {cloud} sets the labels of that namespace itself"
    if not any(_under(namespace, reserved) for reserved in _KUBERNETES_LABELS):
        return None
    if provider == EKS and any(_under(namespace, kubelet) for kubelet in _KUBELET_LABELS):
        return None
    if provider == EKS:
        return ("expected a label outside Kubernetes' own namespaces (kubernetes.io, k8s.io) but kubelet.kubernetes.io "
                "and node.kubernetes.io: kubelet refuses the others, and the nodes would never join the cluster")
    return "expected a label outside Kubernetes' own namespaces (kubernetes.io, k8s.io): GKE refuses them"


def _under(namespace: str, domain: str) -> bool:
    """Whether a label's prefix is ``domain`` or one of its subdomains."""
    return namespace == domain or namespace.endswith("." + domain)


def _accelerators(r: Reader, item: Mapping[str, Any], path: str) -> tuple[tuple[str, int], ...]:
    out = []
    for i, entry in enumerate(r.get(item, "accelerators", path, "list") or []):
        where = f"{path}.accelerators[{i}]"
        fields = r.mapping(entry, where, {"type", "count"})
        kind = r.get(fields, "type", where, "str", required=True)
        count = r.get(fields, "count", where, "int")
        if count is not None and count < 1:
            r.fail(join(where, "count"), "expected an integer >= 1")
        if kind is not None:
            out.append((kind, count or 1))
    return tuple(out)


@dataclass(frozen=True)
class PoolChange:
    """What a node-pool request started: an operation to check later (None when nothing is
    pending), and whose pool it is.

    ``created``: this study's request made the pool (a create answered "already exists" by the
    pool this study's earlier create made counts). ``owned``: katuna made it, for this study or
    another. ``adopted``: the pool was not katuna's; its autoscaling settings as found, in the
    provider's own terms, to give back once no study uses it. ``changed``: what the request
    changed at once, with nothing to wait for (an EKS group's missing autoscaler tags written),
    in words, so that it is told rather than "nothing to change".
    """

    operation: str | None = None
    created: bool = False
    owned: bool = False
    adopted: Mapping[str, Any] | None = None
    changed: str | None = None


@dataclass(frozen=True)
class OperationStatus:
    """How a pending operation stands: still running, done, or failed with the cloud's message."""

    done: bool
    error: str | None = None


@dataclass(frozen=True)
class PoolStatus:
    """A pool as the cloud reports it: its state in the provider's words and its node limits."""

    name: str
    state: str
    min_nodes: int
    max_nodes: int
    capacity: str
    machine_types: tuple[str, ...] = ()
    tainted: bool = True
    """Whether the pool's nodes carry the taint trials tolerate (``katuna.dev/trial=true:NoSchedule``)."""
    autoscaling: bool = True
    owner: str | None = None
    """The :data:`OWNER_KEY` value of a pool katuna created, None for any other pool."""
    labels: tuple[tuple[str, str], ...] = ()
    """The labels its nodes get, but for katuna's own :data:`POOL_LABEL`."""
    message: str | None = None
    """What the cloud says of the pool's state, if anything (GKE's ``statusMessage``, EKS's
    health issues): why a pool is in error."""

    def to_dict(self) -> dict[str, Any]:
        return {"pool": self.name, "state": self.state, "minNodes": self.min_nodes, "maxNodes": self.max_nodes,
                "capacity": self.capacity, "machineTypes": list(self.machine_types), "labels": dict(self.labels)}


def adoption_problem(pool: NodePool, found: PoolStatus) -> Problem | None:
    """Why a pool that exists cannot serve the study asking for ``pool``, with the field to
    change; None when it can. A pool without the trial taint runs other workloads, so katuna
    leaves it alone; one of another capacity or machine type would run trials on machines the
    study did not ask for; one whose nodes lack a label the study gives them would run its
    trials on nodes without it (and on EKS, tell the cluster autoscaler otherwise); one without
    autoscaling never grows or shrinks for trials."""
    where = f"node pool {pool.name} exists"
    if not found.tainted:
        return Problem("nodePool.name", f"{where} without the taint {TRIAL_TAINT['key']}={TRIAL_TAINT['value']}:"
                                        "NoSchedule that keeps other workloads off trial nodes; taint it, or name a "
                                        "pool katuna creates for the study")
    if found.capacity != pool.capacity:
        return Problem("nodePool.capacity", f"{where} with {found.capacity} capacity; the study asks for {pool.capacity}")
    if pool.provider == GKE and found.machine_types != pool.machine_types[:1]:
        return Problem("nodePool.machineType", f"{where} with machine type "
                                               f"{', '.join(found.machine_types) or 'unknown'}; "
                                               f"the study asks for {pool.machine_types[0]}")
    if pool.provider == EKS and not set(found.machine_types) <= set(pool.machine_types):
        return Problem("nodePool.instanceTypes", f"{where} with instance types {', '.join(found.machine_types)}; "
                                                 f"the study accepts {', '.join(pool.machine_types)}")
    lacking = [f"{key}={value}" for key, value in pool.labels if dict(found.labels).get(key) != value]
    if lacking:
        return Problem("nodePool.labels", f"{where}, its nodes without the labels {', '.join(lacking)} the study "
                                          "gives them; label the pool so, or leave them out")
    if not found.autoscaling:
        return Problem("nodePool.name", f"{where} without autoscaling; enable it, or name a pool katuna creates "
                                        "for the study")
    return None


def claim(pool: NodePool, found: PoolStatus, owner: str | None, limits: Mapping[str, Any]) -> PoolChange:
    """Whose an existing pool is: the study's own (its earlier create went through), katuna's
    for another study, or one to adopt, whose autoscaling ``limits`` are given back when the last
    study using it ends; raises :class:`NodePoolFailed`, naming the field, when it cannot serve."""
    if owner is not None and found.owner == owner_value(owner):
        return PoolChange(created=True, owned=True)
    problem = adoption_problem(pool, found)
    if problem is not None:
        raise NodePoolFailed(problem.message, problem.path)
    if found.owner is not None:
        return PoolChange(owned=True)
    return PoolChange(adopted=dict(limits))
