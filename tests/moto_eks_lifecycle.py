"""EKS's node-group lifecycle for moto's EKS, as :mod:`moto_eks` teaches it: the minutes a
managed node group spends ``CREATING``, ``DELETING`` and ``UPDATING``.

moto creates a node group ``ACTIVE`` at once, deletes it at once and applies
``UpdateNodegroupConfig`` at once, its Update ``Successful`` as soon as it is answered. EKS takes
minutes for each (botocore's own waiters poll ``NodegroupActive`` and ``NodegroupDeleted`` every
30 s for up to 40 and 20 minutes): a new group is ``CREATING`` until it is ``ACTIVE`` (or
``CREATE_FAILED``); a deleted one is ``DELETING``, still listed and described, and still
holding its cluster (which EKS refuses to delete while it has node groups), until it is gone;
an updated one is ``UPDATING``, its Update ``InProgress`` and its new configuration not yet
shown, until the Update is ``Successful``. Meanwhile EKS refuses another update of the group
with ``ResourceInUseException`` (``Nodegroup cannot be updated as it is currently not in Active
State``, as EKS users quote it), and a second create of its name with the same code. Its
answer to deleting a group that is busy is not published beyond the code the API reference
lists for ``DeleteNodegroup`` (``ResourceInUseException``, "the specified resource is in use"):
the stand-in refuses so, in words of its own, the delete of a group ``CREATING``, ``UPDATING``
or ``DELETING``.

Each state lasts :data:`SECONDS` of stand-in time. Stand-in time moves by :func:`advance`,
and, at :attr:`Pace.speed` stand-in seconds per second of its ``clock`` (by default none: it
stands still until advanced, as the GKE stand-in's does), by that clock: the machine's by
default, or a :class:`kube_standin.clock.SimulatedClock`, told when each state ends
(:func:`pace`). moto's server (``python tests/moto_eks.py``) runs at ``MOTO_EKS_SPEED``.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

from kube_standin.clock import RealClock
from moto.eks.exceptions import ResourceInUseException
from moto.eks.models import EKSBackend

SECONDS = {"CREATING": 150.0, "DELETING": 120.0, "UPDATING": 30.0}
"""How long a node group stays in each state, in stand-in seconds (minutes on EKS)."""
BUSY = ("CREATING", "UPDATING", "DELETING")
"""The states in which EKS refuses to change or delete a node group."""
ROUNDING = 1e-6
"""Stand-in seconds a due moment may be missed by: a simulated clock that jumps to the moment a
state ends reads back a time rounded off."""
CONFIG = ("labels", "taints", "scaling_config", "update_config", "node_repair_config")
"""What ``UpdateNodegroupConfig`` changes of a node group (moto's attribute names)."""


class Pace:
    """The stand-in's clock: seconds that move by :meth:`advance`, and by ``clock`` at ``speed``."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clock: RealClock = RealClock()
        self.speed = 0.0
        self._offset = 0.0
        self._started = self.clock.monotonic()

    def now(self) -> float:
        return self._offset + (self.clock.monotonic() - self._started) * self.speed

    def set(self, clock: RealClock | None = None, speed: float | None = None) -> None:
        """Run on ``clock`` at ``speed`` from now on, stand-in time carrying on from where it is."""
        with self.lock:
            self._offset, self._started = self.now(), (clock or self.clock).monotonic()
            self.clock = clock or self.clock
            self.speed = self.speed if speed is None else speed

    def advance(self, seconds: float) -> None:
        with self.lock:
            self._offset += seconds

    def wake(self, due: float) -> None:
        """Tell the clock (a simulated one jumps there) when stand-in time reaches ``due``."""
        if self.speed:
            self.clock.wake_at(self.clock.monotonic() + max(due - self.now(), 0.0) / self.speed)


PACE = Pace()


def pace(clock: RealClock | None = None, speed: float | None = None) -> None:
    """Run the node groups' states on ``clock`` at ``speed`` stand-in seconds per second of it."""
    PACE.set(clock, speed)


def advance(seconds: float) -> None:
    """Move stand-in time on: the node groups' states due by then end at the next call."""
    PACE.advance(seconds)


def begin(group: Any, state: str, then: Callable[[], None]) -> None:
    """Hold the group in ``state`` for its :data:`SECONDS`; ``then`` ends it."""
    with PACE.lock:
        group.status = state
        due = PACE.now() + SECONDS[state]
        group.__dict__["katuna_until"] = (due, then)
        PACE.wake(due)


def settle(backend: EKSBackend) -> None:
    """End every node group state of the backend whose time has come (within :data:`ROUNDING`)."""
    with PACE.lock:
        now = PACE.now() + ROUNDING
        for cluster in list(backend.clusters.values()):
            for group in list(cluster.nodegroups.values()):
                until = group.__dict__.get("katuna_until")
                if until is not None and until[0] <= now:
                    del group.__dict__["katuna_until"]
                    until[1]()


def settling(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` of the backend, after its node groups' due states have ended."""
    def settled(self: EKSBackend, *args: Any, **kwargs: Any) -> Any:
        settle(self)
        return method(self, *args, **kwargs)

    return settled


def refuse_busy(group: Any, cluster: str, message: str) -> None:
    """EKS's ``ResourceInUseException`` for a group busy with a change of its own."""
    if group is not None and group.status in BUSY:
        raise ResourceInUseException(clusterName=cluster, nodegroupName=group.nodegroup_name, addonName=None,
                                     message=message)


def deferred_update(group: Any, apply: Callable[[], dict[str, Any]],
                    then: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """An ``UpdateNodegroupConfig`` as EKS carries it out: ``apply`` (moto's, which changes the
    group at once) answers the Update, but the group shows its former configuration, ``UPDATING``,
    and the Update is ``InProgress``, until :data:`SECONDS` later the new one shows, ``then`` is
    done (the group's Auto Scaling group resized) and the Update is ``Successful``."""
    before = {name: copy.deepcopy(getattr(group, name, None)) for name in CONFIG}
    was = group.status
    update = {**apply(), "status": "InProgress"}
    after = {name: getattr(group, name, None) for name in CONFIG}
    for name, value in before.items():
        setattr(group, name, value)

    def done() -> None:
        for name, value in after.items():
            setattr(group, name, value)
        then()
        group.status = was
        update["status"] = "Successful"

    begin(group, "UPDATING", done)
    return update


def degrade(group: Any, code: str, message: str, resource_ids: list[str] | None = None) -> None:
    """The group as EKS shows it once a health issue of ``code`` arises (its Auto Scaling group
    finding no capacity, its nodes' role deleted): ``DEGRADED``, the issue in its health. Only a
    group whose own change is over: the end of one still under way (its ``CREATING``, at the
    next call once due) would set its state over the issue's."""
    if "katuna_until" in group.__dict__:
        raise ValueError(f"node group {group.nodegroup_name} is still {group.status} in moto: let a call end it first")
    group.status = "DEGRADED"
    group.health = {"issues": [{"code": code, "message": message, "resourceIds": resource_ids or []}]}


DELETION_FAILURE = {
    "code": "Ec2SecurityGroupDeletionFailure",
    "message": "We could not delete the remote access security group for your managed node group. Remove any "
               "dependencies from the security group."}
"""The health issue of a group whose delete failed, in the API reference's words for its
``Ec2SecurityGroupDeletionFailure``: a network interface still holds the remote-access
security group EKS made for the group."""


def hold_deletion(group: Any) -> None:
    """The group's next delete fails, as EKS's does while something outside the group still uses
    its remote-access security group: :data:`SECONDS` ``DELETING``, then ``DELETE_FAILED`` with
    :data:`DELETION_FAILURE`, the group still there (EKS retries no delete; a delete asked again
    once the dependency is gone deletes it)."""
    group.__dict__["katuna_deletion_held"] = True


def deleted(group: Any, delete: Callable[[], None]) -> Callable[[], None]:
    """What the end of the group's ``DELETING`` does: ``delete`` it, or fail as
    :func:`hold_deletion` asked, once."""
    def end() -> None:
        if group.__dict__.pop("katuna_deletion_held", False):
            group.status = "DELETE_FAILED"
            group.health = {"issues": [{**DELETION_FAILURE, "resourceIds": []}]}
            return
        delete()

    return end
