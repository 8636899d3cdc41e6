"""A namespace's LimitRanges, as the LimitRanger admission plugin applies them to a pod it creates
(plugin/pkg/admission/limitranger; a Job's pod template is not checked, only the pods its
controller makes).

Each item of type ``Container`` is defaulted when the LimitRange is made
(``SetDefaults_LimitRangeItem``): its ``default`` limit from ``max``, its ``defaultRequest`` from
``default``, else from ``min``. Creating a pod, the plugin first fills in what a container (an init
container too) leaves out: each ``default`` limit and ``defaultRequest`` it does not give (after
the API server's defaulting of the pod copied a limit to its absent request), noted in the pod's
``kubernetes.io/limit-ranger`` annotation. Then it refuses (403 Forbidden) a pod one of whose
containers falls outside an item's ``min`` or ``max`` or above its ``maxLimitRequestRatio``, and
one whose sums (its containers' and native sidecars' requests, or an init container's with the
sidecars started before it where more: :mod:`kube_standin.pod_resources`) do so for an item of
type ``Pod``, in its words: ``maximum cpu usage per Container is 200m, but limit is 500m``, every
such problem of every LimitRange together, in brackets and comma-separated where there are more
than one (``utilerrors.NewAggregate``).
"""

from __future__ import annotations

import copy

from kube_standin.pod_resources import pod_amounts
from kube_standin.quota_usage import amount, shown

ANNOTATION = "kubernetes.io/limit-ranger"


def made(limits: list[dict]) -> list[dict]:
    """The items of a LimitRange as the API server stores them, its ``Container`` items defaulted."""
    items = copy.deepcopy(limits)
    for item in items:
        if item.get("type") != "Container":
            continue
        default, request = item.setdefault("default", {}), item.setdefault("defaultRequest", {})
        for name, value in (item.get("max") or {}).items():
            default.setdefault(name, value)
        for name, value in default.items():
            request.setdefault(name, value)
        for name, value in (item.get("min") or {}).items():
            request.setdefault(name, value)
    return items


def default(pod: dict, ranges: list[list[dict]]) -> None:
    """Fill in each container's absent limits and requests from the ``Container`` items of
    ``ranges`` (each LimitRange's items), noting what was set in the pod's annotation."""
    spec, notes = pod["spec"], []
    for group, prefix in (("initContainers", "init container"), ("containers", "container")):
        for container in spec.get(group) or []:
            resources = container.setdefault("resources", {})
            for name, value in (resources.get("limits") or {}).items():
                resources.setdefault("requests", {}).setdefault(name, value)
            for items in ranges:
                for item in items:
                    if item.get("type") == "Container":
                        notes += _merge(container, item, prefix)
    if notes:
        pod["metadata"].setdefault("annotations", {})[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)


def _merge(container: dict, item: dict, prefix: str) -> list[str]:
    """Set the container's limits and requests ``item`` defaults and it lacks; what was set, as
    the annotation says it (``cpu, memory limit for container trial``)."""
    resources, notes = container["resources"], []
    for kind, given in (("requests", "defaultRequest"), ("limits", "default")):
        present = resources.setdefault(kind, {})
        added = sorted(name for name in item.get(given) or {} if name not in present)
        for name in added:
            present[name] = item[given][name]
        if added:
            notes.append(f"{', '.join(added)} {kind[:-1]} for {prefix} {container.get('name')}")
    return notes


def refusal(pod: dict, ranges: list[list[dict]]) -> str | None:
    """What the plugin refuses in the defaulted ``pod`` (see the module), or None."""
    spec, errors = pod["spec"], []
    for items in ranges:
        for item in items:
            if item.get("type") == "Container":
                for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
                    resources = container.get("resources") or {}
                    errors += _problems("Container", item, resources.get("requests") or {},
                                        resources.get("limits") or {})
            elif item.get("type") == "Pod":
                errors += _problems("Pod", item, _pod_sum(spec, "requests"), _pod_sum(spec, "limits"))
    unique = list(dict.fromkeys(errors))
    if not unique:
        return None
    return unique[0] if len(unique) == 1 else f"[{', '.join(unique)}]"


def _pod_sum(spec: dict, kind: str) -> dict[str, str]:
    """The pod's requests or limits as a whole (:func:`~kube_standin.pod_resources.pod_amounts`)."""
    return {name: shown(*value) for name, value in pod_amounts(spec, kind).items()}


def _problems(kind: str, item: dict, requests: dict, limits: dict) -> list[str]:
    """What ``item``'s min, max and ratio refuse in ``requests`` and ``limits`` (``minConstraint``,
    ``maxConstraint``, ``limitRequestRatioConstraint``), each resource in name order."""
    found = []
    for name, enforced in sorted((item.get("min") or {}).items()):
        floor, shown_floor = amount(enforced)[0], _canonical(enforced)
        if name not in requests:
            found.append(f"minimum {name} usage per {kind} is {shown_floor}.  No request is specified")
        elif amount(requests[name])[0] < floor:
            found.append(f"minimum {name} usage per {kind} is {shown_floor}, but request is {_canonical(requests[name])}")
        elif name in limits and amount(limits[name])[0] < floor:
            found.append(f"minimum {name} usage per {kind} is {shown_floor}, but limit is {_canonical(limits[name])}")
    for name, enforced in sorted((item.get("max") or {}).items()):
        ceiling, shown_ceiling = amount(enforced)[0], _canonical(enforced)
        if name not in limits:
            found.append(f"maximum {name} usage per {kind} is {shown_ceiling}.  No limit is specified")
        elif amount(limits[name])[0] > ceiling:
            found.append(f"maximum {name} usage per {kind} is {shown_ceiling}, but limit is {_canonical(limits[name])}")
        elif name in requests and amount(requests[name])[0] > ceiling:
            found.append(f"maximum {name} usage per {kind} is {shown_ceiling}, but request is "
                         f"{_canonical(requests[name])}")
    for name, enforced in sorted((item.get("maxLimitRequestRatio") or {}).items()):
        said = f"{name} max limit to request ratio per {kind} is {_canonical(enforced)}, but"
        request, limit = amount(requests.get(name, 0))[0], amount(limits.get(name, 0))[0]
        if not request:
            found.append(f"{said} no request is specified or request is 0")
        elif not limit:
            found.append(f"{said} no limit is specified or limit is 0")
        elif limit / request > amount(enforced)[0]:
            found.append(f"{said} provided ratio is {float(limit / request):f}")
    return found


def _canonical(value: object) -> str:
    """A quantity as the plugin prints it (``Quantity.String``)."""
    return shown(*amount(value))
