"""katuna's EKS node groups of NVIDIA GPUs: their nodes carry the labels NVIDIA's device plugin
chart and the cluster-autoscaler read, set by katuna; a study whose pods ask for more GPUs than
a node of an instance type has is refused naming ``nodePool.instanceTypes``; the GPU counts
katuna knows are EC2's own."""

from __future__ import annotations

import pytest
from conftest import study_definition
from kube_standin.clouds import NVIDIA_PLUGIN_TOLERATIONS, eks_pool
from moto.ec2.models.instance_types import INSTANCE_TYPES

from functions.core.errors import InvalidStudy
from functions.core.nodepool import NodePool
from functions.core.validate import parse_study
from functions.pools import check_node_pool
from functions.settings import Settings
from infra.eks_requests import EksCluster, create_request, template_tags

EKS = Settings(eks_cluster="tuning", eks_subnets=("subnet-1",), eks_node_role="arn:aws:iam::1:role/nodes")
CLUSTER = EksCluster("tuning", ("subnet-1",), "arn:aws:iam::1:role/nodes")
KATUNAS = ({"key": "katuna.dev/trial", "operator": "Exists", "effect": "NoSchedule"},)
"""The toleration of katuna's trial taint, which the device plugin must be installed with."""


def group(*types: str, labels: tuple[tuple[str, str], ...] = ()) -> dict:
    return create_request(CLUSTER, NodePool("katuna-torch", "eks", machine_types=types, labels=labels))


def gpu_study(gpus: str, types: list[str]) -> dict:
    definition = study_definition(name="gpus", nodePool={"provider": "eks", "instanceTypes": types})
    definition["trialTemplate"].update(image="python:3.12", resources={"cpu": "1", "gpu": gpus})
    return definition


def test_katunas_nvidia_groups_carry_the_labels_the_device_plugin_and_the_autoscaler_read():
    labels = group("g5.xlarge")["labels"]
    assert labels == {"nvidia.com/gpu.present": "true", "k8s.amazonaws.com/accelerator": "nvidia-a10g",
                      "katuna.dev/pool": "katuna-torch"}
    assert group("p5.48xlarge")["labels"]["k8s.amazonaws.com/accelerator"] == "nvidia-h100"
    assert group("g4dn.xlarge", "g4dn.2xlarge")["labels"]["k8s.amazonaws.com/accelerator"] == "nvidia-tesla-t4"
    assert group("g5.xlarge", "g6.xlarge")["labels"] == {"nvidia.com/gpu.present": "true",
                                                          "katuna.dev/pool": "katuna-torch"}
    assert group("m5.xlarge")["labels"] == group("g4ad.xlarge")["labels"] == {"katuna.dev/pool": "katuna-torch"}
    own = group("g6.xlarge", labels=(("k8s.amazonaws.com/accelerator", "l4"),))["labels"]
    assert own["k8s.amazonaws.com/accelerator"] == "l4" and own["nvidia.com/gpu.present"] == "true"
    tags = {tag["Key"]: tag["Value"] for tag in template_tags("asg-1", NodePool("katuna-torch", "eks",
                                                                                machine_types=("g6e.xlarge",)), "SPOT")}
    assert tags["k8s.io/cluster-autoscaler/node-template/label/k8s.amazonaws.com/accelerator"] == "nvidia-l40s"
    assert tags["k8s.io/cluster-autoscaler/node-template/label/nvidia.com/gpu.present"] == "true"


def test_the_device_plugin_installed_as_the_docs_say_runs_on_katunas_gpu_nodes_by_katunas_label():
    """The chart's node affinity wants ``nvidia.com/gpu.present=true`` (or node-feature-discovery's
    labels): a group without it offers no GPU even where the plugin tolerates katuna's taint."""
    made = group("g5.12xlarge")
    assert eks_pool(made, plugin_tolerations=NVIDIA_PLUGIN_TOLERATIONS + KATUNAS).allocatable["nvidia.com/gpu"] == "4"
    unlabelled = {**made, "labels": {"katuna.dev/pool": "katuna-torch"}}
    assert "nvidia.com/gpu" not in eks_pool(unlabelled, plugin_tolerations=NVIDIA_PLUGIN_TOLERATIONS + KATUNAS).allocatable
    assert eks_pool(group("g5g.16xlarge"), plugin_tolerations=NVIDIA_PLUGIN_TOLERATIONS + KATUNAS).allocatable[
        "nvidia.com/gpu"] == "2"


def refusal(definition: dict) -> tuple[str, str]:
    with pytest.raises(InvalidStudy) as refused:
        check_node_pool(parse_study(definition), EKS, runs_jobs=True)
    problem, = refused.value.problems
    return problem.path, problem.message


def test_gpu_trials_asking_more_than_an_instance_types_gpus_are_refused_naming_the_instance_types():
    path, message = refusal(gpu_study("4", ["g5.xlarge"]))
    assert path == "nodePool.instanceTypes"
    assert message == ("trialTemplate.resources asks for 4 nvidia.com/gpu in one pod, but a node of g5.xlarge has 1, "
                       "so no trial would ever be scheduled there; expected instance types with at least 4 NVIDIA "
                       "GPUs (g5.12xlarge has 4)")
    path, message = refusal(gpu_study("2", ["g6.2xlarge", "g6.12xlarge", "g6.4xlarge"]))
    assert path == "nodePool.instanceTypes" and "a node of g6.2xlarge has 1, g6.4xlarge has 1, so" in message
    path, message = refusal(gpu_study("16", ["p5.48xlarge"]))
    assert (path, message.split("; ")[1]) == ("nodePool.instanceTypes", "expected instance types with at least 16 "
                                                                        "NVIDIA GPUs")


def test_gpu_trials_on_instance_types_with_gpus_enough_or_unknown_counts_are_taken():
    for gpus, types in (("4", ["g5.12xlarge", "g5.24xlarge"]), ("8", ["p4d.24xlarge"]), ("1", ["g6f.xlarge"]),
                        ("2", ["g5g.metal"]), ("4", ["g9.xlarge"])):
        check_node_pool(parse_study(gpu_study(gpus, types)), EKS, runs_jobs=True)


def test_the_gpu_counts_and_models_are_ec2s_own():
    """Every NVIDIA instance type EC2 describes (moto's copy of ``DescribeInstanceTypes``' answers,
    read from its data, as its EC2 answers them, without the round trip through XML) with whole
    GPUs is in the table, with EC2's count and model; its fractional-GPU types are not."""
    from functions.core import eks_gpus

    described = list(INSTANCE_TYPES.values())
    nvidia = {t["InstanceType"]: t["GpuInfo"]["Gpus"][0] for t in described
              if any(g["Manufacturer"] == "NVIDIA" for g in (t.get("GpuInfo") or {}).get("Gpus", []))}
    whole = {name: gpu for name, gpu in nvidia.items() if gpu["Count"] > 0}
    assert len(whole) > 50
    assert {name: eks_gpus.gpu_count(name) for name in whole} == {name: gpu["Count"] for name, gpu in whole.items()}
    assert {name: eks_gpus.FAMILIES[name.split(".")[0]][0] for name in whole} == {n: g["Name"] for n, g in whole.items()}
    assert [eks_gpus.gpu_count(name) for name in nvidia if name not in whole] == [None] * (len(nvidia) - len(whole))


def test_an_nvidia_groups_gpu_labels_count_among_the_labels_eks_takes():
    many = {f"team.example/k{i}": "v" for i in range(39)}
    definition = study_definition(name="gpus", nodePool={"provider": "eks", "instanceTypes": ["g5.xlarge"],
                                                         "labels": many})
    with pytest.raises(InvalidStudy) as refused:
        parse_study(definition)
    problem, = refused.value.problems
    assert problem.path == "nodePool.labels"
    assert problem.message.endswith("these are 41 with katuna's k8s.amazonaws.com/accelerator, nvidia.com/gpu.present "
                                    "for NVIDIA GPUs")
    parse_study(study_definition(name="cpu", nodePool={"provider": "eks", "instanceTypes": ["m5.xlarge"],
                                                        "labels": many}))
