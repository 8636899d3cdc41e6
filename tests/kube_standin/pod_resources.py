"""A pod's requests or limits as a whole, as Kubernetes sums them for the scheduler's fit, the
ResourceQuota's usage and a LimitRange's ``Pod`` items (``AggregateContainerRequests`` and
``AggregateContainerLimits``, k8s.io/component-helpers/resource/helpers.go; the LimitRanger's own
copy, plugin/pkg/admission/limitranger).

Its containers run together, so theirs add up; a native sidecar (an init container with
``restartPolicy: Always``) keeps running beside them, so it adds to that sum too. The other init
containers run one at a time before the containers, each beside the sidecars started before it:
the pod needs, of each resource, the most of the containers' sum (sidecars included) and of
every init container's own plus those sidecars'. A pod that gives resources of its own
(pod-level ``resources``: cpu, memory, huge pages) counts those instead. Each amount keeps
whether it was written in binary units (``Mi``, ``Gi``), as the first container giving it
wrote it, for printing.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from kube_standin.objects import quantity

Amounts = dict[str, tuple[Decimal, bool]]
"""Amounts by resource name, each with whether it is written in binary units."""
POD_LEVEL = ("cpu", "memory")
"""The resources a pod may give at pod level, besides huge pages (``hugepages-*``)."""


def container_amounts(container: dict, kind: str) -> Amounts:
    """A container's requests (its limits standing for those it does not give, as the API
    server's defaulting of a pod copies them) or its limits."""
    resources = container.get("resources") or {}
    given = dict(resources.get("limits") or {}) if kind == "requests" else {}
    given.update(resources.get(kind) or {})
    return {name: (quantity(str(value)), str(value).strip().endswith("i")) for name, value in given.items()}


def summed(amounts: Iterable[Amounts]) -> Amounts:
    """The sum of ``amounts``, each in the units of the first that gives it."""
    total: Amounts = {}
    for each in amounts:
        for name, (value, binary) in each.items():
            before, was_binary = total.get(name, (Decimal(0), binary))
            total[name] = (before + value, was_binary if before else binary)
    return total


def pod_amounts(spec: dict, kind: str) -> Amounts:
    """The pod's ``kind`` (``requests`` or ``limits``) as a whole (see the module)."""
    total = summed(container_amounts(c, kind) for c in spec.get("containers") or [])
    sidecars: Amounts = {}
    peak: Amounts = {}
    for init in spec.get("initContainers") or []:
        own = container_amounts(init, kind)
        if init.get("restartPolicy") == "Always":
            total = summed([total, own])
            sidecars = summed([sidecars, own])
            running = sidecars
        else:
            running = summed([own, sidecars])
        for name, (value, binary) in running.items():
            if name not in peak or value > peak[name][0]:
                peak[name] = (value, binary)
    for name, (value, binary) in peak.items():
        if name not in total or value > total[name][0]:
            total[name] = (value, binary)
    total.update(_pod_level(spec, kind, total))
    return total


def _pod_level(spec: dict, kind: str, containers: Amounts) -> Amounts:
    """The pod's own ``resources`` (cpu, memory, huge pages: ``IsSupportedPodLevelResource``),
    which stand for its containers' (``PodRequests``, ``PodLimits``); a pod-level limit stands
    for its request where no container asks for that resource (``defaultPodRequests``)."""
    resources = spec.get("resources") or {}
    given = container_amounts({"resources": {kind: resources.get(kind) or {}}}, kind)
    if kind == "requests":
        limited = container_amounts({"resources": {"limits": resources.get("limits") or {}}}, "limits")
        given = {**{name: value for name, value in limited.items() if name not in containers}, **given}
    return {name: value for name, value in given.items() if name in POD_LEVEL or name.startswith("hugepages-")}
