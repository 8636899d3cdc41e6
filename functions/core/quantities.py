"""The resource quantities of a rendered workload's pod specs, written as strings.

Kubernetes reads a ``resource.Quantity`` from a JSON string or number alike: its
``UnmarshalJSON`` parses the text of the number (k8s.io/apimachinery/pkg/api/resource/quantity.go),
so a trial template written the usual YAML way, ``nvidia.com/gpu: 1`` or ``cpu: 0.5`` unquoted,
is one the API server takes, and Katib runs. Kubernetes' typed clients, the Python one katuna
creates Jobs with included, take only a string there. So katuna writes each number it finds at a
quantity of a pod spec as the text it would be sent as (``1``, ``0.5``, ``1e-05``), which the API
server reads as the same amount. Anything else (a boolean, a string that is no quantity) is left
as it is, for the API server to refuse with its own words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import workload_pods

CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


def as_text(value: Any) -> Any:
    """A number as the text JSON writes it (what the API server parses); anything else unchanged."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return str(value) if isinstance(value, int) else repr(value)


def write_as_text(workload: Mapping[str, Any]) -> None:
    """Write every numeric quantity of the workload's pod specs (:func:`~functions.core.workload_pods.pod_specs`)
    as text, in place: containers' and the pod's ``resources``, ``overhead``, an ``emptyDir``'s
    ``sizeLimit`` and a generic ephemeral volume's claim ``resources``."""
    for _, _, pod in workload_pods.pod_specs(workload):
        for key in CONTAINER_LISTS:
            for container in _mappings(pod.get(key)):
                _requirements(container.get("resources"))
        _requirements(pod.get("resources"))
        _amounts(pod.get("overhead"))
        for volume in _mappings(pod.get("volumes")):
            _volume(volume)


def _volume(volume: Mapping[str, Any]) -> None:
    empty_dir = volume.get("emptyDir")
    if isinstance(empty_dir, dict) and "sizeLimit" in empty_dir:
        empty_dir["sizeLimit"] = as_text(empty_dir["sizeLimit"])
    ephemeral = volume.get("ephemeral")
    claim = ephemeral.get("volumeClaimTemplate") if isinstance(ephemeral, Mapping) else None
    spec = claim.get("spec") if isinstance(claim, Mapping) else None
    if isinstance(spec, Mapping):
        _requirements(spec.get("resources"))


def _requirements(resources: Any) -> None:
    """``requests`` and ``limits`` of a ``resources`` block."""
    if isinstance(resources, Mapping):
        for kind in ("requests", "limits"):
            _amounts(resources.get(kind))


def _amounts(amounts: Any) -> None:
    """Each value of a map of resource names to quantities."""
    if isinstance(amounts, dict):
        for name, value in amounts.items():
            amounts[name] = as_text(value)


def _mappings(value: Any) -> list[Any]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []
