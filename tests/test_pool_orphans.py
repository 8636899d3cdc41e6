"""Node pools that outlive their study because the store no longer holds its use (a database
lost, a backup restored from before the pool): each pool katuna creates for a study carries
its installation's identity, and the tick deletes those of its own that no stored study may
use once older than the grace, while another installation's, the user's, an older katuna's, a
shared pool a stored study uses and a pool a study made again under its name found are left.
The real dispatcher, SQLite store and GKE adapter against the loopback GKE API (over REST, and
over gRPC as production reaches GKE), and boto3 against moto's EKS."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import boto3
import moto_eks
import moto_eks_iam
import pytest
from clocks import Clock
from conftest import study_definition
from gke_stub import GkeStub
from moto import mock_aws
from moto_cluster import fake_credentials

from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import pool_check, study_created
from functions.core.nodepool import CREATED_KEY, INSTALLATION_KEY, OWNER_KEY, NodePool, installation_value
from functions.core.records import StudyRecord
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.pool_orphans import POOLS_PER_SWEEP
from functions.pools import node_pools
from functions.settings import Settings
from infra import eks, eks_clients, eks_requests, gke, gke_requests

GRACE = 1800.0
INSTALLATION = installation_value("katuna.tuning")


def pool_study(study: str, provider: str = "gke", **pool) -> dict:
    definition = study_definition(name=study)
    definition["trialTemplate"]["image"] = "python:3.12"
    machine = {"machineType": "n2-standard-4"} if provider == "gke" else {"instanceTypes": ["m5.xlarge"]}
    definition["nodePool"] = {"provider": provider, **machine, "maxNodes": 4, **pool}
    return definition


def submit(store: SqliteStore, definition: dict, uid: str, at: float) -> StudyRecord:
    return store.add_study(StudyRecord(parse_study(definition), definition, "/tmp", uid, created_at=at))


def tick(store: SqliteStore, pools, clock: Clock, tmp_path: Path) -> None:
    """The tick, as the PingSource sends it, to both its functions."""
    Dispatcher(Deps(store, LocalExecutor(tmp_path / "logs", lambda event: None), clock, pools,
                    orphan_grace=GRACE)).deliver(pool_check())


def gke_pools(gke_api: GkeStub, clock: Clock, installation: str | None = INSTALLATION) -> gke.GkeNodePools:
    cluster = gke_requests.GkeCluster("proj-7", "europe-west4", "tuning", installation=installation)
    return gke.GkeNodePools(cluster, gke.client(gke_api.url), clock=clock)


def deletes(gke_api: GkeStub) -> list[str]:
    return [path.rpartition("/")[2] for _, path, _ in gke_api.calls("DELETE")]


def test_a_lost_databases_pool_is_deleted_past_the_grace_and_no_other(gke_api: GkeStub, tmp_path: Path):
    clock = Clock(1_000_000.0)
    pools = gke_pools(gke_api, clock)
    lost = SqliteStore(tmp_path / "lost.db")
    made = {"lost-a": ("ua", {}), "lost-b": ("ub", {}), "sharer": ("us", {"name": "trials", "shared": True})}
    for study, (uid, pool) in made.items():
        submit(lost, pool_study(study, **pool), uid, clock.now)
        Dispatcher(Deps(lost, LocalExecutor(tmp_path / "logs", lambda event: None), clock, pools)).deliver_to(
            "provision", study_created(study, uid))
        gke_api.advance(600)
    lost.close()
    assert gke_api.pools["katuna-lost-a"]["config"]["resourceLabels"] == {
        OWNER_KEY: "ua", INSTALLATION_KEY: INSTALLATION, CREATED_KEY: "1000000"}
    gke_pools(gke_api, clock, installation_value("katuna.other")).ensure(
        NodePool("theirs", "gke", machine_types=("n2-standard-4",)), owner="u9")
    gke_api.advance(600)
    gke_pools(gke_api, clock, None).ensure(NodePool("older", "gke", machine_types=("n2-standard-4",)), owner="u8")
    gke_api.advance(600)
    pools.ensure(NodePool("users", "gke", machine_types=("n2-standard-4",)))
    gke_api.advance(600)

    restored = SqliteStore(tmp_path / "restored.db")
    submit(restored, pool_study("keeper", name="trials", shared=True), "uk", clock.now)
    submit(restored, pool_study("lost-b"), "ub2", clock.now)
    clock.now += 60
    tick(restored, pools, clock, tmp_path)
    gke_api.advance(600)
    assert deletes(gke_api) == [], "younger than the grace: its handling may not have committed yet"

    clock.now += GRACE
    tick(restored, pools, clock, tmp_path)
    tick(restored, pools, clock, tmp_path)
    assert deletes(gke_api) == ["katuna-lost-a"], "asked once: a pool being deleted is not asked again"
    gke_api.advance(600)
    tick(restored, pools, clock, tmp_path)
    assert sorted(gke_api.pools) == ["katuna-lost-b", "older", "theirs", "trials", "users"]
    assert deletes(gke_api) == ["katuna-lost-a"]
    restored.close()

    assert INSTALLATION_KEY not in gke_api.pools["trials"]["config"]["resourceLabels"]
    empty = SqliteStore(tmp_path / "empty.db")
    tick(empty, pools, clock, tmp_path)
    gke_api.advance(600)
    empty.close()
    assert "trials" in gke_api.pools, "a shared pool stays for the next study, whatever the store holds"


def test_a_tick_asks_no_more_deletes_once_gke_refuses_one_for_now(gke_api: GkeStub, tmp_path: Path):
    clock = Clock(1_000_000.0)
    pools = gke_pools(gke_api, clock)
    for number in range(3):
        pools.ensure(NodePool(f"lost-{number}", "gke", machine_types=("n2-standard-4",)), owner=f"u{number}")
        gke_api.advance(600)
    store = SqliteStore(tmp_path / "empty.db")
    clock.now += GRACE
    tick(store, pools, clock, tmp_path)
    assert len(deletes(gke_api)) == 2, "the second refused: the cluster runs the first's operation"
    for _ in range(3):
        gke_api.advance(600)
        tick(store, pools, clock, tmp_path)
    assert gke_api.pools == {}
    assert pools.delete("lost-0").operation is None, "a pool gone is deleted"
    store.close()


def test_the_installations_pools_are_found_over_grpc_as_production_reaches_gke(either: gke.GkeNodePools,
                                                                               gke_api: GkeStub):
    mine = gke.GkeNodePools(replace(either.cluster, installation=INSTALLATION), either.api, clock=lambda: 1234.0)
    mine.ensure(NodePool("katuna-mine", "gke", machine_types=("n2-standard-4",)), owner="u1")
    gke_api.advance(600)
    either.ensure(NodePool("users", "gke", machine_types=("n2-standard-4",)))
    gke_api.advance(600)
    found = mine.made()
    assert [(pool.name, pool.owner, pool.installation, pool.created_at, pool.state) for pool in found] == [
        ("katuna-mine", "u1", INSTALLATION, 1234.0, "RUNNING")]
    assert [method for method, path, _ in gke_api.calls() if path.endswith("/nodePools")] == ["POST", "POST", "GET"], \
        "one list of the cluster's pools"


@pytest.mark.parametrize("identity", ["katuna.tuning", "Katuna-Tuning", "nb-7f9c:/home/jovyan/katuna.db",
                                      "x" * 63 + "." + "y" * 40, "...", "katuna_tuning-2"])
def test_an_installations_identity_becomes_a_value_every_clouds_labels_take(identity: str):
    value = installation_value(identity)
    assert 1 <= len(value) <= 63 and set(value) <= set("abcdefghijklmnopqrstuvwxyz0123456789-_"), value
    if identity == "katuna_tuning-2":
        assert value == identity, "a value GCE takes is kept as it is"
    else:
        assert value != installation_value(identity.swapcase() + "!"), "two identities never share a value"
    assert installation_value("Katuna") != installation_value("katuna")


def test_a_tick_deletes_a_bounded_number_of_lost_node_groups(eks_cluster, tmp_path: Path):
    pools = eks.EksNodePools(eks_cluster, *eks_clients.clients(REGION))
    for number in range(POOLS_PER_SWEEP + 2):
        pools.ensure(NodePool(f"lost-{number}", "eks", machine_types=("m5.xlarge",)), owner=f"u{number}",
                     request_id=f"u{number}/0")
    moto_eks.minutes_pass()
    store = SqliteStore(tmp_path / "empty.db")
    clock = Clock(time.time() + GRACE + 60)
    tick(store, pools, clock, tmp_path)
    statuses = [pools.describe(f"lost-{number}").state for number in range(POOLS_PER_SWEEP + 2)]
    assert statuses.count("DELETING") == POOLS_PER_SWEEP and statuses.count("ACTIVE") == 2
    moto_eks.minutes_pass()
    tick(store, pools, clock, tmp_path)
    moto_eks.minutes_pass()
    assert pools.eks.list_nodegroups(clusterName="tuning")["nodegroups"] == []
    store.close()


REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/katuna-nodes"


@pytest.fixture
def eks_cluster(monkeypatch):
    fake_credentials(monkeypatch, REGION)
    with mock_aws():
        subnets = moto_eks.network(boto3.client("ec2", region_name=REGION))
        moto_eks_iam.node_role(boto3.client("iam", region_name=REGION))
        boto3.client("eks", region_name=REGION).create_cluster(
            name="tuning", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(subnets)})
        yield eks_requests.EksCluster("tuning", subnets, ROLE, installation=INSTALLATION)


moto_eks.teach()


def test_a_lost_databases_node_group_is_deleted_and_an_older_katunas_is_read_once_an_hour(eks_cluster, tmp_path):
    pools = eks.EksNodePools(eks_cluster, *eks_clients.clients(REGION))
    reads: list[str] = []
    pools.eks.meta.events.register("before-call.eks.DescribeNodegroup",
                                   lambda params, **_: reads.append(params["url_path"].rpartition("/")[2]))
    pools.ensure(NodePool("katuna-lost", "eks", machine_types=("m5.xlarge",)), owner="ua", request_id="ua/0")
    older = eks.EksNodePools(replace(eks_cluster, installation=None), *eks_clients.clients(REGION))
    older.ensure(NodePool("older", "eks", machine_types=("m5.xlarge",)), owner="u8", request_id="u8/0")
    moto_eks.minutes_pass()
    store = SqliteStore(tmp_path / "empty.db")
    clock = Clock(time.time() + 60)
    tick(store, pools, clock, tmp_path)
    names = lambda: sorted(pools.eks.list_nodegroups(clusterName="tuning")["nodegroups"])  # noqa: E731
    assert [pools.describe(name).state for name in names()] == ["ACTIVE", "ACTIVE"], "younger than the grace"
    reads.clear()
    clock.now += GRACE
    tick(store, pools, clock, tmp_path)
    assert reads.count("older") == 0, "found not to be the installation's an hour ago: not read again"
    moto_eks.minutes_pass()
    assert names() == ["older"]
    tick(store, pools, clock, tmp_path)
    assert names() == ["older"]
    store.close()


def test_the_services_pools_carry_its_installations_identity(gke_api: GkeStub, tmp_path: Path):
    settings = Settings(db=tmp_path / "katuna.db", gke_project="proj-7", gke_location="europe-west4",
                        gke_cluster="tuning", gke_endpoint=gke_api.url, installation="ml.tuning")
    before = time.time()
    node_pools(settings).ensure(NodePool("katuna-mine", "gke", machine_types=("n2-standard-4",)), owner="u1")
    labels = gke_api.pools["katuna-mine"]["config"]["resourceLabels"]
    assert labels[INSTALLATION_KEY] == installation_value("ml.tuning") != "ml.tuning", "GCE takes no '.'"
    assert int(before) <= int(labels[CREATED_KEY]) <= time.time()


def katunas_templates(pools: eks.EksNodePools) -> list[str]:
    found = pools.ec2.describe_launch_templates(Filters=[{"Name": "tag:app.kubernetes.io/managed-by",
                                                          "Values": ["katuna"]}], MaxResults=200)
    return sorted(template["LaunchTemplateName"].rpartition("-")[0] for template in found["LaunchTemplates"])


def template_made(pools: eks.EksNodePools, group: str) -> float:
    found = pools.ec2.describe_launch_templates(Filters=eks_requests.template_filters(pools.cluster, group))
    return found["LaunchTemplates"][0]["CreateTime"].timestamp()


def test_a_lost_node_groups_launch_template_is_deleted_once_the_group_is_gone(eks_cluster, tmp_path: Path):
    """A group deleted as an orphan leaves its launch template (no change of katuna's checks that
    delete): a later tick deletes the template of a group gone, and no other — not a group's
    that is there, not one younger than the grace (a create under way makes its template first),
    not another cluster's."""
    pools = eks.EksNodePools(eks_cluster, *eks_clients.clients(REGION))
    pools.ensure(NodePool("katuna-lost", "eks", machine_types=("m5.xlarge",)), owner="ua", request_id="ua/0")
    pools.ensure(NodePool("users", "eks", machine_types=("m5.xlarge",)))
    other = eks.EksNodePools(replace(eks_cluster, name="other"), *eks_clients.clients(REGION))
    other.templates.make(NodePool("katuna-far", "eks", machine_types=("m5.xlarge",)))
    moto_eks.minutes_pass()
    store = SqliteStore(tmp_path / "empty.db")
    clock = Clock(time.time() + GRACE + 60)
    tick(store, pools, clock, tmp_path)
    lost_made = template_made(pools, "katuna-lost")
    while time.time() < lost_made + 1:  # EC2 dates a template to the second: the young one a second later
        time.sleep(0.05)
    pools.templates.make(NodePool("katuna-young", "eks", machine_types=("m5.xlarge",)))
    assert pools.describe("katuna-lost").state == "DELETING"
    assert katunas_templates(pools) == ["katuna-katuna-far", "katuna-katuna-lost", "katuna-katuna-young",
                                        "katuna-users"], "the template stays while its group is deleted"
    moto_eks.minutes_pass()
    assert pools.describe("katuna-lost") is None
    made = {name: template_made(pools, name) for name in ("katuna-lost", "katuna-young")}
    assert made["katuna-lost"] < made["katuna-young"]
    clock.now = (made["katuna-lost"] + made["katuna-young"]) / 2 + GRACE
    tick(store, pools, clock, tmp_path)
    assert katunas_templates(pools) == ["katuna-katuna-far", "katuna-katuna-young", "katuna-users"]
    tick(store, pools, clock, tmp_path)
    assert katunas_templates(pools) == ["katuna-katuna-far", "katuna-katuna-young", "katuna-users"]
    store.close()
