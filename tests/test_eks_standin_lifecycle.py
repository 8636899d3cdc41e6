"""The EKS stand-in holds node groups ``CREATING``, ``DELETING`` and ``UPDATING`` for minutes of
stand-in time and refuses, meanwhile, what EKS refuses (tests/moto_eks_lifecycle.py); moto alone
makes each change at once."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import moto_eks
import moto_eks_iam
import moto_eks_lifecycle
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from kube_standin.clock import SimulatedClock
from kube_standin.clouds import eks_node_groups, eks_pools, eks_resize
from moto import mock_aws
from moto_cluster import fake_credentials

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/katuna-nodes"
GROUP = {"clusterName": "tuning", "nodegroupName": "trials"}

moto_eks.teach()


class Eks:
    """An EKS client of moto's, and the create request of node group trials of its cluster tuning."""

    def __init__(self, subnets: tuple[str, ...]) -> None:
        self.client = boto3.client("eks", region_name=REGION)
        self.client.create_cluster(name="tuning", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(subnets)})
        self.create_request = {**GROUP, "subnets": list(subnets), "nodeRole": ROLE, "instanceTypes": ["m5.xlarge"],
                               "scalingConfig": {"minSize": 0, "maxSize": 3, "desiredSize": 0}}

    def __getattr__(self, name: str):
        return getattr(self.client, name)


@pytest.fixture
def eks(monkeypatch) -> Iterator[Eks]:
    """EKS on moto, with cluster tuning in private subnets."""
    fake_credentials(monkeypatch, REGION)
    with mock_aws():
        moto_eks_iam.node_role(boto3.client("iam", region_name=REGION))
        yield Eks(moto_eks.network(boto3.client("ec2", region_name=REGION)))


def refused(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as refusal:
        call()
    return refusal.value.response["Error"]["Code"], refusal.value.response["Error"]["Message"]


def status(eks) -> str:
    return eks.describe_nodegroup(**GROUP)["nodegroup"]["status"]


def test_a_new_group_is_creating_for_minutes_and_refuses_changes_meanwhile(eks):
    assert eks.create_nodegroup(**eks.create_request)["nodegroup"]["status"] == "CREATING"
    moto_eks_lifecycle.advance(moto_eks_lifecycle.SECONDS["CREATING"] - 1)
    assert status(eks) == "CREATING"
    assert refused(lambda: eks.update_nodegroup_config(**GROUP, scalingConfig={"maxSize": 5})) == (
        "ResourceInUseException", "Nodegroup cannot be updated as it is currently not in Active State")
    assert refused(lambda: eks.delete_nodegroup(**GROUP))[0] == "ResourceInUseException"
    assert refused(lambda: eks.create_nodegroup(**eks.create_request))[0] == "ResourceInUseException"
    moto_eks_lifecycle.advance(1)
    assert status(eks) == "ACTIVE"


def test_a_deleted_group_is_deleting_for_minutes_and_holds_its_cluster_until_it_is_gone(eks):
    eks.create_nodegroup(**eks.create_request)
    moto_eks.minutes_pass()
    assert eks.delete_nodegroup(**GROUP)["nodegroup"]["status"] == "DELETING"
    assert status(eks) == "DELETING" and eks.list_nodegroups(clusterName="tuning")["nodegroups"] == ["trials"]
    assert refused(lambda: eks.delete_cluster(name="tuning")) == ("ResourceInUseException",
                                                                  "Cluster has nodegroups attached")
    assert refused(lambda: eks.delete_nodegroup(**GROUP))[0] == "ResourceInUseException"
    assert refused(lambda: eks.update_nodegroup_config(**GROUP, scalingConfig={"maxSize": 5}))[0] == (
        "ResourceInUseException")
    assert refused(lambda: eks.create_nodegroup(**eks.create_request))[0] == "ResourceInUseException"
    moto_eks.minutes_pass()
    assert refused(lambda: eks.describe_nodegroup(**GROUP)) == ("ResourceNotFoundException",
                                                                "No node group found for name: trials.")
    assert eks.delete_cluster(name="tuning")["cluster"]["name"] == "tuning"


def test_the_autoscaler_keeps_the_nodes_of_a_group_being_deleted_until_it_is_gone(eks):
    """EKS drains and terminates a deleted group's nodes before the group is gone, billing them
    meanwhile: the stand-in's autoscaler sees the group as being deleted, as a GKE pool STOPPING."""
    eks.create_nodegroup(**eks.create_request)
    pools = eks_pools(eks_node_groups(eks.client, "tuning"))
    assert pools() == [], "no nodes while it is created"
    moto_eks.minutes_pass()
    assert [(pool.name, pool.deleting) for pool in pools()] == [("trials", False)]
    eks.delete_nodegroup(**GROUP)
    assert [(pool.name, pool.deleting) for pool in pools()] == [("trials", True)]
    moto_eks.minutes_pass()
    assert pools() == []


def test_an_update_is_in_progress_for_a_while_before_the_group_shows_it(eks):
    eks.create_nodegroup(**eks.create_request)
    moto_eks.minutes_pass()
    update = eks.update_nodegroup_config(**GROUP, scalingConfig={"maxSize": 5}, labels={
        "addOrUpdateLabels": {"team": "vision"}})["update"]
    assert update["status"] == "InProgress"
    found = eks.describe_nodegroup(**GROUP)["nodegroup"]
    assert (found["status"], found["scalingConfig"]["maxSize"], found.get("labels") or {}) == ("UPDATING", 3, {})
    assert refused(lambda: eks.update_nodegroup_config(**GROUP, scalingConfig={"maxSize": 6}))[0] == (
        "ResourceInUseException")
    described = {"name": "tuning", "updateId": update["id"], "nodegroupName": "trials"}
    assert eks.describe_update(**described)["update"]["status"] == "InProgress"
    moto_eks.minutes_pass()
    assert eks.describe_update(**described)["update"]["status"] == "Successful"
    found = eks.describe_nodegroup(**GROUP)["nodegroup"]
    assert (found["status"], found["scalingConfig"]["maxSize"], found["labels"]) == ("ACTIVE", 5, {"team": "vision"})


def test_a_group_in_public_subnets_that_give_no_address_fails_once_its_creation_is_over(eks):
    public = moto_eks.network(boto3.client("ec2", region_name=REGION), public=True)
    eks.create_cluster(name="edge", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(public)})
    edge = {**GROUP, "clusterName": "edge"}
    eks.create_nodegroup(**{**eks.create_request, **edge, "subnets": list(public)})
    assert eks.describe_nodegroup(**edge)["nodegroup"]["status"] == "CREATING"
    moto_eks.minutes_pass()
    found = eks.describe_nodegroup(**edge)["nodegroup"]
    assert found["status"] == "CREATE_FAILED"
    assert [issue["code"] for issue in found["health"]["issues"]] == ["Ec2SubnetInvalidConfiguration"]
    assert eks.delete_nodegroup(**edge)["nodegroup"]["status"] == "DELETING", "a failed group can be deleted"


def test_on_a_simulated_clock_the_states_end_when_the_clock_reaches_them(eks):
    """The cost benchmark's clock is told when a group's creation ends, and jumps there."""
    clock = SimulatedClock()
    moto_eks_lifecycle.pace(clock, speed=1.0)
    try:
        eks.create_nodegroup(**eks.create_request)
        assert clock.next_wake() == pytest.approx(clock.now + moto_eks_lifecycle.SECONDS["CREATING"])
        assert status(eks) == "CREATING"
        assert clock.advance() and status(eks) == "ACTIVE"
    finally:
        moto_eks_lifecycle.pace(moto_eks_lifecycle.RealClock(), speed=0.0)


@pytest.mark.parametrize("change", [
    {"capacityType": "PREEMPTIBLE"}, {"capacityType": "spot"}, {"amiType": "UBUNTU_2204_x86_64"},
    {"scalingConfig": {"minSize": 0, "maxSize": 0, "desiredSize": 0}},
    {"scalingConfig": {"minSize": -1, "maxSize": 2, "desiredSize": 0}},
    {"scalingConfig": {"minSize": 0, "maxSize": 2, "desiredSize": -1}},
], ids=["preemptible", "lower-case", "ami", "max-0", "min-negative", "desired-negative"])
def test_values_outside_ekss_shapes_are_refused_as_eks_refuses_them(eks, change):
    """``capacityType`` and ``amiType`` take only their enums' values, and ``scalingConfig`` a
    ``maxSize`` of at least 1 and no negative size: botocore checks the sizes before sending (a
    client without that check sends them), EKS refuses each, and so must the stand-in."""
    unchecked = boto3.client("eks", region_name=REGION, config=Config(parameter_validation=False))
    code, _ = refused(lambda: unchecked.create_nodegroup(**{**eks.create_request, **change}))
    assert code == "InvalidParameterException"
    assert eks.list_nodegroups(clusterName="tuning")["nodegroups"] == []
    if "scalingConfig" in change:
        eks.create_nodegroup(**eks.create_request)
        code, _ = refused(lambda: unchecked.update_nodegroup_config(**GROUP, scalingConfig=change["scalingConfig"]))
        assert code == "InvalidParameterException"


def test_the_desired_size_is_what_the_autoscaler_sets_its_auto_scaling_group_to(eks):
    """The cluster autoscaler scales a managed node group through its Auto Scaling group's desired
    capacity, and EKS reports that as the group's ``desiredSize``: a decrease of the maximum below
    it is refused as EKS refuses it, and an update's sizes reach the Auto Scaling group once done."""
    eks.create_nodegroup(**eks.create_request)
    moto_eks.minutes_pass()
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    resize = eks_resize(eks, autoscaling, "tuning")
    resize("trials", 2)
    assert eks.describe_nodegroup(**GROUP)["nodegroup"]["scalingConfig"] == {"minSize": 0, "maxSize": 3, "desiredSize": 2}
    assert refused(lambda: eks.update_nodegroup_config(**GROUP, scalingConfig={"maxSize": 1})) == (
        "InvalidParameterException", "desired capacity 2 can't be greater than max size 1")
    asg = eks.describe_nodegroup(**GROUP)["nodegroup"]["resources"]["autoScalingGroups"][0]["name"]
    assert refused(lambda: autoscaling.set_desired_capacity(AutoScalingGroupName=asg, DesiredCapacity=4))[0] == \
        "ValidationError", "above the Auto Scaling group's maximum"
    eks.update_nodegroup_config(**GROUP, scalingConfig={"maxSize": 5})
    moto_eks.minutes_pass()
    assert status(eks) == "ACTIVE"
    found = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg])["AutoScalingGroups"][0]
    assert (found["MinSize"], found["MaxSize"], found["DesiredCapacity"]) == (0, 5, 2), "the desired size kept"
    resize("trials", 0)
    assert eks.describe_nodegroup(**GROUP)["nodegroup"]["scalingConfig"]["desiredSize"] == 0
