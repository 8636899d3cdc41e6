"""``python -m infra.provision ... up``, held to the bounds the service's operator sets on what
one pool may cost (``KATUNA_MAX_POOL_NODES``, ``KATUNA_POOL_MACHINE_TYPES``), as a study's
``nodePool`` is: a pool the script makes is one studies then scale, so the script may not make
one the service would refuse."""

from __future__ import annotations

import json

import pytest
from test_provision_script import EKS_FLAGS, GKE_FLAGS, ROLE, eks_cluster, moto_server, provision  # noqa: F401

pytestmark = pytest.mark.slow

EKS_UP = ["eks", "up", *EKS_FLAGS, "--subnets", "subnet-1", "--node-role", ROLE]


def up_in(cloud: str, request: pytest.FixtureRequest) -> tuple[list[str], dict[str, str]]:
    """``up`` of a cluster the stand-in of ``cloud`` holds, and the environment that reaches it:
    a plan reads the cloud."""
    if cloud == "gke":
        return ["gke", "up", *GKE_FLAGS, "--endpoint", request.getfixturevalue("gke_api").url], {}
    env = request.getfixturevalue("moto_server")
    subnets = eks_cluster(env, "bounds")
    return ["eks", "up", "--cluster", "bounds", "--nodegroup", "trials", "--subnets", ",".join(subnets),
            "--node-role", ROLE], env


@pytest.mark.parametrize("cloud,kinds", [("gke", ["--machine-type", "a3-highgpu-8g"]),
                                         ("eks", ["--instance-types", "g5.48xlarge,g4dn.12xlarge"])], ids=["gke", "eks"])
def test_up_past_the_services_pool_size_is_refused_naming_the_flag_and_the_setting(cloud: str, kinds: list[str],
                                                                                  request: pytest.FixtureRequest):
    """A typo of ``--max-nodes 1000`` for 100 of GPU machines is refused before anything is asked,
    dry run or not, unless the operator allows that many (exit 2, as any bad flag)."""
    up, env = up_in(cloud, request)
    command = [*up, *kinds]
    for dry_run in ((), ("--dry-run",)):
        refused = provision(*command, "--max-nodes", "101", *dry_run, env=env)
        assert refused.returncode == 2 and refused.stdout == "", refused.stderr
        assert ("--max-nodes: expected an integer from 1 to 100, the most this service lets one pool have "
                "(KATUNA_MAX_POOL_NODES), got 101") in refused.stderr, refused.stderr
    allowed = provision(*command, "--max-nodes", "101", "--dry-run", env={**env, "KATUNA_MAX_POOL_NODES": "200"})
    assert allowed.returncode == 0, allowed.stderr
    request = json.loads(allowed.stdout)["request"]
    assert 101 in (request.get("scalingConfig", {}).get("maxSize"),
                   request.get("node_pool", {}).get("autoscaling", {}).get("total_max_node_count"))


def test_up_of_a_machine_type_the_service_does_not_allow_is_refused_naming_the_flag(gke_api):
    env = {"KATUNA_POOL_MACHINE_TYPES": "e2-standard-4,m5.xlarge"}
    gke = provision("gke", "up", *GKE_FLAGS, "--machine-type", "a3-highgpu-8g", "--dry-run", env=env)
    assert gke.returncode == 2 and gke.stdout == "", gke.stderr
    assert ("--machine-type: expected one of the machine types this service allows (e2-standard-4, m5.xlarge: "
            "KATUNA_POOL_MACHINE_TYPES), got a3-highgpu-8g") in gke.stderr, gke.stderr
    eks = provision(*EKS_UP, "--instance-types", "m5.xlarge,p5.48xlarge", "--dry-run", env=env)
    assert eks.returncode == 2 and "--instance-types" in eks.stderr and "p5.48xlarge" in eks.stderr, eks.stderr
    taken = provision("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url, "--dry-run", env=env)
    assert taken.returncode == 0 and json.loads(taken.stdout)["action"] == "create", taken.stderr


@pytest.mark.parametrize("cloud", ["gke", "eks"])
@pytest.mark.parametrize("nodes", ["0", "500"])
def test_max_nodes_out_of_bounds_either_side_names_the_bound_in_force_and_its_setting(cloud: str, nodes: str):
    """``--max-nodes 0`` said "from 1 to 1000" (GKE's bound) while 500 said "at most 100": one
    message, naming the bound in force, which ``--help`` states as this environment sets it."""
    up = ["gke", "up", *GKE_FLAGS] if cloud == "gke" else EKS_UP
    refused = provision(*up, "--max-nodes", nodes, "--dry-run")
    assert refused.returncode == 2 and refused.stdout == "", refused.stderr
    assert (f"--max-nodes: expected an integer from 1 to 100, the most this service lets one pool have "
            f"(KATUNA_MAX_POOL_NODES), got {nodes}") in refused.stderr, refused.stderr
    helped = provision(cloud, "up", "--help", env={"KATUNA_MAX_POOL_NODES": "7"}, fresh=True)
    assert helped.returncode == 0 and "KATUNA_MAX_POOL_NODES (7)" in " ".join(helped.stdout.split()), helped.stdout


def test_a_bound_the_script_cannot_read_is_named():
    refused = provision("gke", "up", *GKE_FLAGS, "--dry-run", env={"KATUNA_MAX_POOL_NODES": "lots"})
    assert refused.returncode == 2 and "KATUNA_MAX_POOL_NODES" in refused.stderr, refused.stderr


@pytest.mark.parametrize("price", ["nan", "inf", "-inf", "-1", "1e13"])
def test_a_price_per_node_hour_that_is_no_price_is_refused_naming_the_flag_and_the_prices_taken(price: str):
    """``nan`` and the infinities, which click reads as numbers, are refused in the words of any
    price out of range, before anything is asked, as a study's ``nodePool.pricePerNodeHour``."""
    refused = provision("gke", "up", *GKE_FLAGS, "--price-per-node-hour", price, "--dry-run")
    assert refused.returncode == 2 and refused.stdout == "", refused.stderr
    shown = {"-1": "-1.0", "1e13": "10000000000000.0"}.get(price, price)
    assert (f"--price-per-node-hour: expected a price from 0 to 1,000,000,000,000 per node-hour, got {shown}"
            in refused.stderr), refused.stderr
