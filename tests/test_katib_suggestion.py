"""The Suggestion katuna keeps for each Katib Experiment (``kubeflow.org/v1beta1``, as Katib's
controllers keep one): its spec and status as Katib writes them, by resume policy; written
with the Experiment's status, through the real client on the loopback API, guarded against
writes in between, replacing one an earlier Experiment of the same name left, and leaving one
katuna did not make."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import watching_dispatcher
from kube_standin.server import KATUNA_USER as KATUNA
from kube_stub import KubeStub, serving_katib
from kubernetes import client
from test_katib import experiment

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_resources import KubernetesResources
from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import resource_changed, study_completed, trial_suggested
from functions.core.formats import load_definition
from functions.core.katib_suggestion import suggestion
from functions.core.katib_trials import EXPERIMENT_LABEL
from functions.core.records import COMPLETE, COMPLETED, STUDY_RUNNING, StudyRecord, TrialRecord
from functions.core.resources import Origin, Ref
from functions.dispatch import Dispatcher

TEAM = "suggest-team"
USER = "suggester"
NAME = "suggest"
ORIGIN = Origin(Ref("Experiment", TEAM, NAME, "kubeflow.org/v1beta1"), "uid-1", 1)


def record(policy: str | None = None, **fields: Any) -> StudyRecord:
    """A stored study of a Katib Experiment, created at 100 s, under ``policy``."""
    body = experiment(**({"resumePolicy": policy} if policy else {}))
    body["metadata"] = {"name": NAME, "namespace": TEAM, "labels": {"team": "a"}}
    spec, definition = load_definition(body)
    return replace(StudyRecord(spec, definition, "/tmp", "study-uid", created_at=100.0), **fields)


def conditions(found: dict) -> list[tuple[str, str, str, str, str | None]]:
    return [(c["type"], c["status"], c["reason"], c["message"], c["lastTransitionTime"]) for c in found["conditions"]]


def test_a_running_study_has_a_created_and_running_suggestion_asking_for_its_trials():
    made = suggestion(record(started_at=160.0), ORIGIN, 4)
    assert made["metadata"] == {
        "name": NAME, "namespace": TEAM, "labels": {"team": "a", EXPERIMENT_LABEL: NAME},
        "ownerReferences": [{"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "name": NAME,
                             "uid": "uid-1", "controller": True}]}
    assert made["spec"] == {"algorithm": {"algorithmName": "random",
                                          "algorithmSettings": [{"name": "random_state", "value": "3"}]},
                            "requests": 4, "resumePolicy": "Never"}
    assert made["status"]["suggestionCount"] == 4 and made["status"]["startTime"] == "1970-01-01T00:01:40Z"
    assert conditions(made["status"]) == [
        ("Created", "True", "SuggestionCreated", "Suggestion is created", "1970-01-01T00:01:40Z"),
        ("Running", "True", "SuggestionRunning", "Suggestion is running", "1970-01-01T00:02:40Z")]
    assert suggestion(record(), ORIGIN, 0)["status"]["conditions"][-1]["type"] == "Created", "not started yet"


@pytest.mark.parametrize(("policy", "message"), [
    (None, "Suggestion is succeeded, can't be restarted"),
    ("Never", "Suggestion is succeeded, can't be restarted"),
    ("FromVolume", "Suggestion is succeeded, suggestion volume is not deleted, can be restarted")])
def test_an_ended_study_has_a_succeeded_suggestion_not_running_in_katibs_words(policy: str | None, message: str):
    ended = record(policy, started_at=160.0, completed_at=220.0, status=COMPLETED, reason="max trials reached (4)")
    made = suggestion(ended, ORIGIN, 4)
    assert made["spec"]["resumePolicy"] == (policy or "Never")
    assert conditions(made["status"])[1:] == [
        ("Running", "False", "Suggestion is succeeded", "Suggestion is not running", "1970-01-01T00:03:40Z"),
        ("Succeeded", "True", "Experiment is succeeded", message, "1970-01-01T00:03:40Z")]


def test_a_long_running_suggestion_runs_on_once_its_study_ended_and_a_restart_runs_again():
    ended = record("LongRunning", started_at=160.0, completed_at=220.0, status=COMPLETED, reason="max trials reached")
    assert conditions(suggestion(ended, ORIGIN, 4)["status"])[1:] == [
        ("Running", "True", "SuggestionRunning", "Suggestion is running", "1970-01-01T00:02:40Z")]
    restarted = record("FromVolume", started_at=160.0, restarted_at=300.0, restarts=1, status=STUDY_RUNNING)
    assert conditions(suggestion(restarted, ORIGIN, 6)["status"])[1:] == [
        ("Running", "True", "SuggestionRunning", "Suggestion is running", "1970-01-01T00:05:00Z")], \
        "running again, no longer succeeded, as Katib's once it restarts"


def test_early_stopping_is_in_the_suggestions_spec():
    body = experiment(earlyStopping={"algorithmName": "medianstop"})
    body["metadata"] = {"name": NAME, "namespace": TEAM}
    spec, definition = load_definition(body)
    made = suggestion(StudyRecord(spec, definition, "/tmp", "study-uid"), ORIGIN, 0)
    assert made["spec"]["earlyStopping"] == {"algorithmName": "medianstop"}


@pytest.fixture
def kube() -> Iterator[KubeStub]:
    yield from serving_katib(TEAM, USER)


def user_api(kube: KubeStub) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(client.ApiClient(kube.configuration(USER)))


def read(kube: KubeStub, plural: str = "suggestions") -> dict:
    return user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, plural, NAME)


def apply(kube: KubeStub, dispatcher: Dispatcher) -> dict:
    """The Experiment ``NAME`` created as its user creates it, and its event delivered."""
    body = experiment(maxTrialCount=2, parallelTrialCount=2)
    body["metadata"] = {"name": NAME, "namespace": TEAM}
    created = user_api(kube).create_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", body)
    dispatcher.deliver_to("resource", resource_changed("add", created))
    return created


@pytest.fixture
def service(kube: KubeStub, tmp_path: Path) -> Iterator[tuple[SqliteStore, Dispatcher]]:
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        yield store, watching_dispatcher(store, api_client(kube.url), TEAM)
    finally:
        store.close()


def finish_trial(store: SqliteStore, dispatcher: Dispatcher, number: int) -> None:
    """Trial ``number`` of the study, started (once) as the ``start`` handler starts it, ended."""
    now = time.time()
    if store.get_study(NAME).started_at is None:
        store.update_study(NAME, started_at=now)
    store.add_trial(TrialRecord(NAME, number, {"x": 0.5}, COMPLETE, values=[1.0], metrics={"loss": 1.0},
                                created_at=now, started_at=now, finished_at=now))
    dispatcher.deliver_to("writeback", trial_suggested(NAME, store.get_study(NAME).uid, number, 1))


def test_the_suggestion_follows_the_study_and_a_report_made_again_writes_nothing(kube: KubeStub, service):
    store, dispatcher = service
    created = apply(kube, dispatcher)
    finish_trial(store, dispatcher, 0)
    first = read(kube)
    assert first["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert (first["spec"]["requests"], first["status"]["suggestionCount"]) == (1, 1)
    assert [c["type"] for c in first["status"]["conditions"] if c["status"] == "True"] == ["Created", "Running"]

    finish_trial(store, dispatcher, 1)
    store.update_study(NAME, status=COMPLETED, reason="max trials reached (2)", completed_at=time.time())
    uid = store.get_study(NAME).uid
    dispatcher.deliver_to("writeback", study_completed(NAME, uid, "completed", "max trials reached (2)"))
    ended = read(kube)
    assert (ended["spec"]["requests"], ended["status"]["suggestionCount"]) == (2, 2)
    assert [(c["type"], c["status"]) for c in ended["status"]["conditions"]] == [
        ("Created", "True"), ("Running", "False"), ("Succeeded", "True")]
    assert read(kube, "experiments")["status"]["conditions"][-1]["type"] == "Succeeded"

    kube.authorized.clear()
    dispatcher.deliver_to("writeback", study_completed(NAME, uid, "completed", "max trials reached (2)"))
    assert read(kube)["metadata"]["resourceVersion"] == ended["metadata"]["resourceVersion"]
    assert [(r.verb, r.subresource) for r in kube.authorized if r.user == KATUNA and r.resource == "suggestions"] == [
        ("get", "")], \
        "delivered again: the Suggestion read, and nothing written"


@pytest.mark.parametrize("cascade", ["background", "orphan"])
def test_an_experiment_applied_again_replaces_the_suggestion_the_first_one_left(kube: KubeStub, service,
                                                                              cascade: str):
    """The first Experiment's Suggestion outlives it until the garbage collector reaches it (it
    lags here), or for good once ``kubectl delete --cascade=orphan`` orphaned it: the
    Experiment applied again under the name has a Suggestion of its own in its place."""
    store, dispatcher = service
    first = apply(kube, dispatcher)
    finish_trial(store, dispatcher, 0)
    kube.gc_seconds = 3600.0
    kube.delete("Experiment", TEAM, NAME, api_version="kubeflow.org/v1beta1", cascade=cascade)
    dispatcher.deliver_to("resource", resource_changed("delete", first))
    again = apply(kube, dispatcher)
    finish_trial(store, dispatcher, 0)
    found = read(kube)
    assert [o["uid"] for o in found["metadata"]["ownerReferences"]] == [again["metadata"]["uid"]]
    assert found["status"]["suggestionCount"] == 1


def test_a_suggestion_katuna_did_not_make_is_left_and_the_experiment_status_written(kube: KubeStub, service):
    store, dispatcher = service
    theirs = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Suggestion", "metadata": {"name": NAME},
              "spec": {"requests": 7}}
    user_api(kube).create_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "suggestions", theirs)
    apply(kube, dispatcher)
    finish_trial(store, dispatcher, 0)
    assert read(kube)["spec"] == {"requests": 7} and "status" not in read(kube), "left as it was"
    assert read(kube, "experiments")["status"]["trialsSucceeded"] == 1, "the Experiment's status is written"


def test_a_suggestion_written_after_it_was_read_is_read_and_computed_again(kube: KubeStub, service):
    """Of two reports at once, the one computed earlier never lands last: a write that lands
    between katuna's read and its own makes katuna read and compute again."""
    store, dispatcher = service
    created = apply(kube, dispatcher)
    finish_trial(store, dispatcher, 0)
    ref, uid = ORIGIN.ref, created["metadata"]["uid"]
    computed: list[int] = []

    def wanted() -> dict:
        if not computed:
            user_api(kube).patch_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "suggestions", NAME,
                                                          {"metadata": {"annotations": {"touched": "yes"}}})
        computed.append(len(computed) + 5)
        return suggestion(store.get_study(NAME), Origin(ref, uid, 1), computed[-1])

    KubernetesResources(lambda: api_client(kube.url), katib_api=True).put_suggestion(ref, uid, wanted)
    found = read(kube)
    assert computed == [5, 6]
    assert (found["spec"]["requests"], found["status"]["suggestionCount"]) == (6, 6)

