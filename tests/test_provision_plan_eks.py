"""``python -m infra.provision eks up|down --dry-run`` against moto's server: a plan read from
EKS, EC2 and Auto Scaling with read-only calls alone (moto's recorder holds every request the
plan sent), saying what the command would do, refused in the command's own words."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse
from urllib.request import Request, urlopen

import moto_eks
import pytest
from botocore.exceptions import ClientError
from test_provision_script import ROLE, aws_client, provision, provisioned, served

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """moto's server, EKS's minutes passing in a blink, with its recorder."""
    with served("1000000", tmp_path_factory.mktemp("moto") / "recording") as env:
        yield env


def recorder(env: dict[str, str], action: str) -> str:
    with urlopen(Request(f"{env['AWS_ENDPOINT_URL']}/moto-api/recorder/{action}",  # noqa: S310 (loopback)
                         method="GET" if action == "download-recording" else "POST"), timeout=30) as answer:
        return answer.read().decode()


def calls(env: dict[str, str]) -> list[str]:
    """The requests recorded since the last reset: EKS's by method and path, EC2's and Auto
    Scaling's by their action."""
    found = []
    for line in recorder(env, "download-recording").splitlines():
        entry = json.loads(line)
        body = base64.b64decode(entry["body"]).decode() if entry.get("body_encoded") else entry.get("body") or ""
        action = parse_qs(body).get("Action")
        found.append(action[0] if action else f"{entry['method']} {urlparse(entry['url']).path}")
    return found


def read_only(found: list[str]) -> bool:
    return all(call.startswith(("GET ", "Describe")) for call in found)


def planned(env: dict[str, str], command: str, *flags: str) -> tuple[int, dict | None, str, list[str]]:
    """The plan's exit code, JSON, stderr and the requests it sent."""
    recorder(env, "reset-recording")
    recorder(env, "start-recording")
    try:
        result = provision("eks", command, *flags, "--dry-run", env=env)
    finally:
        recorder(env, "stop-recording")
    return result.returncode, json.loads(result.stdout) if result.stdout else None, result.stderr, calls(env)


def test_eks_up_plan_says_create_raise_tags_or_nothing_reading_alone(recorded: dict[str, str]):
    subnets = moto_eks.network(aws_client("ec2", recorded))
    eks = aws_client("eks", recorded)
    eks.create_cluster(name="planned", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(subnets)})
    up = ["up", "--cluster", "planned", "--nodegroup", "trials", "--subnets", ",".join(subnets), "--node-role", ROLE]
    code, plan, said, sent = planned(recorded, *up, "--max-nodes", "5", "--price-per-node-hour", "0.1")
    assert (code, plan["action"], plan["call"], plan["first"]["call"]) == (0, "create", "create_nodegroup",
                                                                           "create_launch_template"), said
    assert plan["request"]["tags"]["katuna-made-by"] == "infra-provision"
    assert plan["worstCase"] == {"nodes": 5, "machineTypes": ["m5.xlarge", "m5a.xlarge", "m6i.xlarge"],
                                 "capacity": "spot"} and plan["cost"]["perHour"] == 0.5
    assert "at most 5 spot nodes of m5.xlarge, m5a.xlarge or m6i.xlarge at once, at most 0.5 an hour" in said, said
    assert read_only(sent) and "DescribeSubnets" in sent and "DescribeLaunchTemplates" in sent, sent
    assert eks.list_nodegroups(clusterName="planned")["nodegroups"] == []
    provisioned("eks", *up, "--max-nodes", "5", env=recorded)

    code, plan, said, sent = planned(recorded, *up, "--max-nodes", "5")
    assert (code, plan["action"], read_only(sent)) == (0, "nothing to change", True), (said, sent)
    code, plan, said, sent = planned(recorded, *up, "--max-nodes", "9")
    assert (code, plan["action"], plan["call"]) == (0, "raise maximum", "update_nodegroup_config"), said
    assert plan["request"]["scalingConfig"] == {"minSize": 0, "maxSize": 9} and read_only(sent), sent

    group = eks.describe_nodegroup(clusterName="planned", nodegroupName="trials")["nodegroup"]
    asg = group["resources"]["autoScalingGroups"][0]["name"]
    taint = "k8s.io/cluster-autoscaler/node-template/taint/katuna.dev/trial"
    aws_client("autoscaling", recorded).delete_tags(
        Tags=[{"ResourceId": asg, "ResourceType": "auto-scaling-group", "Key": taint}])
    code, plan, said, sent = planned(recorded, *up, "--max-nodes", "5")
    assert (code, plan["action"], plan["call"]) == (0, "write autoscaler tags", "create_or_update_tags"), said
    assert [tag["Key"] for tag in plan["request"]["Tags"]] == [taint] and read_only(sent), sent

    other = "arn:aws:iam::123456789012:role/other-nodes"
    real = provision("eks", *up[:-1], other, env=recorded)
    code, plan, said, sent = planned(recorded, *up[:-1], other)
    assert (code, real.returncode, said, plan["action"]) == (1, 1, real.stderr, "refuse"), said
    assert said.startswith("error: --node-role: node pool trials exists with node role ") and read_only(sent)


def test_eks_down_plan_says_delete_or_refuse_reading_alone(recorded: dict[str, str]):
    subnets = moto_eks.network(aws_client("ec2", recorded))
    eks = aws_client("eks", recorded)
    eks.create_cluster(name="teardown", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(subnets)})
    down = ["down", "--cluster", "teardown", "--nodegroup", "trials"]
    code, plan, said, sent = planned(recorded, *down)
    assert (code, plan["action"], read_only(sent)) == (0, "nothing to delete", True), said
    provisioned("eks", "up", "--cluster", "teardown", "--nodegroup", "trials", "--subnets", ",".join(subnets),
                "--node-role", ROLE, env=recorded)
    code, plan, said, sent = planned(recorded, *down)
    assert (code, plan["action"], plan["call"]) == (0, "delete", "delete_nodegroup"), said
    assert plan["request"] == {"clusterName": "teardown", "nodegroupName": "trials"} and read_only(sent), sent
    assert said == ("plan: node pool trials: delete it, then the launch templates katuna made for it, and wait until "
                    "it is gone\n"), said
    eks.create_nodegroup(**moto_eks.by_hand({
        "clusterName": "teardown", "nodegroupName": "handmade", "subnets": list(subnets), "nodeRole": ROLE,
        "taints": [{"key": "katuna.dev/trial", "value": "true", "effect": "NO_SCHEDULE"}]}))
    real = provision("eks", *down[:-1], "handmade", env=recorded)
    code, plan, said, sent = planned(recorded, *down[:-1], "handmade")
    assert (code, real.returncode, said, plan["action"]) == (1, 1, real.stderr, "refuse"), said
    assert "--any-katuna-pool" in said and read_only(sent), sent
    code, plan, said, sent = planned(recorded, *down[:-1], "handmade", "--any-katuna-pool")
    assert (code, plan["action"]) == (0, "delete") and read_only(sent), said
    assert {group for group in eks.list_nodegroups(clusterName="teardown")["nodegroups"]} == {"trials", "handmade"}


@pytest.mark.parametrize("kind, refused", [
    ("m8id.xlarge", "error: --instance-types: EC2 does not offer instance type m8id.xlarge in the availability zone "
                     "of subnet {0} (in eu-west-1a), so EKS refuses the node group: it offers it "
                     "in eu-west-1b, eu-west-1c of this region; give subnets in those zones only, or other instance types\n"),
    ("m5.xlargee", "error: --instance-types: EC2 offers no instance type m5.xlargee in any availability zone of this "
                   "region (a misspelt name, or a type this region does not have): expected instance types `aws ec2 "
                   "describe-instance-type-offerings --location-type availability-zone` lists here\n"),
], ids=["not in the subnets' zones", "in no zone"])
def test_eks_up_plan_refuses_instance_types_ec2_does_not_offer_in_the_subnets_zones_as_up_is_refused(
        recorded: dict[str, str], kind: str, refused: str):
    """A plan read EC2's subnets but not which instance types their zones offer: it said create
    where ``up`` is refused (EKS's ``InvalidRequestException``: the type is not supported in a
    subnet's Availability Zone), or creates a group that fails (a type the region has not)."""
    subnets = moto_eks.network(aws_client("ec2", recorded))
    eks = aws_client("eks", recorded)
    name = f"offered-{kind.replace('.', '-')}"
    eks.create_cluster(name=name, roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(subnets)})
    up = ["up", "--cluster", name, "--nodegroup", "trials", "--subnets", ",".join(subnets), "--node-role", ROLE,
          "--instance-types", f"{kind},m5.xlarge"]
    code, plan, said, sent = planned(recorded, *up)
    assert (code, (plan or {}).get("action"), said) == (1, "refuse", refused.format(*subnets)), said
    assert read_only(sent) and "DescribeInstanceTypeOfferings" in sent, sent
    real = provision("eks", *up, env=recorded)
    assert (real.returncode, real.stderr) == (1, said)
    with pytest.raises(ClientError, match=r"not supported in your requested Availability Zone \(eu-west-1a\)|do not exist"):
        eks.create_nodegroup(clusterName=name, nodegroupName="by-hand", subnets=list(subnets), nodeRole=ROLE,
                             instanceTypes=[kind])
    assert eks.list_nodegroups(clusterName=name)["nodegroups"] == []
