"""How many NVIDIA GPUs a node of an EKS instance type has, and the labels katuna gives the
nodes of its NVIDIA groups so that the GPU ecosystem finds them.

The counts and GPU models are EC2's own (``DescribeInstanceTypes``' ``GpuInfo.Gpus[].Count``
and ``Name``, as Amazon EC2's "Accelerated computing instance specifications" page lists them;
the test suite holds the table to moto's copy of that API's answers). katuna does not ask EC2
when a study is submitted (the service's IAM policy grants no ``ec2:DescribeInstanceTypes``, and
nothing else at submission talks to AWS): an instance type not in the table is left alone, as
are the fractional-GPU families (g6f, gr6f), whose share of a GPU EC2 counts as none.

A group that boots an NVIDIA AMI type (:func:`functions.core.eks_ami.offers_nvidia_gpus`) gets
two node labels: ``nvidia.com/gpu.present=true``, one of the labels the node affinity of NVIDIA's
device plugin Helm chart selects (without it, or node-feature-discovery's, the plugin never runs
there and the nodes offer no ``nvidia.com/gpu``), and ``k8s.amazonaws.com/accelerator`` with the
GPU model, by which the cluster-autoscaler's AWS provider knows a node will offer GPUs before
the device plugin registers them (its ``GPULabel``): without it, it takes a new node as lacking
them and adds another for the trial still waiting. A group mixing GPU models, or of a family
not in the table, gets no accelerator label: one value would misname some of its nodes.
"""

from __future__ import annotations

from functions.core.eks_ami import offers_nvidia_gpus

GPU_PRESENT = "nvidia.com/gpu.present"
"""The node label NVIDIA's device plugin chart's default node affinity selects (``"true"``)."""
ACCELERATOR = "k8s.amazonaws.com/accelerator"
"""The node label the cluster-autoscaler's AWS provider reads as "this node has GPUs"
(cluster-autoscaler/cloudprovider/aws ``GPULabel``), its value the GPU model."""


def _sizes(*counts: tuple[str, int]) -> dict[str, int]:
    """``{size: count}`` from ``("xlarge 2xlarge", 1)`` pairs."""
    return {size: count for sizes, count in counts for size in sizes.split()}


_G5_LIKE = _sizes(("xlarge 2xlarge 4xlarge 8xlarge 16xlarge", 1), ("12xlarge 24xlarge", 4), ("48xlarge", 8))
_G7_LIKE = _sizes(("2xlarge 4xlarge 8xlarge", 1), ("12xlarge", 2), ("24xlarge", 4), ("48xlarge", 8))
FAMILIES: dict[str, tuple[str, dict[str, int]]] = {
    "g4dn": ("T4", _sizes(("xlarge 2xlarge 4xlarge 8xlarge 16xlarge", 1), ("12xlarge", 4), ("metal", 8))),
    "g5": ("A10G", _G5_LIKE),
    "g5g": ("T4g", _sizes(("xlarge 2xlarge 4xlarge 8xlarge", 1), ("16xlarge metal", 2))),
    "g6": ("L4", _G5_LIKE),
    "g6e": ("L40S", _G5_LIKE),
    "gr6": ("L4", _sizes(("4xlarge 8xlarge", 1))),
    "g7": ("RTX PRO 4500", _G7_LIKE),
    "g7e": ("RTX PRO Server 6000", _G7_LIKE),
    "p3": ("V100", _sizes(("2xlarge", 1), ("8xlarge", 4), ("16xlarge", 8))),
    "p3dn": ("V100", _sizes(("24xlarge", 8))),
    "p4d": ("A100", _sizes(("24xlarge", 8))),
    "p4de": ("A100", _sizes(("24xlarge", 8))),
    "p5": ("H100", _sizes(("4xlarge", 1), ("48xlarge", 8))),
    "p5e": ("H200", _sizes(("48xlarge", 8))),
    "p5en": ("H200", _sizes(("48xlarge", 8))),
    "p6-b200": ("B200", _sizes(("48xlarge", 8))),
    "p6-b300": ("B300", _sizes(("48xlarge", 8))),
}
"""EC2's GPU model (``GpuInfo.Gpus[].Name``) of each NVIDIA family, and its count by size."""

NAMED = {"T4": "nvidia-tesla-t4", "V100": "nvidia-tesla-v100", "A100": "nvidia-tesla-a100", "A10G": "nvidia-a10g",
         "L4": "nvidia-l4", "L40S": "nvidia-l40s"}
"""The accelerator label values the cluster-autoscaler's AWS provider names (its
``availableGPUTypes``); another model is ``nvidia-`` and EC2's name, lower-case, ``-`` for spaces."""


def _family(instance_type: str) -> tuple[str, str]:
    family, _, size = instance_type.lower().partition(".")
    return family, size


def gpu_count(instance_type: str) -> int | None:
    """The NVIDIA GPUs a node of ``instance_type`` has; None where the table does not say."""
    family, size = _family(instance_type)
    return FAMILIES[family][1].get(size) if family in FAMILIES else None


def accelerator(instance_type: str) -> str | None:
    """The ``k8s.amazonaws.com/accelerator`` value of ``instance_type``'s GPU model; None for a
    family not in the table."""
    family, _ = _family(instance_type)
    if family not in FAMILIES:
        return None
    model = FAMILIES[family][0]
    return NAMED.get(model) or "nvidia-" + model.lower().replace(" ", "-")


def fitting(instance_type: str, count: int) -> str | None:
    """The instance type of ``instance_type``'s family with the fewest GPUs that are at least
    ``count``; None where the table has none."""
    family, _ = _family(instance_type)
    sizes = FAMILIES.get(family, ("", {}))[1]
    enough = [(n, size) for size, n in sizes.items() if n >= count]
    return f"{family}.{min(enough)[1]}" if enough else None


def node_labels(instance_types: tuple[str, ...]) -> dict[str, str]:
    """The labels katuna gives the nodes of a group of ``instance_types``: none unless they boot
    an NVIDIA AMI type; then :data:`GPU_PRESENT`, and :data:`ACCELERATOR` where every type has
    the same known GPU model."""
    if not instance_types or not all(offers_nvidia_gpus(t) for t in instance_types):
        return {}
    models = {accelerator(t) for t in instance_types}
    model = models.pop() if len(models) == 1 else None
    return {GPU_PRESENT: "true", **({ACCELERATOR: model} if model else {})}
