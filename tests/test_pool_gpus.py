"""A study whose trials ask for GPUs that no node of its pool has is refused when it is
submitted, naming the pool's field, before any pool is made: the pool would cost money and no
trial would ever be scheduled on it."""

from __future__ import annotations

import pytest
from conftest import study_definition

from functions.core.errors import InvalidStudy
from functions.core.validate import parse_study
from functions.pools import check_node_pool
from functions.settings import Settings

GKE = Settings(gke_project="p", gke_location="l", gke_cluster="c")
EKS = Settings(eks_cluster="tuning", eks_subnets=("subnet-1",), eks_node_role="arn:aws:iam::1:role/nodes")


def gpu_study(gpus: str, pool: dict) -> dict:
    definition = study_definition(name="gpus", nodePool=pool)
    definition["trialTemplate"].update(image="python:3.12", resources={"cpu": "1", "gpu": gpus})
    return definition


def pytorch_study(gpus: object, pool: dict) -> dict:
    """A Katib-style PyTorchJob trial whose Worker asks for ``gpus`` in its limits."""
    definition = study_definition(name="torch", nodePool=pool)
    worker = {"name": "pytorch", "image": "pytorch:2", "command": ["python", "train.py", "--x=${trialParameters.x}"],
              "resources": {"requests": {"cpu": "2"}, "limits": {"nvidia.com/gpu": gpus}}}
    replica = {"replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [worker]}}}
    definition["trialTemplate"] = {"primaryContainerName": "pytorch", "trialSpec": {
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
        "spec": {"pytorchReplicaSpecs": {"Master": replica, "Worker": replica}}}}
    return definition


def refusal(definition: dict, settings: Settings) -> tuple[str, str]:
    with pytest.raises(InvalidStudy) as refused:
        check_node_pool(parse_study(definition), settings, runs_jobs=True)
    problem, = refused.value.problems
    return problem.path, problem.message


def test_gpu_trials_on_a_gke_pool_without_gpus_are_refused_naming_its_accelerators():
    path, message = refusal(gpu_study("2", {"provider": "gke", "machineType": "n1-standard-8",
                                            "accelerators": [{"type": "nvidia-tesla-t4", "count": 1}]}), GKE)
    assert (path, "has 1") == ("nodePool.accelerators", message.split(", so")[0][-5:])
    assert message.endswith("expected accelerators enough for one trial's pod (2 nvidia-tesla-t4, say)")
    path, message = refusal(gpu_study("3", {"provider": "gke", "machineType": "n1-standard-8"}), GKE)
    assert path == "nodePool.accelerators" and message.endswith("(4 nvidia-tesla-t4, say)"), \
        "an n1 type takes 1, 2 or 4 T4s"


def test_the_accelerators_a_refusal_suggests_are_ones_the_pools_n1_machine_type_takes():
    """An n1 machine type takes a count of GPUs only beside so many vCPUs (1 T4 beside at most
    48): the accelerators a refusal suggests are ones its machine type takes, so that the pool
    put right as it says is taken, and, where fewer would do on a smaller machine, it says so."""
    pool = {"provider": "gke", "machineType": "n1-standard-64"}
    path, message = refusal(gpu_study("1", pool), GKE)
    assert path == "nodePool.accelerators"
    assert message.endswith("expected accelerators enough for one trial's pod (4 nvidia-tesla-t4, say, which its 64 "
                            "vCPUs take; or 1 nvidia-tesla-t4 with a machine type of at most 48 vCPUs)")
    check_node_pool(parse_study(gpu_study("1", {**pool, "accelerators": [{"type": "nvidia-tesla-t4", "count": 4}]})),
                    GKE, runs_jobs=True)
    path, message = refusal(gpu_study("2", {"provider": "gke", "machineType": "n1-standard-96"}), GKE)
    assert message.endswith("(4 nvidia-tesla-t4, say, which its 96 vCPUs take; or 2 nvidia-tesla-t4 with a machine "
                            "type of at most 48 vCPUs)")
    path, message = refusal(gpu_study("2", {"provider": "gke", "machineType": "custom-12-46080",
                                            "accelerators": [{"type": "nvidia-tesla-v100", "count": 1}]}), GKE)
    assert (path, message.split("; ")[-1]) == \
        ("nodePool.accelerators", "expected accelerators enough for one trial's pod (2 nvidia-tesla-v100, say)"), \
        "a custom machine type is an n1 one: its accelerators are the field to change"


def test_gpu_trials_on_a_gke_machine_type_without_enough_are_refused_naming_it_and_one_that_has_enough():
    """A GKE machine type that takes no GPU (the default e2-standard-4), or an accelerator-optimized
    one that comes with too few, is the field to change: accelerators added to it would be
    refused in turn. The refusal names a type of its family with enough, or types that have them."""
    path, message = refusal(gpu_study("1", {"provider": "gke"}), GKE)
    assert path == "nodePool.machineType"
    assert message == ("trialTemplate.resources asks for 1 nvidia.com/gpu in one pod, but a node of machine type "
                       "e2-standard-4 has 0, so no trial would ever be scheduled; expected an n1 machine type with "
                       "accelerators (1 nvidia-tesla-t4, say) or an accelerator-optimized machine type that comes "
                       "with them (g2-standard-4: 1 nvidia-l4)")
    path, message = refusal(pytorch_study(4, {"provider": "gke", "machineType": "g2-standard-24"}), GKE)
    assert path == "nodePool.machineType"
    assert message.startswith("trialTemplate.trialSpec.spec.pytorchReplicaSpecs.Master.template.spec.containers[0]"
                              ".resources.limits asks for 4 nvidia.com/gpu in one pod, but a node of machine type "
                              "g2-standard-24 has 2")
    assert message.endswith("expected a machine type of its family with enough (g2-standard-48: 4 nvidia-l4)")
    path, message = refusal(gpu_study("2", {"provider": "gke", "machineType": "a2-highgpu-1g"}), GKE)
    assert (path, message.split("; ")[-1]) == \
        ("nodePool.machineType", "expected a machine type of its family with enough (a2-highgpu-2g: 2 nvidia-tesla-a100)")
    path, message = refusal(gpu_study("16", {"provider": "gke", "machineType": "a3-highgpu-8g"}), GKE)
    assert message.endswith("(a2-megagpu-16g: 16 nvidia-tesla-a100)")
    path, message = refusal(gpu_study("20", {"provider": "gke", "machineType": "n2-standard-8"}), GKE)
    assert message.endswith("expected a machine type with 20 GPUs, which GKE has none of (a2-megagpu-16g has the "
                            "most: 16)")
    for pool, gpus in (({"provider": "gke", "machineType": "a2-highgpu-2g"}, "2"),
                       ({"provider": "gke", "machineType": "g2-standard-48"}, "4"),
                       ({"provider": "gke", "machineType": "n1-standard-8",
                         "accelerators": [{"type": "nvidia-tesla-t4", "count": 4}]}, "3")):
        check_node_pool(parse_study(gpu_study(gpus, pool)), GKE, runs_jobs=True)


def test_gpu_trials_on_an_eks_group_without_nvidia_gpus_are_refused_naming_its_instance_types():
    path, message = refusal(pytorch_study("1", {"provider": "eks", "instanceTypes": ["m5.xlarge"]}), EKS)
    assert path == "nodePool.instanceTypes"
    assert "m5.xlarge has no NVIDIA GPU" in message and "g4dn, g5" in message
    path, message = refusal(gpu_study("1", {"provider": "eks", "instanceTypes": ["g4ad.xlarge"]}), EKS)
    assert (path, "g4ad.xlarge has no NVIDIA GPU" in message) == ("nodePool.instanceTypes", True)
    path, message = refusal(gpu_study("1", {"provider": "eks", "instanceTypes": ["m5.xlarge", "c5.large"]}), EKS)
    assert (path, "m5.xlarge, c5.large have no NVIDIA GPU" in message) == ("nodePool.instanceTypes", True)


def test_gpu_trials_on_a_pool_whose_nodes_hold_them_are_taken():
    for definition, settings in (
            (gpu_study("1", {"provider": "gke", "machineType": "g2-standard-8"}), GKE),
            (gpu_study("2", {"provider": "gke", "machineType": "n1-standard-8",
                             "accelerators": [{"type": "nvidia-tesla-t4", "count": 2}]}), GKE),
            (pytorch_study("8", {"provider": "gke", "machineType": "a3-highgpu-8g"}), GKE),
            (gpu_study("1", {"provider": "gke", "machineType": "x9-standard-8"}), GKE),
            (pytorch_study("${trialParameters.x}", {"provider": "gke"}), GKE),
            (pytorch_study("1", {"provider": "eks", "instanceTypes": ["g5.xlarge", "g6.xlarge"]}), EKS),
            (study_definition(name="cpu", nodePool={"provider": "gke", "machineType": "g2-standard-8"}), GKE)):
        check_node_pool(parse_study(definition), settings, runs_jobs=True)


def test_an_eks_gpu_groups_nodes_offer_gpus_only_where_nvidias_device_plugin_tolerates_katunas_taint():
    """EKS's Amazon Linux 2023 NVIDIA AMI has NVIDIA's driver but no device plugin: its nodes
    offer ``nvidia.com/gpu`` once NVIDIA's DaemonSet runs there, which by default tolerates
    ``nvidia.com/gpu`` alone, not the taint katuna gives its groups (docs/kubernetes.md says to
    add it)."""
    from kube_standin.clouds import NVIDIA_PLUGIN_TOLERATIONS, eks_pool

    from functions.core.nodepool import NodePool
    from infra.eks_requests import EksCluster, create_request

    group = create_request(EksCluster("tuning", ("subnet-1",), "arn:aws:iam::1:role/nodes"),
                           NodePool("katuna-torch", "eks", machine_types=("g5.12xlarge",)))
    assert group["amiType"] == "AL2023_x86_64_NVIDIA"
    assert "nvidia.com/gpu" not in eks_pool(group, plugin_tolerations=None).allocatable
    assert "nvidia.com/gpu" not in eks_pool(group, plugin_tolerations=NVIDIA_PLUGIN_TOLERATIONS).allocatable
    katunas = ({"key": "katuna.dev/trial", "operator": "Exists", "effect": "NoSchedule"},)
    assert eks_pool(group, plugin_tolerations=NVIDIA_PLUGIN_TOLERATIONS + katunas).allocatable["nvidia.com/gpu"] == "4"


def job_study(pool: dict, containers: list[dict], init: list[dict] = (), resources: dict | None = None) -> dict:
    """A Katib-style Job trial whose pod runs ``containers`` (the first is the primary) after ``init``."""
    definition = study_definition(name="job", nodePool=pool)
    pod = {"containers": containers, "restartPolicy": "Never", **({"initContainers": list(init)} if init else {})}
    definition["trialTemplate"] = {"primaryContainerName": "train", **({"resources": resources} if resources else {}),
                                   "trialSpec": {"apiVersion": "batch/v1", "kind": "Job",
                                                 "spec": {"template": {"spec": pod}}}}
    return definition


def gpus(name: str, count: int, **more) -> dict:
    """A container asking for ``count`` GPUs (and a cpu, unless ``more`` says otherwise)."""
    return {"name": name, "image": "pytorch:2", "command": ["python", "train.py", "--x=${trialParameters.x}"],
            "resources": {"requests": {"cpu": "1"}, "limits": {"nvidia.com/gpu": count}}, **more}


T4 = {"provider": "gke", "machineType": "n1-standard-8", "accelerators": [{"type": "nvidia-tesla-t4", "count": 1}]}
G5 = {"provider": "eks", "instanceTypes": ["g5.xlarge"]}
SPEC = "trialTemplate.trialSpec.spec.template.spec"


def test_the_gpus_of_one_pods_containers_together_must_fit_one_node():
    """The scheduler counts a pod's containers together, an init container by itself with the
    sidecars started before it: a pod whose containers ask 1 each needs a node of 2."""
    path, message = refusal(job_study(T4, [gpus("train", 1), gpus("sidecar", 1)]), GKE)
    assert path == "nodePool.accelerators"
    assert message.startswith(f"{SPEC}.containers[0].resources.limits, {SPEC}.containers[1].resources.limits ask "
                              "together for 2 nvidia.com/gpu in one pod, but a node of machine type n1-standard-8 has 1")
    path, message = refusal(job_study(G5, [gpus("train", 1)], init=[gpus("warm", 2)]), EKS)
    assert (path, message.split(", but")[0]) == (
        "nodePool.instanceTypes", f"{SPEC}.initContainers[0].resources.limits asks for 2 nvidia.com/gpu in one pod")
    path, message = refusal(job_study(G5, [gpus("train", 1)], init=[gpus("watch", 1, restartPolicy="Always")]), EKS)
    assert message.split(", but")[0] == (f"{SPEC}.initContainers[0].resources.limits, {SPEC}.containers[0].resources"
                                         ".limits ask together for 2 nvidia.com/gpu in one pod")
    bare = {"name": "train", "image": "pytorch:2", "command": ["python", "train.py", "--x=${trialParameters.x}"]}
    sidecar = {**bare, "name": "sidecar", "resources": {"limits": {"nvidia.com/gpu": 1}}}
    path, message = refusal(job_study(G5, [bare, sidecar], resources={"gpu": "1"}), EKS)
    assert message.split(", but")[0] == (f"trialTemplate.resources, {SPEC}.containers[1].resources.limits ask "
                                         "together for 2 nvidia.com/gpu in one pod")


def test_gpus_of_separate_pods_or_of_init_containers_run_one_after_another_are_not_added_up():
    for definition, settings in (
            (job_study(T4, [gpus("train", 1)], init=[gpus("warm", 1)]), GKE),
            (job_study(G5, [gpus("train", 1)], init=[gpus("warm", 1), gpus("more", 1)]), EKS),
            (pytorch_study("1", {"provider": "eks", "instanceTypes": ["g5.xlarge"]}), EKS),
            (pytorch_study("1", T4), GKE)):
        check_node_pool(parse_study(definition), settings, runs_jobs=True)
