"""Study resources of one name in two namespaces (Katib's multi-user model: each team's profile
namespace, where each may apply Katib's examples under their own names): katuna's study names
are shared by every namespace it serves, so a resource whose name another namespace's holds
gets a study of that name qualified by its namespace (more in tests/test_resource_study_names.py),
and a name its resource no longer holds (the resource deleted, its study kept with its results)
goes to the next resource applied under it, as it does when the same namespace applies it again."""

from __future__ import annotations

import pytest
from http_helpers import Service
from kube_stub import KubeStub
from test_resources import conditions, send, status_of, study, wait_trials

KUBE_NAMESPACES = ("team", "other")


@pytest.fixture(scope="module", autouse=True)
def study_grants(kube: KubeStub) -> None:
    """katuna's Role in the namespaces the studies live in (its service account writes their status)."""
    with kube.lock:
        for namespace in KUBE_NAMESPACES:
            kube.authorizer.copy_role("katuna", namespace)


@pytest.fixture(scope="module")
def service(kube: KubeStub, tmp_path_factory: pytest.TempPathFactory):
    running = Service(tmp_path_factory.mktemp("resource-namespaces"), workers=1, KATUNA_K8S_API=kube.url)
    yield running
    running.close()


@pytest.mark.slow
def test_a_name_another_namespaces_resource_holds_gives_a_study_named_with_its_namespace(service: Service,
                                                                                        kube: KubeStub):
    first = kube.apply(study("ns-shared", namespace="team", mode="hang", maxTrials=2))
    assert send(service, "add", first) == ["dev.katuna.study.created"]
    second = kube.apply(study("ns-shared", namespace="other", maxTrials=1, parallelism=1))
    assert send(service, "add", second) == ["dev.katuna.study.created"]
    status = status_of(kube, second)
    assert status["study"] == "ns-shared--other" and "Failed" not in conditions(status)
    assert conditions(status)["Created"]["message"] == "study ns-shared--other accepted"
    done = service.wait_for("ns-shared--other", timeout=60)
    assert done["status"] == "completed" and done["resource"]["namespace"] == "other"
    assert service.json("GET", "/studies/ns-shared")[1]["resource"]["namespace"] == "team"
    assert status_of(kube, first)["study"] == "ns-shared"
    kube.delete("Study", "team", "ns-shared")
    send(service, "delete", first)
    service.wait_for("ns-shared", timeout=30)
    kube.delete("Study", "other", "ns-shared")
    send(service, "delete", second)


@pytest.mark.slow
def test_a_name_whose_resource_was_deleted_goes_to_another_namespaces_resource(service: Service, kube: KubeStub):
    first = kube.apply(study("ns-freed", namespace="team", mode="hang", maxTrials=2))
    assert send(service, "add", first) == ["dev.katuna.study.created"]
    wait_trials(service, "ns-freed", 2)
    kube.delete("Study", "team", "ns-freed")
    assert send(service, "delete", first) == ["dev.katuna.study.completed"]
    assert service.wait_for("ns-freed", timeout=30)["status"] == "stopped"

    second = kube.apply(study("ns-freed", namespace="other", maxTrials=1, parallelism=1))
    assert send(service, "add", second) == ["dev.katuna.study.created"], status_of(kube, second)
    done = service.wait_for("ns-freed", timeout=60)
    assert done["status"] == "completed" and done["resource"]["namespace"] == "other"
    assert [t["state"] for t in service.json("GET", "/studies/ns-freed/trials")[1]] == ["COMPLETE"]
    assert "Failed" not in conditions(status_of(kube, second))
    assert send(service, "add", first) == [], "a late event of the deleted resource changes nothing"
    assert service.json("GET", "/studies/ns-freed")[1]["resource"]["namespace"] == "other"


@pytest.mark.slow
def test_a_name_whose_resource_was_deleted_unseen_goes_to_another_namespaces_resource(service: Service,
                                                                                     kube: KubeStub):
    """The delete event never came (the service was down): the running study of the deleted
    resource is stopped and forgotten, and the new resource runs its own."""
    first = kube.apply(study("ns-unseen", namespace="team", mode="hang", maxTrials=2))
    assert send(service, "add", first) == ["dev.katuna.study.created"]
    wait_trials(service, "ns-unseen", 2)
    kube.delete("Study", "team", "ns-unseen")
    second = kube.apply(study("ns-unseen", namespace="other", maxTrials=1, parallelism=1))
    assert send(service, "add", second) == ["dev.katuna.study.created"]
    done = service.wait_for("ns-unseen", timeout=60)
    assert done["status"] == "completed" and done["resource"]["namespace"] == "other"
    assert [t["state"] for t in service.json("GET", "/studies/ns-unseen/trials")[1]] == ["COMPLETE"]
