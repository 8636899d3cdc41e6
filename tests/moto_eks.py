"""moto's EKS, taught the ``DescribeUpdate`` call that EKS has and moto 5 lacks, the Auto
Scaling group EKS makes for each node group, and the account's service quotas that EKS holds
node groups to and moto does not.

moto answers ``update_nodegroup_config`` with an Update (``Successful`` at once: it applies the
change at once) but keeps none, so katuna's check of that Update would reach a call moto does
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
``desiredSize`` ≤ ``maxSize``, an update's partial limits judged merged into the group's), a
taint effect EKS does not know (``NO_SCHEDULE``, ``NO_EXECUTE``, ``PREFER_NO_SCHEDULE``), and a
label whose key or value Kubernetes refuses (EKS's own wording for a value, as
aws-controllers-k8s/community#2208 shows it; the other messages are the stand-in's). Subnets are
not checked against moto's EC2: moto gives subnets ids of its own, and the tests name theirs.

In this process that is for ``mock_aws``; ``python tests/moto_eks.py -p PORT`` runs moto's
server with the same, its quotas read from ``KATUNA_EKS_NODES_PER_GROUP`` and
``KATUNA_EKS_GROUPS_PER_CLUSTER`` as katuna reads them, so a server started with the service's
environment holds it to the quotas it is configured with.

EKS makes each managed node group's Auto Scaling group, which moto only names in the group's
``resources``: :func:`teach` makes moto create it (in its autoscaling backend, sized as the
group's ``scalingConfig``) and delete it with the group, so the node-template tags katuna
writes on it land as they do on AWS, and a group katuna waits for becomes done.

What moto cannot show (an Update in progress, or failed with its errors) is tested with
botocore's Stubber (tests/test_nodepools_eks.py).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from moto.autoscaling.models import autoscaling_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionResult
from moto.eks import urls
from moto.eks.exceptions import EKSError, InvalidParameterException, ResourceNotFoundException
from moto.eks.models import EKSBackend, eks_backends
from moto.eks.responses import EKSResponse

from functions.core.limits import EksQuotas
from functions.settings import eks_quotas

TAINT_EFFECTS = ("NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE")
LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
"""A label key's name part, and a label value, as Kubernetes takes them (at most 63 characters)."""
LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
"""A label key's prefix: a DNS subdomain (at most 253 characters)."""
IMAGE = "ami-12c6146b"
"""An AMI moto's EC2 holds, for the instances a node group's Auto Scaling group launches."""
UPDATE_PATH = "{0}/clusters/(?P<name>[^/]+)/updates/(?P<updateId>[^/]+)$"
_ACCOUNT = {"quotas": EksQuotas()}
"""The quotas of every account and region not given its own by :func:`raise_quotas`."""


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


def _check_order(cluster: str, group: str, scaling: dict[str, int]) -> None:
    """EKS refuses limits out of order: ``minSize`` ≤ ``desiredSize`` ≤ ``maxSize``."""
    low, high, desired = scaling.get("minSize"), scaling.get("maxSize"), scaling.get("desiredSize")
    if low is not None and high is not None and low > high:
        raise _invalid(cluster, group, f"Minimum capacity {low} can't be greater than maximum capacity {high}")
    if desired is not None and high is not None and desired > high:
        raise _invalid(cluster, group, f"Desired capacity {desired} can't be greater than maximum capacity {high}")
    if desired is not None and low is not None and desired < low:
        raise _invalid(cluster, group, f"Desired capacity {desired} can't be less than minimum capacity {low}")


def _check_labels(cluster: str, group: str, labels: dict[str, str] | None) -> None:
    """EKS refuses node labels Kubernetes would refuse."""
    for key, value in (labels or {}).items():
        prefix, _, name = key.rpartition("/")
        if not LABEL_NAME.fullmatch(name) or (prefix and not (len(prefix) <= 253 and LABEL_PREFIX.fullmatch(prefix))):
            raise _invalid(cluster, group, f'Invalid value: "{key}": a label key must be a name of at most 63 '
                                           "alphanumeric characters, '-', '_' or '.', starting and ending with an "
                                           "alphanumeric character, with an optional DNS subdomain prefix and '/'")
        if not LABEL_NAME.fullmatch(value):
            raise _invalid(cluster, group, f'Invalid value: "{value}": a valid label must be an empty string or '
                                           "consist of alphanumeric characters, '-', '_' or '.', and must start and "
                                           "end with an alphanumeric character")


def _check_taints(cluster: str, group: str, taints: list[dict[str, str]] | None) -> None:
    """EKS takes only its own names of the taint effects."""
    for taint in taints or []:
        if taint.get("effect") not in TAINT_EFFECTS:
            raise _invalid(cluster, group, f"Taint effect {taint.get('effect')} is not one of {', '.join(TAINT_EFFECTS)}")


def _create_nodegroup(answer: Any) -> Any:
    def create_nodegroup(self: EKSBackend, cluster_name: str, nodegroup_name: str,
                         scaling_config: dict[str, int] | None = None, **rest: Any) -> Any:
        cluster = self.clusters.get(cluster_name)
        if cluster is not None and nodegroup_name not in cluster.nodegroups:
            _check_size(self, cluster_name, nodegroup_name, scaling_config)
            _check_order(cluster_name, nodegroup_name, scaling_config or {})
            _check_labels(cluster_name, nodegroup_name, rest.get("labels"))
            _check_taints(cluster_name, nodegroup_name, rest.get("taints"))
            most = quotas_of(self).groups_per_cluster
            if len(cluster.nodegroups) >= most:
                raise ResourceLimitExceededException(
                    clusterName=cluster_name, nodegroupName=nodegroup_name, subscriptionId=None,
                    message=f"Cluster {cluster_name} already has {len(cluster.nodegroups)} managed node groups, the "
                            f"account's quota of managed node groups per cluster ({most})")
        group = answer(self, cluster_name=cluster_name, nodegroup_name=nodegroup_name, scaling_config=scaling_config,
                       **rest)
        _make_autoscaling_group(self, group)
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
        group = answer(self, cluster_name, nodegroup_name)
        autoscaling = autoscaling_backends[self.account_id][self.region_name]
        for asg in group.resources["autoScalingGroups"]:
            autoscaling.delete_auto_scaling_group(asg["name"])
            autoscaling.delete_launch_configuration(asg["name"])
        return group

    return delete_nodegroup


def _kept(backend: EKSBackend) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The backend's node group Updates by cluster, group and id (emptied with the backend)."""
    return backend.__dict__.setdefault("katuna_updates", {})


def _update_nodegroup_config(answer: Any) -> Any:
    def update_nodegroup_config(self: EKSBackend, cluster_name: str, nodegroup_name: str,
                                **changes: Any) -> dict[str, Any]:
        _check_size(self, cluster_name, nodegroup_name, changes.get("scaling_config"))
        group = self.clusters[cluster_name].nodegroups.get(nodegroup_name) if cluster_name in self.clusters else None
        if group is not None:
            _check_order(cluster_name, nodegroup_name, {**group.scaling_config, **(changes.get("scaling_config") or {})})
        _check_labels(cluster_name, nodegroup_name, (changes.get("labels") or {}).get("addOrUpdateLabels"))
        _check_taints(cluster_name, nodegroup_name, (changes.get("taints") or {}).get("addOrUpdateTaints"))
        update = answer(self, cluster_name, nodegroup_name, **changes)
        _kept(self)[(cluster_name, nodegroup_name, update["id"])] = update
        return update

    return update_nodegroup_config


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


def teach(quotas: EksQuotas | None = None) -> None:
    """Teach moto's EKS ``DescribeUpdate`` and the account's quotas in this process (once):
    ``quotas``, else AWS's defaults, wherever :func:`raise_quotas` gives none."""
    _ACCOUNT["quotas"] = quotas or EksQuotas()
    if hasattr(EKSBackend, "describe_update"):
        return
    EKSBackend.create_nodegroup = _create_nodegroup(EKSBackend.create_nodegroup)
    EKSBackend.delete_nodegroup = _delete_nodegroup(EKSBackend.delete_nodegroup)
    EKSBackend.update_nodegroup_config = _update_nodegroup_config(EKSBackend.update_nodegroup_config)
    EKSBackend.describe_update = describe_update
    EKSResponse.describe_update = _describe_update
    urls.url_paths[UPDATE_PATH] = urls.response.dispatch


if __name__ == "__main__":
    from moto.server import main

    teach(eks_quotas(os.environ))
    main(sys.argv[1:])
