"""The GKE adapter: the real google-cloud-container client over REST against a loopback GKE API.
What every cloud's node pools do is checked by the contract in tests/test_conformance_nodepools.py."""

from __future__ import annotations

import time

import pytest
from gke_stub import GkeStub

from functions.core.errors import TemporaryError
from functions.core.nodepool import NodePool, NodePoolFailed, OperationStatus, PoolChange
from infra import gke

CLUSTER = gke.GkeCluster("proj", "europe-west4", "tuning")
POOLS_PATH = "/v1/projects/proj/locations/europe-west4/clusters/tuning/nodePools"
OPERATIONS = "projects/proj/locations/europe-west4/operations/"
ANY, BALANCED, NO_SCHEDULE = 2, 1, 1


@pytest.fixture
def pools(gke_api: GkeStub) -> gke.GkeNodePools:
    return gke.GkeNodePools(CLUSTER, gke.client(gke_api.url))


def settled(gke_api: GkeStub, pools: gke.GkeNodePools, change: PoolChange) -> OperationStatus:
    """The change's operation once the stand-in's clock has moved past it."""
    gke_api.advance(600)
    return pools.check(change.operation)


def spot_pool(**overrides) -> NodePool:
    fields = dict(name="katuna-digits", provider="gke", capacity="spot", machine_types=("n2-standard-8",),
                  max_nodes=5, disk_size_gb=50, labels=(("team", "vision"),))
    return NodePool(**(fields | overrides))


def test_a_spot_pool_is_created_tainted_labelled_and_autoscaling_from_zero(gke_api: GkeStub, pools: gke.GkeNodePools):
    change = pools.ensure(spot_pool(machine_types=("g2-standard-8",), accelerators=(("nvidia-l4", 1),)))
    assert change == PoolChange(OPERATIONS + "operation-1", created=True)
    [(method, path, body)] = gke_api.calls()
    assert (method, path) == ("POST", POOLS_PATH)
    assert body == {"nodePool": {
        "name": "katuna-digits",
        "config": {
            "machineType": "g2-standard-8", "diskSizeGb": 50, "spot": True,
            "oauthScopes": ["https://www.googleapis.com/auth/cloud-platform"],
            "labels": {"team": "vision", "katuna.dev/pool": "katuna-digits"},
            "taints": [{"key": "katuna.dev/trial", "value": "true", "effect": NO_SCHEDULE}],
            "accelerators": [{"acceleratorType": "nvidia-l4", "acceleratorCount": "1",
                              "gpuDriverInstallationConfig": {"gpuDriverVersion": 2}}],
        },
        "autoscaling": {"enabled": True, "totalMaxNodeCount": 5, "locationPolicy": ANY},
        "management": {"autoRepair": True, "autoUpgrade": True},
    }}, "0 initial nodes and a minimum of 0 are proto defaults, left out of the JSON"
    assert not {"minNodeCount", "maxNodeCount"} & set(body["nodePool"]["autoscaling"]), "pool-wide limits only"


def test_the_request_is_built_purely_and_sent_unchanged():
    request = gke.create_request(CLUSTER, spot_pool(capacity="preemptible", disk_size_gb=None))
    assert request == {"parent": "projects/proj/locations/europe-west4/clusters/tuning", "node_pool": {
        "name": "katuna-digits", "initial_node_count": 0,
        "config": {"machine_type": "n2-standard-8", "labels": {"team": "vision", "katuna.dev/pool": "katuna-digits"},
                   "taints": [{"key": "katuna.dev/trial", "value": "true", "effect": "NO_SCHEDULE"}],
                   "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"], "preemptible": True},
        "autoscaling": {"enabled": True, "total_min_node_count": 0, "total_max_node_count": 5,
                        "location_policy": "ANY"},
        "management": {"auto_repair": True, "auto_upgrade": True},
    }}


def test_on_demand_capacity_is_balanced_across_zones(gke_api: GkeStub, pools: gke.GkeNodePools):
    pools.ensure(spot_pool(capacity="on-demand"))
    config = gke_api.calls("POST")[0][2]["nodePool"]
    assert "spot" not in config["config"] and "preemptible" not in config["config"]
    assert config["autoscaling"]["locationPolicy"] == BALANCED


def test_ensuring_an_existing_pool_is_success_and_changes_nothing(gke_api: GkeStub, pools: gke.GkeNodePools):
    assert settled(gke_api, pools, pools.ensure(spot_pool(), owner="u1")) == OperationStatus(True)
    gke_api.requests.clear()
    assert pools.ensure(spot_pool(), owner="u1") == PoolChange(created=True, owned=True)
    assert [(m, p.rsplit("/", 1)[1]) for m, p, _ in gke_api.calls()] == [("POST", "nodePools"), ("GET", "katuna-digits")]


def test_a_study_needing_more_nodes_raises_the_maximum_and_keeps_the_minimum(gke_api: GkeStub, pools: gke.GkeNodePools):
    settled(gke_api, pools, pools.ensure(spot_pool()))
    gke_api.pools["katuna-digits"]["autoscaling"]["totalMinNodeCount"] = 1
    change = pools.ensure(spot_pool(max_nodes=12))
    assert change.operation == OPERATIONS + "operation-2" and not change.created
    assert gke_api.calls("POST", ":setAutoscaling")[0][2] == {"autoscaling": {
        "enabled": True, "totalMinNodeCount": 1, "totalMaxNodeCount": 12, "locationPolicy": ANY}}


def test_an_operation_is_pending_until_its_time_has_passed_on_the_stand_ins_clock(gke_api, pools):
    gke_api.seconds["CREATE_NODE_POOL"] = 120
    operation = pools.ensure(spot_pool()).operation
    assert [pools.check(operation).done for _ in range(5)] == [False] * 5, "polling does not make it finish"
    assert pools.describe("katuna-digits").state == "PROVISIONING"
    gke_api.advance(119)
    assert not pools.check(operation).done
    gke_api.advance(1)
    assert pools.check(operation) == OperationStatus(True)
    assert gke_api.requests[-1][1] == "/v1/" + OPERATIONS + "operation-1"
    assert pools.describe("katuna-digits").state == "RUNNING"


def test_a_sped_up_clock_finishes_operations_in_real_time(gke_api: GkeStub, pools: gke.GkeNodePools):
    gke_api.speed = 1000.0
    operation = pools.ensure(spot_pool()).operation
    deadline = time.monotonic() + 30
    while not pools.check(operation).done:
        assert time.monotonic() < deadline, "90 stand-in seconds never passed"
        time.sleep(0.05)
    assert pools.describe("katuna-digits").state == "RUNNING"


def test_a_pool_found_provisioning_is_waited_for_through_its_status(gke_api: GkeStub, pools: gke.GkeNodePools):
    pools.ensure(spot_pool(), owner="u1")
    change = pools.ensure(spot_pool(), owner="u1")
    assert change == PoolChange("pool:katuna-digits", created=True, owned=True), "its own earlier create"
    assert not pools.check(change.operation).done
    gke_api.advance(600)
    assert pools.check(change.operation) == OperationStatus(True)


def test_a_failed_operation_reports_the_clouds_message(gke_api: GkeStub, pools: gke.GkeNodePools):
    gke_api.fail_next = "Insufficient regional quota to satisfy request: resource \"CPUS\""
    status = settled(gke_api, pools, pools.ensure(spot_pool()))
    assert status == OperationStatus(True, "Insufficient regional quota to satisfy request: resource \"CPUS\"")


@pytest.mark.parametrize("code,message,error", [
    (400, "Invalid machine type n2-standard-999", NodePoolFailed),
    (403, "Required \"container.clusters.update\" permission", NodePoolFailed),
    (429, "Rate limit exceeded", TemporaryError),
    (503, "The service is currently unavailable", TemporaryError),
])
def test_refusals_are_permanent_and_throttling_or_outages_temporary(gke_api, pools, code, message, error):
    gke_api.refuse_next = (code, message)
    with pytest.raises(error, match=message):
        pools.ensure(spot_pool())
    assert "katuna-digits" not in gke_api.pools


def test_a_cluster_busy_with_another_operation_is_temporary(gke_api: GkeStub, pools: gke.GkeNodePools):
    gke_api.refuse_next = (400, "Cluster is running incompatible operation operation-7.", "FAILED_PRECONDITION")
    with pytest.raises(TemporaryError, match="incompatible operation"):
        pools.ensure(spot_pool())


def test_scale_back_lowers_the_minimum_to_zero_only_when_needed(gke_api: GkeStub, pools: gke.GkeNodePools):
    settled(gke_api, pools, pools.ensure(spot_pool()))
    assert pools.scale_back(spot_pool()) == PoolChange()
    gke_api.pools["katuna-digits"]["autoscaling"]["totalMinNodeCount"] = 2
    change = pools.scale_back(spot_pool())
    assert settled(gke_api, pools, change).done
    assert gke_api.calls("POST", ":setAutoscaling")[-1][2]["autoscaling"] == {
        "enabled": True, "totalMaxNodeCount": 5, "locationPolicy": ANY}
    assert pools.describe("katuna-digits").min_nodes == 0


def test_deleting_sends_a_delete_and_returns_its_operation(gke_api, pools):
    settled(gke_api, pools, pools.ensure(spot_pool()))
    change = pools.delete("katuna-digits")
    assert change.operation == OPERATIONS + "operation-2"
    assert gke_api.calls("DELETE")[-1][1] == POOLS_PATH + "/katuna-digits"


def test_an_unreachable_api_is_temporary(gke_api: GkeStub):
    gke_api.close()
    with pytest.raises(TemporaryError, match="unreachable"):
        gke.GkeNodePools(CLUSTER, gke.client(gke_api.url)).ensure(spot_pool())


def test_an_existing_pool_in_error_is_a_refusal_and_one_being_deleted_a_wait(gke_api: GkeStub, pools: gke.GkeNodePools):
    settled(gke_api, pools, pools.ensure(spot_pool()))
    gke_api.pools["katuna-digits"].update(status="ERROR",
                                       statusMessage="Instances failed to start: ZONE_RESOURCE_POOL_EXHAUSTED")
    with pytest.raises(NodePoolFailed, match="is in error: Instances failed to start"):
        pools.ensure(spot_pool())
    gke_api.pools["katuna-digits"]["status"] = "STOPPING"
    with pytest.raises(TemporaryError, match="being deleted"):
        pools.ensure(spot_pool())
