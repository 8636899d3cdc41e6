"""An EKS study's node group gets cluster-autoscaler's scale-from-zero tags on its Auto Scaling
group once it is active, from the tick: a PingSource event (``dev.knative.sources.ping``, data
``{}``) posted to ``katuna serve`` in reply mode, and the service's own tick in queue mode.

A real ``katuna serve`` talks to moto's server mode through boto3 (``AWS_ENDPOINT_URL``), held
to the EKS account's quotas the service is configured with (tests/moto_eks.py). That stand-in
makes each node group's Auto Scaling group, as EKS does.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import moto_eks
import moto_eks_iam
import pytest
import yaml
from conftest import study_definition
from http_helpers import Service, Sink, free_port
from kube_stub import KubeStub
from waiting import START_WAIT, eventually, stopped

from functions.adapters import cloudevents_http
from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import Event, study_created

pytestmark = pytest.mark.slow

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/katuna-nodes"
TEMPLATE = "k8s.io/cluster-autoscaler/node-template"
BLINK = "1000000"
"""Stand-in seconds per second of moto's server: EKS's minutes of node group states pass in a blink."""
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}


@contextmanager
def moto_server(**quotas: str) -> Iterator[dict[str, str]]:
    """moto's server mode, held to the EKS quotas ``quotas`` set (``KATUNA_EKS_*``), with an EKS
    cluster in private subnets of its VPC: the environment that reaches it, and names them."""
    port = free_port()
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("moto_eks.py")), "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, **quotas, "MOTO_EKS_SPEED": BLINK})
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    try:
        eventually(lambda: _listening(port) or server.poll() is not None, "moto server to start", timeout=START_WAIT)
        subnets = moto_eks.network(client("ec2", env))
        moto_eks_iam.node_role(client("iam", env))
        client("eks", env).create_cluster(name="tuning", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(subnets)})
        yield {**env, "KATUNA_EKS_SUBNETS": ",".join(subnets)}
    finally:
        stopped(server)


RAISED = {"KATUNA_EKS_NODES_PER_GROUP": "600"}
"""The account's quota of nodes per managed node group, raised from EKS's default 450."""


@pytest.fixture(scope="module")
def aws():
    """moto's server for the module's tests, for an account whose quota of nodes per group is
    :data:`RAISED` (the tests of a service at EKS's default quota are refused before EKS is asked)."""
    with moto_server(**RAISED) as env:
        yield env


@pytest.fixture(scope="module")
def kube():
    stub = KubeStub(namespaces=("pools",))
    yield stub
    stub.close()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def client(service: str, env: dict[str, str]):
    return boto3.client(service, endpoint_url=env["AWS_ENDPOINT_URL"], region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def serve(workdir: Path, kube: KubeStub, aws: dict[str, str], **env: str) -> Service:
    return Service(workdir, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                   KATUNA_K8S_NAMESPACE="pools", KATUNA_EKS_CLUSTER="tuning",
                   KATUNA_EKS_NODE_ROLE=ROLE, KATUNA_EKS_REGION=REGION, KATUNA_K8S_DEFAULT_RESOURCES="cpu=100m",
                   **aws, **env)


def submit(service: Service, name: str, expected: int = 201, **pool) -> bytes:
    definition = study_definition(name=name, maxTrials=2, parallelism=1)
    definition["trialTemplate"]["image"] = "python:3.12"
    definition["nodePool"] = {"provider": "eks", "instanceTypes": ["m5.xlarge"], "maxNodes": 3,
                              "labels": {"team": "vision"}, **pool}
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                      {"Content-Type": "application/yaml"})
    assert status == expected, body
    return body


def autoscaling_group(aws: dict[str, str], group: str) -> str:
    """The Auto Scaling group EKS made for the node group, as its resources name it."""
    described = client("eks", aws).describe_nodegroup(clusterName="tuning", nodegroupName=group)["nodegroup"]
    return described["resources"]["autoScalingGroups"][0]["name"]


def template_tags(aws: dict[str, str], asg: str) -> dict[str, str]:
    found = client("autoscaling", aws).describe_tags(Filters=[{"Name": "auto-scaling-group", "Values": [asg]}])
    return {t["Key"]: t["Value"] for t in found["Tags"] if t["Key"].startswith(TEMPLATE)}


def expected_tags(group: str) -> dict[str, str]:
    return {f"{TEMPLATE}/label/team": "vision", f"{TEMPLATE}/label/katuna.dev/pool": group,
            f"{TEMPLATE}/label/eks.amazonaws.com/nodegroup": group,
            f"{TEMPLATE}/label/eks.amazonaws.com/capacityType": "SPOT",
            f"{TEMPLATE}/taint/katuna.dev/trial": "true:NoSchedule",
            f"{TEMPLATE}/autoscaling-options/scaledownunneededtime": "2m0s"}


def post(service: Service, event: Event) -> int:
    headers, body = cloudevents_http.to_http(event)
    return service.request("POST", "/functions/provision", body, headers)[0]


def test_a_pingsource_tick_tags_the_active_node_groups_auto_scaling_group(tmp_path: Path, kube, aws):
    sink = Sink()
    service = serve(tmp_path, kube, aws, KATUNA_EVENTS="reply", K_SINK=sink.url)
    try:
        submit(service, "pinged")
        store = SqliteStore(tmp_path / "katuna.db")
        uid = store.get_study("pinged").uid
        assert post(service, study_created("pinged", uid)) < 300
        assert store.pool_use(uid).operation == "create:katuna-pinged"
        asg = autoscaling_group(aws, "katuna-pinged")
        assert template_tags(aws, asg) == {}, "nothing tags it before a tick"
        tick = Event("dev.knative.sources.ping", {},
                     source="/apis/v1/namespaces/katuna/pingsources/katuna-nodepool-check")
        assert post(service, tick) < 300
        assert template_tags(aws, asg) == expected_tags("katuna-pinged")
        use = store.pool_use(uid)
        assert (use.phase, use.operation, use.created, use.owned) == ("ready", None, True, True)
        store.close()
    finally:
        service.close()
        sink.close()


def test_the_services_own_tick_tags_it_in_queue_mode(tmp_path: Path, kube, aws):
    service = serve(tmp_path, kube, aws)
    try:
        submit(service, "queued")
        eks = client("eks", aws)
        eventually(lambda: "katuna-queued" in eks.list_nodegroups(clusterName="tuning")["nodegroups"],
                   "the node group", timeout=60)
        asg = autoscaling_group(aws, "katuna-queued")
        eventually(lambda: template_tags(aws, asg) == expected_tags("katuna-queued"), "the tick to tag it", timeout=60)
    finally:
        service.close()


def test_an_account_with_a_raised_quota_gets_its_600_node_group_through_the_service(tmp_path: Path, kube, aws):
    """Service and cloud agree on the account's quota of nodes per managed node group: 600 is
    taken at submission and EKS creates the group; 601 is refused naming the setting."""
    service = serve(tmp_path, kube, aws, KATUNA_MAX_POOL_NODES="1000", **RAISED)
    try:
        submit(service, "wide", maxNodes=600)
        eks = client("eks", aws)
        eventually(lambda: "katuna-wide" in eks.list_nodegroups(clusterName="tuning")["nodegroups"],
                   "the node group", timeout=60)
        group = eks.describe_nodegroup(clusterName="tuning", nodegroupName="katuna-wide")["nodegroup"]
        assert group["scalingConfig"]["maxSize"] == 600
        refused = json.loads(submit(service, "wider", 422, maxNodes=601))
        assert refused["problems"] == [{"path": "nodePool.maxNodes", "message": (
            "expected an integer from 1 to 600: EKS's quota of nodes per managed node group (a larger group "
            "would be refused when it is created; where the account's quota is raised, set "
            "KATUNA_EKS_NODES_PER_GROUP to it)")}]
    finally:
        service.close()


def test_by_default_a_group_past_eks_quota_is_refused_naming_the_setting(tmp_path: Path, kube, aws):
    service = serve(tmp_path, kube, aws, KATUNA_MAX_POOL_NODES="1000")
    try:
        refused = json.loads(submit(service, "wide", 422, maxNodes=451))
        assert [p["path"] for p in refused["problems"]] == ["nodePool.maxNodes"]
        assert "from 1 to 450" in refused["problems"][0]["message"]
        assert "set KATUNA_EKS_NODES_PER_GROUP" in refused["problems"][0]["message"]
        assert service.json("GET", "/studies/wide")[0] == 404, "nothing stored"
    finally:
        service.close()
