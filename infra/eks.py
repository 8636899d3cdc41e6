"""EKS managed node groups through ``boto3``, whose clients :mod:`infra.eks_clients` makes; the
groups an installation made are found, and the launch templates of those gone deleted, by
:mod:`infra.eks_listing`.

It sends the requests :mod:`infra.eks_requests` builds (each create or update with the
``clientRequestToken`` of the logical change it belongs to), raises katuna's errors for EKS's
and Auto Scaling's (:mod:`infra.eks_errors`), and judges the groups it finds. A pending change is
``create:<group>``, ``update:<group>:<update id>``, ``delete:<group>`` or a maximum given back once the autoscaler
has shrunk the group (:data:`SHRINK`): a create or a delete is judged by the group's status, an update by EKS's Update (``describe_update``: in progress,
successful, or failed with its errors); an ``update:<group>`` stored before katuna kept update
ids is judged by the group's status. Tags given to
``create_nodegroup`` never reach its Auto Scaling group, so once the group is active katuna
tags the group with cluster-autoscaler's node-template labels and taint: that is how the
autoscaler knows a group of 0 nodes would fit a pending trial. A group katuna made for a study
also gets the autoscaler's per-group scale-down option (:func:`infra.eks_requests.option_tags`),
unless its Auto Scaling group has one already. A create's or an update's check is done only
once those tags are written, so a tick that finds the group active writes them.

A group katuna creates boots from katuna's launch template (:mod:`infra.eks_templates`),
made before the group and deleted once the group is gone (a delete's check, or a delete that
finds no group, or the tick's :meth:`EksNodePools.tidy` for a group deleted as an orphan), or once EKS refuses the group's create for good; a create that EKS refuses because the template was deleted since its look (by
the end of an earlier group of the same name) makes it again and asks once more.

A group katuna creates for a study carries the study's uid as a tag
(:data:`functions.core.nodepool.OWNER_KEY`); any other group found is adopted, and its scaling
limits as found are what :meth:`EksNodePools.scale_back` gives back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from functions.core.errors import TemporaryError
from functions.core.nodepool import EKS, NodePool, NodePoolFailed, OperationStatus, PoolChange, PoolStatus, claim
from infra.eks_creates import GroupCreates
from infra.eks_errors import code, issues_text, message, no_cluster, not_active, stuck, translate
from infra.eks_groups import deleted_templates, dropped, group_status, missing_tags, parts, told, update_errors
from infra.eks_listing import GroupListing
from infra.eks_requests import (
    CLUSTER_SETTING,
    TAGS_PER_CALL,
    EksCluster,
    create_request,
    name_request,
    scaling_request,
    template_request,
)
from infra.eks_templates import LaunchTemplates
from infra.polling import until_done
from infra.verdict import Verdict

SHRINK = "shrink"
"""The kind of a pending maximum given back (``shrink:<group>:<min>:<max>:<held>``): the group
runs more nodes than the maximum, so its maximum is held at that many (``held``) until the
cluster-autoscaler has removed the nodes it no longer needs, then lowered. Setting the desired
size instead would have EKS terminate nodes of its own choosing, trials of running studies
among them (the API reference's ``NodegroupScalingConfig``: with the Cluster Autoscaler, "you
shouldn't change the desiredSize value directly")."""
_UPDATE_FAILED = {"Failed": "failed", "Cancelled": "was cancelled"}
"""The Update statuses that end it without its change, in words."""


class EksNodePools:
    """Implements :class:`functions.core.ports.NodePools` for one EKS cluster."""

    provider = EKS

    def __init__(self, cluster: EksCluster, eks: Any, autoscaling: Any, ec2: Any,
                 monotonic: Callable[[], float] = time.monotonic, *, advise: bool = True) -> None:
        self.cluster = cluster
        self.advise = advise
        """Whether a group refused as stuck is told what to do with AWS's own tools
        (:func:`infra.eks_errors.stuck`); the provisioning script tells its own commands instead."""
        self.eks = eks
        self.autoscaling = autoscaling
        self.ec2 = ec2
        self.templates = LaunchTemplates(cluster, ec2, self._failed)
        self.creates = GroupCreates(cluster, eks, ec2, self.templates, self._failed, self._refusal,
                                    self._drop_templates)
        self.listing = GroupListing(cluster, self.templates, self._call, self._group, monotonic)

    def _call(self, method: str, request: dict[str, Any], absent_ok: bool = False) -> dict[str, Any]:
        """EKS's answer; an empty one when ``absent_ok`` and what the request names is absent
        from a cluster EKS has."""
        try:
            return getattr(self.eks, method)(**request)
        except ClientError as exc:
            if absent_ok and code(exc) == "ResourceNotFoundException" and not no_cluster(exc):
                return {}
            raise self._refusal(exc) from exc
        except (BotoCoreError, ResponseParserError) as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: Exception) -> Exception:
        """katuna's error for a call that raised ``exc`` before or without EKS's answer, or with an
        EC2 or Auto Scaling one."""
        return translate(exc, self.eks.meta.region_name)

    def _refusal(self, exc: ClientError) -> Exception:
        """katuna's error for one EKS answered: a cluster EKS does not have is the settings' fault
        (a typo, or another region), never an absent group."""
        if no_cluster(exc):
            return NodePoolFailed(f"EKS has no cluster {self.cluster.name} in region {self.eks.meta.region_name}: "
                                  f"{message(exc)}", CLUSTER_SETTING)
        if not_active(exc) and self._cluster_status() == "FAILED":
            return NodePoolFailed(f"EKS cluster {self.cluster.name} in region {self.eks.meta.region_name} is FAILED "
                                  "(its creation failed, and it stays so until deleted): no node group can be made "
                                  "or changed in it; delete and create the cluster again, or name another",
                                  CLUSTER_SETTING)
        return translate(exc)

    def _cluster_status(self) -> str | None:
        """The cluster's status as EKS tells it; None where it cannot be read now (the refusal
        it came with then stands as temporary)."""
        try:
            return str(self.eks.describe_cluster(name=self.cluster.name)["cluster"].get("status"))
        except (ClientError, BotoCoreError, ResponseParserError):
            return None

    def _group(self, name: str) -> dict[str, Any] | None:
        found = self._call("describe_nodegroup", name_request(self.cluster, name), absent_ok=True)
        return found["nodegroup"] if found else None

    def ensure(self, pool: NodePool, owner: str | None = None, *, request_id: str | None = None,
               raising: bool = True) -> PoolChange:
        if not self.cluster.subnets or not self.cluster.node_role:
            raise NodePoolFailed("EKS node groups need subnets and a node role (KATUNA_EKS_SUBNETS, "
                                 "KATUNA_EKS_NODE_ROLE)")
        group = self._group(pool.name)
        if group is None:
            if self.creates.create(pool, owner, request_id):
                return PoolChange("create:" + pool.name, created=True, owned=owner is not None)
            group = self._group(pool.name)
        if group is None:
            raise TemporaryError(f"EKS: node group {pool.name} exists and is gone again; try again")
        verdict = self._existing(group, pool, owner, request_id)
        if verdict.call == "update_nodegroup_config" and verdict.request is not None:
            if not raising:
                return replace(verdict.whose, operation="create:" + pool.name)
            return replace(verdict.whose, operation=self._update(verdict.request))
        if verdict.call is not None and verdict.request is not None:
            self._write(verdict.request["Tags"])
            return replace(verdict.whose, changed=told(verdict.request["Tags"]))
        return verdict.whose

    def judge(self, pool: NodePool) -> Verdict:
        """What :meth:`ensure` would do with the group for the provisioning script (no study
        owns it), from reads alone: create it (its subnets checked, its launch template first
        unless EC2 has it), wait for it, raise its maximum, write its missing autoscaler tags, or
        nothing; a group it would refuse is refused in its words, a busy one for now."""
        group = self._group(pool.name)
        if group is not None:
            return self._existing(group, pool, None, None)
        self.creates.check_subnets(pool)
        first = None if self.templates.exists(pool) else ("create_launch_template",
                                                          template_request(self.cluster, pool))
        return Verdict(PoolChange(created=True), "create_nodegroup", create_request(self.cluster, pool), first)

    def _existing(self, group: dict[str, Any], pool: NodePool, owner: str | None,
                  request_id: str | None) -> Verdict:
        """What :meth:`ensure` does with a group that exists: refuse a busy one for now, and for
        good one that failed or cannot serve (:func:`claim`); wait for one still being created;
        raise a maximum below the one asked; write the autoscaler tags its Auto Scaling groups lack."""
        status = group["status"]
        if status in ("DELETING", "UPDATING"):
            raise TemporaryError(f"EKS: node group {pool.name} is {status.lower()}; try again when it is done")
        failure = stuck(self.cluster.name, group, advise=self.advise)
        if failure is not None:
            raise failure
        found = group_status(group)
        whose = claim(pool, found, owner, {"minSize": found.min_nodes, "maxSize": found.max_nodes})
        if status == "CREATING":
            return Verdict(replace(whose, operation="create:" + pool.name))
        scaling = group["scalingConfig"]
        if scaling["maxSize"] < pool.max_nodes:
            return Verdict(whose, "update_nodegroup_config", scaling_request(
                self.cluster, pool.name, scaling["minSize"], pool.max_nodes, request_id=request_id))
        _, missing = missing_tags(self.autoscaling, group, self._failed)
        return Verdict(whose, "create_or_update_tags", {"Tags": missing}) if missing else Verdict(whose)

    def scale_back(self, pool: NodePool, adopted: Mapping[str, Any] | None = None, *,
                   request_id: str | None = None) -> PoolChange:
        group = self._group(pool.name)
        if group is None:
            return PoolChange()
        scaling = group["scalingConfig"]
        low, high = (adopted["minSize"], adopted["maxSize"]) if adopted is not None else (0, pool.max_nodes)
        if (scaling["minSize"], scaling["maxSize"]) == (low, high):
            return PoolChange()
        desired = scaling.get("desiredSize", 0)
        if desired <= high:
            return PoolChange(self._update(scaling_request(self.cluster, pool.name, low, high, desired, request_id)))
        if (scaling["minSize"], scaling["maxSize"]) != (low, desired):
            self._update(scaling_request(self.cluster, pool.name, low, desired, desired, request_id))
        return PoolChange(f"{SHRINK}:{pool.name}:{low}:{high}:{desired}")

    def _drop_templates(self, name: str) -> list[str]:
        """Delete the gone group's launch templates, unless a group of its name is back: the names of those deleted."""
        return self.templates.drop(name, lambda: self._group(name) is not None)

    def leftovers(self, name: str) -> list[dict[str, str]]:
        """The launch templates katuna made for the group ``name``, read alone: what :meth:`delete`
        deletes of an absent group (one an interrupted or refused create left), as ``down``'s
        plan tells it."""
        return self.templates.left(name)

    def _update(self, request: dict[str, Any]) -> str:
        """Ask for a scaling update; the operation that names it, with the id of EKS's Update."""
        update = self._call("update_nodegroup_config", request)["update"]
        return f"update:{request['nodegroupName']}:{update['id']}"

    def delete(self, name: str) -> PoolChange:
        """Delete the group; one EKS is deleting already is waited for, not asked again (as
        Ansible's ``community.aws.eks_nodegroup`` does), so a delete run twice waits for the first."""
        group = self._group(name)
        if group is None:
            return dropped(self._drop_templates(name))
        if group["status"] == "DELETING":
            return PoolChange("delete:" + name)
        found = self._call("delete_nodegroup", name_request(self.cluster, name), absent_ok=True)
        return PoolChange("delete:" + name) if found else dropped(self._drop_templates(name))

    def empty(self, name: str) -> PoolChange:
        """No change: EKS's API reference says not to change a node group's ``desiredSize``
        where the Cluster Autoscaler sizes it (the autoscaler may suddenly scale it up or down
        again), and a group's ``maxSize`` cannot be 0; so a shared group's nodes are left to the
        autoscaler, which removes each once unneeded for its ``--scale-down-unneeded-time``."""
        return PoolChange()

    def check(self, operation: str) -> OperationStatus:
        if operation.startswith(SHRINK + ":"):
            return self._shrink(*operation.split(":")[1:])
        kind, name, update_id = parts(operation)
        if update_id:
            update = self._update_status(name, update_id)
            if update is not None:
                return update
        group = self._group(name)
        if kind == "delete":
            if group is None:
                return self._deleted(name)
            failed = group["status"] == "DELETE_FAILED"
            return OperationStatus(failed, f"could not delete node group {name}: {issues_text(group)}" if failed else None)
        if group is None:
            return OperationStatus(True, f"node group {name} disappeared")
        failure = stuck(self.cluster.name, group, advise=False)
        if failure is not None:
            return OperationStatus(True, failure.reason.removeprefix("EKS "))
        if group["status"] in ("CREATING", "UPDATING"):
            return OperationStatus(False)
        return OperationStatus(self._tag(group))

    def _deleted(self, name: str) -> OperationStatus:
        """A delete done, its group gone, once the launch templates katuna made for the group are
        deleted too (named); a refusal of theirs fails it, saying that the group is gone and which
        templates are left (a delete asked again deletes them once the refusal is put right)."""
        try:
            gone = self._drop_templates(name)
        except NodePoolFailed as exc:
            left = ", ".join(t["LaunchTemplateName"] for t in self.templates.left(name))
            return OperationStatus(True, f"node group {name} is deleted, but not the launch "
                                         f"template{'s' if ', ' in left else ''} katuna made for it ({left}): {exc}")
        return OperationStatus(True, also=deleted_templates(gone) if gone else None)

    def _shrink(self, name: str, low: str, high: str, held: str) -> OperationStatus:
        """A maximum given back once the autoscaler has brought the group within it: pending
        while the group is busy or runs more nodes than the maximum; then the limits are lowered
        (pending until EKS shows them). Done once they are, or once the group is gone or its
        limits are no longer those held for the autoscaler (another study has changed them since,
        and its own release gives them back)."""
        group = self._group(name)
        if group is None:
            return OperationStatus(True)
        if group["status"] in ("CREATING", "UPDATING"):
            return OperationStatus(False)
        scaling = group["scalingConfig"]
        limits = (scaling["minSize"], scaling["maxSize"])
        if limits == (int(low), int(high)) or limits != (int(low), int(held)):
            return OperationStatus(True)
        if scaling.get("desiredSize", 0) <= int(high):
            self._update(scaling_request(self.cluster, name, int(low), int(high), scaling.get("desiredSize")))
        return OperationStatus(False)

    def _update_status(self, name: str, update_id: str) -> OperationStatus | None:
        """How EKS's Update of the group stands: pending, or failed with its errors; None once it
        succeeded (the group's own check follows)."""
        request = {"name": self.cluster.name, "updateId": update_id, "nodegroupName": name}
        update = self._call("describe_update", request)["update"]
        if update["status"] in _UPDATE_FAILED:
            return OperationStatus(True, f"update {update_id} of node group {name} "
                                         f"{_UPDATE_FAILED[update['status']]}: {update_errors(update)}")
        if update["status"] != "Successful":
            return OperationStatus(False)
        return None

    def _tag(self, group: dict[str, Any]) -> bool:
        """Tag the group's Auto Scaling groups where a tag is missing (:func:`missing_tags`):
        whether every one was there to tag."""
        complete, missing = missing_tags(self.autoscaling, group, self._failed)
        self._write(missing)
        return complete

    def _write(self, tags: list[dict[str, Any]]) -> None:
        """Write Auto Scaling group tags, in as many calls as Auto Scaling's
        :data:`~infra.eks_requests.TAGS_PER_CALL` needs."""
        try:
            for start in range(0, len(tags), TAGS_PER_CALL):
                self.autoscaling.create_or_update_tags(Tags=tags[start:start + TAGS_PER_CALL])
        except (ClientError, BotoCoreError, ResponseParserError) as exc:
            raise self._failed(exc) from exc

    def wait(self, operation: str, interval: float = 30.0, timeout: float = 1800.0) -> OperationStatus:
        """Block until a change is done or ``timeout`` seconds have passed (for the provisioning
        script): the change's own check (the group's status, its Update, its Auto Scaling group's
        tags) every ``interval`` seconds, so a failed change carries EKS's reasons (the group's
        health issues, the Update's errors); the last status, done or not, so that a change still
        under way when the time is up is reported pending, not failed; a poll refused for now
        (throttled) is polled again (:func:`infra.polling.until_done`)."""
        return until_done(self.check, operation, interval, timeout)

    def describe(self, name: str) -> PoolStatus | None:
        group = self._group(name)
        return None if group is None else group_status(group)

    def made(self, skip: Collection[str] = ()) -> list[PoolStatus]:
        """The groups this installation created for studies, but those in ``skip``
        (:meth:`infra.eks_listing.GroupListing.made`). None outside the service."""
        return self.listing.made(skip)

    def tidy(self, before: float) -> list[str]:
        """Delete the launch templates katuna made for groups the cluster no longer has
        (:meth:`infra.eks_listing.GroupListing.tidy`). None outside the service."""
        return self.listing.tidy(before)

    def node_settings(self, name: str) -> tuple[str, frozenset[str]] | None:
        """The IAM role the group's nodes run as and its subnets, which EKS cannot change of a
        group (``UpdateNodegroupConfig`` takes neither); None when there is no such group or it
        is being deleted (a group created again once it is gone takes those asked for)."""
        group = self._group(name)
        if group is None or group["status"] == "DELETING":
            return None
        return group.get("nodeRole", ""), frozenset(group.get("subnets") or ())

