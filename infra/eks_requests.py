"""EKS managed node-group requests as plain dicts, built by pure functions that import no AWS SDK.

What ``--dry-run`` prints is what :mod:`infra.eks` sends: the cluster a group belongs to
(:class:`EksCluster`), a group's create request, its scaling limits, the name-only requests of
a describe or a delete, and cluster-autoscaler's node-template tags for its Auto Scaling group
(and, for a group katuna made for a study, its scale-down option, :func:`option_tags`).
:func:`subnet_problem` judges, from EC2's answers, whether the subnets can hold a group.
A create or an update carries the AMI type its instance types need
(:mod:`functions.core.eks_ami`), and a ``clientRequestToken`` derived from the id of the logical
change it belongs to (the pool use's request, :attr:`functions.core.pool_use.PoolUse.request_id`):
a retried change is the same change to EKS, the next change is a new one; without an id (the
provisioning script), botocore gives each call a fresh token.

A group katuna creates boots from a launch template of its own (:func:`template_request`): without
one, EKS gives the nodes its default template's instance metadata options, IMDSv2 optional and a
response hop limit of 2, and any pod on them reads the node role's credentials at
169.254.169.254. katuna's template requires IMDSv2 tokens with a hop limit of 1 (the node itself,
its host-network agents included, still reaches the metadata service; a pod's packets, one hop
further, do not) and holds the group's boot disk size, which EKS refuses beside a launch template
(``diskSize`` "must be specified within the launch template", the EKS User Guide's launch
templates page). Its name (:func:`template_name`) follows from the cluster, the group and the
template's content, so a create run again finds the template its first run made; its tags
(:func:`template_filters`) find every template katuna made for a group once the group is gone.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from functions.core.cluster import TRIAL_TAINT
from functions.core.eks_ami import ami_type
from functions.core.nodepool import INSTALLATION_KEY, MADE_BY_KEY, ON_DEMAND, OWNER_KEY, NodePool, owner_value

TEMPLATE = "k8s.io/cluster-autoscaler/node-template"
LIST_PAGE = 100
"""The most group names one ``list_nodegroups`` page holds (EKS's ``maxResults`` is 1 to 100)."""
UNNEEDED_TIME_TAG = f"{TEMPLATE}/autoscaling-options/scaledownunneededtime"
"""The Auto Scaling group's own ``--scale-down-unneeded-time`` (the cluster-autoscaler's AWS
provider reads it as a Go duration; one it cannot parse is logged and the flag's value used)."""
UNNEEDED_TIME = "2m0s"
"""How long a node of a group katuna made for a study stays unneeded before the autoscaler
removes it, where the flag's default is 10 minutes. katuna creates the next trial's Job in the
same handling that records the previous trial's end, so a node of its group unneeded that long
has no trial coming to it. Two minutes, not one: a trial whose end event was lost is collected
at the next tick (the PingSource's minute), and its log must still be on its node then."""
CLUSTER_SETTING = "KATUNA_EKS_CLUSTER"
"""The service's setting that names the cluster: what to fix when EKS has no such cluster."""
SUBNETS_SETTING = "KATUNA_EKS_SUBNETS"
"""The service's setting that names the subnets of new node groups: what to fix when one cannot hold them."""
NODE_ROLE_SETTING = "KATUNA_EKS_NODE_ROLE"
"""The service's setting that names the nodes' IAM role: what to fix when EKS refuses it."""
REGION_SETTING = "KATUNA_EKS_REGION"
"""The service's setting that names the cluster's region: what to set when AWS's configuration has none."""
TYPES_FIELD = "nodePool.instanceTypes"
"""The study field that names a group's instance types (the provisioning script's ``--instance-types``)."""
TAGS_PER_CALL = 25
"""The most tags one ``CreateOrUpdateTags`` call adds to Auto Scaling groups ("the maximum number
of tags that you can add or remove using a single call is 25", the Amazon EC2 Auto Scaling User
Guide's tag restrictions): a group's node-template tags are written in calls of at most as many."""
_TOKEN = uuid.UUID("0b7c3c1e-8d0a-4f3b-a2a5-6a1f0d9e4c21")
MANAGED_BY = {"app.kubernetes.io/managed-by": "katuna"}
CLUSTER_TAG = "katuna.dev/cluster"
"""The tag naming the cluster a launch template of katuna's is for: what the IAM policy's
conditions on creating and deleting templates hold to (docs/kubernetes.md, IAM on EKS)."""
POOL_TAG = "katuna.dev/pool"
METADATA_OPTIONS = {"HttpEndpoint": "enabled", "HttpTokens": "required", "HttpPutResponseHopLimit": 1}
"""The instance metadata options of katuna's nodes: the service on (the node's kubelet, its
network plugin and its other host-network agents read it), IMDSv2 session tokens required, and
a token's response hop limit of 1, so that it never reaches a pod's network namespace."""
ROOT_DEVICE = "/dev/xvda"
"""The root device of EKS's Amazon Linux 2023 AMIs (awslabs/amazon-eks-ami's
``templates/al2023/template.json``), the only AMI types katuna's groups boot
(:mod:`functions.core.eks_ami`): where a boot disk size goes in a launch template."""
TEMPLATE_VERSION = "1"
"""The version of katuna's template its groups boot: the only one katuna creates."""


@dataclass(frozen=True)
class EksCluster:
    """The cluster whose node groups are managed; subnets and node role are needed to create."""

    name: str
    subnets: tuple[str, ...] = ()
    node_role: str | None = None
    made_by: str | None = None
    """The mark (tag :data:`~functions.core.nodepool.MADE_BY_KEY`) of the groups created here
    outside any study: the provisioning script's; None for the service's."""
    installation: str | None = None
    """The installation's identity as a tag value
    (:func:`~functions.core.nodepool.installation_value`) that the groups created here for a
    study carry (:data:`~functions.core.nodepool.INSTALLATION_KEY`); None outside the service."""


def _token_field(request_id: str | None, call: str, request: dict[str, Any]) -> dict[str, str]:
    """The ``clientRequestToken`` of one call of a logical change: the same each time that very
    ``request`` is asked for, another for another change, call or content (a release that
    lowers the limits in two steps sends two updates: one token for both would have EKS answer
    the second with the first, or refuse it); none without an id (botocore fills in a fresh one)."""
    if request_id is None:
        return {}
    content = json.dumps(request, sort_keys=True)
    return {"clientRequestToken": str(uuid.uuid5(_TOKEN, f"{request_id} {call} {content}"))}


def _template_data(pool: NodePool) -> dict[str, Any]:
    """A launch template's content: katuna's metadata options, and the pool's boot disk size if it has one."""
    data: dict[str, Any] = {"MetadataOptions": dict(METADATA_OPTIONS)}
    if pool.disk_size_gb is not None:
        data["BlockDeviceMappings"] = [{"DeviceName": ROOT_DEVICE, "Ebs": {"VolumeSize": pool.disk_size_gb}}]
    return data


def template_name(cluster: EksCluster, pool: NodePool) -> str:
    """The name of the launch template of the group: ``katuna-<group>-<digest>``, the digest of the
    cluster's name, the group's and the template's content, so the same group asked again names
    the same template, and another cluster's group of that name or another disk size another one
    (EC2's template names are unique in a region; at most 128 characters)."""
    content = json.dumps([cluster.name, pool.name, _template_data(pool)], sort_keys=True)
    return f"katuna-{pool.name}-{hashlib.sha256(content.encode()).hexdigest()[:12]}"


def _template_tags(cluster: EksCluster, name: str) -> dict[str, str]:
    return {**MANAGED_BY, CLUSTER_TAG: cluster.name, POOL_TAG: name}


def template_request(cluster: EksCluster, pool: NodePool) -> dict[str, Any]:
    """``create_launch_template``: katuna's template for the group, tagged as katuna's, the
    cluster's and the group's."""
    tags = [{"Key": key, "Value": value} for key, value in _template_tags(cluster, pool.name).items()]
    return {"LaunchTemplateName": template_name(cluster, pool), "LaunchTemplateData": _template_data(pool),
            "TagSpecifications": [{"ResourceType": "launch-template", "Tags": tags}]}


def cluster_template_filters(cluster: EksCluster) -> list[dict[str, Any]]:
    """``describe_launch_templates``'s filters that find the templates katuna made for the cluster's groups."""
    return [{"Name": f"tag:{key}", "Values": [value]} for key, value in {**MANAGED_BY, CLUSTER_TAG: cluster.name}.items()]


def template_filters(cluster: EksCluster, name: str) -> list[dict[str, Any]]:
    """``describe_launch_templates``'s filters that find the templates katuna made for the group ``name``."""
    return [{"Name": f"tag:{key}", "Values": [value]} for key, value in _template_tags(cluster, name).items()]


def create_request(cluster: EksCluster, pool: NodePool, owner: str | None = None,
                   request_id: str | None = None) -> dict[str, Any]:
    """``create_nodegroup``: 0 nodes at first, scaling 0..max, tainted for trials only, booting
    the AMI type its instance types need from katuna's launch template (:func:`template_request`,
    which holds its disk size); tagged with the uid of the study it is made for, if any, or with
    the cluster's :attr:`EksCluster.made_by` mark (the provisioning script's); a group made for
    a study is tagged with the cluster's :attr:`EksCluster.installation` too, where given, but a
    ``shared`` one, which stays for the next study whatever the store holds."""
    request: dict[str, Any] = {
        "clusterName": cluster.name,
        "nodegroupName": pool.name,
        "scalingConfig": {"minSize": 0, "maxSize": pool.max_nodes, "desiredSize": 0},
        "subnets": list(cluster.subnets),
        "instanceTypes": list(pool.machine_types),
        "amiType": ami_type(pool.machine_types[0]),
        "capacityType": "ON_DEMAND" if pool.capacity == ON_DEMAND else "SPOT",
        "nodeRole": cluster.node_role,
        "labels": pool.node_labels,
        "taints": [{"key": TRIAL_TAINT["key"], "value": TRIAL_TAINT["value"], "effect": "NO_SCHEDULE"}],
        "tags": {**MANAGED_BY, POOL_TAG: pool.name},
        "launchTemplate": {"name": template_name(cluster, pool), "version": TEMPLATE_VERSION},
    }
    if owner is not None:
        request["tags"][OWNER_KEY] = owner_value(owner)
        if cluster.installation is not None and not pool.shared:
            request["tags"][INSTALLATION_KEY] = cluster.installation
    elif cluster.made_by is not None:
        request["tags"][MADE_BY_KEY] = cluster.made_by
    return request | _token_field(request_id, "create", request)


def scaling_request(cluster: EksCluster, name: str, min_size: int, max_size: int,
                    desired: int | None = None, request_id: str | None = None) -> dict[str, Any]:
    """``update_nodegroup_config`` of the scaling limits. The cluster-autoscaler owns the desired
    size, and EKS terminates nodes of its own choosing when it is set below the nodes running
    (the API reference's ``NodegroupScalingConfig``), so it is sent only to raise it to a new
    minimum above it, which EKS requires; a maximum is never lowered below it here
    (:meth:`infra.eks.EksNodePools.scale_back` waits for the autoscaler instead)."""
    scaling = {"minSize": min_size, "maxSize": max_size}
    if desired is not None and desired < min_size:
        scaling["desiredSize"] = min_size
    request = {"clusterName": cluster.name, "nodegroupName": name, "scalingConfig": scaling}
    return request | _token_field(request_id, "update", request)


def subnet_problem(cluster: str, vpc: str | None, wanted: tuple[str, ...], subnets: list[dict[str, Any]],
                   tables: list[dict[str, Any]]) -> str | None:
    """Why the ``wanted`` subnets cannot hold a node group of the cluster whose VPC is ``vpc``,
    judged from EC2's ``subnets`` and their VPCs' route ``tables``; None when they can. EKS
    refuses subnets EC2 does not have, and places nodes only "in any subnet in your cluster's
    VPC" (the EKS User Guide); a public subnet (routed to an internet gateway) that assigns
    nodes neither a public IPv4 nor an IPv6 address on launch gives them no way out, and EKS
    fails the group it accepted (``Ec2SubnetInvalidConfiguration``, the API reference's ``Issue``)."""
    found = {subnet["SubnetId"]: subnet for subnet in subnets}
    expected = f"expected subnet ids of the VPC {vpc} of the EKS cluster {cluster}"
    missing = [subnet for subnet in wanted if subnet not in found]
    if missing:
        return f"EC2 has no subnet {', '.join(missing)} in this region; {expected}"
    outside = [f"{subnet} (in {found[subnet]['VpcId']})" for subnet in wanted if found[subnet]["VpcId"] != vpc]
    if outside:
        return f"subnet {', '.join(outside)} is not in the cluster's VPC; {expected}"
    unaddressed = [subnet for subnet in wanted
                   if not _addressed(found[subnet]) and _public(found[subnet], tables)]
    if unaddressed:
        return (f"subnet {', '.join(unaddressed)} is public (its route table sends traffic to an internet gateway) "
                "but does not assign public IPv4 addresses on launch, so nodes there could not reach EKS; expected "
                "private subnets, or public ones with auto-assign public IPv4 addresses turned on (MapPublicIpOnLaunch)")
    return None


def instance_type_problem(types: Sequence[str], subnets: list[dict[str, Any]],
                          offered: Collection[tuple[str, str]]) -> str | None:
    """Why the instance ``types`` cannot run a node group in the availability zones of its
    ``subnets`` (EC2's, each with its ``AvailabilityZone``), judged from EC2's offerings in the
    region (``offered``: its (instance type, zone) pairs); None when they can. EKS refuses a
    create naming a type EC2 does not offer in one of the subnets' zones (400
    ``InvalidRequestException``: "Your requested instance type (m4.xlarge) is not supported in
    your requested Availability Zone (us-west-2d). Please retry your request by not specifying an
    Availability Zone or choosing us-west-2a, us-west-2b, us-west-2c.", as
    awslabs/ec2-spot-workshops#154 and eksctl-io/eksctl#6461 quote it), and one EC2 has nowhere
    ("The following supplied instance types do not exist")."""
    zones = {subnet["SubnetId"]: subnet["AvailabilityZone"] for subnet in subnets}
    for kind in types:
        where = sorted({zone for offered_kind, zone in offered if offered_kind == kind})
        if not where:
            return (f"EC2 offers no instance type {kind} in any availability zone of this region (a misspelt name, "
                    "or a type this region does not have): expected instance types `aws ec2 "
                    "describe-instance-type-offerings --location-type availability-zone` lists here")
        lacking = [f"{subnet} (in {zone})" for subnet, zone in zones.items() if zone not in where]
        if lacking:
            return (f"EC2 does not offer instance type {kind} in the availability zone of subnet {', '.join(lacking)}, "
                    f"so EKS refuses the node group: it offers it in {', '.join(where)} of this region; give subnets "
                    "in those zones only, or other instance types")
    return None


def _addressed(subnet: dict[str, Any]) -> bool:
    """Whether instances launched in the subnet get a public IPv4 or an IPv6 address."""
    return bool(subnet.get("MapPublicIpOnLaunch") or subnet.get("AssignIpv6AddressOnCreation"))


def _public(subnet: dict[str, Any], tables: list[dict[str, Any]]) -> bool:
    """Whether the subnet's route table (its own, else its VPC's main one) routes to an internet gateway."""
    mine = [table for table in tables if table.get("VpcId") == subnet["VpcId"]]
    own = [t for t in mine if any(a.get("SubnetId") == subnet["SubnetId"] for a in t.get("Associations", []))]
    table = next(iter(own or [t for t in mine if any(a.get("Main") for a in t.get("Associations", []))]), {})
    return any(route.get("GatewayId", "").startswith("igw-") for route in table.get("Routes", []))


def list_request(cluster: EksCluster, token: str | None = None) -> dict[str, Any]:
    """``list_nodegroups``: one page of the cluster's group names, the largest EKS gives
    (:data:`LIST_PAGE`), from ``token`` (the ``nextToken`` of the page before) on."""
    return {"clusterName": cluster.name, "maxResults": LIST_PAGE} | ({"nextToken": token} if token else {})


def name_request(cluster: EksCluster, name: str) -> dict[str, Any]:
    """``describe_nodegroup`` and ``delete_nodegroup`` take the cluster and group names only."""
    return {"clusterName": cluster.name, "nodegroupName": name}


def template_tags(group: str, pool: NodePool, capacity_type: str) -> list[dict[str, Any]]:
    """cluster-autoscaler's node-template tags for an Auto Scaling group: the labels trials
    select on and the taint they tolerate."""
    labels = {**pool.node_labels, "eks.amazonaws.com/nodegroup": pool.name,
              "eks.amazonaws.com/capacityType": capacity_type}
    tags = {f"{TEMPLATE}/label/{key}": value for key, value in labels.items()}
    tags[f"{TEMPLATE}/taint/{TRIAL_TAINT['key']}"] = f"{TRIAL_TAINT['value']}:{TRIAL_TAINT['effect']}"
    return [{"ResourceId": group, "ResourceType": "auto-scaling-group", "Key": key, "Value": value,
             "PropagateAtLaunch": False} for key, value in sorted(tags.items())]


def option_tags(group: str) -> list[dict[str, Any]]:
    """The cluster-autoscaler option tags for the Auto Scaling group of a node group katuna made
    for a study: nodes unneeded for :data:`UNNEEDED_TIME` go, in a study's tail and after it."""
    return [{"ResourceId": group, "ResourceType": "auto-scaling-group", "Key": UNNEEDED_TIME_TAG,
             "Value": UNNEEDED_TIME, "PropagateAtLaunch": False}]
