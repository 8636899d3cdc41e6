"""``python -m infra.provision``, run as a user runs it: a process of its own against a loopback GKE
API and moto's server mode (``AWS_ENDPOINT_URL``), forked from a Python that has imported the
SDKs unless what it does as it starts is the point (:func:`provision`)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import moto_eks
import moto_eks_iam
import pytest
from child_signals import interruptible
from gke_stub import GkeStub
from http_helpers import free_port
from waiting import START_WAIT, stopped
from warm_katuna import run as warm_run
from warm_katuna import warm

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent
GKE_FLAGS = ["--project", "proj-7", "--location", "europe-west4", "--cluster", "tuning", "--pool", "trials"]
EKS_FLAGS = ["--cluster", "tuning", "--nodegroup", "trials"]
ROLE = "arn:aws:iam::123456789012:role/katuna-nodes"


def replaced(flags: list[str], *pairs: str) -> list[str]:
    """``flags`` with the value of each flag of ``pairs`` (``"--pool", "other"``, ...) replaced,
    or added where absent: the script refuses a flag given twice."""
    flags = list(flags)
    for flag, value in zip(pairs[::2], pairs[1::2]):
        if flag in flags:
            flags[flags.index(flag) + 1] = value
        else:
            flags += [flag, value]
    return flags


def provision(*args: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = (),
              fresh: bool = False) -> subprocess.CompletedProcess:
    """The script run with this environment, ``env`` added and ``unset`` taken out, as
    ``subprocess.run(..., capture_output=True, text=True)`` runs it: in a process of its own,
    forked from a Python that has imported the script's modules and both clouds' SDKs
    (tests/warm_katuna.py: half a second of CPU less each), or ``fresh``, started afresh, where
    what the test asserts is what a Python does as it starts (an SDK's notices as it is
    imported; the credentials chain read from the environment)."""
    environment = {key: value for key, value in {**os.environ, **(env or {})}.items() if key not in unset}
    argv = [sys.executable, "-m", "infra.provision", *args]
    if fresh:
        return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=environment, timeout=60)
    return warm_run(warm("provision"), argv, ROOT, environment, 60)


def provisioned(*args: str, env: dict[str, str] | None = None) -> None:
    """The script's command run in this process (with ``env`` added to the environment), for what
    a test starts from (a pool made): a process of its own would only add the start-up of the
    cloud's SDK, half a second of CPU, to what the test asserts."""
    from click.testing import CliRunner

    from infra.provision import main

    result = CliRunner(env=env).invoke(main, list(args))
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"


def test_gke_dry_run_prints_the_exact_request_and_changes_nothing(gke_api: GkeStub):
    result = provision("gke", "up", *GKE_FLAGS, "--machine-type", "n2-standard-8", "--max-nodes", "10",
                       "--preemptible", "--label", "team=vision", "--label", "tier=batch",
                       "--node-service-account", "katuna-nodes@proj-7.iam.gserviceaccount.com",
                       "--endpoint", gke_api.url, "--dry-run")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert {"call": printed["call"], "request": printed["request"]} == {"call": "create_node_pool", "request": {
        "parent": "projects/proj-7/locations/europe-west4/clusters/tuning",
        "node_pool": {
            "name": "trials", "initial_node_count": 0,
            "config": {"machine_type": "n2-standard-8", "preemptible": True,
                       "labels": {"team": "vision", "tier": "batch", "katuna.dev/pool": "trials"},
                       "taints": [{"key": "katuna.dev/trial", "value": "true", "effect": "NO_SCHEDULE"}],
                       "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                       "workload_metadata_config": {"mode": "GKE_METADATA"},
                       "service_account": "katuna-nodes@proj-7.iam.gserviceaccount.com",
                       "resource_labels": {"katuna-made-by": "infra-provision"}},
            "autoscaling": {"enabled": True, "total_min_node_count": 0, "total_max_node_count": 10,
                            "location_policy": "ANY"},
            "management": {"auto_repair": True, "auto_upgrade": True},
        }}}
    assert {method for method, _, _ in gke_api.requests} == {"GET"}, "the pool read, nothing asked of it"
    down = provision("gke", "down", *GKE_FLAGS, "--endpoint", gke_api.url, "--dry-run")
    assert json.loads(down.stdout)["action"] == "nothing to delete"
    assert {method for method, _, _ in gke_api.requests} == {"GET"} and gke_api.pools == {}


def test_gke_up_twice_changes_nothing_the_second_time_then_status_and_down(gke_api: GkeStub):
    gke_api.speed = 1e6  # the script waits in real time: GKE's minutes pass in a blink
    flags = [*GKE_FLAGS, "--endpoint", gke_api.url]
    first = provision("gke", "up", *flags, "--max-nodes", "4", "--spot")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"pool": "trials", "state": "RUNNING", "autoscaling": True,
                                        "minNodes": 0, "maxNodes": 4,
                                        "capacity": "spot", "machineTypes": ["e2-standard-4"], "labels": {}}
    assert [m for m, _, _ in gke_api.calls()] == ["GET", "POST", "GET"], "whose the pool is read first"
    gke_api.requests.clear()
    second = provision("gke", "up", *flags, "--max-nodes", "4", "--spot")
    assert second.returncode == 0 and "nothing to change" in second.stderr
    assert [(m, p.rsplit("/", 1)[1]) for m, p, _ in gke_api.requests] == [("GET", "trials"), ("POST", "nodePools"),
                                                                        ("GET", "trials"), ("GET", "trials")]
    status = provision("gke", "status", *flags)
    assert json.loads(status.stdout)["maxNodes"] == 4
    down = provision("gke", "down", *flags)
    assert down.returncode == 0 and json.loads(down.stdout) == {"pool": "trials", "state": "ABSENT"}
    again = provision("gke", "down", *flags)
    assert again.returncode == 0, "an absent pool is already down"
    assert again.stderr == "node pool trials: it is absent: nothing to delete\n", "as its plan says, not \"nothing to change\""


def test_gke_status_and_dry_runs_say_nothing_on_stderr_not_even_the_sdks_notices(gke_api: GkeStub):
    """google-api-core warns, as it is imported, of the Python versions Google will stop
    supporting: ``status`` prints the pool's JSON and nothing on stderr but an error."""
    flags = [*GKE_FLAGS, "--endpoint", gke_api.url]
    absent = provision("gke", "status", *flags, fresh=True)
    assert (absent.returncode, absent.stderr) == (0, "") and json.loads(absent.stdout)["state"] == "ABSENT"
    for command in ("up", "down", "status"):
        dry = provision("gke", command, *flags, "--dry-run", fresh=True)
        assert dry.returncode == 0 and dry.stderr in ("", f"plan: node pool trials: {json.loads(dry.stdout).get('summary')}"
                                                          + ("; at most 3 spot nodes of e2-standard-4 at once\n"
                                                             if command == "up" else "\n")), dry.stderr
    gke_api.speed = 1e6
    provisioned("gke", "up", *flags)
    found = provision("gke", "status", *flags, fresh=True)
    assert (found.returncode, found.stderr) == (0, "") and json.loads(found.stdout)["state"] == "RUNNING"


def test_gke_status_and_down_on_a_cluster_gke_does_not_have_name_the_flags_and_fail(gke_api: GkeStub):
    """A typo in ``--cluster``, or a zone given for a regional cluster, is not an absent pool:
    the pool in the cluster meant stays, and the user is told which flags to fix."""
    gke_api.speed = 1e6
    provisioned("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url)
    for wrong in (["--cluster", "tunign"], ["--location", "europe-west4-a"]):
        for command in ("status", "down", "up"):
            result = provision("gke", command, *replaced(GKE_FLAGS, *wrong), "--endpoint", gke_api.url)
            assert result.returncode == 1 and result.stdout == "", result.stdout
            assert "error: --cluster/--location: GKE has no cluster" in result.stderr, result.stderr
            assert "nothing to change" not in result.stderr
    assert gke_api.pools["trials"]["status"] == "RUNNING"


@pytest.mark.parametrize("location", ["europe-west99", "europe-west5-a", "us-centrall1-b"])
def test_gke_on_a_location_google_cloud_does_not_have_names_the_location_and_fails(gke_api: GkeStub, location: str):
    """GKE answers a location Google Cloud does not have with a 400 of its own, not the 404 of a
    missing cluster: every command exits 1 naming ``--location``, and ``down`` deletes nothing."""
    gke_api.speed = 1e6
    provisioned("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url)
    for command in ("status", "down", "up"):
        result = provision("gke", command, *replaced(GKE_FLAGS, "--location", location), "--endpoint", gke_api.url)
        assert result.returncode == 1 and result.stdout == "", result.stdout
        assert result.stderr == (f"error: --location: Google Cloud has no location {location} (expected a region, "
                                 f"such as europe-west4, or one of its zones): Location \"{location}\" does not "
                                 "exist.\n"), result.stderr
    assert gke_api.pools["trials"]["status"] == "RUNNING"


def test_a_pool_that_cannot_be_adopted_is_refused_naming_the_flag_and_status_only_prints_it(gke_api: GkeStub):
    gke_api.speed = 1e6
    flags = [*GKE_FLAGS, "--endpoint", gke_api.url]
    provisioned("gke", "up", *flags)
    machine = provision("gke", "up", *flags, "--machine-type", "n2-standard-8")
    assert machine.returncode == 1 and machine.stderr.startswith(
        "error: --machine-type: node pool trials exists with machine type e2-standard-4; the flags ask for "
        "n2-standard-8. "), machine.stderr
    for typed in ("--on-demand", "--preemptible"):
        capacity = provision("gke", "up", *flags, typed)
        assert capacity.returncode == 1 and capacity.stderr.startswith(
            f"error: {typed}: node pool trials exists with spot capacity; the flags ask for {typed[2:]}. "), (
            capacity.stderr)
    status = provision("gke", "status", *flags)
    assert status.returncode == 0 and json.loads(status.stdout)["state"] == "RUNNING"
    assert "node pool trials" not in status.stderr, "status changes nothing and says nothing of changes"
    for cloud in ("gke", "eks"):
        helped = " ".join(provision(cloud, "up", "--help").stdout.split())
        assert "--max-nodes INTEGER The autoscaling maximum, at least 1 (the pool scales down to 0 nodes)" in helped


def test_gke_up_reports_a_failed_operation_and_a_refusal(gke_api: GkeStub):
    gke_api.speed = 1e6
    gke_api.fail_next = "Insufficient regional quota to satisfy request: resource \"CPUS\""
    failed = provision("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url)
    assert failed.returncode == 1 and "Insufficient regional quota" in failed.stderr
    gke_api.requests.clear()
    refused = provision("gke", "up", *replaced(GKE_FLAGS, "--pool", "other"), "--machine-type", "e2-standard-3",
                        "--endpoint", gke_api.url)
    assert refused.returncode == 1 and refused.stderr.endswith(
        'error: --machine-type: GKE refused the request: Invalid machine type "e2-standard-3" in zone '
        '"europe-west4-a": GCE_NOT_FOUND\n'), refused.stderr
    assert [m for m, _, _ in gke_api.calls()].count("POST") == 1, "a refusal for good is not asked again"
    assert "trying again" not in refused.stderr


def test_gke_up_whose_operation_is_not_done_when_the_wait_ends_is_an_error(gke_api: GkeStub):
    """The operation still running after ``--timeout``: not "ready", and exit code 1."""
    result = provision("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url, "--timeout", "1")
    assert result.returncode == 1 and "node pool trials: ready" not in result.stderr, result.stderr
    assert re.search(r"error: node pool trials: projects/proj-7/locations/europe-west4/operations/\S+ is still "
                     r"pending after 1 s", result.stderr), result.stderr
    assert json.loads(result.stdout)["state"] == "PROVISIONING", "how the pool stands is still printed"


def started(*args: str) -> subprocess.Popen:
    """The script started as a user starts it, its output read as it comes."""
    return subprocess.Popen([sys.executable, "-m", "infra.provision", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)


def said(run: subprocess.Popen, words: str) -> list[str]:
    """The script's stderr up to the line holding ``words`` (all of it, if it ends first)."""
    lines: list[str] = []
    while line := run.stderr.readline():
        lines.append(line)
        if words in line:
            break
    return lines


def test_gke_up_after_an_interrupted_run_gives_the_pool_the_maximum_asked_now(gke_api: GkeStub):
    """An ``up`` whose wait was cut short left the pool being created; the next ``up``, with
    another ``--max-nodes``, waits for that creation and then raises the maximum to its own."""
    gke_api.seconds.update(UPDATE_CLUSTER=0)
    flags = [*GKE_FLAGS, "--endpoint", gke_api.url]
    interrupted = provision("gke", "up", *flags, "--max-nodes", "4", "--timeout", "0")
    assert interrupted.returncode == 1 and json.loads(interrupted.stdout)["state"] == "PROVISIONING"
    run = started("gke", "up", *flags, "--max-nodes", "8", "--timeout", "60")
    assert said(run, "waiting for")[-1] == "node pool trials: waiting for the create or update GKE has under way on it\n"
    gke_api.advance(600)  # the first run's creation ends
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0 and "node pool trials: ready" in err, err
    assert json.loads(out)["maxNodes"] == 8
    assert gke_api.pools["trials"]["autoscaling"]["totalMaxNodeCount"] == 8


def test_gke_up_while_another_operation_holds_the_cluster_asks_again_until_it_is_done(gke_api: GkeStub):
    """GKE refuses a change while another operation runs on the cluster (400
    FAILED_PRECONDITION, a control-plane upgrade here): ``up`` asks again, after pauses, until
    the upgrade is done."""
    gke_api.seconds.update(CREATE_NODE_POOL=0)
    upgrade = gke_api.update_master(600, busy="operation")
    run = started("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url, "--timeout", "60")
    refused = said(run, "trying again")[-1]
    assert refused == (f"node pool trials: refused for now (GKE: Operation {upgrade} is currently upgrading cluster "
                       "tuning. Please wait and try again once it is done.); trying again in 1 s\n")
    gke_api.advance(600)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0 and "node pool trials: ready" in err, err
    assert json.loads(out)["state"] == "RUNNING"


def test_gke_up_refused_for_now_until_the_timeout_says_so_and_creates_nothing(gke_api: GkeStub):
    gke_api.update_master(600, busy="master")
    result = provision("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url, "--timeout", "2")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.endswith("error: node pool trials: still refused for now when --timeout (2 s) was up: GKE: "
                                  "Master is being updated.\n"), result.stderr
    assert "trying again in 1 s" in result.stderr and gke_api.pools == {}
    pauses = re.findall(r"trying again in (\S+) s", result.stderr)
    assert len(pauses) >= 2 and all(re.fullmatch(r"\d+(\.\d)?", pause) for pause in pauses), \
        "the last pause, cut short by the timeout, is told to a tenth of a second"


def test_gke_up_refused_for_a_quota_used_up_fails_at_once_naming_it(gke_api: GkeStub):
    """A project's resource quota used up lasts until someone raises it: ``up`` says which,
    and asks no more (not until --timeout)."""
    quota = {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
        "subject": "projects/proj-7", "quotaMetric": "compute.googleapis.com/cpus",
        "quotaId": "CPUS-per-project-region", "quotaDimensions": {"region": "europe-west4"}, "quotaValue": "24"}]}
    gke_api.refuse_next = (429, "Insufficient regional quota to satisfy request: resource \"CPUS\"",
                           "RESOURCE_EXHAUSTED", None, [quota])
    result = provision("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url, "--timeout", "5")
    assert result.returncode == 1 and "trying again" not in result.stderr, result.stderr
    assert "it lasts: a quota of the project is used up: compute.googleapis.com/cpus in region europe-west4 " \
           "(limit 24)" in result.stderr
    assert gke_api.pools == {}


@pytest.mark.parametrize("refusal,method", [
    ((429, "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute'"), "POST"),
    ((400, "Cluster is running incompatible operation operation-9.", "FAILED_PRECONDITION"), "DELETE"),
    ((400, "Cluster is currently being created, deleted, updated or repaired and cannot be updated now.",
      "INVALID_ARGUMENT"), "POST"),
])
def test_gke_up_and_down_throttled_or_meeting_another_operation_ask_again(gke_api: GkeStub, refusal: tuple,
                                                                          method: str):
    gke_api.speed = 1e6
    flags = [*GKE_FLAGS, "--endpoint", gke_api.url]
    if method == "DELETE":
        provisioned("gke", "up", *flags)
    gke_api.refuse_next, gke_api.refuse_method = refusal, method
    result = provision("gke", "up" if method == "POST" else "down", *flags)
    assert result.returncode == 0, result.stderr
    assert f"node pool trials: refused for now (GKE: {refusal[1]}); trying again in 1 s" in result.stderr
    assert list(gke_api.pools) == (["trials"] if method == "POST" else [])


def test_gke_pool_its_cloud_could_not_create_says_why_and_how_to_bring_it_back(gke_api: GkeStub):
    gke_api.speed = 1e6
    flags = [*GKE_FLAGS, "--endpoint", gke_api.url]
    reason = 'Insufficient regional quota to satisfy request: resource "CPUS"'
    advice = "node pool trials is ERROR: run `down`, then `up` to create it again"
    gke_api.fail_next = reason
    failed = provision("gke", "up", *flags)
    assert failed.returncode == 1 and failed.stderr.endswith(f"error: node pool trials: {reason}; {advice}\n"), (
        failed.stderr)
    again = provision("gke", "up", *flags)
    assert again.returncode == 1 and again.stderr.endswith(
        f"error: GKE node pool trials is in error: {reason}; {advice}\n"), again.stderr
    status = provision("gke", "status", *flags)
    assert status.returncode == 0 and json.loads(status.stdout)["state"] == "ERROR"
    assert status.stderr.endswith(f"warning: node pool trials is ERROR ({reason}): run `down`, then `up` to create it "
                                  "again\n"), status.stderr
    assert provision("gke", "down", *flags).returncode == 0
    assert provision("gke", "up", *flags).returncode == 0 and gke_api.pools["trials"]["status"] == "RUNNING"


def test_bad_flags_are_named():
    result = provision("eks", "up", *EKS_FLAGS, "--subnets", "s-1", "--node-role", ROLE, "--max-nodes", "0",
                       "--label", "novalue", "--dry-run")
    assert result.returncode == 2 and "--label" in result.stderr and "expected key=value" in result.stderr
    result = provision("eks", "up", *EKS_FLAGS, "--subnets", "s-1", "--node-role", ROLE, "--max-nodes", "0",
                       "--dry-run", env={"KATUNA_MAX_POOL_NODES": "1000"})
    assert result.returncode == 2 and "--max-nodes: expected an integer from 1 to 450: EKS's quota" in result.stderr
    result = provision("gke", "up", *GKE_FLAGS, "--label", "node-role.kubernetes.io/trial=true", "--dry-run")
    assert result.returncode == 2 and ("--label node-role.kubernetes.io/trial: expected a label outside Kubernetes' "
                                       "own namespaces") in result.stderr
    result = provision("eks", "up", *EKS_FLAGS, "--subnets", "s-1", "--node-role", ROLE, "--instance-types", "",
                       "--dry-run")
    assert result.returncode == 2 and "--instance-types: expected at least one instance type" in result.stderr


@pytest.mark.parametrize("timeout", ["nan", "inf", "-1"])
def test_a_timeout_that_is_no_number_of_seconds_is_a_bad_flag(timeout: str):
    """``nan`` and ``inf`` would never end a wait: refused as ``-1`` is, before anything is asked."""
    for cloud, flags in (("gke", GKE_FLAGS), ("eks", EKS_FLAGS)):
        result = provision(cloud, "down", *flags, "--timeout", timeout, "--dry-run")
        assert result.returncode == 2 and result.stdout == "", result.stdout
        assert "Invalid value for '--timeout'" in result.stderr and timeout in result.stderr, result.stderr


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)], ids=["run", "dry-run"])
def test_eks_up_with_empty_subnets_or_node_role_names_the_flags(dry_run):
    result = provision("eks", "up", *EKS_FLAGS, "--subnets", " , ", "--node-role", "", *dry_run)
    assert result.returncode == 2 and result.stdout == ""
    assert ("--subnets: expected at least one subnet id (comma-separated); --node-role: expected the IAM role ARN "
            "of the nodes") in result.stderr
    result = provision("eks", "up", *EKS_FLAGS, "--subnets", "subnet-1", "--node-role", " ", *dry_run)
    assert result.returncode == 2 and "--node-role: expected the IAM role ARN" in result.stderr
    assert "--subnets" not in result.stderr.split("Error:")[-1] and "KATUNA_EKS" not in result.stderr


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)], ids=["run", "dry-run"])
def test_eks_up_with_a_node_role_that_is_no_role_arn_names_the_flag(dry_run):
    """EKS refuses a node role given by name (``Invalid Role Arn``): refused before anything is asked."""
    result = provision("eks", "up", *EKS_FLAGS, "--subnets", "subnet-1", "--node-role", "katuna-nodes", *dry_run)
    assert result.returncode == 2 and result.stdout == ""
    assert ("--node-role: expected the IAM role ARN of the nodes (arn:aws:iam::ACCOUNT_ID:role/NAME), got "
            "'katuna-nodes'") in result.stderr


def eks_cluster(env: dict[str, str], name: str) -> list[str]:
    """An EKS cluster on the moto server ``env`` points at, in a VPC of its own: its subnets."""
    subnets = list(moto_eks.network(aws_client("ec2", env)))
    aws_client("eks", env).create_cluster(name=name, roleArn=ROLE, resourcesVpcConfig={"subnetIds": subnets})
    return subnets


def test_eks_up_of_spot_capacity_in_one_instance_type_is_taken_with_a_warning(moto_server: dict[str, str]):
    """EKS takes a spot group of one type; it cannot scale up while that type has no spot capacity."""
    subnets = eks_cluster(moto_server, "onetype")
    flags = ["eks", "up", "--cluster", "onetype", "--nodegroup", "trials", "--subnets", ",".join(subnets),
             "--node-role", ROLE, "--dry-run"]
    one = provision(*flags, "--instance-types", "m5.xlarge", env=moto_server)
    assert one.returncode == 0 and json.loads(one.stdout)["request"]["instanceTypes"] == ["m5.xlarge"]
    assert one.stderr.startswith("warning: --instance-types: a spot node group of one instance type (m5.xlarge) "
                                 "cannot scale up while that type has no spot capacity in its zones"), one.stderr
    for quiet in (provision(*flags, "--instance-types", "m5.xlarge,m5a.xlarge", env=moto_server),
                  provision(*flags, "--instance-types", "m5.xlarge", "--on-demand", env=moto_server)):
        assert quiet.returncode == 0 and "warning" not in quiet.stderr, quiet.stderr


def test_eks_up_takes_as_many_nodes_as_the_accounts_quota(moto_server: dict[str, str]):
    """``--max-nodes`` above EKS's default quota of 450 is refused naming the setting; told the
    account's raised quota (the flag, or the service's own KATUNA_EKS_NODES_PER_GROUP), it is sent
    (to an operator who lets a pool have that many nodes, KATUNA_MAX_POOL_NODES)."""
    subnets = eks_cluster(moto_server, "quota")
    flags = ["eks", "up", "--cluster", "quota", "--nodegroup", "trials", "--subnets", ",".join(subnets),
             "--node-role", ROLE, "--max-nodes", "600", "--dry-run"]
    refused = provision(*flags, env={**moto_server, "KATUNA_MAX_POOL_NODES": "600"})
    assert refused.returncode == 2 and ("--max-nodes: expected an integer from 1 to 450: EKS's quota of nodes per "
                                        "managed node group") in refused.stderr
    assert "KATUNA_EKS_NODES_PER_GROUP" in refused.stderr
    for sent in (provision(*flags, "--nodes-per-group-quota", "600", env={**moto_server, "KATUNA_MAX_POOL_NODES": "600"}),
                 provision(*flags, env={**moto_server, "KATUNA_EKS_NODES_PER_GROUP": "600",
                                        "KATUNA_MAX_POOL_NODES": "600"})):
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout)["request"]["scalingConfig"] == {"minSize": 0, "maxSize": 600, "desiredSize": 0}
    zero = provision(*flags, env={**moto_server, "KATUNA_EKS_NODES_PER_GROUP": "0"})
    assert zero.returncode == 2 and "KATUNA_EKS_NODES_PER_GROUP" in zero.stderr and "0 is not in the range" in zero.stderr


def test_eks_dry_run_prints_the_exact_request(moto_server: dict[str, str]):
    subnets = eks_cluster(moto_server, "exact")
    flags = ["--cluster", "exact", "--nodegroup", "trials"]
    result = provision("eks", "up", *flags, "--instance-types", "m5.xlarge,m5a.xlarge", "--max-nodes", "8",
                       "--subnets", ",".join(subnets), "--node-role", ROLE, "--spot", "--label", "team=vision",
                       "--dry-run", env=moto_server)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    template = printed["first"]["request"]["LaunchTemplateName"]
    assert re.fullmatch(r"katuna-trials-[0-9a-f]{12}", template)
    assert {key: printed[key] for key in ("call", "request", "first")} == {"call": "create_nodegroup", "request": {
        "clusterName": "exact", "nodegroupName": "trials",
        "scalingConfig": {"minSize": 0, "maxSize": 8, "desiredSize": 0},
        "subnets": subnets, "instanceTypes": ["m5.xlarge", "m5a.xlarge"],
        "amiType": "AL2023_x86_64_STANDARD", "capacityType": "SPOT", "nodeRole": ROLE,
        "labels": {"team": "vision", "katuna.dev/pool": "trials"},
        "taints": [{"key": "katuna.dev/trial", "value": "true", "effect": "NO_SCHEDULE"}],
        "tags": {"app.kubernetes.io/managed-by": "katuna", "katuna.dev/pool": "trials",
                 "katuna-made-by": "infra-provision"},
        "launchTemplate": {"name": template, "version": "1"},
    }, "first": {"call": "create_launch_template", "request": {
        "LaunchTemplateName": template,
        "LaunchTemplateData": {"MetadataOptions": {"HttpEndpoint": "enabled", "HttpTokens": "required",
                                                   "HttpPutResponseHopLimit": 1}},
        "TagSpecifications": [{"ResourceType": "launch-template", "Tags": [
            {"Key": "app.kubernetes.io/managed-by", "Value": "katuna"}, {"Key": "katuna.dev/cluster", "Value": "exact"},
            {"Key": "katuna.dev/pool", "Value": "trials"}]}],
    }}}
    # No clientRequestToken: each run is a change of its own (up, down, up with the same flags
    # included), so botocore gives each call a fresh one.
    gpus = provision("eks", "up", *flags, "--instance-types", "g5.xlarge,g4dn.xlarge", "--subnets", subnets[0],
                     "--node-role", ROLE, "--dry-run", env=moto_server)
    assert json.loads(gpus.stdout)["request"]["amiType"] == "AL2023_x86_64_NVIDIA", "NVIDIA's drivers for GPUs"
    mixed = provision("eks", "up", *flags, "--instance-types", "g5.xlarge,m5.xlarge", "--subnets", subnets[0],
                      "--node-role", ROLE, "--dry-run")
    assert mixed.returncode == 2 and "--instance-types: expected instance types that boot the same EKS AMI" in (
        mixed.stderr)
    assert aws_client("eks", moto_server).list_nodegroups(clusterName="exact")["nodegroups"] == []


@contextmanager
def served(speed: str, recording: Path | None = None, *, deny_template_deletes: bool = False) -> Iterator[dict[str, str]]:
    """moto's server, taught EKS's DescribeUpdate and its node groups' states (tests/moto_eks.py),
    at ``speed`` stand-in seconds per second, recording the requests it is sent into
    ``recording`` once told to (moto's recorder), refusing every launch template delete where
    ``deny_template_deletes``: the environment that reaches it."""
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "moto_eks.py"), "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "MOTO_EKS_SPEED": speed,
                                   **({"MOTO_RECORDER_FILEPATH": str(recording)} if recording else {}),
                                   **({"MOTO_DENY_TEMPLATE_DELETES": "1"} if deny_template_deletes else {})})
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}
    deadline = time.monotonic() + START_WAIT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and server.poll() is None, "moto server did not start"
            time.sleep(0.1)
    try:
        moto_eks_iam.node_role(aws_client("iam", env))
        yield env
    finally:
        stopped(server)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[dict[str, str]]:
    """moto's server on which EKS's minutes of creating, updating and deleting pass in a blink."""
    with served("1000000") as env:
        yield env


@pytest.fixture(scope="module")
def still_moto_server() -> Iterator[dict[str, str]]:
    """moto's server on which no time passes: a node group stays creating, updating or deleting."""
    with served("0") as env:
        yield env


def test_eks_up_twice_status_and_down_against_moto_server(moto_server: dict[str, str]):
    client = boto3.client("eks", endpoint_url=moto_server["AWS_ENDPOINT_URL"], region_name="eu-west-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    subnets = moto_eks.network(aws_client("ec2", moto_server))
    client.create_cluster(name="tuning", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(subnets)})
    up = ["eks", "up", *EKS_FLAGS, "--max-nodes", "5", "--subnets", ",".join(subnets), "--node-role", ROLE]
    first = provision(*up, env=moto_server)
    assert first.returncode == 0 and "node pool trials: active" in first.stderr, first.stderr
    assert json.loads(first.stdout) == {"pool": "trials", "state": "ACTIVE", "autoscaling": True,
                                        "minNodes": 0, "maxNodes": 5,
                                        "capacity": "spot", "machineTypes": ["m5.xlarge", "m5a.xlarge", "m6i.xlarge"],
                                        "labels": {}}
    before = client.describe_nodegroup(clusterName="tuning", nodegroupName="trials")["nodegroup"]
    autoscaling = boto3.client("autoscaling", endpoint_url=moto_server["AWS_ENDPOINT_URL"], region_name="eu-west-1",
                               aws_access_key_id="testing", aws_secret_access_key="testing")
    [asg] = autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=[before["resources"]["autoScalingGroups"][0]["name"]])["AutoScalingGroups"]
    assert {t["Key"] for t in asg["Tags"]} >= {"k8s.io/cluster-autoscaler/node-template/taint/katuna.dev/trial"}, (
        "tagged for scale-up from zero")
    ec2 = aws_client("ec2", moto_server)
    [version] = ec2.describe_launch_template_versions(LaunchTemplateName=before["launchTemplate"]["name"],
                                                      Versions=["1"])["LaunchTemplateVersions"]
    assert version["LaunchTemplateData"]["MetadataOptions"] == {
        "HttpEndpoint": "enabled", "HttpTokens": "required", "HttpPutResponseHopLimit": 1}, "no pod reaches IMDS"
    second = provision(*up, env=moto_server)
    assert second.returncode == 0 and "nothing to change" in second.stderr
    after = client.describe_nodegroup(clusterName="tuning", nodegroupName="trials")["nodegroup"]
    assert after["modifiedAt"] == before["modifiedAt"] and after["scalingConfig"] == before["scalingConfig"]
    raised = provision(*[a if a != "5" else "9" for a in up], env=moto_server)
    assert raised.returncode == 0 and json.loads(raised.stdout)["maxNodes"] == 9, raised.stderr
    assert re.search(r"waiting for update:trials:[0-9a-f-]{36}\n.*: active", raised.stderr), "its Update, done"
    status = provision("eks", "status", *EKS_FLAGS, env=moto_server)
    assert json.loads(status.stdout)["state"] == "ACTIVE"
    down = provision("eks", "down", *EKS_FLAGS, env=moto_server)
    assert down.returncode == 0 and json.loads(down.stdout) == {"pool": "trials", "state": "ABSENT"}
    assert client.list_nodegroups(clusterName="tuning")["nodegroups"] == []
    assert before["launchTemplate"]["name"] not in [t["LaunchTemplateName"] for t in ec2.describe_launch_templates(
        )["LaunchTemplates"]], "its launch template goes with it"


def test_eks_up_again_on_a_group_missing_an_autoscaler_tag_writes_it_and_says_so(moto_server: dict[str, str]):
    """A node-template tag taken off the group's Auto Scaling group (by hand, or a run that
    ended before the group was active) is written again by the next ``up``, which tells so
    rather than "nothing to change"."""
    ec2, eks, autoscaling = (aws_client(service, moto_server) for service in ("ec2", "eks", "autoscaling"))
    subnets = moto_eks.network(ec2)
    eks.create_cluster(name="retagged", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(subnets)})
    up = ["eks", "up", "--cluster", "retagged", "--nodegroup", "trials", "--subnets", ",".join(subnets),
          "--node-role", ROLE]
    provisioned(*up, env=moto_server)
    group = eks.describe_nodegroup(clusterName="retagged", nodegroupName="trials")["nodegroup"]
    asg = group["resources"]["autoScalingGroups"][0]["name"]
    taint = "k8s.io/cluster-autoscaler/node-template/taint/katuna.dev/trial"
    autoscaling.delete_tags(Tags=[{"ResourceId": asg, "ResourceType": "auto-scaling-group", "Key": taint}])
    again = provision(*up, env=moto_server)
    assert again.returncode == 0, again.stderr
    assert "nothing to change" not in again.stderr
    assert f"node pool trials: wrote 1 cluster-autoscaler node-template tag to its Auto Scaling group {asg}" in (
        again.stderr), again.stderr
    [found] = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg])["AutoScalingGroups"]
    assert taint in {t["Key"] for t in found["Tags"]}
    assert "nothing to change" in provision(*up, env=moto_server).stderr, "then there is nothing to change"


def aws_client(service: str, env: dict[str, str], region: str = "eu-west-1"):
    """A boto3 client of the moto server ``env`` points at."""
    return boto3.client(service, endpoint_url=env["AWS_ENDPOINT_URL"], region_name=region,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def test_eks_up_in_subnets_that_cannot_hold_nodes_names_the_flag_and_creates_nothing(moto_server: dict[str, str]):
    """A subnet EC2 does not have, one outside the cluster's VPC, or a public one that gives
    nodes no address: exit 1 naming --subnets, before EKS is asked to create anything."""
    ec2, client = aws_client("ec2", moto_server), aws_client("eks", moto_server)
    ours, elsewhere, public = moto_eks.network(ec2), moto_eks.network(ec2), moto_eks.network(ec2, public=True)
    client.create_cluster(name="subnets", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(ours)})
    client.create_cluster(name="edge", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(public)})
    for cluster, subnets, words in (
            ("subnets", f"{ours[0]},subnet-0bad", "EC2 has no subnet subnet-0bad in this region; expected subnet ids "),
            ("subnets", f"{ours[0]},{elsewhere[0]}", f"subnet {elsewhere[0]} (in vpc-"),
            ("edge", public[0], f"subnet {public[0]} is public (its route table sends traffic to an internet gateway)")):
        result = provision("eks", "up", "--cluster", cluster, "--region", "eu-west-1", "--nodegroup", "trials",
                           "--subnets", subnets, "--node-role", ROLE, env=moto_server)
        assert result.returncode == 1 and result.stderr.startswith(f"error: --subnets: {words}"), result.stderr
        assert "KATUNA_EKS" not in result.stderr
        assert client.list_nodegroups(clusterName=cluster)["nodegroups"] == [], "nothing created"


def test_eks_up_with_a_node_role_eks_refuses_names_the_flag(moto_server: dict[str, str]):
    """A node role IAM does not have: EKS refuses the group, and ``up`` exits 1 naming
    ``--node-role`` with EKS's words, not the service's setting."""
    client = aws_client("eks", moto_server)
    subnets = moto_eks.network(aws_client("ec2", moto_server))
    client.create_cluster(name="roles", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(subnets)})
    result = provision("eks", "up", "--cluster", "roles", "--region", "eu-west-1", "--nodegroup", "trials",
                       "--subnets", ",".join(subnets), "--node-role", "arn:aws:iam::123456789012:role/gone",
                       env=moto_server)
    assert result.returncode == 1 and result.stderr.startswith(
        "error: --node-role: EKS refused the request: InvalidParameterException: The role with name gone cannot be "
        "found."), result.stderr
    assert client.list_nodegroups(clusterName="roles")["nodegroups"] == [], "nothing created"


def test_eks_status_and_down_on_a_cluster_eks_does_not_have_name_the_flag_and_fail(moto_server: dict[str, str]):
    """A typo in ``--cluster`` is not an absent node group: exit 1, naming the flag."""
    for command in ("status", "down"):
        result = provision("eks", command, "--cluster", "tunign", "--nodegroup", "trials", env=moto_server)
        assert result.returncode == 1 and result.stdout == "", result.stdout
        assert result.stderr == ("error: --cluster: EKS has no cluster tunign in region eu-west-1: "
                                 "No cluster found for name: tunign.\n"), result.stderr


def test_eks_without_credentials_or_region_says_what_to_set_and_region_is_a_flag(moto_server: dict[str, str],
                                                                                  tmp_path: Path):
    absent = {"AWS_CONFIG_FILE": str(tmp_path / "absent"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "absent"),
              "AWS_EC2_METADATA_DISABLED": "true"}
    unset = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
             "AWS_DEFAULT_REGION", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
             "AWS_CONTAINER_CREDENTIALS_FULL_URI")
    no_region = provision("eks", "status", *EKS_FLAGS, env={**moto_server, **absent}, unset=unset, fresh=True)
    assert no_region.returncode == 1 and no_region.stderr == (
        "error: --region: no AWS region is set (nor AWS_REGION, AWS_DEFAULT_REGION, or the AWS profile's region)\n")
    no_credentials = provision("eks", "status", *EKS_FLAGS, "--region", "eu-west-1", env={**moto_server, **absent},
                               unset=unset, fresh=True)
    assert no_credentials.returncode == 1 and no_credentials.stderr.startswith(
        "error: no AWS credentials: give the service's Kubernetes service account katuna an IAM role"), (
        no_credentials.stderr)
    assert "unreachable" not in no_credentials.stderr
    client = boto3.client("eks", endpoint_url=moto_server["AWS_ENDPOINT_URL"], region_name="us-east-2",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    ohio = moto_eks.network(aws_client("ec2", moto_server, "us-east-2"))
    client.create_cluster(name="ohio", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(ohio)})
    found = provision("eks", "status", "--cluster", "ohio", "--region", "us-east-2", "--nodegroup", "trials",
                      env=moto_server, fresh=True)
    assert found.returncode == 0 and json.loads(found.stdout) == {"pool": "trials", "state": "ABSENT"}, found.stderr
    assert found.stderr == "", "status says nothing of changes"


@pytest.mark.parametrize(("profile", "words"), [
    ("sso_start_url = https://example.awsapps.com/start\nsso_region = eu-west-1\nsso_account_id = 123456789012\n"
     "sso_role_name = Admin", "Error loading SSO Token"),
    ("credential_process = /bin/false", "Error when retrieving credentials from custom-process"),
])
def test_eks_with_credentials_that_cannot_be_had_says_so_at_once_not_unreachable(moto_server: dict[str, str],
                                                                                tmp_path: Path, profile: str,
                                                                                words: str):
    """An SSO session never started or expired, or a profile's credential_process failing, waits
    for someone to log in: ``down`` exits 1 at once saying what to do, not asked again as an
    unreachable EKS until ``--timeout``."""
    config = tmp_path / "config"
    config.write_text(f"[profile lab]\nregion = eu-west-1\n{profile}\n")
    env = {**moto_server, "AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "absent"),
           "AWS_PROFILE": "lab", "HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true"}
    result = provision("eks", "down", *EKS_FLAGS, "--timeout", "30", env=env,
                       unset=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"), fresh=True)
    assert result.returncode == 1 and result.stdout == "", result.stdout
    assert result.stderr.startswith(f"error: the AWS credentials could not be used: {words}"), result.stderr
    assert "aws sso login" in result.stderr and "refused for now" not in result.stderr, result.stderr
    assert "unreachable" not in result.stderr and "cannot reach" not in result.stderr, result.stderr


def test_an_aws_endpoint_urls_user_and_password_are_masked_in_retry_lines_and_errors():
    """botocore's ``Could not connect to the endpoint URL`` quotes ``AWS_ENDPOINT_URL`` whole: the
    user and password in it were printed in each retry line of ``up --dry-run`` and in its error."""
    env = {"AWS_ENDPOINT_URL": f"http://alice:s3cret@127.0.0.1:{free_port()}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true"}
    result = provision("eks", "up", *EKS_FLAGS, "--region", "eu-west-1", "--subnets", "subnet-1", "--node-role", ROLE,
                       "--dry-run", "--timeout", "2", env=env)
    assert result.returncode == 1, result.stderr
    assert "trying again in" in result.stderr and "Could not connect to the endpoint URL" in result.stderr
    assert "s3cret" not in result.stderr and "alice" not in result.stderr, result.stderr
    assert '"http://***@127.0.0.1:' in result.stderr.splitlines()[-1], result.stderr


def test_eks_up_while_the_cluster_updates_asks_again_until_it_is_active(moto_server: dict[str, str]):
    """EKS refuses node group changes while the cluster is UPDATING (an update of its
    configuration): ``up`` asks again until the update is done, within ``--timeout``."""
    client = aws_client("eks", moto_server)
    subnets = moto_eks.network(aws_client("ec2", moto_server))
    client.create_cluster(name="busy", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(subnets)})
    client.update_cluster_config(name="busy", logging={"clusterLogging": [{"types": ["api"], "enabled": True}]})
    up = ["eks", "up", "--cluster", "busy", "--nodegroup", "trials", "--subnets", ",".join(subnets), "--node-role", ROLE]
    short = provision(*up, "--timeout", "1", env=moto_server)
    assert short.returncode == 1 and short.stderr.endswith(
        "error: node pool trials: still refused for now when --timeout (1 s) was up: EKS: InvalidRequestException: "
        "Cluster 'busy' is not in ACTIVE status\n"), short.stderr
    done = provision(*up, env=moto_server)
    assert done.returncode == 0 and json.loads(done.stdout)["state"] == "ACTIVE", done.stderr


def test_eks_group_its_cloud_could_not_create_says_why_and_how_to_bring_it_back(moto_server: dict[str, str]):
    """A group created in public subnets that give nodes no address fails to create (EKS's
    health issue): ``up`` says so, and that ``down`` then ``up`` creates it again."""
    client = aws_client("eks", moto_server)
    public = moto_eks.network(aws_client("ec2", moto_server), public=True)
    client.create_cluster(name="edge2", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(public)})
    client.create_nodegroup(clusterName="edge2", nodegroupName="trials", subnets=list(public), nodeRole=ROLE,
                            taints=[{"key": "katuna.dev/trial", "value": "true", "effect": "NO_SCHEDULE"}])
    flags = ["--cluster", "edge2", "--nodegroup", "trials"]
    failed = provision("eks", "up", *flags, "--subnets", ",".join(public), "--node-role", ROLE, env=moto_server)
    assert failed.returncode == 1, failed.stderr
    assert failed.stderr.startswith("error: --subnets: EKS node group trials failed to create: "
                                    "Ec2SubnetInvalidConfiguration: ")
    assert failed.stderr.endswith("; node pool trials is CREATE_FAILED: run `down --any-katuna-pool` (`up` did not "
                                  "make it, so `down` alone refuses it), then `up` to create it again\n"), failed.stderr
    status = provision("eks", "status", *flags, env=moto_server)
    assert json.loads(status.stdout)["state"] == "CREATE_FAILED"
    assert "warning: node pool trials is CREATE_FAILED (Ec2SubnetInvalidConfiguration: " in status.stderr
    assert "run `down --any-katuna-pool`" in status.stderr, status.stderr
    refused = provision("eks", "down", *flags, env=moto_server)
    assert refused.returncode == 1 and "give --any-katuna-pool to delete this one" in refused.stderr
    assert "run `down`, then `up`" not in refused.stderr, "no advice that `down` refuses"
    down = provision("eks", "down", *flags, "--any-katuna-pool", env=moto_server)
    assert down.returncode == 0 and json.loads(down.stdout)["state"] == "ABSENT", down.stderr


def test_eks_up_of_instance_types_ec2_does_not_have_names_the_flag(moto_server: dict[str, str]):
    client = aws_client("eks", moto_server)
    subnets = moto_eks.network(aws_client("ec2", moto_server))
    client.create_cluster(name="typo", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(subnets)})
    result = provision("eks", "up", "--cluster", "typo", "--nodegroup", "trials", "--subnets", ",".join(subnets),
                       "--node-role", ROLE, "--instance-types", "m5.xlarge,m5.xlargee", env=moto_server)
    assert result.returncode == 1 and result.stderr.endswith(
        "error: --instance-types: EC2 offers no instance type m5.xlargee in any availability zone of this region (a "
        "misspelt name, or a type this region does not have): expected instance types `aws ec2 "
        "describe-instance-type-offerings --location-type availability-zone` lists here\n"), result.stderr
    assert client.list_nodegroups(clusterName="typo")["nodegroups"] == []


@pytest.fixture
def refusing_endpoint() -> Iterator[str]:
    """A loopback URL whose port is bound but not listening: a connection to it is refused at
    once, as to a region's endpoint that no one answers, with no name to look up, so no test
    depends on the network or on what its DNS answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("region,words", [
    ("eu-west-9", 'Could not connect to the endpoint URL: "{endpoint}/clusters/tuning/node-groups/trials"'),
])
def test_eks_in_a_region_aws_does_not_have_names_the_flag_and_fails_at_once(region: str, words: str,
                                                                           refusing_endpoint: str):
    """As GKE's answer to a location it does not have names the flags, a region AWS does not
    have is a refusal naming ``--region``, not an outage to wait out: botocore knows it nowhere,
    and its endpoint (here one that refuses connections) does not answer. (A name botocore
    cannot take for a region is a bad flag: tests/test_provision_flags.py.)"""
    result = provision("eks", "down", "--cluster", "tuning", "--nodegroup", "trials", "--region", region,
                       env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_ENDPOINT_URL_EKS": refusing_endpoint},
                       unset=("AWS_ENDPOINT_URL",))
    assert result.returncode == 1 and result.stdout == "", result.stdout
    assert result.stderr.startswith(f"error: --region: EKS has no region {region} (expected an AWS region, such as "
                                    "us-east-1): "), result.stderr
    assert words.format(endpoint=refusing_endpoint) in result.stderr and "trying again" not in result.stderr


def test_eks_up_and_down_while_eks_still_creates_the_group_end_at_the_timeout_saying_so(
        still_moto_server: dict[str, str]):
    """EKS creates a node group for minutes and refuses to delete it meanwhile: ``up`` past its
    ``--timeout`` says the creation is still pending, never "active", and ``down`` that EKS
    still refuses; ``status`` prints it creating."""
    subnets = moto_eks.network(aws_client("ec2", still_moto_server))
    aws_client("eks", still_moto_server).create_cluster(name="slow", roleArn=ROLE,
                                                        resourcesVpcConfig={"subnetIds": list(subnets)})
    flags = ["--cluster", "slow", "--nodegroup", "trials"]
    up = provision("eks", "up", *flags, "--subnets", ",".join(subnets), "--node-role", ROLE, "--timeout", "1",
                   env=still_moto_server)
    assert up.returncode == 1 and up.stderr.endswith("error: node pool trials: create:trials is still pending after "
                                                     "1 s; it goes on in the cloud; `status` shows how the pool "
                                                     "stands, and `up` again waits for it\n"), up.stderr
    assert json.loads(up.stdout)["state"] == "CREATING" and "active" not in up.stderr
    status = provision("eks", "status", *flags, env=still_moto_server)
    assert (status.returncode, status.stderr, json.loads(status.stdout)["state"]) == (0, "", "CREATING")
    down = provision("eks", "down", *flags, "--timeout", "2", env=still_moto_server)
    assert down.returncode == 1 and down.stdout == "" and "trying again in 1 s" in down.stderr
    assert down.stderr.endswith("error: node pool trials: still refused for now when --timeout (2 s) was up: EKS: "
                                "ResourceInUseException: Nodegroup trials cannot be deleted as it is currently "
                                "CREATING\n"), down.stderr


@pytest.mark.parametrize("flag,value", [("--nodegroup", ""), ("--nodegroup", "a/b"), ("--nodegroup", "trials?x"),
                                        ("--cluster", ""), ("--cluster", "tuning/x")])
@pytest.mark.parametrize("command", ["up", "down", "status"])
def test_eks_flags_that_cannot_name_a_cluster_or_group_are_refused_before_any_call(command: str, flag: str,
                                                                                   value: str):
    """They reached EKS as part of the request's path, whose answer named no flag."""
    extra = ["--subnets", "subnet-1", "--node-role", ROLE] if command == "up" else []
    result = provision("eks", command, *replaced(EKS_FLAGS, flag, value), *extra, "--dry-run")
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert f"Invalid value for '{flag}': expected an EKS " in result.stderr, result.stderr


def test_eks_up_with_another_node_role_or_subnets_than_the_groups_says_it_cannot_change_in_place(
        moto_server: dict[str, str]):
    """EKS cannot change either of an existing group: ``up`` said "nothing to change", exit 0."""
    ec2, eks = aws_client("ec2", moto_server), aws_client("eks", moto_server)
    subnets = moto_eks.network(ec2, 3)
    eks.create_cluster(name="placed", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(subnets)})
    up = ["eks", "up", "--cluster", "placed", "--nodegroup", "trials"]
    provisioned(*up, "--subnets", ",".join(subnets[:2]), "--node-role", ROLE, env=moto_server)
    other = "arn:aws:iam::123456789012:role/other-nodes"
    result = provision(*up, "--subnets", ",".join(subnets[:2]), "--node-role", other, env=moto_server)
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr.startswith(f"error: --node-role: node pool trials exists with node role {ROLE}; the flags "
                                    f"ask for {other}. A node pool's node role cannot be changed in place: "), (
        result.stderr)
    result = provision(*up, "--subnets", ",".join(subnets), "--node-role", ROLE, env=moto_server)
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr.startswith(f"error: --subnets: node pool trials exists with subnets "
                                    f"{', '.join(sorted(subnets[:2]))}; the flags ask for "
                                    f"{', '.join(sorted(subnets))}. A node pool's subnets cannot be changed in "
                                    "place: "), result.stderr
    same = provision(*up, "--subnets", f"{subnets[1]},{subnets[0]}", "--node-role", ROLE, env=moto_server)
    assert same.returncode == 0 and same.stderr == "node pool trials: nothing to change\n", same.stderr


def test_eks_up_with_instance_types_the_group_lacks_says_they_cannot_be_added_in_place(moto_server: dict[str, str]):
    """A group of one spot type, run again with more (as the warning of one advises): ``up`` said
    "nothing to change", exit 0, and the group kept its one type; the types the flags give, in
    any order, are the group's."""
    ec2, eks = aws_client("ec2", moto_server), aws_client("eks", moto_server)
    subnets = moto_eks.network(ec2)
    eks.create_cluster(name="widen", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(subnets)})
    up = ["eks", "up", "--cluster", "widen", "--nodegroup", "trials", "--subnets", ",".join(subnets),
          "--node-role", ROLE]
    provisioned(*up, "--instance-types", "m5.xlarge", env=moto_server)
    for dry_run in ([], ["--dry-run"]):
        wider = provision(*up, "--instance-types", "m5.xlarge,m5a.xlarge", *dry_run, env=moto_server)
        assert wider.returncode == 1, wider.stderr
        assert ("error: --instance-types: node pool trials exists with instance types m5.xlarge; the flags ask for "
                "m5.xlarge, m5a.xlarge. A node pool's instance types cannot be changed in place: ") in wider.stderr
    assert eks.describe_nodegroup(clusterName="widen", nodegroupName="trials")["nodegroup"]["instanceTypes"] == [
        "m5.xlarge"]
    provisioned(*replaced(up, "--nodegroup", "wide"), "--instance-types", "m5.xlarge,m5a.xlarge", env=moto_server)
    same = provision(*replaced(up, "--nodegroup", "wide"), "--instance-types", "m5a.xlarge,m5.xlarge",
                     env=moto_server)
    assert (same.returncode, same.stderr) == (0, "node pool wide: nothing to change\n"), same.stderr


def test_eks_up_of_a_group_degraded_for_good_advises_the_scripts_own_down(moto_server: dict[str, str]):
    """A group whose nodes' role IAM no longer has stays DEGRADED: ``up`` advised AWS's
    ``aws eks delete-nodegroup`` rather than the script's own ``down``."""
    iam = aws_client("iam", moto_server)
    role = moto_eks_iam.node_role(iam, "doomed-nodes")
    up = ["eks", "up", "--cluster", "doomed", "--nodegroup", "trials", "--node-role", role, "--subnets",
          ",".join(eks_cluster(moto_server, "doomed"))]
    provisioned(*up, env=moto_server)
    iam.delete_role(RoleName="doomed-nodes")
    result = provision(*up, env=moto_server)
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr.startswith("error: --node-role: EKS node group trials is DEGRADED: IamNodeRoleNotFound: "), (
        result.stderr)
    assert "aws eks" not in result.stderr, result.stderr
    assert result.stderr.endswith("; node pool trials is DEGRADED: EKS does not bring it back by itself: fix what it "
                                  "names, then run `down`, then `up` to create it again\n"), result.stderr
