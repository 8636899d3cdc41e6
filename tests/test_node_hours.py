"""A study's node-hours, measured from its pool's Node objects: the looks, the figure, and where
a user reads it (``GET /studies/{name}``, ``katuna show``, the dashboard)."""

from __future__ import annotations

import calendar
import math
import os
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import study_definition, undo_trial_changes
from http_helpers import Service, run_katuna
from kube_standin.clock import SimulatedClock, rfc3339
from kube_stub import KubeStub, NodePool
from playwright.sync_api import Browser, expect
from test_reconcile import compacting_during_the_list
from waiting import eventually

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.kubernetes_resources import LIST_PAGE, KubernetesNodes
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.errors import InvalidStudy
from functions.core.events import pool_check
from functions.core.node_hours import NodeLife, NodeSeen, node_hours, observe
from functions.core.pool_use import READY, RELEASED, PoolUse
from functions.core.records import KUBERNETES, StudyRecord
from functions.core.validate import parse_study
from functions.core.views import study_view
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.node_hours import look_at_nodes, looks_due
from functions.handlers.releasing import advance

POOL = "katuna-hours"
SELECTOR = {"cloud.google.com/gke-nodepool": POOL}


def test_a_node_counts_from_its_creation_to_halfway_between_the_looks_around_its_end():
    lives = observe((), [NodeSeen("a", 100.0), NodeSeen("b", 160.0)], now=200.0)
    lives = observe(lives, [NodeSeen("b", 160.0)], now=260.0)
    lives = observe(lives, [NodeSeen("b", 160.0), NodeSeen("c", 250.0)], now=320.0)
    assert lives == (NodeLife("a", 100.0, 200.0, 260.0), NodeLife("b", 160.0, 320.0), NodeLife("c", 250.0, 320.0))
    assert node_hours(lives, start=0.0, end=320.0) * 3600 == pytest.approx((230 - 100) + (320 - 160) + (320 - 250))
    assert node_hours(lives, start=150.0, end=300.0) * 3600 == pytest.approx((230 - 150) + (300 - 160) + (300 - 250))


def test_a_name_that_comes_back_is_another_node():
    lives = observe((), [NodeSeen("a", 100.0)], now=200.0)
    lives = observe(lives, [NodeSeen("a", 230.0)], now=260.0)
    assert lives == (NodeLife("a", 100.0, 200.0, 260.0), NodeLife("a", 230.0, 260.0))


def test_a_node_whose_vm_stopped_counts_again_only_from_the_look_that_found_it_back():
    """GKE stops a preempted spot VM and keeps its Node (not listed while its kubelet is silent),
    then starts it again under its name: the same Node, its creation time unchanged."""
    lives = observe((), [NodeSeen("a", 100.0)], now=200.0)
    lives = observe(lives, [], now=260.0)
    lives = observe(lives, [NodeSeen("a", 100.0)], now=900.0)
    lives = observe(lives, [NodeSeen("a", 100.0)], now=1000.0)
    assert lives == (NodeLife("a", 100.0, 200.0, 260.0), NodeLife("a", 100.0, 1000.0, since=900.0))
    assert node_hours(lives, start=0.0, end=1000.0) * 3600 == pytest.approx((230 - 100) + (1000 - 900))
    assert NodeLife.from_dict(lives[1].to_dict()) == lives[1]


def test_a_node_whose_vm_stopped_and_started_again_is_one_node_seen(tmp_path: Path):
    """GKE stops a preempted spot VM, its Node kept with ``Ready`` ``Unknown``, and starts it
    again: the study's pool ran one node, not two."""
    kube, store = KubeStub(), SqliteStore(tmp_path / "katuna.db")
    now = [time.time()]
    try:
        kube.add_node(node("spot", dict(SELECTOR)))
        api = api_client(kube.url)
        deps = Deps(store, KubernetesExecutor(Cluster(namespace="katuna"), api), lambda: now[0],
                    nodes=KubernetesNodes(lambda: api), node_look_seconds=0.0)
        store.save_pool_use(PoolUse("u1", "s", POOL, "gke", "spot", ("e2-standard-4",), 3, False, phase=READY,
                                    requested_at=now[0] - 3600))
        for ready in ("True", "Unknown", "True"):
            with kube.lock:
                kube.nodes["spot"]["status"]["conditions"] = [{"type": "Ready", "status": ready}]
            look_at_nodes(deps)
            now[0] += 60
        summary = store.pool_use("u1").to_dict(now[0])
        assert (summary["nodesSeen"], summary["nodesRunning"]) == (1, 1), store.pool_use("u1").nodes
    finally:
        store.close()
        kube.close()


def test_a_node_whose_kubelet_stopped_posting_its_status_is_not_listed():
    kube = KubeStub()
    try:
        for name, ready in (("running", "True"), ("booting", "False"), ("stopped", "Unknown")):
            kube.add_node({"apiVersion": "v1", "kind": "Node", "metadata": {
                "name": name, "creationTimestamp": "2026-11-30T12:00:00Z", "labels": dict(SELECTOR)},
                "spec": {}, "status": {"allocatable": {"cpu": "4"}, "conditions": [{"type": "Ready", "status": ready}]}})
        api = api_client(kube.url)
        assert sorted(n.name for n in KubernetesNodes(lambda: api).list(SELECTOR)) == ["booting", "running"]
    finally:
        kube.close()


def test_a_pool_of_more_nodes_than_a_page_is_listed_whole():
    """The API answers a node list ``limit`` at a time (katuna asks for :data:`LIST_PAGE`) and
    gives a ``continue`` token for the rest: every node of a pool larger than a page is counted,
    once; the static node outside the pool is not."""
    kube = KubeStub()
    try:
        names = [f"node-{number:04}" for number in range(LIST_PAGE + 1)]
        for name in names:
            kube.add_node({"apiVersion": "v1", "kind": "Node", "metadata": {
                "name": name, "creationTimestamp": "2026-11-30T12:00:00Z", "labels": dict(SELECTOR)},
                "spec": {}, "status": {"allocatable": {"cpu": "4"}, "conditions": [{"type": "Ready", "status": "True"}]}})
        api = api_client(kube.url)
        assert sorted(n.name for n in KubernetesNodes(lambda: api).list(SELECTOR)) == names
    finally:
        kube.close()


def node(name: str, labels: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": name, "creationTimestamp": "2026-11-30T12:00:00Z", "labels": labels},
        "spec": {}, "status": {"allocatable": {"cpu": "4"}, "conditions": [{"type": "Ready", "status": "True"}]}}


def test_a_node_list_whose_continue_token_expired_is_started_again_and_whole(monkeypatch: pytest.MonkeyPatch):
    """Nodes that come and go while a large pool is listed can push the list's version out of the
    API server's kept history: its next page is 410 Expired, and the list starts again from its
    first page, every node counted once, the new ones too."""
    kube = KubeStub(history=20)
    try:
        names = [f"node-{number:04}" for number in range(LIST_PAGE + 1)]
        for name in names:
            kube.add_node(node(name, dict(SELECTOR)))
        asked = compacting_during_the_list(kube, monkeypatch, lambda i: kube.add_node(
            node(f"late-{i:02}", dict(SELECTOR) if i == 0 else {"pool": "other"})), 25)
        api = api_client(kube.url)
        assert sorted(n.name for n in KubernetesNodes(lambda: api).list(SELECTOR)) == sorted([*names, "late-00"])
        assert len(asked) == 2, "the expired token, then the new list's own"
    finally:
        kube.close()


@pytest.mark.parametrize("behind", [600.0, -600.0])
def test_a_node_counts_its_own_age_whatever_the_api_servers_clock_says(tmp_path: Path, behind: float):
    """katuna's clock ``behind`` the API server's (ahead, when negative) by ten minutes, as a
    service run off the cluster may be: a node created two minutes before the look counts two
    minutes, not none, nor twelve; and a look a minute later, katuna's clock having moved on while
    the server's has not, finds the same node, a minute older."""
    kube, store = KubeStub(clock=SimulatedClock(time.time())), SqliteStore(tmp_path / "katuna.db")
    try:
        kube.add_node(node("old", dict(SELECTOR)) | {"metadata": {
            "name": "old", "creationTimestamp": rfc3339(kube.clock.time() - 120), "labels": dict(SELECTOR)}})
        api = api_client(kube.url)
        now = [kube.clock.time() - behind]
        deps = Deps(store, KubernetesExecutor(Cluster(namespace="katuna"), api), lambda: now[0],
                    nodes=KubernetesNodes(lambda: api), node_look_seconds=0.0)
        store.save_pool_use(PoolUse("u1", "s", POOL, "gke", "spot", ("e2-standard-4",), 3, False, phase=READY,
                                    requested_at=now[0] - 3600))
        look_at_nodes(deps)
        assert store.pool_use("u1").node_hours(now[0]) * 3600 == pytest.approx(120, abs=2)
        now[0] += 60
        look_at_nodes(deps)
        use = store.pool_use("u1")
        assert (len(use.nodes), use.node_hours(now[0]) * 3600) == (1, pytest.approx(180, abs=2)), use.nodes
    finally:
        store.close()
        kube.close()


def test_a_shared_pool_stops_counting_when_the_study_lets_it_go():
    lives = (NodeLife("a", 0.0, 7200.0),)
    use = PoolUse("u", "s", POOL, "gke", "spot", ("e2-standard-4",), 3, shared=True, phase=RELEASED,
                  requested_at=0.0, released_at=3600.0, nodes=lives, looked_at=7200.0)
    assert use.node_hours(now=7200.0) == pytest.approx(1.0) and not use.watching(now=7200.0)
    assert replace(use, shared=False).node_hours(now=7200.0) == pytest.approx(2.0)
    assert replace(use, shared=False).watching(now=7100.0), "an own pool is watched until its nodes are gone"
    assert not replace(use, shared=False).watching(now=7201.0), "but not for ever"


def test_a_shared_pool_katuna_emptied_counts_for_its_last_study_until_its_nodes_are_gone():
    """Once katuna resized the pool to 0 after the study, nobody else has its nodes: they are the
    study's until the resize removed them, and looked at until then."""
    use = PoolUse("u", "s", POOL, "gke", "spot", ("e2-standard-4",), 3, shared=True, phase=RELEASED,
                  requested_at=0.0, released_at=3600.0, nodes=(NodeLife("a", 0.0, 3600.0),), looked_at=3600.0,
                  empty_asked=True, emptied=True)
    assert use.watching(now=3630.0), "looked at again until its nodes are gone"
    gone = replace(use, nodes=observe(use.nodes, [], now=3720.0), looked_at=3720.0)
    assert gone.node_hours(now=3720.0) == pytest.approx(3660 / 3600) and not gone.watching(now=3720.0)
    assert not replace(use, emptied=False).watching(now=3630.0), "left to the autoscaler: others' nodes"


def test_a_pool_left_to_nobody_counts_the_nodes_it_had_before_the_study_only_while_the_study_held_it():
    """An adopted pool keeps the node it had before the study (its own minimum) after the study
    left it: that node counts while the study held the pool, the node made for the study until it
    is gone, and the looks stop then, though the pool's own node stays."""
    use = PoolUse("u", "s", POOL, "gke", "spot", ("e2-standard-4",), 3, False, phase=RELEASED, requested_at=1000.0,
                  released_at=4600.0, nodes=(NodeLife("minimum", 0.0, 4600.0), NodeLife("made", 1200.0, 4600.0)),
                  looked_at=4600.0, adopted={"autoscaling": {"enabled": True, "minNodeCount": 1}})
    assert use.watching(now=4630.0), "the node made for the study is still there"
    later = replace(use, nodes=observe(use.nodes, [NodeSeen("minimum", 0.0)], now=5200.0), looked_at=5200.0)
    assert not later.watching(now=5230.0), "the study's node is gone, and the pool's own is not the study's"
    assert later.node_hours(now=9000.0) == pytest.approx((3600 + (4900 - 1200)) / 3600), \
        "the pool's own node from the request to the release, the study's until halfway to the look that missed it"


def test_after_katuna_emptied_the_pool_a_node_made_since_the_release_is_not_the_ended_studys(tmp_path: Path):
    """Another study started on the shared pool while the resize drained the ended study's nodes:
    the node made for it is that study's, not counted for the ended one."""
    released = calendar.timegm((2026, 11, 30, 12, 30, 0))
    kube, store = KubeStub(clock=SimulatedClock(released + 120)), SqliteStore(tmp_path / "katuna.db")
    try:
        for name, stamp in (("before", "2026-11-30T12:00:00Z"), ("since", "2026-11-30T12:31:00Z")):
            kube.add_node({"apiVersion": "v1", "kind": "Node", "metadata": {
                "name": name, "creationTimestamp": stamp, "labels": dict(SELECTOR)},
                "spec": {}, "status": {"allocatable": {"cpu": "4"}, "conditions": [{"type": "Ready", "status": "True"}]}})
        api = api_client(kube.url)
        deps = Deps(store, KubernetesExecutor(Cluster(namespace="katuna"), api), lambda: released + 120,
                    nodes=KubernetesNodes(lambda: api))
        known = (NodeLife("before", released - 1800, released),)
        store.save_pool_use(PoolUse("u", "s", POOL, "gke", "spot", ("e2-standard-4",), 3, shared=True,
                                    phase=RELEASED, requested_at=released - 3600, released_at=released,
                                    nodes=known, looked_at=released, empty_asked=True, emptied=True))
        look_at_nodes(deps)
        assert [life.name for life in store.pool_use("u").nodes] == ["before"]
    finally:
        store.close()
        kube.close()


def _sharing(db: Path, uses: list[tuple[float, float | None]], lives: tuple[NodeLife, ...]) -> SqliteStore:
    """A store of one study per ``(requested, released)`` use of the pool POOL (its own, not
    shared), each use having looked at its nodes and found ``lives``."""
    store = SqliteStore(db)
    for number, (requested, released) in enumerate(uses):
        spec = parse_study(study_definition(f"s{number}", nodePool={"provider": "gke", "name": POOL}))
        record = store.add_study(StudyRecord(spec, {}, str(db.parent), f"uid-{number}", created_at=requested))
        store.save_pool_use(PoolUse(record.uid, record.name, POOL, "gke", "spot", ("e2-standard-4",), 3, False,
                                    phase=READY if released is None else RELEASED, requested_at=requested,
                                    released_at=released, nodes=lives, looked_at=max(life.last_seen for life in lives)))
    return store


def test_two_studies_on_one_pool_share_its_nodes_hours_between_them(tmp_path: Path):
    """While two studies use the same pool, each of its nodes' hours counts half to each: the
    studies' figures add up to what the pool's machines ran, not to more."""
    lives = (NodeLife("a", 0.0, 7200.0), NodeLife("b", 1800.0, 7200.0))
    store = _sharing(tmp_path / "katuna.db", [(0.0, None), (3600.0, None)], lives)
    try:
        hours = [study_view(store, store.get_study(name))["nodePool"]["nodeHours"] for name in ("s0", "s1")]
        assert hours == pytest.approx([1.5 + 0.5 * 2.0, 0.5 * 2.0], abs=1e-4)
        assert sum(hours) == pytest.approx(node_hours(lives, 0.0, 7200.0), abs=1e-4)
    finally:
        store.close()


def test_a_study_that_leaves_its_pool_to_another_stops_counting_and_looking_at_its_nodes(tmp_path: Path):
    """A pool of its own that another running study uses is not deleted when the study ends: its
    nodes then run for the other study, which counts them; the first stops counting them, and
    its ticks stop looking at them."""
    lives = (NodeLife("a", 0.0, 7200.0),)
    store = _sharing(tmp_path / "katuna.db", [(0.0, 3600.0), (1800.0, None)], lives)
    try:
        hours = [study_view(store, store.get_study(name))["nodePool"]["nodeHours"] for name in ("s0", "s1")]
        assert hours == pytest.approx([0.5 + 0.5 * 0.5, 0.5 * 0.5 + 1.0], abs=1e-4)
        api = api_client("http://127.0.0.1:9")
        deps = Deps(store, KubernetesExecutor(Cluster(namespace="katuna"), api), lambda: 7260.0,
                    nodes=KubernetesNodes(lambda: api))
        look_at_nodes(deps)
        assert [store.pool_use(uid).looked_at for uid in ("uid-0", "uid-1")] == [7200.0, 7260.0]
    finally:
        store.close()


def test_a_study_shorter_than_a_look_period_counts_the_nodes_its_pool_ran_until_its_end(tmp_path: Path):
    """The tick's only look came before the pool's node booted, and the study ended within the
    look period: the look katuna makes as it releases the pool finds the node, which counts from
    its creation to the release, shared with the other study using the pool. The pool is shared and adopted, and another running study
    uses it: released with no call to the cloud, its nodes left to that study from then on."""
    requested = calendar.timegm((2026, 11, 30, 12, 0, 0))
    ended = requested + 290
    kube, store = KubeStub(clock=SimulatedClock(ended + 10)), SqliteStore(tmp_path / "katuna.db")
    try:
        kube.add_node({"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": "booted", "creationTimestamp": rfc3339(requested + 60), "labels": dict(SELECTOR)},
            "spec": {}, "status": {"allocatable": {"cpu": "4"}, "conditions": [{"type": "Ready", "status": "True"}]}})
        api = api_client(kube.url)
        deps = Deps(store, KubernetesExecutor(Cluster(namespace="katuna"), api), lambda: ended + 10,
                    nodes=KubernetesNodes(lambda: api))
        pool = {"provider": "gke", "name": POOL, "shared": True}
        records = {}
        for name, status in (("short", "completed"), ("other", "running")):
            spec = parse_study(study_definition(name, nodePool=pool))
            records[name] = store.add_study(StudyRecord(spec, {}, str(tmp_path), f"uid-{name}", status=status,
                                                        created_at=requested,
                                                        completed_at=ended if status == "completed" else None))
            store.save_pool_use(PoolUse(f"uid-{name}", name, POOL, "gke", "spot", ("e2-standard-4",), 3, shared=True,
                                        phase=READY, requested_at=requested, ready_at=requested, looked_at=requested,
                                        adopted={"autoscaling": {"enabled": True}}))
        advance(store.pool_use("uid-short"), records["short"], deps)
        view = study_view(store, store.get_study("short"))["nodePool"]
        assert (view["phase"], view["releasedAt"], view["nodesSeen"], view["nodesRunning"]) == (
            "released", ended + 10, 1, 1), view
        assert view["nodeHours"] == pytest.approx(240 / 2 / 3600, abs=1e-4), \
            "from the node's creation to the release, half of it the other study's"
        advance(store.pool_use("uid-short"), records["short"], deps)
        assert store.pool_use("uid-short").looked_at == ended + 10, "released once, looked at once"
    finally:
        store.close()
        kube.close()


def test_a_price_per_node_hour_is_a_number_of_zero_or_more():
    pool = {"provider": "gke", "maxNodes": 3}
    assert parse_study(study_definition(nodePool={**pool, "pricePerNodeHour": 0.04})).node_pool.price_per_node_hour \
        == 0.04
    with pytest.raises(InvalidStudy, match="nodePool.pricePerNodeHour"):
        parse_study(study_definition(nodePool={**pool, "pricePerNodeHour": -1}))
    with pytest.raises(InvalidStudy, match="nodePool.pricePerNodeHour"):
        parse_study(study_definition(nodePool={**pool, "pricePerNodeHour": "cheap"}))
    with pytest.raises(InvalidStudy, match=r"nodePool.pricePerNodeHour: expected a price from 0 to 1,000,000,000,000 "
                                           r"per node-hour, got 1e\+308"):
        parse_study(study_definition(nodePool={**pool, "pricePerNodeHour": 1e308}))
    for no_price, shown in ((math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")):
        with pytest.raises(InvalidStudy, match=r"nodePool.pricePerNodeHour: expected a price from 0 to "
                                               rf"1,000,000,000,000 per node-hour, got {shown}$"):
            parse_study(study_definition(nodePool={**pool, "pricePerNodeHour": no_price}))


def test_a_currency_is_a_code_of_three_capital_letters_beside_a_price():
    pool = {"provider": "gke", "maxNodes": 3, "pricePerNodeHour": 0.04}
    assert parse_study(study_definition(nodePool={**pool, "currency": "EUR"})).node_pool.currency == "EUR"
    for bad in ("eur", "EURO", "€", 978):
        with pytest.raises(InvalidStudy, match="nodePool.currency"):
            parse_study(study_definition(nodePool={**pool, "currency": bad}))
    with pytest.raises(InvalidStudy, match="nodePool.currency: given without nodePool.pricePerNodeHour"):
        parse_study(study_definition(nodePool={"provider": "gke", "currency": "USD"}))


def _job(name: str) -> dict:
    """A trial Job on the pool: one node's worth of cpu for two seconds."""
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {
                "restartPolicy": "Never", "nodeSelector": SELECTOR,
                "containers": [{"name": "trial", "image": "python:3.12",
                                "command": [sys.executable, "-c", "import time; time.sleep(2)"],
                                "resources": {"requests": {"cpu": "3"}}}]}}}}


def _ready_seconds(kube: KubeStub) -> float:
    """The pool's node-seconds as the autoscaler recorded them (Ready nodes over time)."""
    timeline = kube.timeline
    return sum(counts.get(POOL, 0) * (later - at) for (at, counts), (later, _) in zip(timeline, timeline[1:]))


@pytest.mark.slow
def test_node_hours_are_the_lifetimes_of_the_nodes_the_autoscaler_made_and_removed(tmp_path: Path):
    kube = KubeStub(pools=lambda: [NodePool(POOL, 0, 3, dict(SELECTOR))], boot_seconds=0.2, idle_seconds=0.5)
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        api = api_client(kube.url)
        deps = Deps(store, KubernetesExecutor(Cluster(namespace="katuna"), api), time.time,
                    nodes=KubernetesNodes(lambda: api), node_look_seconds=0.0)
        spec = parse_study(study_definition("hours", nodePool={"provider": "gke", "name": POOL, "maxNodes": 3,
                                                               "pricePerNodeHour": 0.5}))
        record = store.add_study(StudyRecord(spec, {}, str(tmp_path), "uid-hours", created_at=time.time()))
        store.save_pool_use(PoolUse(record.uid, "hours", POOL, "gke", "spot", ("e2-standard-4",), 3, shared=False,
                                    phase=READY, requested_at=time.time(), ready_at=time.time()))
        for n in range(3):
            assert kube.create_job("katuna", _job(f"hours-{n}"))[0] == 201

        def made_and_removed() -> bool:
            """Look at the nodes all along, as the tick does: one whose Job ends first is
            removed while the others still run. The cluster is read before the look, so that
            the look that ends the wait sees every node gone, however late it comes."""
            removed = kube.peak_nodes(POOL) == 3 and not any(
                n["metadata"]["labels"].get("cloud.google.com/gke-nodepool") == POOL for n in kube.nodes.values())
            look_at_nodes(deps)
            return removed

        eventually(made_and_removed, "three nodes made and removed", timeout=60, interval=0.05)
        assert all(j["status"].get("succeeded") for j in kube.jobs.values())
        use = store.pool_use(record.uid)
        assert [life.gone_seen is not None for life in use.nodes] == [True] * 3, use.nodes
        measured = use.node_hours(time.time()) * 3600
        # creationTimestamp has whole seconds, as the API's: each node may read up to 1 s older
        assert _ready_seconds(kube) - 0.5 <= measured <= _ready_seconds(kube) + 3 * 1.0 + 0.5, measured
        view = study_view(store, store.get_study("hours"))["nodePool"]
        assert (view["nodesSeen"], view["nodesRunning"]) == (3, 0)
        assert view["nodeHours"] == pytest.approx(measured / 3600, abs=1e-4)
        assert view["cost"] == pytest.approx(view["nodeHours"] * 0.5, abs=1e-4)
    finally:
        store.close()
        kube.close()


def test_a_tick_looks_at_the_pool_once_per_look_period(tmp_path: Path):
    kube = KubeStub(pools=lambda: [NodePool(POOL, 1, 1, dict(SELECTOR))], boot_seconds=0.0)
    store = SqliteStore(tmp_path / "katuna.db")
    now = [time.time()]
    try:
        api = api_client(kube.url)
        deps = Deps(store, KubernetesExecutor(Cluster(namespace="katuna"), api), lambda: now[0],
                    nodes=KubernetesNodes(lambda: api))
        spec = parse_study(study_definition("tick", nodePool={"provider": "gke", "name": POOL, "maxNodes": 1}))
        record = store.add_study(StudyRecord(spec, {}, str(tmp_path), "uid-tick", created_at=now[0]))
        store.save_pool_use(PoolUse(record.uid, "tick", POOL, "gke", "spot", ("e2-standard-4",), 1, shared=False,
                                    phase=READY, requested_at=now[0] - 60, ready_at=now[0]))
        eventually(lambda: kube.nodes, "the pool's minimum node", timeout=30)
        assert study_view(store, record)["nodePool"]["nodeHours"] is None, "not measured before a look"
        dispatcher = Dispatcher(deps)
        dispatcher.deliver(pool_check())
        first = store.pool_use(record.uid)
        assert len(first.nodes) == 1 and first.looked_at == now[0]
        now[0] += 10
        dispatcher.deliver(pool_check())
        assert store.pool_use(record.uid).looked_at == first.looked_at, "looked again within the period"
        now[0] += 30
        dispatcher.deliver(pool_check())
        assert store.pool_use(record.uid).looked_at == now[0]
        assert study_view(store, record)["nodePool"]["cost"] is None, "no price given, no cost"
    finally:
        store.close()
        kube.close()


def test_a_database_from_before_node_hours_opens_with_pool_uses_unmeasured(tmp_path: Path):
    store = SqliteStore(tmp_path / "old.db")
    store.save_pool_use(PoolUse("u1", "s", POOL, "gke", "spot", ("e2-standard-4",), 3, False, phase=READY))
    for column in ("nodes", "looked_at", "nodes_problem"):
        store.db.execute(f"ALTER TABLE node_pools DROP COLUMN {column}")
    undo_trial_changes(store.tables())
    store.db.execute("PRAGMA user_version = 10")
    store.close()
    reopened = SqliteStore(tmp_path / "old.db")
    try:
        use = reopened.pool_use("u1")
        assert (use.nodes, use.looked_at, use.to_dict(0.0)["nodeHours"]) == ((), None, None)
        reopened.save_pool_use(replace(use, nodes=(NodeLife("a", 1.0, 2.0),), looked_at=2.0))
        assert reopened.pool_use("u1").nodes == (NodeLife("a", 1.0, 2.0),)
    finally:
        reopened.close()


def test_a_look_the_api_does_not_answer_says_why_and_waits_a_period(tmp_path: Path):
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        api = api_client("http://127.0.0.1:9")
        deps = Deps(store, KubernetesExecutor(Cluster(namespace="katuna"), api), lambda: 1000.0,
                    nodes=KubernetesNodes(lambda: api))
        store.save_pool_use(PoolUse("u1", "s", POOL, "gke", "spot", ("e2-standard-4",), 3, False, phase=READY))
        look_at_nodes(deps)
        use = store.pool_use("u1")
        summary = use.to_dict(1000.0)
        assert summary["nodeHours"] is None and "could not list the nodes labelled" in summary["nodesProblem"]
        assert use.looked_at == 1000.0
        assert not looks_due(deps), "asked again only a look period later"
    finally:
        store.close()


def _measured_study(db: Path, **price) -> None:
    """A study whose pool ran two nodes: one for an hour and a half, one still up after an hour;
    ``price``: its ``pricePerNodeHour`` (0.04) and ``currency``. Its trials run as Jobs, where a
    local service leaves it alone."""
    store = SqliteStore(db)
    try:
        spec = parse_study(study_definition("priced", nodePool={"provider": "gke", "name": POOL, "maxNodes": 3,
                                                                "pricePerNodeHour": 0.04, **price}))
        start = time.time() - 7200
        record = store.add_study(StudyRecord(spec, {}, str(db.parent), "uid-priced", created_at=start,
                                             runs_on=KUBERNETES))
        lives = (NodeLife("a", start, start + 5400 - 30, start + 5400 + 30), NodeLife("b", start + 3600, time.time()))
        store.save_pool_use(PoolUse(record.uid, "priced", POOL, "gke", "spot", ("e2-standard-4",), 3, False,
                                    phase=READY, requested_at=start, ready_at=start, nodes=lives,
                                    looked_at=time.time()))
    finally:
        store.close()


def test_katuna_show_the_api_and_the_dashboard_tell_the_measured_node_hours_and_their_cost(tmp_path: Path):
    from functions.adapters.web import create_app
    from functions.runtime import Runtime
    from functions.settings import Settings

    _measured_study(tmp_path / "katuna.db")
    shown = run_katuna("show", "priced", cwd=tmp_path, env={**os.environ, "COLUMNS": "200"})
    assert re.search(r"node-hours: 2\.5\d measured on 2 nodes \(1 up\), cost 0\.10 at 0\.04 a node-hour", shown.stdout), \
        shown.stdout + shown.stderr
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        client = create_app(runtime).test_client()
        pool = client.get("/studies/priced").get_json()["nodePool"]
        assert pool["nodeHours"] == pytest.approx(2.5, abs=0.01) and pool["cost"] == pytest.approx(0.1, abs=0.001)
        assert (pool["nodesSeen"], pool["nodesRunning"], pool["pricePerNodeHour"]) == (2, 1, 0.04)
        page = client.get("/ui/studies/priced").get_data(as_text=True)
        assert re.search(r'id="node-hours"[^>]*>2\.5\d* measured on 2 nodes of <code>katuna-hours</code> \(1 up\) · cost '
                         r"0\.1\d* at 0\.04 a node-hour", page), page[page.find("node-hours") - 200:][:600]
    finally:
        runtime.close()


@pytest.mark.browser
def test_the_study_page_follows_its_node_hours_as_its_pool_s_nodes_come_and_go(tmp_path: Path, browser: Browser):
    _measured_study(tmp_path / "katuna.db")
    service = Service(tmp_path, workers=1)
    try:
        page = browser.new_page()
        try:
            page.goto(service.base + "/ui/studies/priced")
            hours = page.locator("#node-hours")
            expect(hours).to_contain_text("measured on 2 nodes of katuna-hours (1 up)")
            page.evaluate("window.stillThisPage = true")
            store = SqliteStore(tmp_path / "katuna.db")
            try:
                use = store.pool_use("uid-priced")
                store.save_pool_use(replace(use, nodes=(*use.nodes, NodeLife("c", time.time() - 1800, time.time())),
                                            looked_at=time.time()))
            finally:
                store.close()
            expect(hours).to_contain_text("measured on 3 nodes of katuna-hours (2 up)", timeout=20_000)
            assert re.search(r"^3\.0\d measured", hours.inner_text()), hours.inner_text()
            assert page.evaluate("window.stillThisPage"), "followed in place, with no reload"
        finally:
            page.close()
    finally:
        service.close()


def test_a_large_cost_reads_in_full_with_its_currency_in_katuna_show_the_api_and_the_dashboard(tmp_path: Path):
    """A price in yen makes a cost of millions: written out with its thousands grouped and its
    currency, never as ``1.2e+07``."""
    from functions.adapters.web import create_app
    from functions.runtime import Runtime
    from functions.settings import Settings

    stored = time.time()
    _measured_study(tmp_path / "katuna.db", pricePerNodeHour=4_800_000, currency="JPY")
    shown = run_katuna("show", "priced", cwd=tmp_path, env={**os.environ, "COLUMNS": "200"})
    assert re.search(r"node-hours: 2\.5\d measured on 2 nodes \(1 up\), cost 12,0\d\d,\d\d\d\.\d\d JPY at 4,800,000 JPY "
                     r"a node-hour", shown.stdout), shown.stdout + shown.stderr
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        client = create_app(runtime).test_client()
        pool = client.get("/studies/priced").get_json()["nodePool"]
        assert (pool["pricePerNodeHour"], pool["currency"]) == (4_800_000, "JPY")
        page = client.get("/ui/studies/priced").get_data(as_text=True)
        found = re.search(r'id="node-hours"[^>]*>2\.5\d measured on 2 nodes of <code>katuna-hours</code> \(1 up\) · '
                          r"cost 12,0\d\d,\d\d\d\.\d\d JPY at 4,800,000 JPY a node-hour · at most (\d\.\d\d)<", page)
        assert found, page[page.find("node-hours") - 200:][:600]
        # at most its 3 nodes for every hour since the pool was ready: 2 hours as the study was
        # stored, and however long the command and the requests since took
        assert 6.0 <= float(found[1]) <= round(3 * (2 + (time.time() - stored) / 3600), 2), found[1]
    finally:
        runtime.close()


def test_a_small_cost_or_measure_shows_its_first_digits_never_zero(tmp_path: Path):
    """A node up for five minutes at a cent a node-hour costs less than a tenth of a cent: shown
    as 0.0008 (the API's cost, to four decimals) in ``katuna show`` and on the served dashboard,
    never as a cost of 0.00; and one node is one node."""
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        spec = parse_study(study_definition("priced", nodePool={"provider": "gke", "name": POOL, "maxNodes": 3,
                                                                "pricePerNodeHour": 0.01, "currency": "USD"}))
        start = time.time() - 600
        record = store.add_study(StudyRecord(spec, {}, str(tmp_path), "uid-priced", created_at=start,
                                             runs_on=KUBERNETES))
        store.save_pool_use(PoolUse(record.uid, "priced", POOL, "gke", "spot", ("e2-standard-4",), 3, False,
                                    phase=READY, requested_at=start, ready_at=start,
                                    nodes=(NodeLife("a", start, start + 300, start + 300),), looked_at=time.time()))
    finally:
        store.close()
    shown = run_katuna("show", "priced", cwd=tmp_path, env={**os.environ, "COLUMNS": "200"})
    assert ("node-hours: 0.08 measured on 1 node (0 up), cost 0.0008 USD at 0.01 USD a node-hour"
            in shown.stdout), shown.stdout + shown.stderr
    service = Service(tmp_path, workers=1)
    try:
        status, _, fragment = service.request("GET", "/ui/studies/priced/node-hours.fragment")
        assert status == 200 and "· cost 0.0008 USD at 0.01 USD a node-hour" in fragment.decode(), fragment
    finally:
        service.close()
