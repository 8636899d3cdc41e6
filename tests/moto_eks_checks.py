"""What EKS refuses of a node group's configuration that moto takes, as EKS refuses it.

moto checks little else of a node group's configuration. :func:`moto_eks.teach` makes it refuse, as EKS
does with ``InvalidParameterException``, scaling limits out of order (``minSize`` ≤
``desiredSize`` ≤ ``maxSize``, an update's partial limits judged merged into the group's; in
EKS's words, which differ between a create, ``minSize can't be greater than desiredSize`` as
sassoftware/viya4-iac-aws#298 quotes it, and an update, ``Minimum capacity 8 can't be greater
than desired size 4`` and ``desired capacity 2 can't be greater than max size 1`` as
terraform-aws-modules/terraform-aws-eks#3306 and eksctl users quote them), instance types EC2
does not have (``The following supplied instance types do not exist: [m4.large]``, EKS's words
as terraform-aws-modules/terraform-aws-eks#1279 quotes them; EKS also refuses so a type its
region does not offer, which the stand-in, holding moto's list of every type, does not), more
than 20 instance types (the API reference's ``CreateNodegroup``) or 50 taints ("a maximum of
50 taints per node group", the EKS User Guide's node taints page), a
taint effect EKS does not know (``NO_SCHEDULE``, ``NO_EXECUTE``, ``PREFER_NO_SCHEDULE``), and a
label whose key or value Kubernetes refuses (EKS's own wording for a value, as
aws-controllers-k8s/community#2208 shows it; the other messages are the stand-in's), an
instance type of another architecture than the AMI type's, and values outside the API's shapes
(:func:`check_shapes`: a ``capacityType`` or ``amiType`` not in its enum, a ``maxSize`` below 1,
a negative ``minSize`` or ``desiredSize``), which botocore checks of the sizes only, and only
where its parameter validation is on; the wording is the stand-in's.

Imported by :mod:`moto_eks`, which points moto's EC2 at its one image before moto's EC2 is
first imported.
"""

from __future__ import annotations

import re
from typing import Any

import botocore.session
from moto.ec2.models.instance_types import INSTANCE_TYPES
from moto.eks.exceptions import InvalidParameterException

TAINT_EFFECTS = ("NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE")
LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
"""A label key's name part, and a label value, as Kubernetes takes them (at most 63 characters)."""
LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
"""A label key's prefix: a DNS subdomain (at most 253 characters)."""
GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
"""A node group's name: "alphanumeric characters (case-sensitive), hyphens, and underscores. It
must start with an alphanumeric character and can't be longer than 63 characters" (the EKS API
reference's ``CreateNodegroup``)."""
KEY_MOST = 63
"""EKS's ``labelKey`` and ``taintKey`` shapes: at most 63 characters, a label's prefix included."""
TAGS_MOST, TAG_KEY_MOST, TAG_VALUE_MOST = 50, 128, 256
"""EKS's ``TagMap``: at most 50 tags, keys of 1 to 128 characters, values of at most 256; keys
starting ``aws:`` are AWS's own."""
TAINTS_MOST = 50
INSTANCE_TYPES_MOST = 20
"""``CreateNodegroup``'s ``instanceTypes``: "you can specify 0-20 instance types" (the EKS API
reference); the refusal's wording is the stand-in's."""
AL2023_SNAPSHOT_GB = 20
"""The root snapshot of EKS's Amazon Linux 2023 AMIs, in GiB: the smallest boot disk EKS takes."""
VOLUME_MOST_GB = 16384
"""The largest gp2 or gp3 volume a launch template's block device takes ("gp2 and gp3: 1 -
16,384 GiB", EC2's ``LaunchTemplateEbsBlockDeviceRequest``): EC2 launches no node with a larger
boot volume."""


_MODEL = botocore.session.get_session().get_service_model("eks")
ENUMS = {"capacityType": tuple(_MODEL.shape_for("CapacityTypes").enum),
         "amiType": tuple(_MODEL.shape_for("AMITypes").enum)}
"""The values EKS takes for a node group's ``capacityType`` (``ON_DEMAND``, ``SPOT``,
``CAPACITY_BLOCK``) and ``amiType``, as botocore's model of the EKS API lists them."""
SIZE_LEAST = {"minSize": 0, "maxSize": 1, "desiredSize": 0}
"""The least value of each ``NodegroupScalingConfig`` size (the model's ``min``)."""


def invalid(cluster: str, group: str, message: str) -> InvalidParameterException:
    return InvalidParameterException(clusterName=cluster, nodegroupName=group, fargateProfileName=None,
                                     addonName=None, message=message)


def check_shapes(cluster: str, group: str, scaling: dict[str, int] | None, **enums: Any) -> None:
    """EKS refuses a size below its least (:data:`SIZE_LEAST`) and an enum's value it does not
    have (:data:`ENUMS`: ``capacityType``, ``amiType``, given by their API names)."""
    for field, least in SIZE_LEAST.items():
        value = (scaling or {}).get(field)
        if value is not None and value < least:
            raise invalid(cluster, group, f"scalingConfig.{field} must be at least {least}, got {value}")
    for field, value in enums.items():
        if value is not None and value not in ENUMS[field]:
            raise invalid(cluster, group, f"{field} {value!r} is not one of {', '.join(ENUMS[field])}")


def check_order(cluster: str, group: str, scaling: dict[str, int], *, update: bool) -> None:
    """EKS refuses limits out of order, ``minSize`` ≤ ``desiredSize`` ≤ ``maxSize`` (limits out
    of order leave the desired size outside one of them), in a create's words or an update's."""
    low, high, desired = scaling.get("minSize"), scaling.get("maxSize"), scaling.get("desiredSize")
    if desired is not None and low is not None and low > desired:
        raise invalid(cluster, group, f"Minimum capacity {low} can't be greater than desired size {desired}" if update
                      else "minSize can't be greater than desiredSize")
    if desired is not None and high is not None and desired > high:
        raise invalid(cluster, group, f"desired capacity {desired} can't be greater than max size {high}" if update
                      else "desiredSize can't be greater than maxSize")


def check_instance_types(cluster: str, group: str, types: list[str] | None) -> None:
    """EKS refuses more than :data:`INSTANCE_TYPES_MOST` instance types, and those EC2 does not have."""
    if len(types or ()) > INSTANCE_TYPES_MOST:
        raise invalid(cluster, group, f"instanceTypes: at most {INSTANCE_TYPES_MOST} instance types may be given, "
                                      f"{len(types or ())} were")
    unknown = [kind for kind in types or () if kind not in INSTANCE_TYPES]
    if unknown:
        raise invalid(cluster, group, f"The following supplied instance types do not exist: [{', '.join(unknown)}]")


def check_ami_type(cluster: str, group: str, ami_type: str | None, types: list[str] | None) -> None:
    """EKS refuses instance types of another architecture than the AMI type's (an x86 AMI for
    Graviton's arm64), in its words as awslabs/amazon-eks-ami users quote them; the architecture
    is moto's copy of EC2's ``DescribeInstanceTypes``, not katuna's reading of family names."""
    wanted = "arm64" if "_ARM_64_" in (ami_type or "") else "x86_64"
    wrong = [kind for kind in types or () if wanted not in INSTANCE_TYPES[kind]["ProcessorInfo"]["SupportedArchitectures"]]
    if wrong:
        raise invalid(cluster, group, f"[{', '.join(wrong)}] is not a valid instance type for requested amiType "
                                      f"{ami_type or 'AL2023_x86_64_STANDARD'}")


def check_labels(cluster: str, group: str, labels: dict[str, str] | None) -> None:
    """EKS refuses node labels Kubernetes would refuse."""
    for key, value in (labels or {}).items():
        if len(key) > KEY_MOST:
            raise invalid(cluster, group, f'Invalid value: "{key}": a node group label key may be at most {KEY_MOST} '
                                          "characters, its prefix included")
        prefix, _, name = key.rpartition("/")
        if not LABEL_NAME.fullmatch(name) or (prefix and not (len(prefix) <= 253 and LABEL_PREFIX.fullmatch(prefix))):
            raise invalid(cluster, group, f'Invalid value: "{key}": a label key must be a name of at most 63 '
                                          "alphanumeric characters, '-', '_' or '.', starting and ending with an "
                                          "alphanumeric character, with an optional DNS subdomain prefix and '/'")
        if not LABEL_NAME.fullmatch(value):
            raise invalid(cluster, group, f'Invalid value: "{value}": a valid label must be an empty string or '
                                          "consist of alphanumeric characters, '-', '_' or '.', and must start and "
                                          "end with an alphanumeric character")


def check_disk(cluster: str, group: str, size: int | None) -> None:
    """EKS refuses a boot disk smaller than its AMI's root snapshot: 20 GiB for Amazon Linux 2023
    (awslabs/amazon-eks-ami#1581), in its own words (seen in cilium/cilium#43051). A boot
    volume above :data:`VOLUME_MOST_GB` is refused too: EC2 would refuse every launch of the
    group's nodes, which would never come (the wording is the stand-in's)."""
    if size is not None and size < AL2023_SNAPSHOT_GB:
        raise invalid(cluster, group, f"Volume of size {size}GB is smaller than snapshot 'snap-0al2023root', "
                                      f"expect size>= {AL2023_SNAPSHOT_GB}GB")
    if size is not None and size > VOLUME_MOST_GB:
        raise invalid(cluster, group, f"Volume of size {size}GiB is too large for a gp2 or gp3 volume; the largest is "
                                      f"{VOLUME_MOST_GB}GiB")


def check_taints(cluster: str, group: str, taints: list[dict[str, str]] | None) -> None:
    """EKS takes at most :data:`TAINTS_MOST` taints, and only its own names of the taint effects."""
    if len(taints or ()) > TAINTS_MOST:
        raise invalid(cluster, group, f"A node group may have at most {TAINTS_MOST} taints; {len(taints or ())} were "
                                      "given")
    for taint in taints or []:
        if not 1 <= len(taint.get("key") or "") <= KEY_MOST or len(taint.get("value") or "") > KEY_MOST:
            raise invalid(cluster, group, f"A taint's key must be 1 to {KEY_MOST} characters, its value at most "
                                          f"{KEY_MOST}")
        if taint.get("effect") not in TAINT_EFFECTS:
            raise invalid(cluster, group, f"Taint effect {taint.get('effect')} is not one of {', '.join(TAINT_EFFECTS)}")


def check_tags(cluster: str, group: str, tags: dict[str, str] | None) -> None:
    """EKS's bounds on a resource's tags, and AWS's reserved prefix."""
    tags = tags or {}
    if len(tags) > TAGS_MOST:
        raise invalid(cluster, group, f"A resource may have at most {TAGS_MOST} tags; {len(tags)} were given")
    for key, value in tags.items():
        if key.lower().startswith("aws:"):
            raise invalid(cluster, group, f"Tag key {key!r} uses the reserved prefix 'aws:'")
        if not 1 <= len(key) <= TAG_KEY_MOST or len(value) > TAG_VALUE_MOST:
            raise invalid(cluster, group, f"Tag keys must be 1 to {TAG_KEY_MOST} characters and values at most "
                                          f"{TAG_VALUE_MOST}")


def check_create(cluster: str, group: str, scaling: dict[str, int] | None) -> None:
    """A new group's name, and its ``scalingConfig``: "When creating a node group, you must
    specify all or none of the properties" (``NodegroupScalingConfig``)."""
    if not GROUP_NAME.fullmatch(group):
        raise invalid(cluster, group, f"Nodegroup name {group!r} is invalid: it may hold only alphanumeric "
                                      "characters, hyphens and underscores, start with an alphanumeric character and "
                                      "be at most 63 characters long")
    given = set(scaling or {}) & {"minSize", "maxSize", "desiredSize"}
    if given and len(given) != 3:
        raise invalid(cluster, group, "scalingConfig: specify all of minSize, maxSize and desiredSize, or none")
