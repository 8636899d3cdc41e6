"""Which node a pod fits, as kube-scheduler's filters decide: the node is Ready, its labels
satisfy the pod's ``nodeSelector``, the pod tolerates each NoSchedule/NoExecute taint, and the
node's allocatable cpu, memory and extended resources hold the pod's requests (init containers
and native sidecars counted as Kubernetes counts them, :func:`requests`) on top of those of the
pods already bound there, as does its pod limit. A BestEffort pod (no requests) counts
only against the pod limit."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from kube_standin.objects import quantity
from kube_standin.pod_resources import pod_amounts

TERMINATED = ("Succeeded", "Failed")
_REQUESTS: dict[str, dict[str, Decimal]] = {}
"""Requests by pod uid: a pod's spec never changes, and the scheduler asks often."""


def requests(pod: dict) -> dict[str, Decimal]:
    """The pod's resource requests as the scheduler's fit counts them: its containers' and native
    sidecars' summed, or an init container's (with the sidecars before it) where more
    (:func:`~kube_standin.pod_resources.pod_amounts`; limits stand for absent requests, as
    defaulting does)."""
    uid = pod["metadata"].get("uid") if "metadata" in pod else None
    if uid is not None and uid in _REQUESTS:
        return _REQUESTS[uid]
    total = {name: value for name, (value, _) in pod_amounts(pod["spec"], "requests").items()}
    if uid is not None:
        _REQUESTS[uid] = total
    return total


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    """Whether one of ``tolerations`` matches ``taint`` (the API's matching rules)."""
    for toleration in tolerations or []:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        if toleration.get("operator", "Equal") == "Exists":
            if not toleration.get("key") or toleration["key"] == taint["key"]:
                return True
        elif toleration.get("key") == taint["key"] and (toleration.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))


def misfit(pod: dict, node: dict, bound: list[dict]) -> str | None:
    """Why ``pod`` does not fit ``node`` next to the pods ``bound`` to it, as the scheduler's
    summary words it; None when it fits."""
    if not ready(node) or node["spec"].get("unschedulable"):
        return "node(s) were unschedulable" if ready(node) else "node(s) were not ready"
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod["spec"].get("nodeSelector") or {}).items()):
        return "node(s) didn't match Pod's node affinity/selector"
    for taint in node["spec"].get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(pod["spec"].get("tolerations"), taint):
            return f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
    allocatable = {k: quantity(v) for k, v in node["status"]["allocatable"].items()}
    if len(bound) + 1 > allocatable.get("pods", Decimal(110)):
        return "Too many pods"
    used: Counter = Counter()
    for other in bound:
        used.update(requests(other))
    for name, amount in requests(pod).items():
        if used[name] + amount > allocatable.get(name, Decimal(0)):
            return f"Insufficient {name}"
    return None


def unschedulable_message(reasons: list[str], nodes: int) -> str:
    """``0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match ...``."""
    counts = Counter(reasons)
    summary = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
    return f"0/{nodes} nodes are available: {summary}." if nodes else "no nodes available to schedule pods"


def bound_by_node(pods: list[dict], nodes: list[str]) -> dict[str, list[dict]]:
    """For each of ``nodes``, the pods bound to it that still hold its resources."""
    bound: dict[str, list[dict]] = {name: [] for name in nodes}
    for pod in pods:
        node = pod["spec"].get("nodeName")
        if node in bound and pod["status"].get("phase") not in TERMINATED:
            bound[node].append(pod)
    return bound
