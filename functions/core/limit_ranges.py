"""Kubernetes resource quantities, and katuna's own containers' resources fitted into the bounds of
their namespace's LimitRanges.

katuna runs containers of its own beside the trials' (the checkpoint init container of
population-based training, the checkpoint-drop Job's container), each asking for small requests
and limits (:data:`~functions.core.checkpoint_volume.RESOURCES`). A namespace's LimitRange may bound
every container: a ``min`` and ``max`` of each resource, and a ``maxLimitRequestRatio`` of a limit
to its request; the API server's LimitRanger refuses a pod one of whose containers is outside them,
and the Job controller would try that pod again for ever. So :func:`fitted` moves each request and
limit into the bounds of every ``Container`` item: at least its ``min``, at most its ``max``, the
request at least the limit over the ratio (the limit lowered to the request times the ratio where
the request cannot rise), never a request above its limit. A container asking for no more than its
bounds is left as it is. Bounds no container can meet (a ``min`` above a ``max`` of two
LimitRanges) are left to the API server, which says so. No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:[eE]([+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")
_UNITS: dict[str, int | Decimal] = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60, "n": Decimal("1e-9"),
          "u": Decimal("1e-6"), "m": Decimal("0.001"), "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12,
          "P": 10 ** 15, "E": 10 ** 18, "": 1}


def quantity(text: object) -> Decimal | None:
    """A resource quantity (``500m``, ``2Gi``, ``1.5``, ``1e3``) in base units; None for text that is none."""
    found = _QUANTITY.match(str(text).strip())
    if found is None:
        return None
    number, exponent, unit = found.groups()
    return Decimal(number) * (Decimal(10) ** int(exponent) if exponent else Decimal(_UNITS[unit or ""]))


def written(name: str, value: Decimal, rounding: str = ROUND_CEILING) -> str:
    """``value`` of the resource ``name`` as a quantity: cpu in whole millicores, memory and
    storage in whole bytes (mebibytes where that is exact), rounded up unless ``rounding`` says."""
    if name == "cpu":
        return f"{int((value * 1000).to_integral_value(rounding=rounding))}m"
    whole = int(value.to_integral_value(rounding=rounding))
    return f"{whole // 2 ** 20}Mi" if whole and whole % 2 ** 20 == 0 else str(whole)


def _bounds(ranges: Iterable[Mapping[str, Any]], kinds: tuple[str, ...], name: str) -> tuple[Decimal | None, ...]:
    """The highest ``min``, lowest ``max`` and lowest ``maxLimitRequestRatio`` of resource
    ``name`` over every item of the LimitRanges' items ``ranges`` of one of ``kinds``."""
    found: dict[str, list[Decimal]] = {"min": [], "max": [], "maxLimitRequestRatio": []}
    for item in ranges:
        if item.get("type") not in kinds:
            continue
        for bound, values in found.items():
            value = quantity((item.get(bound) or {}).get(name, ""))
            if value is not None:
                values.append(value)
    low, high, ratio = found.values()
    return (max(low) if low else None, min(high) if high else None, min(ratio) if ratio else None)


def fitted(resources: Mapping[str, Mapping[str, str]], ranges: Iterable[Mapping[str, Any]],
           alone: bool = False) -> dict[str, dict[str, str]]:
    """``resources`` (requests and limits) moved into the bounds the ``Container`` items of
    ``ranges`` set (see the module), and their ``Pod`` items' too for the container of a pod
    ``alone`` (whose sums are its own); unchanged where they fit."""
    kinds = ("Container", "Pod") if alone else ("Container",)
    items = list(ranges)
    requests, limits = dict(resources.get("requests") or {}), dict(resources.get("limits") or {})
    for name in sorted({*requests, *limits}):
        low, high, ratio = _bounds(items, kinds, name)
        if low is None and high is None and ratio is None:
            continue
        request, limit = quantity(requests.get(name, "")), quantity(limits.get(name, ""))
        request, limit = _fit(request, limit, low, high, ratio)
        if request is not None and quantity(requests[name]) != request:
            requests[name] = written(name, request)
        if limit is not None and quantity(limits[name]) != limit:
            limits[name] = written(name, limit, ROUND_FLOOR)
    return {"requests": requests, "limits": limits}


def _fit(request: Decimal | None, limit: Decimal | None, low: Decimal | None, high: Decimal | None,
         ratio: Decimal | None) -> tuple[Decimal | None, Decimal | None]:
    """A request and limit within ``[low, high]``, the limit at most ``ratio`` times the request."""
    def clamp(value: Decimal | None) -> Decimal | None:
        if value is None:
            return None
        value = max(value, low) if low is not None else value
        return min(value, high) if high is not None else value

    request, limit = clamp(request), clamp(limit)
    if request is not None and limit is not None:
        request = min(request, limit)
        if ratio is not None and limit > request * ratio:
            request = clamp(limit / ratio)
            if request is not None and limit > request * ratio:
                limit = request * ratio
    return request, limit


def fit_containers(pod: Mapping[str, Any], names: Iterable[str], ranges: Iterable[Mapping[str, Any]],
                   alone: bool = False) -> None:
    """Fit the resources of the containers and init containers of the pod spec ``pod`` named
    ``names`` (katuna's own) into the LimitRanges' items ``ranges`` (:func:`fitted`)."""
    own, items = set(names), list(ranges)
    for group in ("initContainers", "containers"):
        for container in pod.get(group) or []:
            if container.get("name") in own and container.get("resources"):
                container["resources"] = fitted(container["resources"], items, alone)
