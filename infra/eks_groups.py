"""EKS node groups as :mod:`infra.eks` judges them, from their descriptions: the pool a group
stands for and how it stands (:func:`group_status`), a pending change's parts, an Update's
errors, and the cluster-autoscaler tags its Auto Scaling groups lack (:func:`missing_tags`),
which ``ensure`` writes and the provisioning script's ``--dry-run`` tells."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from functions.core.cluster import TRIAL_TAINT
from functions.core.nodepool import (
    EKS,
    INSTALLATION_KEY,
    MADE_BY_KEY,
    ON_DEMAND,
    OWNER_KEY,
    POOL_LABEL,
    SPOT,
    NodePool,
    PoolChange,
    PoolStatus,
)
from infra.eks_errors import issues_text
from infra.eks_requests import option_tags, template_tags


def missing_tags(autoscaling: Any, group: dict[str, Any],
                 failed: Callable[[Exception], Exception]) -> tuple[bool, list[dict[str, Any]]]:
    """The tags the group's Auto Scaling groups lack, read with ``autoscaling`` (a client):
    cluster-autoscaler's node-template tags for scale-up from zero and, if katuna made the group
    for a study, its scale-down option where it has none (a value found, the user's, is kept);
    and whether every one was there to look at (not while the group names none, or one is not
    there yet). ``failed`` is katuna's error for what the call raised."""
    names = [asg["name"] for asg in group.get("resources", {}).get("autoScalingGroups", [])]
    if not names:
        return False, []
    made = OWNER_KEY in (group.get("tags") or {})
    pool = pool_of(group)
    try:
        found = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=names)["AutoScalingGroups"]
    except (ClientError, BotoCoreError, ResponseParserError) as exc:
        raise failed(exc) from exc
    capacity_type = group.get("capacityType", "ON_DEMAND")
    missing = []
    for asg in found:
        present = {(t["Key"], t["Value"]) for t in asg.get("Tags", [])}
        missing += [t for t in template_tags(asg["AutoScalingGroupName"], pool, capacity_type)
                    if (t["Key"], t["Value"]) not in present]
        keys = {key for key, _ in present}
        missing += [t for t in option_tags(asg["AutoScalingGroupName"]) if made and t["Key"] not in keys]
    return len(found) == len(names), missing


def group_status(group: dict[str, Any]) -> PoolStatus:
    """The group as katuna judges it: state, limits, capacity, taint, and who made it (a study,
    by its uid, or the provisioning script, by its mark)."""
    scaling = group.get("scalingConfig", {})
    capacity = SPOT if group.get("capacityType") == "SPOT" else ON_DEMAND
    tainted = {"key": TRIAL_TAINT["key"], "value": TRIAL_TAINT["value"], "effect": "NO_SCHEDULE"} in (
        group.get("taints") or [])
    issues = (group.get("health") or {}).get("issues")
    return PoolStatus(group["nodegroupName"], group["status"], scaling.get("minSize", 0), scaling.get("maxSize", 0),
                      capacity, tuple(group.get("instanceTypes") or ()), tainted=tainted,
                      owner=(group.get("tags") or {}).get(OWNER_KEY),
                      made_by=(group.get("tags") or {}).get(MADE_BY_KEY), labels=pool_of(group).labels,
                      message=issues_text(group) if issues else None,
                      installation=(group.get("tags") or {}).get(INSTALLATION_KEY),
                      created_at=group["createdAt"].timestamp() if group.get("createdAt") else None)


def parts(operation: str) -> tuple[str, str, str]:
    """An operation's kind, group, and Update id (empty but for an update; empty too for one
    stored before katuna kept update ids)."""
    kind, _, rest = operation.partition(":")
    name, _, update_id = rest.partition(":")
    return kind, name, update_id


def update_errors(update: dict[str, Any]) -> str:
    errors = update.get("errors") or []
    return "; ".join(f"{e.get('errorCode')}: {e.get('errorMessage')}" for e in errors) or "EKS gave no reason"


def told(written: list[dict[str, Any]]) -> str:
    """The node-template tags written, in words: how many, on which Auto Scaling groups."""
    groups = sorted({tag["ResourceId"] for tag in written})
    return (f"wrote {len(written)} cluster-autoscaler node-template tag{'s' if len(written) > 1 else ''} to its "
            f"Auto Scaling group{'s' if len(groups) > 1 else ''} {', '.join(groups)}")


def dropped(templates: list[str]) -> PoolChange:
    """No change of an absent group but the launch templates katuna made for it, deleted: told."""
    if not templates:
        return PoolChange()
    return PoolChange(changed=f"it is absent; {deleted_templates(templates)}")


def deleted_templates(templates: list[str]) -> str:
    """The launch templates katuna made for a group, deleted, in words."""
    return f"deleted the launch template{'s' if len(templates) > 1 else ''} katuna made for it: {', '.join(templates)}"


def pool_of(group: dict[str, Any]) -> NodePool:
    """The pool a node group stands for, from its own description."""
    labels = {k: v for k, v in (group.get("labels") or {}).items() if k != POOL_LABEL}
    capacity = SPOT if group.get("capacityType") == "SPOT" else ON_DEMAND
    return NodePool(group["nodegroupName"], EKS, capacity, tuple(group.get("instanceTypes") or ()),
                    group.get("scalingConfig", {}).get("maxSize", 1), labels=tuple(sorted(labels.items())))


FOREIGN_FOR = 3600.0
"""Seconds a group found not to be the installation's is not read again by a search for its own."""


class ForeignGroups:
    """The groups found not to be the installation's (the user's, the provisioning script's,
    another installation's), by name, for :data:`FOREIGN_FOR` seconds on the ``monotonic``
    clock: tags that tell its own are only in a group's description, one call each."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._found: dict[str, float] = {}

    def known(self, name: str) -> bool:
        found = self._found.get(name)
        return found is not None and self._monotonic() - found < FOREIGN_FOR

    def add(self, name: str) -> None:
        self._found[name] = self._monotonic()


def ours(group: dict[str, Any], installation: str) -> bool:
    """Whether the group is one the installation created for a study (its tags say so)."""
    tags = group.get("tags") or {}
    return tags.get(INSTALLATION_KEY) == installation and bool(tags.get(OWNER_KEY))
