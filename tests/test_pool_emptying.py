"""A shared pool katuna made is resized to 0 nodes once its last study is done with it: the
provision function through the real dispatcher, a SQLite store and the GKE adapter (the real
``google-cloud-container`` client) against the loopback GKE API; every event delivered twice."""

from __future__ import annotations

import test_provision
from gke_stub import GkeStub
from test_provision import checked_after, created, deliver_twice, end, made_by_hand, pool_study, provisioned, submit

from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import pool_check
from functions.core.views import study_view
from functions.dispatch import Dispatcher
from functions.handlers.provision import waiting_on_pools

POOL = "trials"

world = test_provision.world
"""The provision tests' dispatcher, store and clock over the GKE adapter and the loopback GKE API."""


def start(dispatcher: Dispatcher, store: SqliteStore, gke_api: GkeStub, name: str, uid: str) -> None:
    """Submit a study on the shared pool and let its pool be ready."""
    submit(store, pool_study(name, name=POOL, shared=True), uid)
    deliver_twice(dispatcher, created(name, uid))
    checked_after(dispatcher, gke_api)
    assert store.pool_use(uid).phase == "ready"


def resizes(gke_api: GkeStub) -> list[dict | None]:
    return [body for _, _, body in gke_api.calls("POST", ":setSize")]


def test_a_shared_pool_katuna_made_is_emptied_at_once_when_its_last_study_ends(world, gke_api: GkeStub):
    dispatcher, store, clock = world
    start(dispatcher, store, gke_api, "only", "u1")
    gke_api.set_node_count(POOL, 3)
    clock.now += 600
    end(dispatcher, store, "only")
    assert len(resizes(gke_api)) == 1 and resizes(gke_api)[0].get("nodeCount", 0) == 0, "asked once, for 0 nodes"
    assert gke_api.pools[POOL]["status"] == "RECONCILING" and gke_api.node_count(POOL) == 3, "GKE drains them"
    use = store.pool_use("u1")
    assert (use.phase, use.empty_asked, use.emptied, use.deleted) == ("released", True, True, False)
    assert use.operation and waiting_on_pools(store, clock.now)
    deliver_twice(dispatcher, pool_check())
    assert store.pool_use("u1").operation == use.operation, "still resizing"
    checked_after(dispatcher, gke_api)
    use = store.pool_use("u1")
    assert use.operation is None and use.message == "" and not waiting_on_pools(store, clock.now)
    assert gke_api.node_count(POOL) == 0 and gke_api.pools[POOL]["status"] == "RUNNING"
    end(dispatcher, store, "only")
    deliver_twice(dispatcher, pool_check())
    assert len(resizes(gke_api)) == 1, "a redelivered study.completed and the next ticks ask nothing more"
    assert POOL in gke_api.pools and gke_api.calls("DELETE") == [], "the shared pool stays, for the next study"


def test_a_shared_pool_is_emptied_only_once_no_running_study_uses_it(world, gke_api: GkeStub):
    dispatcher, store, clock = world
    start(dispatcher, store, gke_api, "first", "u1")
    start(dispatcher, store, gke_api, "second", "u2")
    end(dispatcher, store, "first")
    deliver_twice(dispatcher, pool_check())
    assert resizes(gke_api) == [] and not store.pool_use("u1").empty_asked, "the second study runs on it"
    assert not waiting_on_pools(store, clock.now)
    clock.now += 60
    end(dispatcher, store, "second")
    deliver_twice(dispatcher, pool_check())
    assert len(resizes(gke_api)) == 1 and store.pool_use("u2").emptied and not store.pool_use("u1").empty_asked


def test_a_study_starting_on_the_pool_between_its_release_and_the_resize_keeps_its_nodes(world, gke_api):
    dispatcher, store, clock = world
    start(dispatcher, store, gke_api, "first", "u1")
    gke_api.pools[POOL]["autoscaling"]["totalMinNodeCount"] = 2
    end(dispatcher, store, "first")
    assert store.pool_use("u1").phase == "releasing", "its minimum is lowered first: one operation at a time"
    submit(store, pool_study("late", name=POOL, shared=True), "u2")
    checked_after(dispatcher, gke_api)
    assert store.pool_use("u1").phase == "released" and store.pool_use("u2") is not None
    assert resizes(gke_api) == [], "the study submitted meanwhile uses the pool"
    deliver_twice(dispatcher, created("late", "u2"))
    checked_after(dispatcher, gke_api)
    assert resizes(gke_api) == [] and store.pool_use("u2").phase == "ready"
    clock.now += 60
    end(dispatcher, store, "late")
    assert len(resizes(gke_api)) == 1 and store.pool_use("u2").emptied


def test_a_pool_katuna_did_not_make_is_never_resized(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    made_by_hand(gke_api, POOL)
    submit(store, pool_study("adopting", name=POOL, shared=True), "u1")
    provisioned(dispatcher, created("adopting", "u1"))
    checked_after(dispatcher, gke_api)
    end(dispatcher, store, "adopting")
    checked_after(dispatcher, gke_api)
    use = store.pool_use("u1")
    assert use.phase == "released" and use.adopted is not None and not use.empty_asked
    assert resizes(gke_api) == []


def test_a_resize_meeting_a_busy_cluster_is_asked_again_on_the_next_tick(world, gke_api: GkeStub):
    dispatcher, store, clock = world
    start(dispatcher, store, gke_api, "held", "u1")
    gke_api.update_master(300)
    end(dispatcher, store, "held")
    deliver_twice(dispatcher, pool_check())
    use = store.pool_use("u1")
    assert (use.phase, use.empty_asked, use.operation) == ("released", False, None)
    assert waiting_on_pools(store, clock.now), "ticks keep coming for it"
    assert [body.get("nodeCount", 0) for body in resizes(gke_api)] == [0, 0], \
        "refused for now on study.completed and on the tick"
    checked_after(dispatcher, gke_api, 300)
    use = store.pool_use("u1")
    assert use.empty_asked and use.emptied and use.operation and len(gke_api.operations) == 3
    checked_after(dispatcher, gke_api)
    assert store.pool_use("u1").operation is None and gke_api.node_count(POOL) == 0


def test_a_resize_refused_for_good_fails_nothing_and_leaves_the_nodes_to_the_autoscaler(world, gke_api, caplog):
    dispatcher, store, clock = world
    start(dispatcher, store, gke_api, "no-right", "u1")
    gke_api.refuse_next, gke_api.refuse_method = (403, "Required \"container.clusters.update\" permission(s)"), "POST"
    end(dispatcher, store, "no-right")
    use = store.pool_use("u1")
    assert (use.phase, use.empty_asked, use.emptied, use.operation) == ("released", True, False, None)
    assert use.message == ("emptying the pool: GKE refused the request: Required \"container.clusters.update\" "
                           "permission(s); node pool trials's nodes are left to the cluster autoscaler, which "
                           "removes each once it is unneeded")
    assert "was not emptied after study no-right" in caplog.text
    assert store.get_study("no-right").status == "completed"
    assert study_view(store, store.get_study("no-right"))["nodePool"]["message"] == use.message
    deliver_twice(dispatcher, pool_check())
    assert len(resizes(gke_api)) == 1 and not waiting_on_pools(store, clock.now), "not asked again"


def test_a_resize_that_fails_leaves_the_nodes_to_the_autoscaler_and_says_so(world, gke_api: GkeStub):
    dispatcher, store, _ = world
    start(dispatcher, store, gke_api, "failing", "u1")
    gke_api.fail_next = "Instance group manager failed to delete instances"
    end(dispatcher, store, "failing")
    checked_after(dispatcher, gke_api)
    use = store.pool_use("u1")
    assert use.operation is None and not use.emptied and use.phase == "released"
    assert use.message.startswith("emptying the pool: Instance group manager failed to delete instances; ")
    assert store.get_study("failing").status == "completed"
