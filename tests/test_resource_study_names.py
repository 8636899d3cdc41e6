"""Katib Experiments of one name in two namespaces both run (Katib's multi-user model: each
user's profile namespace, where everyone applies Katib's example ``random``). katuna's study
names are one set for every namespace it serves, so the second resource's study is named
``<name>--<namespace>``; its status says so, its Trials and its trials' Jobs are named and
labelled in its own namespace as Katib's are, and deleting either resource retires its own
study only. The names follow from the store, so events handled twice or in any order give
the same ones, and a study keeps its name for good."""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import app_client, study_definition
from http_helpers import Service, run_katuna
from kube_standin import katib_api
from kube_stub import KubeStub
from kubernetes import client
from test_katib import experiment
from test_resources import send
from waiting import eventually

from functions.adapters.sqlite_store import SqliteStore
from functions.core.katib_trials import EXPERIMENT_LABEL, TRIAL_NAME_LABEL
from functions.core.naming import is_label
from functions.core.records import StudyRecord
from functions.core.resources import Ref, qualified_name
from functions.core.validate import parse_study

FIRST, SECOND = "names-first", "names-second"
"""Two users' profile namespaces."""
USERS = {FIRST: "ann", SECOND: "bob"}
TRIAL = Path(__file__).parent / "trials" / "objective.py"


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeStub]:
    cluster = KubeStub(namespaces=(FIRST, SECOND))
    katib_api.install(cluster)
    for namespace, user in USERS.items():
        katib_api.bind(cluster, user, "katuna-katib-edit", namespace)
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def service(kube: KubeStub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = Service(tmp_path_factory.mktemp("study-names"), workers=1, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE="katuna", KATUNA_KATIB_API="true")
    yield running
    running.close()


def random_in(namespace: str, name: str, **spec) -> dict:
    """Katib's example ``random`` as a user applies it in their namespace (its trial objective.py)."""
    doc = experiment(**{"maxTrialCount": 2, "parallelTrialCount": 2, **spec})
    doc["metadata"] = {"name": name, "namespace": namespace}
    return doc


def apply(kube: KubeStub, doc: dict) -> dict:
    return copy.deepcopy(kube.apply(doc))


def users_api(kube: KubeStub, namespace: str) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(client.ApiClient(kube.configuration(USERS[namespace])))


def experiment_status(kube: KubeStub, namespace: str, name: str) -> dict:
    got = users_api(kube, namespace).get_namespaced_custom_object("kubeflow.org", "v1beta1", namespace,
                                                                  "experiments", name)
    return got.get("status") or {}


def succeeded(status: dict) -> dict | None:
    """``status`` once katuna has written it ``Succeeded`` (its last condition), else None: the
    write follows the study's end."""
    conditions = status.get("conditions") or [{}]
    return status if conditions[-1].get("type") == "Succeeded" else None


def trials_of(kube: KubeStub, namespace: str, name: str) -> dict[str, dict]:
    listed = users_api(kube, namespace).list_namespaced_custom_object(
        "kubeflow.org", "v1beta1", namespace, "trials", label_selector=f"{EXPERIMENT_LABEL}={name}")
    return {item["metadata"]["name"]: item for item in listed["items"]}


def taken(service: Service, doc: dict, study: str) -> None:
    """Deliver the resource's add event; its study is stored under ``study`` then, by this event
    or by the reconcile pass, which lists Katib's kinds every 2 seconds and may come first."""
    assert send(service, "add", doc) in ([], ["dev.katuna.study.created"])
    status, stored = service.json("GET", f"/studies/{study}")
    assert status == 200 and stored["resource"]["namespace"] == doc["metadata"]["namespace"], stored


def delete(kube: KubeStub, doc: dict) -> None:
    kube.delete("Experiment", doc["metadata"]["namespace"], doc["metadata"]["name"], api_version=doc["apiVersion"])


def test_a_qualified_study_name_is_a_label_the_same_every_time_and_shortened_with_a_hash_past_63():
    ref = Ref("Experiment", "team-b", "random", "kubeflow.org/v1beta1")
    assert qualified_name(ref) == "random--team-b" == qualified_name(Ref("Experiment", "team-b", "random"))
    long_a = Ref("Experiment", "kubeflow-user-example-com-with-a-long-profile-name-a", "random-search-cifar10")
    long_b = Ref("Experiment", "kubeflow-user-example-com-with-a-long-profile-name-b", "random-search-cifar10")
    names = [qualified_name(long_a), qualified_name(long_b)]
    assert all(is_label(name) and len(name) <= 63 for name in names), names
    assert names[0] != names[1] and names[0] == qualified_name(long_a)
    assert names[0].startswith("random-search-cifar10--kubeflow-user")


def test_katuna_show_studies_and_the_dashboard_name_the_resource_a_study_follows(tmp_path: Path):
    """``random`` and ``random--team-b``: which namespace's Experiment each study is, where a
    person reads about it, not only in the API's JSON."""
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        for namespace, study in (("team-a", "random"), ("team-b", "random--team-b")):
            origin = {"kind": "Experiment", "namespace": namespace, "name": "random", "uid": f"uid-{namespace}",
                      "generation": 1, "apiVersion": "kubeflow.org/v1beta1"}
            store.add_study(StudyRecord(parse_study(study_definition(name=study)), {}, str(tmp_path),
                                        uid=f"uid-{namespace}", status="completed", origin=origin))
        store.add_study(StudyRecord(parse_study(study_definition(name="posted")), {}, str(tmp_path), uid="posted",
                                    status="completed"))
    finally:
        store.close()
    shown = run_katuna("show", "random--team-b", cwd=tmp_path, env={**os.environ, "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert "resource: Experiment random in namespace team-b\n" in shown.stdout, shown.stdout
    posted = run_katuna("show", "posted", cwd=tmp_path)
    assert posted.returncode == 0 and "resource:" not in posted.stdout
    listed = run_katuna("studies", cwd=tmp_path, env={**os.environ, "COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    rows = {cells[0]: cells[1] for line in listed.stdout.splitlines() if line.startswith("│")
            for cells in [[cell.strip() for cell in line.split("│")[1:-1]]]}
    assert rows == {"random": "Experiment team-a/random", "random--team-b": "Experiment team-b/random", "posted": "-"}
    as_json = json.loads(run_katuna("studies", "--json", cwd=tmp_path).stdout)
    assert {view["name"]: view["resource"] for view in as_json}["random--team-b"] == {
        "kind": "Experiment", "namespace": "team-b", "name": "random"}
    with app_client(tmp_path / "katuna.db") as client:
        page = client.get("/ui/studies/random").get_data(as_text=True)
        assert re.search(r'id="study-resource">Experiment <code>random</code> in namespace\s+<code>team-a</code>',
                         page), page
        assert 'id="study-resource"' not in client.get("/ui/studies/posted").get_data(as_text=True)


@pytest.mark.slow
def test_one_experiment_name_in_two_namespaces_runs_both_and_each_delete_retires_its_own(kube: KubeStub,
                                                                                        service: Service):
    first = apply(kube, random_in(FIRST, "random"))
    taken(service, first, "random")
    second = apply(kube, random_in(SECOND, "random"))
    taken(service, second, "random--names-second")
    assert send(service, "add", second) == [], "a duplicate event changes nothing"

    done = {name: service.wait_for(name, timeout=120) for name in ("random", "random--names-second")}
    assert {name: (study["status"], study["resource"]["namespace"]) for name, study in done.items()} == {
        "random": ("completed", FIRST), "random--names-second": ("completed", SECOND)}
    for name in done:
        assert [t["state"] for t in service.json("GET", f"/studies/{name}/trials")[1]] == ["COMPLETE", "COMPLETE"]

    statuses = {namespace: eventually(lambda namespace=namespace: succeeded(experiment_status(kube, namespace, "random")),
                                      f"{namespace}'s Experiment to be written Succeeded", timeout=60)
                for namespace in USERS}
    assert statuses[FIRST]["study"] == "random" and statuses[SECOND]["study"] == "random--names-second"
    created = {namespace: next(c for c in status["conditions"] if c["type"] == "Created")
               for namespace, status in statuses.items()}
    assert created[FIRST]["message"] == "Experiment is created", "Katib's own message where the name is its own"
    assert "random--names-second" in created[SECOND]["message"]
    assert statuses[SECOND]["currentOptimalTrial"]["bestTrialName"] in {"random-0", "random-1"}

    for namespace in USERS:
        trials = trials_of(kube, namespace, "random")
        assert sorted(trials) == ["random-0", "random-1"], "Trials are named by their Experiment, in its namespace"
        assert all(t["metadata"]["namespace"] == namespace for t in trials.values())
    jobs = [job for job in kube.created_jobs.values() if job["metadata"]["namespace"] == SECOND]
    assert sorted(job["metadata"]["name"] for job in jobs) == ["random--names-second-0", "random--names-second-1"]
    pods = [job["spec"]["template"]["metadata"]["labels"] for job in jobs]
    assert {labels[EXPERIMENT_LABEL] for labels in pods} == {"random"}, "Katib's UI finds the pods by Experiment"
    assert sorted(labels[TRIAL_NAME_LABEL] for labels in pods) == ["random-0", "random-1"]

    delete(kube, second)
    assert send(service, "delete", second) == []
    assert send(service, "add", second) == [], "a late event of the deleted resource changes nothing"
    assert experiment_status(kube, FIRST, "random") == statuses[FIRST], "the other namespace's is untouched"
    assert service.json("GET", "/studies/random")[1]["resource"]["namespace"] == FIRST
    again = apply(kube, random_in(SECOND, "random", maxTrialCount=1, parallelTrialCount=1))
    assert send(service, "add", again) in ([], ["dev.katuna.study.created"])
    rerun = service.wait_for("random--names-second", timeout=120)
    assert rerun["status"] == "completed" and rerun["createdAt"] > done["random--names-second"]["createdAt"], \
        "the re-applied resource has a new study under the same name"
    assert len(service.json("GET", "/studies/random--names-second/trials")[1]) == 1
    delete(kube, first)
    assert send(service, "delete", first) == []
    assert service.json("GET", "/studies/random--names-second")[1]["createdAt"] == rerun["createdAt"]
    delete(kube, again)
    send(service, "delete", again)


@pytest.mark.slow
def test_the_names_hold_however_the_events_come(kube: KubeStub, service: Service):
    """The second resource's study keeps its qualified name once the first resource is
    deleted, whether its events come before or after that delete's, twice or once; the first's
    delete stops the first's study only."""
    hanging = {"maxTrialCount": 1, "parallelTrialCount": 1}
    first = random_in(FIRST, "order", **hanging)
    first["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] += \
        ["--mode=hang"]
    first = apply(kube, first)
    taken(service, first, "order")
    second = apply(kube, random_in(SECOND, "order", **hanging))
    taken(service, second, "order--names-second")
    delete(kube, first)
    assert send(service, "add", second) == [], "the plain name freed changes nothing for the running study"
    assert send(service, "delete", first) in ([], ["dev.katuna.study.completed"])
    assert service.wait_for("order", timeout=60)["status"] == "stopped"
    assert send(service, "delete", first) == []
    assert send(service, "add", second) == []
    assert service.wait_for("order--names-second", timeout=120)["status"] == "completed"
    assert experiment_status(kube, SECOND, "order")["study"] == "order--names-second"
    delete(kube, second)
    send(service, "delete", second)


@pytest.mark.slow
def test_a_name_whose_resource_finalizers_hold_in_deletion_goes_to_another_namespaces_resource(
        kube: KubeStub, service: Service):
    """An Experiment whose deletion a finalizer holds (one no controller takes off, such as
    Katib's, left by a Katib no longer running) is gone to katuna from the moment its deletion
    begins: its study stops, and the next Experiment of its name, in another namespace, takes
    the name as it would once the object is gone."""
    hanging = {"maxTrialCount": 1, "parallelTrialCount": 1}
    first = random_in(FIRST, "held", **hanging)
    first["metadata"]["finalizers"] = ["update-prometheus-metrics"]
    first["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] += \
        ["--mode=hang"]
    first = apply(kube, first)
    taken(service, first, "held")
    delete(kube, first)
    held = users_api(kube, FIRST).get_namespaced_custom_object("kubeflow.org", "v1beta1", FIRST, "experiments", "held")
    assert held["metadata"]["deletionTimestamp"], "the finalizer holds it"
    second = apply(kube, random_in(SECOND, "held", **hanging))
    taken(service, second, "held")
    eventually(lambda: experiment_status(kube, SECOND, "held").get("study") == "held", "its status naming its study")
    assert stored_names(service, "held") == [], "no study took the qualified name"
    users_api(kube, FIRST).patch_namespaced_custom_object("kubeflow.org", "v1beta1", FIRST, "experiments", "held",
                                                          {"metadata": {"finalizers": None}})
    assert send(service, "delete", first) == []
    assert service.wait_for("held", timeout=120)["resource"]["namespace"] == SECOND
    delete(kube, second)
    send(service, "delete", second)


def stored_names(service: Service, name: str) -> list[str]:
    """The stored studies whose names qualify ``name`` by a namespace."""
    return [s["name"] for s in service.json("GET", "/studies")[1] if s["name"].startswith(f"{name}--")]
