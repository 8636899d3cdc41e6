"""The EKS adapter: boto3 against moto, and botocore's Stubber for what moto does not model
(CREATING and DELETING states, a failed creation, throttling). What every cloud's node pools
do is checked by the contract in tests/test_conformance_nodepools.py."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from functions.core.errors import TemporaryError
from functions.core.nodepool import NodePool, NodePoolFailed, OperationStatus, PoolChange
from infra import eks

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/katuna-nodes"
TEMPLATE = "k8s.io/cluster-autoscaler/node-template"


@pytest.fixture
def cluster(monkeypatch) -> eks.EksCluster:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return eks.EksCluster("tuning", ("subnet-0a1b2c3d", "subnet-4e5f6a7b"), ROLE)


@pytest.fixture
def aws(cluster: eks.EksCluster):
    with mock_aws():
        boto3.client("eks", region_name=REGION).create_cluster(
            name="tuning", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(cluster.subnets)})
        yield cluster


@pytest.fixture
def pools(aws: eks.EksCluster) -> eks.EksNodePools:
    return eks.EksNodePools(aws, *eks.clients(REGION))


def spot_pool(**overrides) -> NodePool:
    fields = dict(name="katuna-digits", provider="eks", capacity="spot", machine_types=("m5.xlarge", "m5a.xlarge"),
                  max_nodes=6, disk_size_gb=80, labels=(("team", "vision"),))
    return NodePool(**(fields | overrides))


def group(pools: eks.EksNodePools, name: str = "katuna-digits") -> dict:
    return pools.eks.describe_nodegroup(clusterName="tuning", nodegroupName=name)["nodegroup"]


def autoscaling_group_of(pools: eks.EksNodePools) -> str:
    """moto names a node group's Auto Scaling group but creates none: create it, as EKS would."""
    name = group(pools)["resources"]["autoScalingGroups"][0]["name"]
    pools.autoscaling.create_launch_configuration(LaunchConfigurationName="lc", ImageId="ami-12c6146b",
                                                  InstanceType="m5.xlarge")
    pools.autoscaling.create_auto_scaling_group(AutoScalingGroupName=name, LaunchConfigurationName="lc",
                                                MinSize=0, MaxSize=6, AvailabilityZones=[f"{REGION}a"])
    return name


@pytest.mark.slow
def test_a_spot_node_group_scales_from_zero_with_labels_taint_and_subnets(aws, pools):
    change = pools.ensure(spot_pool(), owner="5e0f9b2c7d41")
    assert change == PoolChange("create:katuna-digits", created=True, owned=True)
    found = group(pools)
    assert found["tags"]["katuna-study-uid"] == "5e0f9b2c7d41", "the study whose request created it"
    assert found["capacityType"] == "SPOT"
    assert found["scalingConfig"] == {"minSize": 0, "maxSize": 6, "desiredSize": 0}
    assert found["instanceTypes"] == ["m5.xlarge", "m5a.xlarge"] and found["diskSize"] == 80
    assert found["labels"] == {"team": "vision", "katuna.dev/pool": "katuna-digits"}
    assert found["taints"] == [{"key": "katuna.dev/trial", "value": "true", "effect": "NO_SCHEDULE"}]
    assert found["subnets"] == list(aws.subnets) and found["nodeRole"] == ROLE


def test_the_request_is_pure_with_a_token_derived_from_it(aws):
    first, second = (eks.create_request(aws, spot_pool()) for _ in range(2))
    assert first == second and len(first["clientRequestToken"]) == 36
    assert eks.create_request(aws, spot_pool(max_nodes=7))["clientRequestToken"] != first["clientRequestToken"]
    assert eks.create_request(aws, spot_pool(capacity="on-demand"))["capacityType"] == "ON_DEMAND"


def test_once_active_its_auto_scaling_group_is_tagged_for_scale_up_from_zero(pools):
    pools.ensure(spot_pool())
    assert pools.check("create:katuna-digits") == OperationStatus(False), "pending until its group is there to tag"
    asg = autoscaling_group_of(pools)
    assert pools.check("create:katuna-digits") == OperationStatus(True)
    tags = {t["Key"]: t["Value"] for t in pools.autoscaling.describe_tags(
        Filters=[{"Name": "auto-scaling-group", "Values": [asg]}])["Tags"]}
    assert tags == {
        f"{TEMPLATE}/label/team": "vision",
        f"{TEMPLATE}/label/katuna.dev/pool": "katuna-digits",
        f"{TEMPLATE}/label/eks.amazonaws.com/nodegroup": "katuna-digits",
        f"{TEMPLATE}/label/eks.amazonaws.com/capacityType": "SPOT",
        f"{TEMPLATE}/taint/katuna.dev/trial": "true:NoSchedule",
    }


def _described(status: str, **extra) -> dict:
    return {"nodegroup": {"nodegroupName": "katuna-digits", "clusterName": "tuning", "status": status,
                          "capacityType": "SPOT", "scalingConfig": {"minSize": 0, "maxSize": 6, "desiredSize": 0},
                          **extra}}


NAMES = {"clusterName": "tuning", "nodegroupName": "katuna-digits"}


def stubbed(cluster: eks.EksCluster) -> tuple[eks.EksNodePools, Stubber]:
    client = boto3.client("eks", region_name=REGION)
    return eks.EksNodePools(cluster, client, boto3.client("autoscaling", region_name=REGION)), Stubber(client)


def test_creating_and_deleting_states_are_pending(cluster):
    pools, stubber = stubbed(cluster)
    stubber.add_response("describe_nodegroup", _described("CREATING"), NAMES)
    stubber.add_response("describe_nodegroup", _described("DELETING"), NAMES)
    stubber.add_client_error("describe_nodegroup", "ResourceNotFoundException", "No node group found", 404,
                             expected_params=NAMES)
    with stubber:
        assert pools.check("create:katuna-digits") == OperationStatus(False)
        assert pools.check("delete:katuna-digits") == OperationStatus(False)
        assert pools.check("delete:katuna-digits") == OperationStatus(True)


def test_a_node_group_found_creating_is_waited_for(cluster):
    pools, stubber = stubbed(cluster)
    stubber.add_client_error("create_nodegroup", "ResourceInUseException", "NodeGroup already exists", 409)
    stubber.add_response("describe_nodegroup", _described("CREATING", tags={"katuna-study-uid": "5e0f9b2c7d41"}),
                         NAMES)
    with stubber:
        assert pools.ensure(spot_pool(), owner="5e0f9b2c7d41") == PoolChange(
            "create:katuna-digits", created=True, owned=True), "its own earlier create went through"


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
    stubber.add_client_error("create_nodegroup", code, f"{code} happened", status)
    with stubber, pytest.raises(error, match=f"{code} happened"):
        pools.ensure(spot_pool())


def test_a_group_busy_with_another_change_is_tried_again_not_given_up(cluster):
    """EKS refuses to delete or update a group that is not active with a 409
    ResourceInUseException: the release waits for the group, it does not fail for good."""
    pools, stubber = stubbed(cluster)
    busy = "Nodegroup cannot be deleted as it is currently not in Active State"
    stubber.add_client_error("delete_nodegroup", "ResourceInUseException", busy, 409, expected_params=NAMES)
    stubber.add_response("describe_nodegroup", _described("ACTIVE"), NAMES)
    stubber.add_client_error("update_nodegroup_config", "ResourceInUseException", busy, 409)
    with stubber:
        with pytest.raises(TemporaryError, match="not in Active State"):
            pools.delete("katuna-digits")
        with pytest.raises(TemporaryError, match="not in Active State"):
            pools.scale_back(spot_pool(), {"minSize": 1, "maxSize": 3})


def test_a_request_botocore_refuses_before_sending_is_a_refusal_not_an_outage(aws, pools):
    """botocore checks a request against EKS's model before sending it; what it refuses EKS
    would refuse too, so trying again cannot help."""
    with pytest.raises(NodePoolFailed, match="labels.team, value: 0, valid min length: 1"):
        pools.ensure(spot_pool(labels=(("team", ""),)))
    assert pools.describe("katuna-digits") is None


def test_limits_given_back_move_the_desired_size_only_when_it_falls_outside_them(aws):
    inside = eks.scaling_request(aws, "trials", 1, 3, desired=2)["scalingConfig"]
    below = eks.scaling_request(aws, "trials", 1, 3, desired=0)["scalingConfig"]
    assert inside == {"minSize": 1, "maxSize": 3}, "the autoscaler owns the desired size"
    assert below == {"minSize": 1, "maxSize": 3, "desiredSize": 1}, "EKS refuses a desired size below the minimum"


def test_an_adopted_group_gets_its_limits_back_with_a_desired_size_eks_accepts(pools):
    pools.eks.create_nodegroup(**{**eks.create_request(pools.cluster, spot_pool(max_nodes=3)),
                                  "scalingConfig": {"minSize": 1, "maxSize": 3, "desiredSize": 1}})
    change = pools.ensure(spot_pool(), owner="5e0f9b2c7d41")
    assert change == PoolChange("update:katuna-digits", adopted={"minSize": 1, "maxSize": 3})
    pools.eks.update_nodegroup_config(clusterName="tuning", nodegroupName="katuna-digits",
                                      scalingConfig={"minSize": 0, "maxSize": 6, "desiredSize": 0})
    assert pools.scale_back(spot_pool(), change.adopted) == PoolChange("update:katuna-digits")
    assert group(pools)["scalingConfig"] == {"minSize": 1, "maxSize": 3, "desiredSize": 1}


def test_a_group_launching_instance_types_the_study_does_not_accept_is_not_adopted(pools):
    pools.eks.create_nodegroup(**{**eks.create_request(pools.cluster, spot_pool()),
                                  "instanceTypes": ["m5.xlarge", "c5.large"]})
    with pytest.raises(NodePoolFailed, match="nodePool.instanceTypes: node pool katuna-digits exists with "
                                             "instance types m5.xlarge, c5.large; the study accepts m5.xlarge, "
                                             "m5a.xlarge"):
        pools.ensure(spot_pool(), owner="5e0f9b2c7d41")
