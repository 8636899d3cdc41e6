"""moto's EKS, taught the ``DescribeUpdate`` call that EKS has and moto 5 lacks, the Auto
Scaling group EKS makes for each node group, and the account's service quotas that EKS holds
node groups to and moto does not.

moto answers ``update_nodegroup_config`` with an Update but keeps none, so katuna's check of that Update would reach a call moto does
not route. :func:`teach` makes moto keep every node group Update it answers with and serve
``DescribeUpdate`` for it as EKS does: the Update as answered, ``ResourceNotFoundException``
for an id it never gave or given for another group.

moto takes any ``scalingConfig.maxSize`` and any number of node groups; EKS refuses a group
whose ``maxSize`` (created or updated) is above the account's quota of nodes per managed node
group with ``InvalidParameterException``, and a node group past its quota of managed node groups
per cluster with ``ResourceLimitExceededException`` (both HTTP 400, naming the cluster and the
group; the wording of the messages here is the stand-in's own). :func:`teach` makes moto refuse
them too, by the account's quotas: AWS's defaults (:class:`functions.core.limits.EksQuotas`),
those :func:`teach` is given, or those :func:`raise_quotas` gives one region, as an increase
granted in the Service Quotas console would.

moto checks little else of a node group's configuration: :func:`teach` makes it refuse what EKS
refuses (:mod:`moto_eks_checks`), and a launch template EKS would not take
(:func:`moto_eks_ec2.check_launch_template`).

EKS holds a cluster ``UPDATING`` while an update of its configuration runs, and refuses to
create or update its node groups meanwhile (``InvalidRequestException``: ``Cluster 'C' is not
in ACTIVE status``, moto's words for a create); it refuses to update a node group that is not
``ACTIVE`` with ``ResourceInUseException`` (``Nodegroup cannot be updated as it is currently not
in Active State``, as EKS users quote it). :func:`teach` makes moto's ``UpdateClusterConfig``
hold the cluster ``UPDATING`` for :data:`UPDATE_SECONDS` (minutes on EKS; seconds here, so the
tests wait little), and refuse both.

moto takes any node role, and EKS only one IAM has that EC2 may assume: :func:`teach` makes
moto refuse the others (:mod:`moto_eks_iam`), and shows an active group whose role IAM no longer
has ``DEGRADED`` with the health issue ``IamNodeRoleNotFound``, in the API reference's words, as
EKS does; it takes a ``DEGRADED`` group's updates (:data:`UPDATABLE`). Health issues moto has no
cause for (EC2 without capacity) and a delete that fails are given to a group by hand
(:func:`moto_eks_lifecycle.degrade`, :func:`moto_eks_lifecycle.hold_deletion`).

moto takes any subnet ids, and only names the Auto Scaling group EKS makes for each managed node
group: :func:`teach` makes it check the subnets and make the groups as EKS does (:mod:`moto_eks_ec2`),
and moto's Auto Scaling refuse tags past AWS's bounds on a group's (:mod:`moto_autoscaling`). A
node group's ``desiredSize`` is its Auto Scaling group's desired capacity, which the cluster
autoscaler moves (:func:`kube_standin.clouds.eks_resize`), and an update's sizes reach the Auto
Scaling group once it is done, as on EKS.

moto creates, deletes and updates a node group at once; EKS takes minutes, in states that
refuse other changes meanwhile. :func:`teach` makes moto hold each group ``CREATING``,
``DELETING`` and ``UPDATING`` as EKS does, on a clock tests move (:mod:`moto_eks_lifecycle`).

In this process that is for ``mock_aws``; ``python tests/moto_eks.py -p PORT`` runs moto's
server with the same, its quotas read from ``KATUNA_EKS_NODES_PER_GROUP`` and
``KATUNA_EKS_GROUPS_PER_CLUSTER`` as katuna reads them, so a server started with the service's
environment holds it to the quotas it is configured with, and its node groups' states lasting
as long in stand-in time at ``MOTO_EKS_SPEED`` stand-in seconds per second (1 by default: EKS's
minutes; the tests give 1000000, in which they pass in a blink, or 0, in which they never end);
with ``MOTO_DENY_TEMPLATE_DELETES`` set, it refuses every launch template delete as EC2 refuses an
identity not allowed one (:func:`moto_eks_ec2.deny_template_deletes`).

What moto cannot show (an Update failed with its errors) is tested with botocore's Stubber
(tests/test_nodepools_eks.py).
"""

from __future__ import annotations

import os
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any

import botocore_models  # noqa: F401  (one read of each service model per process)

os.environ.setdefault("MOTO_AMIS_PATH", str(Path(__file__).with_name("moto_amis.json")))
"""moto's EC2 holds this one image (:data:`moto_eks_ec2.IMAGE`) instead of its 1,291: loading those cost
every fresh mock half a second of CPU. moto reads it when its EC2 is first imported, so this
module is imported before any use of moto's EC2 (as the tests, benchmarks and server here do)."""

import moto_autoscaling
import moto_eks_lifecycle as lifecycle
from boto3 import Session
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionResult
from moto.eks import urls, utils
from moto.eks.exceptions import (
    EKSError,
    InvalidParameterException,
    InvalidRequestException,
    ResourceInUseException,
    ResourceNotFoundException,
)
from moto.eks.models import CLUSTER_NOT_READY_MSG, EKSBackend, eks_backends
from moto.eks.responses import EKSResponse
from moto_eks_checks import (
    check_ami_type,
    check_create,
    check_disk,
    check_instance_types,
    check_labels,
    check_order,
    check_shapes,
    check_tags,
    check_taints,
)
from moto_eks_ec2 import (
    check_launch_template,
    check_offered,
    check_subnets,
    delete_autoscaling_groups,
    deny_template_deletes,
    ec2_subnets,
    fail_creation,
    follow_autoscaling_group,
    from_template,
    make_autoscaling_group,
    push_to_autoscaling_group,
)
from moto_eks_iam import check_node_role, role_exists

from functions.core.limits import EksQuotas
from functions.settings.values import eks_quotas

UPDATE_PATH = "{0}/clusters/(?P<name>[^/]+)/updates/(?P<updateId>[^/]+)$"
_ACCOUNT = {"quotas": EksQuotas()}
"""The quotas of every account and region not given its own by :func:`raise_quotas`."""
UPDATE_SECONDS = 10.0
"""How long an ``UpdateClusterConfig`` holds the cluster ``UPDATING``, in seconds of this process's
clock: long enough that a test's next call, a new process on a loaded machine, still finds it so."""
GROUP_BUSY = "Nodegroup cannot be updated as it is currently not in Active State"
UPDATABLE = ("ACTIVE", "DEGRADED")
"""The states in which EKS takes a node group's ``UpdateNodegroupConfig``: a ``DEGRADED`` group
is scaled as an active one is (aws/containers-roadmap#2326: scaling one to zero, or out, is
how its users try to bring it back)."""


class ResourceLimitExceededException(EKSError):
    """EKS's answer to a request past one of the account's service quotas."""

    TYPE = "ResourceLimitExceededException"
    STATUS = 400


def raise_quotas(quotas: EksQuotas, region: str) -> None:
    """The account's EKS quotas in ``region`` from now on, as an increase granted in the Service
    Quotas console sets them (emptied with the backend)."""
    eks_backends[DEFAULT_ACCOUNT_ID][region].__dict__["katuna_quotas"] = quotas


def quotas_of(backend: EKSBackend) -> EksQuotas:
    """The quotas EKS holds the backend's account and region to."""
    return backend.__dict__.get("katuna_quotas", _ACCOUNT["quotas"])


def _check_size(backend: EKSBackend, cluster: str, group: str, scaling: dict[str, int] | None) -> None:
    """EKS refuses a ``maxSize`` above the account's quota of nodes per managed node group."""
    most = quotas_of(backend).nodes_per_group
    if scaling and scaling.get("maxSize", 0) > most:
        raise InvalidParameterException(
            clusterName=cluster, nodegroupName=group, fargateProfileName=None, addonName=None,
            message=f"maxSize can't be greater than {most}, the account's quota of nodes per managed node group")


def _settle(cluster: Any) -> None:
    """The cluster ``ACTIVE`` again once the update that holds it is done."""
    until = cluster.__dict__.get("katuna_updating_until")
    if until is not None and time.monotonic() >= until:
        cluster.status = "ACTIVE"
        del cluster.__dict__["katuna_updating_until"]


def _check_active(backend: EKSBackend, cluster_name: str) -> None:
    """EKS refuses a node group change while its cluster is not ``ACTIVE``."""
    cluster = backend.clusters.get(cluster_name)
    if cluster is None:
        return
    _settle(cluster)
    if not cluster.is_active:
        raise InvalidRequestException(message=CLUSTER_NOT_READY_MSG.format(clusterName=cluster_name))


def _create_cluster(answer: Any) -> Any:
    def create_cluster(self: EKSBackend, name: str, role_arn: str, resources_vpc_config: dict[str, Any],
                       **rest: Any) -> Any:
        if name not in self.clusters:
            subnets = ec2_subnets(self, name, None, list(resources_vpc_config.get("subnetIds") or []))
            resources_vpc_config = {**resources_vpc_config, "vpcId": subnets[0].vpc_id if subnets else None}
        return answer(self, name=name, role_arn=role_arn, resources_vpc_config=resources_vpc_config, **rest)

    return create_cluster


def _create_nodegroup(answer: Any) -> Any:
    def create_nodegroup(self: EKSBackend, cluster_name: str, nodegroup_name: str,
                         scaling_config: dict[str, int] | None = None, **rest: Any) -> Any:
        cluster = self.clusters.get(cluster_name)
        unaddressed: list[str] = []
        if cluster is not None:
            _settle(cluster)
        if cluster is not None and nodegroup_name not in cluster.nodegroups:
            check_create(cluster_name, nodegroup_name, scaling_config)
            check_shapes(cluster_name, nodegroup_name, scaling_config, capacityType=rest.get("capacity_type"),
                         amiType=rest.get("ami_type"))
            check_instance_types(cluster_name, nodegroup_name, rest.get("instance_types"))
            check_ami_type(cluster_name, nodegroup_name, rest.get("ami_type"), rest.get("instance_types"))
            unaddressed = check_subnets(self, cluster, nodegroup_name, list(rest.get("subnets") or []))
            check_offered(self, list(rest.get("subnets") or []), rest.get("instance_types"))
            check_node_role(self, cluster_name, nodegroup_name, rest.get("node_role"))
            check_tags(cluster_name, nodegroup_name, rest.get("tags"))
            _check_size(self, cluster_name, nodegroup_name, scaling_config)
            check_order(cluster_name, nodegroup_name, scaling_config or {}, update=False)
            check_labels(cluster_name, nodegroup_name, rest.get("labels"))
            check_taints(cluster_name, nodegroup_name, rest.get("taints"))
            check_disk(cluster_name, nodegroup_name, rest.get("disk_size"))
            most = quotas_of(self).groups_per_cluster
            if len(cluster.nodegroups) >= most:
                raise ResourceLimitExceededException(
                    clusterName=cluster_name, nodegroupName=nodegroup_name, subscriptionId=None,
                    message=f"Cluster {cluster_name} already has {len(cluster.nodegroups)} managed node groups, the "
                            f"account's quota of managed node groups per cluster ({most})")
            check_disk(cluster_name, nodegroup_name, check_launch_template(
                self, cluster_name, nodegroup_name, rest.get("launch_template"), rest.get("instance_types")))
        group = answer(self, cluster_name=cluster_name, nodegroup_name=nodegroup_name, scaling_config=scaling_config,
                       **rest)
        from_template(group)
        if unaddressed:
            lifecycle.begin(group, "CREATING", lambda: fail_creation(group, unaddressed))
        else:
            make_autoscaling_group(self, group)
            lifecycle.begin(group, "CREATING", lambda: setattr(group, "status", "ACTIVE"))
        return group

    return create_nodegroup


def _delete_nodegroup(answer: Any) -> Any:
    def delete_nodegroup(self: EKSBackend, cluster_name: str, nodegroup_name: str) -> Any:
        cluster = self.clusters.get(cluster_name)
        group = cluster.nodegroups.get(nodegroup_name) if cluster is not None else None
        if group is None:
            return answer(self, cluster_name, nodegroup_name)
        lifecycle.refuse_busy(group, cluster_name, f"Nodegroup {nodegroup_name} cannot be deleted as it is currently "
                                                   f"{group.status}")
        lifecycle.begin(group, "DELETING", lifecycle.deleted(
            group, lambda: delete_autoscaling_groups(self, answer(self, cluster_name, nodegroup_name))))
        return group

    return delete_nodegroup


def _kept(backend: EKSBackend) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The backend's node group Updates by cluster, group and id (emptied with the backend)."""
    return backend.__dict__.setdefault("katuna_updates", {})


def _update_nodegroup_config(answer: Any) -> Any:
    def update_nodegroup_config(self: EKSBackend, cluster_name: str, nodegroup_name: str,
                                **changes: Any) -> dict[str, Any]:
        check_shapes(cluster_name, nodegroup_name, changes.get("scaling_config"))
        _check_active(self, cluster_name)
        _check_size(self, cluster_name, nodegroup_name, changes.get("scaling_config"))
        group = self.clusters[cluster_name].nodegroups.get(nodegroup_name) if cluster_name in self.clusters else None
        if group is None:
            return answer(self, cluster_name, nodegroup_name, **changes)
        if group.status not in UPDATABLE:
            raise ResourceInUseException(clusterName=cluster_name, nodegroupName=nodegroup_name, addonName=None,
                                         message=GROUP_BUSY)
        follow_autoscaling_group(self, group)
        check_order(cluster_name, nodegroup_name, {**group.scaling_config, **(changes.get("scaling_config") or {})},
                    update=True)
        check_labels(cluster_name, nodegroup_name, (changes.get("labels") or {}).get("addOrUpdateLabels"))
        check_taints(cluster_name, nodegroup_name, (changes.get("taints") or {}).get("addOrUpdateTaints"))
        update = lifecycle.deferred_update(group, lambda: answer(self, cluster_name, nodegroup_name, **changes),
                                           lambda: push_to_autoscaling_group(self, group, changes.get("scaling_config") or {}))
        _kept(self)[(cluster_name, nodegroup_name, update["id"])] = update
        return update

    return update_nodegroup_config


def _update_cluster_config(answer: Any) -> Any:
    def update_cluster_config(self: EKSBackend, name: str, **changes: Any) -> Any:
        cluster = answer(self, name=name, **changes)
        cluster.status = "UPDATING"
        cluster.__dict__["katuna_updating_until"] = time.monotonic() + UPDATE_SECONDS
        return cluster

    return update_cluster_config


def _describe_cluster(answer: Any) -> Any:
    def describe_cluster(self: EKSBackend, name: str) -> Any:
        cluster = answer(self, name)
        _settle(cluster)
        return cluster

    return describe_cluster


def _describe_nodegroup(answer: Any) -> Any:
    def describe_nodegroup(self: EKSBackend, cluster_name: str, nodegroup_name: str) -> Any:
        group = answer(self, cluster_name, nodegroup_name)
        follow_autoscaling_group(self, group)
        if group.status == "ACTIVE" and not role_exists(self, group.node_role):
            lifecycle.degrade(group, "IamNodeRoleNotFound", "We couldn't find the IAM role for your managed node "
                                                            "group.", [group.node_role])
        return group

    return describe_nodegroup


def describe_update(self: EKSBackend, cluster_name: str, update_id: str, nodegroup_name: str | None) -> dict:
    """The Update as moto answered it, as EKS's ``DescribeUpdate`` gives it."""
    update = _kept(self).get((cluster_name, nodegroup_name or "", update_id))
    if update is None:
        raise ResourceNotFoundException(clusterName=cluster_name, nodegroupName=nodegroup_name,
                                        fargateProfileName=None, addonName=None,
                                        message=f"No update found for ID: {update_id}")
    return update


def _describe_update(self: EKSResponse) -> ActionResult:
    update = self.eks_backend.describe_update(self._get_param("name"), self._get_param("updateId"),
                                              self._get_param("nodegroupName"))
    return ActionResult({"update": update})


def network(ec2: Any, count: int = 2, *, public: bool = False, addresses: bool = False) -> tuple[str, ...]:
    """A new VPC's ``count`` subnets (one per zone) through the EC2 client ``ec2``: private, or
    ``public`` (routed to an internet gateway), and assigning public IPv4 addresses on launch
    when ``addresses``."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    zones = [zone["ZoneName"] for zone in ec2.describe_availability_zones()["AvailabilityZones"]]
    subnets = tuple(ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=zones[i % len(zones)])
                    ["Subnet"]["SubnetId"] for i in range(count))
    if public:
        gateway = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc)
        table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
        for subnet in subnets:
            ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    for subnet in subnets if addresses else ():
        ec2.modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})
    return subnets


def by_hand(request: dict[str, Any]) -> dict[str, Any]:
    """katuna's ``create_nodegroup`` request as a group made by hand is asked for (the console,
    ``aws eks``): without katuna's launch template, so on EKS's default one."""
    return {key: value for key, value in request.items() if key != "launchTemplate"}


def minutes_pass() -> None:
    """EKS's minutes pass: every node group state under way ends at the next call."""
    lifecycle.advance(max(lifecycle.SECONDS.values()))


@cache
def _partitions_session() -> Session:
    """The one boto3 Session moto's EKS reads AWS's partitions from when it checks a role ARN
    (``moto.eks.utils.validate_role_arn``, at each cluster and node group created). moto made a
    Session for each check, a few milliseconds of CPU each; the partitions are botocore's data,
    the same for every Session of this process."""
    return Session()


def teach(quotas: EksQuotas | None = None) -> None:
    """Teach moto's EKS ``DescribeUpdate`` and the account's quotas in this process (once):
    ``quotas``, else AWS's defaults, wherever :func:`raise_quotas` gives none."""
    _ACCOUNT["quotas"] = quotas or EksQuotas()
    moto_autoscaling.teach()
    if hasattr(EKSBackend, "describe_update"):
        return
    settling = lifecycle.settling
    EKSBackend.create_cluster = _create_cluster(EKSBackend.create_cluster)
    EKSBackend.create_nodegroup = settling(_create_nodegroup(EKSBackend.create_nodegroup))
    EKSBackend.delete_nodegroup = settling(_delete_nodegroup(EKSBackend.delete_nodegroup))
    EKSBackend.update_nodegroup_config = settling(_update_nodegroup_config(EKSBackend.update_nodegroup_config))
    EKSBackend.update_cluster_config = _update_cluster_config(EKSBackend.update_cluster_config)
    EKSBackend.describe_cluster = settling(_describe_cluster(EKSBackend.describe_cluster))
    EKSBackend.describe_nodegroup = settling(_describe_nodegroup(EKSBackend.describe_nodegroup))
    EKSBackend.list_nodegroups = settling(EKSBackend.list_nodegroups)
    EKSBackend.delete_cluster = settling(EKSBackend.delete_cluster)
    EKSBackend.describe_update = settling(describe_update)
    EKSResponse.describe_update = _describe_update
    urls.url_paths[UPDATE_PATH] = urls.response.dispatch
    utils.Session = _partitions_session


if __name__ == "__main__":
    from moto.server import main

    teach(eks_quotas(os.environ))
    lifecycle.pace(speed=float(os.environ.get("MOTO_EKS_SPEED", "1")))
    if os.environ.get("MOTO_DENY_TEMPLATE_DELETES"):
        deny_template_deletes()
    main(sys.argv[1:])
