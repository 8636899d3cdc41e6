"""The cluster path at full size, on strict stand-ins: a Katib ``v1beta1`` Experiment applied to
the loopback Kubernetes API asks for a preemptible pool of 0..100 nodes and runs 100 parallel
trials through the emulated Knative Eventing (``tests/knative_emulator``), with a fifth of its
pods preempted, source events lost and duplicated, and the service killed and restarted once.

The same scenario runs on GKE (the loopback GKE API) and on EKS (moto's server); the cluster
autoscaler of the Kubernetes stand-in grows and shrinks the pool the cloud reports. Each run
prints its figures: wall time, events per trial, peak nodes.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import moto_eks
import moto_eks_iam
import pytest
from gke_stub import GkeStub
from http_helpers import free_port
from knative_emulator import KnativeCluster
from knative_emulator.faults import Faults
from kube_standin.clouds import eks_node_groups, eks_pools, gke_pools, gke_resize
from kube_stub import KubeStub
from waiting import START_WAIT, eventually, stopped

pytestmark = pytest.mark.slow

TRIALS = 100
PREEMPTED = 20
SEED = 16
NAMESPACE = "katuna"
TRIAL_CODE = "import sys, time; time.sleep(2); x = float(sys.argv[1]); print(f'loss={(x - 2) ** 2}')"
"""A trial as cheap as a trial gets, long enough for a preemption to hit it."""
IDLE_SECONDS = 60
"""How long a node stays without pods before the autoscaler removes it (its pods' logs go with
it). The stand-in boots nodes a hundred times faster than a cloud, but katuna's events take the
time they take: this keeps scale-down well behind a trial's collection, as the real autoscaler's
ten minutes keep it behind a one-minute reconcile tick."""
PING_SECONDS = 5.0
"""The PingSource's period (a minute on a cluster, where trials last minutes to hours)."""
REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/katuna-nodes"


def experiment(node_pool: dict) -> dict:
    """The reference Experiment: Katib's v1beta1 spec, the pool asked for by annotation."""
    return {
        "apiVersion": "katuna.dev/v1", "kind": "Experiment",
        "metadata": {"name": "seed", "namespace": NAMESPACE,
                     "annotations": {"katuna.dev/node-pool": json.dumps(node_pool)}},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "16"}]},
            "parallelTrialCount": TRIALS, "maxTrialCount": TRIALS, "maxFailedTrialCount": 1,
            "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "5"}}],
            "trialTemplate": {
                "primaryContainerName": "training-container",
                "trialParameters": [{"name": "x", "reference": "x"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "containers": [{"name": "training-container", "image": "python:3.12",
                                    "command": [sys.executable, "-c", TRIAL_CODE, "${trialParameters.x}"],
                                    "resources": {"requests": {"cpu": "3", "memory": "1Gi"}}}],
                    "restartPolicy": "Never"}}}},
            },
        },
    }


def preempting(kube: KubeStub) -> set[str]:
    """A seeded fifth of the trials' Jobs whose first pod is preempted once it runs."""
    chosen = {f"seed-{n}" for n in random.Random(SEED).sample(range(TRIALS), PREEMPTED)}
    kube.disrupt = lambda job, index: 0.1 if index == 0 and job in chosen else None
    return chosen


def run_seed(tmp_path: Path, kube: KubeStub, pool: str, node_pool: dict, released: Callable[[], bool],
             **env: str) -> dict:
    """Apply the Experiment, kill the service once mid-study, wait for the end; the figures."""
    chosen = preempting(kube)
    faults = Faults(SEED, lost=0.05, twice=0.05)
    started = time.monotonic()
    cluster = KnativeCluster(tmp_path, kube.url, faults=faults, ping_interval=PING_SECONDS, **env)
    try:
        kube.apply(experiment(node_pool))
        eventually(lambda: _complete(cluster) >= TRIALS // 3, "a third of the trials to finish", timeout=120)
        cluster.service.restart()
        study = cluster.wait_for("seed", timeout=240)
        wall = time.monotonic() - started
        trials = cluster.api("GET", "/studies/seed/trials")[1]
        eventually(released, "the pool to be released", timeout=120)
        eventually(lambda: not [n for n in kube.nodes.values() if _pool_of(n) == pool],
                   "the pool's nodes to go", timeout=60)
        figures = {"wall seconds": round(wall, 1), "events per trial": round(cluster.events_sent() / TRIALS, 1),
                   "peak nodes": kube.autoscaler.peak(pool), "source faults": dict(faults.counts),
                   "dead letters": len(cluster.broker.dead_letters)}
        print(f"\nseed study on {node_pool['provider']}: {figures}")
        assert study["status"] == "completed", (study["reason"], [(t["number"], t.get("reason")) for t in trials
                                                                  if t["state"] != "COMPLETE"][:10])
        assert study["counts"]["complete"] == TRIALS and len(trials) == TRIALS, "exactly maxTrialCount trials"
        assert all(t["state"] == "COMPLETE" for t in trials), [t for t in trials if t["state"] != "COMPLETE"]
        assert {job for job, _ in kube.disrupted} == chosen, "every chosen pod was preempted"
        assert figures["peak nodes"] > 1 and not cluster.broker.dead_letters
        assert faults.counts["lost"] and faults.counts["twice"], "faults were injected"
        assert cluster.service.starts == 2, "the service was killed and started again once"
        eventually(lambda: _condition(kube, "Succeeded"), "the Experiment's status to say it succeeded", timeout=60)
        status = kube.resources[("experiments", NAMESPACE, "seed")]["status"]
        succeeded = _condition(kube, "Succeeded")
        assert (succeeded["status"], succeeded["reason"]) == ("True", "ExperimentMaxTrialsReached")
        assert (status["trials"], status["trialsSucceeded"], status.get("trialsFailed", 0)) == (TRIALS, TRIALS, 0)
        return figures
    finally:
        cluster.close()


def _complete(cluster: KnativeCluster) -> int:
    try:
        status, study = cluster.api("GET", "/studies/seed")
    except OSError:
        return 0
    return study["counts"]["complete"] if status == 200 else 0


def _condition(kube: KubeStub, kind: str) -> dict | None:
    status = kube.resources[("experiments", NAMESPACE, "seed")].get("status") or {}
    return next((c for c in status.get("conditions", []) if c["type"] == kind and c["status"] == "True"), None)


def _pool_of(node: dict) -> str | None:
    labels = node["metadata"].get("labels") or {}
    return labels.get("cloud.google.com/gke-nodepool") or labels.get("eks.amazonaws.com/nodegroup")


def test_the_seed_study_on_a_gke_preemptible_pool(tmp_path: Path):
    gke = GkeStub(speed=60)
    gke.add_cluster("proj-7", "europe-west4", "tuning")
    kube = KubeStub(pools=gke_pools(gke), resize=gke_resize(gke), boot_seconds=0.5, idle_seconds=IDLE_SECONDS)
    try:
        run_seed(tmp_path, kube, "katuna-seed",
                 {"provider": "gke", "capacity": "preemptible", "machineType": "e2-standard-4", "maxNodes": TRIALS},
                 lambda: "katuna-seed" not in gke.pools,
                 KATUNA_GKE_PROJECT="proj-7", KATUNA_GKE_LOCATION="europe-west4", KATUNA_GKE_CLUSTER="tuning",
                 KATUNA_GKE_ENDPOINT=gke.url)
        assert len(gke.calls("POST", "/nodePools")) == 1, "the pool was created once"
        assert len(gke.calls("DELETE")) == 1, "and deleted once"
    finally:
        kube.close()
        gke.close()


@pytest.fixture
def moto_server() -> Iterator[dict[str, str]]:
    port = free_port()
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("moto_eks.py")), "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "MOTO_EKS_SPEED": "1000000"})  # EKS's minutes pass in a blink
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
    eventually(lambda: _accepts(port) or server.poll() is not None, "moto's server", timeout=START_WAIT)
    moto_eks_iam.node_role(boto3.client("iam", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=REGION,
                                        aws_access_key_id="testing", aws_secret_access_key="testing"))
    yield env
    stopped(server)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def node_groups(env: dict[str, str], cluster: str) -> Callable[[], list[dict]]:
    """The cluster's node groups as the cluster autoscaler reads them (moto's, through boto3)."""
    eks = boto3.client("eks", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=REGION,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    return eks_node_groups(eks, cluster)


def test_the_seed_study_on_an_eks_spot_node_group(tmp_path: Path, moto_server: dict[str, str]):
    eks = boto3.client("eks", endpoint_url=moto_server["AWS_ENDPOINT_URL"], region_name=REGION,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    subnets = moto_eks.network(boto3.client("ec2", endpoint_url=moto_server["AWS_ENDPOINT_URL"], region_name=REGION,
                                            aws_access_key_id="testing", aws_secret_access_key="testing"))
    eks.create_cluster(name="tuning", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(subnets)})
    kube = KubeStub(pools=eks_pools(node_groups(moto_server, "tuning")), boot_seconds=0.5, idle_seconds=IDLE_SECONDS)
    try:
        run_seed(tmp_path, kube, "katuna-seed",
                 {"provider": "eks", "capacity": "spot", "instanceTypes": ["m5.xlarge"], "maxNodes": TRIALS},
                 lambda: "katuna-seed" not in eks.list_nodegroups(clusterName="tuning")["nodegroups"],
                 KATUNA_EKS_CLUSTER="tuning", KATUNA_EKS_SUBNETS=",".join(subnets), KATUNA_EKS_NODE_ROLE=ROLE,
                 KATUNA_EKS_REGION=REGION, **moto_server)
    finally:
        kube.close()
