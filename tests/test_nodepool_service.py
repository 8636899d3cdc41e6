"""A study on a GKE spot pool, end to end: ``katuna serve`` with the Kubernetes executor against
the loopback Kubernetes API, node pools through the real GKE client against the loopback GKE API."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from conftest import study_definition
from gke_stub import GkeStub
from http_helpers import Service
from kube_standin.clouds import gke_pools, gke_resize
from kube_stub import KubeStub

from functions.adapters import cloudevents_http
from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import study_completed, study_created

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clouds(tmp_path_factory: pytest.TempPathFactory):
    gke = GkeStub(speed=100.0)
    gke.add_cluster("proj-7", "europe-west4", "tuning")
    kube = KubeStub(namespaces=("pools",), pools=gke_pools(gke), resize=gke_resize(gke), boot_seconds=0.2,
                    idle_seconds=5)
    service = Service(tmp_path_factory.mktemp("pools"), workers=1, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE="pools", KATUNA_GKE_PROJECT="proj-7", KATUNA_GKE_LOCATION="europe-west4",
                      KATUNA_GKE_CLUSTER="tuning", KATUNA_GKE_ENDPOINT=gke.url, KATUNA_K8S_DEFAULT_RESOURCES="cpu=100m",
                      KATUNA_NODE_LOOK_SECONDS="0.5")
    yield service, kube, gke
    service.close()
    gke.close()
    kube.close()


def post_event(service: Service, event) -> int:
    headers, body = cloudevents_http.to_http(event)
    return service.request("POST", "/functions/provision", body, headers)[0]


def wait_for_pool(service: Service, name: str, phase: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pool = service.json("GET", f"/studies/{name}")[1]["nodePool"]
        if pool and pool["phase"] == phase:
            return pool
        time.sleep(0.2)
    raise AssertionError(f"the pool of {name} is not {phase}: {pool}")


def wait_for_nodes_gone(service: Service, name: str, timeout: float = 60) -> dict:
    """The study's pool once katuna's looks at its nodes saw some, and saw them all go."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pool = service.json("GET", f"/studies/{name}")[1]["nodePool"]
        if pool["nodesSeen"] and not pool["nodesRunning"]:
            return pool
        time.sleep(0.2)
    raise AssertionError(f"the nodes of the pool of {name} were not all seen to go: {pool}")


def test_a_study_runs_on_its_own_spot_pool_which_is_deleted_after(clouds):
    service, kube, gke = clouds
    definition = study_definition(name="spot", maxTrials=2, parallelism=1)
    definition["trialTemplate"]["image"] = "python:3.12"
    definition["nodePool"] = {"provider": "gke", "machineType": "n2-standard-4", "maxNodes": 3,
                              "labels": {"team": "vision"}}
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                      {"Content-Type": "application/yaml"})
    assert status == 201, body
    assert service.wait_for("spot")["status"] == "completed"
    wait_for_pool(service, "spot", "released")
    pool = wait_for_nodes_gone(service, "spot")
    assert 0 < pool["nodeHours"] <= pool["nodesSeen"] * (pool["releasedAt"] - pool["requestedAt"]) / 3600, pool
    assert (pool["pool"], pool["capacity"], pool["machineTypes"], pool["deleted"]) == (
        "katuna-spot", "spot", ["n2-standard-4"], True)
    assert pool["requestedAt"] <= pool["readyAt"] <= pool["releasedAt"]
    created = gke.calls("POST", "/nodePools")
    assert len(created) == 1 and created[0][2]["nodePool"]["config"]["labels"] == {
        "team": "vision", "katuna.dev/pool": "katuna-spot"}
    assert len(gke.calls("DELETE")) == 1 and gke.pools == {}
    for name in ("spot-0", "spot-1"):
        pod = kube.created_jobs[name]["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"cloud.google.com/gke-nodepool": "katuna-spot"}
        assert {"key": "katuna.dev/trial", "operator": "Equal", "value": "true",
                "effect": "NoSchedule"} in pod["tolerations"]

    store = SqliteStore(service.workdir / "katuna.db")
    uid = store.get_study("spot").uid
    store.close()
    requests = len(gke.requests)
    again = [study_created("spot", uid), study_completed("spot", uid, "completed", "maxTrials reached")]
    for event in again + again:
        assert post_event(service, event) == 202
    changes = [request for request in gke.requests[requests:] if request[0] != "GET"]
    assert changes == [], "redelivered events change nothing in the cloud (a tick may read it meanwhile)"
    assert service.json("GET", "/studies/spot")[1]["nodePool"] == pool


def test_a_study_asking_for_another_cloud_is_refused_naming_the_field(clouds):
    service, _, gke = clouds
    definition = study_definition(name="elsewhere")
    definition["trialTemplate"]["image"] = "python:3.12"
    definition["nodePool"] = {"provider": "eks", "instanceTypes": ["m5.xlarge"]}
    status, problems = service.json("POST", "/studies", body=json.dumps(definition),
                                    headers={"Content-Type": "application/json"})
    assert status == 422
    assert problems["problems"][0]["path"] == "nodePool.provider"
    assert "KATUNA_EKS_CLUSTER" in problems["problems"][0]["message"]
    assert service.json("GET", "/studies/elsewhere")[0] == 404
    assert not [r for r in gke.requests if "elsewhere" in json.dumps(r)]


def test_a_gpu_study_runs_on_its_gpu_pool_whose_taint_its_pods_tolerate(clouds):
    """GKE taints a GPU pool's nodes ``nvidia.com/gpu=present:NoSchedule``; a trial pod asking
    for a GPU is given its toleration at admission, beside katuna's own, and lands there (the
    pool's nodes are the only ones)."""
    service, kube, gke = clouds
    definition = study_definition(name="gpus", maxTrials=1, parallelism=1)
    definition["trialTemplate"].update(image="python:3.12", resources={"cpu": "1", "gpu": "1"})
    definition["nodePool"] = {"provider": "gke", "machineType": "g2-standard-8", "maxNodes": 1}
    with kube.lock:
        since = kube.history.version
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                      {"Content-Type": "application/yaml"})
    assert status == 201, body
    assert service.wait_for("gpus")["status"] == "completed"
    with kube.lock:
        changes = kube.history.since(since)
    pods = [c.object for c in changes if c.resource == "pods" and c.object["spec"].get("nodeName")]
    nodes = {c.object["metadata"]["name"]: c.object for c in changes if c.resource == "nodes"}
    assert pods and {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pods[0]["spec"]["tolerations"]
    node = nodes[pods[0]["spec"]["nodeName"]]
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "1"
    assert node["metadata"]["labels"]["cloud.google.com/gke-accelerator"] == "nvidia-l4"
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in node["spec"]["taints"]


def test_a_gpu_study_whose_pool_has_no_gpus_is_refused_before_any_pool_is_made(clouds):
    service, _, gke = clouds
    definition = study_definition(name="gpuless")
    definition["trialTemplate"].update(image="python:3.12", resources={"cpu": "1", "gpu": "1"})
    definition["nodePool"] = {"provider": "gke", "machineType": "n2-standard-8"}
    status, answer = service.json("POST", "/studies", body=json.dumps(definition),
                                  headers={"Content-Type": "application/json"})
    assert status == 422, answer
    problem, = answer["problems"]
    assert problem["path"] == "nodePool.machineType"
    assert "a node of machine type n2-standard-8 has 0" in problem["message"]
    assert service.json("GET", "/studies/gpuless")[0] == 404
    assert not [r for r in gke.requests if "gpuless" in json.dumps(r)]


def test_concurrent_submissions_hold_no_more_pools_than_allowed(tmp_path_factory: pytest.TempPathFactory):
    gke = GkeStub(speed=100.0)
    gke.add_cluster("proj-7", "europe-west4", "tuning")
    kube = KubeStub(namespaces=("pools",))
    service = Service(tmp_path_factory.mktemp("capped"), workers=2, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE="pools", KATUNA_GKE_PROJECT="proj-7",
                      KATUNA_GKE_LOCATION="europe-west4", KATUNA_GKE_CLUSTER="tuning", KATUNA_GKE_ENDPOINT=gke.url,
                      KATUNA_K8S_DEFAULT_RESOURCES="cpu=100m", KATUNA_MAX_POOLS="2")
    try:
        start = threading.Barrier(6)

        def submit(name: str) -> tuple[int, dict]:
            definition = study_definition(name=name, maxTrials=1, parallelism=1)
            definition["trialTemplate"]["image"] = "python:3.12"
            definition["nodePool"] = {"provider": "gke", "machineType": "n2-standard-4", "maxNodes": 2}
            start.wait()
            return service.json("POST", "/studies", body=json.dumps(definition),
                                headers={"Content-Type": "application/json"})

        with ThreadPoolExecutor(6) as threads:
            answers = list(threads.map(submit, [f"race-{i}" for i in range(6)]))
        assert sorted(status for status, _ in answers) == [201, 201, 409, 409, 409, 409], answers
        refused = [body for status, body in answers if status == 409]
        assert all(body["error"] == "too_many_pools" for body in refused), refused
        assert all(b["problems"][0]["path"] == "nodePool" and "(set by KATUNA_MAX_POOLS)" in b["problems"][0]["message"]
                   for b in refused)
        stored = [study["name"] for study in service.json("GET", "/studies")[1]]
        assert len(stored) == 2
        for name in stored:
            wait_for_pool(service, name, "ready")
        assert sorted(gke.pools) == sorted(f"katuna-{name}" for name in stored)
    finally:
        service.close()
        gke.close()
        kube.close()
