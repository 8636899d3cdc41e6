"""GKE's ``FAILED_PRECONDITION``: a cluster held by another operation is refused for now, and
asked again, as is every other wording of that code (GKE does not publish them; Google's
Terraform provider retries node-pool changes on the code alone), for at most
``KATUNA_POOL_WAIT``; an Autopilot cluster, whose node pools GKE alone manages, fails at once
whatever its code, naming the cluster setting to fix."""

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
