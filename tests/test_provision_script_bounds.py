"""``python -m infra.provision ... up``, held to the bounds the service's operator sets on what
one pool may cost (``KATUNA_MAX_POOL_NODES``, ``KATUNA_POOL_MACHINE_TYPES``), as a study's
``nodePool`` is: a pool the script makes is one studies then scale, so the script may not make
one the service would refuse."""

from __future__ import annotations

import json

import pytest
from test_provision_script import EKS_FLAGS, GKE_FLAGS, ROLE, provision

pytestmark = pytest.mark.slow

EKS_UP = ["eks", "up", *EKS_FLAGS, "--subnets", "subnet-1", "--node-role", ROLE]


@pytest.mark.parametrize("command", [["gke", "up", *GKE_FLAGS, "--machine-type", "a3-highgpu-8g"],
                                     [*EKS_UP, "--instance-types", "p5.48xlarge,p5e.48xlarge"]], ids=["gke", "eks"])
def test_up_past_the_services_pool_size_is_refused_naming_the_flag_and_the_setting(command: list[str]):
    """A typo of ``--max-nodes 1000`` for 100 of GPU machines is refused before anything is asked,
    dry run or not, unless the operator allows that many (exit 2, as any bad flag)."""
    for dry_run in ((), ("--dry-run",)):
        refused = provision(*command, "--max-nodes", "101", *dry_run)
        assert refused.returncode == 2 and refused.stdout == "", refused.stderr
        assert ("--max-nodes: expected at most 100 nodes, the most this service lets one pool have "
                "(KATUNA_MAX_POOL_NODES)") in refused.stderr, refused.stderr
    allowed = provision(*command, "--max-nodes", "101", "--dry-run", env={"KATUNA_MAX_POOL_NODES": "200"})
    assert allowed.returncode == 0, allowed.stderr
    request = json.loads(allowed.stdout)["request"]
    assert 101 in (request.get("scalingConfig", {}).get("maxSize"),
                   request.get("node_pool", {}).get("autoscaling", {}).get("total_max_node_count"))


def test_up_of_a_machine_type_the_service_does_not_allow_is_refused_naming_the_flag():
    env = {"KATUNA_POOL_MACHINE_TYPES": "e2-standard-4,m5.xlarge"}
    gke = provision("gke", "up", *GKE_FLAGS, "--machine-type", "a3-highgpu-8g", "--dry-run", env=env)
    assert gke.returncode == 2 and gke.stdout == "", gke.stderr
    assert ("--machine-type: expected one of the machine types this service allows (e2-standard-4, m5.xlarge: "
            "KATUNA_POOL_MACHINE_TYPES), got a3-highgpu-8g") in gke.stderr, gke.stderr
    eks = provision(*EKS_UP, "--instance-types", "m5.xlarge,p5.48xlarge", "--dry-run", env=env)
    assert eks.returncode == 2 and "--instance-types" in eks.stderr and "p5.48xlarge" in eks.stderr, eks.stderr
    taken = provision("gke", "up", *GKE_FLAGS, "--dry-run", env=env)
    assert taken.returncode == 0, taken.stderr


def test_a_bound_the_script_cannot_read_is_named():
    refused = provision("gke", "up", *GKE_FLAGS, "--dry-run", env={"KATUNA_MAX_POOL_NODES": "lots"})
    assert refused.returncode == 2 and "KATUNA_MAX_POOL_NODES" in refused.stderr, refused.stderr
