"""``python -m infra.provision gke|eks up`` on the pool the service made for a study (it carries
the study's uid): the service deletes that pool once no running study uses it, or gives a shared
one back the maximum it was made with, so ``up`` refuses it, naming ``--pool`` or
``--nodegroup``, and changes nothing, where it raised its maximum and reported it ready. Against
the loopback GKE API and moto's server, with the service's own adapters making the study's pool."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from gke_stub import GkeStub
from test_provision_script import GKE_FLAGS, ROLE, aws_client, eks_cluster, provision, served

from functions.core.nodepool import EKS, GKE, NodePool

pytestmark = pytest.mark.slow

REFUSED = ("is the one katuna made for a study (katuna-study-uid {uid}): the service deletes it once no running "
           "study uses it, or, made as a shared pool, gives it back the maximum it was made with, so what `up` gives "
           "it would not last; name another pool, or delete this one (`down --any-katuna-pool`, once no study runs "
           "on it) and run `up` again")


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, str]]:
    """moto's server on which EKS's minutes pass in a blink: the environment that reaches it."""
    with served("1000000") as env:
        yield env


def test_gke_up_refuses_a_studys_own_pool_and_leaves_it_as_the_service_made_it(gke_api: GkeStub):
    from infra import gke, gke_requests

    gke_api.speed = 1e6
    service = gke.GkeNodePools(gke_requests.GkeCluster("proj-7", "europe-west4", "tuning"), gke.client(gke_api.url))
    made = service.ensure(NodePool("trials", GKE, machine_types=("e2-standard-4",), max_nodes=2), owner="uid-7")
    assert service.wait(made.operation, interval=0.01, timeout=30).done
    gke_api.requests.clear()
    flags = [*GKE_FLAGS, "--endpoint", gke_api.url, "--max-nodes", "6"]
    plan = provision("gke", "up", *flags, "--dry-run")
    assert plan.returncode == 1 and json.loads(plan.stdout)["action"] == "refuse", plan.stderr
    for result in (plan, provision("gke", "up", *flags)):
        assert result.stderr.endswith(f"error: --pool: node pool trials {REFUSED.format(uid='uid-7')}\n"), result.stderr
    assert provision("gke", "up", *flags).returncode == 1
    assert gke_api.calls("POST", ":setAutoscaling") == []
    assert gke_api.pools["trials"]["autoscaling"]["totalMaxNodeCount"] == 2


def test_eks_up_refuses_a_studys_own_group_and_leaves_it_as_the_service_made_it(aws: dict[str, str]):
    from infra import eks_requests
    from infra.eks import EksNodePools

    subnets = eks_cluster(aws, "studies")
    clients = [boto3.client(service, endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="eu-west-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")
               for service in ("eks", "autoscaling", "ec2")]
    service = EksNodePools(eks_requests.EksCluster("studies", tuple(subnets), ROLE), *clients)
    made = service.ensure(NodePool("trials", EKS, machine_types=("m5.xlarge", "m5a.xlarge"), max_nodes=2),
                          owner="uid-8")
    assert service.wait(made.operation, interval=0.01, timeout=30).done
    flags = ["eks", "up", "--cluster", "studies", "--nodegroup", "trials", "--subnets", ",".join(subnets),
             "--node-role", ROLE, "--instance-types", "m5.xlarge,m5a.xlarge", "--max-nodes", "6"]
    plan = provision(*flags, "--dry-run", env=aws)
    assert plan.returncode == 1 and json.loads(plan.stdout)["action"] == "refuse", plan.stderr
    for result in (plan, provision(*flags, env=aws)):
        assert result.stderr.endswith(f"error: --nodegroup: node pool trials {REFUSED.format(uid='uid-8')}\n"), (
            result.stderr)
    group = aws_client("eks", aws).describe_nodegroup(clusterName="studies", nodegroupName="trials")["nodegroup"]
    assert (group["status"], group["scalingConfig"]["maxSize"]) == ("ACTIVE", 2)
