"""The loopback GKE API refuses what GKE refuses, through the real google-cloud-container client:
the requests below are each one field away from one katuna sends, and GKE answers them 400."""

from __future__ import annotations

import pytest
from gke_stub import GkeStub, PoolBounds
from gke_stub_grpc import GrpcGke
from google.api_core import exceptions as google_errors

from functions.core.errors import TemporaryError
from functions.core.nodepool import NodePool, NodePoolFailed
from functions.pools import node_pools
from functions.settings import Settings
from infra import gke, gke_requests

CLUSTER = gke_requests.GkeCluster("proj-7", "europe-west4", "tuning")


@pytest.fixture
def api(gke_api: GkeStub):
    return gke.client(gke_api.url)


def request(**changes) -> dict:
    """A create request as katuna sends it, with ``changes`` made to its node pool."""
    pool = NodePool("trials", "gke", "spot", ("n2-standard-4",), max_nodes=4)
    body = gke_requests.create_request(CLUSTER, pool, owner="0f3c2a9e41b7")
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = body["node_pool"]
        for key in parents:
            target = target[key]
        target[leaf] = value
    return body


def refused(api, body: dict) -> str:
    with pytest.raises(google_errors.BadRequest) as error:
        api.create_node_pool(request=body)
    return error.value.message


def test_katunas_own_request_is_accepted(api, gke_api: GkeStub):
    api.create_node_pool(request=request())
    assert gke_api.pools["trials"]["config"]["resourceLabels"] == {"katuna-study-uid": "0f3c2a9e41b7"}


@pytest.mark.parametrize("name", ["Trials", "1trials", "trials-", "trials_spot", "t" * 41])
def test_a_pool_name_gke_does_not_accept_is_refused(api, gke_api: GkeStub, name: str):
    assert "Must be a match of regex" in refused(api, request(name=name))
    assert gke_api.pools == {}


@pytest.mark.parametrize("changes,words", [
    ({"autoscaling__total_min_node_count": 5}, "total_min_node_count"),
    ({"autoscaling__min_node_count": 1, "autoscaling__max_node_count": 3}, "cannot be used together"),
    ({"autoscaling__total_max_node_count": 0}, "cannot be both set to zero"),
    ({"initial_node_count": 9}, "initial_node_count"),
    ({"config__machine_type": "n9-huge"}, 'Invalid machine type "n9-huge" in zone "europe-west4-a": GCE_NOT_FOUND'),
    ({"config__preemptible": True}, "cannot both be enabled"),
    ({"config__resource_labels": {"katuna-study-uid": "Study/One"}}, "resource_labels"),
    ({"config__resource_labels": {f"label-{n:02}": "v" for n in range(65)}}, "at most 64 labels"),
    ({"config__labels": {"node-role.kubernetes.io/trial": "true"}}, "Applying kubernetes label is not allowed"),
    ({"config__labels": {"node.k8s.io/x": "y"}}, "Applying kubernetes label is not allowed: node.k8s.io/x"),
    ({"config__labels": {"cloud.google.com/compute-class": "x"}}, "managed by GKE or Kubernetes"),
    ({"config__labels": {"bad key!": "x"}}, "Kubernetes' syntax"),
    ({"config__labels": {"opt": "sgd momentum"}}, "Kubernetes' syntax"),
    ({"config__labels": {"team": "v" * 64}}, "Kubernetes' syntax"),
    ({"config__labels": {f"label-{n:02}": "v" * 63 for n in range(15)}}, "1024 characters in all"),
    ({"config__disk_size_gb": 5}, "smallest allowed disk size is 10GB"),
    ({"config__disk_size_gb": 65537}, "largest allowed disk size is 65536GB"),
    ({"config__taints": [{"key": "katuna.dev/trial", "value": "true", "effect": "EFFECT_UNSPECIFIED"}]},
     "A taint needs a key and an effect"),
    ({"autoscaling__total_max_node_count": 3001}, "at most 1000 nodes per zone (3 zone(s) here)"),
    ({"autoscaling__total_min_node_count": 0, "autoscaling__total_max_node_count": 0,
      "autoscaling__max_node_count": 1001}, "at most 1000 nodes per zone"),
])
def test_inconsistent_pools_are_refused(api, gke_api: GkeStub, changes: dict, words: str):
    assert words in refused(api, request(**changes))
    assert gke_api.pools == {}


def gpus(machine: str | None, accelerator: str, count: int = 1) -> dict:
    """A create request for a pool of ``machine`` (GKE's default when None) carrying ``count`` of ``accelerator``."""
    body = request(config__accelerators=[{"accelerator_type": accelerator, "accelerator_count": count}])
    if machine is None:
        del body["node_pool"]["config"]["machine_type"]
    else:
        body["node_pool"]["config"]["machine_type"] = machine
    return body


@pytest.mark.parametrize("machine,accelerator,count", [
    ("n1-standard-8", "nvidia-tesla-t4", 4), ("n1-highmem-4", "nvidia-tesla-v100", 1), ("g2-standard-8", "nvidia-l4", 1),
    ("g2-standard-24", "nvidia-l4", 2), ("a2-highgpu-1g", "nvidia-tesla-a100", 1),
    ("a2-ultragpu-1g", "nvidia-a100-80gb", 1), ("a3-highgpu-8g", "nvidia-h100-80gb", 8),
    ("a3-edgegpu-8g", "nvidia-h100-80gb", 8), ("a4-highgpu-8g", "nvidia-b200", 8), ("custom-8-30720", "nvidia-tesla-t4", 2),
])
def test_gpus_on_machines_that_carry_them_are_accepted(api, gke_api: GkeStub, machine: str, accelerator: str,
                                                      count: int):
    api.create_node_pool(request=gpus(machine, accelerator, count))
    assert gke_api.pools["trials"]["config"]["accelerators"][0]["acceleratorType"] == accelerator


@pytest.mark.parametrize("machine,accelerator,words", [
    ("n2-standard-8", "nvidia-l4", "not supported with machine type n2-standard-8"),
    ("e2-standard-4", "nvidia-tesla-t4", "not supported with machine type e2-standard-4"),
    ("n1-standard-8", "nvidia-l4", "not supported with machine type n1-standard-8"),
    ("g2-standard-8", "nvidia-tesla-t4", "not supported with machine type g2-standard-8"),
    ("a2-highgpu-1g", "nvidia-h100-80gb", "not supported with machine type a2-highgpu-1g"),
    (None, "nvidia-tesla-t4", "Cannot use default machine type (e2-medium) with GPUs"),
])
def test_gpus_on_machines_that_cannot_carry_them_are_refused(api, gke_api: GkeStub, machine: str | None,
                                                             accelerator: str, words: str):
    assert words in refused(api, gpus(machine, accelerator))
    assert gke_api.pools == {}


@pytest.mark.parametrize("machine,accelerator,count", [
    ("g2-standard-8", "nvidia-l4", 8), ("a3-highgpu-8g", "nvidia-h100-80gb", 1), ("n1-standard-4", "nvidia-tesla-t4", 3),
])
def test_more_or_fewer_gpus_than_a_machine_takes_are_refused(api, gke_api: GkeStub, machine: str, accelerator: str,
                                                             count: int):
    assert f"Accelerator count {count} of {accelerator} is not supported with machine type {machine}" in \
        refused(api, gpus(machine, accelerator, count))
    assert gke_api.pools == {}


@pytest.mark.parametrize("machine,accelerator,count,most", [
    ("n1-standard-32", "nvidia-tesla-v100", 1, 12), ("n1-highmem-64", "nvidia-tesla-t4", 2, 48),
    ("custom-24-92160", "nvidia-tesla-p100", 1, 16), ("n1-standard-96", "nvidia-tesla-p4", 2, 48),
])
def test_more_vcpus_than_an_n1_machine_takes_with_its_gpus_are_refused(api, gke_api: GkeStub, machine: str,
                                                                      accelerator: str, count: int, most: int):
    """In Compute Engine's words (as google/deepvariant#70 quotes them); fewer vCPUs, or more GPUs, are taken."""
    assert refused(api, gpus(machine, accelerator, count)).endswith(
        f"Invalid value for field 'resource.guestAccelerators[0].acceleratorCount': '{count}'. At most {most} vCPUs "
        f"can be used along with {count} accelerator cards in an instance.")
    assert gke_api.pools == {}
    api.create_node_pool(request=gpus("n1-standard-8", accelerator, 4))
    assert list(gke_api.pools) == ["trials"]


def test_autoscaling_limits_out_of_order_are_refused(api, gke_api: GkeStub):
    api.create_node_pool(request=request())
    gke_api.advance(600)
    with pytest.raises(google_errors.BadRequest, match="total_min_node_count"):
        api.set_node_pool_autoscaling(request={"name": CLUSTER.pool_path("trials"), "autoscaling": {
            "enabled": True, "total_min_node_count": 6, "total_max_node_count": 2}})


def test_a_second_change_while_an_operation_runs_is_a_failed_precondition_katuna_retries(api, gke_api: GkeStub):
    api.create_node_pool(request=request())
    with pytest.raises(google_errors.BadRequest) as busy:
        api.create_node_pool(request=request(name="other"))
    assert busy.value.message.endswith(": Operation operation-1 is currently creating a node pool for cluster tuning. "
                                       "Please wait and try again once it is done.")
    pools = gke.GkeNodePools(CLUSTER, api)
    with pytest.raises(TemporaryError, match="currently creating a node pool"):
        pools.delete("trials")
    gke_api.advance(90)
    assert pools.delete("trials").operation, "once the create is done, the delete is taken"


def test_the_pool_bounds_are_what_a_cluster_autoscaler_needs(api, gke_api: GkeStub):
    api.create_node_pool(request=request(config__labels={"team": "vision"}))
    assert gke_api.pool_bounds("trials") is None, "a provisioning pool is not scaled"
    gke_api.advance(90)
    assert gke_api.pool_bounds("trials") == PoolBounds(
        0, 4, {"team": "vision", "cloud.google.com/gke-nodepool": "trials", "cloud.google.com/gke-spot": "true"},
        [{"key": "katuna.dev/trial", "value": "true", "effect": "NoSchedule"}])
    gke_api.set_node_count("trials", 3)
    assert gke_api.node_count("trials") == 3
    with pytest.raises(ValueError, match="cannot have 5 nodes"):
        gke_api.set_node_count("trials", 5)


def test_a_control_plane_upgrade_holds_the_cluster_for_its_time_in_the_wording_named(api, gke_api: GkeStub):
    gke_api.update_master(120, busy="master")
    assert refused(api, request()).endswith(": Master is being updated.")
    assert "trials" not in gke_api.pools
    gke_api.advance(120)
    assert api.create_node_pool(request=request()).name == "operation-2"


def test_pools_are_in_their_clusters_zones_and_per_zone_limits_count_in_each(api, gke_api: GkeStub):
    api.create_node_pool(request=request(autoscaling={"enabled": True, "min_node_count": 1, "max_node_count": 2}))
    gke_api.advance(90)
    assert gke_api.pools["trials"]["locations"] == ["europe-west4-a", "europe-west4-b", "europe-west4-c"]
    assert gke_api.pool_bounds("trials")[:2] == (3, 6), "a regional cluster's three zones"
    zonal_pools = gke_api.add_cluster("proj-7", "europe-west4-b", "tuning")
    zonal = request(name="zonal")
    zonal["parent"] = gke_requests.GkeCluster("proj-7", "europe-west4-b", "tuning").parent
    api.create_node_pool(request=zonal)
    assert zonal_pools["zonal"]["locations"] == ["europe-west4-b"]


def test_over_grpc_the_same_requests_arrive_and_refusals_keep_their_status_and_reason(gke_api: GkeStub):
    rest = GkeStub()
    rest.add_cluster("proj-7", "europe-west4", "tuning")
    gke.client(rest.url).create_node_pool(request=request())
    rest.close()
    face = GrpcGke(gke_api)
    try:
        grpc_api = face.client()
        grpc_api.create_node_pool(request=request())
        assert gke_api.calls() == rest.calls(), "the body REST would send"
        gke_api.refuse_next = (403, "Too many operations", "PERMISSION_DENIED", "CONCURRENT_OPERATIONS_QUOTA_EXCEEDED")
        with pytest.raises(google_errors.PermissionDenied) as quota:
            grpc_api.get_node_pool(request={"name": CLUSTER.pool_path("trials")})
        assert (quota.value.message, quota.value.reason) == ("Too many operations", "CONCURRENT_OPERATIONS_QUOTA_EXCEEDED")
        with pytest.raises(google_errors.FailedPrecondition, match="currently creating a node pool"):
            grpc_api.delete_node_pool(request={"name": CLUSTER.pool_path("trials")})
    finally:
        face.close()


def test_katunas_pools_run_the_gke_metadata_server_as_the_node_account_it_names(api, gke_api: GkeStub):
    """Trial pods on katuna's nodes never see the node's own service account token."""
    api.create_node_pool(request=request())
    config = gke_api.pools["trials"]["config"]
    assert config["workloadMetadataConfig"] == {"mode": 2}, "GKE_METADATA, as the REST client sends the enum"
    assert "serviceAccount" not in config, "the cluster's default node account unless one is set"
    named = gke_requests.GkeCluster("proj-7", "europe-west4", "tuning", "katuna-nodes@proj-7.iam.gserviceaccount.com")
    pool = NodePool("named", "gke", "spot", ("n2-standard-4",), max_nodes=4)
    gke_api.advance(1000)
    api.create_node_pool(request=gke_requests.create_request(named, pool))
    assert gke_api.pools["named"]["config"]["serviceAccount"] == "katuna-nodes@proj-7.iam.gserviceaccount.com"


@pytest.mark.parametrize("changes,words", [
    ({"config__service_account": "katuna-nodes"}, "node_pool.config.service_account"),
    ({"config__service_account": "katuna@proj-7.example.com"}, "node_pool.config.service_account"),
    ({"config__workload_metadata_config": {"mode": 7}}, "workload_metadata_config.mode"),
])
def test_a_node_identity_gke_does_not_take_is_refused(api, gke_api: GkeStub, changes: dict, words: str):
    assert words in refused(api, request(**changes))
    assert gke_api.pools == {}


def test_a_node_account_the_project_lacks_is_refused_naming_the_setting_that_names_it(gke_api: GkeStub):
    missing = "ghost@proj-7.iam.gserviceaccount.com"
    settings = Settings.from_env({"KATUNA_GKE_PROJECT": "proj-7", "KATUNA_GKE_LOCATION": "europe-west4",
                                  "KATUNA_GKE_CLUSTER": "tuning", "KATUNA_GKE_ENDPOINT": gke_api.url,
                                  "KATUNA_GKE_NODE_SERVICE_ACCOUNT": missing})
    adapter = node_pools(settings)
    assert adapter is not None
    with pytest.raises(NodePoolFailed) as refusal:
        adapter.ensure(NodePool("trials", "gke", "spot", ("n2-standard-4",), max_nodes=4), owner="0f3c2a9e41b7")
    assert refusal.value.field == "KATUNA_GKE_NODE_SERVICE_ACCOUNT"
    assert str(refusal.value) == (f'KATUNA_GKE_NODE_SERVICE_ACCOUNT: GKE refused the request: Service account '
                                  f'"{missing}" does not exist.')
    assert gke_api.pools == {}


def test_a_cluster_without_workload_identity_refuses_katunas_pool_and_katuna_says_why():
    stub = GkeStub(workload_identity=False)
    stub.add_cluster("proj-7", "europe-west4", "tuning")
    try:
        pools = gke.GkeNodePools(CLUSTER, gke.client(stub.url))
        with pytest.raises(NodePoolFailed, match="Workload Identity must be enabled on the cluster"):
            pools.ensure(NodePool("trials", "gke", "spot", ("n2-standard-4",), max_nodes=4), owner="0f3c2a9e41b7")
        assert stub.pools == {}
        gke.client(stub.url).create_node_pool(request=request(config__workload_metadata_config={"mode": "GCE_METADATA"}))
        assert stub.pools["trials"]["config"]["workloadMetadataConfig"] == {"mode": 1}
    finally:
        stub.close()


def test_the_service_names_its_node_account_from_its_settings(gke_api: GkeStub):
    settings = Settings.from_env({"KATUNA_GKE_PROJECT": "proj-7", "KATUNA_GKE_LOCATION": "europe-west4",
                                  "KATUNA_GKE_CLUSTER": "tuning", "KATUNA_GKE_ENDPOINT": gke_api.url,
                                  "KATUNA_GKE_NODE_SERVICE_ACCOUNT": "katuna-nodes@proj-7.iam.gserviceaccount.com"})
    adapter = node_pools(settings)
    assert adapter is not None
    adapter.ensure(NodePool("trials", "gke", "spot", ("n2-standard-4",), max_nodes=4), owner="0f3c2a9e41b7")
    config = gke_api.pools["trials"]["config"]
    assert (config["serviceAccount"], config["workloadMetadataConfig"]) == (
        "katuna-nodes@proj-7.iam.gserviceaccount.com", {"mode": 2})


def test_only_the_clusters_added_are_served_each_with_its_own_pools(api, gke_api: GkeStub):
    """A request naming another cluster, or the cluster in another location, gets GKE's 404 for
    the cluster, and one naming a location Google Cloud does not have GKE's 400 for it; a pool
    made in one cluster is not seen from another."""
    other = gke_api.add_cluster("proj-7", "europe-west4", "batch")
    api.create_node_pool(request=request())
    with pytest.raises(google_errors.BadRequest) as nowhere:
        api.get_node_pool(request={"name": "projects/proj-7/locations/mars-west1/clusters/tuning/nodePools/trials"})
    assert nowhere.value.message.endswith('Location "mars-west1" does not exist.')
    for parent in ("projects/proj-7/locations/europe-west4/clusters/tunign",
                   "projects/proj-7/locations/europe-west1/clusters/tuning"):
        with pytest.raises(google_errors.NotFound) as missing:
            api.get_node_pool(request={"name": f"{parent}/nodePools/trials"})
        assert missing.value.message.endswith(f"Not found: {parent}.")
        body = request()
        body["parent"] = parent
        with pytest.raises(google_errors.NotFound):
            api.create_node_pool(request=body)
    with pytest.raises(google_errors.NotFound) as absent:
        api.get_node_pool(request={"name": "projects/proj-7/locations/europe-west4/clusters/batch/nodePools/trials"})
    assert absent.value.message.endswith("Not found: projects/proj-7/locations/europe-west4/clusters/batch/nodePools/trials.")
    assert list(gke_api.pools) == ["trials"] and other == {}


@pytest.mark.parametrize("machine", ["e2-custom-4-8192", "n2-custom-8-16384-ext", "custom-2-7680", "c4a-standard-8",
                                     "n4d-standard-4", "z3-highmem-88", "h3-standard-88", "m3-megamem-64",
                                     "c3-standard-4-lssd", "c4-standard-8", "f1-micro", "e2-standard-32",
                                     "n1-standard-1", "c2-standard-30", "n2d-highcpu-224", "a2-megagpu-16g",
                                     "n4-highcpu-80", "c2d-highmem-112", "t2a-standard-48", "m1-ultramem-160",
                                     "m3-megamem-128"])
def test_custom_machine_types_and_every_series_gke_offers_are_accepted(api, gke_api: GkeStub, machine: str):
    api.create_node_pool(request=request(config__machine_type=machine))
    assert gke_api.pools["trials"]["config"]["machineType"] == machine


@pytest.mark.parametrize("machine", ["n9-huge", "e2-standard", "e2-custom-4", "e2-standard-4-extra", "e2-standard-3",
                                     "n2-standard-6", "e2-highmem-32", "c2-standard-32", "a3-highgpu-3g",
                                     "e2-standard-4-lssd", "n4-standard-6", "n4-highmem-96", "c2d-standard-48",
                                     "t2a-standard-64", "m1-ultramem-96", "m3-megamem-32"])
def test_machine_types_compute_engine_does_not_have_are_refused(api, gke_api: GkeStub, machine: str):
    """In GKE's words, naming one of the cluster's zones; a family's sizes are only those it offers."""
    assert refused(api, request(config__machine_type=machine)).endswith(
        f'Invalid machine type "{machine}" in zone "europe-west4-a": GCE_NOT_FOUND')
    assert gke_api.pools == {}


def test_a_pool_whose_creation_failed_is_left_in_error_saying_why(api, gke_api: GkeStub):
    """GKE keeps the reason on the pool (``statusMessage``), which katuna reads back."""
    reason = "Insufficient regional quota to satisfy request: resource \"CPUS\""
    gke_api.fail_next = reason
    api.create_node_pool(request=request())
    gke_api.advance(600)
    found = gke.GkeNodePools(CLUSTER, api).describe("trials")
    assert (found.state, found.message) == ("ERROR", reason)


@pytest.mark.parametrize("policy", ["CHEAPEST", "any"])
def test_a_location_policy_gke_does_not_have_is_refused(gke_api: GkeStub, policy):
    """``NodePoolAutoscaling.location_policy`` is an enum (``BALANCED``, ``ANY``): GKE's JSON
    transcoding refuses another name, which a raw REST request can send and proto clients cannot."""
    body = {"nodePool": {"name": "trials", "initialNodeCount": 0, "config": {"machineType": "e2-standard-4"},
                         "autoscaling": {"enabled": True, "totalMinNodeCount": 0, "totalMaxNodeCount": 3,
                                         "locationPolicy": policy}}}
    code, answer = gke_api.answer("POST", f"/v1/{CLUSTER.parent}/nodePools", body, None)
    assert code == 400 and answer["error"]["status"] == "INVALID_ARGUMENT", answer
    assert "node_pool.autoscaling.location_policy" in answer["error"]["message"]
    assert gke_api.pools == {}
