"""The node-pool lifecycle of studies: the provision function through the real dispatcher, a
SQLite store and the GKE adapter against the loopback GKE API; every event delivered twice."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from clocks import Clock
from conftest import study_definition, undo_trial_changes, unlined
from gke_stub import GkeStub
from test_nodepools_gke import MetadataServerHiccup, signed_in

from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.cli import main
from functions.core.errors import InvalidStudy, TemporaryError
from functions.core.events import POOL_CHECK, Event, pool_check, study_completed, study_created
from functions.core.job import render_job
from functions.core.launch import trial_launch
from functions.core.limits import Limits
from functions.core.pool_use import PoolUse
from functions.core.records import StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.core.views import study_view
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.provision import waiting_on_pools
from functions.handlers.submit import store_study
from functions.pools import check_node_pool
from functions.settings import Settings
from infra import gke, gke_requests

START = 1_000_000.0
"""When the tests' studies are stored, and their clock's first reading."""


@pytest.fixture
def world(gke_api: GkeStub, tmp_path: Path):
    store = SqliteStore(tmp_path / "katuna.db")
    pools = gke.GkeNodePools(gke_requests.GkeCluster("proj-7", "europe-west4", "tuning"), gke.client(gke_api.url))
    clock = Clock(START)
    deps = Deps(store, LocalExecutor(tmp_path / "logs", lambda event: None), clock, pools)
    yield Dispatcher(deps), store, clock
    store.close()


def pool_study(study: str, **pool) -> dict:
    definition = study_definition(name=study)
    definition["trialTemplate"]["image"] = "python:3.12"
    definition["nodePool"] = {"provider": "gke", "machineType": "n2-standard-4", "maxNodes": 4, **pool}
    return definition


def submit(store: SqliteStore, definition: dict, uid: str) -> StudyRecord:
    return store.add_study(StudyRecord(parse_study(definition), definition, "/tmp", uid, created_at=START))


def deliver_twice(dispatcher: Dispatcher, event: Event) -> list[Event]:
    first = dispatcher.deliver_to("provision", event)
    assert dispatcher.deliver_to("provision", event) == first, "a redelivery changes nothing and emits the same"
    return first


def checked_after(dispatcher: Dispatcher, gke_api: GkeStub, seconds: float = 600) -> list[Event]:
    """Move GKE's clock ``seconds`` on (its operations due by then finish), then deliver the
    reconcile tick twice; what it emitted."""
    gke_api.advance(seconds)
    return deliver_twice(dispatcher, pool_check())


def provisioned(dispatcher: Dispatcher, event: Event) -> list[Event]:
    """Deliver ``event`` twice, then, as a broker does, each tick its handling sent twice (the
    check that raises the maximum of a pool it found, once the use recording its limits as
    found is stored); the events ``event`` emitted."""
    emitted = deliver_twice(dispatcher, event)
    for check in emitted:
        assert check.type == POOL_CHECK
        deliver_twice(dispatcher, check)
    return emitted


def created(name: str, uid: str) -> Event:
    return study_created(name, uid)


def end(dispatcher: Dispatcher, store: SqliteStore, name: str, status: str = "completed") -> list[Event]:
    record = store.get_study(name)
    event = study_completed(name, record.uid, status, "maxTrials reached")
    dispatcher.deliver_to("stop", event)
    return deliver_twice(dispatcher, event)


def test_a_study_creates_its_own_pool_and_deletes_it_after(world, gke_api: GkeStub):
    dispatcher, store, clock = world
    submit(store, pool_study("own"), "u1")
    assert deliver_twice(dispatcher, created("own", "u1")) == []
    assert deliver_twice(dispatcher, created("own", "u1")) == [], "a new study.created only checks"
    assert [m for m, _, _ in gke_api.calls()] == ["POST"], "created once"
    assert store.pool_use("u1").phase == "creating"
    body = gke_api.calls("POST")[0][2]["nodePool"]
    assert body["name"] == "katuna-own" and body["autoscaling"]["totalMaxNodeCount"] == 4
    assert body["config"]["resourceLabels"] == {"katuna-study-uid": "u1"}
    clock.now += 60
    deliver_twice(dispatcher, pool_check())
    assert store.pool_use("u1").phase == "creating", "GKE takes its time"
    checked_after(dispatcher, gke_api)
    use = store.pool_use("u1")
    assert (use.phase, use.ready_at, use.operation) == ("ready", clock.now, None)
    clock.now += 3600
    assert end(dispatcher, store, "own") == []
    assert store.pool_use("u1").phase == "releasing" and [m for m, _, _ in gke_api.calls("DELETE")] == ["DELETE"]
    clock.now += 120
    checked_after(dispatcher, gke_api)
    summary = study_view(store, store.get_study("own"))["nodePool"]
    assert summary | {"hours": None, "maxNodeHours": None} == {
        "pool": "katuna-own", "provider": "gke", "capacity": "spot", "machineTypes": ["n2-standard-4"],
        "maxNodes": 4, "shared": False, "phase": "released", "created": True, "owned": True, "adopted": False,
        "deleted": True, "message": None,
        "requestedAt": 1_000_000.0, "readyAt": 1_000_060.0, "releasedAt": 1_003_780.0,
        "hours": None, "maxNodeHours": None,
        "nodeHours": None, "nodesSeen": 0, "nodesRunning": 0, "nodesLookedAt": None, "pricePerNodeHour": None,
        "cost": None, "currency": None, "nodesProblem": None}
    assert summary["hours"] == pytest.approx(3780 / 3600, abs=1e-3)
    assert summary["maxNodeHours"] == pytest.approx(4 * 3780 / 3600, abs=1e-3)
    assert gke_api.pools == {}
    deliver_twice(dispatcher, pool_check())
    assert len(gke_api.calls("DELETE")) == 1, "a released pool is left alone"
    shown = CliRunner().invoke(main, ["show", "own", "--db", str(store.path)])
    assert "node pool: katuna-own (gke, spot, n2-standard-4, up to 4 nodes) released and deleted: 1.05 h, " \
           "at most 4.20 node-hours" in " ".join(shown.output.split())


def test_a_shared_pool_is_scaled_back_not_deleted(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    submit(store, pool_study("shared-a", name="trials", shared=True), "u1")
    deliver_twice(dispatcher, created("shared-a", "u1"))
    checked_after(dispatcher, gke_api)
    gke_api.pools["trials"]["autoscaling"]["totalMinNodeCount"] = 2
    end(dispatcher, store, "shared-a")
    checked_after(dispatcher, gke_api)
    assert gke_api.calls("DELETE") == []
    assert gke_api.calls("POST", ":setAutoscaling")[0][2]["autoscaling"] == {
        "enabled": True, "totalMaxNodeCount": 4, "locationPolicy": 2}
    assert store.pool_use("u1").phase == "released" and not store.pool_use("u1").deleted


def test_an_own_pool_another_running_study_uses_is_kept_until_the_last_one_ends(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    submit(store, pool_study("first", name="trials"), "u1")
    deliver_twice(dispatcher, created("first", "u1"))
    checked_after(dispatcher, gke_api)
    submit(store, pool_study("second", name="trials", maxNodes=6), "u2")
    provisioned(dispatcher, created("second", "u2"))
    assert gke_api.calls("POST", ":setAutoscaling")[0][2]["autoscaling"]["totalMaxNodeCount"] == 6, "raised"
    use = store.pool_use("u2")
    assert (use.created, use.owned, use.adopted) == (False, True, None), "katuna's pool, made for another study"
    checked_after(dispatcher, gke_api)
    end(dispatcher, store, "first")
    assert gke_api.calls("DELETE") == [] and store.pool_use("u1").phase == "released"
    end(dispatcher, store, "second")
    checked_after(dispatcher, gke_api)
    assert len(gke_api.calls("DELETE")) == 1 and store.pool_use("u2").deleted and gke_api.pools == {}


def test_a_permanent_refusal_fails_the_study_with_the_clouds_message(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    submit(store, pool_study("bad-machine", machineType="e2-standard-3"), "u1")
    emitted = deliver_twice(dispatcher, created("bad-machine", "u1"))
    record = store.get_study("bad-machine")
    assert record.status == "failed"
    assert record.reason == ("node pool katuna-bad-machine: nodePool.machineType: GKE refused the request: "
                             'Invalid machine type "e2-standard-3" in zone "europe-west4-a": GCE_NOT_FOUND')
    assert [e.type for e in emitted] == ["dev.katuna.study.completed"]
    assert store.pool_use("u1").phase == "failed"
    deliver_twice(dispatcher, emitted[0])
    assert store.pool_use("u1").released_at is not None, "nothing left to release: the pool never existed"


def test_a_failed_operation_fails_the_study(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    submit(store, pool_study("no-quota"), "u1")
    gke_api.fail_next = "Insufficient regional quota to satisfy request: resource \"CPUS\""
    deliver_twice(dispatcher, created("no-quota", "u1"))
    emitted = checked_after(dispatcher, gke_api)
    assert [e.type for e in emitted] == ["dev.katuna.study.completed"]
    record = store.get_study("no-quota")
    assert record.status == "failed" and "Insufficient regional quota" in record.reason
    deliver_twice(dispatcher, emitted[0])
    assert [m for m, _, _ in gke_api.calls("DELETE")] == ["DELETE"], "the pool left in error is deleted"


def test_throttling_is_retried_and_leaves_nothing_stored(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    submit(store, pool_study("busy"), "u1")
    gke_api.refuse_next = (429, "Quota exceeded for quota metric 'Requests' (rate limit)")
    event = created("busy", "u1")
    with pytest.raises(TemporaryError, match="rate limit"):
        dispatcher.deliver_to("provision", event)
    assert store.pool_use("u1") is None and store.processed(event.id, "provision") is None
    deliver_twice(dispatcher, event)
    assert store.pool_use("u1").phase == "creating"


def test_a_study_ending_while_its_pool_is_created_releases_it_once_created(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    submit(store, pool_study("quick"), "u1")
    deliver_twice(dispatcher, created("quick", "u1"))
    end(dispatcher, store, "quick", "stopped")
    assert gke_api.calls("DELETE") == [] and store.pool_use("u1").phase == "creating"
    deliver_twice(dispatcher, pool_check())
    assert gke_api.calls("DELETE") == [] and store.pool_use("u1").phase == "creating"
    checked_after(dispatcher, gke_api)
    assert store.pool_use("u1").phase == "releasing" and len(gke_api.calls("DELETE")) == 1


def test_a_pool_created_with_its_answer_lost_is_deleted_when_its_study_ends_first(world, gke_api: GkeStub):
    """GKE took the create but its answer was lost, so no use records the pool, and the study ends
    before its ``study.created`` comes again: its ``study.completed`` finds the pool by the
    study's uid on it and deletes it. A pool of the name another study made is left alone."""
    dispatcher, store, _ = world
    # the pool's label holds the uid as GCE takes it (lower case, '.' as '_')
    submit(store, pool_study("lost"), "Lost.1")
    gke_api.lose_next_answer = "POST"
    with pytest.raises(TemporaryError):
        dispatcher.deliver_to("provision", created("lost", "Lost.1"))
    assert store.pool_use("Lost.1") is None and list(gke_api.pools) == ["katuna-lost"]
    gke_api.advance(600)
    assert end(dispatcher, store, "lost", "stopped") == []
    assert store.pool_use("Lost.1").phase == "releasing" and len(gke_api.calls("DELETE")) == 1
    checked_after(dispatcher, gke_api)
    assert gke_api.pools == {} and store.pool_use("Lost.1").phase == "released"

    submit(store, pool_study("theirs", name="katuna-kept"), "u2")
    deliver_twice(dispatcher, created("theirs", "u2"))
    submit(store, pool_study("mine", name="katuna-kept"), "u3")
    end(dispatcher, store, "mine", "stopped")
    assert store.pool_use("u3") is None and len(gke_api.calls("DELETE")) == 1, "the pool is u2's"


def test_trials_land_on_the_pool():
    spec = parse_study(pool_study("placed", name="trials"))
    assert dict(spec.trial_cluster.node_selector) == {"cloud.google.com/gke-nodepool": "trials"}
    assert {"key": "katuna.dev/trial", "operator": "Equal", "value": "true",
            "effect": "NoSchedule"} in spec.trial_cluster.tolerations
    eks = study_definition(name="eks-placed")
    eks["nodePool"] = {"provider": "eks", "instanceTypes": ["m5.xlarge"], "capacity": "on-demand"}
    eks["kubernetes"] = {"nodeSelector": {"team": "ml"}, "tolerations": []}
    cluster = parse_study(eks).trial_cluster
    assert dict(cluster.node_selector) == {"eks.amazonaws.com/nodegroup": "katuna-eks-placed", "team": "ml"}
    assert [t["key"] for t in cluster.tolerations] == ["katuna.dev/trial"], "the pool's taint is always tolerated"


def test_a_study_asking_for_a_pool_nobody_provides_is_refused_naming_the_field():
    spec = parse_study(pool_study("orphan"))
    with pytest.raises(InvalidStudy) as refused:
        check_node_pool(spec, Settings(executor="kubernetes"), runs_jobs=True)
    assert refused.value.problems[0].path == "nodePool.provider"
    assert "KATUNA_GKE_PROJECT, KATUNA_GKE_LOCATION and KATUNA_GKE_CLUSTER" in refused.value.problems[0].message
    with pytest.raises(InvalidStudy) as local:
        check_node_pool(spec, Settings(gke_project="p", gke_location="l", gke_cluster="c"), runs_jobs=False)
    assert local.value.problems[0].path == "nodePool"
    check_node_pool(spec, Settings(gke_project="p", gke_location="l", gke_cluster="c",
                                   k8s_default_resources=(("cpu", "1"),)), runs_jobs=True)
    check_node_pool(parse_study(study_definition()), Settings(), runs_jobs=False)


def test_node_pool_problems_are_listed_with_their_field_paths():
    definition = study_definition(name="bad-pool")
    definition["nodePool"] = {"provider": "eks", "capacity": "preemptible", "machineType": "n2-standard-4",
                              "maxNodes": 0, "diskSizeGb": 5, "accelerators": [{"type": "nvidia-l4"}],
                              "labels": {"team": "a b"}, "shared": True, "zone": "x"}
    with pytest.raises(InvalidStudy) as invalid:
        parse_study(definition)
    assert {p.path for p in invalid.value.problems} == {
        "nodePool.zone", "nodePool.name", "nodePool.capacity", "nodePool.machineType", "nodePool.maxNodes",
        "nodePool.diskSizeGb", "nodePool.accelerators", "nodePool.labels.team"}
    definition["nodePool"] = {"machineType": "e2-standard-4"}
    with pytest.raises(InvalidStudy, match="nodePool.provider: required"):
        parse_study(definition)


@pytest.mark.parametrize("machine,accelerator,count", [
    ("n1-standard-8", "nvidia-tesla-t4", 1), ("g2-standard-8", "nvidia-l4", 1), ("g2-standard-48", "nvidia-l4", 4),
    ("a2-highgpu-1g", "nvidia-tesla-a100", 1), ("a3-highgpu-8g", "nvidia-h100-80gb", 8), ("x9-future-8", "nvidia-next", 1),
])
def test_gpus_a_gke_machine_carries_are_accepted_as_many_as_it_comes_with_where_no_count_is_given(
        machine: str, accelerator: str, count: int):
    definition = study_definition(name="gpus", nodePool={"provider": "gke", "machineType": machine,
                                                         "accelerators": [{"type": accelerator}]})
    assert parse_study(definition).node_pool.accelerators == ((accelerator, count),), \
        "an unknown series is GKE's to judge"


@pytest.mark.parametrize("machine,accelerator,count,words", [
    ("g2-standard-8", "nvidia-l4", 8, "machine type g2-standard-8 comes with 1 nvidia-l4, not 8"),
    ("a3-highgpu-8g", "nvidia-h100-80gb", 4, "machine type a3-highgpu-8g comes with 8 nvidia-h100-80gb, not 4"),
    ("n1-standard-4", "nvidia-tesla-t4", 3, "an n1 machine type takes 1, 2, 4 of nvidia-tesla-t4 at a time, not 3"),
    ("n1-standard-16", "nvidia-tesla-p100", 8, "an n1 machine type takes 1, 2, 4 of nvidia-tesla-p100 at a time, not 8"),
    ("n1-standard-32", "nvidia-tesla-v100", 1, "1 nvidia-tesla-v100 attach to an n1 machine type of at most 12 vCPUs, "
                                               "not n1-standard-32's 32: expected a machine type of at most 12 vCPUs, "
                                               "or 4 nvidia-tesla-v100"),
    ("n1-highmem-64", "nvidia-tesla-t4", 2, "2 nvidia-tesla-t4 attach to an n1 machine type of at most 48 vCPUs, not "
                                            "n1-highmem-64's 64: expected a machine type of at most 48 vCPUs, or 4 "
                                            "nvidia-tesla-t4"),
    ("custom-24-92160", "nvidia-tesla-p100", 1, "1 nvidia-tesla-p100 attach to an n1 machine type of at most 16 vCPUs, "
                                                "not custom-24-92160's 24: expected a machine type of at most 16 "
                                                "vCPUs, or 2 nvidia-tesla-p100"),
    ("custom-4-15360", "nvidia-tesla-t4", 3, "an n1 machine type takes 1, 2, 4 of nvidia-tesla-t4 at a time, not 3"),
    ("n1-standard-96", "nvidia-tesla-p4", 2, "2 nvidia-tesla-p4 attach to an n1 machine type of at most 48 vCPUs, not "
                                             "n1-standard-96's 96: expected a machine type of at most 48 vCPUs, or 4 "
                                             "nvidia-tesla-p4"),
])
def test_more_or_fewer_gpus_than_a_gke_machine_takes_are_refused_at_submission(machine: str, accelerator: str,
                                                                             count: int, words: str):
    definition = study_definition(name="gpus", nodePool={"provider": "gke", "machineType": machine,
                                                         "accelerators": [{"type": accelerator, "count": count}]})
    with pytest.raises(InvalidStudy) as invalid:
        parse_study(definition)
    assert [(p.path, p.message) for p in invalid.value.problems] == [("nodePool.accelerators[0].count", words)]
    definition["nodePool"]["machineType"] = "n1-standard-16"
    definition["nodePool"]["accelerators"] = [{"type": "nvidia-tesla-v100", "count": 8}]
    assert parse_study(definition).node_pool.accelerators == (("nvidia-tesla-v100", 8),)


@pytest.mark.parametrize("pool,words", [
    ({"machineType": "n2-standard-8", "accelerators": [{"type": "nvidia-l4"}]}, "n2-standard-8 takes no GPU"),
    ({"machineType": "e2-standard-4", "accelerators": [{"type": "nvidia-tesla-t4"}]}, "e2-standard-4 takes no GPU"),
    ({"machineType": "n1-standard-8", "accelerators": [{"type": "nvidia-l4"}]}, "n1 machine types take"),
    ({"machineType": "g2-standard-8", "accelerators": [{"type": "nvidia-tesla-t4"}]}, "comes with nvidia-l4"),
    ({"accelerators": [{"type": "nvidia-tesla-t4"}]}, "is the default; set nodePool.machineType"),
])
def test_gpus_a_gke_machine_cannot_carry_are_refused_at_submission(pool: dict, words: str):
    definition = study_definition(name="gpus", nodePool={"provider": "gke", **pool})
    with pytest.raises(InvalidStudy) as invalid:
        parse_study(definition)
    [problem] = invalid.value.problems
    assert problem.path == "nodePool.accelerators[0].type" and words in problem.message


def test_node_labels_eks_would_refuse_are_refused_at_submission_naming_the_label():
    long_key = "example.com/" + "k" * 52
    labels = {"empty": "", long_key: "v", "team": "vision"}
    definition = study_definition(name="labels")
    definition["nodePool"] = {"provider": "gke", "labels": labels}
    assert dict(parse_study(definition).node_pool.labels) == labels, "Kubernetes and GKE take both"
    definition["nodePool"]["provider"] = "eks"
    with pytest.raises(InvalidStudy) as invalid:
        parse_study(definition)
    assert {p.path for p in invalid.value.problems} == {"nodePool.labels.empty", f"nodePool.labels.{long_key}"}
    assert "1 to 63 characters" in invalid.value.problems[0].message
    definition["nodePool"]["labels"] = {"a" * 254 + "/team": "vision"}
    with pytest.raises(InvalidStudy, match="prefix of at most 253 characters"):
        parse_study(definition)


def test_gke_node_labels_past_its_total_are_refused_at_submission_counting_katunas_own():
    """GKE takes 1,024 characters of node labels in all; katuna's ``katuna.dev/pool`` (15) and
    the pool's name count: 13 labels of 71 characters (923) fit beside a short name, not beside
    one of 40 with another label of 50."""
    labels = {f"label-{n:02}": "v" * 63 for n in range(13)}
    definition = study_definition(name="labels")
    definition["nodePool"] = {"provider": "gke", "name": "p", "labels": labels}
    assert len(parse_study(definition).node_pool.labels) == 13
    definition["nodePool"] = {"provider": "gke", "name": "p" * 40, "labels": {**labels, "extra": "x" * 45}}
    with pytest.raises(InvalidStudy) as invalid:
        parse_study(definition)
    [problem] = invalid.value.problems
    assert problem.path == "nodePool.labels" and "at most 1024 characters" in problem.message
    assert "these hold 1028" in problem.message, problem.message
    definition["nodePool"]["provider"] = "eks"
    assert parse_study(definition).node_pool is not None, "EKS's bound is per label"


@pytest.mark.parametrize("provider,key,words", [
    ("gke", "node-role.kubernetes.io/trial", "Kubernetes' own namespaces (kubernetes.io, k8s.io): GKE refuses them"),
    ("gke", "node.kubernetes.io/pool", "GKE refuses them"),
    ("gke", "kubernetes.io/role", "GKE refuses them"),
    ("gke", "cloud.google.com/compute-class", "outside cloud.google.com: GKE sets the labels"),
    ("eks", "node-role.kubernetes.io/trial", "kubelet refuses the others, and the nodes would never join"),
    ("eks", "node.k8s.io/x", "kubelet refuses the others"),
    ("eks", "eks.amazonaws.com/nodegroup", "outside eks.amazonaws.com: EKS sets the labels"),
    ("gke", "katuna.dev/pool", "other than katuna.dev/pool: katuna gives each node the pool's name there"),
    ("eks", "katuna.dev/pool", "other than katuna.dev/pool: katuna gives each node the pool's name there"),
])
def test_node_labels_in_kubernetes_or_the_clouds_own_namespaces_are_refused_naming_the_label(provider, key, words):
    definition = study_definition(name="reserved")
    definition["nodePool"] = {"provider": provider, "labels": {key: "x", "team": "vision"}}
    with pytest.raises(InvalidStudy) as invalid:
        parse_study(definition)
    [problem] = invalid.value.problems
    assert problem.path == f"nodePool.labels.{key}" and words in problem.message, problem.message


def test_node_labels_kubelet_takes_or_outside_reserved_namespaces_are_taken():
    definition = study_definition(name="allowed")
    labels = {"node.kubernetes.io/team": "vision", "kubelet.kubernetes.io/tier": "batch",
              "example.kubernetes.io.example.com/x": "y", "cloud.google.com/x": "y"}
    definition["nodePool"] = {"provider": "eks", "labels": labels}
    assert dict(parse_study(definition).node_pool.labels) == labels, "kubelet's own namespaces, on EKS"
    definition["nodePool"] = {"provider": "gke", "labels": {"eks.amazonaws.com/x": "y", "team": "vision"}}
    assert dict(parse_study(definition).node_pool.labels) == {"eks.amazonaws.com/x": "y", "team": "vision"}


@pytest.mark.parametrize("name", ["trials-", "trials_", "-trials", "t" * 64])
def test_an_eks_node_group_name_no_label_value_can_hold_is_refused_at_submission_naming_it(name: str):
    """The name is the nodes' ``katuna.dev/pool`` label and the trials' nodeSelector value, which
    EKS and the API server refuse unless it starts and ends with a letter or digit."""
    definition = study_definition(name="named")
    definition["nodePool"] = {"provider": "eks", "name": name}
    with pytest.raises(InvalidStudy) as invalid:
        parse_study(definition)
    [problem] = invalid.value.problems
    assert problem.path == "nodePool.name" and "starting and ending with a letter or digit" in problem.message
    definition["nodePool"]["name"] = "Trials_2-b"
    assert parse_study(definition).node_pool.name == "Trials_2-b"


def test_the_node_pool_round_trips_and_defaults_to_one_node_per_parallel_trial():
    spec = parse_study(pool_study("round", maxNodes=None))
    assert spec.node_pool.max_nodes == spec.parallelism == 2
    assert parse_study(spec.to_dict()) == spec


def test_katuna_render_places_the_job_on_the_pool_and_katuna_run_refuses_a_pool(tmp_path: Path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(pool_study("rendered", name="trials")))
    rendered = CliRunner().invoke(main, ["render", str(path), "--params", "x=1.5"])
    assert rendered.exit_code == 0, rendered.output
    pod = yaml.safe_load(rendered.output)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-nodepool": "trials"}
    assert pod["tolerations"] == [{"key": "katuna.dev/trial", "operator": "Equal", "value": "true",
                                   "effect": "NoSchedule"}]
    ran = CliRunner().invoke(main, ["run", str(path), "--db", str(tmp_path / "k.db")])
    assert ran.exit_code == 2 and "nodePool: trials run on this machine here" in unlined(ran.output)


def test_a_running_study_whose_provisioning_was_lost_gets_its_pool_on_the_next_tick(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    submit(store, pool_study("lost"), "u1")
    gke_api.refuse_next = (503, "backend unavailable")
    with pytest.raises(TemporaryError):
        dispatcher.deliver_to("provision", created("lost", "u1"))
    assert waiting_on_pools(store, START)
    deliver_twice(dispatcher, pool_check())
    checked_after(dispatcher, gke_api)
    assert store.pool_use("u1").phase == "ready" and len(gke_api.calls("POST", "/nodePools")) == 2, "refused, then created"
    assert not waiting_on_pools(store, START)


def deleted_by_hand(gke_api: GkeStub, name: str) -> None:
    """The pool deleted in the console (or by ``gcloud``), as GKE deletes it."""
    api = gke.client(gke_api.url)
    api.delete_node_pool(name=f"projects/proj-7/locations/europe-west4/clusters/tuning/nodePools/{name}")
    gke_api.advance(600)
    assert name not in gke_api.pools


def test_a_pool_deleted_while_its_study_runs_is_created_again_on_a_tick(world, gke_api: GkeStub):
    """Trials would wait an hour each for nodes of a pool that is gone: the tick finds it
    missing and creates it again, the study's own, deleted when the study ends."""
    dispatcher, store, _ = world
    submit(store, pool_study("oob"), "u1")
    deliver_twice(dispatcher, created("oob", "u1"))
    checked_after(dispatcher, gke_api)
    assert store.pool_use("u1").phase == "ready"
    deleted_by_hand(gke_api, "katuna-oob")
    deliver_twice(dispatcher, pool_check())
    assert store.pool_use("u1").phase == "creating" and waiting_on_pools(store, START)
    checked_after(dispatcher, gke_api)
    use = store.pool_use("u1")
    assert (use.phase, use.created) == ("ready", True) and store.get_study("oob").status == "running"
    assert gke_api.pools["katuna-oob"]["config"]["resourceLabels"]["katuna-study-uid"] == "u1"
    end(dispatcher, store, "oob")
    checked_after(dispatcher, gke_api)
    assert gke_api.pools == {} and store.pool_use("u1").deleted


def test_a_deleted_pool_the_cloud_refuses_to_create_again_fails_its_study_naming_it(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    submit(store, pool_study("gone"), "u1")
    deliver_twice(dispatcher, created("gone", "u1"))
    checked_after(dispatcher, gke_api)
    deleted_by_hand(gke_api, "katuna-gone")
    gke_api.refuse_next = (403, "Insufficient regional quota to satisfy request: resource \"CPUS\"")
    gke_api.refuse_method = "POST"
    [ended] = dispatcher.deliver_to("provision", pool_check())
    assert ended.type == "dev.katuna.study.completed"
    assert store.get_study("gone").reason == (
        "node pool katuna-gone: deleted while the study ran, and not created again: GKE refused the request: "
        "Insufficient regional quota to satisfy request: resource \"CPUS\"")


def test_a_trial_spec_job_keeps_its_own_selector_and_lands_on_the_pool():
    definition = pool_study("spec-pool", name="trials")
    definition["trialTemplate"] = {"trialSpec": {
        "apiVersion": "batch/v1", "kind": "Job",
        "spec": {"template": {"spec": {
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "train", "image": "python:3.12",
                            "command": ["python", "train.py", "--x=${trialParameters.x}"]}]}}}}}
    record = StudyRecord(parse_study(definition), definition, "/tmp", "u1")
    pod = render_job(trial_launch(record, TrialRecord("spec-pool", 0, {"x": 1.0})))["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"disk": "ssd", "cloud.google.com/gke-nodepool": "trials"}
    assert [t["key"] for t in pod["tolerations"]] == ["gpu", "katuna.dev/trial"]


def test_a_pool_found_while_another_study_creates_it_gets_the_larger_maximum_once_created(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    submit(store, pool_study("early", name="trials", shared=True), "u1")
    submit(store, pool_study("late", name="trials", shared=True, maxNodes=9), "u2")
    deliver_twice(dispatcher, created("early", "u1"))
    deliver_twice(dispatcher, created("late", "u2"))
    assert store.pool_use("u2").operation == "pool:trials" and not store.pool_use("u2").created
    assert store.pool_use("u2").owned, "made by katuna, for the other study"
    for _ in range(3):
        checked_after(dispatcher, gke_api)
    assert gke_api.calls("POST", ":setAutoscaling")[0][2]["autoscaling"]["totalMaxNodeCount"] == 9
    assert store.pool_use("u1").phase == store.pool_use("u2").phase == "ready"
    assert list(gke_api.pools) == ["trials"] and gke_api.pools["trials"]["autoscaling"]["totalMaxNodeCount"] == 9


def test_node_pool_settings_are_checked_once_at_start():
    with pytest.raises(ValueError, match="KATUNA_GKE_PROJECT: required with KATUNA_GKE_CLUSTER"):
        Settings.from_env({"KATUNA_GKE_CLUSTER": "tuning", "KATUNA_GKE_LOCATION": "europe-west4"})
    with pytest.raises(ValueError, match="KATUNA_EKS_SUBNETS and KATUNA_EKS_NODE_ROLE"):
        Settings.from_env({"KATUNA_EKS_CLUSTER": "tuning"})
    with pytest.raises(ValueError, match=r"KATUNA_EKS_NODE_ROLE: expected the IAM role ARN of the nodes "
                                         r"\(arn:aws:iam::ACCOUNT_ID:role/NAME\), got 'katuna-nodes'"):
        Settings.from_env({"KATUNA_EKS_CLUSTER": "tuning", "KATUNA_EKS_SUBNETS": "subnet-a",
                           "KATUNA_EKS_NODE_ROLE": "katuna-nodes"})
    with pytest.raises(ValueError, match="node pools live in one cloud"):
        Settings.from_env({"KATUNA_EKS_CLUSTER": "a", "KATUNA_GKE_CLUSTER": "b"})
    eks = Settings.from_env({"KATUNA_EKS_CLUSTER": "tuning", "KATUNA_EKS_SUBNETS": "subnet-a, subnet-b",
                             "KATUNA_EKS_NODE_ROLE": "arn:aws:iam::123456789012:role/n"})
    assert (eks.node_pool_provider, eks.eks_subnets) == ("eks", ("subnet-a", "subnet-b"))
    assert Settings.from_env({}).node_pool_provider is None


def made_by_hand(gke_api: GkeStub, name: str, tainted: bool = True, machine: str = "n2-standard-4") -> None:
    """A pool that was there before katuna: autoscaling 1..3, made by an operator."""
    pool = parse_study(pool_study("by-hand", name=name, machineType=machine, maxNodes=3)).node_pool
    request = gke_requests.create_request(gke_requests.GkeCluster("proj-7", "europe-west4", "tuning"), pool)
    request["node_pool"]["autoscaling"]["total_min_node_count"] = 1
    if not tainted:
        del request["node_pool"]["config"]["taints"]
    gke.client(gke_api.url).create_node_pool(request=request)
    gke_api.advance(600)
    gke_api.requests.clear()


def limits(gke_api: GkeStub, name: str) -> tuple[int, int]:
    scaling = gke_api.pools[name]["autoscaling"]
    return scaling.get("totalMinNodeCount", 0), scaling["totalMaxNodeCount"]


def test_a_pool_katuna_did_not_create_is_never_deleted_and_gets_its_limits_back(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    made_by_hand(gke_api, "trials")
    submit(store, pool_study("adopting", name="trials", maxNodes=6), "u1")
    provisioned(dispatcher, created("adopting", "u1"))
    assert limits(gke_api, "trials") == (1, 6), "the maximum raised for the study, the minimum kept"
    checked_after(dispatcher, gke_api)
    assert store.pool_use("u1").phase == "ready"
    end(dispatcher, store, "adopting")
    checked_after(dispatcher, gke_api)
    assert gke_api.calls("DELETE") == [] and limits(gke_api, "trials") == (1, 3), "given back as found"
    summary = study_view(store, store.get_study("adopting"))["nodePool"]
    assert (summary["phase"], summary["created"], summary["owned"], summary["adopted"], summary["deleted"]) == (
        "released", False, False, True, False)


class RaiseAnswerLost:
    """GKE's node pools, whose first raise of a pool's maximum is made and its answer lost (a
    timeout, or the handling's process killed before its commit): the handling fails."""

    def __init__(self, pools: gke.GkeNodePools, gke_api: GkeStub, name: str) -> None:
        self._pools, self._gke_api, self._name = pools, gke_api, name
        self.lost = False

    def __getattr__(self, attribute: str):
        return getattr(self._pools, attribute)

    def ensure(self, *args, **kwargs):
        before = limits(self._gke_api, self._name)
        change = self._pools.ensure(*args, **kwargs)
        if not self.lost and limits(self._gke_api, self._name) != before:
            self.lost = True
            raise TemporaryError("GKE: the request timed out")
        return change


def test_a_pool_whose_raise_lost_its_answer_gets_back_the_limits_it_was_found_with(gke_api: GkeStub, tmp_path: Path):
    made_by_hand(gke_api, "trials")
    store = SqliteStore(tmp_path / "katuna.db")
    pools = RaiseAnswerLost(gke.GkeNodePools(gke_requests.GkeCluster("proj-7", "europe-west4", "tuning"),
                                             gke.client(gke_api.url)), gke_api, "trials")
    dispatcher = Dispatcher(Deps(store, LocalExecutor(tmp_path / "logs", lambda event: None), Clock(START), pools))
    submit(store, pool_study("raised", name="trials", maxNodes=6), "u1")
    for event in [created("raised", "u1"), *[pool_check()] * 3]:
        for _ in range(3):  # delivered again while it fails, as a Trigger retries it
            try:
                for emitted in dispatcher.deliver_to("provision", event):
                    dispatcher.deliver_to("provision", emitted)
                break
            except TemporaryError:
                continue
        gke_api.advance(600)
    assert pools.lost and limits(gke_api, "trials") == (1, 6), "raised for the study, its first answer lost"
    assert store.pool_use("u1").phase == "ready"
    end(dispatcher, store, "raised")
    checked_after(dispatcher, gke_api)
    assert limits(gke_api, "trials") == (1, 3), "given back as found, not as the lost raise left it"
    store.close()


def test_a_pool_adopted_by_two_studies_gets_back_the_limits_the_first_one_found(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    made_by_hand(gke_api, "trials")
    submit(store, pool_study("one", name="trials", maxNodes=6), "u1")
    deliver_twice(dispatcher, created("one", "u1"))
    gke_api.advance(600)
    submit(store, pool_study("two", name="trials", maxNodes=6), "u2")
    deliver_twice(dispatcher, created("two", "u2"))
    deliver_twice(dispatcher, pool_check())
    end(dispatcher, store, "one")
    assert limits(gke_api, "trials") == (1, 6), "left to the study still using it"
    end(dispatcher, store, "two")
    checked_after(dispatcher, gke_api)
    assert gke_api.calls("DELETE") == [] and limits(gke_api, "trials") == (1, 3)


def test_a_pool_without_the_trial_taint_fails_the_study_naming_the_field_and_is_left_alone(world, gke_api):
    dispatcher, store, _ = world
    made_by_hand(gke_api, "default-pool", tainted=False)
    before = dict(gke_api.pools["default-pool"])
    submit(store, pool_study("on-default", name="default-pool"), "u1")
    emitted = deliver_twice(dispatcher, created("on-default", "u1"))
    record = store.get_study("on-default")
    assert record.status == "failed"
    assert record.reason.startswith("node pool default-pool: nodePool.name: node pool default-pool exists without "
                                    "the taint katuna.dev/trial=true:NoSchedule")
    deliver_twice(dispatcher, emitted[0])
    deliver_twice(dispatcher, pool_check())
    assert [m for m, _, _ in gke_api.calls() if m != "GET"] == ["POST"], "only the create, answered 409"
    assert gke_api.pools["default-pool"] == before


def test_a_pool_of_another_machine_type_fails_the_study_naming_the_field(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    made_by_hand(gke_api, "trials", machine="e2-standard-8")
    submit(store, pool_study("mismatch", name="trials"), "u1")
    deliver_twice(dispatcher, created("mismatch", "u1"))
    assert store.get_study("mismatch").reason == (
        "node pool trials: nodePool.machineType: node pool trials exists with machine type e2-standard-8; "
        "the study asks for n2-standard-4")


def test_a_create_answered_exists_by_the_studys_own_earlier_create_is_still_its_own(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    submit(store, pool_study("lost-answer"), "u1")
    pools = gke.GkeNodePools(gke_requests.GkeCluster("proj-7", "europe-west4", "tuning"), gke.client(gke_api.url))
    pools.ensure(store.get_study("lost-answer").spec.node_pool, owner="u1")
    deliver_twice(dispatcher, created("lost-answer", "u1"))
    use = store.pool_use("u1")
    assert (use.created, use.owned, use.operation) == (True, True, "pool:katuna-lost-answer")
    checked_after(dispatcher, gke_api)
    end(dispatcher, store, "lost-answer")
    checked_after(dispatcher, gke_api)
    assert store.pool_use("u1").deleted and gke_api.pools == {}


def test_a_tick_with_the_cluster_busy_leaves_that_pool_for_the_next_tick(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    submit(store, pool_study("busy-a"), "u1")
    deliver_twice(dispatcher, created("busy-a", "u1"))
    checked_after(dispatcher, gke_api)
    submit(store, pool_study("busy-b"), "u2")
    gke_api.refuse_next = (503, "backend unavailable")
    with pytest.raises(TemporaryError):
        dispatcher.deliver_to("provision", created("busy-b", "u2"))
    end(dispatcher, store, "busy-a")
    assert store.pool_use("u1").phase == "releasing", "its pool's deletion runs on the cluster"
    deliver_twice(dispatcher, pool_check())
    assert store.pool_use("u2") is None, "the cluster is busy: asked again on the next tick"
    checked_after(dispatcher, gke_api)
    assert store.pool_use("u1").phase == "released" and store.pool_use("u2").phase == "creating"
    checked_after(dispatcher, gke_api)
    assert store.pool_use("u2").phase == "ready"


def test_an_operation_the_cloud_will_not_show_fails_its_own_pool_and_the_tick_goes_on(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    for name, uid in (("lost-a", "u1"), ("lost-b", "u2")):
        submit(store, pool_study(name), uid)
        deliver_twice(dispatcher, created(name, uid))
        gke_api.advance(600)
    operation = store.pool_use("u1").operation.rpartition("/")[2]
    gke_api.refused_operations[operation] = (403, "Permission 'container.operations.get' denied")
    deliver_twice(dispatcher, pool_check())
    assert store.pool_use("u2").phase == "ready", "the other study's pool is not held up"
    record = store.get_study("lost-a")
    assert record.status == "failed" and "container.operations.get" in record.reason
    assert store.pool_use("u1").phase == "releasing", "the pool it created is deleted all the same"
    checked_after(dispatcher, gke_api)
    assert store.pool_use("u1").phase == "released" and "katuna-lost-a" not in gke_api.pools


def test_pool_uses_stored_before_ownership_was_recorded_keep_only_own_pools_deletable(tmp_path: Path):
    store = SqliteStore(tmp_path / "old.db")
    for uid, created in (("u1", True), ("u2", False)):
        store.save_pool_use(PoolUse(uid, f"s-{uid}", f"pool-{uid}", "gke", "spot", ("n2-standard-4",), 3, False,
                                    phase="ready", created=created))
    for column in ("owned", "adopted", "nodes", "looked_at", "nodes_problem"):
        store.db.execute(f"ALTER TABLE node_pools DROP COLUMN {column}")
    undo_trial_changes(store.tables())
    store.db.execute("PRAGMA user_version = 9")
    store.close()
    reopened = SqliteStore(tmp_path / "old.db")
    assert [(u.uid, u.owned, u.adopted) for u in reopened.pool_uses()] == [("u1", True, None), ("u2", False, None)]
    reopened.close()


def test_a_study_whose_pool_create_meets_a_control_plane_upgrade_waits_and_then_runs(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    submit(store, pool_study("upgrading"), "u1")
    gke_api.update_master(300, busy="master")
    with pytest.raises(TemporaryError, match="Master is being updated"):
        dispatcher.deliver_to("provision", created("upgrading", "u1"))
    deliver_twice(dispatcher, pool_check())
    assert store.pool_use("u1") is None and waiting_on_pools(store, START), "still upgrading: asked again on the next tick"
    checked_after(dispatcher, gke_api, 300)
    checked_after(dispatcher, gke_api)
    assert store.pool_use("u1").phase == "ready" and store.get_study("upgrading").status == "running"
    assert len(gke_api.calls("POST", "/nodePools")) == 3, "refused twice, then created"


def test_a_pool_refused_for_now_past_the_pool_wait_fails_its_study_with_the_clouds_last_answer(world, gke_api):
    dispatcher, store, clock = world
    submit(store, pool_study("stuck"), "u1")
    precondition = (400, "Operation operation-9 is currently upgrading cluster tuning. Please wait and try again "
                         "once it is done.", "FAILED_PRECONDITION")
    for minutes in (0, 30, 59):
        clock.now = START + minutes * 60
        gke_api.refuse_next = precondition
        dispatcher.deliver_to("provision", pool_check())
        assert store.get_study("stuck").status == "running" and store.pool_use("u1") is None, \
            "within KATUNA_POOL_WAIT a busy cluster is asked again on the next tick"
    clock.now = START + 3600
    gke_api.refuse_next = precondition
    dispatcher.deliver_to("provision", pool_check())
    record = store.get_study("stuck")
    assert record.status == "failed"
    assert "not created within 3600 s" in record.reason and "is currently upgrading cluster" in record.reason
    assert store.pool_use("u1").phase == "failed"
    deliver_twice(dispatcher, pool_check())
    deliver_twice(dispatcher, created("stuck", "u1"))
    assert len(gke_api.calls("POST", "/nodePools")) == 4 and gke_api.pools == {}, "never asked again"


def test_a_pool_created_past_the_pool_wait_with_its_answer_lost_is_deleted_by_the_ticks(world, gke_api):
    """GKE took the create but its answer was lost once KATUNA_POOL_WAIT had passed: the study
    fails, and its pool, found by the study's uid on it, is deleted rather than left running."""
    dispatcher, store, clock = world
    submit(store, pool_study("late"), "u1")
    clock.now = START + 3601
    gke_api.lose_next_answer = "POST"
    dispatcher.deliver_to("provision", created("late", "u1"))
    use = store.pool_use("u1")
    assert store.get_study("late").status == "failed" and (use.phase, use.created) == ("failed", False)
    assert "katuna-late" in gke_api.pools
    checked_after(dispatcher, gke_api)
    checked_after(dispatcher, gke_api)
    use = store.pool_use("u1")
    assert gke_api.pools == {} and use.deleted and use.released_at is not None


def test_a_pool_the_studys_own_earlier_create_left_in_error_is_deleted(world, gke_api: GkeStub):
    """The study's first create went through with its answer lost, and its operation failed:
    the study.created delivered again finds the pool in error and fails the study; the pool,
    the study's own by its uid, is deleted."""
    dispatcher, store, _ = world
    submit(store, pool_study("broken"), "u1")
    gke_api.lose_next_answer = "POST"
    gke_api.fail_next = "Instances failed to start: ZONE_RESOURCE_POOL_EXHAUSTED"
    with pytest.raises(TemporaryError):
        dispatcher.deliver_to("provision", created("broken", "u1"))
    gke_api.advance(600)
    deliver_twice(dispatcher, created("broken", "u1"))
    assert "is in error" in store.get_study("broken").reason and not store.pool_use("u1").created
    deliver_twice(dispatcher, pool_check())
    checked_after(dispatcher, gke_api)
    assert gke_api.pools == {} and store.pool_use("u1").deleted


def test_the_pool_wait_is_a_positive_number_of_seconds():
    assert Settings.from_env({}).pool_wait == 3600 and Settings.from_env({"KATUNA_POOL_WAIT": "600"}).pool_wait == 600
    for given in ("0", "-5"):
        with pytest.raises(ValueError, match="KATUNA_POOL_WAIT: expected a positive number of seconds"):
            Settings.from_env({"KATUNA_POOL_WAIT": given})
    with pytest.raises(ValueError, match="KATUNA_POOL_WAIT: expected a number, got 'inf'"):
        Settings.from_env({"KATUNA_POOL_WAIT": "inf"})


def test_a_release_meeting_a_cluster_update_is_retried_on_the_next_tick_and_the_pool_deleted(world, gke_api):
    dispatcher, store, _ = world
    submit(store, pool_study("held"), "u1")
    deliver_twice(dispatcher, created("held", "u1"))
    checked_after(dispatcher, gke_api)
    gke_api.update_master(300, busy="cluster")
    assert end(dispatcher, store, "held") == []
    deliver_twice(dispatcher, pool_check())
    use = store.pool_use("u1")
    assert (use.phase, use.released_at) == ("ready", None) and waiting_on_pools(store, START)
    checked_after(dispatcher, gke_api, 300)
    assert store.pool_use("u1").phase == "releasing"
    checked_after(dispatcher, gke_api)
    assert store.pool_use("u1").deleted and gke_api.pools == {}
    assert len(gke_api.calls("DELETE")) == 3, "refused on study.completed and on a tick, then taken"


def test_a_pool_whose_creation_failed_is_deleted_on_a_later_tick_once_the_cluster_lets_it(world, gke_api):
    dispatcher, store, _ = world
    submit(store, pool_study("broken"), "u1")
    gke_api.fail_next = "Instances failed to start: ZONE_RESOURCE_POOL_EXHAUSTED"
    deliver_twice(dispatcher, created("broken", "u1"))
    gke_api.advance(600)
    gke_api.update_master(300)
    [ended] = deliver_twice(dispatcher, pool_check())
    assert ended.type == "dev.katuna.study.completed" and store.get_study("broken").status == "failed"
    deliver_twice(dispatcher, ended)
    deliver_twice(dispatcher, pool_check())
    use = store.pool_use("u1")
    assert (use.phase, use.released_at, use.message) == ("failed", None, "Instances failed to start: "
                                                                          "ZONE_RESOURCE_POOL_EXHAUSTED")
    checked_after(dispatcher, gke_api, 300)
    checked_after(dispatcher, gke_api)
    use = store.pool_use("u1")
    assert use.deleted and use.phase == "released" and gke_api.pools == {}
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in store.get_study("broken").reason


def test_a_release_refused_for_good_says_the_pool_is_left_in_the_cluster(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    submit(store, pool_study("lost-right"), "u1")
    deliver_twice(dispatcher, created("lost-right", "u1"))
    checked_after(dispatcher, gke_api)
    gke_api.refuse_next = (403, "Required \"container.clusters.update\" permission(s)")
    end(dispatcher, store, "lost-right")
    use = store.pool_use("u1")
    assert use.phase == "failed" and not use.deleted and "katuna-lost-right" in gke_api.pools
    assert use.message == ("releasing the pool: GKE refused the request: Required \"container.clusters.update\" "
                           "permission(s); node pool katuna-lost-right is left in the cluster; delete it by hand")
    shown = CliRunner().invoke(main, ["show", "lost-right", "--db", str(store.path)])
    assert "failed: " in shown.output and "delete it by hand" in " ".join(shown.output.split())


def test_a_release_in_a_cluster_gke_does_not_have_is_not_taken_for_a_deleted_pool(world, gke_api: GkeStub,
                                                                                    tmp_path: Path):
    """The service set to a cluster name with a typo when the study ends: the pool its study made
    is not recorded deleted, and the message names the settings to fix and what is left."""
    dispatcher, store, clock = world
    submit(store, pool_study("moved"), "u1")
    deliver_twice(dispatcher, created("moved", "u1"))
    checked_after(dispatcher, gke_api)
    mistyped = gke.GkeNodePools(gke_requests.GkeCluster("proj-7", "europe-west4", "tunign"), gke.client(gke_api.url))
    end(Dispatcher(Deps(store, LocalExecutor(tmp_path / "logs", lambda event: None), clock, mistyped)), store, "moved")
    use = store.pool_use("u1")
    assert use.phase == "failed" and not use.deleted and gke_api.pools["katuna-moved"]["status"] == "RUNNING"
    assert use.message.startswith("releasing the pool: KATUNA_GKE_CLUSTER/KATUNA_GKE_LOCATION: GKE has no cluster "
                                  "tunign in location europe-west4 of project proj-7"), use.message
    assert use.message.endswith("node pool katuna-moved is left in the cluster; delete it by hand")


def test_a_token_refresh_failing_for_a_while_is_retried_and_never_fails_the_study(gke_api: GkeStub, tmp_path):
    credentials = MetadataServerHiccup(failures=4)
    store = SqliteStore(tmp_path / "katuna.db")
    dispatcher = Dispatcher(Deps(store, LocalExecutor(tmp_path / "logs", lambda event: None), Clock(START),
                                 signed_in(gke_api, credentials)))
    submit(store, pool_study("hiccup"), "u1")
    for _ in range(3):
        with pytest.raises(TemporaryError, match="credentials could not be refreshed now"):
            dispatcher.deliver_to("provision", created("hiccup", "u1"))
    deliver_twice(dispatcher, pool_check())
    assert store.get_study("hiccup").status == "running" and store.pool_use("u1") is None
    deliver_twice(dispatcher, pool_check())
    assert store.pool_use("u1").phase == "creating" and credentials.refreshes == 5
    store.close()


def test_a_shared_pools_maximum_comes_back_once_the_study_that_raised_it_ends(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    submit(store, pool_study("small", name="trials", shared=True), "u1")
    deliver_twice(dispatcher, created("small", "u1"))
    checked_after(dispatcher, gke_api)
    submit(store, pool_study("large", name="trials", shared=True, maxNodes=10), "u2")
    provisioned(dispatcher, created("large", "u2"))
    checked_after(dispatcher, gke_api)
    assert limits(gke_api, "trials") == (0, 10), "raised for the larger study"
    end(dispatcher, store, "large")
    checked_after(dispatcher, gke_api)
    assert limits(gke_api, "trials") == (0, 4), "the study still running needs no more than the pool was made with"
    assert store.pool_use("u2").phase == "released"
    end(dispatcher, store, "small")
    checked_after(dispatcher, gke_api)
    assert limits(gke_api, "trials") == (0, 4) and gke_api.calls("DELETE") == []
    assert len(gke_api.calls("POST", ":setAutoscaling")) == 2, "raised once, lowered once"


def test_a_raised_maximum_stays_while_the_study_that_needs_it_runs_and_no_longer(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    submit(store, pool_study("maker", name="trials", shared=True), "u1")
    deliver_twice(dispatcher, created("maker", "u1"))
    checked_after(dispatcher, gke_api)
    submit(store, pool_study("grower", name="trials", shared=True, maxNodes=10), "u2")
    deliver_twice(dispatcher, created("grower", "u2"))
    checked_after(dispatcher, gke_api)
    end(dispatcher, store, "maker")
    checked_after(dispatcher, gke_api)
    assert limits(gke_api, "trials") == (0, 10), "the running study still needs it"
    submit(store, pool_study("later", name="trials", shared=True, maxNodes=6), "u3")
    deliver_twice(dispatcher, created("later", "u3"))
    end(dispatcher, store, "grower")
    checked_after(dispatcher, gke_api)
    assert limits(gke_api, "trials") == (0, 6), "down to what the study still running asks"
    end(dispatcher, store, "later")
    checked_after(dispatcher, gke_api)
    assert limits(gke_api, "trials") == (0, 4), "back to the maximum it was created with"


@pytest.fixture
def capped(gke_api: GkeStub, tmp_path: Path):
    """The world of the tests above, holding at most two node pools at once."""
    store = SqliteStore(tmp_path / "katuna.db")
    pools = gke.GkeNodePools(gke_requests.GkeCluster("proj-7", "europe-west4", "tuning"), gke.client(gke_api.url))
    deps = Deps(store, LocalExecutor(tmp_path / "logs", lambda event: None), Clock(START), pools,
                limits=Limits(pools=2))
    yield Dispatcher(deps), store, deps
    store.close()


def test_a_study_whose_pool_would_be_one_too_many_is_refused_at_submission_and_stores_nothing(capped):
    _, store, deps = capped
    for name in ("one", "two"):
        store_study(deps, parse_study(pool_study(name)), pool_study(name))
    with pytest.raises(InvalidStudy) as refused:
        store_study(deps, parse_study(pool_study("three")), pool_study("three"))
    [problem] = refused.value.problems
    assert problem.path == "nodePool"
    assert problem.message.startswith("katuna's studies hold 2 node pools, the most they may hold at once "
                                      "(set by KATUNA_MAX_POOLS)")
    assert [r.name for r in store.list_studies()] == ["one", "two"]
    sharing = pool_study("sharing", name="katuna-one")
    assert store_study(deps, parse_study(sharing), sharing)[1], "a pool held already is no pool more"
    assert not store_study(deps, parse_study(pool_study("two")), pool_study("two"))[1], "submitted again: stored"
    plain = study_definition(name="plain")
    assert store_study(deps, parse_study(plain), plain)[1], "a study without a pool holds none"


def test_concurrent_submissions_never_hold_more_pools_than_allowed(capped, tmp_path: Path):
    _, store, deps = capped
    start = threading.Barrier(6)

    def submit_one(name: str) -> str:
        own = replace(deps, store=SqliteStore(store.path))
        start.wait()
        try:
            store_study(own, parse_study(pool_study(name)), pool_study(name))
            return "stored"
        except InvalidStudy as exc:
            return exc.problems[0].path
        finally:
            own.store.close()

    with ThreadPoolExecutor(6) as threads:
        answers = list(threads.map(submit_one, [f"race-{i}" for i in range(6)]))
    assert sorted(answers) == ["nodePool"] * 4 + ["stored"] * 2
    assert len(store.list_studies()) == 2


def test_a_pool_past_the_count_when_its_use_is_created_fails_the_study_and_asks_nothing(capped, gke_api):
    dispatcher, store, _ = capped
    for name, uid in (("first", "u1"), ("second", "u2"), ("third", "u3")):
        submit(store, pool_study(name), uid)
    deliver_twice(dispatcher, created("first", "u1"))
    gke_api.advance(600)
    deliver_twice(dispatcher, created("second", "u2"))
    gke_api.advance(600)
    emitted = deliver_twice(dispatcher, created("third", "u3"))
    assert [e.type for e in emitted] == ["dev.katuna.study.completed"]
    record = store.get_study("third")
    assert record.status == "failed" and record.reason.startswith(
        "node pool katuna-third: nodePool: katuna's studies hold 2 node pools, the most they may hold at once "
        "(set by KATUNA_MAX_POOLS)")
    assert (store.pool_use("u3").phase, store.pool_use("u3").released_at is not None) == ("failed", True)
    assert sorted(p[2]["nodePool"]["name"] for p in gke_api.calls("POST", "/nodePools")) == [
        "katuna-first", "katuna-second"]
    deliver_twice(dispatcher, emitted[0])
    deliver_twice(dispatcher, pool_check())
    assert len(gke_api.calls("POST", "/nodePools")) == 2 and "katuna-third" not in gke_api.pools


def test_a_study_without_a_pool_leaves_provision_nothing_to_write_nor_to_wait_for(tmp_path: Path):
    """Every trial's continuation reaches ``provision``: for a study without a node pool it
    takes no write lock (another process holding it does not hold the handling up) and keeps
    no record, while a pool study's handling still writes and records."""
    store = SqliteStore(tmp_path / "katuna.db", busy_timeout=0.05)
    dispatcher = Dispatcher(Deps(store, LocalExecutor(tmp_path / "logs", lambda event: None), Clock(START)))
    submit(store, study_definition(name="plain"), "u-plain")
    submit(store, pool_study("pooled"), "u-pooled")
    other = sqlite3.connect(tmp_path / "katuna.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        for event in (created("plain", "u-plain"), study_completed("plain", "u-plain", "completed", "done"),
                      created("plain", "an earlier study's uid")):
            assert dispatcher.deliver_to("provision", event) == []
            assert store.processed(event.id, "provision") is None
        with pytest.raises(TemporaryError):
            dispatcher.deliver_to("provision", created("pooled", "u-pooled"))
    finally:
        other.execute("ROLLBACK")
        other.close()
        store.close()
