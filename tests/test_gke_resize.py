"""A GKE pool resized to 0 nodes (``setSize``): the adapter's ``empty`` through the real
google-cloud-container client, over REST and gRPC, against the loopback GKE API, which refuses
what GKE refuses; and the simulated cluster draining and removing the nodes the resize takes away."""

from __future__ import annotations

import pytest
from gke_stub import GkeStub
from google.api_core import exceptions as google_errors
from kube_standin.clock import SimulatedClock
from kube_standin.clouds import gke_pools
from test_kube_standin_simulated import SPOT, finished, job, pods_of, simulated
from test_nodepools_gke import CLUSTER, OPERATIONS, settled, spot_pool

from functions.core.errors import TemporaryError
from infra import gke, gke_errors

NAME = "katuna-digits"
POOL_PATH = f"{CLUSTER.pool_path(NAME)}"


def conditions(pod: dict) -> dict[str, str]:
    """The reason of each of the pod's conditions, by type."""
    return {c["type"]: c.get("reason", "") for c in pod["status"].get("conditions", [])}


def set_size(pools: gke.GkeNodePools, nodes: int) -> google_errors.GoogleAPICallError:
    """GKE's refusal of a resize of pool NAME to ``nodes``, asked straight through the client."""
    with pytest.raises(google_errors.GoogleAPICallError) as refused:
        pools.api.set_node_pool_size(request={"name": POOL_PATH, "node_count": nodes})
    return refused.value


def test_emptying_resizes_the_pool_to_zero_in_an_operation_the_pool_reconciling_meanwhile(gke_api: GkeStub, either):
    settled(gke_api, either, either.ensure(spot_pool()))
    gke_api.set_node_count(NAME, 3)
    change = either.empty(NAME)
    assert change.operation == OPERATIONS + "operation-2"
    assert gke_api.calls("POST", ":setSize")[-1][1] == f"/v1/{POOL_PATH}:setSize"
    assert either.describe(NAME).state == "RECONCILING" and gke_api.node_count(NAME) == 3
    with pytest.raises(TemporaryError, match="currently setting the size of a node pool"):
        either.delete(NAME)
    with pytest.raises(TemporaryError):
        either.empty(NAME)
    assert settled(gke_api, either, change).done
    status = either.describe(NAME)
    assert (status.state, status.min_nodes, status.max_nodes, gke_api.node_count(NAME)) == ("RUNNING", 0, 5, 0)
    assert gke_api.operations["operation-2"]["operationType"] == "SET_NODE_POOL_SIZE"


def test_emptying_an_absent_pool_is_no_change(gke_api: GkeStub, either):
    assert either.empty(NAME).operation is None
    assert gke_api.operations == {}


def test_gke_refuses_a_negative_size_one_past_its_nodes_per_zone_and_a_pool_not_running(gke_api, either):
    settled(gke_api, either, either.ensure(spot_pool()))
    for nodes in (-1, 1001):
        refused = set_size(either, nodes)
        assert gke_errors.status_name(refused) == "INVALID_ARGUMENT" and "node_count" in gke_errors.message(refused)
    gke_api.pools[NAME]["status"] = "ERROR"
    refused = set_size(either, 0)
    assert gke_errors.status_name(refused) == "FAILED_PRECONDITION" and "not running" in gke_errors.message(refused)
    assert gke_api.operations.keys() == {"operation-1"}, "no resize started"


def test_a_resize_drains_the_nodes_it_removes_and_deletes_them_once_done_and_the_pool_grows_again():
    """GKE drains the nodes a resize takes away (their pods evicted, gracefully terminated) and
    deletes their VMs within its operation (60 s here), billed until then; the autoscaler leaves
    the pool alone meanwhile, and grows it again for the pods that wait once it is done."""
    clock = SimulatedClock()
    gke_api = GkeStub(speed=1.0, clock=clock)
    gke_api.add_cluster("p", "l", "c")
    kube = simulated(clock, gke_pools(gke_api), seconds=3000)
    try:
        gke_api.route("POST", "/v1/projects/p/locations/l/clusters/c/nodePools", {"nodePool": {
            "name": "spot", "config": {"machineType": "e2-standard-4", "spot": True},
            "autoscaling": {"enabled": True, "totalMinNodeCount": 0, "totalMaxNodeCount": 2}}})
        assert kube.create_job("katuna", job("trial-0", SPOT["gke"]))[0] == 201
        kube.run_until(lambda: pods_of(kube, "trial-0")[0]["status"].get("phase") == "Running")
        [name] = kube.nodes
        [running] = pods_of(kube, "trial-0")
        code, _ = gke_api.route("POST", "/v1/projects/p/locations/l/clusters/c/nodePools/spot:setSize", {})
        resized = clock.now
        assert code == 200 and gke_api.pools["spot"]["status"] == "RECONCILING"
        kube.run_until(lambda: kube.nodes[name]["spec"].get("unschedulable"))
        assert conditions(running)["DisruptionTarget"] == "EvictionByEvictionAPI", "evicted"
        [waiting] = pods_of(kube, "trial-0")
        assert waiting is not running and not waiting["spec"].get("nodeName"), "its Job's next pod waits"
        kube.run_until(lambda: name not in kube.nodes)
        removed = kube.autoscaler.machines[name].removed
        assert resized + 60 <= removed <= resized + 70, "billed until its VM is deleted, at the resize's end"
        kube.run_until(lambda: len(kube.autoscaler.machines) == 2)
        assert all(m.created >= removed for n, m in kube.autoscaler.machines.items() if n != name), \
            "no node made for the pool while it was resized; one once it was done"
        assert not finished(kube, "trial-0"), "the trial's next pod waits for the pool's next node"
    finally:
        kube.close()
        gke_api.close()
