"""The rules Kubernetes' API server applies to the pod-spec fields a study sets (container
resources, node selector, tolerations, service account), so a study that breaks them is
refused when it is submitted, naming the field, instead of each trial's Job being refused.

Resource names are ``cpu``, ``memory``, ``ephemeral-storage``, ``hugepages-<size>``, katuna's
``gpu`` (``nvidia.com/gpu``) or a fully qualified extended resource (``example.com/fpga``);
extended resources cannot be overcommitted or split, so their quantities are whole numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from functions.core.labels import KEY_EXPECTED, PREFIX, VALUE_EXPECTED, valid_key, valid_value
from functions.core.reader import Reader, join, kind_of

QUANTITY = re.compile(r"\+?(?P<number>[0-9]+(\.[0-9]*)?|\.[0-9]+)(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]+)?")
CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
ALIASES = {"gpu": "nvidia.com/gpu"}
"""Short names katuna takes in ``trialTemplate.resources`` for an extended resource."""
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
TOLERATION_FIELDS = {"key", "operator", "value", "effect", "tolerationSeconds"}


def is_dns_subdomain(name: str) -> bool:
    return bool(PREFIX.fullmatch(name)) and len(name) <= 253


def resource_problem(name: str, value: str) -> str | None:
    """Why a container may not request ``value`` of resource ``name``; None when it may."""
    full = ALIASES.get(name, name)
    if "/" not in full and full not in CONTAINER_RESOURCES and not full.startswith("hugepages-"):
        return (f"{name!r} is no container resource; expected cpu, memory, ephemeral-storage, hugepages-<size>, "
                "gpu or a fully qualified extended resource such as nvidia.com/gpu")
    if "/" in full and (not valid_key(full) or full.startswith("requests.")):
        return f"{name!r} is no extended resource name; expected a DNS prefix, '/' and a name, such as nvidia.com/gpu"
    found = QUANTITY.fullmatch(value)
    if found is None:
        return f"expected a quantity of 0 or more (such as 500m, 2Gi or 1), got {value!r}"
    if _extended(full) and not _whole(found["number"], found["suffix"] or ""):
        return f"{full} cannot be split: expected a whole number, got {value!r}"
    return None


def _extended(name: str) -> bool:
    """An extended resource: not Kubernetes' own, so never overcommitted and counted in units."""
    return "/" in name and "kubernetes.io/" not in name


def _whole(number: str, suffix: str) -> bool:
    """Whether a quantity is a whole number of units (``2``, ``1.0``, ``1k``, ``1e3``; not ``0.5`` or ``500m``)."""
    scale = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3")}
    exponent = Decimal(f"1{suffix}") if suffix[:1] in ("e", "E") else scale.get(suffix, Decimal(1))
    amount = Decimal(number) * exponent
    return amount == amount.to_integral_value()


def check_node_selector(r: Reader, selector: Mapping[Any, Any], path: str) -> None:
    """Node-selector entries are labels: each key a label key, each value a label value."""
    for key, value in selector.items():
        where = f"{path}.{key}"
        if not valid_key(key):
            r.fail(where, f"expected {KEY_EXPECTED}")
        elif not isinstance(value, str):
            r.fail(where, "expected a string (quote values such as \"true\")")
        elif not valid_value(value):
            r.fail(where, f"expected {VALUE_EXPECTED}, got {value!r}")


def check_toleration(r: Reader, data: Any, path: str) -> None:
    """A toleration as the API server takes it: a key (empty only with ``Exists``, which then
    tolerates every taint), operator ``Equal`` (the default) with a label value or ``Exists``
    without one, an effect of NoSchedule, PreferNoSchedule or NoExecute (empty: all), and
    ``tolerationSeconds`` only with NoExecute, the one effect that evicts."""
    if not isinstance(data, Mapping):
        r.fail(path, f"expected a mapping with key, operator, value, effect, got {kind_of(data)}")
        return
    item = r.mapping(data, path, TOLERATION_FIELDS)
    key, operator, value, effect = (r.get(item, f, path, "str") or "" for f in ("key", "operator", "value", "effect"))
    seconds = r.get(item, "tolerationSeconds", path, "int")
    if key and not valid_key(key):
        r.fail(join(path, "key"), f"expected {KEY_EXPECTED}, got {key!r}")
    if operator not in ("", "Equal", "Exists"):
        r.fail(join(path, "operator"), f"expected Equal or Exists, got {operator!r}")
    elif operator == "Exists" and value:
        r.fail(join(path, "value"), "expected no value with operator Exists, which matches every value of the key")
    elif operator != "Exists" and not key:
        r.fail(join(path, "operator"), "expected Exists without a key (tolerate every taint), or a key")
    elif operator != "Exists" and not valid_value(value):
        r.fail(join(path, "value"), f"expected {VALUE_EXPECTED}, got {value!r}")
    if effect and effect not in EFFECTS:
        r.fail(join(path, "effect"), f"expected NoSchedule, PreferNoSchedule, NoExecute or nothing, got {effect!r}")
    if seconds is not None and effect != "NoExecute":
        r.fail(join(path, "tolerationSeconds"), "only with effect NoExecute: other effects never evict a pod")
