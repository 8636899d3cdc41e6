"""The test suite's stand-ins, for the cost benchmark: the Kubernetes API on a simulated clock
(``tests/kube_stub.py`` and ``tests/kube_standin/``), and the cloud behind it: GKE's API (the
loopback stand-in) or EKS's (moto, in this process), each on the same clock, with the settings
that point katuna's node-pool adapter at it, the provider the cluster autoscaler reads its pools
from, and how it takes spot nodes back (:mod:`kube_standin.interruptions`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from gke_stub import GkeStub  # noqa: E402
from kube_standin.clock import SimulatedClock  # noqa: E402
from kube_standin.clouds import eks_node_groups, eks_pools, gke_pools, gke_resize  # noqa: E402
from kube_standin.containers import Run, SimulatedContainers  # noqa: E402
from kube_standin.interruptions import Interruptions  # noqa: E402
from kube_standin.nodes import NodePool  # noqa: E402
from kube_stub import KubeStub  # noqa: E402

__all__ = ["Cloud", "KubeStub", "Run", "SimulatedClock", "SimulatedContainers", "make_cloud"]

CLUSTER = "tuning"
GCP_PROJECT, GCP_LOCATION = "katuna-bench", "us-central1"
AWS_REGION = "us-east-1"
NODE_ROLE = "arn:aws:iam::123456789012:role/katuna-nodes"


class Cloud:
    """What the benchmark needs of a cloud."""

    clock: SimulatedClock
    pools: Callable[[], Iterable[NodePool]]
    resize: Callable[[str, int], None] | None = None
    interruptions: Interruptions
    settings: dict[str, str]
    """katuna's settings for this cloud (``KATUNA_*``)."""

    def fixed_pool(self, machine: str, nodes: int) -> None:
        """As the cluster's admin: a pool of ``nodes`` on-demand machines that stays that size."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class Gke(Cloud):
    def __init__(self, clock: SimulatedClock, interruptions_per_hour: float, seed: int) -> None:
        self.clock = clock
        self.gke = GkeStub(speed=1.0, clock=clock)
        self.gke.add_cluster(GCP_PROJECT, GCP_LOCATION, CLUSTER)
        self.pools = gke_pools(self.gke)
        self.resize = gke_resize(self.gke)
        self.interruptions = Interruptions.gke(interruptions_per_hour, seed)
        self.settings = {"KATUNA_GKE_PROJECT": GCP_PROJECT, "KATUNA_GKE_LOCATION": GCP_LOCATION,
                         "KATUNA_GKE_CLUSTER": CLUSTER, "KATUNA_GKE_ENDPOINT": self.gke.url}

    def fixed_pool(self, machine: str, nodes: int) -> None:
        path = f"/v1/projects/{GCP_PROJECT}/locations/{GCP_LOCATION}/clusters/{CLUSTER}/nodePools"
        code, answer = self.gke.route("POST", path, {"nodePool": {"name": "fixed", "initialNodeCount": nodes,
                                                                  "config": {"machineType": machine}}})
        if code != 200:
            raise RuntimeError(f"GKE refused the fixed pool: {answer}")

    def close(self) -> None:
        self.gke.close()


class Eks(Cloud):
    def __init__(self, clock: SimulatedClock, interruptions_per_hour: float, seed: int) -> None:
        import boto3  # only a run on EKS pays for importing moto and boto3
        import moto_eks
        import moto_eks_iam
        import moto_eks_lifecycle
        from moto import mock_aws

        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(key, "testing")
        moto_eks.teach()  # EKS's Auto Scaling group of each node group, which the autoscaler sizes
        moto_eks_lifecycle.pace(clock, speed=1.0)  # node groups take EKS's minutes on the simulation's clock
        self._aws = mock_aws()
        self._aws.start()
        self.clock = clock
        self.eks = boto3.client("eks", region_name=AWS_REGION)
        self.subnets = list(moto_eks.network(boto3.client("ec2", region_name=AWS_REGION)))
        moto_eks_iam.node_role(boto3.client("iam", region_name=AWS_REGION))
        self.eks.create_cluster(name=CLUSTER, roleArn=NODE_ROLE, resourcesVpcConfig={"subnetIds": self.subnets})
        self.pools = eks_pools(eks_node_groups(self.eks, CLUSTER), boto3.client("autoscaling", region_name=AWS_REGION))
        self.interruptions = Interruptions.eks(interruptions_per_hour, seed)
        self.settings = {"KATUNA_EKS_CLUSTER": CLUSTER, "KATUNA_EKS_SUBNETS": ",".join(self.subnets),
                         "KATUNA_EKS_NODE_ROLE": NODE_ROLE, "KATUNA_EKS_REGION": AWS_REGION}

    def fixed_pool(self, machine: str, nodes: int) -> None:
        self.eks.create_nodegroup(clusterName=CLUSTER, nodegroupName="fixed", subnets=self.subnets,
                                  nodeRole=NODE_ROLE, instanceTypes=[machine], capacityType="ON_DEMAND",
                                  scalingConfig={"minSize": nodes, "maxSize": nodes, "desiredSize": nodes})

    def close(self) -> None:
        self._aws.stop()


def make_cloud(name: str, clock: SimulatedClock, interruptions_per_hour: float, seed: int) -> Cloud:
    return {"gke": Gke, "eks": Eks}[name](clock, interruptions_per_hour, seed)
