"""``python -m infra.provision gke up|down --dry-run`` against the loopback GKE API: a plan read
from the cloud (gets alone, never a request that changes anything), saying what the command
would do there, refused in the command's own words, with the worst case and its cost."""

from __future__ import annotations

import json

import pytest
from gke_stub import GkeStub
from test_provision_script import GKE_FLAGS, provision, provisioned, replaced

pytestmark = pytest.mark.slow

TAINT = [{"key": "katuna.dev/trial", "value": "true", "effect": "NO_SCHEDULE"}]


def changes(gke_api: GkeStub) -> list[tuple[str, str]]:
    """The requests recorded that change something (anything but a GET)."""
    return [(method, path) for method, path, _ in gke_api.requests if method != "GET"]


def planned(gke_api: GkeStub, command: str, *flags: str, base: list[str] = GKE_FLAGS) -> tuple[int, dict | None, str]:
    """The plan's exit code, JSON and stderr, proven to have changed nothing: of the command
    with the ``base`` flags naming the pool, and ``flags``."""
    before = changes(gke_api)
    result = provision("gke", command, *base, "--endpoint", gke_api.url, *flags, "--dry-run")
    assert changes(gke_api) == before, "a plan sends no request that changes anything"
    return result.returncode, json.loads(result.stdout) if result.stdout else None, result.stderr


def test_gke_up_plan_says_create_raise_or_nothing_as_up_then_does(gke_api: GkeStub):
    gke_api.speed = 1e6
    code, plan, said = planned(gke_api, "up", "--max-nodes", "4", "--price-per-node-hour", "0.134", "--currency",
                               "USD")
    assert (code, plan["action"], plan["call"], plan["found"]) == (0, "create", "create_node_pool", None), said
    assert plan["request"]["node_pool"]["config"]["resource_labels"] == {"katuna-made-by": "infra-provision"}
    assert plan["worstCase"] == {"nodes": 4, "machineTypes": ["e2-standard-4"], "capacity": "spot"}
    assert plan["cost"] == {"perHour": 0.536, "pricePerNodeHour": 0.134, "currency": "USD"}
    assert said == ("plan: node pool trials: create it, autoscaling from 0 to 4 nodes; at most 4 spot nodes of "
                    "e2-standard-4 at once, at most 0.536 USD an hour at 0.134 USD per node-hour\n"), said
    assert gke_api.requests and gke_api.pools == {}, "the pool was looked for, and nothing made"
    provisioned("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url, "--max-nodes", "4")

    code, plan, said = planned(gke_api, "up", "--max-nodes", "4")
    assert (code, plan["action"], "call" in plan, "cost" in plan) == (0, "nothing to change", False, False), said
    assert plan["found"]["maxNodes"] == 4 and said == ("plan: node pool trials: nothing to change; at most 4 spot "
                                                       "nodes of e2-standard-4 at once\n"), said
    code, plan, said = planned(gke_api, "up", "--max-nodes", "2")
    assert (code, plan["action"], plan["worstCase"]["nodes"]) == (0, "nothing to change", 4), said
    assert "its maximum stays 4 nodes, above --max-nodes 2" in said

    code, plan, said = planned(gke_api, "up", "--max-nodes", "10")
    assert (code, plan["action"], plan["call"]) == (0, "raise maximum", "set_node_pool_autoscaling"), said
    assert plan["request"]["autoscaling"]["total_max_node_count"] == 10 and plan["worstCase"]["nodes"] == 10
    assert said.startswith("plan: node pool trials: raise its maximum from 4 to 10 nodes; "), said
    gke_api.requests.clear()
    raised = provision("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url, "--max-nodes", "10")
    assert raised.returncode == 0 and json.loads(raised.stdout)["maxNodes"] == 10, raised.stderr
    sent = [path.rsplit("/", 1)[1] for _, path in changes(gke_api)]
    assert [path for path in sent if path != "nodePools"] == ["trials:setAutoscaling"], (
        "the one change the plan named, besides the creates GKE answers ALREADY_EXISTS")


@pytest.mark.parametrize("flags", [["--machine-type", "n2-standard-8"], ["--on-demand"], ["--label", "team=vision"],
                                   ["--node-service-account", "katuna-nodes@proj-7.iam.gserviceaccount.com"]])
def test_gke_up_plan_refuses_what_up_refuses_in_its_words(gke_api: GkeStub, flags: list[str]):
    gke_api.speed = 1e6
    provisioned("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url)
    real = provision("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url, *flags)
    code, plan, said = planned(gke_api, "up", *flags)
    assert (code, real.returncode) == (1, 1) and said == real.stderr, said
    assert plan["action"] == "refuse" and said == f"error: {plan['summary']}\n" and plan["found"]["state"] == "RUNNING"


def test_gke_up_plan_of_a_pool_in_error_tells_what_brings_it_back_as_up_does(gke_api: GkeStub):
    gke_api.speed = 1e6
    gke_api.fail_next = 'Insufficient regional quota to satisfy request: resource "CPUS"'
    provision("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url)
    real = provision("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url)
    code, plan, said = planned(gke_api, "up")
    assert (code, said) == (1, real.stderr) and said.endswith("run `down`, then `up` to create it again\n"), said


def test_gke_up_plan_of_a_pool_being_created_or_deleted_says_up_waits(gke_api: GkeStub):
    flags = [*GKE_FLAGS, "--endpoint", gke_api.url]
    assert provision("gke", "up", *flags, "--timeout", "0").returncode == 1, "left being created"
    code, plan, said = planned(gke_api, "up", "--max-nodes", "6")
    assert (code, plan["action"], plan["found"]["state"], plan["worstCase"]["nodes"]) == (0, "wait", "PROVISIONING",
                                                                                          6), said
    assert "`up` waits until it is ready, then raises its maximum from 3 to 6 nodes" in said, said
    gke_api.advance(600)
    assert provision("gke", "down", *flags, "--timeout", "0").returncode == 1, "left being deleted"
    code, plan, said = planned(gke_api, "up")
    assert (code, plan["action"], plan["found"]["state"]) == (0, "wait", "STOPPING"), said
    assert "`up` asks again until it is gone, then creates it" in said
    code, plan, said = planned(gke_api, "down")
    assert (code, plan["action"]) == (0, "wait") and "`down` waits until it is gone" in said, said


def test_gke_down_plan_says_delete_nothing_or_refuse_as_down_then_does(gke_api: GkeStub):
    gke_api.speed = 1e6
    code, plan, said = planned(gke_api, "down")
    assert (code, plan["action"], plan["found"]) == (0, "nothing to delete", None), said
    provisioned("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url)
    code, plan, said = planned(gke_api, "down")
    assert (code, plan["action"], plan["call"]) == (0, "delete", "delete_node_pool"), said
    assert plan["request"] == {"name": "projects/proj-7/locations/europe-west4/clusters/tuning/nodePools/trials"}
    gke_api.pools["default-pool"] = {"name": "default-pool", "config": {"machineType": "e2-medium"},
                                     "initialNodeCount": 3, "locations": ["europe-west4-a"], "status": "RUNNING"}
    real = provision("gke", "down", *replaced(GKE_FLAGS, "--pool", "default-pool"), "--endpoint", gke_api.url)
    code, plan, said = planned(gke_api, "down", base=replaced(GKE_FLAGS, "--pool", "default-pool"))
    assert (code, plan["action"], said) == (1, "refuse", real.stderr) and "is not katuna's" in said, said
    deleted = provision("gke", "down", *GKE_FLAGS, "--endpoint", gke_api.url)
    assert deleted.returncode == 0 and "trials" not in gke_api.pools, deleted.stderr
