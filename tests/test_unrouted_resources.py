"""A study resource's kind whose path the API server does not route for a moment (its 404 names
no object: an API server that has not loaded every custom resource definition after a restart,
kubernetes/kubernetes#115241) says nothing of the resource: the study runs on, and the event that
asked is delivered again, where a 404 naming the resource ends the study as deleted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import watching_dispatcher
from kube_stub import KubeStub, serving_katib
from kubernetes import client
from test_katib import experiment

from functions.adapters.sqlite_store import SqliteStore
from functions.core.errors import TemporaryError
from functions.core.events import resource_changed
from functions.core.resources import DELETED
from functions.dispatch import Dispatcher

TEAM = "unrouted-team"
USER = "writer"
NAME = "unrouted"


@pytest.fixture
def kube() -> Iterator[KubeStub]:
    yield from serving_katib(TEAM, USER)


@pytest.fixture
def running(kube: KubeStub, tmp_path: Path) -> Iterator[tuple[dict, SqliteStore, Dispatcher]]:
    """The Experiment ``NAME`` applied and its study running: the Experiment, the store and the dispatcher."""
    body = experiment(maxTrialCount=100, parallelTrialCount=2)
    body["metadata"] = {"name": NAME, "namespace": TEAM}
    users = client.CustomObjectsApi(client.ApiClient(kube.configuration(USER)))
    created = users.create_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", body)
    api = client.ApiClient(kube.configuration())
    store = SqliteStore(tmp_path / "katuna.db")
    dispatcher = watching_dispatcher(store, api, TEAM)
    dispatcher.deliver_to("resource", resource_changed("add", created))
    assert not store.get_study(NAME).terminal
    try:
        yield created, store, dispatcher
    finally:
        store.close()


def test_a_delete_event_met_by_an_unrouted_kind_leaves_the_study_running(kube: KubeStub, running):
    created, store, dispatcher = running
    kube.faults.unserve("get", "experiments")
    with pytest.raises(TemporaryError, match=r"does not serve experiments\.kubeflow\.org/v1beta1 now"):
        dispatcher.deliver_to("resource", resource_changed("delete", created))
    assert not store.get_study(NAME).terminal, "the Experiment is there: its study runs on"
    kube.delete("Experiment", TEAM, NAME, api_version="kubeflow.org/v1beta1")
    dispatcher.deliver_to("resource", resource_changed("delete", created))
    assert store.get_study(NAME).reason == DELETED, "a 404 naming the Experiment ends its study as deleted"
