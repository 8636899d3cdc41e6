"""``--dry-run`` of ``up`` and ``down``: what the command would do, read from the cloud with
read-only calls alone (a get or describe of the pool, of its settings, and for an EKS group to
create, of its cluster, subnets and launch template), decided by the same judgement the command
acts on (:meth:`judge` of the adapters, :mod:`infra.pool_checks`).

The plan says create, raise the maximum, write an EKS group's missing autoscaler tags, nothing
to change, wait (a pool being created, deleted or updated, which the command waits for or asks
again about), delete, or refuse: a refusal is told on stderr in the command's own words, with
exit code 1, as the command would. A plan that changes something shows the request it sends.
``up``'s shows the worst case: the most nodes the pool may then have at once, of which machine
types, and, where the operator gives a price per node-hour (``--price-per-node-hour``, as a
study's ``nodePool.pricePerNodeHour``), what that costs an hour. katuna holds no price list:
prices vary by region, capacity and day, so no figure is made up.

The plan goes to stdout as JSON, its one-line summary to stderr."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from functions.core.errors import PermanentError
from functions.core.nodepool import NodePool, NodePoolFailed, PoolStatus
from infra.changes import Run, advised, kept, print_json, retried
from infra.pool_checks import check_delete
from infra.verdict import Verdict

BUSY = frozenset({"STOPPING", "DELETING", "UPDATING"})
"""A pool's states in which ``up`` asks again until they end (GKE's ``STOPPING``, EKS's
``DELETING`` and ``UPDATING``): a plan says it would wait, and looks no further."""
CREATES = frozenset({"create_node_pool", "create_nodegroup"})


class Refused(PermanentError):
    """A plan whose command would be refused: the refusal, and the plan that says so."""

    def __init__(self, refusal: NodePoolFailed, plan: dict[str, Any]) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal
        self.plan = plan


def up(adapter: Any, pool: NodePool, check: Callable[[Any], None], timeout: float) -> dict[str, Any]:
    """What ``up`` would do with ``pool`` (the flags'), ``check`` being its checks of a pool
    found (:func:`infra.pool_checks.check_gke`, :func:`~infra.pool_checks.check_eks`)."""
    run = Run(pool.name, time.monotonic() + timeout, timeout, "up")
    found = retried(lambda: adapter.describe(pool.name), run)
    try:
        retried(lambda: check(adapter), run)
        if found is not None and found.state in BUSY:
            return _plan(pool, found, "wait", _busy(found), pool.max_nodes)
        verdict: Verdict = retried(lambda: adapter.judge(pool), run)
    except NodePoolFailed as exc:
        raise Refused(advised(exc, found), _refused(pool.name, found)) from exc
    return _judged(pool, found, verdict)


def _busy(found: PoolStatus) -> str:
    if found.state == "UPDATING":
        return "it is being updated: `up` asks again until the update is done, then looks at it again"
    return "it is being deleted: `up` asks again until it is gone, then creates it"


def _judged(pool: NodePool, found: PoolStatus | None, verdict: Verdict) -> dict[str, Any]:
    """The plan of a verdict: its action, in words, and the request it sends, if any."""
    request = {"call": verdict.call, "request": verdict.request} if verdict.call else {}
    if verdict.first is not None:
        request["first"] = {"call": verdict.first[0], "request": verdict.first[1]}
    if verdict.call in CREATES or found is None:
        return _plan(pool, found, "create", f"create it, autoscaling from 0 to {pool.max_nodes} nodes",
                     pool.max_nodes, request)
    if verdict.whose.operation is not None:
        then = (f"then raises its maximum from {found.max_nodes} to {pool.max_nodes} nodes"
                if found.max_nodes < pool.max_nodes else "then changes nothing")
        return _plan(pool, found, "wait", f"it is {found.state}: `up` waits until it is ready, {then}",
                     max(found.max_nodes, pool.max_nodes))
    if verdict.call in ("set_node_pool_autoscaling", "update_nodegroup_config"):
        return _plan(pool, found, "raise maximum", f"raise its maximum from {found.max_nodes} to {pool.max_nodes} "
                                                   "nodes", pool.max_nodes, request)
    if verdict.call == "create_or_update_tags":
        tags = len((verdict.request or {}).get("Tags", []))
        return _plan(pool, found, "write autoscaler tags", f"write {tags} cluster-autoscaler tag"
                     f"{'s' if tags > 1 else ''} its Auto Scaling group lacks", found.max_nodes, request)
    return _plan(pool, found, "nothing to change", f"nothing to change{kept(found, pool.max_nodes)}",
                 max(found.max_nodes, pool.max_nodes))


def _plan(pool: NodePool, found: PoolStatus | None, action: str, summary: str, nodes: int,
          request: dict[str, Any] | None = None) -> dict[str, Any]:
    """A plan of ``up``: its action, in words, the pool as found, the request it sends, and
    the worst case once it is done: ``nodes`` at most, of the pool's machine types."""
    usable = found is not None and found.state not in BUSY
    kinds = found.machine_types if usable and found is not None and found.machine_types else pool.machine_types
    capacity = found.capacity if usable and found is not None else pool.capacity
    worst: dict[str, Any] = {"nodes": nodes, "machineTypes": list(kinds), "capacity": capacity}
    plan = {"pool": pool.name, "action": action, "summary": summary, "found": _found(found), **(request or {}),
            "worstCase": worst}
    if pool.price_per_node_hour is not None:
        plan["cost"] = {"perHour": round(nodes * pool.price_per_node_hour, 6),
                        "pricePerNodeHour": pool.price_per_node_hour, "currency": pool.currency}
    return plan


def worst_words(plan: dict[str, Any]) -> str:
    """The worst case of a plan of ``up`` in words: nodes, machine types, and the cost an hour
    where a price was given."""
    worst = plan["worstCase"]
    kinds = worst["machineTypes"]
    each = kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"
    said = f"at most {worst['nodes']} {worst['capacity']} node{'s' if worst['nodes'] != 1 else ''} of {each} at once"
    cost = plan.get("cost")
    if cost:
        currency = f" {cost['currency']}" if cost["currency"] else ""
        said += (f", at most {cost['perHour']:g}{currency} an hour at {cost['pricePerNodeHour']:g}{currency} per "
                 "node-hour")
    return said


def worst_of(pool: NodePool) -> Callable[[PoolStatus], str | None]:
    """What ``up`` tells, once done, of the pool it leaves, where the operator gave a price."""
    def told(described: PoolStatus) -> str | None:
        if pool.price_per_node_hour is None:
            return None
        return worst_words(_plan(pool, described, "", "", max(described.max_nodes, pool.max_nodes)))
    return told


def down(adapter: Any, name: str, any_pool: bool, timeout: float, call: str, request: dict[str, Any],
         also: str = "", leftovers: Callable[[Any], list[dict[str, str]]] | None = None) -> dict[str, Any]:
    """What ``down`` would do with the pool ``name``: ``call`` with ``request`` deletes it (and
    ``also`` what else it deletes once the pool is gone, in words); of an absent pool, it deletes
    the ``leftovers`` an earlier create left (an EKS group's launch templates), if any."""
    run = Run(name, time.monotonic() + timeout, timeout, "down")
    found = retried(lambda: adapter.describe(name), run)
    try:
        check_delete(found, name, adapter.provider, any_pool)
    except NodePoolFailed as exc:
        raise Refused(exc, _refused(name, found)) from exc
    plan: dict[str, Any] = {"pool": name, "found": _found(found)}
    if found is None:
        return plan | _absent(retried(lambda: leftovers(adapter), run) if leftovers else [])
    if found.state in ("STOPPING", "DELETING"):
        return plan | {"action": "wait", "summary": "it is being deleted: `down` waits until it is gone"}
    return plan | {"action": "delete", "summary": f"delete it{also}, and wait until it is gone", "call": call,
                   "request": request}


def _absent(templates: list[dict[str, str]]) -> dict[str, Any]:
    """The plan of ``down`` of an absent pool: nothing, or the launch templates katuna made for it deleted."""
    if not templates:
        return {"action": "nothing to delete", "summary": "it is absent: nothing to delete"}
    names = ", ".join(template["LaunchTemplateName"] for template in templates)
    return {"action": "delete", "summary": f"it is absent: delete the launch template{'s' if len(templates) > 1 else ''} "
                                          f"katuna made for it ({names})", "call": "delete_launch_template",
            "requests": [{"LaunchTemplateId": template["LaunchTemplateId"]} for template in templates]}


def _found(found: PoolStatus | None) -> dict[str, Any] | None:
    return None if found is None else found.to_dict()


def _refused(name: str, found: PoolStatus | None) -> dict[str, Any]:
    return {"pool": name, "action": "refuse", "found": _found(found)}


def show(plan: dict[str, Any]) -> None:
    """The plan: its summary on stderr, the plan itself as JSON on stdout."""
    said = plan["summary"]
    if "worstCase" in plan:
        said += f"; {worst_words(plan)}"
    click.echo(f"plan: node pool {plan['pool']}: {said}", err=True)
    print_json(plan)
