"""GKE's ``FAILED_PRECONDITION``: a cluster held by another operation is refused for now, and
asked again, as is every other wording of that code (GKE does not publish them; Google's
Terraform provider retries node-pool changes on the code alone), for at most
``KATUNA_POOL_WAIT``; an Autopilot cluster, whose node pools GKE alone manages, fails at once
whatever its code, naming the cluster setting to fix, as does a ``FAILED_PRECONDITION`` or
``RESOURCE_EXHAUSTED`` whose details or words say it lasts (a resource quota, a policy)."""

from __future__ import annotations

import pytest
from gke_operations import BUSY, DOING
from gke_stub import GkeStub
from test_nodepools_gke import spot_pool

from functions.core.errors import TemporaryError
from functions.core.nodepool import NodePoolFailed

PRECONDITION = "FAILED_PRECONDITION"
BUSY_WORDS = [wording.format(number="operation-7", doing=DOING["UPGRADE_MASTER"], cluster="tuning")
              for wording in BUSY.values()] + [
    "Cluster is currently being created, deleted, updated or repaired and cannot be updated."]


@pytest.mark.parametrize("words", BUSY_WORDS)
def test_a_cluster_busy_with_another_operation_is_refused_for_now(gke_api: GkeStub, either, words: str):
    gke_api.refuse_next = (400, words, PRECONDITION)
    with pytest.raises(TemporaryError, match="^GKE: "):
        either.ensure(spot_pool())
    assert either.ensure(spot_pool()).created, "asked again, it is created"


@pytest.mark.parametrize("words", [
    "Workload Identity must be enabled on the cluster to use the GKE metadata server on a node pool.",
    "Cluster tuning is in an error state; repair or recreate it.",
])
def test_a_precondition_of_other_words_is_refused_for_now_too(gke_api: GkeStub, either, words: str):
    """Wordings GKE does not publish are no proof of a lasting state: asked again until
    ``KATUNA_POOL_WAIT``, whose end fails the study with GKE's last words."""
    gke_api.refuse_next = (400, words, PRECONDITION)
    with pytest.raises(TemporaryError, match=f"^GKE: {words}"):
        either.ensure(spot_pool())
    assert either.ensure(spot_pool()).created, "asked again, it is created"


@pytest.mark.parametrize("status", [PRECONDITION, "INVALID_ARGUMENT"])
def test_an_autopilot_cluster_is_named_as_the_setting_to_fix(gke_api: GkeStub, either, status: str):
    gke_api.refuse_next = (400, "Autopilot node pools cannot be accessed or modified.", status)
    with pytest.raises(NodePoolFailed) as refused:
        either.ensure(spot_pool())
    assert refused.value.field == "KATUNA_GKE_CLUSTER/KATUNA_GKE_LOCATION"
    assert refused.value.reason.endswith("the cluster is an Autopilot cluster, whose node pools GKE alone manages: "
                                         "name a Standard cluster, or leave nodePool out of the study")


def rpc(kind: str, **fields) -> dict:
    """A ``google.rpc`` detail in the JSON form a REST error carries."""
    return {"@type": f"type.googleapis.com/google.rpc.{kind}", **fields}


CPUS = rpc("QuotaFailure", violations=[{
    "subject": "projects/proj-7", "description": "Insufficient regional quota to satisfy request: resource \"CPUS\"",
    "quotaMetric": "compute.googleapis.com/cpus", "quotaId": "CPUS-per-project-region",
    "quotaDimensions": {"region": "europe-west4"}, "quotaValue": "24"}])
LASTING = [
    ((429, "Insufficient regional quota to satisfy request: resource \"CPUS\"", "RESOURCE_EXHAUSTED", None, [CPUS]),
     "a quota of the project is used up: compute.googleapis.com/cpus in region europe-west4 (limit 24)"),
    ((429, "Quota exceeded for quota metric 'VMs' of service 'compute.googleapis.com'", "RESOURCE_EXHAUSTED", None,
      [rpc("ErrorInfo", reason="RESOURCE_QUOTA_EXCEEDED", domain="googleapis.com",
           metadata={"quota_metric": "compute.googleapis.com/vms", "quota_limit": "VMsPerProject"})]),
     "a resource quota of the project is used up (quota_metric compute.googleapis.com/vms, "
     "quota_limit VMsPerProject)"),
    ((400, "Location europe-west4 violates constraint constraints/gcp.resourceLocations", PRECONDITION, None,
      [rpc("ErrorInfo", reason="LOCATION_ORG_POLICY_VIOLATED", domain="googleapis.com",
           metadata={"location": "locations/europe-west4"})]),
     "an organization policy forbids the location (location locations/europe-west4)"),
    ((400, "Constraint constraints/compute.vmExternalIpAccess violated for project proj-7.", PRECONDITION),
     "the organization policy constraint constraints/compute.vmExternalIpAccess forbids it"),
    ((400, "Precondition check failed.", PRECONDITION, None, [rpc("PreconditionFailure", violations=[
        {"type": "TOS", "subject": "google.com/cloud", "description": "Terms of service not accepted"}])]),
     "a precondition fails: TOS google.com/cloud Terms of service not accepted"),
]


@pytest.mark.parametrize("refusal,why", LASTING)
def test_a_lasting_quota_or_policy_fails_at_once_naming_it(gke_api: GkeStub, either, refusal: tuple, why: str):
    """``RESOURCE_EXHAUSTED`` and ``FAILED_PRECONDITION`` whose details (a resource quota's
    ``QuotaFailure``, an ``ErrorInfo`` reason of a lasting state, a ``PreconditionFailure``) or
    words (an organization policy constraint) say they last fail at once, on either transport."""
    gke_api.refuse_next = refusal
    with pytest.raises(NodePoolFailed) as refused:
        either.ensure(spot_pool())
    assert refused.value.reason.startswith(f"GKE refused the request: {refusal[1]}; it lasts: {why}")
    assert "katuna-digits" not in gke_api.pools


def test_a_machine_type_the_zone_lacks_names_the_field_whatever_its_code(gke_api: GkeStub, either):
    gke_api.refuse_next = (400, 'Invalid machine type "c3-standard-4" in zone "europe-west4-a": GCE_NOT_FOUND',
                           PRECONDITION)
    with pytest.raises(NodePoolFailed) as refused:
        either.ensure(spot_pool())
    assert refused.value.field == "nodePool.machineType"


@pytest.mark.parametrize("refusal", [
    (429, "Quota exceeded for quota metric 'Write requests'", "RESOURCE_EXHAUSTED", None, [rpc(
        "QuotaFailure", violations=[{"subject": "projects/proj-7", "quotaMetric": "container.googleapis.com/write",
                                     "quotaId": "WriteRequestsPerMinutePerProject"}])]),
    (429, "Insufficient regional quota to satisfy request: resource \"CPUS\"", "RESOURCE_EXHAUSTED", None,
     [CPUS, rpc("RetryInfo", retryDelay="30s")]),
    (429, 'Too many operations: cluster "tuning" hits the concurrent operations quota 5, please try again later.',
     "RESOURCE_EXHAUSTED", None, [rpc("QuotaFailure", violations=[{"subject": "clusters/tuning"}])]),
    (400, "The zone 'projects/proj-7/zones/europe-west4-a' does not have enough resources available to fulfill "
          "the request. '(resource type:compute)'. ZONE_RESOURCE_POOL_EXHAUSTED", "RESOURCE_EXHAUSTED"),
])
def test_a_passing_quota_or_stockout_is_refused_for_now(gke_api: GkeStub, either, refusal: tuple):
    """A rate quota, a refusal whose ``RetryInfo`` says to ask again, the cluster's concurrent
    operations and a zone short of machines for now pass: asked again."""
    gke_api.refuse_next = refusal
    with pytest.raises(TemporaryError, match="^GKE: "):
        either.ensure(spot_pool())
    assert either.ensure(spot_pool()).created
