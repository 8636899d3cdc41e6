"""The EKS adapter: boto3 against moto (taught EKS's ``DescribeUpdate`` and its node groups'
minutes ``CREATING``, ``DELETING`` and ``UPDATING``, tests/moto_eks.py), and botocore's Stubber
for what that stand-in does not model (a creation failed for other causes, an Update failed,
throttling). What every cloud's node pools do is
checked by the contract in tests/test_conformance_nodepools.py."""

from __future__ import annotations

import os
import re
import socket
import sys
from dataclasses import replace
from pathlib import Path

import boto3
import moto_eks
import moto_eks_iam
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from conftest import study_definition
from http_helpers import warm_runner
from moto.eks.models import eks_backends
from moto_cluster import fake_credentials, make_cluster
from moto_eks_ec2 import eks_tags
from moto_world import Baseline
from waiting import eventually
from warm_katuna import run as warm_run

from functions.core.eks_ami import ami_type
from functions.core.errors import InvalidStudy, TemporaryError
from functions.core.limits import EksQuotas, Limits
from functions.core.nodepool import NodePool, NodePoolFailed, OperationStatus, PoolChange
from functions.core.validate import parse_study
from infra import eks, eks_clients, eks_requests

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/katuna-nodes"
TEMPLATE = "k8s.io/cluster-autoscaler/node-template"
UPDATE = re.compile(r"update:katuna-digits:[0-9a-f-]{36}")

moto_eks.teach()


@pytest.fixture
def cluster(monkeypatch) -> eks_requests.EksCluster:
    fake_credentials(monkeypatch, REGION)
    return eks_requests.EksCluster("tuning", ("subnet-0a1b2c3d", "subnet-4e5f6a7b"), ROLE)


@pytest.fixture(scope="module")
def baseline() -> Baseline[tuple[str, ...]]:
    """The cluster in moto, with private subnets of its VPC for its node groups, made once for the
    module; the subnets."""
    with pytest.MonkeyPatch.context() as patch:
        fake_credentials(patch, REGION)
        return Baseline(lambda: make_cluster(REGION, ROLE))


@pytest.fixture
def aws(cluster: eks_requests.EksCluster, baseline: Baseline[tuple[str, ...]]):
    """The cluster in moto as :func:`baseline` made it, whatever the tests before wrote."""
    with baseline.restored() as subnets:
        yield replace(cluster, subnets=subnets)


@pytest.fixture
def pools(aws: eks_requests.EksCluster) -> eks.EksNodePools:
    return eks.EksNodePools(aws, *eks_clients.clients(REGION))


def spot_pool(**overrides) -> NodePool:
    fields = dict(name="katuna-digits", provider="eks", capacity="spot", machine_types=("m5.xlarge", "m5a.xlarge"),
                  max_nodes=6, disk_size_gb=80, labels=(("team", "vision"),))
    return NodePool(**(fields | overrides))


def group(pools: eks.EksNodePools, name: str = "katuna-digits") -> dict:
    return pools.eks.describe_nodegroup(clusterName="tuning", nodegroupName=name)["nodegroup"]


@pytest.mark.slow
def test_a_spot_node_group_scales_from_zero_with_labels_taint_and_subnets(aws, pools):
    change = pools.ensure(spot_pool(), owner="5e0f9b2c7d41")
    assert change == PoolChange("create:katuna-digits", created=True, owned=True)
    found = group(pools)
    assert found["tags"]["katuna-study-uid"] == "5e0f9b2c7d41", "the study whose request created it"
    assert found["capacityType"] == "SPOT"
    assert found["scalingConfig"] == {"minSize": 0, "maxSize": 6, "desiredSize": 0}
    assert found["instanceTypes"] == ["m5.xlarge", "m5a.xlarge"] and "diskSize" not in found, "in its launch template"
    assert found["labels"] == {"team": "vision", "katuna.dev/pool": "katuna-digits"}
    assert found["taints"] == [{"key": "katuna.dev/trial", "value": "true", "effect": "NO_SCHEDULE"}]
    assert found["subnets"] == list(aws.subnets) and found["nodeRole"] == ROLE


@pytest.mark.slow
def test_a_disk_smaller_than_the_amis_root_snapshot_is_refused_by_eks_and_by_katuna_at_submission(aws, pools):
    with pytest.raises(NodePoolFailed, match="EKS refused the request: InvalidParameterException: Volume of size 16GB "
                                             "is smaller than snapshot"):
        pools.ensure(spot_pool(disk_size_gb=16), owner="5e0f9b2c7d41")
    definition = study_definition(name="small-disk", nodePool={"provider": "eks", "diskSizeGb": 16})
    with pytest.raises(InvalidStudy) as refused:
        parse_study(definition)
    assert [(p.path, p.message) for p in refused.value.problems] == [(
        "nodePool.diskSizeGb", "expected at least 20 for an EKS node group: EKS refuses a disk smaller than its "
                               "Amazon Linux 2023 AMIs' root snapshot (20 GiB)")]
    definition["nodePool"] = {"provider": "gke", "diskSizeGb": 16}
    assert parse_study(definition).node_pool.disk_size_gb == 16, "GKE takes 10 GiB and more"
    assert pools.ensure(spot_pool(disk_size_gb=20), owner="5e0f9b2c7d41").created


@pytest.mark.slow
def test_a_disk_larger_than_ec2s_largest_boot_volume_is_refused_by_eks_and_by_katuna_at_submission(aws, pools):
    with pytest.raises(NodePoolFailed, match="EKS refused the request: InvalidParameterException: Volume of size "
                                             "16385GiB is too large"):
        pools.ensure(spot_pool(disk_size_gb=16385), owner="5e0f9b2c7d41")
    definition = study_definition(name="huge-disk", nodePool={"provider": "eks", "diskSizeGb": 16385})
    with pytest.raises(InvalidStudy) as refused:
        parse_study(definition)
    assert [(p.path, p.message) for p in refused.value.problems] == [(
        "nodePool.diskSizeGb", "expected at most 16384 for an EKS node group: EC2 launches no node with a gp2 or gp3 "
                               "boot volume above 16,384 GiB")]
    definition["nodePool"] = {"provider": "eks", "diskSizeGb": 16384}
    assert parse_study(definition, Limits(pool_disk_gb=16384)).node_pool.disk_size_gb == 16384
    assert pools.ensure(spot_pool(disk_size_gb=16384), owner="5e0f9b2c7d41").created


def in_subnets(pools: eks.EksNodePools, subnets: tuple[str, ...], cluster: str = "tuning") -> eks.EksNodePools:
    """The adapter of ``cluster`` told to create its node groups in ``subnets``."""
    return eks.EksNodePools(eks_requests.EksCluster(cluster, subnets, ROLE), pools.eks, pools.autoscaling, pools.ec2)


def test_subnets_that_cannot_hold_a_node_group_are_refused_naming_the_setting_and_nothing_is_created(aws, pools):
    """A subnet EC2 does not have, one of another VPC, or a public one that gives nodes no
    address: refused before EKS is asked, naming KATUNA_EKS_SUBNETS and what was expected."""
    ec2 = pools.ec2
    elsewhere, public = moto_eks.network(ec2), moto_eks.network(ec2, public=True)
    pools.eks.create_cluster(name="edge", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(public)})
    vpc = pools.eks.describe_cluster(name="tuning")["cluster"]["resourcesVpcConfig"]["vpcId"]
    expected = f"expected subnet ids of the VPC {vpc} of the EKS cluster tuning"
    for subnets, cluster, words in (
            ((aws.subnets[0], "subnet-0bad"), "tuning", f"EC2 has no subnet subnet-0bad in this region; {expected}"),
            ((aws.subnets[0], elsewhere[0]), "tuning",
             f"subnet {elsewhere[0]} (in {ec2.describe_subnets(SubnetIds=[elsewhere[0]])['Subnets'][0]['VpcId']}) "
             f"is not in the cluster's VPC; {expected}"),
            (public, "edge", f"subnet {', '.join(public)} is public (its route table sends traffic to an internet "
                             "gateway) but does not assign public IPv4 addresses on launch")):
        with pytest.raises(NodePoolFailed) as refused:
            in_subnets(pools, subnets, cluster).ensure(spot_pool())
        assert refused.value.field == "KATUNA_EKS_SUBNETS" and refused.value.reason.startswith(words), refused.value
        assert pools.eks.list_nodegroups(clusterName=cluster)["nodegroups"] == [], "nothing created"


def test_a_node_role_eks_refuses_is_named_as_the_setting_to_fix(aws, pools):
    """A node role IAM does not have, or one EC2 may not assume: EKS refuses the group, and the
    refusal names KATUNA_EKS_NODE_ROLE with EKS's words; no group is created. The role the
    operator makes (trusting EC2) is taken."""
    iam = boto3.client("iam", region_name=REGION)
    eks_only = moto_eks_iam.node_role(iam, "eks-only", {**moto_eks_iam.TRUST, "Statement": [
        {**moto_eks_iam.TRUST["Statement"][0], "Principal": {"Service": "eks.amazonaws.com"}}]})
    for role, words in ((eks_only, "Following required service principals [ec2.amazonaws.com] were not found in "
                                   f"the trust relationships of nodeRole {eks_only}"),
                        ("arn:aws:iam::123456789012:role/gone", "The role with name gone cannot be found.")):
        with pytest.raises(NodePoolFailed) as refused:
            eks.EksNodePools(replace(aws, node_role=role), pools.eks, pools.autoscaling, pools.ec2).ensure(spot_pool())
        assert refused.value.field == "KATUNA_EKS_NODE_ROLE", refused.value
        assert refused.value.reason == f"EKS refused the request: InvalidParameterException: {words}"
        assert pools.eks.list_nodegroups(clusterName="tuning")["nodegroups"] == [], "nothing created"
    assert pools.ensure(spot_pool()).created, "the role the operator made, which EC2 may assume"


def test_a_group_that_exists_is_adopted_whatever_the_subnets_since_none_is_created(aws, pools):
    pools.ensure(spot_pool())
    moto_eks.minutes_pass()
    assert in_subnets(pools, ("subnet-0bad",)).ensure(spot_pool()).operation is None


def test_public_subnets_that_assign_addresses_and_private_ones_hold_node_groups(aws, pools):
    addressed = moto_eks.network(pools.ec2, public=True, addresses=True)
    pools.eks.create_cluster(name="edge", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(addressed)})
    edge = in_subnets(pools, addressed, "edge")
    assert edge.ensure(spot_pool()).created
    assert edge.check("create:katuna-digits") == OperationStatus(False), "creating"
    moto_eks.minutes_pass()
    assert edge.check("create:katuna-digits") == OperationStatus(True), "active, its Auto Scaling group tagged"


def test_the_stand_in_holds_subnets_to_ec2_as_eks_does(aws, pools):
    """moto alone takes any subnet: EKS refuses one EC2 does not have or outside the cluster's
    VPC, and fails a group in public subnets that give no address once it has accepted it."""
    request = eks_requests.create_request(aws, spot_pool())
    for subnets in (["subnet-0bad"], list(moto_eks.network(pools.ec2))):
        assert refusal(lambda bad=subnets: pools.eks.create_nodegroup(**{**request, "subnets": bad})) == {
            "code": "InvalidParameterException", "status": 400, "clusterName": "tuning",
            "nodegroupName": "katuna-digits"}
    assert refusal(lambda: pools.eks.create_cluster(name="x", roleArn=ROLE, resourcesVpcConfig={
        "subnetIds": ["subnet-0bad"]}))["code"] == "InvalidParameterException"
    public = moto_eks.network(pools.ec2, public=True)
    pools.eks.create_cluster(name="edge", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(public)})
    pools.eks.create_nodegroup(**{**moto_eks.by_hand(request), "clusterName": "edge", "subnets": list(public)})
    moto_eks.minutes_pass()
    status = in_subnets(pools, public, "edge").check("create:katuna-digits")
    assert status.done and status.error.startswith(
        "node group katuna-digits failed to create: Ec2SubnetInvalidConfiguration: One or more Amazon EC2 Subnets")


@pytest.mark.parametrize("changes", [
    {"nodegroupName": "bad name!"}, {"nodegroupName": "-katuna"}, {"nodegroupName": "k" * 64},
    {"labels": {"example.com/" + "k" * 58: "v"}},
    {"taints": [{"key": "k" * 64, "value": "true", "effect": "NO_SCHEDULE"}]},
    {"tags": {f"t{n}": "v" for n in range(51)}}, {"tags": {"aws:owner": "x"}},
    {"scalingConfig": {"minSize": 0, "maxSize": 3}},
], ids=["name-space", "name-dash", "name-long", "label-key-long", "taint-key-long", "tags-51", "tag-aws", "scaling-part"])
def test_the_stand_in_refuses_what_eks_api_model_bounds(aws, pools, changes: dict):
    """Each request is katuna's own but for one field past what EKS's API model allows."""
    request = {**eks_requests.create_request(aws, spot_pool()), **changes}
    assert refusal(lambda: pools.eks.create_nodegroup(**request))["code"] == "InvalidParameterException"
    assert pools.eks.list_nodegroups(clusterName="tuning")["nodegroups"] == []


def test_the_token_names_the_change_the_same_when_retried_and_new_for_the_next_one(aws):
    """A scaling request has the same content whichever study sends it, and a create after a
    delete the same as the first: only the change's id (its pool use, its request number) may
    tell EKS whether a call is a retry."""
    first, retried = (eks_requests.create_request(aws, spot_pool(), request_id="5e0f9b2c7d41/0") for _ in range(2))
    assert first == retried and len(first["clientRequestToken"]) == 36, "a retried create is the same create"
    again = eks_requests.create_request(aws, spot_pool(), request_id="7a1c3e5f9b2d/0")
    assert again["clientRequestToken"] != first["clientRequestToken"], "create, delete, create: a new create"
    study_a, study_b = (eks_requests.scaling_request(aws, "shared", 1, 8, request_id=f"{uid}/0")
                        for uid in ("5e0f9b2c7d41", "7a1c3e5f9b2d"))
    assert study_a["clientRequestToken"] != study_b["clientRequestToken"], "the same raise by another study"
    assert eks_requests.scaling_request(aws, "shared", 0, 8, request_id="5e0f9b2c7d41/1")["clientRequestToken"] not in (
        study_a["clientRequestToken"], first["clientRequestToken"]), "the same study's next change"
    steps = [eks_requests.scaling_request(aws, "shared", 0, high, 6, request_id="5e0f9b2c7d41/2") for high in (6, 2)]
    assert steps[0]["clientRequestToken"] != steps[1]["clientRequestToken"], "a release's two steps: two updates"
    assert "clientRequestToken" not in eks_requests.create_request(aws, spot_pool()), "without an id botocore makes one"
    assert eks_requests.create_request(aws, spot_pool(capacity="on-demand"))["capacityType"] == "ON_DEMAND"


def test_a_retried_change_sends_its_token_again_and_the_next_change_a_new_one(cluster):
    """What boto3 sends: the create retried after a throttled first try carries the first try's
    token; the raise that follows, another."""
    pools, stubber = stubbed(cluster)
    sent: list[str] = []
    for call in ("CreateNodegroup", "UpdateNodegroupConfig"):
        pools.eks.meta.events.register(f"before-parameter-build.eks.{call}", lambda params, **_: sent.append(
            params.get("clientRequestToken")))
    before_create(pools, stubber)
    stubber.add_client_error("create_nodegroup", "ThrottlingException", "Rate exceeded", 400)
    before_create(pools, stubber)
    stubber.add_client_error("create_nodegroup", "ResourceInUseException", "NodeGroup already exists", 409)
    stubber.add_response("describe_nodegroup", _described("ACTIVE", scalingConfig={"minSize": 0, "maxSize": 3},
                                                          taints=[TAINT], labels={"team": "vision"}), NAMES)
    stubber.add_response("update_nodegroup_config", {"update": {"id": UPDATE_ID, "status": "InProgress"}})
    with stubber:
        with pytest.raises(TemporaryError, match="Rate exceeded"):
            pools.ensure(spot_pool(), request_id="5e0f9b2c7d41/0")
        change = pools.ensure(spot_pool(), request_id="5e0f9b2c7d41/0")
    assert change.operation == f"update:katuna-digits:{UPDATE_ID}"
    assert sent[0] == sent[1] and len(sent[0]) == 36, "the retried create is the same create to EKS"
    assert sent[2] not in (None, sent[0]), "the raise is a change of its own"


@pytest.mark.parametrize("types,ami", [
    (("g5.xlarge", "g4dn.xlarge"), "AL2023_x86_64_NVIDIA"),
    (("m7g.xlarge", "c6gn.xlarge"), "AL2023_ARM_64_STANDARD"),
    (("inf2.xlarge", "inf1.xlarge"), "AL2023_x86_64_NEURON"),
    (("m5.xlarge", "m5a.xlarge"), "AL2023_x86_64_STANDARD"),
])
def test_a_node_group_boots_the_ami_its_instance_types_need(pools, types, ami):
    """A GPU group on the standard AMI has no NVIDIA driver (its nodes never offer
    nvidia.com/gpu); Graviton needs the ARM64 build, Inferentia and Trainium the Neuron one."""
    pools.ensure(spot_pool(machine_types=types))
    assert group(pools)["amiType"] == ami


@pytest.mark.parametrize("kind,ami", [("g6.xlarge", "AL2023_x86_64_NVIDIA"), ("p4d.24xlarge", "AL2023_x86_64_NVIDIA"),
                                      ("g5g.xlarge", "AL2023_ARM_64_NVIDIA"), ("trn1.2xlarge", "AL2023_x86_64_NEURON")])
def test_a_group_of_a_type_the_subnets_zones_lack_is_refused_before_any_create_whatever_its_ami(pools, kind, ami):
    """EC2 offers these in no zone of the group's subnets (eu-west-1a and b): the create is
    refused naming the instance types, nothing made; on a region that has them they boot ``ami``."""
    assert ami_type(kind) == ami
    with pytest.raises(NodePoolFailed, match=f"instance type {kind} in (the availability zone of subnet|any)") as refused:
        pools.ensure(spot_pool(machine_types=(kind,)))
    assert refused.value.field == "nodePool.instanceTypes" and pools.describe("katuna-digits") is None
    assert pools.ec2.describe_launch_templates()["LaunchTemplates"] == [], "no launch template made for it"


def test_a_failed_cluster_is_refused_at_once_naming_it_not_waited_for(pools):
    """A cluster whose creation failed stays ``FAILED`` until deleted: EKS's "not in ACTIVE
    status" then is no wait's end but a refusal naming the cluster's setting; nothing made."""
    eks_backends["123456789012"][REGION].clusters["tuning"].status = "FAILED"
    with pytest.raises(NodePoolFailed, match="EKS cluster tuning in region eu-west-1 is FAILED") as refused:
        pools.ensure(spot_pool())
    assert refused.value.field == eks_requests.CLUSTER_SETTING and pools.describe("katuna-digits") is None


def test_a_cluster_not_active_is_waited_for_and_other_invalid_requests_are_refusals(pools, cluster):
    """EKS refuses node group changes while the cluster is not ACTIVE (a Kubernetes version
    upgrade, say) with InvalidRequestException: that passes; other invalid requests do not."""
    backend = eks_backends["123456789012"][REGION].clusters["tuning"]
    backend.status = "UPDATING"
    with pytest.raises(TemporaryError, match="Cluster 'tuning' is not in ACTIVE status"):
        pools.ensure(spot_pool())
    backend.status = "ACTIVE"
    assert pools.ensure(spot_pool()).created
    stubbed_pools, stubber = stubbed(cluster)
    before_create(stubbed_pools, stubber)
    stubber.add_client_error("create_nodegroup", "InvalidRequestException",
                             "Launch template and diskSize cannot be given together", 400)
    with stubber, pytest.raises(NodePoolFailed, match="Launch template and diskSize"):
        stubbed_pools.ensure(spot_pool())


def refusal(call) -> dict:
    """The error EKS (here moto, held to the account's quotas) answered ``call`` with."""
    with pytest.raises(ClientError) as refused:
        call()
    return {"code": refused.value.response["Error"]["Code"],
            "status": refused.value.response["ResponseMetadata"]["HTTPStatusCode"],
            **{key: refused.value.response.get(key) for key in ("clusterName", "nodegroupName")}}


def test_the_stand_in_refuses_a_group_past_the_accounts_quota_of_nodes_as_eks_does(aws, pools):
    """moto alone takes any maxSize; EKS refuses one above the account's quota of nodes per
    managed node group, on create and on update, until the quota is raised."""
    request = eks_requests.create_request(aws, spot_pool(max_nodes=451))
    assert refusal(lambda: pools.eks.create_nodegroup(**request)) == {
        "code": "InvalidParameterException", "status": 400, "clusterName": "tuning", "nodegroupName": "katuna-digits"}
    with pytest.raises(NodePoolFailed, match="EKS refused the request: InvalidParameterException: maxSize can't be "
                                             "greater than 450"):
        pools.ensure(spot_pool(max_nodes=451))
    assert pools.describe("katuna-digits") is None, "nothing created"
    pools.ensure(spot_pool(max_nodes=450))
    moto_eks.minutes_pass()
    raise_to_451 = eks_requests.scaling_request(aws, "katuna-digits", 0, 451)
    assert refusal(lambda: pools.eks.update_nodegroup_config(**raise_to_451))["code"] == "InvalidParameterException"
    assert group(pools)["scalingConfig"]["maxSize"] == 450, "the update changed nothing"
    moto_eks.raise_quotas(EksQuotas(nodes_per_group=600), REGION)
    pools.eks.update_nodegroup_config(**eks_requests.scaling_request(aws, "katuna-digits", 0, 600))
    moto_eks.minutes_pass()
    assert group(pools)["scalingConfig"]["maxSize"] == 600
    pools.ensure(spot_pool(name="wide", max_nodes=600))
    assert group(pools, "wide")["scalingConfig"]["maxSize"] == 600


def test_the_stand_in_refuses_a_group_past_the_accounts_quota_of_groups_as_eks_does(aws, pools):
    pools.ensure(spot_pool(name="group-0"))
    template = eks_requests.create_request(aws, spot_pool(name="group-0"))["launchTemplate"]
    for i in range(1, 30):  # the request ensure makes, on the launch template ensure made for group-0
        request = eks_requests.create_request(aws, spot_pool(name=f"group-{i}"))
        pools.eks.create_nodegroup(**request | {"launchTemplate": template})
    moto_eks.minutes_pass()
    one_more = eks_requests.create_request(aws, spot_pool(name="one-more"))
    assert refusal(lambda: pools.eks.create_nodegroup(**one_more)) == {
        "code": "ResourceLimitExceededException", "status": 400, "clusterName": "tuning", "nodegroupName": "one-more"}
    with pytest.raises(NodePoolFailed, match="ResourceLimitExceededException: .*managed node groups per cluster"):
        pools.ensure(spot_pool(name="one-more"))
    assert pools.ensure(spot_pool(name="group-0")).operation is None, "one already there: EKS says so, not the quota"
    pools.delete("group-0")
    moto_eks.minutes_pass()
    assert pools.ensure(spot_pool(name="one-more")).created, "room again once a group is deleted"
    moto_eks.raise_quotas(EksQuotas(groups_per_cluster=32), REGION)
    assert pools.ensure(spot_pool(name="two-more")).created


def test_once_active_its_auto_scaling_group_is_tagged_for_scale_up_from_zero(pools):
    pools.ensure(spot_pool())
    asg = group(pools)["resources"]["autoScalingGroups"][0]["name"]
    [made] = pools.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg])["AutoScalingGroups"]
    assert (made["MinSize"], made["MaxSize"], made["DesiredCapacity"]) == (0, 6, 0), "EKS made it with the group"
    assert pools.check("create:katuna-digits") == OperationStatus(False), "still creating"
    moto_eks.minutes_pass()
    assert pools.check("create:katuna-digits") == OperationStatus(True)
    tags = {t["Key"]: t["Value"] for t in pools.autoscaling.describe_tags(
        Filters=[{"Name": "auto-scaling-group", "Values": [asg]}])["Tags"]}
    assert tags == {
        **eks_tags("tuning", "katuna-digits"),
        f"{TEMPLATE}/label/team": "vision",
        f"{TEMPLATE}/label/katuna.dev/pool": "katuna-digits",
        f"{TEMPLATE}/label/eks.amazonaws.com/nodegroup": "katuna-digits",
        f"{TEMPLATE}/label/eks.amazonaws.com/capacityType": "SPOT",
        f"{TEMPLATE}/taint/katuna.dev/trial": "true:NoSchedule",
    }


def asg_tags(pools: eks.EksNodePools, name: str = "katuna-digits") -> dict[str, str]:
    asg = group(pools, name)["resources"]["autoScalingGroups"][0]["name"]
    found = pools.autoscaling.describe_tags(Filters=[{"Name": "auto-scaling-group", "Values": [asg]}])["Tags"]
    return {t["Key"]: t["Value"] for t in found}


def many_labels(count: int) -> tuple[tuple[str, str], ...]:
    return tuple((f"label-{n}", f"v{n}") for n in range(count))


def test_node_template_tags_past_what_one_auto_scaling_call_takes_are_written_in_several(pools):
    """Auto Scaling takes at most 25 tags a call: a group whose labels need more gets them all."""
    pools.ensure(spot_pool(labels=many_labels(30)), owner="5e0f9b2c7d41")
    moto_eks.minutes_pass()
    assert pools.check("create:katuna-digits") == OperationStatus(True)
    tags = asg_tags(pools)
    assert all(tags[f"{TEMPLATE}/label/label-{n}"] == f"v{n}" for n in range(30))
    assert len(tags) == 5 + 30 + 5, "EKS's own, the labels', and katuna's (its labels, the taint, the option)"


def test_labels_past_the_50_tags_of_an_auto_scaling_group_are_refused_at_submission_as_aws_would(pools):
    """Each node label is a node-template tag of the group's Auto Scaling group, which holds 50
    tags, EKS's 5 and katuna's own 5 among them: 40 labels fit, 41 are refused at submission,
    and AWS (the stand-in) refuses the tags of a group that has them."""
    pools.ensure(spot_pool(labels=many_labels(41)), owner="5e0f9b2c7d41")
    moto_eks.minutes_pass()
    with pytest.raises(NodePoolFailed, match="LimitExceeded"):
        pools.check("create:katuna-digits")
    labels = dict(many_labels(41))
    definition = study_definition(name="labelled", nodePool={"provider": "eks", "labels": labels})
    with pytest.raises(InvalidStudy) as refused:
        parse_study(definition)
    assert [(p.path, p.message) for p in refused.value.problems] == [(
        "nodePool.labels", "EKS takes at most 40 node labels here: each is a cluster-autoscaler node-template tag of "
                           "the node group's Auto Scaling group, which holds 50 tags, 10 of them EKS's and katuna's "
                           "own; these are 41")]
    definition["nodePool"]["labels"] = dict(many_labels(40))
    assert len(parse_study(definition).node_pool.labels) == 40
    definition["nodePool"] = {"provider": "gke", "labels": labels}
    assert len(parse_study(definition).node_pool.labels) == 41, "GKE bounds its labels by their characters"


@pytest.mark.parametrize("tags,code", [
    ([{"Key": f"t{n}", "Value": "v"} for n in range(26)], "ValidationError"),
    ([{"Key": f"t{n}", "Value": "v"} for n in range(25)] * 2, "ValidationError"),
    ([{"Key": "t", "Value": "v", "ResourceType": "instance"}], "ValidationError"),
    ([{"Key": "t", "Value": "v", "ResourceId": "eks-no-such-group"}], "ValidationError"),
])
def test_the_stand_in_refuses_auto_scaling_tags_aws_refuses(pools, tags, code):
    pools.ensure(spot_pool())
    moto_eks.minutes_pass()
    asg = group(pools)["resources"]["autoScalingGroups"][0]["name"]
    before = asg_tags(pools)
    sent = [{"ResourceId": asg, "ResourceType": "auto-scaling-group", "PropagateAtLaunch": False, **tag} for tag in tags]
    with pytest.raises(ClientError) as refused:
        pools.autoscaling.create_or_update_tags(Tags=sent)
    assert refused.value.response["Error"]["Code"] == code
    assert asg_tags(pools) == before, "nothing changed"


def _described(status: str, **extra) -> dict:
    return {"nodegroup": {"nodegroupName": "katuna-digits", "clusterName": "tuning", "status": status,
                          "capacityType": "SPOT", "scalingConfig": {"minSize": 0, "maxSize": 6, "desiredSize": 0},
                          **extra}}


NAMES = {"clusterName": "tuning", "nodegroupName": "katuna-digits"}
TAINT = {"key": "katuna.dev/trial", "value": "true", "effect": "NO_SCHEDULE"}
UPDATE_ID = "0f0b6a52-3c1d-4e7a-9b8c-2d4e6f8a0b1c"
UPDATE_NAMES = {"name": "tuning", "updateId": UPDATE_ID, "nodegroupName": "katuna-digits"}


VPC = "vpc-0a1b2c3d4e5f6a7b8"


def stubbed(cluster: eks_requests.EksCluster) -> tuple[eks.EksNodePools, Stubber]:
    """The adapter with EKS's client stubbed, and EC2's (``stubber.ec2``) stubbed and active."""
    client, ec2 = boto3.client("eks", region_name=REGION), boto3.client("ec2", region_name=REGION)
    stubber = Stubber(client)
    stubber.ec2 = Stubber(ec2)
    stubber.ec2.activate()
    return eks.EksNodePools(cluster, client, boto3.client("autoscaling", region_name=REGION), ec2), stubber


def before_create(pools: eks.EksNodePools, stubber: Stubber) -> None:
    """EKS's and EC2's answers before a create: no such group, private subnets of the cluster's
    VPC in a zone that offers the group's instance types, and no launch template of katuna's for
    it yet, which is made."""
    stubber.add_client_error("describe_nodegroup", "ResourceNotFoundException", "No node group found", 404,
                             expected_params=NAMES)
    stubber.add_response("describe_cluster", {"cluster": {"name": "tuning", "resourcesVpcConfig": {"vpcId": VPC}}},
                         {"name": "tuning"})
    stubber.ec2.add_response("describe_subnets", {"Subnets": [
        {"SubnetId": subnet, "VpcId": VPC, "MapPublicIpOnLaunch": False, "AvailabilityZone": f"{REGION}a"}
        for subnet in pools.cluster.subnets]})
    stubber.ec2.add_response("describe_route_tables", {"RouteTables": []})
    stubber.ec2.add_response("describe_instance_type_offerings", {"InstanceTypeOfferings": [
        {"InstanceType": kind, "LocationType": "availability-zone", "Location": f"{REGION}a"}
        for kind in ("m5.xlarge", "m5a.xlarge", "m6i.xlarge", "c5.xlarge", "t3.medium")]})
    stubber.ec2.add_client_error("describe_launch_templates", "InvalidLaunchTemplateName.NotFoundException",
                                 "At least one of the launch templates specified in the request does not exist.", 400)
    stubber.ec2.add_response("create_launch_template", {"LaunchTemplate": {"LaunchTemplateId": "lt-0a1b2c3d4e5f6a7b8"}})


def no_templates_left(stubber: Stubber) -> None:
    """EC2's answer to the look for katuna's launch templates of a group that is gone: none."""
    stubber.ec2.add_response("describe_launch_templates", {"LaunchTemplates": []})


def test_creating_and_deleting_states_are_pending(cluster):
    pools, stubber = stubbed(cluster)
    stubber.add_response("describe_nodegroup", _described("CREATING"), NAMES)
    stubber.add_response("describe_nodegroup", _described("DELETING"), NAMES)
    stubber.add_client_error("describe_nodegroup", "ResourceNotFoundException", "No node group found", 404,
                             expected_params=NAMES)
    no_templates_left(stubber)
    with stubber:
        assert pools.check("create:katuna-digits") == OperationStatus(False)
        assert pools.check("delete:katuna-digits") == OperationStatus(False)
        assert pools.check("delete:katuna-digits") == OperationStatus(True)


def test_a_node_group_found_creating_is_waited_for(cluster):
    pools, stubber = stubbed(cluster)
    before_create(pools, stubber)
    stubber.add_client_error("create_nodegroup", "ResourceInUseException", "NodeGroup already exists", 409)
    stubber.add_response("describe_nodegroup", _described("CREATING", tags={"katuna-study-uid": "5e0f9b2c7d41"}),
                         NAMES)
    with stubber:
        assert pools.ensure(spot_pool(), owner="5e0f9b2c7d41") == PoolChange(
            "create:katuna-digits", created=True, owned=True), "its own earlier create went through"


def test_a_scaling_update_is_judged_by_its_update_not_by_the_groups_status(cluster):
    """The group may show ACTIVE before its Update is applied, or after it failed: the check
    reads the Update EKS answered with, pending while it is in progress, failed with its errors."""
    pools, stubber = stubbed(cluster)
    stubber.add_response("describe_nodegroup", _described("ACTIVE", taints=[TAINT], scalingConfig={
        "minSize": 0, "maxSize": 3}), NAMES)
    stubber.add_response("update_nodegroup_config", {"update": {"id": UPDATE_ID, "status": "InProgress"}})
    stubber.add_response("describe_update", {"update": {"id": UPDATE_ID, "status": "InProgress"}}, UPDATE_NAMES)
    failed = {"id": UPDATE_ID, "status": "Failed", "errors": [
        {"errorCode": "NodeCreationFailure", "errorMessage": "Could not launch Spot Instances: UnfulfillableCapacity"}]}
    stubber.add_response("describe_update", {"update": failed}, UPDATE_NAMES)
    stubber.add_response("describe_update", {"update": {**failed, "status": "Cancelled", "errors": []}},
                         UPDATE_NAMES)
    with stubber:
        change = pools.scale_back(spot_pool(), {"minSize": 1, "maxSize": 8})
        assert change == PoolChange(f"update:katuna-digits:{UPDATE_ID}")
        assert pools.check(change.operation) == OperationStatus(False), "in progress, whatever the group shows"
        assert pools.check(change.operation) == OperationStatus(True, (
            f"update {UPDATE_ID} of node group katuna-digits failed: NodeCreationFailure: Could not launch Spot "
            "Instances: UnfulfillableCapacity"))
        assert pools.check(change.operation) == OperationStatus(True, (
            f"update {UPDATE_ID} of node group katuna-digits was cancelled: EKS gave no reason"))


def test_an_update_stored_without_its_id_is_judged_by_the_groups_status(cluster):
    """A pool use stored before katuna kept update ids names only the group."""
    pools, stubber = stubbed(cluster)
    stubber.add_response("describe_nodegroup", _described("UPDATING"), NAMES)
    with stubber:
        assert pools.check("update:katuna-digits") == OperationStatus(False)


def test_a_failed_creation_reports_the_health_issues(cluster):
    pools, stubber = stubbed(cluster)
    issues = {"health": {"issues": [{"code": "InsufficientFreeAddresses",
                                     "message": "Subnet subnet-1 does not have enough free addresses"}]}}
    stubber.add_response("describe_nodegroup", _described("CREATE_FAILED", **issues), NAMES)
    with stubber:
        status = pools.check("create:katuna-digits")
    assert status.done and status.error == ("node group katuna-digits failed to create: InsufficientFreeAddresses: "
                                            "Subnet subnet-1 does not have enough free addresses")


@pytest.mark.parametrize("code,status,error", [
    ("ThrottlingException", 400, TemporaryError),
    ("ServerException", 500, TemporaryError),
    ("InvalidParameterException", 400, NodePoolFailed),
    ("AccessDeniedException", 403, NodePoolFailed),
])
def test_throttling_is_temporary_and_refusals_permanent(cluster, code, status, error):
    pools, stubber = stubbed(cluster)
    before_create(pools, stubber)
    stubber.add_client_error("create_nodegroup", code, f"{code} happened", status)
    with stubber, pytest.raises(error, match=f"{code} happened"):
        pools.ensure(spot_pool())


def test_a_group_busy_with_another_change_is_tried_again_not_given_up(cluster):
    """EKS refuses to delete or update a group that is not active with a 409
    ResourceInUseException: the release waits for the group, it does not fail for good."""
    pools, stubber = stubbed(cluster)
    busy = "Nodegroup cannot be deleted as it is currently not in Active State"
    stubber.add_response("describe_nodegroup", _described("UPDATING"), NAMES)
    stubber.add_client_error("delete_nodegroup", "ResourceInUseException", busy, 409, expected_params=NAMES)
    stubber.add_response("describe_nodegroup", _described("ACTIVE"), NAMES)
    stubber.add_client_error("update_nodegroup_config", "ResourceInUseException", busy, 409)
    with stubber:
        with pytest.raises(TemporaryError, match="not in Active State"):
            pools.delete("katuna-digits")
        with pytest.raises(TemporaryError, match="not in Active State"):
            pools.scale_back(spot_pool(), {"minSize": 1, "maxSize": 3})


def test_a_delete_of_a_group_eks_is_deleting_already_waits_for_it_without_asking_again(cluster):
    """``down`` run again while EKS deletes the group: the deletion under way is waited for."""
    pools, stubber = stubbed(cluster)
    stubber.add_response("describe_nodegroup", _described("DELETING"), NAMES)
    stubber.add_response("describe_nodegroup", _described("DELETING"), NAMES)
    stubber.add_client_error("describe_nodegroup", "ResourceNotFoundException",
                             "No node group found for name: katuna-digits.", 404)
    no_templates_left(stubber)
    with stubber:
        change = pools.delete("katuna-digits")
        assert change == PoolChange("delete:katuna-digits")
        assert pools.wait(change.operation, interval=0.01, timeout=60) == OperationStatus(True)
        stubber.assert_no_pending_responses()


def test_a_request_botocore_refuses_before_sending_is_a_refusal_not_an_outage(aws, pools):
    """botocore checks a request against EKS's model before sending it; what it refuses EKS
    would refuse too, so trying again cannot help."""
    with pytest.raises(NodePoolFailed, match="labels.team, value: 0, valid min length: 1"):
        pools.ensure(spot_pool(labels=(("team", ""),)))
    assert pools.describe("katuna-digits") is None


def test_limits_given_back_move_the_desired_size_only_when_it_falls_outside_them(aws):
    inside = eks_requests.scaling_request(aws, "trials", 1, 3, desired=2)["scalingConfig"]
    below = eks_requests.scaling_request(aws, "trials", 1, 3, desired=0)["scalingConfig"]
    assert inside == {"minSize": 1, "maxSize": 3}, "the autoscaler owns the desired size"
    assert below == {"minSize": 1, "maxSize": 3, "desiredSize": 1}, "EKS refuses a desired size below the minimum"


def test_an_adopted_group_gets_its_limits_back_with_a_desired_size_eks_accepts(pools):
    pools.eks.create_nodegroup(**{**moto_eks.by_hand(eks_requests.create_request(pools.cluster, spot_pool(max_nodes=3))),
                                  "scalingConfig": {"minSize": 1, "maxSize": 3, "desiredSize": 1}})
    moto_eks.minutes_pass()
    change = pools.ensure(spot_pool(), owner="5e0f9b2c7d41")
    assert UPDATE.fullmatch(change.operation) and change.adopted == {"minSize": 1, "maxSize": 3}
    moto_eks.minutes_pass()
    pools.eks.update_nodegroup_config(clusterName="tuning", nodegroupName="katuna-digits",
                                      scalingConfig={"minSize": 0, "maxSize": 6, "desiredSize": 0})
    moto_eks.minutes_pass()
    given_back = pools.scale_back(spot_pool(), change.adopted)
    assert UPDATE.fullmatch(given_back.operation) and given_back.operation != change.operation
    assert pools.check(given_back.operation) == OperationStatus(False), "its Update in progress"
    moto_eks.minutes_pass()
    assert group(pools)["scalingConfig"] == {"minSize": 1, "maxSize": 3, "desiredSize": 1}
    assert pools.check(given_back.operation) == OperationStatus(True), "its Update succeeded, its group tagged"


def test_a_group_whose_auto_scaling_group_is_not_there_yet_is_pending_until_it_can_be_tagged(pools):
    pools.ensure(spot_pool())
    moto_eks.minutes_pass()
    asg = group(pools)["resources"]["autoScalingGroups"][0]["name"]
    pools.autoscaling.delete_auto_scaling_group(AutoScalingGroupName=asg, ForceDelete=True)
    assert pools.check("create:katuna-digits") == OperationStatus(False)


def test_a_deleted_group_takes_its_auto_scaling_group_with_it(pools):
    pools.ensure(spot_pool())
    moto_eks.minutes_pass()
    asg, template = group(pools)["resources"]["autoScalingGroups"][0]["name"], group(pools)["launchTemplate"]["name"]
    assert pools.delete("katuna-digits").operation == "delete:katuna-digits"
    assert group(pools)["status"] == "DELETING" and pools.check("delete:katuna-digits") == OperationStatus(False)
    moto_eks.minutes_pass()
    assert pools.check("delete:katuna-digits") == OperationStatus(
        True, also=f"deleted the launch template katuna made for it: {template}")
    assert pools.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg])["AutoScalingGroups"] == []


def test_a_maximum_held_for_the_autoscaler_is_left_to_whoever_changed_it_since(pools):
    """A maximum held at the nodes running waits for the autoscaler; a study raising the group
    meanwhile makes the limits its own, and the maximum is not lowered under it."""
    pools.ensure(spot_pool(max_nodes=10), owner="5e0f9b2c7d41")
    moto_eks.minutes_pass()
    pools.eks.update_nodegroup_config(clusterName="tuning", nodegroupName="katuna-digits",
                                      scalingConfig={"desiredSize": 7})
    moto_eks.minutes_pass()
    held = pools.scale_back(spot_pool(max_nodes=4))
    assert held.operation == "shrink:katuna-digits:0:4:7" and pools.check(held.operation) == OperationStatus(False)
    moto_eks.minutes_pass()
    assert group(pools)["scalingConfig"] == {"minSize": 0, "maxSize": 7, "desiredSize": 7}
    pools.eks.update_nodegroup_config(clusterName="tuning", nodegroupName="katuna-digits",
                                      scalingConfig={"maxSize": 12, "desiredSize": 2})
    moto_eks.minutes_pass()
    assert pools.check(held.operation) == OperationStatus(True)
    assert group(pools)["scalingConfig"] == {"minSize": 0, "maxSize": 12, "desiredSize": 2}


def test_a_scale_back_the_autoscaler_overtakes_is_tried_again_and_then_held_for_it(pools):
    """The autoscaler grows the group between katuna's look at it and its lowered maximum: EKS
    refuses the maximum below the new desired size, for now only; the next try holds the
    maximum at the nodes running."""
    pools.ensure(spot_pool(max_nodes=10), owner="5e0f9b2c7d41")
    moto_eks.minutes_pass()
    operator = boto3.client("eks", region_name=REGION)
    operator.update_nodegroup_config(clusterName="tuning", nodegroupName="katuna-digits",
                                     scalingConfig={"desiredSize": 3})
    moto_eks.minutes_pass()
    grown: list[int] = []

    def autoscaler_grows(**_: object) -> None:
        if not grown:
            grown.append(7)
            operator.update_nodegroup_config(clusterName="tuning", nodegroupName="katuna-digits",
                                             scalingConfig={"desiredSize": 7})
            moto_eks.minutes_pass()

    pools.eks.meta.events.register("before-call.eks.UpdateNodegroupConfig", autoscaler_grows)
    with pytest.raises(TemporaryError, match="desired capacity 7 can't be greater than max size 4"):
        pools.scale_back(spot_pool(max_nodes=4))
    held = pools.scale_back(spot_pool(max_nodes=4))
    assert held.operation == "shrink:katuna-digits:0:4:7"
    moto_eks.minutes_pass()
    assert group(pools)["scalingConfig"] == {"minSize": 0, "maxSize": 7, "desiredSize": 7}


@pytest.mark.parametrize("message", ["desired capacity 7 can't be greater than max size 4",
                                     "Minimum capacity 8 can't be greater than desired size 4"])
def test_limits_the_autoscaler_overtook_are_refused_for_now_in_ekss_own_words(cluster, message):
    """EKS's words for limits that no longer hold the desired size (as its users quote them)."""
    pools, stubber = stubbed(cluster)
    stubber.add_response("describe_nodegroup", _described("ACTIVE", scalingConfig={
        "minSize": 0, "maxSize": 10, "desiredSize": 3}), NAMES)
    stubber.add_client_error("update_nodegroup_config", "InvalidParameterException", message, 400)
    with stubber, pytest.raises(TemporaryError, match=message):
        pools.scale_back(spot_pool(max_nodes=4))


def test_instance_types_ec2_does_not_have_are_refused_naming_the_field(aws, pools):
    with pytest.raises(NodePoolFailed) as refused:
        pools.ensure(spot_pool(machine_types=("m5.xlarge", "m5.xlargee")))
    assert refused.value.field == "nodePool.instanceTypes"
    assert refused.value.reason.startswith("EC2 offers no instance type m5.xlargee in any availability zone of this "
                                           "region (a misspelt name, or a type this region does not have)")
    assert pools.describe("katuna-digits") is None


def test_more_instance_types_than_eks_takes_are_refused_at_submission_naming_the_field(aws, pools):
    types = [f"m5.{size}" for size in ("large", "xlarge", "2xlarge", "4xlarge")] + \
            [f"{family}.xlarge" for family in ("m5a", "m5d", "m5n", "m6i", "m6a", "m7i", "m7a", "c5", "c5a", "c6i",
                                               "c6a", "c7i", "r5", "r5a", "r6i", "r6a", "r7i")]
    with pytest.raises(NodePoolFailed, match="at most 20 instance types"):
        pools.ensure(spot_pool(machine_types=tuple(types)))
    definition = study_definition(name="many-types", nodePool={"provider": "eks", "instanceTypes": types})
    with pytest.raises(InvalidStudy) as refused:
        parse_study(definition)
    assert [(p.path, p.message) for p in refused.value.problems] == [
        ("nodePool.instanceTypes", "expected at most 20 instance types (EKS takes no more for a node group), got 21")]
    definition["nodePool"]["instanceTypes"] = types[:20]
    assert len(parse_study(definition).node_pool.machine_types) == 20
    assert pools.ensure(spot_pool(machine_types=tuple(types[:20]))).created


def test_the_stand_in_holds_a_cluster_updating_and_refuses_node_group_changes_meanwhile(aws, pools, monkeypatch):
    """While an update of the cluster's configuration runs, EKS refuses to create or update its
    node groups, for now; a group busy with a change of its own refuses an update, for now."""
    pools.ensure(spot_pool())
    moto_eks.minutes_pass()
    monkeypatch.setattr(moto_eks, "UPDATE_SECONDS", 2.0)
    pools.eks.update_cluster_config(name="tuning", logging={"clusterLogging": [{"types": ["api"], "enabled": True}]})
    assert pools.eks.describe_cluster(name="tuning")["cluster"]["status"] == "UPDATING"
    for call in (lambda: pools.ensure(spot_pool(name="other")), lambda: pools.scale_back(spot_pool(max_nodes=4))):
        with pytest.raises(TemporaryError, match="InvalidRequestException: Cluster 'tuning' is not in ACTIVE status"):
            call()
    eventually(lambda: pools.eks.describe_cluster(name="tuning")["cluster"]["status"] == "ACTIVE",
               "the cluster's update to end")
    assert pools.ensure(spot_pool(name="other")).created
    eks_backends["123456789012"][REGION].clusters["tuning"].nodegroups["katuna-digits"].status = "UPDATING"
    with pytest.raises(TemporaryError, match="ResourceInUseException: Nodegroup cannot be updated as it is currently "
                                             "not in Active State"):
        pools.scale_back(spot_pool(max_nodes=4))
    assert group(pools)["scalingConfig"]["maxSize"] == 6, "nothing changed"


def test_a_group_launching_instance_types_the_study_does_not_accept_is_not_adopted(pools):
    pools.eks.create_nodegroup(**{**moto_eks.by_hand(eks_requests.create_request(pools.cluster, spot_pool())),
                                  "instanceTypes": ["m5.xlarge", "c5.large"]})
    with pytest.raises(NodePoolFailed, match="nodePool.instanceTypes: node pool katuna-digits exists with "
                                             "instance types m5.xlarge, c5.large; the study accepts m5.xlarge, "
                                             "m5a.xlarge"):
        pools.ensure(spot_pool(), owner="5e0f9b2c7d41")


def test_a_cluster_eks_does_not_have_is_a_refusal_naming_the_setting_never_an_absent_group(aws, pools):
    """EKS answers ResourceNotFoundException for the cluster as for a group: a group that
    exists in the cluster the settings meant is not reported gone, nor its deletion done."""
    pools.ensure(spot_pool())
    moto_eks.minutes_pass()
    elsewhere = eks.EksNodePools(eks_requests.EksCluster("tunign", aws.subnets, ROLE), pools.eks, pools.autoscaling,
                                 pools.ec2)
    for call in (lambda: elsewhere.describe("katuna-digits"), lambda: elsewhere.delete("katuna-digits"),
                 lambda: elsewhere.check("delete:katuna-digits"), lambda: elsewhere.scale_back(spot_pool()),
                 lambda: elsewhere.ensure(spot_pool())):
        with pytest.raises(NodePoolFailed) as refusal:
            call()
        assert refusal.value.field == "KATUNA_EKS_CLUSTER"
        assert str(refusal.value) == ("KATUNA_EKS_CLUSTER: EKS has no cluster tunign in region eu-west-1: "
                                      "No cluster found for name: tunign.")
    assert group(pools)["status"] == "ACTIVE"
    assert pools.describe("absent") is None and pools.delete("absent") == PoolChange(), "a group absent is absent"


def test_waiting_for_a_creation_that_fails_reports_the_health_issues(cluster):
    """The provisioning script's wait polls the group's own check: EKS's reason, not a waiter's."""
    pools, stubber = stubbed(cluster)
    issue = {"code": "Ec2SubnetInvalidConfiguration", "message": "One or more Amazon EC2 Subnets of [subnet-1] for "
             "node group katuna-digits does not automatically assign public IP addresses to instances launched into "
             "it."}
    stubber.add_response("describe_nodegroup", _described("CREATING"), NAMES)
    stubber.add_response("describe_nodegroup", _described("CREATING"), NAMES)
    stubber.add_response("describe_nodegroup", _described("CREATE_FAILED", health={"issues": [issue]}), NAMES)
    with stubber:
        status = pools.wait("create:katuna-digits", interval=0.01, timeout=60)
    assert status == OperationStatus(True, "node group katuna-digits failed to create: Ec2SubnetInvalidConfiguration: "
                                           + issue["message"])


def test_waiting_past_the_timeout_for_a_group_still_creating_or_deleting_reports_it_pending(cluster):
    """Not done when the time is up is still pending (the script says so), never a failure."""
    pools, stubber = stubbed(cluster)
    stubber.add_response("describe_nodegroup", _described("CREATING"), NAMES)
    stubber.add_response("describe_nodegroup", _described("DELETING"), NAMES)
    with stubber:
        assert pools.wait("create:katuna-digits", interval=0.01, timeout=0) == OperationStatus(False)
        assert pools.wait("delete:katuna-digits", interval=0.01, timeout=0) == OperationStatus(False)


def test_waiting_polls_again_after_a_throttled_poll(cluster):
    """A poll throttled while the group is deleted says nothing about the deletion, which goes on."""
    pools, stubber = stubbed(cluster)
    stubber.add_client_error("describe_nodegroup", "ThrottlingException", "Rate exceeded", 400)
    stubber.add_client_error("describe_nodegroup", "ThrottlingException", "Rate exceeded", 400)
    stubber.add_response("describe_nodegroup", _described("DELETING"), NAMES)
    stubber.add_client_error("describe_nodegroup", "ResourceNotFoundException",
                             "No node group found for name: katuna-digits.", 404)
    no_templates_left(stubber)
    with stubber:
        assert pools.wait("delete:katuna-digits", interval=0.01, timeout=60) == OperationStatus(True)
        stubber.assert_no_pending_responses()


def test_waiting_that_ends_on_a_throttled_poll_says_the_change_may_still_be_pending(cluster):
    pools, stubber = stubbed(cluster)
    stubber.add_client_error("describe_nodegroup", "ThrottlingException", "Rate exceeded", 400)
    stubber.add_client_error("describe_nodegroup", "ThrottlingException", "Rate exceeded", 400)
    with stubber, pytest.raises(TemporaryError, match="delete:katuna-digits is still pending after 0 s, as far as "
                                                       "the last poll could tell: EKS: ThrottlingException"):
        pools.wait("delete:katuna-digits", interval=0.01, timeout=0)


def without_aws_configuration(monkeypatch, tmp_path) -> None:
    """No credentials and no region anywhere the AWS chain looks (environment, files, metadata)."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
                "AWS_DEFAULT_REGION", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ENDPOINT_URL",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_missing_credentials_are_a_refusal_naming_what_to_set_not_an_unreachable_eks(monkeypatch, tmp_path):
    """No retry brings credentials: the pool fails at once saying how to give katuna an identity."""
    without_aws_configuration(monkeypatch, tmp_path)
    pools = eks.EksNodePools(eks_requests.EksCluster("tuning", ("subnet-1",), ROLE), *eks_clients.clients(REGION))
    for call in (lambda: pools.describe("katuna-digits"), lambda: pools.ensure(spot_pool())):
        with pytest.raises(NodePoolFailed, match=r"^no AWS credentials: give the service's Kubernetes service account "
                                                 r"katuna an IAM role \(IRSA, or an EKS Pod Identity association\); "
                                                 r"elsewhere set AWS_PROFILE.*Unable to locate credentials"):
            call()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    with pytest.raises(NodePoolFailed, match="no AWS credentials: .*Partial credentials found"):
        pools = eks.EksNodePools(eks_requests.EksCluster("tuning"), *eks_clients.clients(REGION))
        pools.describe("katuna-digits")


def test_a_missing_region_is_a_refusal_naming_the_setting(monkeypatch, tmp_path):
    without_aws_configuration(monkeypatch, tmp_path)
    with pytest.raises(NodePoolFailed) as refusal:
        eks_clients.clients(None)
    assert refusal.value.field == "KATUNA_EKS_REGION"
    assert str(refusal.value) == ("KATUNA_EKS_REGION: no AWS region is set (nor AWS_REGION, AWS_DEFAULT_REGION, or "
                                  "the AWS profile's region)")


def test_aws_region_names_the_region_as_the_aws_cli_reads_it_before_the_default_and_the_profile(monkeypatch,
                                                                                                 tmp_path):
    """boto3 reads ``AWS_DEFAULT_REGION`` and never ``AWS_REGION``, which the AWS CLI and the
    other SDKs read first: the clients take it after the region given, before the others."""
    without_aws_configuration(monkeypatch, tmp_path)
    profile = tmp_path / "config"
    profile.write_text("[default]\nregion = ap-south-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(profile))
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert {client.meta.region_name for client in eks_clients.clients(None)} == {"eu-west-3"}
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-2")
    assert eks_clients.clients(None)[0].meta.region_name == "eu-west-3"
    assert eks_clients.clients("ca-central-1")[0].meta.region_name == "ca-central-1"
    monkeypatch.setenv("AWS_REGION", "")
    assert eks_clients.clients(None)[0].meta.region_name == "us-east-2"
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert eks_clients.clients(None)[0].meta.region_name == "ap-south-1"


BAD_ENDPOINT = ("the AWS endpoint URL is no http or https URL (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_EKS, _EC2 or "
                "_AUTO_SCALING, or the AWS profile's endpoint_url); no retry helps: fix it, or unset it for AWS's own: ")
SET_UP = {
    "endpoint no URL": ({"AWS_ENDPOINT_URL": "localhost:5000"}, REGION, BAD_ENDPOINT + "Invalid endpoint: localhost:5000"),
    "endpoint half an IPv6 URL": ({"AWS_ENDPOINT_URL": "http://[::1"}, REGION, BAD_ENDPOINT + "Invalid IPv6 URL"),
    "setting botocore refuses": ({"AWS_STS_REGIONAL_ENDPOINTS": "bogus"}, REGION, (
        'the AWS configuration is invalid: STS regional endpoints option bogus is invalid. Valid options are: '
        '"legacy", "regional"; no retry helps: fix the AWS_* variables or the AWS profile (AWS_PROFILE, '
        'AWS_CONFIG_FILE)')),
    "empty region": ({"AWS_DEFAULT_REGION": ""}, None, (
        "KATUNA_EKS_REGION: no AWS region is set (nor AWS_REGION, AWS_DEFAULT_REGION, or the AWS profile's region)")),
    "profile not there": ({"AWS_PROFILE": "nope"}, REGION, (
        "the AWS credentials could not be used: The config profile (nope) could not be found; log in again")),
}


@pytest.mark.parametrize(("env", "region", "words"), SET_UP.values(), ids=SET_UP.keys())
def test_an_aws_configuration_botocore_cannot_set_up_a_client_with_is_a_refusal_saying_what_is_wrong(
        aws, monkeypatch, env: dict[str, str], region: str | None, words: str):
    """No retry mends a configuration: each is a refusal (never an unreachable EKS) saying what
    to fix; the same clients, configured, reach EKS."""
    assert eks.EksNodePools(aws, *eks_clients.clients(REGION)).describe("katuna-digits") is None
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(NodePoolFailed) as refused:
        eks_clients.clients(region)
    assert str(refused.value).startswith(words)


def test_an_endpoint_of_another_scheme_is_a_refusal_at_each_call_not_an_unreachable_eks(aws, monkeypatch):
    """botocore takes ``ftp://`` at set-up and its HTTP client refuses it at each call: that is
    the configuration, for good, not the network for now."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_EKS", "ftp://127.0.0.1:5000")
    pools = eks.EksNodePools(aws, *eks_clients.clients(REGION))
    with pytest.raises(NodePoolFailed) as refused:
        pools.describe("katuna-digits")
    assert str(refused.value) == BAD_ENDPOINT + ("An HTTP Client raised an unhandled exception: Not supported URL "
                                                 "scheme ftp")


def test_an_endpoint_that_does_not_answer_is_unreachable_for_now(aws, monkeypatch):
    """A connection refused is the network's, for now: a temporary error, tried again."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_EKS", f"http://127.0.0.1:{port}")
    pools = eks.EksNodePools(aws, *eks_clients.clients(REGION, timeout=2))
    with pytest.raises(TemporaryError, match=r"^EKS is unreachable for now \(tried again later\): Could not connect"):
        pools.describe("katuna-digits")


def test_a_service_whose_aws_configuration_cannot_make_a_client_refuses_to_start_in_one_line(tmp_path):
    """``katuna serve`` builds the node-pool adapter before its workers do: a configuration it
    cannot be built from is one line and exit 2, not a traceback of every worker failing to boot."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_ENDPOINT_URL": "localhost:5000", "KATUNA_EKS_CLUSTER": "tuning", "KATUNA_EKS_REGION": REGION,
           "KATUNA_EKS_SUBNETS": "subnet-0a1b2c3d", "KATUNA_EKS_NODE_ROLE": ROLE}
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    done = warm_run(warm_runner(), [sys.executable, "-m", "functions", "serve", "--db", str(tmp_path / "k.db"),
                                    "--port", str(port)], Path.cwd(), env, 120)
    assert (done.returncode, done.stderr.splitlines()[-1]) == (2, "error: " + BAD_ENDPOINT + "Invalid endpoint: "
                                                                                           "localhost:5000")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("call,request_,words", [
    ("create", {"scalingConfig": {"minSize": 3, "maxSize": 1, "desiredSize": 2}},
     "minSize can't be greater than desiredSize"),
    ("create", {"scalingConfig": {"minSize": 0, "maxSize": 2, "desiredSize": 3}},
     "desiredSize can't be greater than maxSize"),
    ("create", {"instanceTypes": ["m5.xlarge", "m5.xlargee", "t9.huge"]},
     "The following supplied instance types do not exist: [m5.xlargee, t9.huge]"),
    ("create", {"taints": [{"key": "katuna.dev/trial", "value": "true", "effect": "NoSchedule"}]},
     "Taint effect NoSchedule is not one of NO_SCHEDULE, NO_EXECUTE, PREFER_NO_SCHEDULE"),
    ("create", {"instanceTypes": ["m5.xlarge"] * 21}, "at most 20 instance types may be given, 21 were"),
    ("create", {"instanceTypes": ["m7g.large", "t4g.medium"], "amiType": "AL2023_x86_64_STANDARD"},
     "[m7g.large, t4g.medium] is not a valid instance type for requested amiType AL2023_x86_64_STANDARD"),
    ("create", {"instanceTypes": ["g5.xlarge"], "amiType": "AL2023_ARM_64_NVIDIA"},
     "[g5.xlarge] is not a valid instance type for requested amiType AL2023_ARM_64_NVIDIA"),
    ("create", {"taints": [{"key": f"t{n}", "value": "v", "effect": "NO_SCHEDULE"} for n in range(51)]},
     "at most 50 taints; 51 were given"),
    ("create", {"labels": {"a/b/c": "x"}}, 'Invalid value: "a/b/c": a label key'),
    ("create", {"labels": {"team": "-x-"}}, "must start and end with an alphanumeric character"),
    ("update", {"scalingConfig": {"minSize": 5, "maxSize": 2}}, "Minimum capacity 5 can't be greater than desired "
                                                                "size 0"),
    ("update", {"scalingConfig": {"minSize": 7}}, "Minimum capacity 7 can't be greater than desired size 0"),
    ("update", {"scalingConfig": {"maxSize": 2, "desiredSize": 3}}, "desired capacity 3 can't be greater than max "
                                                                    "size 2"),
    ("update", {"labels": {"addOrUpdateLabels": {"team": "vision-"}}}, "must start and end with an alphanumeric"),
    ("update", {"taints": {"addOrUpdateTaints": [{"key": "k", "value": "v", "effect": "NoExecute"}]}},
     "Taint effect NoExecute"),
])
def test_the_stand_in_refuses_a_node_group_configuration_eks_refuses(aws, pools, call, request_, words):
    """What katuna sends passes (the other tests); one field away from it, EKS answers 400, and
    so does the stand-in: an update's partial limits are judged merged into the group's."""
    pools.ensure(spot_pool())
    moto_eks.minutes_pass()
    before = group(pools)
    if call == "create":
        sent = {**eks_requests.create_request(aws, spot_pool(name="other")), **request_}
        method = pools.eks.create_nodegroup
    else:
        sent = {"clusterName": "tuning", "nodegroupName": "katuna-digits", **request_}
        method = pools.eks.update_nodegroup_config
    with pytest.raises(ClientError) as refused:
        method(**sent)
    assert refused.value.response["Error"]["Code"] == "InvalidParameterException"
    assert words in refused.value.response["Error"]["Message"]
    assert pools.describe("other") is None and group(pools) == before, "nothing changed"


def test_a_node_group_name_no_label_value_can_hold_is_refused_by_the_stand_in_as_by_eks(aws, pools):
    """The name is the nodes' katuna.dev/pool label value: EKS refuses the labels of ``trials-``."""
    with pytest.raises(NodePoolFailed, match="InvalidParameterException: Invalid value: \"trials-\""):
        pools.ensure(spot_pool(name="trials-"))


def test_a_group_being_deleted_has_no_node_role_or_subnets_to_keep(pools: eks.EksNodePools):
    """The provisioning script's ``up`` refuses another node role or subnets than an existing
    group's, not those of a group being deleted: the one created once it is gone takes them."""
    pools.ensure(spot_pool())
    moto_eks.minutes_pass()
    assert pools.node_settings("katuna-digits") == (ROLE, frozenset(pools.cluster.subnets))
    pools.delete("katuna-digits")
    assert pools.node_settings("katuna-digits") is None


IMDS = {"HttpEndpoint": "enabled", "HttpTokens": "required", "HttpPutResponseHopLimit": 1}


def launch_template_of(pools: eks.EksNodePools, name: str = "katuna-digits") -> dict:
    """The content of the launch template version the group boots from, as EC2 holds it."""
    spec = group(pools, name)["launchTemplate"]
    [version] = pools.ec2.describe_launch_template_versions(LaunchTemplateName=spec["name"],
                                                            Versions=[spec["version"]])["LaunchTemplateVersions"]
    return version["LaunchTemplateData"]


def katunas_templates(pools: eks.EksNodePools) -> list[str]:
    return sorted(t["LaunchTemplateName"] for t in pools.ec2.describe_launch_templates()["LaunchTemplates"])


def test_a_group_katuna_creates_requires_imdsv2_with_one_hop_so_no_pod_reads_the_node_roles_credentials(pools):
    """Without a launch template EKS's default one leaves IMDSv1 on and a hop limit of 2: any
    trial pod reads the node role's credentials at 169.254.169.254. katuna's template requires
    IMDSv2 tokens with a hop limit of 1 and holds the disk size on the AMI's root device."""
    pools.ensure(spot_pool(), owner="5e0f9b2c7d41")
    data = launch_template_of(pools)
    assert data["MetadataOptions"] == IMDS
    assert data["BlockDeviceMappings"] == [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 80}}]
    [template] = pools.ec2.describe_launch_templates()["LaunchTemplates"]
    assert {t["Key"]: t["Value"] for t in template["Tags"]} == {
        "app.kubernetes.io/managed-by": "katuna", "katuna.dev/cluster": "tuning", "katuna.dev/pool": "katuna-digits"}
    pools.ensure(spot_pool(name="default-disk", disk_size_gb=None))
    default = launch_template_of(pools, "default-disk")
    assert default["MetadataOptions"] == IMDS and "BlockDeviceMappings" not in default, "the AMI's own disk size"


def test_the_launch_template_is_deleted_once_its_group_is_gone_and_a_delete_run_twice_is_fine(pools):
    pools.ensure(spot_pool())
    pools.ensure(spot_pool(name="other"))
    moto_eks.minutes_pass()
    [mine] = [name for name in katunas_templates(pools) if name.startswith("katuna-katuna-digits-")]
    change = pools.delete("katuna-digits")
    assert pools.check(change.operation) == OperationStatus(False)
    assert mine in katunas_templates(pools), "EKS launches the group's nodes from it until the group is gone"
    moto_eks.minutes_pass()
    assert pools.check(change.operation) == OperationStatus(
        True, also=f"deleted the launch template katuna made for it: {mine}"), "named, for the provisioning script"
    assert pools.check(change.operation) == OperationStatus(True), "a check delivered twice: nothing left to delete"
    assert pools.delete("katuna-digits") == PoolChange(), "a delete delivered twice"
    assert [name.startswith("katuna-other-") for name in katunas_templates(pools)] == [True], "another group's stays"


def gone_with_its_template(pools: eks.EksNodePools) -> str:
    """The operation of katuna-digits' delete, its group gone and its launch template not yet
    deleted (its check not yet made)."""
    pools.ensure(spot_pool())
    moto_eks.minutes_pass()
    change = pools.delete("katuna-digits")
    moto_eks.minutes_pass()
    assert pools.describe("katuna-digits") is None and len(katunas_templates(pools)) == 1
    return change.operation


def once(action):
    """A botocore event handler that runs ``action`` at its first event only."""
    done: list[bool] = []

    def handler(**_) -> None:
        if not done:
            done.append(True)
            action()
    return handler


def test_a_create_whose_launch_template_the_end_of_an_earlier_group_deletes_makes_it_again(pools):
    """The template is named by its content, so a group created again under a name whose earlier
    group has just gone finds that group's template, which the earlier delete's check may delete
    between that look and the create: EKS refuses a group of a template it does not have, so the
    create makes the template again and asks once more."""
    operation = gone_with_its_template(pools)
    other_service = eks.EksNodePools(pools.cluster, *eks_clients.clients(REGION))
    pools.eks.meta.events.register("before-call.eks.CreateNodegroup",
                                   once(lambda: other_service.check(operation)))
    assert pools.ensure(spot_pool()).created
    assert group(pools)["launchTemplate"]["name"] in katunas_templates(pools)
    assert launch_template_of(pools)["MetadataOptions"]["HttpTokens"] == "required"


def test_a_launch_template_a_new_group_of_the_same_name_took_meanwhile_is_kept(pools):
    """The delete's check finds the group gone, and before it deletes the template a create of
    the same name takes it: the group is looked for again once the templates are listed, and
    the new group keeps its template; it goes once that group is gone."""
    operation = gone_with_its_template(pools)
    other_service = eks.EksNodePools(pools.cluster, *eks_clients.clients(REGION))
    pools.ec2.meta.events.register("after-call.ec2.DescribeLaunchTemplates",
                                   once(lambda: other_service.ensure(spot_pool())))
    assert pools.check(operation) == OperationStatus(True)
    template = group(pools)["launchTemplate"]["name"]
    assert template in katunas_templates(pools), "the new group boots from it"
    moto_eks.minutes_pass()
    assert pools.check(pools.delete("katuna-digits").operation) == OperationStatus(False)
    moto_eks.minutes_pass()
    assert pools.check("delete:katuna-digits") == OperationStatus(
        True, also=f"deleted the launch template katuna made for it: {template}")
    assert katunas_templates(pools) == []


def test_a_create_run_again_makes_no_second_template(pools):
    """At-least-once delivery: an earlier run that made the template and stopped before the
    group, a run that made it meanwhile, and a create delivered twice all leave one template."""
    left = pools.ec2.create_launch_template(**eks_requests.template_request(pools.cluster, spot_pool()))
    assert pools.ensure(spot_pool()).created
    assert pools.ensure(spot_pool()).operation == "create:katuna-digits", "delivered twice: the create under way"
    assert katunas_templates(pools) == [left["LaunchTemplate"]["LaunchTemplateName"]]
    assert group(pools)["launchTemplate"]["id"] == left["LaunchTemplate"]["LaunchTemplateId"]
    other = spot_pool(name="raced")
    meanwhile = {"made": False}

    def another_run_makes_it(**_) -> None:
        if not meanwhile["made"]:
            meanwhile["made"] = True
            boto3.client("ec2", region_name=REGION).create_launch_template(
                **eks_requests.template_request(pools.cluster, other))

    pools.ec2.meta.events.register("after-call.ec2.DescribeLaunchTemplates", another_run_makes_it)
    assert pools.ensure(other).created
    assert len(katunas_templates(pools)) == 2
    assert group(pools, "raced")["launchTemplate"]["name"] == eks_requests.template_name(pools.cluster, other)


def test_a_template_asked_again_with_another_disk_size_is_another_template(pools):
    """The template's name follows from its content: a group made again with another disk size
    boots that size, not a template made for the size before."""
    ours, bigger = (eks_requests.template_name(pools.cluster, spot_pool(disk_size_gb=size)) for size in (80, 120))
    elsewhere = eks_requests.template_name(eks_requests.EksCluster("other"), spot_pool())
    assert len({ours, bigger, elsewhere}) == 3 and len(ours) <= 128
    pools.ec2.create_launch_template(**eks_requests.template_request(pools.cluster, spot_pool()))
    pools.ensure(spot_pool(disk_size_gb=120))
    assert launch_template_of(pools)["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 120


@pytest.mark.parametrize("change,code,words", [
    ({"diskSize": 80}, "InvalidParameterException", "Disk size must be specified within the launch template."),
    ({"remoteAccess": {"ec2SshKey": "ops"}}, "InvalidParameterException",
     "Remote access configuration cannot be specified with a launch template."),
    ({"launchTemplate": {"name": "katuna-none", "version": "1"}}, "InvalidParameterException",
     "Launch template katuna-none does not exist"),
    ({"launchTemplate": {"name": "typed", "version": "2"}}, "InvalidParameterException",
     "Version 2 of launch template typed does not exist"),
    ({"launchTemplate": {"name": "typed", "id": "lt-0a1b2c3d4e5f6a7b8", "version": "1"}},
     "InvalidParameterException", "Either provide launch template ID or launch template name in the request."),
    ({"launchTemplate": {"name": "typed", "version": "1"}}, "InvalidRequestException",
     "Cannot specify instance types in launch template and API Request"),
], ids=["disk-size", "remote-access", "no-template", "no-version", "name-and-id", "types-twice"])
def test_the_stand_in_refuses_launch_templates_eks_refuses(aws, pools, change, code, words):
    """moto alone takes a template or version EC2 does not have, and instance types both in the
    template and the request; EKS refuses them, as it refuses a disk size or SSH access beside a
    template (they belong in it)."""
    pools.ec2.create_launch_template(LaunchTemplateName="typed", LaunchTemplateData={"InstanceType": "m5.xlarge"})
    pools.ec2.create_launch_template(**eks_requests.template_request(aws, spot_pool()))
    request = {**eks_requests.create_request(aws, spot_pool()), **change}
    with pytest.raises(ClientError) as refused:
        pools.eks.create_nodegroup(**request)
    assert (refused.value.response["Error"]["Code"], refused.value.response["Error"]["Message"]) == (code, words)
    assert pools.eks.list_nodegroups(clusterName="tuning")["nodegroups"] == []
    pools.eks.create_nodegroup(**eks_requests.create_request(aws, spot_pool()))
    assert "diskSize" not in group(pools) and "remoteAccess" not in group(pools), "the template's"
