"""What the node-pool port answers in: the change a request started, an operation's status, a
pool as the cloud reports it; and whether a pool found can serve a study (:func:`claim`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.core.cluster import TRIAL_TAINT
from functions.core.errors import Problem
from functions.core.nodepool._pool import EKS, GKE, NodePool, NodePoolFailed, owner_value


@dataclass(frozen=True)
class PoolChange:
    """What a node-pool request started: an operation to check later (None when nothing is
    pending), and whose pool it is.

    ``created``: this study's request made the pool (a create answered "already exists" by the
    pool this study's earlier create made counts). ``owned``: katuna made it, for this study or
    another. ``adopted``: the pool was not katuna's; its autoscaling settings as found, in the
    provider's own terms, to give back once no study uses it. ``changed``: what the request
    changed at once, with nothing to wait for (an EKS group's missing autoscaler tags written),
    in words, so that it is told rather than "nothing to change".
    """

    operation: str | None = None
    created: bool = False
    owned: bool = False
    adopted: Mapping[str, Any] | None = None
    changed: str | None = None


@dataclass(frozen=True)
class OperationStatus:
    """How a pending operation stands: still running, done, or failed with the cloud's message;
    ``also``, what a done one did besides, in words (an EKS delete's launch templates, deleted once
    its group was gone), which the provisioning script tells."""

    done: bool
    error: str | None = None
    also: str | None = None


@dataclass(frozen=True)
class PoolStatus:
    """A pool as the cloud reports it: its state in the provider's words and its node limits.

    ``min_nodes`` and ``max_nodes`` are autoscaling limits, which a pool without autoscaling
    (``autoscaling`` False, a fixed-size GKE pool someone made) does not have: they are 0 there,
    and :meth:`to_dict` shows them as null rather than as a pool of 0 nodes."""

    name: str
    state: str
    min_nodes: int
    max_nodes: int
    capacity: str
    machine_types: tuple[str, ...] = ()
    tainted: bool = True
    """Whether the pool's nodes carry the taint trials tolerate (``katuna.dev/trial=true:NoSchedule``)."""
    autoscaling: bool = True
    owner: str | None = None
    """The :data:`OWNER_KEY` value of a pool katuna created, None for any other pool."""
    made_by: str | None = None
    """The :data:`MADE_BY_KEY` value of a pool made outside any study (the provisioning script's
    ``up``: :data:`SCRIPT_MARK`), None for any other pool."""
    labels: tuple[tuple[str, str], ...] = ()
    """The labels its nodes get, but for katuna's own :data:`POOL_LABEL`."""
    message: str | None = None
    """What the cloud says of the pool's state, if anything (GKE's ``statusMessage``, EKS's
    health issues): why a pool is in error."""
    installation: str | None = None
    """The :data:`INSTALLATION_KEY` value of a pool katuna created for a study, None for any other pool."""
    created_at: float | None = None
    """When the pool was created (seconds since the epoch): an EKS group's ``createdAt``, a GKE
    pool's :data:`CREATED_KEY`; None where it is not known."""

    def to_dict(self) -> dict[str, Any]:
        """The pool as ``status`` prints it: whether it autoscales, and its limits only if it
        does; what the cloud says of its state (an EKS group's health issues, GKE's status
        message), where it says anything."""
        limits = (self.min_nodes, self.max_nodes) if self.autoscaling else (None, None)
        shown = {"pool": self.name, "state": self.state, "autoscaling": self.autoscaling, "minNodes": limits[0],
                 "maxNodes": limits[1], "capacity": self.capacity, "machineTypes": list(self.machine_types),
                 "labels": dict(self.labels)}
        return shown | ({"message": self.message} if self.message else {})


def adoption_problem(pool: NodePool, found: PoolStatus) -> Problem | None:
    """Why a pool that exists cannot serve the study asking for ``pool``, with the field to
    change; None when it can. A pool without the trial taint runs other workloads, so katuna
    leaves it alone; one of another capacity or machine type would run trials on machines the
    study did not ask for; one whose nodes lack a label the study gives them would run its
    trials on nodes without it (and on EKS, tell the cluster autoscaler otherwise); one without
    autoscaling never grows or shrinks for trials."""
    where = f"node pool {pool.name} exists"
    if not found.tainted:
        return Problem("nodePool.name", f"{where} without the taint {TRIAL_TAINT['key']}={TRIAL_TAINT['value']}:"
                                        "NoSchedule that keeps other workloads off trial nodes; taint it, or name a "
                                        "pool katuna creates for the study")
    if found.capacity != pool.capacity:
        return Problem("nodePool.capacity", f"{where} with {found.capacity} capacity; the study asks for {pool.capacity}")
    if pool.provider == GKE and found.machine_types != pool.machine_types[:1]:
        return Problem("nodePool.machineType", f"{where} with machine type "
                                               f"{', '.join(found.machine_types) or 'unknown'}; "
                                               f"the study asks for {pool.machine_types[0]}")
    if pool.provider == EKS and not set(found.machine_types) <= set(pool.machine_types):
        return Problem("nodePool.instanceTypes", f"{where} with instance types {', '.join(found.machine_types)}; "
                                                 f"the study accepts {', '.join(pool.machine_types)}")
    lacking = [f"{key}={value}" for key, value in pool.labels if dict(found.labels).get(key) != value]
    if lacking:
        return Problem("nodePool.labels", f"{where}, its nodes without the labels {', '.join(lacking)} the study "
                                          "gives them; label the pool so, or leave them out")
    if not found.autoscaling:
        return Problem("nodePool.name", f"{where} without autoscaling; enable it, or name a pool katuna creates "
                                        "for the study")
    return None


def claim(pool: NodePool, found: PoolStatus, owner: str | None, limits: Mapping[str, Any]) -> PoolChange:
    """Whose an existing pool is: the study's own (its earlier create went through), katuna's
    for another study, or one to adopt, whose autoscaling ``limits`` are given back when the last
    study using it ends; raises :class:`NodePoolFailed`, naming the field, when it cannot serve."""
    if owner is not None and found.owner == owner_value(owner):
        return PoolChange(created=True, owned=True)
    problem = adoption_problem(pool, found)
    if problem is not None:
        raise NodePoolFailed(problem.message, problem.path)
    if found.owner is not None:
        return PoolChange(owned=True)
    return PoolChange(adopted=dict(limits))
