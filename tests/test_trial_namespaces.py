"""Where trials run: a study resource's trials run in the resource's own namespace, as Katib runs
an Experiment's, so whoever may create a resource in one namespace cannot have katuna run trials
(which may read that namespace's Secrets) in another; a resource naming another namespace is
refused in its status, naming the field, and nothing is stored or run. A study POSTed with the
API token (an operator's) still chooses its namespace. Through a real ``katuna serve`` with the
Kubernetes executor, fed ApiServerSource events, against the loopback cluster."""

from __future__ import annotations

import json

import pytest
from conftest import study_definition
from http_helpers import Service
from kube_stub import KubeStub
from test_resources import added, conditions, send, status_of, wait_trials

pytestmark = pytest.mark.slow

KUBE_NAMESPACES = ("team", "other")
"""``katuna-trials`` is bound in each, so katuna may run trials in either."""


@pytest.fixture(scope="module")
def service(kube: KubeStub, tmp_path_factory: pytest.TempPathFactory):
    with kube.lock:
        kube.authorizer.copy_role("katuna", "team")
    running = Service(tmp_path_factory.mktemp("namespaces"), workers=1, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE="katuna")
    yield running
    running.close()


def study(name: str, namespace: str, mode: str = "ok", **overrides) -> dict:
    native = study_definition(name=name, mode=mode, **overrides)
    del native["name"]
    native["trialTemplate"]["image"] = "python:3.12"
    return {"apiVersion": "katuna.dev/v1", "kind": "Study", "metadata": {"name": name, "namespace": namespace},
            "spec": native}


def job_namespaces(kube: KubeStub, study_name: str) -> set[str]:
    with kube.lock:
        return {job["metadata"]["namespace"] for name, job in kube.created_jobs.items() if name.startswith(f"{study_name}-")}


@pytest.mark.parametrize("home", ["katuna", "team"])
def test_a_study_resource_naming_another_namespace_is_refused_and_runs_nothing(service: Service, kube: KubeStub,
                                                                             home: str):
    name = f"ns-away-{home}"
    obj = kube.apply(study(name, home, kubernetes={"namespace": "other"}, maxTrials=1, parallelism=1))
    assert send(service, "add", obj, path="/functions/resource") == []
    status = status_of(kube, obj)
    assert (status["phase"], conditions(status)["Failed"]["reason"]) == ("Failed", "InvalidSpec")
    [problem] = status["problems"]
    assert problem["field"] == "spec.kubernetes.namespace"
    assert f"own namespace {home!r}" in problem["message"] and "'other'" in problem["message"]
    assert service.json("GET", f"/studies/{name}")[0] == 404
    assert job_namespaces(kube, name) == set()


@pytest.mark.parametrize("section", [{}, {"kubernetes": {"namespace": "team"}}], ids=["unset", "its-own"])
def test_a_study_resource_runs_its_trials_in_its_own_namespace(service: Service, kube: KubeStub, section: dict):
    """Before, a Study without ``kubernetes.namespace`` ran its trials in the service's
    namespace (``KATUNA_K8S_NAMESPACE``), whatever namespace it was applied in."""
    name = f"ns-home-{len(section)}"
    obj = kube.apply(study(name, "team", maxTrials=1, parallelism=1, **section))
    added(service, obj)
    assert service.wait_for(name, timeout=60)["status"] == "completed"
    assert job_namespaces(kube, name) == {"team"}


def test_an_edit_of_a_running_study_resource_keeps_its_trials_in_its_namespace(service: Service, kube: KubeStub):
    obj = kube.apply(study("ns-edit", "team", mode="hang", parallelism=1, maxTrials=4))
    added(service, obj)
    wait_trials(service, "ns-edit", 1)
    wider = kube.apply(study("ns-edit", "team", mode="hang", parallelism=2, maxTrials=4))
    assert send(service, "update", wider, path="/functions/resource") == ["dev.katuna.trial.suggested"]
    wait_trials(service, "ns-edit", 2)
    assert job_namespaces(kube, "ns-edit") == {"team"}
    kube.delete("Study", "team", "ns-edit")
    send(service, "delete", wider, path="/functions/resource")
    assert service.wait_for("ns-edit", timeout=30)["status"] == "stopped"


def test_a_study_posted_with_the_token_still_chooses_its_namespace(service: Service, kube: KubeStub):
    definition = study_definition(name="ns-posted", maxTrials=1, parallelism=1, kubernetes={"namespace": "other"})
    definition["trialTemplate"]["image"] = "python:3.12"
    status, body = service.json("POST", "/studies", body=json.dumps(definition),
                                headers={"Content-Type": "application/json"})
    assert status == 201, body
    assert service.wait_for("ns-posted", timeout=60)["status"] == "completed"
    assert job_namespaces(kube, "ns-posted") == {"other"}
