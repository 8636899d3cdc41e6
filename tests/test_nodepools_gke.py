"""The GKE adapter: the real google-cloud-container client over REST against a loopback GKE API
(and over gRPC, production's transport, where refusals are judged). What every cloud's node
pools do is checked by the contract in tests/test_conformance_nodepools.py."""

from __future__ import annotations

import pytest
from conftest import study_definition
from gke_operations import BUSY
from gke_stub import GkeStub
from google.api_core.client_options import ClientOptions
from google.auth.credentials import Credentials
from google.auth.exceptions import RefreshError, TransportError
from google.cloud import container_v1
from waiting import eventually

from functions.core.errors import InvalidStudy, TemporaryError
from functions.core.limits import Limits
from functions.core.nodepool import NodePool, NodePoolFailed, OperationStatus, PoolChange
from functions.core.validate import parse_study
from infra import gke, gke_requests

CLUSTER = gke_requests.GkeCluster("proj-7", "europe-west4", "tuning")
POOLS_PATH = "/v1/projects/proj-7/locations/europe-west4/clusters/tuning/nodePools"
OPERATIONS = "projects/proj-7/locations/europe-west4/operations/"
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
            "workloadMetadataConfig": {"mode": 2},
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
    request = gke_requests.create_request(CLUSTER, spot_pool(capacity="preemptible", disk_size_gb=None))
    assert request == {"parent": "projects/proj-7/locations/europe-west4/clusters/tuning", "node_pool": {
        "name": "katuna-digits", "initial_node_count": 0,
        "config": {"machine_type": "n2-standard-8", "labels": {"team": "vision", "katuna.dev/pool": "katuna-digits"},
                   "taints": [{"key": "katuna.dev/trial", "value": "true", "effect": "NO_SCHEDULE"}],
                   "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"], "preemptible": True,
                   "workload_metadata_config": {"mode": "GKE_METADATA"}},
        "autoscaling": {"enabled": True, "total_min_node_count": 0, "total_max_node_count": 5,
                        "location_policy": "ANY"},
        "management": {"auto_repair": True, "auto_upgrade": True},
    }}


def test_a_disk_larger_than_compute_engines_largest_is_refused_by_gke_and_by_katuna_at_submission(
        gke_api: GkeStub, pools: gke.GkeNodePools):
    with pytest.raises(NodePoolFailed, match="GKE refused the request: .*disk_size_gb.*65537"):
        pools.ensure(spot_pool(disk_size_gb=65537))
    assert gke_api.pools == {}
    definition = study_definition(name="huge-disk", nodePool={"provider": "gke", "diskSizeGb": 65537})
    with pytest.raises(InvalidStudy) as refused:
        parse_study(definition)
    assert [(p.path, p.message) for p in refused.value.problems] == [(
        "nodePool.diskSizeGb", "expected at most 65536 for a GKE node pool: Compute Engine's largest disk is 64 TiB")]
    definition["nodePool"] = {"provider": "gke", "diskSizeGb": 65536}
    assert parse_study(definition, Limits(pool_disk_gb=65536)).node_pool.disk_size_gb == 65536
    assert pools.ensure(spot_pool(disk_size_gb=65536)).created


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
    eventually(lambda: pools.check(operation).done, "90 stand-in seconds to pass", timeout=30)
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


@pytest.mark.parametrize("refusal,error", [
    ((400, "Invalid machine type n2-standard-999"), NodePoolFailed),
    ((403, "Required \"container.clusters.update\" permission"), NodePoolFailed),
    ((429, "Rate limit exceeded"), TemporaryError),
    ((429, "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute' of service "
           "'container.googleapis.com'", "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED"), TemporaryError),
    ((403, "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute per user'"), TemporaryError),
    ((403, "Too many operations are running in the project; wait for some to finish", "PERMISSION_DENIED",
      "CONCURRENT_OPERATIONS_QUOTA_EXCEEDED"), TemporaryError),
    ((409, "The operation was aborted; try again", "ABORTED"), TemporaryError),
    ((500, "Internal error"), TemporaryError),
    ((503, "The service is currently unavailable"), TemporaryError),
])
def test_refusals_are_judged_by_status_and_reason_alike_over_rest_and_grpc(gke_api, either, refusal, error):
    gke_api.refuse_next = refusal
    with pytest.raises(error) as raised:
        either.ensure(spot_pool())
    assert str(raised.value).endswith(refusal[1]), "the cloud's own message, on either transport"
    assert "katuna-digits" not in gke_api.pools


@pytest.mark.parametrize("busy", sorted(BUSY))
def test_a_cluster_held_by_an_upgrade_refuses_changes_for_a_while_in_each_wording(gke_api, either, busy: str):
    settled(gke_api, either, either.ensure(spot_pool(name="first")))
    gke_api.update_master(300, busy=busy)
    for change in (lambda: either.ensure(spot_pool()), lambda: either.delete("first"),
                   lambda: either.ensure(spot_pool(name="first", max_nodes=9))):
        with pytest.raises(TemporaryError, match="GKE: (Operation|Cluster|Master) "):
            change()
    assert either.describe("first").state == "RUNNING", "reads are answered during the upgrade"
    gke_api.advance(300)
    assert either.ensure(spot_pool()).created


def test_a_create_answered_aborted_is_retried_not_taken_for_an_existing_pool(gke_api, either):
    gke_api.refuse_next = (409, "Operation was aborted because of a concurrent change", "ABORTED")
    with pytest.raises(TemporaryError, match="^GKE: Operation was aborted"):
        either.ensure(spot_pool())
    assert [m for m, _, _ in gke_api.calls()] == ["POST"], "no look for a pool that was never said to exist"


def test_a_create_answered_already_exists_finds_the_pool_on_either_transport(gke_api: GkeStub, either):
    settled(gke_api, either, either.ensure(spot_pool(), owner="u1"))
    assert either.ensure(spot_pool(), owner="u1") == PoolChange(created=True, owned=True)


class MetadataServerHiccup(Credentials):
    """Real google-auth credentials whose first ``failures`` refreshes fail as ``failure`` makes
    them: as Workload Identity's do while the metadata server does not answer, by default."""

    def __init__(self, failures: int, failure=None) -> None:
        super().__init__()
        self.failures, self.failure, self.refreshes = failures, failure or metadata_timeout, 0

    def refresh(self, request) -> None:
        self.refreshes += 1
        if self.refreshes <= self.failures:
            raise self.failure()
        self.token = "ya29.katuna"


def metadata_timeout() -> Exception:
    """What compute-engine credentials raise: a RefreshError caused by the TransportError."""
    cause = TransportError("Failed to retrieve http://metadata.google.internal/computeMetadata/v1/instance/"
                           "service-accounts/default/token from the Google Compute Engine metadata service: timed out")
    error = RefreshError(cause)
    error.__cause__ = cause
    return error


def signed_in(gke_api: GkeStub, credentials: Credentials) -> gke.GkeNodePools:
    """The adapter with ``credentials``, against a stand-in that takes only their token."""
    gke_api.tokens = {"ya29.katuna"}
    api = container_v1.ClusterManagerClient(transport="rest", credentials=credentials,
                                            client_options=ClientOptions(api_endpoint=gke_api.url))
    return gke.GkeNodePools(CLUSTER, api)


def test_a_token_refresh_that_fails_for_now_is_temporary_in_every_call_and_then_goes_through(gke_api: GkeStub):
    credentials = MetadataServerHiccup(failures=4)
    pools = signed_in(gke_api, credentials)
    operation = OPERATIONS + "operation-1"
    for call in (lambda: pools.ensure(spot_pool()), lambda: pools.check(operation),
                 lambda: pools.scale_back(spot_pool()), lambda: pools.delete("katuna-digits")):
        with pytest.raises(TemporaryError, match="credentials could not be refreshed now: .*metadata service"):
            call()
    assert gke_api.requests == [], "nothing reached GKE without a token"
    assert pools.ensure(spot_pool()).created and credentials.refreshes == 5
    assert gke_api.calls("POST")


@pytest.mark.parametrize("failure,error", [
    (lambda: TransportError("Connection reset by peer"), TemporaryError),
    (lambda: RefreshError("Failed to retrieve the token", {"error": "temporarily_unavailable"}, retryable=True),
     TemporaryError),
    (lambda: RefreshError("invalid_grant: Invalid JWT Signature.", {"error": "invalid_grant"}), NodePoolFailed),
])
def test_credentials_errors_are_temporary_unless_the_credentials_are_refused(gke_api: GkeStub, failure, error):
    with pytest.raises(error, match="credentials"):
        signed_in(gke_api, MetadataServerHiccup(failures=1, failure=failure)).ensure(spot_pool())


def test_credentials_the_api_refuses_are_a_permanent_refusal(gke_api: GkeStub):
    gke_api.tokens = {"ya29.katuna"}
    with pytest.raises(NodePoolFailed, match="credentials were refused: Anonymous credentials cannot be refreshed") \
            as refused:
        gke.GkeNodePools(CLUSTER, gke.client(gke_api.url)).ensure(spot_pool())
    assert "sign in again (`gcloud auth application-default login`)" in str(refused.value)
    assert len(gke_api.requests) == 1, "answered 401, on which the client tries to refresh its credentials"


def per_zone_pool(gke_api: GkeStub, pools: gke.GkeNodePools, low: int, high: int) -> None:
    """Pool ``team`` made by hand with per-zone limits, in the region's three zones."""
    request = gke_requests.create_request(CLUSTER, spot_pool(name="team"))
    request["node_pool"]["autoscaling"] = {"enabled": True, "min_node_count": low, "max_node_count": high,
                                           "location_policy": "ANY"}
    pools.api.create_node_pool(request=request)
    gke_api.advance(600)
    gke_api.requests.clear()


def test_per_zone_limits_count_in_each_zone_and_are_raised_to_the_maximum_asked(gke_api: GkeStub,
                                                                               pools: gke.GkeNodePools):
    """A maximum of 10 spread over 3 zones per zone was raised to 4 in each: 12 nodes, past the
    10 the study asked for. The pool gets pool-wide limits while studies use it."""
    per_zone_pool(gke_api, pools, 1, 3)
    found = pools.describe("team")
    assert (found.min_nodes, found.max_nodes) == (3, 9), "1..3 in each of 3 zones"
    change = pools.ensure(spot_pool(name="team", max_nodes=5), owner="u1")
    assert change.operation is None and change.adopted == {
        "enabled": True, "min_node_count": 1, "max_node_count": 3, "location_policy": "ANY"}
    assert gke_api.calls("POST", ":setAutoscaling") == [], "9 nodes allow the study's 5: nothing lowered"
    raised = pools.ensure(spot_pool(name="team", max_nodes=10), owner="u1")
    assert gke_api.calls("POST", ":setAutoscaling")[0][2] == {"autoscaling": {
        "enabled": True, "totalMinNodeCount": 3, "totalMaxNodeCount": 10, "locationPolicy": ANY}}, "pool-wide"
    assert settled(gke_api, pools, raised) == OperationStatus(True)
    assert gke_api.pool_bounds("team")[:2] == (3, 10), "at least 1 in each zone as before, at most the 10 asked"
    assert settled(gke_api, pools, pools.scale_back(spot_pool(name="team"), change.adopted)).done
    assert gke_api.pools["team"]["autoscaling"] == {"enabled": True, "minNodeCount": 1, "maxNodeCount": 3,
                                                     "locationPolicy": ANY}


def test_a_per_zone_pool_nobody_adopted_is_scaled_back_per_zone(gke_api: GkeStub, pools: gke.GkeNodePools):
    per_zone_pool(gke_api, pools, 2, 3)
    assert settled(gke_api, pools, pools.scale_back(spot_pool(name="team"))).done
    assert gke_api.pools["team"]["autoscaling"] == {"enabled": True, "maxNodeCount": 3, "locationPolicy": ANY}


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


def test_waiting_polls_again_after_polls_refused_for_now(gke_api: GkeStub, pools: gke.GkeNodePools):
    """The provisioning script's wait: a poll refused by a per-minute read quota says nothing
    about the operation, which goes on; the wait polls again until it is done."""
    gke_api.speed = 1e6
    change = pools.ensure(spot_pool())
    quota = (429, "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service "
                  "'container.googleapis.com'")
    gke_api.refused_polls = [quota, quota, quota]
    assert pools.wait(change.operation, interval=0, timeout=60) == OperationStatus(True)
    assert gke_api.refused_polls == [] and gke_api.pools["katuna-digits"]["status"] == "RUNNING"


def test_a_delete_asked_again_while_the_first_runs_waits_for_it(gke_api: GkeStub, pools: gke.GkeNodePools):
    """GKE refuses a second delete while the first runs (the cluster is busy with it): ``down``
    run again waits for the deletion under way instead of failing."""
    settled(gke_api, pools, pools.ensure(spot_pool()))
    first = pools.delete("katuna-digits")
    again = pools.delete("katuna-digits")
    assert again == PoolChange("gone:katuna-digits") and again != first
    assert len(gke_api.calls("DELETE")) == 2, "the second delete was asked and refused"
    assert pools.check(again.operation) == OperationStatus(False)
    gke_api.advance(600)
    assert pools.check(again.operation) == OperationStatus(True) and "katuna-digits" not in gke_api.pools


def test_a_delete_refused_for_now_with_the_pool_not_being_deleted_is_still_refused(gke_api, pools):
    settled(gke_api, pools, pools.ensure(spot_pool()))
    gke_api.update_master(300)
    with pytest.raises(TemporaryError, match="Master is being updated"):
        pools.delete("katuna-digits")


def test_an_existing_pool_in_error_is_a_refusal_and_one_being_deleted_a_wait(gke_api: GkeStub, pools: gke.GkeNodePools):
    settled(gke_api, pools, pools.ensure(spot_pool()))
    gke_api.pools["katuna-digits"].update(status="ERROR",
                                       statusMessage="Instances failed to start: ZONE_RESOURCE_POOL_EXHAUSTED")
    with pytest.raises(NodePoolFailed, match="is in error: Instances failed to start"):
        pools.ensure(spot_pool())
    gke_api.pools["katuna-digits"]["status"] = "STOPPING"
    with pytest.raises(TemporaryError, match="being deleted"):
        pools.ensure(spot_pool())


@pytest.mark.parametrize("where", [gke_requests.GkeCluster("proj-7", "europe-west4", "tunign"),
                                   gke_requests.GkeCluster("proj-7", "europe-west4-a", "tuning")],
                         ids=["cluster-typo", "zone-of-a-regional-cluster"])
def test_a_cluster_gke_does_not_have_is_a_refusal_naming_the_settings_never_an_absent_pool(gke_api, either, where):
    """GKE answers NOT_FOUND for the cluster as for a pool: a pool that exists in the cluster
    the settings meant is not reported gone, nor its deletion done, nor its scale-back."""
    settled(gke_api, either, either.ensure(spot_pool()))
    elsewhere = gke.GkeNodePools(where, either.api)
    for call in (lambda: elsewhere.describe("katuna-digits"), lambda: elsewhere.delete("katuna-digits"),
                 lambda: elsewhere.scale_back(spot_pool()), lambda: elsewhere.ensure(spot_pool(name="other"))):
        with pytest.raises(NodePoolFailed) as refusal:
            call()
        assert refusal.value.field == "KATUNA_GKE_CLUSTER/KATUNA_GKE_LOCATION"
        assert str(refusal.value).startswith(f"KATUNA_GKE_CLUSTER/KATUNA_GKE_LOCATION: GKE has no cluster "
                                             f"{where.cluster} in location {where.location} of project proj-7")
        assert f"Not found: {where.parent}." in str(refusal.value)
    assert list(gke_api.pools) == ["katuna-digits"] and gke_api.pools["katuna-digits"]["status"] == "RUNNING"


def test_a_pool_absent_from_a_cluster_gke_has_is_absent(gke_api: GkeStub, either):
    assert either.describe("katuna-digits") is None
    assert either.delete("katuna-digits") == PoolChange()
    assert either.scale_back(spot_pool()) == PoolChange()


def test_a_pool_being_deleted_has_no_node_service_account_to_keep(gke_api: GkeStub, pools: gke.GkeNodePools):
    """The provisioning script's ``up`` refused, for good, another account than that of a pool
    being deleted: the pool it creates once that one is gone takes the account asked for."""
    settled(gke_api, pools, pools.ensure(spot_pool()))
    assert pools.node_service_account("katuna-digits") == "default"
    pools.delete("katuna-digits")
    assert pools.node_service_account("katuna-digits") is None
