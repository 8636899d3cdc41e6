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

moto checks little else of a node group's configuration. :func:`teach` makes it refuse, as EKS
does with ``InvalidParameterException``, scaling limits out of order (``minSize`` ≤
``desiredSize`` ≤ ``maxSize``, an update's partial limits judged merged into the group's; in
EKS's words, which differ between a create, ``minSize can't be greater than desiredSize`` as
sassoftware/viya4-iac-aws#298 quotes it, and an update, ``Minimum capacity 8 can't be greater
than desired size 4`` and ``desired capacity 2 can't be greater than max size 1`` as
terraform-aws-modules/terraform-aws-eks#3306 and eksctl users quote them), instance types EC2
does not have (``The following supplied instance types do not exist: [m4.large]``, EKS's words
as terraform-aws-modules/terraform-aws-eks#1279 quotes them; EKS also refuses so a type its
region does not offer, which the stand-in, holding moto's list of every type, does not), a
taint effect EKS does not know (``NO_SCHEDULE``, ``NO_EXECUTE``, ``PREFER_NO_SCHEDULE``), and a
label whose key or value Kubernetes refuses (EKS's own wording for a value, as
aws-controllers-k8s/community#2208 shows it; the other messages are the stand-in's).

EKS holds a cluster ``UPDATING`` while an update of its configuration runs, and refuses to
create or update its node groups meanwhile (``InvalidRequestException``: ``Cluster 'C' is not
in ACTIVE status``, moto's words for a create); it refuses to update a node group that is not
``ACTIVE`` with ``ResourceInUseException`` (``Nodegroup cannot be updated as it is currently not
in Active State``, as EKS users quote it). :func:`teach` makes moto's ``UpdateClusterConfig``
hold the cluster ``UPDATING`` for :data:`UPDATE_SECONDS` (minutes on EKS; seconds here, so the
tests wait little), and refuse both.

moto takes any subnet ids; EKS checks them against EC2. :func:`teach` makes moto's EKS hold a
cluster's and a node group's subnets to moto's EC2 (the tests make them with :func:`network`):
a subnet EC2 does not have is refused with ``InvalidParameterException`` carrying EC2's
``InvalidSubnetID.NotFound`` (EKS's wording for a cluster, as
AdminTurnedDevOps/DevOps-The-Hard-Way-AWS#16 shows it; the stand-in gives a node group the
same); a node group's subnet outside the cluster's VPC is refused too (nodes run "in any subnet
in your cluster's VPC", the EKS User Guide's cluster VPC considerations; the wording is the
stand-in's); a cluster's ``resourcesVpcConfig`` names its VPC, as EKS's does. A public subnet
(one whose route table sends traffic to an internet gateway) that assigns neither public IPv4
nor IPv6 addresses on launch is not refused: EKS creates the group, which fails with the health issue
``Ec2SubnetInvalidConfiguration`` (its wording as sassoftware/viya4-iac-aws#271 shows it; the
EKS API reference's ``Issue``), and so does the group here, once its ``CREATING`` is over.

moto creates, deletes and updates a node group at once; EKS takes minutes, in states that
refuse other changes meanwhile. :func:`teach` makes moto hold each group ``CREATING``,
``DELETING`` and ``UPDATING`` as EKS does, on a clock tests move (:mod:`moto_eks_lifecycle`).

In this process that is for ``mock_aws``; ``python tests/moto_eks.py -p PORT`` runs moto's
server with the same, its quotas read from ``KATUNA_EKS_NODES_PER_GROUP`` and
``KATUNA_EKS_GROUPS_PER_CLUSTER`` as katuna reads them, so a server started with the service's
environment holds it to the quotas it is configured with, and its node groups' states lasting
as long in stand-in time at ``MOTO_EKS_SPEED`` stand-in seconds per second (1 by default: EKS's
minutes; the tests give 1000000, in which they pass in a blink, or 0, in which they never end).

EKS makes each managed node group's Auto Scaling group, which moto only names in the group's
``resources``: :func:`teach` makes moto create it (in its autoscaling backend, sized as the
group's ``scalingConfig``) and delete it with the group, so the node-template tags katuna
writes on it land as they do on AWS, and a group katuna waits for becomes done.

What moto cannot show (an Update failed with its errors) is tested with botocore's Stubber
(tests/test_nodepools_eks.py).
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import botocore_models  # noqa: F401  (one read of each service model per process)

os.environ.setdefault("MOTO_AMIS_PATH", str(Path(__file__).with_name("moto_amis.json")))
"""moto's EC2 holds this one image (:data:`IMAGE`) instead of its 1,291: loading those cost
every fresh mock half a second of CPU. moto reads it when its EC2 is first imported, so this
module is imported before any use of moto's EC2 (as the tests, benchmarks and server here do)."""

import moto_eks_lifecycle as lifecycle
from moto.autoscaling.models import autoscaling_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.ec2.models.instance_types import INSTANCE_TYPES
from moto.eks import urls
from moto.eks.exceptions import (
    EKSError,
    InvalidParameterException,
    InvalidRequestException,
    ResourceInUseException,
    ResourceNotFoundException,
)
from moto.eks.models import CLUSTER_NOT_READY_MSG, EKSBackend, eks_backends
from moto.eks.responses import EKSResponse

from functions.core.limits import EksQuotas
from functions.settings import eks_quotas

TAINT_EFFECTS = ("NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE")
LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
"""A label key's name part, and a label value, as Kubernetes takes them (at most 63 characters)."""
LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
"""A label key's prefix: a DNS subdomain (at most 253 characters)."""
IMAGE = "ami-12c6146b"
GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
"""A node group's name: "alphanumeric characters (case-sensitive), hyphens, and underscores. It
must start with an alphanumeric character and can't be longer than 63 characters" (the EKS API
reference's ``CreateNodegroup``)."""
KEY_MOST = 63
"""EKS's ``labelKey`` and ``taintKey`` shapes: at most 63 characters, a label's prefix included."""
TAGS_MOST, TAG_KEY_MOST, TAG_VALUE_MOST = 50, 128, 256
"""EKS's ``TagMap``: at most 50 tags, keys of 1 to 128 characters, values of at most 256; keys
starting ``aws:`` are AWS's own."""
AL2023_SNAPSHOT_GB = 20
"""The AMI moto's EC2 holds (tests/moto_amis.json), for the instances a node group's Auto Scaling group launches."""
UPDATE_PATH = "{0}/clusters/(?P<name>[^/]+)/updates/(?P<updateId>[^/]+)$"
_ACCOUNT = {"quotas": EksQuotas()}
"""The quotas of every account and region not given its own by :func:`raise_quotas`."""
UPDATE_SECONDS = 3.0
"""How long an ``UpdateClusterConfig`` holds the cluster ``UPDATING``, in seconds of this process's clock."""
GROUP_BUSY = "Nodegroup cannot be updated as it is currently not in Active State"


class ResourceLimitExceededException(EKSError):
    """EKS's answer to a request past one of the account's service quotas."""

    TYPE = "ResourceLimitExceededException"
    STATUS = 400


def raise_quotas(quotas: EksQuotas, region: str, account: str = DEFAULT_ACCOUNT_ID) -> None:
    """The account's EKS quotas in ``region`` from now on, as an increase granted in the Service
    Quotas console sets them (emptied with the backend)."""
    eks_backends[account][region].__dict__["katuna_quotas"] = quotas


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


def _invalid(cluster: str, group: str, message: str) -> InvalidParameterException:
    return InvalidParameterException(clusterName=cluster, nodegroupName=group, fargateProfileName=None,
                                     addonName=None, message=message)


def _check_order(cluster: str, group: str, scaling: dict[str, int], *, update: bool) -> None:
    """EKS refuses limits out of order, ``minSize`` ≤ ``desiredSize`` ≤ ``maxSize`` (limits out
    of order leave the desired size outside one of them), in a create's words or an update's."""
    low, high, desired = scaling.get("minSize"), scaling.get("maxSize"), scaling.get("desiredSize")
    if desired is not None and low is not None and low > desired:
        raise _invalid(cluster, group, f"Minimum capacity {low} can't be greater than desired size {desired}" if update
                       else "minSize can't be greater than desiredSize")
    if desired is not None and high is not None and desired > high:
        raise _invalid(cluster, group, f"desired capacity {desired} can't be greater than max size {high}" if update
                       else "desiredSize can't be greater than maxSize")


def _check_instance_types(cluster: str, group: str, types: list[str] | None) -> None:
    """EKS refuses instance types EC2 does not have."""
    unknown = [kind for kind in types or () if kind not in INSTANCE_TYPES]
    if unknown:
        raise _invalid(cluster, group, f"The following supplied instance types do not exist: [{', '.join(unknown)}]")


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


def _check_labels(cluster: str, group: str, labels: dict[str, str] | None) -> None:
    """EKS refuses node labels Kubernetes would refuse."""
    for key, value in (labels or {}).items():
        if len(key) > KEY_MOST:
            raise _invalid(cluster, group, f'Invalid value: "{key}": a node group label key may be at most {KEY_MOST} '
                                           "characters, its prefix included")
        prefix, _, name = key.rpartition("/")
        if not LABEL_NAME.fullmatch(name) or (prefix and not (len(prefix) <= 253 and LABEL_PREFIX.fullmatch(prefix))):
            raise _invalid(cluster, group, f'Invalid value: "{key}": a label key must be a name of at most 63 '
                                           "alphanumeric characters, '-', '_' or '.', starting and ending with an "
                                           "alphanumeric character, with an optional DNS subdomain prefix and '/'")
        if not LABEL_NAME.fullmatch(value):
            raise _invalid(cluster, group, f'Invalid value: "{value}": a valid label must be an empty string or '
                                           "consist of alphanumeric characters, '-', '_' or '.', and must start and "
                                           "end with an alphanumeric character")


def _check_disk(cluster: str, group: str, size: int | None) -> None:
    """EKS refuses a boot disk smaller than its AMI's root snapshot: 20 GiB for Amazon Linux 2023
    (awslabs/amazon-eks-ami#1581), in its own words (seen in cilium/cilium#43051)."""
    if size is not None and size < AL2023_SNAPSHOT_GB:
        raise _invalid(cluster, group, f"Volume of size {size}GB is smaller than snapshot 'snap-0al2023root', "
                                       f"expect size>= {AL2023_SNAPSHOT_GB}GB")


def _check_taints(cluster: str, group: str, taints: list[dict[str, str]] | None) -> None:
    """EKS takes only its own names of the taint effects."""
    for taint in taints or []:
        if not 1 <= len(taint.get("key") or "") <= KEY_MOST or len(taint.get("value") or "") > KEY_MOST:
            raise _invalid(cluster, group, f"A taint's key must be 1 to {KEY_MOST} characters, its value at most "
                                           f"{KEY_MOST}")
        if taint.get("effect") not in TAINT_EFFECTS:
            raise _invalid(cluster, group, f"Taint effect {taint.get('effect')} is not one of {', '.join(TAINT_EFFECTS)}")


def _check_tags(cluster: str, group: str, tags: dict[str, str] | None) -> None:
    """EKS's bounds on a resource's tags, and AWS's reserved prefix."""
    tags = tags or {}
    if len(tags) > TAGS_MOST:
        raise _invalid(cluster, group, f"A resource may have at most {TAGS_MOST} tags; {len(tags)} were given")
    for key, value in tags.items():
        if key.lower().startswith("aws:"):
            raise _invalid(cluster, group, f"Tag key {key!r} uses the reserved prefix 'aws:'")
        if not 1 <= len(key) <= TAG_KEY_MOST or len(value) > TAG_VALUE_MOST:
            raise _invalid(cluster, group, f"Tag keys must be 1 to {TAG_KEY_MOST} characters and values at most "
                                           f"{TAG_VALUE_MOST}")


def _check_create(cluster: str, group: str, scaling: dict[str, int] | None) -> None:
    """A new group's name, and its ``scalingConfig``: "When creating a node group, you must
    specify all or none of the properties" (``NodegroupScalingConfig``)."""
    if not GROUP_NAME.fullmatch(group):
        raise _invalid(cluster, group, f"Nodegroup name {group!r} is invalid: it may hold only alphanumeric "
                                       "characters, hyphens and underscores, start with an alphanumeric character and "
                                       "be at most 63 characters long")
    given = set(scaling or {}) & {"minSize", "maxSize", "desiredSize"}
    if given and len(given) != 3:
        raise _invalid(cluster, group, "scalingConfig: specify all of minSize, maxSize and desiredSize, or none")


def _subnets(backend: EKSBackend, cluster: str, group: str | None, ids: list[str]) -> list[Any]:
    """EC2's subnets of the ids, as EKS looks them up: one EC2 does not have is refused with
    EC2's error, as EKS passes it on."""
    found = {subnet.id: subnet for subnet in ec2_backends[backend.account_id][backend.region_name].describe_subnets()}
    for subnet in ids:
        if subnet not in found:
            raise _invalid(cluster, group, f"The subnet ID '{subnet}' does not exist (Service: AmazonEC2; Status Code: "
                                           "400; Error Code: InvalidSubnetID.NotFound)")
    return [found[subnet] for subnet in ids]


def _create_cluster(answer: Any) -> Any:
    def create_cluster(self: EKSBackend, name: str, role_arn: str, resources_vpc_config: dict[str, Any],
                       **rest: Any) -> Any:
        if name not in self.clusters:
            subnets = _subnets(self, name, None, list(resources_vpc_config.get("subnetIds") or []))
            resources_vpc_config = {**resources_vpc_config, "vpcId": subnets[0].vpc_id if subnets else None}
        return answer(self, name=name, role_arn=role_arn, resources_vpc_config=resources_vpc_config, **rest)

    return create_cluster


def _public(backend: EKSBackend, subnet: Any) -> bool:
    """Whether the subnet's route table (its own, else its VPC's main one) routes to an internet gateway."""
    tables = ec2_backends[backend.account_id][backend.region_name].describe_route_tables(
        filters={"vpc-id": [subnet.vpc_id]})
    own = [t for t in tables if subnet.id in t._associations.values()]
    table = (own or [t for t in tables if t.main_association_id is not None])[0]
    return any(route.gateway is not None and route.gateway.id.startswith("igw-") for route in table.routes)


def _check_subnets(backend: EKSBackend, cluster: Any, group: str, ids: list[str]) -> list[str]:
    """Refuse subnets EC2 does not have or outside the cluster's VPC; the public ones that give
    no public addresses, whose group fails once created."""
    vpc = cluster.resources_vpc_config.get("vpcId")
    subnets = _subnets(backend, cluster.name, group, ids)
    for subnet in subnets:
        if subnet.vpc_id != vpc:
            raise _invalid(cluster.name, group, f"Subnet {subnet.id} is in VPC {subnet.vpc_id}, not in the cluster's "
                                                f"VPC {vpc}")
    return [s.id for s in subnets
            if not (s.map_public_ip_on_launch or s.assign_ipv6_address_on_creation) and _public(backend, s)]


def _fail_creation(group: Any, subnets: list[str]) -> None:
    """The group as EKS leaves it when its public subnets give nodes no public address."""
    group.status = "CREATE_FAILED"
    group.health = {"issues": [{
        "code": "Ec2SubnetInvalidConfiguration", "resourceIds": subnets,
        "message": f"One or more Amazon EC2 Subnets of [{', '.join(subnets)}] for node group {group.nodegroup_name} "
                   "does not automatically assign public IP addresses to instances launched into it. If you want your "
                   "instances to be assigned a public IP address, then you need to enable auto-assign public IP "
                   "address for the subnet."}]}


def _create_nodegroup(answer: Any) -> Any:
    def create_nodegroup(self: EKSBackend, cluster_name: str, nodegroup_name: str,
                         scaling_config: dict[str, int] | None = None, **rest: Any) -> Any:
        cluster = self.clusters.get(cluster_name)
        unaddressed: list[str] = []
        if cluster is not None:
            _settle(cluster)
        if cluster is not None and nodegroup_name not in cluster.nodegroups:
            _check_create(cluster_name, nodegroup_name, scaling_config)
            _check_instance_types(cluster_name, nodegroup_name, rest.get("instance_types"))
            unaddressed = _check_subnets(self, cluster, nodegroup_name, list(rest.get("subnets") or []))
            _check_tags(cluster_name, nodegroup_name, rest.get("tags"))
            _check_size(self, cluster_name, nodegroup_name, scaling_config)
            _check_order(cluster_name, nodegroup_name, scaling_config or {}, update=False)
            _check_labels(cluster_name, nodegroup_name, rest.get("labels"))
            _check_taints(cluster_name, nodegroup_name, rest.get("taints"))
            _check_disk(cluster_name, nodegroup_name, rest.get("disk_size"))
            most = quotas_of(self).groups_per_cluster
            if len(cluster.nodegroups) >= most:
                raise ResourceLimitExceededException(
                    clusterName=cluster_name, nodegroupName=nodegroup_name, subscriptionId=None,
                    message=f"Cluster {cluster_name} already has {len(cluster.nodegroups)} managed node groups, the "
                            f"account's quota of managed node groups per cluster ({most})")
        group = answer(self, cluster_name=cluster_name, nodegroup_name=nodegroup_name, scaling_config=scaling_config,
                       **rest)
        if unaddressed:
            lifecycle.begin(group, "CREATING", lambda: _fail_creation(group, unaddressed))
        else:
            _make_autoscaling_group(self, group)
            lifecycle.begin(group, "CREATING", lambda: setattr(group, "status", "ACTIVE"))
        return group

    return create_nodegroup


def _make_autoscaling_group(backend: EKSBackend, group: Any) -> None:
    """The Auto Scaling group EKS makes for a managed node group, by the name moto gives it in
    the group's ``resources``: sized as the group's ``scalingConfig``, launching its first
    instance type, in the region's first zone (moto's EC2 does not hold the subnets tests name)."""
    autoscaling = autoscaling_backends[backend.account_id][backend.region_name]
    name = group.resources["autoScalingGroups"][0]["name"]
    scaling = group.scaling_config
    autoscaling.create_launch_configuration(
        name=name, image_id=IMAGE, key_name=None, kernel_id="", ramdisk_id="", security_groups=[], user_data=None,
        instance_type=group.instance_types[0], instance_monitoring=False, instance_profile_name=None, spot_price=None,
        ebs_optimized=False, associate_public_ip_address=False, block_device_mappings=[])
    autoscaling.create_auto_scaling_group(
        name=name, availability_zones=[f"{backend.region_name}a"], desired_capacity=scaling.get("desiredSize"),
        max_size=scaling.get("maxSize"), min_size=scaling.get("minSize"), launch_config_name=name, launch_template={},
        vpc_zone_identifier=None, default_cooldown=None, health_check_period=None, health_check_type=None,
        load_balancers=[], target_group_arns=[], placement_group=None, termination_policies=[], tags=[])


def _delete_nodegroup(answer: Any) -> Any:
    def delete_nodegroup(self: EKSBackend, cluster_name: str, nodegroup_name: str) -> Any:
        cluster = self.clusters.get(cluster_name)
        group = cluster.nodegroups.get(nodegroup_name) if cluster is not None else None
        if group is None:
            return answer(self, cluster_name, nodegroup_name)
        lifecycle.refuse_busy(group, cluster_name, f"Nodegroup {nodegroup_name} cannot be deleted as it is currently "
                                                   f"{group.status}")
        lifecycle.begin(group, "DELETING", lambda: _gone(self, answer(self, cluster_name, nodegroup_name)))
        return group

    return delete_nodegroup


def _gone(backend: EKSBackend, group: Any) -> None:
    """A deleted group's Auto Scaling group deleted with it, as EKS does."""
    autoscaling = autoscaling_backends[backend.account_id][backend.region_name]
    for asg in group.resources["autoScalingGroups"]:
        if asg["name"] not in autoscaling.autoscaling_groups:
            continue
        autoscaling.delete_auto_scaling_group(asg["name"])
        autoscaling.delete_launch_configuration(asg["name"])


def _kept(backend: EKSBackend) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The backend's node group Updates by cluster, group and id (emptied with the backend)."""
    return backend.__dict__.setdefault("katuna_updates", {})


def _update_nodegroup_config(answer: Any) -> Any:
    def update_nodegroup_config(self: EKSBackend, cluster_name: str, nodegroup_name: str,
                                **changes: Any) -> dict[str, Any]:
        _check_active(self, cluster_name)
        _check_size(self, cluster_name, nodegroup_name, changes.get("scaling_config"))
        group = self.clusters[cluster_name].nodegroups.get(nodegroup_name) if cluster_name in self.clusters else None
        if group is None:
            return answer(self, cluster_name, nodegroup_name, **changes)
        if group.status != "ACTIVE":
            raise ResourceInUseException(clusterName=cluster_name, nodegroupName=nodegroup_name, addonName=None,
                                         message=GROUP_BUSY)
        _check_order(cluster_name, nodegroup_name, {**group.scaling_config, **(changes.get("scaling_config") or {})},
                     update=True)
        _check_labels(cluster_name, nodegroup_name, (changes.get("labels") or {}).get("addOrUpdateLabels"))
        _check_taints(cluster_name, nodegroup_name, (changes.get("taints") or {}).get("addOrUpdateTaints"))
        update = lifecycle.deferred_update(group, lambda: answer(self, cluster_name, nodegroup_name, **changes))
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


def minutes_pass() -> None:
    """EKS's minutes pass: every node group state under way ends at the next call."""
    lifecycle.advance(max(lifecycle.SECONDS.values()))


def teach(quotas: EksQuotas | None = None) -> None:
    """Teach moto's EKS ``DescribeUpdate`` and the account's quotas in this process (once):
    ``quotas``, else AWS's defaults, wherever :func:`raise_quotas` gives none."""
    _ACCOUNT["quotas"] = quotas or EksQuotas()
    if hasattr(EKSBackend, "describe_update"):
        return
    settling = lifecycle.settling
    EKSBackend.create_cluster = _create_cluster(EKSBackend.create_cluster)
    EKSBackend.create_nodegroup = settling(_create_nodegroup(EKSBackend.create_nodegroup))
    EKSBackend.delete_nodegroup = settling(_delete_nodegroup(EKSBackend.delete_nodegroup))
    EKSBackend.update_nodegroup_config = settling(_update_nodegroup_config(EKSBackend.update_nodegroup_config))
    EKSBackend.update_cluster_config = _update_cluster_config(EKSBackend.update_cluster_config)
    EKSBackend.describe_cluster = settling(_describe_cluster(EKSBackend.describe_cluster))
    EKSBackend.describe_nodegroup = settling(EKSBackend.describe_nodegroup)
    EKSBackend.list_nodegroups = settling(EKSBackend.list_nodegroups)
    EKSBackend.delete_cluster = settling(EKSBackend.delete_cluster)
    EKSBackend.describe_update = settling(describe_update)
    EKSResponse.describe_update = _describe_update
    urls.url_paths[UPDATE_PATH] = urls.response.dispatch


if __name__ == "__main__":
    from moto.server import main

    teach(eks_quotas(os.environ))
    lifecycle.pace(speed=float(os.environ.get("MOTO_EKS_SPEED", "1")))
    main(sys.argv[1:])
