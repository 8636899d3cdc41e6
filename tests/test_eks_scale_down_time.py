"""A node group katuna made for a study gives back its idle nodes after two minutes: katuna tags its
Auto Scaling group with the cluster-autoscaler's ``scaledownunneededtime`` option (boto3 against
moto, taught EKS's Auto Scaling groups by tests/moto_eks.py), never an adopted group's; and the
stand-in's autoscaler honours the option as the real one's AWS provider does (a simulated clock)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import moto_eks
import pytest
from kube_standin.clock import SimulatedClock, rfc3339
from kube_standin.clouds import UNNEEDED_TIME_TAG, eks_node_groups, eks_pools
from kube_standin.containers import Run, SimulatedContainers
from kube_standin.durations import parse_duration
from kube_stub import KubeStub
from moto import mock_aws
from moto_cluster import fake_credentials, make_cluster
from test_kube_standin_simulated import finished, job, pods_of

from functions.core.nodepool import NodePool
from infra import eks, eks_clients, eks_requests

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/katuna-nodes"
OWNER = "5e0f9b2c7d41"
RUN_SECONDS = 900.0
"""How long each trial runs: longer than the autoscaler's delay after a scale-up (10 minutes),
so that what removes the idle nodes is each group's unneeded time."""

moto_eks.teach()


@pytest.fixture
def aws(monkeypatch) -> Iterator[eks_requests.EksCluster]:
    """Cluster tuning in moto, with private subnets of its VPC for its node groups."""
    fake_credentials(monkeypatch, REGION)
    with mock_aws():
        yield eks_requests.EksCluster("tuning", make_cluster(REGION, ROLE), ROLE)


@pytest.fixture
def pools(aws: eks_requests.EksCluster) -> eks.EksNodePools:
    return eks.EksNodePools(aws, *eks_clients.clients(REGION))


def spot_pool(name: str = "katuna-digits") -> NodePool:
    return NodePool(name, "eks", "spot", ("m5.xlarge",), 3)


def asg_of(pools: eks.EksNodePools, name: str = "katuna-digits") -> str:
    group = pools.eks.describe_nodegroup(clusterName="tuning", nodegroupName=name)["nodegroup"]
    return group["resources"]["autoScalingGroups"][0]["name"]


def tags(pools: eks.EksNodePools, asg: str) -> dict[str, str]:
    found = pools.autoscaling.describe_tags(Filters=[{"Name": "auto-scaling-group", "Values": [asg]}])["Tags"]
    return {t["Key"]: t["Value"] for t in found}


def tag(pools: eks.EksNodePools, asg: str, value: str) -> None:
    """Set the group's unneeded time by hand, as its user would."""
    pools.autoscaling.create_or_update_tags(Tags=[{"ResourceId": asg, "ResourceType": "auto-scaling-group",
                                                   "Key": UNNEEDED_TIME_TAG, "Value": value,
                                                   "PropagateAtLaunch": False}])


def test_a_group_katuna_made_for_a_study_gets_two_minutes_unneeded_time_once_active(pools):
    pools.ensure(spot_pool(), owner=OWNER)
    moto_eks.minutes_pass()
    assert pools.check("create:katuna-digits").done
    found = tags(pools, asg_of(pools))
    assert found["k8s.io/cluster-autoscaler/node-template/autoscaling-options/scaledownunneededtime"] == "2m0s"


def test_an_adopted_group_keeps_the_autoscalers_unneeded_time(pools):
    """A group katuna did not make for a study (by hand, by the provisioning script) is its
    user's: its scale-down is the user's policy, though katuna tags it for scale-up from zero."""
    pools.ensure(spot_pool())
    moto_eks.minutes_pass()
    assert pools.check("create:katuna-digits").done
    assert pools.ensure(spot_pool(), owner=OWNER).operation is None, "adopted by a study"
    found = tags(pools, asg_of(pools))
    assert UNNEEDED_TIME_TAG not in found and any("/taint/" in key for key in found)


def test_a_value_its_user_set_on_a_group_katuna_made_is_kept(pools):
    pools.ensure(spot_pool(), owner=OWNER)
    moto_eks.minutes_pass()
    assert pools.check("create:katuna-digits").done
    asg = asg_of(pools)
    tag(pools, asg, "5m0s")
    change = pools.ensure(spot_pool(), owner="another-study")
    assert change.operation is None and not change.changed, "nothing written"
    assert tags(pools, asg)[UNNEEDED_TIME_TAG] == "5m0s"


def test_a_group_katuna_made_before_it_wrote_the_option_gets_it_when_a_study_next_uses_it(pools):
    pools.ensure(spot_pool(), owner=OWNER)
    moto_eks.minutes_pass()
    assert pools.check("create:katuna-digits").done
    asg = asg_of(pools)
    pools.autoscaling.delete_tags(Tags=[{"ResourceId": asg, "ResourceType": "auto-scaling-group",
                                         "Key": UNNEEDED_TIME_TAG}])
    change = pools.ensure(spot_pool(), owner="another-study")
    assert change.changed == f"wrote 1 cluster-autoscaler node-template tag to its Auto Scaling group {asg}"
    assert tags(pools, asg)[UNNEEDED_TIME_TAG] == "2m0s"


def ended(kube: KubeStub, group: str) -> str:
    """When the group's trial ended, as the API server wrote it (whole seconds)."""
    [pod] = pods_of(kube, group)
    return pod["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]


def idle_before_removal(kube: KubeStub, group: str, end: str) -> int:
    """Whole seconds from ``end`` to the removal of the group's node."""
    [machine] = [m for m in kube.autoscaler.machines.values() if m.pool == group]
    assert machine.removed is not None
    return next(s for s in range(3600) if rfc3339(machine.removed - s) == end)


def test_the_stand_ins_autoscaler_removes_an_idle_node_after_its_groups_own_unneeded_time(aws, pools, caplog):
    """Three groups, a trial on each: one tagged 1m0s, one untagged, one tagged with a duration
    Go cannot parse (no unit), which the real autoscaler logs and replaces with its flag's."""
    groups = {"quick": "1m0s", "default": None, "typo": "1"}
    for name in groups:
        pools.eks.create_nodegroup(clusterName="tuning", nodegroupName=name, subnets=list(aws.subnets), nodeRole=ROLE,
                                   instanceTypes=["m5.xlarge"],
                                   scalingConfig={"minSize": 0, "maxSize": 1, "desiredSize": 0})
    moto_eks.minutes_pass()
    for name, value in groups.items():
        if value is not None:
            tag(pools, asg_of(pools, name), value)
    clock = SimulatedClock()
    kube = KubeStub(pools=eks_pools(eks_node_groups(pools.eks, "tuning"), pools.autoscaling), boot_seconds=90,
                    idle_seconds=600, clock=clock)
    kube.kubelets.containers = SimulatedContainers(clock, lambda pod: Run(RUN_SECONDS, "loss=1.5\n"))
    try:
        for name in groups:
            assert kube.create_job("katuna", job(name, {"eks.amazonaws.com/nodegroup": name}))[0] == 201
        with caplog.at_level(logging.WARNING, logger="kube_standin.autoscaler"):
            kube.run_until(lambda: all(finished(kube, name) for name in groups))
            ends = {name: ended(kube, name) for name in groups}
            kube.run_until(lambda: not kube.nodes)
        assert {name: idle_before_removal(kube, name, ends[name]) for name in groups} == {"quick": 60, "default": 600,
                                                                             "typo": 600}
        assert 'failed to convert asg typo scaledownunneededtime tag to duration: time: missing unit in ' \
               'duration "1"' in caplog.text
    finally:
        kube.close()


@pytest.mark.parametrize(("text", "seconds"), [("1m0s", 60.0), ("2m", 120.0), ("1h2m3.5s", 3723.5), (".5s", 0.5),
                                               ("300ms", 0.3), ("0", 0.0), ("-2m", -120.0)])
def test_the_stand_in_reads_durations_as_gos_parse_duration(text: str, seconds: float):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "reason"), [("1", 'missing unit in duration "1"'), ("", 'invalid duration ""'),
                                              ("1d", 'unknown unit "d" in duration "1d"'), ("m", 'invalid duration "m"')])
def test_the_stand_in_refuses_durations_go_refuses_in_gos_words(text: str, reason: str):
    with pytest.raises(ValueError) as refused:
        parse_duration(text)
    assert str(refused.value) == f"time: {reason}"


def test_the_stand_ins_autoscaler_finds_a_new_group_at_its_next_refresh_and_asks_again_after_a_removal(aws, pools):
    """The AWS provider keeps the Auto Scaling groups it found for a minute (``refreshInterval``):
    a group made after its refresh gets no node until the next one, though the autoscaler scans
    the cluster every 10 s; once it removed a node it asks again at its next scan."""
    pools.eks.create_nodegroup(clusterName="tuning", nodegroupName="first", subnets=list(aws.subnets), nodeRole=ROLE,
                               instanceTypes=["m5.xlarge"], scalingConfig={"minSize": 0, "maxSize": 1, "desiredSize": 0})
    moto_eks.minutes_pass()
    asked: list[float] = []
    clock = SimulatedClock()
    groups = eks_node_groups(pools.eks, "tuning")
    kube = KubeStub(pools=eks_pools(lambda: (asked.append(clock.monotonic()), groups())[1], pools.autoscaling),
                    boot_seconds=90, idle_seconds=60, clock=clock)
    kube.kubelets.containers = SimulatedContainers(clock, lambda pod: Run(30.0, "loss=1.5\n"))
    try:
        start = clock.monotonic()
        assert kube.create_job("katuna", job("late", {"eks.amazonaws.com/nodegroup": "late"}))[0] == 201
        kube.run_until(lambda: asked)
        pools.eks.create_nodegroup(clusterName="tuning", nodegroupName="late", subnets=list(aws.subnets), nodeRole=ROLE,
                                   instanceTypes=["m5.xlarge"],
                                   scalingConfig={"minSize": 0, "maxSize": 1, "desiredSize": 0})
        moto_eks.minutes_pass()
        kube.run_until(lambda: kube.autoscaler.machines)
        [machine] = kube.autoscaler.machines.values()
        assert (machine.pool, machine.created - start) == ("late", 60.0), "found at the refresh a minute on"
        kube.run_until(lambda: finished(kube, "late"))
        kube.run_until(lambda: not kube.nodes)
        removed = machine.removed
        before = [moment - start for moment in asked if moment <= removed]
        assert before == [60.0 * n for n in range(len(before))], "asked once a minute while no node went"
        kube.run_until(lambda: asked[-1] > removed)
        assert asked[-1] - removed == 10.0, "asked again at the scan after the removal"
    finally:
        kube.close()
