"""An API server that does not take katuna's credentials for a moment (401 Unauthorized: a token
rotated or expired since it was read, an authenticator webhook away) refuses nothing of the
study: a submission is answered ``503`` and stored nowhere, to be sent again, and a running
study's event is delivered again, its study neither failed nor charged a failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import study_definition, watching_dispatcher
from kube_stub import KubeStub, serving_katib
from kubernetes import client
from test_katib import experiment

from functions.adapters.sqlite_store import SqliteStore
from functions.adapters.web import create_app
from functions.core.errors import TemporaryError
from functions.core.events import resource_changed
from functions.runtime import Runtime
from functions.settings import Settings

TEAM = "unauthenticated-team"
USER = "writer"
NAME = "unauthenticated"


@pytest.fixture
def kube() -> Iterator[KubeStub]:
    yield from serving_katib(TEAM, USER)


def test_a_study_resource_event_met_by_a_401_is_delivered_again_and_charges_the_study_nothing(kube: KubeStub,
                                                                                                tmp_path: Path):
    body = experiment(maxTrialCount=100, parallelTrialCount=2)
    body["metadata"] = {"name": NAME, "namespace": TEAM}
    users = client.CustomObjectsApi(kube.api_client(USER))
    created = users.create_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", body)
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        dispatcher = watching_dispatcher(store, kube.api_client(), TEAM)
        dispatcher.deliver_to("resource", resource_changed("add", created))
        for _ in range(4):  # past the failures that would end the study, were they counted
            kube.faults.unauthenticate()
            with pytest.raises(TemporaryError, match=r"did not take katuna's credentials \(401 Unauthorized"):
                dispatcher.deliver_to("resource", resource_changed("update", created))
        record = store.get_study(NAME)
        assert not record.terminal, record.reason
        assert store.count_failure(NAME, record.uid) == 1, "no failure was counted before this one"
        dispatcher.deliver_to("resource", resource_changed("update", created))
        assert not store.get_study(NAME).terminal
    finally:
        store.close()


def test_a_submission_met_by_a_401_is_answered_503_and_stored_nowhere(tmp_path: Path):
    kube = KubeStub(namespaces=("creds",))
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", workdir=tmp_path, executor="kubernetes",
                               k8s_api=kube.url, k8s_namespace="creds"))
    try:
        app = create_app(runtime).test_client()
        definition = study_definition(name="creds", maxTrials=1, parallelism=1)
        definition["trialTemplate"]["image"] = "python:3.12"
        definition["kubernetes"] = {"namespace": "creds"}  # asked of the cluster: may katuna create Jobs there?
        kube.faults.unauthenticate(times=100)
        answer = app.post("/studies", data=yaml.safe_dump(definition), content_type="application/yaml")
        assert (answer.status_code, answer.get_json()["retryable"]) == (503, True), answer.get_json()
        assert "401 Unauthorized" in answer.get_json()["message"]
        assert answer.headers["Retry-After"]
        assert app.get("/studies").get_json() == []
        kube.faults.unauthenticate(times=0)
        again = app.post("/studies", data=yaml.safe_dump(definition), content_type="application/yaml")
        assert again.status_code == 201, again.get_json()
    finally:
        runtime.close()
        kube.close()
