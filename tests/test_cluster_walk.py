"""The cluster path as a user walks it, on each cloud: the shared spot pool made once with the
provisioning script, a Katib Experiment (a Job trial template, the StdOut collector, 3 trials 2 at
a time) posted to a real ``katuna serve`` behind the emulated Knative Broker, which only the
sources' events drive (the Jobs' changes as the ApiServerSource sends them, the PingSource's
ticks); the trials' pods run on the nodes the stand-in's cluster autoscaler adds to the pool,
their metrics are read from their output, the study completes with its best trial, and the pool
goes back to no nodes. No request katuna makes is refused as one the real API would refuse."""

from __future__ import annotations

import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import boto3
import moto_eks
import pytest
from conftest import job_experiment
from gke_stub import GkeStub
from knative_emulator import KnativeCluster
from knative_emulator.broker import attributes_of
from kube_standin.clouds import eks_node_groups, eks_pools, eks_resize, gke_pools, gke_resize
from kube_stub import KubeStub
from test_knative_mode import FAST_RETRIES
from test_provision_script import EKS_FLAGS, GKE_FLAGS, ROLE, provisioned
from test_seed_study import REGION, moto_server  # noqa: F401  (a fixture)
from waiting import eventually

pytestmark = pytest.mark.slow

POOL = "trials"
TRIAL_CODE = "import sys; x = float(sys.argv[1]); print('epoch 1'); print(f'loss={(x - 0.15) ** 2:.6f}')"
"""A trial that prints its objective on standard output, as Katib's StdOut collector reads it."""
IDLE_SECONDS = 3.0
"""How long a node stays without pods before the stand-in's autoscaler removes it."""
INVALID = (400, 422)
"""The answers an API gives a request it refuses as malformed or invalid (404 and 409 are answers
katuna asks for: whether an object exists, whether it was made already)."""
POOL_LABEL = {"gke": "cloud.google.com/gke-nodepool", "eks": "eks.amazonaws.com/nodegroup"}


def experiment(provider: str) -> dict:
    """Katib's v1beta1 Experiment ``walk`` of 3 trials, 2 at a time, on the shared pool :data:`POOL`."""
    machine = {"machineType": "e2-standard-4"} if provider == "gke" else {"instanceTypes": ["m5.xlarge", "m5a.xlarge"]}
    container = {"command": [sys.executable, "-c", TRIAL_CODE, "${trialParameters.learningRate}"],
                 "resources": {"requests": {"cpu": "3", "memory": "1Gi"}}}
    return {**job_experiment(
        "walk", container, max_trials=3, parallel=2, maxFailedTrialCount=1,
        algorithm={"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "7"}]},
        collector={"collector": {"kind": "StdOut"}}),
        "nodePool": {"provider": provider, "name": POOL, "shared": True, "maxNodes": 2, **machine}}


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, str, str, int]]:
    """Every answer the loopback servers of this process give: (server, method, path, status)."""
    given: list[tuple[object, str, str, int]] = []
    send = BaseHTTPRequestHandler.send_response

    def recorded(handler: BaseHTTPRequestHandler, code: int, message: str | None = None) -> None:
        given.append((handler.server, handler.command, handler.path, code))
        send(handler, code, message)

    monkeypatch.setattr(BaseHTTPRequestHandler, "send_response", recorded)
    return given


def walk(cluster: KnativeCluster, kube: KubeStub, provider: str, nodes: Callable[[], int] = lambda: 0) -> None:
    """Post the Experiment and follow it to its end, its pool's release (the nodes its trials ran
    on measured) and its emptying (no node of it on the cluster, and ``nodes``, the cloud's count,
    at 0: GKE's node count, EKS's ``desiredSize``), asserting each step."""
    ran: dict[str, str] = {}

    def placed() -> None:
        for pod in list(kube.pods.values()):
            node = pod["spec"].get("nodeName")
            if node and pod["metadata"]["labels"].get("katuna.dev/study") == "walk":
                labels = (kube.nodes.get(node) or {}).get("metadata", {}).get("labels", {})
                ran.setdefault(pod["metadata"]["name"], labels.get(POOL_LABEL[provider], ""))

    status, body = cluster.api("POST", "/studies", experiment(provider))
    assert status == 201, body
    eventually(lambda: placed() or len(ran) == 3, "the three trials' pods to be placed on nodes", timeout=90)
    assert sorted(ran.values()) == [POOL] * 3, f"every trial's pod ran on a node of the pool: {ran}"
    assert kube.autoscaler.peak(POOL) >= 1, "the autoscaler added the nodes"
    study = cluster.wait_for("walk", timeout=90)
    trials = cluster.api("GET", "/studies/walk/trials")[1]
    assert (study["status"], study["reason"], study["counts"]["complete"]) == (
        "completed", "max trials reached (3)", 3), study
    for trial in trials:
        assert trial["metrics"]["loss"] == pytest.approx((trial["params"]["lr"] - 0.15) ** 2, abs=1e-6), trial
    best = min(trials, key=lambda t: t["value"])
    assert study["best"]["number"] == best["number"] and study["best"]["value"] == best["value"]
    assert (study["nodePool"]["pool"], study["nodePool"]["adopted"]) == (POOL, True), "the provisioned pool, adopted"
    eventually(lambda: nodes() == 0 and not [n for n in kube.nodes.values()
                                             if n["metadata"]["labels"].get(POOL_LABEL[provider]) == POOL],
               "the pool to be back at no node", timeout=60)
    released = eventually(lambda: (use := cluster.api("GET", "/studies/walk")[1]["nodePool"])["releasedAt"] and use,
                          "the pool to be released", timeout=30)
    assert released["nodesSeen"] >= 1 and released["nodeHours"] > 0, f"the pool's nodes measured: {released}"
    assert cluster.ping.ticks > 0 and cluster.broker.received["dev.katuna.trial.finished"] >= 3
    assert not cluster.broker.dead_letters, [attributes_of(e) for e in cluster.broker.dead_letters]


def test_on_gke_a_katib_experiment_runs_on_the_provisioned_pool_and_leaves_it_empty(tmp_path: Path, answers):
    gke = GkeStub(speed=100.0)
    gke.add_cluster("proj-7", "europe-west4", "tuning")
    provisioned("gke", "up", *GKE_FLAGS, "--endpoint", gke.url, "--max-nodes", "2", "--machine-type", "e2-standard-4")
    kube = KubeStub(pools=gke_pools(gke), resize=gke_resize(gke), boot_seconds=0.2, idle_seconds=IDLE_SECONDS)
    cluster = KnativeCluster(tmp_path, kube.url, ping_interval=0.5, time_scale=FAST_RETRIES,
                             KATUNA_GKE_PROJECT="proj-7", KATUNA_GKE_LOCATION="europe-west4",
                             KATUNA_GKE_CLUSTER="tuning", KATUNA_GKE_ENDPOINT=gke.url)
    try:
        walk(cluster, kube, "gke", lambda: gke.node_count(POOL))
        bounds = gke.pool_bounds(POOL)
        assert (bounds.min_nodes, bounds.max_nodes) == (0, 2), "the pool keeps the limits it was made with"
        refused = [a[1:] for a in answers if a[0] in (*kube.servers, gke.server) and a[3] in INVALID]
        reached = {a[0] for a in answers}
        assert gke.server in reached and reached & set(kube.servers), "the answers of both APIs were seen"
        assert refused == [], "no request the real APIs would refuse"
    finally:
        cluster.close()
        kube.close()
        gke.close()


def test_on_eks_a_katib_experiment_runs_on_the_provisioned_group_and_leaves_it_empty(
        tmp_path: Path, answers, moto_server: dict[str, str]):  # noqa: F811  (the fixture imported)
    def client(service: str):
        return boto3.client(service, endpoint_url=moto_server["AWS_ENDPOINT_URL"], region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    eks = client("eks")
    subnets = moto_eks.network(client("ec2"))
    eks.create_cluster(name="tuning", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(subnets)})
    provisioned("eks", "up", *EKS_FLAGS, "--max-nodes", "2", "--instance-types", "m5.xlarge,m5a.xlarge",
                "--subnets", ",".join(subnets), "--node-role", ROLE, "--region", REGION, env=moto_server)
    resize, resized = eks_resize(eks, client("autoscaling"), "tuning"), []

    def resizing(name: str, nodes: int) -> None:
        resize(name, nodes)
        resized.append(eks.describe_nodegroup(clusterName="tuning", nodegroupName=name)["nodegroup"]["scalingConfig"])

    kube = KubeStub(pools=eks_pools(eks_node_groups(eks, "tuning")), resize=resizing, boot_seconds=0.2,
                    idle_seconds=IDLE_SECONDS)
    cluster = KnativeCluster(tmp_path, kube.url, ping_interval=0.5, time_scale=FAST_RETRIES,
                             KATUNA_EKS_CLUSTER="tuning", KATUNA_EKS_SUBNETS=",".join(subnets),
                             KATUNA_EKS_NODE_ROLE=ROLE, KATUNA_EKS_REGION=REGION, **moto_server)

    try:
        walk(cluster, kube, "eks", lambda: eks.describe_nodegroup(
            clusterName="tuning", nodegroupName=POOL)["nodegroup"]["scalingConfig"]["desiredSize"])
        assert max(scaling["desiredSize"] for scaling in resized) >= 1, \
            f"EKS showed the desired size the autoscaler set: {resized}"
        scaling = eks.describe_nodegroup(clusterName="tuning", nodegroupName=POOL)["nodegroup"]["scalingConfig"]
        assert (scaling["minSize"], scaling["maxSize"]) == (0, 2), "the group keeps the limits it was made with"
        refused = [a[1:] for a in answers if a[0] in kube.servers and a[3] in INVALID]
        assert {a[0] for a in answers} & set(kube.servers), "the API server's answers were seen"
        assert refused == [], "no request the real API would refuse"
    finally:
        cluster.close()
        kube.close()

