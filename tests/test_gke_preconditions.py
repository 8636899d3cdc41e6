"""GKE's ``FAILED_PRECONDITION`` judged by its words: a cluster held by another operation is
refused for now, and asked again; a state of the cluster no wait changes (an Autopilot cluster,
a feature it lacks, a cluster in an error state) fails at once, saying what to fix."""

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
def test_a_state_of_the_cluster_no_wait_changes_fails_at_once_saying_what_to_fix(gke_api, either, words: str):
    """Every FAILED_PRECONDITION was asked again until KATUNA_POOL_WAIT, then failed the study."""
    gke_api.refuse_next = (400, words, PRECONDITION)
    with pytest.raises(NodePoolFailed) as refused:
        either.ensure(spot_pool())
    assert refused.value.reason == (
        f"GKE refused the request: {words}; no wait changes this state of the cluster: fix what it names (gcloud "
        "container clusters describe shows the cluster's status and features), then submit the study again")
    assert "katuna-digits" not in gke_api.pools


@pytest.mark.parametrize("status", [PRECONDITION, "INVALID_ARGUMENT"])
def test_an_autopilot_cluster_is_named_as_the_setting_to_fix(gke_api: GkeStub, either, status: str):
    gke_api.refuse_next = (400, "Autopilot node pools cannot be accessed or modified.", status)
    with pytest.raises(NodePoolFailed) as refused:
        either.ensure(spot_pool())
    assert refused.value.field == "KATUNA_GKE_CLUSTER/KATUNA_GKE_LOCATION"
    assert refused.value.reason.endswith("the cluster is an Autopilot cluster, whose node pools GKE alone manages: "
                                         "name a Standard cluster, or leave nodePool out of the study")
