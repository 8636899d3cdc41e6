"""``python -m infra.provision gke``, run as an operator runs it against the loopback GKE API:
what it says when it is interrupted or its time is up, what it refuses to delete, what an ``up``
that cannot change a pool says, and flags that cannot name a cluster."""

from __future__ import annotations

import json
import signal

import pytest
from gke_stub import GkeStub
from test_provision_script import GKE_FLAGS, provision, provisioned, replaced, said, started

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stop,code,word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
                         ids=["ctrl-c", "sigterm"])
@pytest.mark.parametrize("command", ["up", "down"])
def test_gke_stopped_while_it_waits_exits_130_or_143_saying_what_goes_on_in_the_cloud(
        gke_api: GkeStub, command: str, stop: signal.Signals, code: int, word: str):
    """Ctrl-C or SIGTERM (a CI job cancelled, ``timeout``) during the wait: no traceback, no
    "Aborted!", exit code 130 or 143, and the operation left running named, with how to check
    it. SIGTERM ended the command silently."""
    flags = [*GKE_FLAGS, "--endpoint", gke_api.url]
    if command == "down":
        gke_api.speed = 1e6
        provisioned("gke", "up", *flags)
        gke_api.speed = 0.0
    run = started("gke", command, *flags)
    waiting = said(run, "waiting for")[-1]
    operation = waiting.rsplit(" ", 1)[1].strip()
    run.send_signal(stop)
    out, err = run.communicate(timeout=60)
    assert (run.returncode, out) == (code, ""), err
    assert err == (f"\n{word}: node pool trials: {operation} goes on in the cloud; `status` shows how the pool "
                   f"stands, and `{command}` again waits for it\n"), err
    assert "Traceback" not in err and "Aborted" not in err


def test_gke_interrupted_before_the_cloud_took_the_change_says_so(gke_api: GkeStub):
    gke_api.update_master(600, busy="master")
    run = started("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url)
    said(run, "trying again")
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert (run.returncode, out) == (130, ""), err
    assert err.endswith("\ninterrupted: node pool trials: no change of it was under way, unless the cloud took one as "
                        "the command was stopped; `status` shows how the pool stands\n"), err
    assert gke_api.pools == {}


def test_gke_up_whose_time_is_up_says_the_operation_goes_on_and_how_to_check_it(gke_api: GkeStub):
    result = provision("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url, "--timeout", "0")
    assert result.returncode == 1 and json.loads(result.stdout)["state"] == "PROVISIONING"
    assert result.stderr.endswith(" is still pending after 0 s; it goes on in the cloud; `status` shows how the pool "
                                  "stands, and `up` again waits for it\n"), result.stderr


def test_gke_down_refuses_a_pool_katuna_did_not_make_and_deletes_nothing(gke_api: GkeStub):
    """A cluster's ``default-pool`` (no trial taint, other workloads on it) named by mistake."""
    gke_api.pools["default-pool"] = {"name": "default-pool", "config": {"machineType": "e2-medium"},
                                     "initialNodeCount": 3, "locations": ["europe-west4-a"], "status": "RUNNING"}
    result = provision("gke", "down", *replaced(GKE_FLAGS, "--pool", "default-pool"), "--endpoint", gke_api.url)
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr == ("error: --pool: node pool default-pool is not katuna's: its nodes lack the taint "
                             "katuna.dev/trial=true:NoSchedule, so other workloads may run on it; `down` deletes only "
                             "katuna's pools (delete it with the cloud's own tools if you mean to)\n")
    assert gke_api.pools["default-pool"]["status"] == "RUNNING" and gke_api.calls("DELETE") == []


def test_gke_status_of_a_pool_without_autoscaling_says_so_and_gives_no_limits(gke_api: GkeStub):
    """A fixed-size pool of 3 nodes someone made printed ``"minNodes": 0, "maxNodes": 0``: a pool
    of 0 nodes, which it is not. It has no autoscaling limits, and says so."""
    gke_api.pools["fixed"] = {"name": "fixed", "config": {"machineType": "e2-medium"},
                              "initialNodeCount": 3, "locations": ["europe-west4-a"], "status": "RUNNING"}
    result = provision("gke", "status", *replaced(GKE_FLAGS, "--pool", "fixed"), "--endpoint", gke_api.url)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert json.loads(result.stdout) == {"pool": "fixed", "state": "RUNNING", "autoscaling": False, "minNodes": None,
                                         "maxNodes": None, "capacity": "on-demand", "machineTypes": ["e2-medium"],
                                         "labels": {}}


def test_gke_up_with_a_lower_max_nodes_says_the_maximum_stays(gke_api: GkeStub):
    gke_api.speed = 1e6
    flags = [*GKE_FLAGS, "--endpoint", gke_api.url]
    provisioned("gke", "up", *flags, "--max-nodes", "6")
    lower = provision("gke", "up", *flags, "--max-nodes", "2")
    assert lower.returncode == 0 and json.loads(lower.stdout)["maxNodes"] == 6
    assert lower.stderr == ("node pool trials: nothing to change; its maximum stays 6 nodes, above --max-nodes 2: `up` "
                            "raises a pool's maximum, never lowers it\n"), lower.stderr
    same = provision("gke", "up", *flags, "--max-nodes", "6")
    assert same.stderr == "node pool trials: nothing to change\n", same.stderr


def test_gke_up_with_katunas_own_pool_label_is_a_bad_flag_so_a_run_again_is_no_refusal(gke_api: GkeStub):
    """``--label katuna.dev/pool=x`` was taken and replaced by the pool's name: the pool was
    made, and the same command run again was refused, the pool found without the label asked."""
    gke_api.speed = 1e6
    flags = [*GKE_FLAGS, "--endpoint", gke_api.url]
    for dry_run in ((), ("--dry-run",)):
        result = provision("gke", "up", *flags, "--label", "katuna.dev/pool=x", *dry_run)
        assert (result.returncode, result.stdout) == (2, ""), result.stderr
        assert ("--label katuna.dev/pool: expected a label other than katuna.dev/pool: katuna gives each node the "
                "pool's name there") in result.stderr, result.stderr
    assert gke_api.requests == []
    provisioned("gke", "up", *flags, "--label", "katuna.dev/team=vision")
    again = provision("gke", "up", *flags, "--label", "katuna.dev/team=vision")
    assert (again.returncode, again.stderr) == (0, "node pool trials: nothing to change\n"), again.stderr


@pytest.mark.parametrize("flag,value,what", [
    ("--machine-type", "n2-standard-8", "machine type"),
    ("--on-demand", None, "capacity (spot, preemptible or on-demand)"),
])
def test_gke_up_of_settings_a_pool_cannot_change_in_place_says_so_and_what_to_do(gke_api: GkeStub, flag: str,
                                                                                  value: str | None, what: str):
    gke_api.speed = 1e6
    flags = [*GKE_FLAGS, "--endpoint", gke_api.url]
    provisioned("gke", "up", *flags)
    result = provision("gke", "up", *flags, flag, *([value] if value else []))
    assert result.returncode == 1 and result.stderr.startswith(f"error: {flag}: node pool trials exists with "), (
        result.stderr)
    assert "the study" not in result.stderr and "the flags ask for" in result.stderr
    assert result.stderr.endswith(f". A node pool's {what} cannot be changed in place: give the flags that match the "
                                  "pool, or run `down` (`down --any-katuna-pool` for a pool `up` did not make), then "
                                  "`up` to create it again with these (its nodes, and any trials on them, go with it)\n"), (
        result.stderr)


def test_gke_up_of_a_pool_found_being_created_names_what_it_waits_for_in_the_operators_words(gke_api: GkeStub):
    """A pool an earlier ``up`` left being created is waited for as GKE's change under way on it,
    not as katuna's own token for it (``pool:trials``), which no GKE tool knows."""
    flags = [*GKE_FLAGS, "--endpoint", gke_api.url, "--timeout", "0"]
    assert provision("gke", "up", *flags).returncode == 1
    again = provision("gke", "up", *flags)
    assert again.returncode == 1 and json.loads(again.stdout)["state"] == "PROVISIONING", again.stderr
    assert "pool:" not in again.stderr, again.stderr
    assert again.stderr == ("node pool trials: waiting for the create or update GKE has under way on it\n"
                            "error: node pool trials: the create or update GKE has under way on it is still pending "
                            "after 0 s; it goes on in the cloud; `status` shows how the pool stands, and `up` again "
                            "waits for it\n"), again.stderr



@pytest.mark.parametrize("flag,value", [("--project", ""), ("--project", "My_Project"), ("--location", ""),
                                        ("--location", "Europe West4"), ("--cluster", ""), ("--cluster", "Tuning")])
@pytest.mark.parametrize("command", ["up", "down", "status"])
def test_gke_flags_that_cannot_name_a_cluster_are_refused_before_any_call(gke_api: GkeStub, command: str, flag: str,
                                                                          value: str):
    """An empty ``--project`` went to the SDK, which raised a ``ValueError`` traceback."""
    result = provision("gke", command, *replaced(GKE_FLAGS, flag, value), "--endpoint", gke_api.url)
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert f"Invalid value for '{flag}': expected " in result.stderr and "Traceback" not in result.stderr
    assert gke_api.requests == []


def test_gke_up_with_another_node_service_account_than_the_pools_says_it_cannot_change_in_place(gke_api: GkeStub):
    """An existing pool whose nodes run as another account was "nothing to change", exit 0."""
    gke_api.speed = 1e6
    flags = [*GKE_FLAGS, "--endpoint", gke_api.url]
    account = "katuna-nodes@proj-7.iam.gserviceaccount.com"
    provisioned("gke", "up", *flags)
    result = provision("gke", "up", *flags, "--node-service-account", account)
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr.startswith(f"error: --node-service-account: node pool trials exists with its nodes running "
                                    f"as default; the flags ask for {account}. A node pool's service account cannot "
                                    "be changed in place: "), result.stderr
    assert gke_api.calls("POST") == [gke_api.calls("POST")[0]], "nothing asked of the pool"
    made = provision("gke", "up", *replaced(flags, "--pool", "own"), "--node-service-account", account)
    assert made.returncode == 0 and gke_api.clusters[gke_api.main]["own"]["config"]["serviceAccount"] == account
    again = provision("gke", "up", *replaced(flags, "--pool", "own"), "--node-service-account", account)
    assert again.returncode == 0 and again.stderr == "node pool own: nothing to change\n", again.stderr


def test_gke_up_with_a_node_service_account_the_project_lacks_names_the_flag(gke_api: GkeStub):
    missing = "ghost@proj-7.iam.gserviceaccount.com"
    result = provision("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url, "--node-service-account", missing)
    assert (result.returncode, result.stderr) == (1, f'error: --node-service-account: GKE refused the request: Service '
                                                     f'account "{missing}" does not exist.\n'), result.stderr
    assert gke_api.pools == {}


@pytest.mark.parametrize("value", ["katuna-nodes", "katuna-nodes@proj-7.iam.example.com", ""])
@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)])
def test_gke_up_with_a_node_service_account_that_is_no_email_is_a_bad_flag(gke_api: GkeStub, value: str,
                                                                          dry_run: tuple[str, ...]):
    """A name that is no service account's email went to GKE, whose refusal named no flag (exit
    1), and a dry run planned the pool's create (exit 0)."""
    result = provision("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url, "--node-service-account", value, *dry_run)
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert ("Invalid value for '--node-service-account': expected a Google service account's email "
            f"(NAME@PROJECT_ID.iam.gserviceaccount.com) or default, got {value!r}") in result.stderr, result.stderr
    assert gke_api.requests == []
    taken = provision("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url, "--node-service-account", "default",
                      "--dry-run")
    assert taken.returncode == 0 and json.loads(taken.stdout)["request"]["node_pool"]["config"][
        "service_account"] == "default", taken.stderr


def test_gke_up_whose_operation_cannot_be_read_says_the_pool_is_still_being_made(gke_api: GkeStub):
    """A poll refused for good (no ``container.operations.get``) is not the create refused: GKE
    took it and goes on, and the message said only "GKE refused the request"."""
    denied = ('Required "container.operations.get" permission(s) for '
              '"projects/proj-7/locations/europe-west4/operations/operation-1"')
    gke_api.refused_polls.append((403, f"{denied}."))
    result = provision("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url)
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr.split("\n")[1].startswith(
        "error: node pool trials: projects/proj-7/locations/europe-west4/operations/operation-1 could not be followed: "
        f"GKE refused the request: {denied}; it goes on in the cloud; `status` shows how the pool stands, and `up` "
        "again waits for it; grant the permission it names to the Google identity the script runs as "), result.stderr
    assert gke_api.pools["trials"]["status"] == "PROVISIONING"


@pytest.mark.parametrize("value", ["", "a/b", "trials?x"])
@pytest.mark.parametrize("command", ["up", "down", "status"])
def test_gke_pool_flags_that_cannot_name_a_pool_are_refused_before_any_call(gke_api: GkeStub, command: str,
                                                                             value: str):
    """An empty ``--pool`` or one with a '/' reached the SDK's REST transport, which raised a
    ``ValueError`` traceback; ``trials?x``, sent unescaped in the request's path, named the pool
    ``trials``: ``down`` deleted it."""
    gke_api.pools["trials"] = {"name": "trials", "config": {"machineType": "e2-medium"}, "initialNodeCount": 0,
                               "locations": ["europe-west4-a"], "status": "RUNNING"}
    result = provision("gke", command, *replaced(GKE_FLAGS, "--pool", value), "--endpoint", gke_api.url)
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert "Invalid value for '--pool': expected a GKE node pool name" in result.stderr, result.stderr
    assert gke_api.requests == [] and gke_api.pools["trials"]["status"] == "RUNNING"


def test_gke_up_on_a_pool_with_per_zone_limits_allows_no_more_nodes_than_asked(gke_api: GkeStub):
    """A pool of 1 node per zone in a region's 3 zones, raised to 10: its per-zone maximum went
    to 4, 12 nodes in all, and ``up`` said the maximum "stays 12, above --max-nodes 10"."""
    gke_api.pools["trials"] = {"name": "trials", "locations": [f"europe-west4-{zone}" for zone in "abc"],
                               "status": "RUNNING",
                               "config": {"machineType": "e2-standard-4", "spot": True, "taints": [
                                   {"key": "katuna.dev/trial", "value": "true", "effect": "NO_SCHEDULE"}]},
                               "autoscaling": {"enabled": True, "minNodeCount": 1, "maxNodeCount": 1,
                                               "locationPolicy": "BALANCED"}}
    gke_api.speed = 1e6
    result = provision("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url, "--max-nodes", "10")
    assert (result.returncode, result.stderr.splitlines()[-1]) == (0, "node pool trials: ready"), result.stderr
    assert (json.loads(result.stdout)["minNodes"], json.loads(result.stdout)["maxNodes"]) == (3, 10)
    assert gke_api.pool_bounds("trials")[:2] == (3, 10)
    assert gke_api.pools["trials"]["autoscaling"]["locationPolicy"] in ("BALANCED", 1), "its location policy kept"


def test_gke_up_on_a_pool_that_cannot_be_adopted_speaks_of_the_flags_not_of_a_study(gke_api: GkeStub):
    gke_api.speed = 1e6
    flags = [*GKE_FLAGS, "--endpoint", gke_api.url]
    provisioned("gke", "up", *flags)
    result = provision("gke", "up", *flags, "--label", "team=vision")
    assert (result.returncode, result.stderr) == (1, "error: --label: node pool trials exists, its nodes without the "
                                                     "labels team=vision the flags give them; label the pool so, or "
                                                     "leave them out\n"), result.stderr
    gke_api.pools["default-pool"] = {"name": "default-pool", "config": {"machineType": "e2-standard-4", "spot": True},
                                     "initialNodeCount": 3, "locations": ["europe-west4-a"], "status": "RUNNING"}
    result = provision("gke", "up", *replaced(flags, "--pool", "default-pool"))
    assert result.returncode == 1 and result.stderr.endswith(
        "; taint it, or name another pool, which `up` creates\n"), result.stderr
