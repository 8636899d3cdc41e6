"""Node pools as a cloud describes them, for the autoscaler: GKE's ``NodePool`` resources (the
REST form the GKE stand-in keeps) and EKS managed node groups turned into :class:`NodePool`
templates with the labels and taints each cloud puts on their nodes, and an EKS group's own
scale-down time from its Auto Scaling group's tags."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from kube_standin.durations import parse_duration
from kube_standin.nodes import NodePool
from kube_standin.scheduling import tolerates
from kube_standin.selectors import matches, selector_text

LOG = logging.getLogger("kube_standin.autoscaler")
UNNEEDED_TIME_TAG = "k8s.io/cluster-autoscaler/node-template/autoscaling-options/scaledownunneededtime"
"""The Auto Scaling group's tag that overrides ``--scale-down-unneeded-time`` for its nodes (the
cluster-autoscaler's AWS provider's README, "autoscaling options")."""
EKS_REFRESH_SECONDS = 60.0
"""How long the real autoscaler's AWS provider keeps the Auto Scaling groups it found (their
bounds, their tags, a new group not yet among them) before it asks for them again: its
``refreshInterval``, unless it removed an instance since (``AwsManager.Refresh``)."""

GPU = "nvidia.com/gpu"
MACHINE = re.compile(r"^[a-z0-9]+-(standard|highmem|highcpu)-(\d+)$")
GIB_PER_CPU = {"standard": 4, "highmem": 8, "highcpu": 1}
EFFECTS = {"NO_SCHEDULE": "NoSchedule", "PREFER_NO_SCHEDULE": "PreferNoSchedule", "NO_EXECUTE": "NoExecute",
           1: "NoSchedule", 2: "PreferNoSchedule", 3: "NoExecute"}
"""Taint effects by name, or by number when the REST transport sends an enum as one."""


def gke_allocatable(machine_type: str) -> dict[str, str]:
    """What a node of ``machine_type`` offers pods: its cpus and most of its memory (GKE keeps
    some for the system), 110 pods."""
    found = MACHINE.match(machine_type or "e2-standard-4") or MACHINE.match("e2-standard-4")
    cpus = int(found.group(2))
    memory = cpus * GIB_PER_CPU[found.group(1)] * 1024 * 85 // 100
    return {"cpu": str(cpus), "memory": f"{memory}Mi", "pods": "110"}


def gke_pools(gke) -> Callable[[], list[NodePool]]:
    """A provider over a GKE stand-in's running pools, with the limits, labels and taints its
    autoscaler interface reports (``GkeStub.pool_bounds``; a reconciling one, and the size a
    resize under way takes it to, too), and the pools it is deleting (``STOPPING``), whose nodes
    stay until the deletion is done."""

    def pools() -> list[NodePool]:
        found = []
        for name, pool in list(gke.pools.items()):
            bounds = gke.pool_bounds(name)
            if bounds is not None:
                allocatable = gke_allocatable((pool.get("config") or {}).get("machineType", ""))
                if bounds.gpus:
                    allocatable[GPU] = str(bounds.gpus)
                found.append(NodePool(name, bounds.min_nodes, bounds.max_nodes, dict(bounds.labels),
                                      tuple(bounds.taints), allocatable,
                                      reconciling=bounds.reconciling, resizing=bounds.resizing))
            elif (gke.pools.get(name) or {}).get("status") == "STOPPING":
                found.append(NodePool(name, 0, 0, {"cloud.google.com/gke-nodepool": name}, deleting=True))
        return found

    return pools


def gke_resize(gke) -> Callable[[str, int], None]:
    """Tell the GKE stand-in how many nodes a pool has, as GKE's autoscaler resizes it."""

    def resize(name: str, nodes: int) -> None:
        try:
            gke.set_node_count(name, nodes)
        except ValueError:
            return

    return resize


EC2_SIZE = re.compile(r"^([a-z]+)\d[a-z]*\.(\d*)(x?large|medium)$")
EC2_GIB_PER_CPU = {"c": 2, "m": 4, "r": 8, "t": 4, "g": 4, "p": 8}
EC2_MAX_PODS = {"medium": 17, "large": 29, "xlarge": 58, "2xlarge": 58}
"""Pods per node by size, as the VPC CNI's ENI limits allow (larger sizes: 58 and up)."""


def eks_allocatable(instance_type: str) -> dict[str, str]:
    """What a node of ``instance_type`` offers pods (the first of a node group's types)."""
    found = EC2_SIZE.match(instance_type or "m5.xlarge") or EC2_SIZE.match("m5.xlarge")
    family, times, size = found.group(1), int(found.group(2) or 1), found.group(3)
    cpus = {"medium": 2, "large": 2}.get(size, 4 * times)
    memory = cpus * EC2_GIB_PER_CPU.get(family[0], 4) * 1024 * 85 // 100
    return {"cpu": str(cpus), "memory": f"{memory}Mi", "pods": str(EC2_MAX_PODS.get(found.group(2) + size, 110))}


NVIDIA_PLUGIN_TOLERATIONS = ({"key": "CriticalAddonsOnly", "operator": "Exists"},
                             {"key": GPU, "operator": "Exists", "effect": "NoSchedule"})
"""The tolerations of NVIDIA's device plugin DaemonSet as its Helm chart installs it by default
(``nvdp/nvidia-device-plugin`` values.yaml)."""
NVIDIA_PLUGIN_NODES = (
    {"matchExpressions": [{"key": "feature.node.kubernetes.io/pci-10de.present", "operator": "In", "values": ["true"]}]},
    {"matchExpressions": [{"key": "feature.node.kubernetes.io/cpu-model.vendor_id", "operator": "In",
                           "values": ["NVIDIA"]}]},
    {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]})
"""The node selector terms of the chart's default required node affinity: node-feature-discovery's
labels (NVIDIA's PCI vendor id, a Tegra CPU), or ``nvidia.com/gpu.present=true``."""


def eks_gpus(nodegroup: Mapping, plugin_tolerations: Iterable[Mapping] | None) -> int:
    """The ``nvidia.com/gpu`` a node of an EKS group offers: none unless it boots an NVIDIA AMI
    type and a device plugin runs there, which a Bottlerocket NVIDIA AMI carries and an Amazon
    Linux 2023 one does not: there NVIDIA's DaemonSet must be installed (``plugin_tolerations``,
    None: it is not), tolerate each of the group's taints and, as the chart's node affinity
    asks, find one of :data:`NVIDIA_PLUGIN_NODES`' labels on the node. The count is EC2's
    (``GpuInfo`` of moto's copy of ``DescribeInstanceTypes``) for the group's first type."""
    ami = nodegroup.get("amiType") or ""
    if "NVIDIA" not in ami:
        return 0
    if not ami.startswith("BOTTLEROCKET"):
        tolerations = [dict(t) for t in plugin_tolerations or ()]
        taints = [{"key": t["key"], "value": t.get("value", ""), "effect": EFFECTS.get(t.get("effect"), t.get("effect"))}
                  for t in nodegroup.get("taints") or []]
        labels = dict(nodegroup.get("labels") or {})
        if plugin_tolerations is None or not all(tolerates(tolerations, taint) for taint in taints) or \
                not any(matches(labels, selector_text(term)) for term in NVIDIA_PLUGIN_NODES):
            return 0
    from moto.ec2.models.instance_types import INSTANCE_TYPES  # EC2's data: only for a GPU group

    described = INSTANCE_TYPES.get((nodegroup.get("instanceTypes") or [""])[0]) or {}
    return sum(gpu["Count"] for gpu in (described.get("GpuInfo") or {}).get("Gpus", []) if gpu["Manufacturer"] == "NVIDIA")


def eks_pool(nodegroup: Mapping, asg_tags: Mapping[str, str] | None = None,
             plugin_tolerations: Iterable[Mapping] | None = NVIDIA_PLUGIN_TOLERATIONS) -> NodePool:
    """The autoscaler's view of one EKS managed node group (``describe_nodegroup``'s form) and
    the tags of its Auto Scaling group (:func:`unneeded_time`), its GPUs as :func:`eks_gpus`
    counts them."""
    scaling = nodegroup.get("scalingConfig") or {}
    labels = {**(nodegroup.get("labels") or {}), "eks.amazonaws.com/nodegroup": nodegroup["nodegroupName"],
              "eks.amazonaws.com/capacityType": nodegroup.get("capacityType", "ON_DEMAND")}
    taints = tuple({"key": t["key"], "value": t.get("value", ""), "effect": EFFECTS.get(t.get("effect"), t.get("effect"))}
                   for t in nodegroup.get("taints") or [])
    allocatable = eks_allocatable((nodegroup.get("instanceTypes") or ["m5.xlarge"])[0])
    if gpus := eks_gpus(nodegroup, plugin_tolerations):
        allocatable[GPU] = str(gpus)
    return NodePool(nodegroup["nodegroupName"], int(scaling.get("minSize", 0)), int(scaling.get("maxSize", 1)), labels,
                    taints, allocatable,
                    unneeded_seconds=unneeded_time(nodegroup["nodegroupName"], asg_tags or {}))


def unneeded_time(group: str, asg_tags: Mapping[str, str]) -> float | None:
    """An Auto Scaling group's own ``--scale-down-unneeded-time``, in seconds: its
    :data:`UNNEEDED_TIME_TAG`, a Go duration; None without one, or with one Go cannot parse,
    which the real autoscaler logs and then uses its flag's value (``GetAsgOptions``)."""
    if UNNEEDED_TIME_TAG not in asg_tags:
        return None
    try:
        return parse_duration(asg_tags[UNNEEDED_TIME_TAG])
    except ValueError as exc:
        LOG.warning("failed to convert asg %s scaledownunneededtime tag to duration: %s", group, exc)
        return None


@dataclass(frozen=True)
class Provider:
    """A cloud's pools as the autoscaler asks for them, and how long it keeps what it was told."""

    pools: Callable[[], list[NodePool]]
    refresh_seconds: float

    def __call__(self) -> list[NodePool]:
        return self.pools()


def eks_pools(nodegroups: Callable[[], Iterable[Mapping]], autoscaling=None,
              plugin_tolerations: Iterable[Mapping] | None = NVIDIA_PLUGIN_TOLERATIONS) -> Provider:
    """A provider over the node groups ``nodegroups`` returns (moto's, through boto3): those
    active or updating, and those EKS is deleting, whose nodes stay until the group is gone (EKS
    drains and terminates them one by one before it deletes the Auto Scaling group); with an
    Auto Scaling client, each with the options its Auto Scaling group's tags give it, as the
    real autoscaler reads them, and asked for again every :data:`EKS_REFRESH_SECONDS`; with
    NVIDIA's device plugin installed with ``plugin_tolerations`` (None: not installed)."""
    def pools() -> list[NodePool]:
        groups = [g for g in nodegroups() if g.get("status", "ACTIVE") in ("ACTIVE", "UPDATING", "DELETING")]
        tags = _asg_tags(autoscaling, groups) if autoscaling is not None else {}
        return [replace(eks_pool(group, tags.get(_asg_of(group)), plugin_tolerations), deleting=group.get("status") == "DELETING")
                for group in groups]

    return Provider(pools, EKS_REFRESH_SECONDS)


def _asg_of(group: Mapping) -> str | None:
    """The name of the node group's Auto Scaling group, once EKS names it."""
    found = (group.get("resources") or {}).get("autoScalingGroups") or [{}]
    return found[0].get("name")


def _asg_tags(autoscaling, groups: list[Mapping]) -> dict[str, dict[str, str]]:
    """The tags of the groups' Auto Scaling groups, by name (one that is gone has none)."""
    names = [name for group in groups if (name := _asg_of(group)) is not None]
    if not names:
        return {}
    found = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=names)["AutoScalingGroups"]
    return {asg["AutoScalingGroupName"]: {t["Key"]: t["Value"] for t in asg.get("Tags", [])} for asg in found}


def eks_resize(eks, autoscaling, cluster: str) -> Callable[[str, int], None]:
    """Set the desired capacity of a node group's Auto Scaling group to its node count, as the
    cluster autoscaler's AWS provider does when it scales the group (``SetDesiredCapacity`` up;
    down, terminating an instance with the capacity decremented): EKS then reports it as the
    group's ``desiredSize``. A group or Auto Scaling group gone meanwhile is left alone."""
    from botocore.exceptions import ClientError

    def resize(name: str, nodes: int) -> None:
        try:
            group = eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"]
        except eks.exceptions.ResourceNotFoundException:
            return
        asg = _asg_of(group)
        if asg is None:
            return
        try:
            autoscaling.set_desired_capacity(AutoScalingGroupName=asg, DesiredCapacity=nodes, HonorCooldown=False)
        except ClientError as exc:
            LOG.warning("setting the desired capacity of %s to %d: %s", asg, nodes, exc)

    return resize


def eks_node_groups(eks, cluster: str) -> Callable[[], list[dict]]:
    """A cluster's node groups as the cluster autoscaler reads them (through a boto3 client);
    their Auto Scaling groups are EKS's to make (moto's, taught by tests/moto_eks.py)."""

    def described(name: str) -> dict | None:
        """The node group, or None when it was deleted since it was listed."""
        try:
            return eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"]
        except eks.exceptions.ResourceNotFoundException:
            return None

    def describe() -> list[dict]:
        return [group for name in eks.list_nodegroups(clusterName=cluster)["nodegroups"]
                if (group := described(name)) is not None]

    return describe

