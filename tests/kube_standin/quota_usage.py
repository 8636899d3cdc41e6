"""What a pod counts towards its namespace's ResourceQuota, and the quota admission's refusal of a
create that would take the quota's usage past its ``hard`` (plugin/pkg/admission/resourcequota,
pkg/quota/v1/evaluator/core/pods.go).

A pod that has not ended counts ``pods=1`` and its compute (``podComputeUsageHelper``): its
requests (the most of its containers' sum and of each init container's, native sidecars running
beside both: :mod:`kube_standin.pod_resources`, as ``PodRequests`` sums them) as
``cpu``/``requests.cpu``, ``memory``/``requests.memory``, ``ephemeral-storage``/
``requests.ephemeral-storage``, and ``hugepages-*``/``requests.hugepages-*``; its limits as
``limits.cpu``, ``limits.memory``, ``limits.ephemeral-storage``; an extended resource (a name with a
domain: ``nvidia.com/gpu``) only as ``requests.<name>``. A limit given without its request counts as
that request too (the API server's defaulting of a pod copies it there before admission). An ended
pod (``Succeeded``, ``Failed``) counts nothing, so the quota frees as pods end or go.

The refusal names each resource the create takes past ``hard``, sorted, as
``exceeded quota: NAME, requested: requests.cpu=2, used: requests.cpu=3, limited:
requests.cpu=4`` (``prettyPrint``, each quantity in its canonical form).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from kube_standin.objects import quantity
from kube_standin.pod_resources import pod_amounts, summed

Usage = dict[str, tuple[Decimal, bool]]
"""Amounts by quota resource, each with whether it is written in binary units (``Mi``, ``Gi``)."""
STANDARD = ("cpu", "memory", "ephemeral-storage")
"""The resources whose requests count under their own name and ``requests.``, and limits under ``limits.``."""
_DECIMAL = ((Decimal(10) ** 18, "E"), (Decimal(10) ** 15, "P"), (Decimal(10) ** 12, "T"), (Decimal(10) ** 9, "G"),
            (Decimal(10) ** 6, "M"), (Decimal(10) ** 3, "k"), (Decimal(1), ""), (Decimal("0.001"), "m"),
            (Decimal("0.000001"), "u"), (Decimal("0.000000001"), "n"))
_BINARY = ((Decimal(2) ** 60, "Ei"), (Decimal(2) ** 50, "Pi"), (Decimal(2) ** 40, "Ti"), (Decimal(2) ** 30, "Gi"),
           (Decimal(2) ** 20, "Mi"), (Decimal(2) ** 10, "Ki"))


def amount(text: object) -> tuple[Decimal, bool]:
    """A quantity, and whether it is written in binary units."""
    return quantity(str(text)), str(text).strip().endswith("i")


def shown(value: Decimal, binary: bool) -> str:
    """A quantity in Kubernetes' canonical form: the largest unit that leaves a whole number
    (``1Gi``, ``500m``, ``2k``), binary units only where it was written in them."""
    if binary and value == value.to_integral_value():
        for size, unit in _BINARY:
            if value >= size and value % size == 0:
                return f"{int(value / size)}{unit}"
        return str(int(value))
    for size, unit in _DECIMAL:
        scaled = value / size
        if value and abs(value) >= size and scaled == scaled.to_integral_value():
            return f"{int(scaled)}{unit}"
    return "0" if not value else f"{int((value * 10 ** 9).to_integral_value())}n"


def pod_usage(spec: dict) -> Usage:
    """What a pod that has not ended counts towards a quota (see the module)."""
    requests, limits = pod_amounts(spec, "requests"), pod_amounts(spec, "limits")
    usage: Usage = {"pods": (Decimal(1), False)}
    for name in STANDARD:
        if name in requests:
            usage[name] = usage[f"requests.{name}"] = requests[name]
        if name in limits:
            usage[f"limits.{name}"] = limits[name]
    for name, value in requests.items():
        if name.startswith("hugepages-"):
            usage[name] = usage[f"requests.{name}"] = value
        elif "/" in name and "kubernetes.io/" not in name:
            usage[f"requests.{name}"] = value
    return usage


def added(usages: Iterable[Usage]) -> Usage:
    """The sum of ``usages``, each amount in the units of the first that gives it."""
    return summed(usages)


def refusal(quota: str, hard: dict[str, int | str], used: Usage, requested: Usage) -> str | None:
    """The quota admission's words for a create that would take ``used`` plus ``requested`` past
    ``hard`` (only the resources the quota tracks count), or None when it fits."""
    limits = {name: amount(value) for name, value in hard.items()}
    exceeded = sorted(name for name, (value, _) in requested.items()
                      if name in limits and used.get(name, (Decimal(0), False))[0] + value > limits[name][0])
    if not exceeded:
        return None

    def listed(amounts: Usage) -> str:
        return ",".join(f"{name}={shown(*amounts.get(name, (Decimal(0), False)))}" for name in exceeded)

    return (f"exceeded quota: {quota}, requested: {listed(requested)}, used: {listed(used)}, "
            f"limited: {listed(limits)}")
