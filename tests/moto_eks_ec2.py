"""What EKS does with EC2 and Auto Scaling that moto does not: a cluster's and a node group's
subnets checked, and the Auto Scaling group of each managed node group made and deleted.

moto takes any subnet ids; EKS checks them against EC2. :func:`moto_eks.teach` makes moto's EKS hold a
cluster's and a node group's subnets to moto's EC2 (the tests make them with :func:`moto_eks.network`):
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

EKS makes each managed node group's Auto Scaling group, which moto only names in the group's
``resources``: :func:`moto_eks.teach` makes moto create it (in its autoscaling backend, sized as the
group's ``scalingConfig``) and delete it with the group, so the node-template tags katuna
writes on it land as they do on AWS, and a group katuna waits for becomes done.

A node group may boot from a launch template (``launchTemplate``: its ``name`` or its ``id``,
and a ``version``); moto takes one EC2 does not have, or a version it does not have, and keeps
them. :func:`check_launch_template` makes it refuse, with ``InvalidParameterException``, a
specification giving both the name and the id or neither (EKS's words, as eksctl-io/eksctl#3104
quotes them), a template or a version EC2 does not have (the wording is the stand-in's), and,
with ``InvalidRequestException``, instance types given both in the template's version and in
the request (EKS's words, terraform-aws-modules/terraform-aws-eks#1386; "If you specify an
instance type in a launch template ... you can't specify any instance types" in the request,
the EKS User Guide's launch templates page). moto refuses by itself ``diskSize`` and
``remoteAccess`` beside a launch template (they go in the template). A group made from a
launch template has no ``diskSize`` nor ``remoteAccess`` of its own (:func:`from_template`).

A group of an instance type EC2 does not offer in one of its subnets' availability zones is
refused with ``InvalidRequestException``, in EKS's words (:func:`check_offered`).

Imported by :mod:`moto_eks`, which points moto's EC2 at its one image before moto's EC2 is
first imported.
"""

from __future__ import annotations

from typing import Any

from moto.autoscaling.models import autoscaling_backends
from moto.ec2.exceptions import EC2ClientError, InvalidLaunchTemplateVersionNotFound
from moto.ec2.models import ec2_backends
from moto.ec2.models.launch_templates import LaunchTemplateBackend
from moto.eks.exceptions import InvalidRequestException
from moto.eks.models import EKSBackend
from moto_eks_checks import invalid

ONE_TEMPLATE = "Either provide launch template ID or launch template name in the request."
BOTH_TYPES = "Cannot specify instance types in launch template and API Request"
AL2023_ROOT = "/dev/xvda"
"""The root device of EKS's Amazon Linux 2023 AMIs (awslabs/amazon-eks-ami's ``templates/al2023/template.json``)."""

IMAGE = "ami-12c6146b"
"""The AMI moto's EC2 holds (tests/moto_amis.json), for the instances a node group's Auto Scaling group launches."""


def ec2_subnets(backend: EKSBackend, cluster: str, group: str | None, ids: list[str]) -> list[Any]:
    """EC2's subnets of the ids, as EKS looks them up: one EC2 does not have is refused with
    EC2's error, as EKS passes it on."""
    found = {subnet.id: subnet for subnet in ec2_backends[backend.account_id][backend.region_name].describe_subnets()}
    for subnet in ids:
        if subnet not in found:
            raise invalid(cluster, group, f"The subnet ID '{subnet}' does not exist (Service: AmazonEC2; Status Code: "
                                          "400; Error Code: InvalidSubnetID.NotFound)")
    return [found[subnet] for subnet in ids]


def _public(backend: EKSBackend, subnet: Any) -> bool:
    """Whether the subnet's route table (its own, else its VPC's main one) routes to an internet gateway."""
    tables = ec2_backends[backend.account_id][backend.region_name].describe_route_tables(
        filters={"vpc-id": [subnet.vpc_id]})
    own = [t for t in tables if subnet.id in t._associations.values()]
    table = (own or [t for t in tables if t.main_association_id is not None])[0]
    return any(route.gateway is not None and route.gateway.id.startswith("igw-") for route in table.routes)


def check_subnets(backend: EKSBackend, cluster: Any, group: str, ids: list[str]) -> list[str]:
    """Refuse subnets EC2 does not have or outside the cluster's VPC; the public ones that give
    no public addresses, whose group fails once created."""
    vpc = cluster.resources_vpc_config.get("vpcId")
    subnets = ec2_subnets(backend, cluster.name, group, ids)
    for subnet in subnets:
        if subnet.vpc_id != vpc:
            raise invalid(cluster.name, group, f"Subnet {subnet.id} is in VPC {subnet.vpc_id}, not in the cluster's "
                                               f"VPC {vpc}")
    return [s.id for s in subnets
            if not (s.map_public_ip_on_launch or s.assign_ipv6_address_on_creation) and _public(backend, s)]


def check_offered(backend: EKSBackend, ids: list[str], types: list[str] | None) -> None:
    """EKS refuses a group of an instance type EC2 does not offer in the availability zone of
    one of its subnets, in its words (awslabs/ec2-spot-workshops#154, eksctl-io/eksctl#6461 quote
    them), naming the zones that have it; EC2's offerings are moto's copy of AWS's."""
    ec2 = ec2_backends[backend.account_id][backend.region_name]
    zones = sorted({subnet.availability_zone for subnet in ec2.describe_subnets(subnet_ids=ids)})
    for kind in types or ["t3.medium"]:
        offered = sorted(o["Location"] for o in ec2.describe_instance_type_offerings(
            location_type="availability-zone", filters={"instance-type": [kind]}))
        lacking = [zone for zone in zones if zone not in offered]
        if lacking:
            raise InvalidRequestException(
                message=f"Your requested instance type ({kind}) is not supported in your requested Availability Zone "
                        f"({lacking[0]}). Please retry your request by not specifying an Availability Zone or "
                        f"choosing {', '.join(offered)}.")


def fail_creation(group: Any, subnets: list[str]) -> None:
    """The group as EKS leaves it when its public subnets give nodes no public address."""
    group.status = "CREATE_FAILED"
    group.health = {"issues": [{
        "code": "Ec2SubnetInvalidConfiguration", "resourceIds": subnets,
        "message": f"One or more Amazon EC2 Subnets of [{', '.join(subnets)}] for node group {group.nodegroup_name} "
                   "does not automatically assign public IP addresses to instances launched into it. If you want your "
                   "instances to be assigned a public IP address, then you need to enable auto-assign public IP "
                   "address for the subnet."}]}


def eks_tags(cluster: str, group: str) -> dict[str, str]:
    """The tags EKS gives a managed node group's Auto Scaling group: those that "configure it to
    use the Kubernetes Cluster Autoscaler" (the EKS User Guide's managed node groups page:
    ``k8s.io/cluster-autoscaler/enabled`` and ``k8s.io/cluster-autoscaler/<cluster>``), and
    those naming its cluster and node group. They count among the group's 50 tags."""
    return {"eks:cluster-name": cluster, "eks:nodegroup-name": group, "k8s.io/cluster-autoscaler/enabled": "true",
            f"k8s.io/cluster-autoscaler/{cluster}": "owned", f"kubernetes.io/cluster/{cluster}": "owned"}


def make_autoscaling_group(backend: EKSBackend, group: Any) -> None:
    """The Auto Scaling group EKS makes for a managed node group, by the name moto gives it in
    the group's ``resources``: sized as the group's ``scalingConfig``, launching its first
    instance type, in the region's first zone (moto's EC2 does not hold the subnets tests name),
    tagged as EKS tags it (:func:`eks_tags`)."""
    autoscaling = autoscaling_backends[backend.account_id][backend.region_name]
    name = group.resources["autoScalingGroups"][0]["name"]
    scaling = group.scaling_config
    tags = [{"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": key, "Value": value,
             "PropagateAtLaunch": True} for key, value in eks_tags(group.cluster_name, group.nodegroup_name).items()]
    autoscaling.create_launch_configuration(
        name=name, image_id=IMAGE, key_name=None, kernel_id="", ramdisk_id="", security_groups=[], user_data=None,
        instance_type=group.instance_types[0], instance_monitoring=False, instance_profile_name=None, spot_price=None,
        ebs_optimized=False, associate_public_ip_address=False, block_device_mappings=[])
    autoscaling.create_auto_scaling_group(
        name=name, availability_zones=[f"{backend.region_name}a"], desired_capacity=scaling.get("desiredSize"),
        max_size=scaling.get("maxSize"), min_size=scaling.get("minSize"), launch_config_name=name, launch_template={},
        vpc_zone_identifier=None, default_cooldown=None, health_check_period=None, health_check_type=None,
        load_balancers=[], target_group_arns=[], placement_group=None, termination_policies=[], tags=tags)


def _asg(backend: EKSBackend, group: Any) -> Any:
    """The managed node group's Auto Scaling group in moto, or None (not made, or deleted)."""
    autoscaling = autoscaling_backends[backend.account_id][backend.region_name]
    names = [asg["name"] for asg in (group.resources or {}).get("autoScalingGroups") or []]
    return autoscaling.autoscaling_groups.get(names[0]) if names else None


def follow_autoscaling_group(backend: EKSBackend, group: Any) -> None:
    """The group's ``desiredSize`` as its Auto Scaling group's desired capacity, which the cluster
    autoscaler moves (``SetDesiredCapacity`` to scale up; terminating an instance with the
    capacity decremented to scale down): EKS reports it so ("when the Cluster Autoscaler is used,
    the desiredSize parameter is altered by the Cluster Autoscaler", the API reference's
    ``NodegroupScalingConfig``)."""
    asg = _asg(backend, group)
    if asg is not None and group.scaling_config:
        group.scaling_config = {**group.scaling_config, "desiredSize": asg.desired_capacity}


def push_to_autoscaling_group(backend: EKSBackend, group: Any, given: dict[str, int]) -> None:
    """An ``UpdateNodegroupConfig`` done, carried to the Auto Scaling group as EKS carries it: the
    group's sizes, and the desired size if the update ``given`` one; otherwise the desired capacity
    is kept, brought within the new sizes as Auto Scaling brings it."""
    asg = _asg(backend, group)
    if asg is None:
        return
    scaling = group.scaling_config
    asg.min_size, asg.max_size = scaling["minSize"], scaling["maxSize"]
    desired = given.get("desiredSize", asg.desired_capacity or 0)
    asg.set_desired_capacity(min(max(desired, asg.min_size), asg.max_size))
    follow_autoscaling_group(backend, group)


def delete_autoscaling_groups(backend: EKSBackend, group: Any) -> None:
    """A deleted group's Auto Scaling group deleted with it, as EKS does."""
    autoscaling = autoscaling_backends[backend.account_id][backend.region_name]
    for asg in group.resources["autoScalingGroups"]:
        if asg["name"] not in autoscaling.autoscaling_groups:
            continue
        autoscaling.autoscaling_groups[asg["name"]].min_size = 0  # its instances all go, whatever its sizes
        autoscaling.delete_auto_scaling_group(asg["name"])
        autoscaling.delete_launch_configuration(asg["name"])


def check_launch_template(backend: EKSBackend, cluster: str, group: str, spec: dict[str, str] | None,
                          instance_types: list[str] | None) -> int | None:
    """Refuse a launch template specification EKS refuses: by name and id, or by neither; a
    template or version EC2 does not have; instance types both in the version and the request.
    The size of the root volume the version gives, if any, which EKS holds to its AMI's snapshot
    as it does a ``diskSize`` (EC2 refuses a launch with a smaller one)."""
    if spec is None:
        return None
    if bool(spec.get("name")) == bool(spec.get("id")):
        raise invalid(cluster, group, ONE_TEMPLATE)
    templates = ec2_backends[backend.account_id][backend.region_name].launch_templates.values()
    found = [t for t in templates if spec.get("name") in (None, t.name) and spec.get("id") in (None, t.id)]
    wanted = spec.get("name") or spec.get("id")
    if not found:
        raise invalid(cluster, group, f"Launch template {wanted} does not exist")
    try:
        version = found[0].get_version(spec["version"]) if spec.get("version") else found[0].default_version()
    except (InvalidLaunchTemplateVersionNotFound, ValueError):
        raise invalid(cluster, group, f"Version {spec['version']} of launch template {wanted} does not exist") from None
    if version.instance_type and instance_types:
        raise InvalidRequestException(message=BOTH_TYPES)
    return next((mapping.get("Ebs", {}).get("VolumeSize") for mapping in version.data.get("BlockDeviceMappings", [])
                 if mapping.get("DeviceName") == AL2023_ROOT), None)


def from_template(group: Any) -> None:
    """A group made from a launch template: its disk size and remote access are the template's."""
    if group.launch_template:
        group.disk_size = None
        group.remote_access = None


DENIED_USER = "arn:aws:iam::123456789012:user/katuna-provisioner"
"""The identity a server that denies template deletes (:func:`deny_template_deletes`) names."""


def deny_template_deletes() -> None:
    """Refuse every ``DeleteLaunchTemplate`` as EC2 refuses an identity whose policies do not allow
    ``ec2:DeleteLaunchTemplate``: ``UnauthorizedOperation``, naming the action (AWS's words, but
    for the encoded authorization message). moto's server authorizes no EKS call by IAM (their
    signatures fail its check), so a test's identity cannot lack this one action alone there."""
    def delete_launch_template(self: LaunchTemplateBackend, name: str, tid: str | None) -> Any:
        raise EC2ClientError("UnauthorizedOperation", (
            f"You are not authorized to perform this operation. User: {DENIED_USER} is not authorized to perform: "
            f"ec2:DeleteLaunchTemplate on resource: launch-template/{tid or name} because no identity-based policy "
            "allows the ec2:DeleteLaunchTemplate action."))

    LaunchTemplateBackend.delete_launch_template = delete_launch_template  # type: ignore[method-assign]
