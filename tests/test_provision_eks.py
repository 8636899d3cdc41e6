"""EKS node groups for studies: the provision function through the real dispatcher, a SQLite
store and the EKS adapter's boto3 clients on moto (taught EKS's ``DescribeUpdate``,
tests/moto_eks.py). What is checked here is what only the pool use knows: which logical change
a call belongs to, so that its idempotency token is the same when the change is retried and new
for the next one; and which Update a scaling change waits for."""

from __future__ import annotations

from pathlib import Path

import boto3
import moto_eks
import pytest
from botocore.exceptions import ReadTimeoutError
from conftest import study_definition
from moto import mock_aws
from moto_cluster import fake_credentials, make_cluster

from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.errors import InvalidStudy, TemporaryError
from functions.core.events import POOL_CHECK, Event, pool_check, study_completed, study_created
from functions.core.formats import load_definition
from functions.core.limits import DEFAULTS, Limits
from functions.core.nodepool import NodePool
from functions.core.records import StudyRecord
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.settings import Settings
from infra import eks, eks_clients, eks_requests

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/katuna-nodes"

moto_eks.teach()


class World:
    """The dispatcher and store, the adapter on moto (in the subnets of the cluster), and the
    tokens boto3 sent, in order."""

    def __init__(self, tmp_path: Path, limits: Limits = DEFAULTS) -> None:
        self.store = SqliteStore(tmp_path / "katuna.db")
        self.limits = limits
        clients = eks_clients.clients(REGION)
        subnets = clients[0].describe_cluster(name="tuning")["cluster"]["resourcesVpcConfig"]["subnetIds"]
        self.pools = eks.EksNodePools(eks_requests.EksCluster("tuning", tuple(subnets), ROLE), *clients)
        self.dispatcher = Dispatcher(Deps(self.store, LocalExecutor(tmp_path / "logs", lambda event: None),
                                          lambda: 1_000_000.0, self.pools, limits=limits))
        self.tokens: list[tuple[str, str]] = []
        for call in ("CreateNodegroup", "UpdateNodegroupConfig"):
            self.pools.eks.meta.events.register(f"before-parameter-build.eks.{call}", self._sent)

    def _sent(self, params: dict, model, **_) -> None:
        self.tokens.append((model.name, params.get("clientRequestToken")))

    def submit(self, study: str, uid: str, **pool) -> None:
        definition = study_definition(name=study)
        definition["trialTemplate"]["image"] = "python:3.12"
        definition["nodePool"] = {"provider": "eks", "instanceTypes": ["m5.xlarge"], "maxNodes": 8, **pool}
        spec, _ = load_definition(definition, limits=self.limits)
        self.store.add_study(StudyRecord(spec, definition, "/tmp", uid, created_at=1_000_000.0))

    def deliver(self, event: Event) -> None:
        """Deliver ``event`` to ``provision``, then, as a broker does, each tick it sends (the
        check that raises a group it found, once its limits as found are stored)."""
        for emitted in self.dispatcher.deliver_to("provision", event):
            if emitted.type == POOL_CHECK:
                self.deliver(emitted)

    def end(self, study: str) -> None:
        record = self.store.get_study(study)
        event = study_completed(study, record.uid, "completed", "maxTrials reached")
        self.dispatcher.deliver_to("stop", event)
        self.deliver(event)


@pytest.fixture
def world(tmp_path: Path, monkeypatch):
    fake_credentials(monkeypatch, REGION)
    with mock_aws():
        make_cluster(REGION, ROLE)
        world = World(tmp_path)
        yield world
        world.store.close()


def test_a_create_whose_answer_was_lost_is_found_by_its_redelivery_and_not_asked_again(world: World):
    """EKS created the group but katuna never heard back: the redelivered study.created finds
    the group its first delivery made (tagged with the study's uid) and waits for it, without a
    second create (one EKS would take as a retry anyway: the same token)."""
    def answer_lost(**_) -> None:
        world.pools.eks.meta.events.unregister("after-call.eks.CreateNodegroup", answer_lost)
        raise ReadTimeoutError(endpoint_url="https://eks.eu-west-1.amazonaws.com")

    world.pools.eks.meta.events.register("after-call.eks.CreateNodegroup", answer_lost)
    world.submit("own", "u1")
    with pytest.raises(TemporaryError, match="Read timeout"):
        world.deliver(study_created("own", "u1"))
    assert world.store.pool_use("u1") is None, "nothing stored: the event is delivered again"
    world.deliver(study_created("own", "u1"))
    assert len(world.tokens) == 1, "asked once"
    use = world.store.pool_use("u1")
    assert (use.phase, use.created, use.owned, use.requests) == ("creating", True, True, 1), "its own create"
    assert use.operation == "create:katuna-own", "the group EKS is still creating is waited for"
    moto_eks.minutes_pass()
    world.deliver(pool_check())
    assert world.store.pool_use("u1").phase == "ready"


def test_the_same_raise_by_two_studies_and_each_give_back_are_changes_of_their_own(world: World):
    """A shared group raised to 1..8 by study a, given back, then raised to 1..8 by study b: the
    same request content three times over two weeks, three changes with three tokens. Each
    raise waits for its own Update."""
    request = eks_requests.create_request(world.pools.cluster, NodePool("team", "eks", machine_types=("m5.xlarge",)))
    operator = boto3.client("eks", region_name=REGION)
    operator.create_nodegroup(**{**moto_eks.by_hand(request),
                                 "scalingConfig": {"minSize": 1, "maxSize": 3, "desiredSize": 1}})
    moto_eks.minutes_pass()
    raises = []
    for study, uid in (("study-a", "ua"), ("study-b", "ub")):
        world.submit(study, uid, name="team", shared=True)
        world.deliver(study_created(study, uid))
        raises.append(world.store.pool_use(uid).operation)
        moto_eks.minutes_pass()
        world.deliver(pool_check())
        assert world.store.pool_use(uid).phase == "ready"
        world.end(study)
        moto_eks.minutes_pass()
        world.deliver(pool_check())
        assert world.store.pool_use(uid).phase == "released"
    updates = [token for call, token in world.tokens if call == "UpdateNodegroupConfig"]
    assert len(updates) == 4 and len(set(updates)) == 4 and None not in updates, (
        "raise a, give back a, raise b, give back b")
    for operation in raises:
        update_id = operation.removeprefix("update:team:")
        assert world.pools.eks.describe_update(name="tuning", updateId=update_id, nodegroupName="team")[
            "update"]["status"] == "Successful", "the Update EKS answered the raise with is the one stored"


def test_a_shared_groups_maximum_waits_for_the_autoscaler_and_never_sets_the_desired_size(world: World):
    """Study b made the shared group team at 0..4 and runs on; study a raised it to 0..10, and the
    autoscaler grew it to 8 nodes. When a ends, lowering the maximum to 4 would need a desired
    size of 4, and EKS would terminate 4 nodes of its choosing, b's trials among them: the
    maximum is held at the 8 nodes running until the autoscaler has removed those not needed,
    and lowered then."""
    sent: list[dict] = []
    world.pools.eks.meta.events.register("before-parameter-build.eks.UpdateNodegroupConfig",
                                         lambda params, **_: sent.append(dict(params["scalingConfig"])))
    operator = boto3.client("eks", region_name=REGION)

    def scaling() -> dict:
        return operator.describe_nodegroup(clusterName="tuning", nodegroupName="team")["nodegroup"]["scalingConfig"]

    world.submit("study-b", "ub", name="team", shared=True, maxNodes=4)
    world.deliver(study_created("study-b", "ub"))
    world.submit("study-a", "ua", name="team", shared=True, maxNodes=10)
    world.deliver(study_created("study-a", "ua"))
    for _ in range(2):  # b's group created, then raised for a
        moto_eks.minutes_pass()
        world.deliver(pool_check())
    assert [world.store.pool_use(uid).phase for uid in ("ub", "ua")] == ["ready", "ready"] and scaling()["maxSize"] == 10
    operator.update_nodegroup_config(clusterName="tuning", nodegroupName="team", scalingConfig={"desiredSize": 8})
    moto_eks.minutes_pass()
    world.end("study-a")
    moto_eks.minutes_pass()
    world.deliver(pool_check())
    assert scaling() == {"minSize": 0, "maxSize": 8, "desiredSize": 8}, "held at the nodes running"
    assert world.store.pool_use("ua").phase == "releasing"
    operator.update_nodegroup_config(clusterName="tuning", nodegroupName="team", scalingConfig={"desiredSize": 3})
    for _ in range(2):  # the autoscaler's update done, then the maximum lowered
        moto_eks.minutes_pass()
        world.deliver(pool_check())
    assert scaling() == {"minSize": 0, "maxSize": 4, "desiredSize": 3}, "lowered once the autoscaler has shrunk it"
    assert world.store.pool_use("ua").phase == "released" and world.store.pool_use("ub").phase == "ready"
    assert sent[1:] == [{"minSize": 0, "maxSize": 8}, {"minSize": 0, "maxSize": 4}], "never a desired size"


def test_a_group_mixing_instance_types_of_different_amis_is_refused_at_submission():
    definition = study_definition(name="mixed")
    definition["nodePool"] = {"provider": "eks", "instanceTypes": ["g5.xlarge", "m5.xlarge"]}
    with pytest.raises(InvalidStudy) as refused:
        parse_study(definition)
    [problem] = refused.value.problems
    assert problem.path == "nodePool.instanceTypes"
    assert problem.message == ("expected instance types that boot the same EKS AMI type (a node group boots one): "
                               "g5.xlarge: AL2023_x86_64_NVIDIA; m5.xlarge: AL2023_x86_64_STANDARD")


@pytest.mark.parametrize(("instance_type", "why"), [
    ("a1.large", "Amazon Linux 2023 does not run on A1 instances"),
    ("p2.xlarge", "the NVIDIA driver of EKS's Amazon Linux 2023 AMI no longer supports its K80 GPUs"),
    ("g3s.xlarge", "the NVIDIA driver of EKS's Amazon Linux 2023 AMI no longer supports its M60 GPUs"),
])
def test_a_family_no_amazon_linux_2023_ami_boots_is_refused_at_submission(instance_type: str, why: str):
    definition = study_definition(name="old")
    definition["nodePool"] = {"provider": "eks", "instanceTypes": ["m7g.large" if instance_type == "a1.large"
                                                                   else "g4dn.xlarge", instance_type]}
    with pytest.raises(InvalidStudy) as refused:
        parse_study(definition)
    assert [(p.path, p.message) for p in refused.value.problems] == [
        ("nodePool.instanceTypes", f"{instance_type}: {why}; expected a newer family (m7g for a1, g4dn or g5 for GPUs)")]


RAISED = {"KATUNA_EKS_CLUSTER": "tuning", "KATUNA_EKS_SUBNETS": "subnet-0a1b2c3d", "KATUNA_EKS_NODE_ROLE": ROLE,
          "KATUNA_EKS_NODES_PER_GROUP": "600", "KATUNA_MAX_POOL_NODES": "1000"}


def test_an_account_with_a_raised_quota_gets_a_600_node_group(tmp_path: Path, world: World):
    """The account may have 600 nodes in a managed node group and the service is told so: a
    study asking for 600 is taken and its group created with that maximum."""
    settings = Settings.from_env(RAISED)
    moto_eks.raise_quotas(settings.limits.eks, REGION)
    raised = World(tmp_path / "raised", settings.limits)
    raised.submit("wide", "u1", maxNodes=600)
    raised.deliver(study_created("wide", "u1"))
    group = raised.pools.eks.describe_nodegroup(clusterName="tuning", nodegroupName="katuna-wide")["nodegroup"]
    assert group["scalingConfig"] == {"minSize": 0, "maxSize": 600, "desiredSize": 0}
    assert raised.store.pool_use("u1").phase == "creating"
    with pytest.raises(InvalidStudy, match="expected an integer from 1 to 450: .* set KATUNA_EKS_NODES_PER_GROUP"):
        world.submit("default", "u2", maxNodes=600)
    raised.store.close()


def test_a_quota_set_above_the_accounts_own_fails_the_study_with_eks_refusal(tmp_path: Path, world: World):
    """Told 600 where the account still has EKS's 450: EKS refuses the group, and the study
    fails with its answer instead of waiting for a pool that never comes."""
    told = World(tmp_path / "told", Settings.from_env(RAISED).limits)
    told.submit("wide", "u1", maxNodes=600)
    told.deliver(study_created("wide", "u1"))
    use = told.store.pool_use("u1")
    assert (use.phase, told.store.get_study("wide").status) == ("failed", "failed")
    assert "InvalidParameterException: maxSize can't be greater than 450" in use.message
    assert told.pools.describe("katuna-wide") is None
    told.store.close()


def test_a_study_ending_while_its_group_is_creating_deletes_it_once_eks_lets_it(world: World):
    """EKS creates a group for minutes and refuses to delete it meanwhile: the study's use stays
    creating, and once the group is active the ticks delete it and wait for it to be gone."""
    world.submit("short", "u1")
    world.deliver(study_created("short", "u1"))
    world.end("short")
    world.deliver(pool_check())
    assert (world.store.pool_use("u1").phase, world.pools.describe("katuna-short").state) == ("creating", "CREATING")
    moto_eks.minutes_pass()
    world.deliver(pool_check())
    use = world.store.pool_use("u1")
    assert (use.phase, use.operation, world.pools.describe("katuna-short").state) == (
        "releasing", "delete:katuna-short", "DELETING")
    world.deliver(pool_check())
    assert world.store.pool_use("u1").phase == "releasing", "deleting takes EKS minutes too"
    moto_eks.minutes_pass()
    world.deliver(pool_check())
    assert world.store.pool_use("u1").phase == "released" and world.pools.describe("katuna-short") is None


def test_changes_meeting_a_group_busy_with_an_update_are_asked_again_on_the_ticks(world: World):
    """Study a's raise of the shared group is in progress: EKS refuses study b's larger raise
    meanwhile, for now. Study b does not fail: the ticks ask again once the group is active; a,
    ended while b uses the group, leaves its limits as found for b's release to give back."""
    request = eks_requests.create_request(world.pools.cluster, NodePool("team", "eks", machine_types=("m5.xlarge",)))
    boto3.client("eks", region_name=REGION).create_nodegroup(**moto_eks.by_hand(request))
    moto_eks.minutes_pass()
    world.submit("study-a", "ua", name="team", shared=True, maxNodes=8)
    world.deliver(study_created("study-a", "ua"))
    assert world.pools.describe("team").state == "UPDATING"
    world.submit("study-b", "ub", name="team", shared=True, maxNodes=12)
    with pytest.raises(TemporaryError, match="node group team is updating"):
        world.deliver(study_created("study-b", "ub"))
    world.deliver(pool_check())
    assert world.store.pool_use("ub") is None and world.store.get_study("study-b").status == "running"
    moto_eks.minutes_pass()
    world.deliver(pool_check())
    assert world.store.pool_use("ub").operation.startswith("update:team:"), "b's raise asked once the group is active"
    world.end("study-a")
    assert world.store.pool_use("ua").phase == "released", "b uses the group: a changes nothing"
    assert world.store.pool_use("ub").adopted == world.store.pool_use("ua").adopted, "b gives back what a found"
    for _ in range(2):  # b's raise done
        moto_eks.minutes_pass()
        world.deliver(pool_check())
    assert world.store.pool_use("ub").phase == "ready" and world.pools.describe("team").max_nodes == 12
    assert world.store.pool_use("ua").phase == "released" and world.store.get_study("study-b").status == "running"


def test_the_last_study_on_a_shared_group_leaves_its_nodes_to_the_autoscaler(world: World):
    """EKS's API reference says not to change a node group's desired size under the Cluster
    Autoscaler: the group katuna made and shared keeps its nodes once its last study ends, and
    the autoscaler removes them; the study's pool use says nothing went wrong."""
    operator = boto3.client("eks", region_name=REGION)
    world.submit("study-b", "ub", name="team", shared=True, maxNodes=4)
    world.deliver(study_created("study-b", "ub"))
    moto_eks.minutes_pass()
    world.deliver(pool_check())
    operator.update_nodegroup_config(clusterName="tuning", nodegroupName="team", scalingConfig={"desiredSize": 3})
    moto_eks.minutes_pass()
    tokens = len(world.tokens)
    world.end("study-b")
    world.deliver(pool_check())
    scaling = operator.describe_nodegroup(clusterName="tuning", nodegroupName="team")["nodegroup"]["scalingConfig"]
    assert scaling == {"minSize": 0, "maxSize": 4, "desiredSize": 3} and len(world.tokens) == tokens
    use = world.store.pool_use("ub")
    assert (use.phase, use.empty_asked, use.emptied, use.message) == ("released", True, False, "")
