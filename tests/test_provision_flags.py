"""``python -m infra.provision`` given flags that say two things where it takes one, or a value it
could not use: contradicting capacity flags, a flag given twice, a label key given twice, an
instance type or subnet listed twice, an empty or malformed ``--region`` or ``--endpoint``. Each
is a bad flag (exit 2) naming it and what was expected, dry run or not, and nothing is asked of
the cloud."""

from __future__ import annotations

import json

import pytest
from gke_stub import GkeStub
from test_provision_script import EKS_FLAGS, GKE_FLAGS, ROLE, provision, replaced

pytestmark = pytest.mark.slow

EKS_UP = ["eks", "up", *EKS_FLAGS, "--node-role", ROLE]
DRY_RUN = [(), ("--dry-run",)]


def bad_flag(*args: str) -> str:
    """The last line of what the command says; it must exit 2, print nothing on stdout, and no traceback."""
    result = provision(*args)
    assert (result.returncode, result.stdout) == (2, ""), (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("dry_run", DRY_RUN, ids=["run", "dry-run"])
@pytest.mark.parametrize("flags,words", [
    (("--spot", "--on-demand"), "--spot and --on-demand: give one of them"),
    (("--on-demand", "--preemptible"), "--on-demand and --preemptible: give one of them"),
    (("--preemptible", "--on-demand", "--spot"), "--preemptible, --on-demand and --spot: give one of them"),
    (("--max-nodes", "3", "--max-nodes", "30"), "--max-nodes: given 2 times; expected it once"),
    (("--label", "tier=a", "--label", "tier=b"),
     "Invalid value for '--label': tier given twice (tier=a, tier=b); expected each key once"),
    (("--label", "tier=a", "--label", "tier=a"),
     "Invalid value for '--label': tier given twice (tier=a, tier=a); expected each key once"),
], ids=["spot-on-demand", "on-demand-preemptible", "all-three", "max-nodes", "label", "same-label"])
def test_gke_up_told_two_things_is_a_bad_flag_and_asks_nothing(gke_api: GkeStub, flags: tuple[str, ...],
                                                              words: str, dry_run: tuple[str, ...]):
    """click kept the last capacity flag and the last value of a label key without a word: a
    script's ``--spot`` followed by an ``--on-demand`` made an on-demand pool."""
    assert bad_flag("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url, *flags, *dry_run) == f"Error: {words}"
    assert gke_api.requests == [] and gke_api.pools == {}


@pytest.mark.parametrize("dry_run", DRY_RUN, ids=["run", "dry-run"])
@pytest.mark.parametrize("flags,words", [
    (("--subnets", "subnet-1", "--spot", "--on-demand"), "--spot and --on-demand: give one of them"),
    (("--subnets", "subnet-1", "--label", "a=1", "--label", "a=2"),
     "Invalid value for '--label': a given twice (a=1, a=2); expected each key once"),
    (("--subnets", "subnet-1", "--instance-types", "m5.xlarge,m5a.xlarge,m5.xlarge"),
     "Invalid value for '--instance-types': m5.xlarge given twice; expected each instance type once, got "
     "'m5.xlarge,m5a.xlarge,m5.xlarge'"),
    (("--subnets", "subnet-1, subnet-2,subnet-1"),
     "Invalid value for '--subnets': subnet-1 given twice; expected each subnet id once, got "
     "'subnet-1, subnet-2,subnet-1'"),
    (("--subnets", "subnet-1", "--subnets", "subnet-2"), "--subnets: given 2 times; expected it once"),
    (("--subnets", "subnet-1", "--region", ""), "Invalid value for '--region': expected an AWS region, such as "
                                                "us-east-1, got ''"),
], ids=["capacity", "label", "instance-types", "subnets", "subnets-flag", "empty-region"])
def test_eks_up_told_two_things_or_an_empty_region_is_a_bad_flag(flags: tuple[str, ...], words: str,
                                                                  dry_run: tuple[str, ...]):
    """EKS's API reference gives ``instanceTypes`` and ``subnets`` as plain lists and says nothing
    of one repeating an item: the repeat is the typo of another type or subnet, named here. An
    empty ``--region`` was read by botocore as none given (the environment's region taken, or
    "no AWS region is set", exit 1)."""
    assert bad_flag(*EKS_UP, *flags, *dry_run) == f"Error: {words}"


@pytest.mark.parametrize("command", ["up", "down", "status"])
@pytest.mark.parametrize("region", ["", " ", "eu west", "-eu-west-1"])
def test_eks_region_botocore_cannot_take_is_a_bad_flag(command: str, region: str):
    extra = ["--subnets", "subnet-1", "--node-role", ROLE] if command == "up" else []
    assert bad_flag("eks", command, *EKS_FLAGS, *extra, "--region", region) == (
        f"Error: Invalid value for '--region': expected an AWS region, such as us-east-1, got {region!r}")


@pytest.mark.parametrize("command", ["up", "down", "status"])
@pytest.mark.parametrize("endpoint", ["", " ", "ftp://127.0.0.1:1", "http://", "http://127.0.0.1:99999",
                                      "http://127.0.0.1 :1"])
def test_gke_endpoint_no_client_could_reach_is_a_bad_flag(command: str, endpoint: str):
    """Such an endpoint made a client that reached nothing: each call an outage asked again until
    ``--timeout`` (30 minutes by default), or a credentials error that did not name the flag."""
    assert bad_flag("gke", command, *GKE_FLAGS, "--endpoint", endpoint) == (
        "Error: Invalid value for '--endpoint': expected an API endpoint's URL (http://127.0.0.1:PORT for a local "
        f"stand-in, https://HOST) or HOST[:PORT], got {endpoint!r}")


def test_a_gke_endpoint_refused_is_quoted_without_its_user_and_password():
    assert bad_flag("gke", "status", *GKE_FLAGS, "--endpoint", "http://alice:s3cret@127.0.0.1:99999").endswith(
        "got 'http://***@127.0.0.1:99999'")


@pytest.mark.parametrize("dry_run", DRY_RUN, ids=["run", "dry-run"])
def test_gke_up_machine_type_of_no_compute_engine_shape_is_a_bad_flag_and_asks_nothing(gke_api: GkeStub,
                                                                                     dry_run: tuple[str, ...]):
    """``--machine-type E2-Standard-4``: a plan said it would create the pool, and `up` asked GKE,
    which refused it (exit 1)."""
    assert bad_flag("gke", "up", *GKE_FLAGS, "--endpoint", gke_api.url, "--machine-type", "E2-Standard-4",
                    *dry_run) == ("Error: --machine-type: expected a Compute Engine machine type: lower-case "
                                  "letters, digits and '-', such as e2-standard-4, got 'E2-Standard-4'")
    assert gke_api.pools == {}


@pytest.mark.parametrize("project", ["p", "proj5", "proj-7-", "a" * 31, "7roject", "example.com:proj5"])
def test_gke_project_id_google_cloud_cannot_have_is_a_bad_flag(gke_api: GkeStub, project: str):
    """Google Cloud project ids are 6 to 30 characters, start with a letter and do not end with
    '-': a shorter one was taken and only GKE's own refusal told (exit 1)."""
    assert bad_flag("gke", "status", *replaced(GKE_FLAGS, "--project", project), "--endpoint", gke_api.url) == (
        "Error: Invalid value for '--project': expected a Google Cloud project id: 6 to 30 lower-case letters, "
        f"digits and '-', starting with a letter and not ending with '-', got {project!r}")
    assert gke_api.requests == []


def test_a_gke_endpoints_scheme_is_read_whatever_its_case(gke_api: GkeStub):
    """``HTTP://`` is taken as the flag's check takes it: a plain-HTTP stand-in reached without
    credentials, where it was handed to GKE's client as a host name (``https://HTTP://...``) after
    asking for Application Default Credentials, which a stand-in needs none of."""
    endpoint = "HTTP://" + gke_api.url.removeprefix("http://")
    result = provision("gke", "status", *GKE_FLAGS, "--endpoint", endpoint,
                       env={"GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/adc.json"})
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert json.loads(result.stdout)["state"] == "ABSENT"
