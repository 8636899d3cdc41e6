"""EKS node groups in the states no wait brings back, against moto taught to reach them
(tests/moto_eks.py): a delete that failed, a group ``DEGRADED`` by an issue that lasts (its
nodes' role deleted) fail a study's pool at once, naming EKS's issue and what to do; one
``DEGRADED`` by an issue that passes (EC2 without capacity) is used as it is. A create EKS
refuses for good leaves no launch template behind."""

from __future__ import annotations

import json
from dataclasses import replace

import boto3
import moto_eks
import moto_eks_lifecycle
import pytest
from moto.eks.models import eks_backends
from test_nodepools_eks import REGION, aws, baseline, cluster, katunas_templates, pools, spot_pool  # noqa: F401

from functions.core.errors import TemporaryError
from functions.core.nodepool import NodePoolFailed, OperationStatus
from infra import eks

NAME = "katuna-digits"
ADVICE = ("EKS does not bring it back by itself: fix what it names, then delete the group{again} (aws eks "
          f"delete-nodegroup --cluster-name tuning --nodegroup-name {NAME}): it is created anew when next asked for")


def _group(name: str = NAME):
    return eks_backends["123456789012"][REGION].clusters["tuning"].nodegroups[name]


def _active(pools: eks.EksNodePools) -> None:  # noqa: F811
    assert pools.ensure(spot_pool()).created
    moto_eks.minutes_pass()
    assert pools.describe(NAME).state == "ACTIVE", "its CREATING over"


def test_a_group_whose_delete_failed_fails_at_once_saying_to_delete_it_again(pools):  # noqa: F811
    """It was claimed and reported ready, a group EKS keeps DELETE_FAILED until it is deleted
    again; a delete asked again once the cause is gone deletes it, and it is created anew."""
    _active(pools)
    moto_eks_lifecycle.hold_deletion(_group())
    assert pools.check(pools.delete(NAME).operation) == OperationStatus(False)
    moto_eks.minutes_pass()
    with pytest.raises(NodePoolFailed) as refused:
        pools.ensure(spot_pool())
    assert str(refused.value) == (
        f"EKS node group {NAME} failed to delete: {moto_eks_lifecycle.DELETION_FAILURE['code']}: "
        f"{moto_eks_lifecycle.DELETION_FAILURE['message']}; {ADVICE.format(again=' again')}")
    assert pools.eks.describe_nodegroup(clusterName="tuning", nodegroupName=NAME)["nodegroup"]["status"] == \
        "DELETE_FAILED", "nothing asked of it"
    pools.delete(NAME)
    moto_eks.minutes_pass()
    assert pools.describe(NAME) is None
    assert pools.ensure(spot_pool()).created


def test_a_group_degraded_by_its_nodes_role_gone_fails_at_once_naming_the_setting(pools):  # noqa: F811
    """It was taken as it was, and an update of it refused as not active until KATUNA_POOL_WAIT."""
    _active(pools)
    boto3.client("iam", region_name=REGION).delete_role(RoleName="katuna-nodes")
    for ask in (lambda: pools.ensure(spot_pool()), lambda: pools.ensure(spot_pool(max_nodes=9))):
        with pytest.raises(NodePoolFailed) as refused:
            ask()
        assert refused.value.field == "KATUNA_EKS_NODE_ROLE"
        assert refused.value.reason == (
            f"EKS node group {NAME} is DEGRADED: IamNodeRoleNotFound: We couldn't find the IAM role for your managed "
            f"node group.; {ADVICE.format(again='')}")


def test_a_group_degraded_by_an_issue_that_passes_is_used_and_scaled(pools):  # noqa: F811
    """EC2 without Spot capacity leaves a group DEGRADED until a scale-out succeeds: it is used,
    and its maximum raised, as an active group's is."""
    _active(pools)
    moto_eks_lifecycle.degrade(_group(), "AsgInstanceLaunchFailures", "Could not launch Spot Instances. "
                               "InsufficientInstanceCapacity - There is no Spot capacity available that matches your "
                               "request. Launching EC2 instance failed.")
    assert pools.ensure(spot_pool()).operation is None
    change = pools.ensure(spot_pool(max_nodes=9))
    assert change.operation.startswith(f"update:{NAME}:")
    moto_eks.minutes_pass()
    assert pools.check(change.operation) == OperationStatus(True)
    assert pools.describe(NAME).max_nodes == 9


def test_a_create_refused_for_good_deletes_the_launch_template_made_for_it(aws, pools):  # noqa: F811
    """The template, made before the group, was left in EC2: no group holds it, so no delete of
    a group deletes it. A create refused for now keeps it for the next try."""
    gone = eks.EksNodePools(replace(aws, node_role="arn:aws:iam::123456789012:role/gone"), pools.eks,
                            pools.autoscaling, pools.ec2)
    for _ in range(2):
        with pytest.raises(NodePoolFailed, match="The role with name gone cannot be found"):
            gone.ensure(spot_pool())
        assert katunas_templates(pools) == [], "a refusal delivered twice too"
    _group_busy_cluster(pools)
    with pytest.raises(TemporaryError):
        pools.ensure(spot_pool())
    assert [name.startswith(f"katuna-{NAME}-") for name in katunas_templates(pools)] == [True]


def _group_busy_cluster(pools: eks.EksNodePools) -> None:  # noqa: F811
    """The cluster held ``UPDATING`` by an update of its configuration, as EKS holds it."""
    pools.eks.update_cluster_config(name="tuning", logging={"clusterLogging": [{"types": ["api"], "enabled": True}]})


@pytest.mark.parametrize("state", ["DEGRADED", "DELETE_FAILED"])
def test_status_of_a_group_eks_says_is_not_well_gives_eks_reason(pools, state: str):  # noqa: F811
    """``status`` printed the state alone, so an operator whose trials stayed pending learnt
    from it neither that EC2 had no Spot capacity nor why a delete failed."""
    from click.testing import CliRunner

    from infra.provision import main

    _active(pools)
    if state == "DEGRADED":
        issue = {"code": "AsgInstanceLaunchFailures", "message": "Could not launch Spot Instances. "
                 "InsufficientInstanceCapacity - There is no Spot capacity available that matches your request."}
        moto_eks_lifecycle.degrade(_group(), issue["code"], issue["message"])
    else:
        issue = moto_eks_lifecycle.DELETION_FAILURE
        moto_eks_lifecycle.hold_deletion(_group())
        pools.delete(NAME)
        moto_eks.minutes_pass()
    result = CliRunner().invoke(main, ["eks", "status", "--cluster", "tuning", "--nodegroup", NAME, "--region", REGION])
    assert result.exit_code == 0, result.output
    reason = f"{issue['code']}: {issue['message']}"
    assert json.loads(result.stdout)["state"] == state and json.loads(result.stdout)["message"] == reason
    assert result.stderr == f"warning: node pool {NAME} is {state}: {reason}\n", result.stderr
