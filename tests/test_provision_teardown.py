"""``python -m infra.provision gke|eks down`` deletes the pools ``up`` made, which carry its mark
(``katuna-made-by=infra-provision``: a GKE resource label, an EKS tag), and by default no other:
not a pool made by hand or by an ``up`` from before pools were marked, nor the pool the service
made for a study, each deleted only with ``--any-katuna-pool``. Against the loopback GKE API
and moto's server, with the service's own adapters making a study's pool."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import moto_eks
import pytest
from gke_stub import GkeStub
from moto_eks_ec2 import DENIED_USER
from test_provision_permissions import EKS_GRANT
from test_provision_script import GKE_FLAGS, ROLE, aws_client, eks_cluster, provision, replaced, served

from functions.core.nodepool import EKS, GKE, NodePool

pytestmark = pytest.mark.slow

TAINT = [{"key": "katuna.dev/trial", "value": "true", "effect": "NO_SCHEDULE"}]


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, str]]:
    """moto's server on which EKS's minutes pass in a blink: the environment that reaches it."""
    with served("1000000") as env:
        yield env


def test_gke_down_deletes_the_pool_up_made_and_one_made_otherwise_only_when_asked(gke_api: GkeStub):
    gke_api.speed = 1e6
    flags = [*GKE_FLAGS, "--endpoint", gke_api.url]
    assert provision("gke", "up", *flags).returncode == 0
    assert gke_api.pools["trials"]["config"]["resourceLabels"] == {"katuna-made-by": "infra-provision"}
    gke_api.pools["older"] = {"name": "older", "locations": ["europe-west4-a"], "status": "RUNNING",
                              "config": {"machineType": "e2-standard-4", "spot": True, "taints": TAINT},
                              "autoscaling": {"enabled": True, "totalMaxNodeCount": 3}}
    refused = provision("gke", "down", *replaced(flags, "--pool", "older"))
    assert (refused.returncode, refused.stdout) == (1, ""), refused.stderr
    assert refused.stderr == (
        "error: --pool: node pool older was not made by `up`: it lacks the resource label "
        "katuna-made-by=infra-provision `up` gives the pools it creates (one made by hand, or by `up` before it "
        "marked them); `down` deletes only pools `up` made: give --any-katuna-pool to delete this one, which carries "
        "katuna's trial taint katuna.dev/trial=true:NoSchedule\n"), refused.stderr
    assert gke_api.calls("DELETE") == [] and gke_api.pools["older"]["status"] == "RUNNING"
    asked = provision("gke", "down", *replaced(flags, "--pool", "older"), "--any-katuna-pool")
    assert asked.returncode == 0 and json.loads(asked.stdout)["state"] == "ABSENT", asked.stderr
    down = provision("gke", "down", *flags)
    assert down.returncode == 0 and gke_api.pools == {}, down.stderr


def test_gke_down_leaves_a_studys_own_pool_unless_asked(gke_api: GkeStub):
    from infra import gke, gke_requests

    gke_api.speed = 1e6
    service = gke.GkeNodePools(gke_requests.GkeCluster("proj-7", "europe-west4", "tuning"), gke.client(gke_api.url))
    made = service.ensure(NodePool("katuna-study", GKE, machine_types=("e2-standard-4",), max_nodes=2), owner="uid-7")
    assert service.wait(made.operation, interval=0.01, timeout=30).done
    flags = [*replaced(GKE_FLAGS, "--pool", "katuna-study"), "--endpoint", gke_api.url]
    for dry_run in ((), ("--dry-run",)):
        refused = provision("gke", "down", *flags, *dry_run)
        assert refused.returncode == 1 and refused.stderr.startswith(
            "error: --pool: node pool katuna-study is the one katuna made for a study (katuna-study-uid uid-7): the "
            "service deletes it once no running study uses it, and makes it again while one does"), refused.stderr
        assert "--any-katuna-pool" in refused.stderr and gke_api.calls("DELETE") == []
    asked = provision("gke", "down", *flags, "--any-katuna-pool")
    assert asked.returncode == 0 and gke_api.pools == {}, asked.stderr


def test_eks_down_deletes_the_group_up_made_and_others_only_when_asked(aws: dict[str, str]):
    subnets = eks_cluster(aws, "marks")
    eks = aws_client("eks", aws)
    flags = ["--cluster", "marks", "--nodegroup"]
    made = provision("eks", "up", *flags, "trials", "--subnets", ",".join(subnets), "--node-role", ROLE,
                     env=aws)
    assert made.returncode == 0, made.stderr
    tags = eks.describe_nodegroup(clusterName="marks", nodegroupName="trials")["nodegroup"]["tags"]
    assert tags["katuna-made-by"] == "infra-provision"
    eks.create_nodegroup(**moto_eks.by_hand({"clusterName": "marks", "nodegroupName": "older", "subnets": subnets,
                                             "nodeRole": ROLE, "taints": TAINT}))
    from infra import eks_requests
    from infra.eks import EksNodePools

    clients = [boto3.client(service, endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="eu-west-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")
               for service in ("eks", "autoscaling", "ec2")]
    service = EksNodePools(eks_requests.EksCluster("marks", tuple(subnets), ROLE), *clients)
    service.ensure(NodePool("katuna-study", EKS, machine_types=("m5.xlarge",), max_nodes=2), owner="uid-8")
    for name, words in (("older", "node pool older was not made by `up`: it lacks the tag katuna-made-by="),
                        ("katuna-study", "node pool katuna-study is the one katuna made for a study")):
        refused = provision("eks", "down", *flags, name, env=aws)
        assert refused.returncode == 1 and refused.stderr.startswith(f"error: --nodegroup: {words}"), refused.stderr
        assert "--any-katuna-pool" in refused.stderr
    assert set(eks.list_nodegroups(clusterName="marks")["nodegroups"]) == {"trials", "older", "katuna-study"}
    for name in ("older", "katuna-study"):
        asked = provision("eks", "down", *flags, name, "--any-katuna-pool", env=aws)
        assert asked.returncode == 0, asked.stderr
    down = provision("eks", "down", *flags, "trials", env=aws)
    assert down.returncode == 0 and eks.list_nodegroups(clusterName="marks")["nodegroups"] == [], down.stderr


def test_eks_down_of_an_absent_group_plans_and_tells_the_launch_templates_it_deletes(aws: dict[str, str]):
    """A create that stopped after the group's launch template (interrupted, or refused until
    its ``--timeout``) leaves the template; ``down`` deleted it saying "nothing to change", and
    its plan said "nothing to delete". Another group's template, and one of a group of the same
    name in another cluster, stay."""
    from infra import eks_requests
    from infra.eks import EksNodePools

    clients = [boto3.client(service, endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="eu-west-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")
               for service in ("eks", "autoscaling", "ec2")]
    for cluster in ("leftover", "elsewhere"):
        subnets = eks_cluster(aws, cluster)
        pools = EksNodePools(eks_requests.EksCluster(cluster, tuple(subnets), ROLE), *clients)
        for group in ("trials", "other"):
            pools.templates.make(NodePool(group, EKS, machine_types=("m5.xlarge", "m5a.xlarge"), max_nodes=3))
    ec2 = aws_client("ec2", aws)

    def templates() -> set[str]:
        return {t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]}

    before = templates()
    left = {t["LaunchTemplateName"]: t["LaunchTemplateId"] for t in ec2.describe_launch_templates(Filters=[
        {"Name": "tag:katuna.dev/cluster", "Values": ["leftover"]},
        {"Name": "tag:katuna.dev/pool", "Values": ["trials"]}])["LaunchTemplates"]}
    assert len(left) == 1
    [(name, template_id)] = left.items()
    flags = ["eks", "down", "--cluster", "leftover", "--nodegroup", "trials"]
    plan = provision(*flags, "--dry-run", env=aws)
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout) == {
        "pool": "trials", "found": None, "action": "delete", "call": "delete_launch_template",
        "requests": [{"LaunchTemplateId": template_id}],
        "summary": f"it is absent: delete the launch template katuna made for it ({name})"}
    assert templates() == before, "a plan deletes nothing"
    down = provision(*flags, env=aws)
    assert (down.returncode, json.loads(down.stdout)) == (0, {"pool": "trials", "state": "ABSENT"}), down.stderr
    assert down.stderr == f"node pool trials: it is absent; deleted the launch template katuna made for it: {name}\n"
    assert templates() == before - {name}
    again = provision(*flags, "--dry-run", env=aws)
    assert json.loads(again.stdout)["action"] == "nothing to delete"
    assert provision(*flags, env=aws).stderr == "node pool trials: it is absent: nothing to delete\n"


def test_eks_down_tells_the_launch_template_it_deletes_after_the_group(aws: dict[str, str]):
    """``down`` of a group deletes the launch template katuna made for it once the group is
    gone, and says so, as it does of an absent group's."""
    subnets = eks_cluster(aws, "templates")
    made = provision("eks", "up", "--cluster", "templates", "--nodegroup", "trials", "--subnets", ",".join(subnets),
                     "--node-role", ROLE, env=aws)
    assert made.returncode == 0, made.stderr
    template = aws_client("eks", aws).describe_nodegroup(clusterName="templates", nodegroupName="trials")[
        "nodegroup"]["launchTemplate"]["name"]
    down = provision("eks", "down", "--cluster", "templates", "--nodegroup", "trials", env=aws)
    assert (down.returncode, json.loads(down.stdout)) == (0, {"pool": "trials", "state": "ABSENT"}), down.stderr
    assert down.stderr.endswith(f"node pool trials: deleted; deleted the launch template katuna made for it: "
                                f"{template}\n"), down.stderr


def test_eks_down_refused_the_launch_template_says_the_group_is_deleted_and_what_to_grant():
    """Where the script's identity may not ``ec2:DeleteLaunchTemplate``, ``down`` says the group
    is deleted and which template is left, refused, with the grant: no "could not be followed",
    nothing said to go on in the cloud. ``down`` again says the same of the template alone."""
    with served("1000000", deny_template_deletes=True) as denied:
        subnets = eks_cluster(denied, "templates")
        made = provision("eks", "up", "--cluster", "templates", "--nodegroup", "trials", "--subnets",
                         ",".join(subnets), "--node-role", ROLE, env=denied)
        assert made.returncode == 0, made.stderr
        eks, ec2 = aws_client("eks", denied), aws_client("ec2", denied)
        template = eks.describe_nodegroup(clusterName="templates", nodegroupName="trials")["nodegroup"][
            "launchTemplate"]["name"]
        flags = ["eks", "down", "--cluster", "templates", "--nodegroup", "trials"]
        refused = provision(*flags, env=denied)
        assert (refused.returncode, refused.stdout) == (1, ""), refused.stderr
        assert eks.list_nodegroups(clusterName="templates")["nodegroups"] == [], refused.stderr
        assert refused.stderr.endswith(
            f"\nerror: node pool trials: node group trials is deleted, but not the launch template katuna made for "
            f"it ({template}): EKS refused the request: UnauthorizedOperation: You are not authorized to perform "
            f"this operation. User: {DENIED_USER} is not authorized to perform: ec2:DeleteLaunchTemplate on "
            f"resource: launch-template/{ec2.describe_launch_templates()['LaunchTemplates'][0]['LaunchTemplateId']} "
            f"because no identity-based policy allows the ec2:DeleteLaunchTemplate action.; {EKS_GRANT}\n"), (
            refused.stderr)
        assert template in {t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]}
        again = provision(*flags, env=denied)
        assert again.returncode == 1 and "ec2:DeleteLaunchTemplate" in again.stderr, again.stderr
