"""EKS managed node groups through ``boto3``, whose clients this module alone makes.

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
finds no group), or once EKS refuses the group's create for good; a create that EKS refuses because the template was deleted since its look (by
the end of an earlier group of the same name) makes it again and asks once more.

A group katuna creates for a study carries the study's uid as a tag
(:data:`functions.core.nodepool.OWNER_KEY`); any other group found is adopted, and its scaling
limits as found are what :meth:`EksNodePools.scale_back` gives back.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from dataclasses import replace
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoRegionError
from botocore.parsers import ResponseParserError

from functions.core.cluster import TRIAL_TAINT
from functions.core.errors import KatunaError, TemporaryError
from functions.core.nodepool import (
    EKS,
    ON_DEMAND,
    OWNER_KEY,
    POOL_LABEL,
    SPOT,
    NodePool,
    NodePoolFailed,
    OperationStatus,
    PoolChange,
    PoolStatus,
    claim,
)
from functions.core.timeouts import REMOTE_TIMEOUT
from infra.eks_errors import about_template, code, issues_text, message, no_cluster, set_up_failure, stuck, translate
from infra.eks_requests import (
    CLUSTER_SETTING,
    SUBNETS_SETTING,
    TAGS_PER_CALL,
    EksCluster,
    create_request,
    name_request,
    option_tags,
    scaling_request,
    subnet_problem,
    template_tags,
)
from infra.eks_templates import LaunchTemplates
from infra.polling import until_done

SHRINK = "shrink"
"""The kind of a pending maximum given back (``shrink:<group>:<min>:<max>:<held>``): the group
runs more nodes than the maximum, so its maximum is held at that many (``held``) until the
cluster-autoscaler has removed the nodes it no longer needs, then lowered. Setting the desired
size instead would have EKS terminate nodes of its own choosing, trials of running studies
among them (the API reference's ``NodegroupScalingConfig``: with the Cluster Autoscaler, "you
shouldn't change the desiredSize value directly")."""
ATTEMPTS = 2
"""Tries of one call, the first included."""
_UPDATE_FAILED = {"Failed": "failed", "Cancelled": "was cancelled"}
"""The Update statuses that end it without its change, in words."""


def clients(region: str | None = None, timeout: float = REMOTE_TIMEOUT) -> tuple[Any, Any, Any]:
    """EKS, Auto Scaling and EC2 clients from the standard chain (profile, environment,
    ``AWS_ENDPOINT_URL``), whose calls each wait at most ``timeout`` seconds to connect and as
    long for each read, and are tried twice at most (botocore's standard retries: throttling,
    a server's failure, a timeout), so a call that hangs gives up instead of holding on."""
    bounded = Config(connect_timeout=timeout, read_timeout=timeout,
                     retries={"mode": "standard", "total_max_attempts": ATTEMPTS})
    try:
        session = boto3.session.Session(region_name=region)
        if not session.region_name:
            raise NoRegionError()
        return (session.client("eks", config=bounded), session.client("autoscaling", config=bounded),
                session.client("ec2", config=bounded))
    except (BotoCoreError, ValueError) as exc:
        raise set_up_failure(exc, region) from exc


class EksNodePools:
    """Implements :class:`functions.core.ports.NodePools` for one EKS cluster."""

    provider = EKS

    def __init__(self, cluster: EksCluster, eks: Any, autoscaling: Any, ec2: Any) -> None:
        self.cluster = cluster
        self.eks = eks
        self.autoscaling = autoscaling
        self.ec2 = ec2
        self.templates = LaunchTemplates(cluster, ec2, self._failed)

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
        return translate(exc)

    def _group(self, name: str) -> dict[str, Any] | None:
        found = self._call("describe_nodegroup", name_request(self.cluster, name), absent_ok=True)
        return found["nodegroup"] if found else None

    def ensure(self, pool: NodePool, owner: str | None = None, *, request_id: str | None = None) -> PoolChange:
        if not self.cluster.subnets or not self.cluster.node_role:
            raise NodePoolFailed("EKS node groups need subnets and a node role (KATUNA_EKS_SUBNETS, "
                                 "KATUNA_EKS_NODE_ROLE)")
        group = self._group(pool.name)
        if group is None:
            if self._create(pool, owner, request_id):
                return PoolChange("create:" + pool.name, created=True, owned=owner is not None)
            group = self._group(pool.name)
        if group is None:
            raise TemporaryError(f"EKS: node group {pool.name} exists and is gone again; try again")
        status = group["status"]
        if status in ("DELETING", "UPDATING"):
            raise TemporaryError(f"EKS: node group {pool.name} is {status.lower()}; try again when it is done")
        failure = stuck(self.cluster.name, group)
        if failure is not None:
            raise failure
        found = _status(group)
        whose = claim(pool, found, owner, {"minSize": found.min_nodes, "maxSize": found.max_nodes})
        if status == "CREATING":
            return replace(whose, operation="create:" + pool.name)
        scaling = group["scalingConfig"]
        if scaling["maxSize"] >= pool.max_nodes:
            _, written = self._tag(group, _pool_of(group))
            return replace(whose, changed=_told(written)) if written else whose
        return replace(whose, operation=self._update(
            scaling_request(self.cluster, pool.name, scaling["minSize"], pool.max_nodes, request_id=request_id)))

    def _create(self, pool: NodePool, owner: str | None, request_id: str | None) -> bool:
        """Create the group, absent when looked for, with its launch template: whether EKS took
        the create (not when it answers that the group exists, made meanwhile). A create refused
        because the template is gone (deleted between its look and the create by the end of an
        earlier group of the same name, whose template it is: named by its content) makes it
        again and asks once more."""
        self._check_subnets()
        self.templates.make(pool)
        try:
            return self._ask_create(pool, owner, request_id)
        except ClientError as exc:
            if not about_template(exc) or self.templates.exists(pool):
                raise self._create_refused(pool.name, exc) from exc
        self.templates.make(pool)
        try:
            return self._ask_create(pool, owner, request_id)
        except ClientError as exc:
            raise self._create_refused(pool.name, exc) from exc

    def _create_refused(self, name: str, exc: ClientError) -> Exception:
        """katuna's error for a create EKS refused. One refused for good (a node role, instance
        types, a quota) first deletes the launch template made for it, unless a group of the name
        took it meanwhile (:meth:`_drop_templates`): no group holds it, so no delete of a group
        would. A template that cannot be deleted now is left (a create of the same content takes
        it, the next delete of a group of the name deletes it), the refusal told all the same;
        one refused for now keeps it for the next try."""
        refusal = self._refusal(exc)
        if isinstance(refusal, NodePoolFailed):
            with suppress(KatunaError):
                self._drop_templates(name)
        return refusal

    def _ask_create(self, pool: NodePool, owner: str | None, request_id: str | None) -> bool:
        """Ask EKS for the group: whether it took the create; False where it answers that the
        group exists. Its other refusals are raised as EKS's, for the caller to read."""
        try:
            self.eks.create_nodegroup(**create_request(self.cluster, pool, owner, request_id))
            return True
        except ClientError as exc:
            if code(exc) == "ResourceInUseException":
                return False
            raise
        except (BotoCoreError, ResponseParserError) as exc:
            raise self._failed(exc) from exc

    def _check_subnets(self) -> None:
        """Refuse, before anything is created, subnets that cannot hold the cluster's node groups
        (:func:`infra.eks_requests.subnet_problem`): EKS would refuse some with a bare
        ``InvalidParameterException`` and accept the public ones that give no address, only for
        the group to fail minutes later. Only a group to be created is checked: one that exists
        already is adopted or raised whatever the subnets."""
        cluster = self._call("describe_cluster", {"name": self.cluster.name})["cluster"]
        wanted = list(self.cluster.subnets)
        try:
            subnets = self.ec2.describe_subnets(Filters=[{"Name": "subnet-id", "Values": wanted}])["Subnets"]
            vpcs = sorted({subnet["VpcId"] for subnet in subnets})
            tables = self.ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": vpcs}])["RouteTables"] \
                if vpcs else []
        except (ClientError, BotoCoreError, ResponseParserError) as exc:
            raise self._failed(exc) from exc
        vpc = cluster.get("resourcesVpcConfig", {}).get("vpcId")
        problem = subnet_problem(self.cluster.name, vpc, self.cluster.subnets, subnets, tables)
        if problem:
            raise NodePoolFailed(problem, SUBNETS_SETTING)

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

    def _drop_templates(self, name: str) -> None:
        """Delete the gone group's launch templates, unless a group of its name is back."""
        self.templates.drop(name, lambda: self._group(name) is not None)

    def _update(self, request: dict[str, Any]) -> str:
        """Ask for a scaling update; the operation that names it, with the id of EKS's Update."""
        update = self._call("update_nodegroup_config", request)["update"]
        return f"update:{request['nodegroupName']}:{update['id']}"

    def delete(self, name: str) -> PoolChange:
        """Delete the group; one EKS is deleting already is waited for, not asked again (as
        Ansible's ``community.aws.eks_nodegroup`` does), so a delete run twice waits for the first."""
        group = self._group(name)
        if group is None:
            self._drop_templates(name)
            return PoolChange()
        if group["status"] == "DELETING":
            return PoolChange("delete:" + name)
        found = self._call("delete_nodegroup", name_request(self.cluster, name), absent_ok=True)
        if not found:
            self._drop_templates(name)
        return PoolChange("delete:" + name) if found else PoolChange()

    def empty(self, name: str) -> PoolChange:
        """No change: EKS's API reference says not to change a node group's ``desiredSize``
        where the Cluster Autoscaler sizes it (the autoscaler may suddenly scale it up or down
        again), and a group's ``maxSize`` cannot be 0; so a shared group's nodes are left to the
        autoscaler, which removes each once unneeded for its ``--scale-down-unneeded-time``."""
        return PoolChange()

    def check(self, operation: str) -> OperationStatus:
        if operation.startswith(SHRINK + ":"):
            return self._shrink(*operation.split(":")[1:])
        kind, name, update_id = _parts(operation)
        if update_id:
            update = self._update_status(name, update_id)
            if update is not None:
                return update
        group = self._group(name)
        if kind == "delete":
            if group is None:
                self._drop_templates(name)
                return OperationStatus(True)
            failed = group["status"] == "DELETE_FAILED"
            return OperationStatus(failed, f"could not delete node group {name}: {issues_text(group)}" if failed else None)
        if group is None:
            return OperationStatus(True, f"node group {name} disappeared")
        failure = stuck(self.cluster.name, group, advise=False)
        if failure is not None:
            return OperationStatus(True, failure.reason.removeprefix("EKS "))
        if group["status"] in ("CREATING", "UPDATING"):
            return OperationStatus(False)
        return OperationStatus(self._tag(group, _pool_of(group))[0])

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
                                         f"{_UPDATE_FAILED[update['status']]}: {_errors(update)}")
        if update["status"] != "Successful":
            return OperationStatus(False)
        return None

    def _tag(self, group: dict[str, Any], pool: NodePool) -> tuple[bool, list[dict[str, Any]]]:
        """Tag the group's Auto Scaling groups for scale-up from zero, where a tag is missing,
        and, if katuna made the group for a study, with its scale-down option where it has none
        (a value found, the user's, is kept): whether every one was there to tag (not while the
        group names none, or one is not there yet), and the tags written (in as many calls as
        Auto Scaling's :data:`~infra.eks_requests.TAGS_PER_CALL` needs)."""
        names = [asg["name"] for asg in group.get("resources", {}).get("autoScalingGroups", [])]
        if not names:
            return False, []
        made = OWNER_KEY in (group.get("tags") or {})
        try:
            found = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=names)["AutoScalingGroups"]
            capacity_type = group.get("capacityType", "ON_DEMAND")
            missing = []
            for asg in found:
                present = {(t["Key"], t["Value"]) for t in asg.get("Tags", [])}
                missing += [t for t in template_tags(asg["AutoScalingGroupName"], pool, capacity_type)
                            if (t["Key"], t["Value"]) not in present]
                keys = {key for key, _ in present}
                missing += [t for t in option_tags(asg["AutoScalingGroupName"]) if made and t["Key"] not in keys]
            for start in range(0, len(missing), TAGS_PER_CALL):
                self.autoscaling.create_or_update_tags(Tags=missing[start:start + TAGS_PER_CALL])
        except (ClientError, BotoCoreError, ResponseParserError) as exc:
            raise self._failed(exc) from exc
        return len(found) == len(names), missing

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
        return None if group is None else _status(group)

    def node_settings(self, name: str) -> tuple[str, frozenset[str]] | None:
        """The IAM role the group's nodes run as and its subnets, which EKS cannot change of a
        group (``UpdateNodegroupConfig`` takes neither); None when there is no such group or it
        is being deleted (a group created again once it is gone takes those asked for)."""
        group = self._group(name)
        if group is None or group["status"] == "DELETING":
            return None
        return group.get("nodeRole", ""), frozenset(group.get("subnets") or ())


def _status(group: dict[str, Any]) -> PoolStatus:
    """The group as katuna judges it: state, limits, capacity, taint, and who made it."""
    scaling = group.get("scalingConfig", {})
    capacity = SPOT if group.get("capacityType") == "SPOT" else ON_DEMAND
    tainted = {"key": TRIAL_TAINT["key"], "value": TRIAL_TAINT["value"], "effect": "NO_SCHEDULE"} in (
        group.get("taints") or [])
    issues = (group.get("health") or {}).get("issues")
    return PoolStatus(group["nodegroupName"], group["status"], scaling.get("minSize", 0), scaling.get("maxSize", 0),
                      capacity, tuple(group.get("instanceTypes") or ()), tainted=tainted,
                      owner=(group.get("tags") or {}).get(OWNER_KEY), labels=_pool_of(group).labels,
                      message=issues_text(group) if issues else None)


def _parts(operation: str) -> tuple[str, str, str]:
    """An operation's kind, group, and Update id (empty but for an update; empty too for one
    stored before katuna kept update ids)."""
    kind, _, rest = operation.partition(":")
    name, _, update_id = rest.partition(":")
    return kind, name, update_id


def _errors(update: dict[str, Any]) -> str:
    errors = update.get("errors") or []
    return "; ".join(f"{e.get('errorCode')}: {e.get('errorMessage')}" for e in errors) or "EKS gave no reason"


def _told(written: list[dict[str, Any]]) -> str:
    """The node-template tags written, in words: how many, on which Auto Scaling groups."""
    groups = sorted({tag["ResourceId"] for tag in written})
    return (f"wrote {len(written)} cluster-autoscaler node-template tag{'s' if len(written) > 1 else ''} to its "
            f"Auto Scaling group{'s' if len(groups) > 1 else ''} {', '.join(groups)}")


def _pool_of(group: dict[str, Any]) -> NodePool:
    """The pool a node group stands for, from its own description."""
    labels = {k: v for k, v in (group.get("labels") or {}).items() if k != POOL_LABEL}
    capacity = SPOT if group.get("capacityType") == "SPOT" else ON_DEMAND
    return NodePool(group["nodegroupName"], EKS, capacity, tuple(group.get("instanceTypes") or ()),
                    group.get("scalingConfig", {}).get("maxSize", 1), labels=tuple(sorted(labels.items())))
