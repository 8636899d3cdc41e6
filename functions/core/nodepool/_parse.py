"""The ``nodePool`` section of a study read, and refused as each cloud would refuse it: a pool
name, machine or instance types, disk, accelerators and node labels the cloud takes, within what
the cloud and the service's operator allow (the labels' checks: :mod:`functions.core.nodepool._node_labels`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from functions.core import eks_ami, gpus
from functions.core.limits import DEFAULTS, EksQuotas, Limits
from functions.core.nodepool._node_labels import read_labels
from functions.core.nodepool._pool import (
    CAPACITIES,
    EKS,
    GKE,
    PREEMPTIBLE,
    PROVIDERS,
    SPOT,
    NodePool,
    default_pool_name,
)
from functions.core.reader import Reader, join, shown

MAX_PRICE = 1e12
"""The largest ``pricePerNodeHour``: above any machine's price in any currency, and low enough
that a study's cost (at most its pool's nodes for its longest run) stays a finite number."""

DEFAULT_MACHINE = {GKE: ("e2-standard-4",), EKS: ("m5.xlarge", "m5a.xlarge", "m6i.xlarge")}
GKE_NAME = re.compile(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?")
GCE_MACHINE = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
"""A Compute Engine machine type's name, as every Compute Engine resource's (RFC 1035: lower-case
letters, digits and '-', at most 63): one of another shape (``E2-Standard-4``, ``e2 standard 4``)
is none GKE has, and is refused at submission and by the provisioning script's ``--dry-run``,
which asks GKE for no create."""
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
EKS_INSTANCE_TYPES = 20
"""The most instance types EKS takes for a node group ("0-20 instance types", the API
reference's ``CreateNodegroup.instanceTypes``)."""
_FIELDS = {"name", "provider", "capacity", "machineType", "instanceTypes", "maxNodes", "diskSizeGb",
           "accelerators", "labels", "shared", "pricePerNodeHour", "currency"}
CURRENCY = re.compile(r"[A-Z]{3}")
"""A currency's code as ISO 4217 writes it (USD, EUR, JPY)."""


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
    provider = _provider(r, item, path)
    name, shared = _name(r, item, path, study)
    capacity = r.get(item, "capacity", path, "str") or SPOT
    max_nodes = r.get(item, "maxNodes", path, "int")
    disk = r.get(item, "diskSizeGb", path, "int")
    price = _price(r, item, path)
    currency = _currency(r, item, path)
    most = _most_nodes(provider, limits.eks)
    _check_sizes(r, path, provider, capacity, max_nodes, disk, most)
    machines = _machines(r, item, path, provider)
    labels = read_labels(r, item, path, provider, name, machines)
    accelerators = _accelerators(r, item, path, machines[0] if provider == GKE and machines else None)
    if provider is None:
        return None
    _check_for_provider(r, item, path, provider, name, capacity, machines, accelerators, limits.machine_types)
    default_nodes = min(parallelism or 3, limits.pool_nodes, most)
    return NodePool(name=name, provider=provider, capacity=capacity, machine_types=machines,
                    max_nodes=max_nodes or default_nodes, disk_size_gb=disk, accelerators=accelerators,
                    labels=labels, shared=shared, price_per_node_hour=None if price is None else float(price),
                    currency=currency)


def _provider(r: Reader, item: Mapping[str, Any], path: str) -> str | None:
    """``provider``: gke or eks; None where it is missing or neither (the checks of a cloud's own
    fields are then skipped)."""
    provider = r.get(item, "provider", path, "str", required=True)
    if provider is not None and provider not in PROVIDERS:
        r.fail(join(path, "provider"), f"expected gke or eks, got {provider!r}")
        return None
    return provider


def _name(r: Reader, item: Mapping[str, Any], path: str, study: str | None) -> tuple[str, bool]:
    """The pool's ``name`` (left out, one after the ``study``'s) and whether it is ``shared``,
    which needs a name given: studies share a pool by its name."""
    name = r.get(item, "name", path, "str") or default_pool_name(study or "study")
    shared = bool(r.get(item, "shared", path, "bool"))
    if shared and "name" not in item:
        r.fail(join(path, "name"), "required for a shared pool: studies share a pool by its name")
    return name, shared


def _check_sizes(r: Reader, path: str, provider: str | None, capacity: str, max_nodes: int | None,
                 disk: int | None, most: int) -> None:
    """A known ``capacity``, at most the ``most`` nodes the cloud gives one pool, and a boot disk
    the provider's nodes can have (:func:`_check_disk`)."""
    if capacity not in CAPACITIES:
        r.fail(join(path, "capacity"), f"expected spot, preemptible or on-demand, got {capacity!r}")
    if max_nodes is not None and not 1 <= max_nodes <= most:
        r.fail(join(path, "maxNodes"), _too_many(provider, most))
    if disk is not None:
        _check_disk(r, path, provider, disk)


def _check_for_provider(r: Reader, item: Mapping[str, Any], path: str, provider: str, name: str, capacity: str,
                        machines: tuple[str, ...], accelerators: tuple[tuple[str, int], ...],
                        allowed: tuple[str, ...]) -> None:
    """What the ``provider``'s cloud refuses of the pool (:func:`_check_provider_fields`), machine
    types other than the service's operator ``allowed`` (:func:`_check_allowed`), GPUs a GKE
    machine cannot carry (:func:`_check_gpus`), and EKS instance types no one AMI serves."""
    _check_provider_fields(r, path, provider, name, capacity, accelerators)
    defaulted = not {"machineType", "instanceTypes"} & set(item)
    _check_allowed(r, path, provider, machines, allowed, defaulted)
    if provider == GKE:
        _check_gpus(r, path, machines[0], accelerators, defaulted="machineType" not in item)
    mixed = (eks_ami.unsupported_problem(machines) or eks_ami.mixed_problem(machines)) if provider == EKS else None
    if mixed is not None:
        r.fail(join(path, "instanceTypes"), mixed)


def _price(r: Reader, item: Mapping[str, Any], path: str) -> float | int | None:
    """``pricePerNodeHour``: a number from 0 to :data:`MAX_PRICE`; one out of that range, or no
    number at all (``nan``, an infinity), refused in the same words."""
    given = item.get("pricePerNodeHour")
    if isinstance(given, float | int) and not isinstance(given, bool) and not 0 <= given <= MAX_PRICE:
        r.fail(join(path, "pricePerNodeHour"), f"expected a price from 0 to {MAX_PRICE:,.0f} per node-hour, "
                                               f"got {shown(given)}")
        return None
    return r.get(item, "pricePerNodeHour", path, "number")


def _currency(r: Reader, item: Mapping[str, Any], path: str) -> str | None:
    """The currency of ``pricePerNodeHour``, shown with the study's cost: an ISO 4217 code, and
    only beside a price (alone it would name the currency of nothing)."""
    currency = r.get(item, "currency", path, "str")
    if currency is not None and not CURRENCY.fullmatch(currency):
        r.fail(join(path, "currency"), f"expected a currency code of three capital letters (ISO 4217: USD, EUR, "
               f"JPY), got {currency!r}")
        return None
    if currency is not None and "pricePerNodeHour" not in item:
        r.fail(join(path, "currency"), "given without nodePool.pricePerNodeHour, the price it is the currency of")
    return currency


MIN_DISK_GB = {GKE: 10, EKS: 20}
"""The smallest boot disk each provider takes, in GiB."""
EKS_DISK_WHY = (" for an EKS node group: EKS refuses a disk smaller than its Amazon Linux 2023 AMIs' root "
                "snapshot (20 GiB)")
MAX_DISK_GB = {GKE: 65536, EKS: 16384}
"""The largest boot disk each provider's nodes can have, in GiB: Compute Engine's largest
balanced, SSD and Hyperdisk Balanced disk (64 TiB), what GKE's boot disks are; on EKS, the
largest gp2 or gp3 volume a launch template's block device takes ("gp2 and gp3: 1 - 16,384
GiB", EC2's ``LaunchTemplateEbsBlockDeviceRequest``), which katuna's template sizes. A larger
disk is no study's to ask: GKE refuses the pool, and EC2 every launch of an EKS group's nodes,
which then never come."""
_MAX_DISK_WHY = {GKE: " for a GKE node pool: Compute Engine's largest disk is 64 TiB",
                 EKS: " for an EKS node group: EC2 launches no node with a gp2 or gp3 boot volume above 16,384 GiB"}


def _check_disk(r: Reader, path: str, provider: str | None, disk: int) -> None:
    """A boot disk the provider's nodes can have (:data:`MIN_DISK_GB`, :data:`MAX_DISK_GB`)."""
    least, most = MIN_DISK_GB.get(provider or GKE, MIN_DISK_GB[GKE]), MAX_DISK_GB.get(provider or GKE, MAX_DISK_GB[GKE])
    if disk < least:
        r.fail(join(path, "diskSizeGb"), f"expected at least {least}" + (EKS_DISK_WHY if provider == EKS else ""))
    elif disk > most:
        r.fail(join(path, "diskSizeGb"), f"expected at most {most}" + _MAX_DISK_WHY.get(provider or "", ""))


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
    """Accelerators the GKE machine type cannot carry, or not so many: GKE would refuse the pool."""
    hint = f" ({machine} is the default; set {join(path, 'machineType')})" if defaulted else ""
    for i, (kind, count) in enumerate(accelerators):
        problem = gpus.accelerator_problem(machine, kind)
        if problem is not None:
            r.fail(f"{path}.accelerators[{i}].type", f"{problem}{hint}")
        elif (problem := gpus.count_problem(machine, kind, count)) is not None:
            r.fail(f"{path}.accelerators[{i}].count", f"{problem}{hint}")


def _machines(r: Reader, item: Mapping[str, Any], path: str, provider: str | None) -> tuple[str, ...]:
    machine = r.get(item, "machineType", path, "str")
    types = r.get(item, "instanceTypes", path, "list")
    for i, value in enumerate(types or []):
        if not isinstance(value, str) or not value:
            r.fail(f"{path}.instanceTypes[{i}]", "expected an EC2 instance type such as m5.xlarge")
    _once(r, types or [], f"{path}.instanceTypes", "instance type")
    if types is not None and not types:
        r.fail(join(path, "instanceTypes"), "expected at least one instance type")
    if types is not None and len(types) > EKS_INSTANCE_TYPES:
        r.fail(join(path, "instanceTypes"), f"expected at most {EKS_INSTANCE_TYPES} instance types (EKS takes no more "
                                            f"for a node group), got {len(types)}")
    if provider == GKE and types is not None:
        r.fail(join(path, "instanceTypes"), "EKS only; a GKE pool takes one machineType")
    if provider == EKS and machine is not None:
        r.fail(join(path, "machineType"), "GKE only; an EKS node group takes instanceTypes (a list)")
    if provider == GKE and machine and not GCE_MACHINE.fullmatch(machine):
        r.fail(join(path, "machineType"), "expected a Compute Engine machine type: lower-case letters, digits and "
                                          f"'-', such as e2-standard-4, got {machine!r}")
    if provider is None:
        return ()
    if provider == GKE:
        return (machine,) if machine else DEFAULT_MACHINE[GKE]
    return tuple(t for t in types or () if isinstance(t, str) and t) or DEFAULT_MACHINE[EKS]



def _accelerators(r: Reader, item: Mapping[str, Any], path: str, machine: str | None) -> tuple[tuple[str, int], ...]:
    """Each GPU model and count; a count left out is what a GKE ``machine`` comes with (8 for
    ``a3-highgpu-8g``), else 1."""
    out: list[tuple[str, int]] = []
    kinds: list[Any] = []
    for i, entry in enumerate(r.get(item, "accelerators", path, "list") or []):
        where = f"{path}.accelerators[{i}]"
        fields = r.mapping(entry, where, {"type", "count"})
        kind = r.get(fields, "type", where, "str", required=True)
        count = r.get(fields, "count", where, "int")
        kinds.append(kind)
        if count is not None and count < 1:
            r.fail(join(where, "count"), "expected an integer >= 1")
        if kind is not None:
            out.append((kind, count or (machine and gpus.built_in_count(machine)) or 1))
    _once(r, kinds, f"{path}.accelerators", "accelerator type", suffix=".type")
    return tuple(out)


def _once(r: Reader, values: list[Any], path: str, what: str, suffix: str = "") -> None:
    """Refuse an item given again (the provisioning script's ``--instance-types`` wording): it
    adds nothing, and what the cloud does with a list repeating one is not documented, so the
    typo behind it (the item meant instead) is named at the repeat."""
    for i, value in enumerate(values):
        if isinstance(value, str) and value and value in values[:i]:
            r.fail(f"{path}[{i}]{suffix}", f"{value} given twice; expected each {what} once")

