"""What the API server's pod-template validation refuses in the fields a study reaches: a
container's resources (names, quantities, requests against limits), the node selector,
tolerations, the service account's name and a container's own restart policy. Each problem is a field path and the API server's
reason for it (``Invalid value: ...``, ``Unsupported value: ...``, ``Required value: ...``)."""

from __future__ import annotations

import json

from kube_standin.names import SUBDOMAIN_FORMAT, label_value_problems, qualified_name_problems
from kube_standin.objects import DNS_SUBDOMAIN, quantity

CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
OPERATORS = ("Equal", "Exists")


def pod_problems(path: str, pod: dict) -> list[tuple[str, str]]:
    """The node selector, tolerations, service account name and containers' restart policies of
    the pod spec at ``path``."""
    problems = []
    for key, value in (pod.get("nodeSelector") or {}).items():
        problems += [(f"{path}.nodeSelector", f"Invalid value: {json.dumps(key)}: {m}")
                     for m in qualified_name_problems(key)]
        problems += [(f"{path}.nodeSelector", f"Invalid value: {json.dumps(value)}: {m}")
                     for m in label_value_problems(str(value))]
    for index, toleration in enumerate(pod.get("tolerations") or []):
        problems += _toleration_problems(f"{path}.tolerations[{index}]", toleration)
    account = pod.get("serviceAccountName") or ""
    if account and (not DNS_SUBDOMAIN.match(account) or len(account) > 253):
        problems.append((f"{path}.serviceAccountName", f"Invalid value: {json.dumps(account)}: {SUBDOMAIN_FORMAT}"))
    return problems + _restart_problems(path, pod)


def _restart_problems(path: str, pod: dict) -> list[tuple[str, str]]:
    """A container's own ``restartPolicy``: only an init container may set one, and only
    ``Always``, which makes it a native sidecar (``validateInitContainers``, ``validateContainers``)."""
    problems = [(f"{path}.containers[{index}].restartPolicy", "Forbidden: may not be set for non-init containers")
                for index, container in enumerate(pod.get("containers") or [])
                if container.get("restartPolicy") is not None]
    return problems + [
        (f"{path}.initContainers[{index}].restartPolicy",
         f'Unsupported value: {json.dumps(policy)}: supported values: "Always"')
        for index, container in enumerate(pod.get("initContainers") or [])
        if (policy := container.get("restartPolicy")) not in (None, "Always")]


def create_problems(pod: dict) -> list[tuple[str, str]]:
    """What the API server refuses in a pod it creates but takes in a pod template (a Job's, which
    is created): an image with leading or trailing whitespace (``validateContainersOnlyForPod``);
    and a request its LimitRange's default limit leaves above that limit (the pod is validated after
    its mutating admission, :mod:`kube_standin.limit_ranges`)."""
    spec = pod.get("spec") or {}
    containers = [(f"spec.{group}[{index}]", container) for group in ("containers", "initContainers")
                  for index, container in enumerate(spec.get(group) or [])]
    return [(f"{path}.image", f"Invalid value: {json.dumps(image)}: must not have leading or trailing whitespace")
            for path, container in containers if (image := container.get("image") or "") != image.strip()] + [
        problem for path, container in containers
        for problem in resource_problems(f"{path}.resources", container.get("resources") or {})]


def _toleration_problems(path: str, toleration: dict) -> list[tuple[str, str]]:
    """A toleration's key, operator and value (the API server files value problems under
    ``operator``), and effect."""
    key, operator = toleration.get("key") or "", toleration.get("operator") or ""
    value, effect = toleration.get("value") or "", toleration.get("effect") or ""
    problems = [(f"{path}.key", f"Invalid value: {json.dumps(key)}: {m}") for m in qualified_name_problems(key)
                if key]
    if not key and operator != "Exists":
        problems.append((f"{path}.operator", f"Invalid value: {json.dumps(operator)}: operator must be Exists when "
                                             "`key` is empty, which means \"match all values and all keys\""))
    if toleration.get("tolerationSeconds") is not None and effect != "NoExecute":
        problems.append((f"{path}.effect", f"Invalid value: {json.dumps(effect)}: effect must be 'NoExecute' when "
                                           "`tolerationSeconds` is set"))
    if operator in ("", "Equal"):
        problems += [(f"{path}.operator", f"Invalid value: {json.dumps(value)}: {m}")
                     for m in label_value_problems(value)]
    elif operator == "Exists" and value:
        problems.append((f"{path}.operator", f"Invalid value: {json.dumps(value)}: value must be empty when "
                                             "`operator` is 'Exists'"))
    elif operator != "Exists":
        problems.append((f"{path}.operator", f"Unsupported value: {json.dumps(operator)}: supported values: "
                                             + ", ".join(json.dumps(o) for o in OPERATORS)))
    if effect and effect not in EFFECTS:
        problems.append((f"{path}.effect", f"Unsupported value: {json.dumps(effect)}: supported values: "
                                           + ", ".join(json.dumps(e) for e in EFFECTS)))
    return problems


def resource_problems(path: str, resources: dict) -> list[tuple[str, str]]:
    """A container's resource names and quantities, and each request against its limit: equal
    for what cannot be overcommitted (extended resources such as ``nvidia.com/gpu``, hugepages),
    at most the limit otherwise; hugepages only beside cpu or memory."""
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    problems = []
    for kind, named in (("limits", limits), ("requests", requests)):
        for name, value in named.items():
            problems += _quantity_problems(f"{path}.{kind}[{name}]", name, value)
    named = {*requests, *limits}
    if any(name.startswith("hugepages-") for name in named) and not named & {"cpu", "memory"}:
        problems.append((path, "Forbidden: HugePages require cpu or memory"))
    for name, value in requests.items():
        if name in limits and not overcommitted(name) and quantity(value) != quantity(limits[name]):
            problems.append((f"{path}.requests", f"Invalid value: {json.dumps(str(value))}: must be equal to {name} "
                                                 f"limit of {limits[name]}"))
        elif name in limits and quantity(value) > quantity(limits[name]):
            problems.append((f"{path}.requests", f"Invalid value: {json.dumps(str(value))}: must be less than or "
                                                 f"equal to {name} limit of {limits[name]}"))
        elif name not in limits and not overcommitted(name):
            problems.append((f"{path}.limits", "Required value: Limit must be set for non overcommitable resources"))
    return problems


def overcommitted(name: str) -> bool:
    """Whether requests of ``name`` may be below its limit: Kubernetes' own resources, not hugepages."""
    return ("/" not in name or "kubernetes.io/" in name) and not name.startswith("hugepages-")


def _quantity_problems(path: str, name: str, value: object) -> list[tuple[str, str]]:
    """A container resource's name (standard, or fully qualified) and its quantity (not
    negative; whole for extended resources)."""
    shown = json.dumps(str(value))
    if "/" not in name and name not in CONTAINER_RESOURCES and not name.startswith("hugepages-"):
        return [(path, f"Invalid value: {json.dumps(name)}: must be a standard resource for containers")]
    if naming := qualified_name_problems(name):
        return [(path, f"Invalid value: {json.dumps(name)}: {m}") for m in naming]
    if not overcommitted(name) and name.startswith("requests."):
        return [(path, f"Invalid value: {json.dumps(name)}: doesn't follow extended resource name standard")]
    if quantity(value) < 0:
        return [(path, f"Invalid value: {shown}: must be greater than or equal to 0")]
    extended = not overcommitted(name) and not name.startswith("hugepages-")
    return [(path, f"Invalid value: {shown}: must be an integer")] if extended and quantity(value) % 1 else []
