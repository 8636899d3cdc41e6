"""The pods of a Training Operator job's ``ExitCode`` replicas as a look reads them, for
:mod:`functions.core.remade_pods` to count those its operator made again, and the nodes that
tell a preempted pod no look saw end from one that failed on its own."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import partial
from typing import Any

from kubernetes import client

from functions.adapters.kubernetes_client import all_pages, call
from functions.adapters.kubernetes_status import disrupted, status_of
from functions.core.errors import PermanentError, TemporaryError
from functions.core.remade_pods import ROLE_LABEL, Remade, SeenPod

TAKEN_BACK = frozenset({
    "node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready", "node.kubernetes.io/out-of-service",
    "node.kubernetes.io/unschedulable", "ToBeDeletedByClusterAutoscaler", "cloud.google.com/impending-node-termination",
    "aws-node-termination-handler/spot-itn", "karpenter.sh/disrupted", "karpenter.sh/disruption"})
"""Taints of a node whose pods are being stopped for it: its kubelet unreachable or not ready
(the node lifecycle controller's), out of service, cordoned for a drain, scaled down by the
cluster autoscaler (``ToBeDeleted``; not its soft ``DeletionCandidate``, which stops nothing),
a spot VM's notice (GKE's, AWS Node Termination Handler's), or Karpenter's disruption."""
NODE_PAGE = 500
"""Nodes asked for a page at a time where a look reads them all."""
PLACES_READ = 4
"""The most pods whose ``Scheduled`` Event one look reads (one request each); more wait for the next look."""
ASSIGNED = "Successfully assigned "
"""How the scheduler's ``Scheduled`` Event on a pod begins, before ``NAMESPACE/POD to NODE``."""


def seen_pods(pods: list[Any], replicas: Mapping[str, str], container: str) -> list[SeenPod]:
    """Each pod of the ``replicas`` (by replica type lower-cased) among ``pods``: a failed one
    with its ``container``'s end (else the first container's that ended), a disrupted one so."""
    return [_seen(pod, container) for pod in pods if pod.metadata and pod.metadata.uid and pod.metadata.name
            and (pod.metadata.labels or {}).get(ROLE_LABEL) in replicas]


def names_of(pods: list[Any], replicas: Mapping[str, str]) -> dict[str, str]:
    """The replica type, as the job writes it, of each pod name of the ``replicas``."""
    named = {}
    for pod in pods:
        role = (pod.metadata.labels or {}).get(ROLE_LABEL) if pod.metadata else None
        if isinstance(role, str) and role in replicas:
            named[pod.metadata.name] = replicas[role]
    return named


def judge(core: client.CoreV1Api, remade: Remade, namespace: str) -> tuple[Remade, bool]:
    """``remade`` with its pods made again whose end no look saw judged by their nodes, read
    once (:func:`lost_nodes`): a preemption where the node was taken back, else a failure of
    their own; False with ``remade`` as it is where the nodes cannot be read now (the count
    waits for the next look). A pod no look saw bound is judged by the node its ``Scheduled``
    Event in ``namespace`` names (:func:`placed`). Where katuna may not list nodes, they are
    failures, as nothing tells them apart."""
    try:
        remade, complete = placed(core, remade, namespace)
    except TemporaryError:
        return remade, False
    pending = remade.unjudged()
    if not pending:
        return remade, True
    try:
        lost = lost_nodes(core, set(pending.values()))
    except TemporaryError:
        return remade, False
    except PermanentError:
        lost = set()
    return remade.judged(pending, lost), complete


def placed(core: client.CoreV1Api, remade: Remade, namespace: str) -> tuple[Remade, bool]:
    """``remade`` with the node of each pod made again that no look saw bound (seen only
    ``Pending``, then bound and ended between two looks), as the scheduler's ``Scheduled`` Event
    on it says ("Successfully assigned NAMESPACE/POD to NODE"): one request a pod, at most
    :data:`PLACES_READ` a look (True once none is left). A pod with no such Event (never bound,
    or its Event gone), or where katuna may not list Events, is a failure of its own, as before."""
    unplaced = remade.unplaced()
    found: dict[str, str] = {}
    for uid in unplaced[:PLACES_READ]:
        try:
            node = scheduled_on(core, namespace, uid)
        except PermanentError:
            node = None
        if node:
            found[uid] = node
    return remade.placed(found, [uid for uid in unplaced[:PLACES_READ] if uid not in found]), \
        len(unplaced) <= PLACES_READ


def scheduled_on(core: client.CoreV1Api, namespace: str, uid: str) -> str | None:
    """The node the scheduler bound the pod of ``uid`` to, as its ``Scheduled`` Event says (a
    pod is bound once); None where it has none."""
    selector = f"involvedObject.uid={uid},reason=Scheduled"
    events = call(lambda: core.list_namespaced_event(namespace, field_selector=selector).items or [],
                  f"list the Events of pod {uid}")
    said = [e.message for e in events if e.reason == "Scheduled" and (e.message or "").startswith(ASSIGNED)]
    return (said[0].rpartition(" to ")[2] or None) if said else None


def lost_nodes(core: client.CoreV1Api, names: Collection[str]) -> set[str]:
    """Which of the nodes ``names`` are gone, being deleted, not ``Ready`` or tainted for their
    pods to stop (:data:`TAKEN_BACK`): one request, a list of the one node (``list`` is all
    katuna's ClusterRole grants on nodes), or of them all where there are more."""
    wanted = set(names)
    if len(wanted) == 1:
        selector = f"metadata.name={next(iter(wanted))}"
        nodes = call(lambda: core.list_node(field_selector=selector).items or [], f"read node {selector[14:]}")
    else:
        nodes = call(lambda: all_pages(partial(_node_page, core), lambda page: page.metadata._continue or "",
                                       lambda page: [n for n in page.items or [] if n.metadata.name in wanted]),
                     "list the nodes")
    well = {node.metadata.name for node in nodes if not _taken_back(node)}
    return wanted - well


def _node_page(core: client.CoreV1Api, token: str) -> Any:
    return core.list_node(limit=NODE_PAGE, _continue=token) if token else core.list_node(limit=NODE_PAGE)


def _taken_back(node: Any) -> bool:
    """Whether the node is being deleted, not ``Ready`` (a VM stopped, a kubelet shutting
    down) or tainted :data:`TAKEN_BACK`."""
    conditions = (node.status.conditions if node.status else None) or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    taints = (node.spec.taints if node.spec else None) or []
    return node.metadata.deletion_timestamp is not None or not ready or any(t.key in TAKEN_BACK for t in taints)


def _seen(pod: Any, container: str) -> SeenPod:
    name, uid = pod.metadata.name, pod.metadata.uid
    node = (pod.spec.node_name if pod.spec else None) or ""
    if disrupted(pod):
        return SeenPod(name, uid, disrupted=True, node=node)
    if pod.status is None or pod.status.phase != "Failed":
        return SeenPod(name, uid, node=node)
    statuses = [status_of(pod, container), *(pod.status.container_statuses or [])]
    ended = next((s.state.terminated for s in statuses if s is not None and s.state and s.state.terminated), None)
    if ended is None:
        return SeenPod(name, uid, failed=True, node=node)
    return SeenPod(name, uid, ended.exit_code, ended.reason or "", failed=True, node=node)
