"""A Katib Experiment keeps the Trial resources of its latest ``KATUNA_KATIB_TRIALS_KEPT``
trials and of its best one on the cluster, however many trials it runs: each ended trial's
report deletes the Trial that fell out of the window, and a trial that ends below it is never
written again. Every trial stays in katuna's store. Small windows stand for the default 10,000
(:data:`functions.core.katib_trials.TRIALS_KEPT`), so no test makes thousands of objects."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import watching_dispatcher
from kube_stub import KubeStub, serving_katib
from kubernetes import client
from test_katib import experiment

from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import resource_changed, trial_suggested
from functions.core.katib_trials import EXPERIMENT_LABEL, TRIALS_KEPT, kept_trials
from functions.core.records import COMPLETE, RUNNING, TrialRecord
from functions.settings import Settings

TEAM = "kept-team"
USER = "keeper"
NAME = "kept"


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeStub]:
    yield from serving_katib(TEAM, USER)


def trials_on_the_api(kube: KubeStub) -> list[int]:
    api = client.CustomObjectsApi(client.ApiClient(kube.configuration(USER)))
    listed = api.list_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "trials",
                                               label_selector=f"{EXPERIMENT_LABEL}={NAME}")
    return sorted(int(item["metadata"]["name"].rpartition("-")[2]) for item in listed["items"])


def ended(number: int, loss: float, now: float) -> TrialRecord:
    return TrialRecord(NAME, number, {"x": number / 10}, COMPLETE, values=[loss], metrics={"loss": loss},
                       created_at=now, started_at=now, finished_at=now)


def test_an_experiment_keeps_the_trials_of_its_latest_trials_and_its_best(kube: KubeStub, tmp_path: Path):
    body = experiment(maxTrialCount=1000, parallelTrialCount=2)
    body["metadata"] = {"name": NAME, "namespace": TEAM}
    created = client.CustomObjectsApi(client.ApiClient(kube.configuration(USER))).create_namespaced_custom_object(
        "kubeflow.org", "v1beta1", TEAM, "experiments", body)
    api = client.ApiClient(client.Configuration(host=kube.url))
    store = SqliteStore(tmp_path / "katuna.db")
    dispatcher = watching_dispatcher(store, api, TEAM, katib_trials_kept=5)
    try:
        dispatcher.deliver_to("resource", resource_changed("add", created))
        uid = store.get_study(NAME).uid
        now = time.time()
        for number in range(11):
            store.add_trial(ended(number, 0.1 if number == 2 else 1.0 + number, now))
        store.add_trial(TrialRecord(NAME, 11, {"x": 1.1}, RUNNING, created_at=now, started_at=now))
        dispatcher.deliver_to("writeback", trial_suggested(NAME, uid, 11, 1))
        assert trials_on_the_api(kube) == [2, 7, 8, 9, 10, 11], "the latest five, and the best"
        store.update_trial(NAME, 11, state=COMPLETE, values=[5.0], metrics={"loss": 5.0}, finished_at=now)
        for number in range(12, 16):
            store.add_trial(ended(number, 2.0 + number, now))
        dispatcher.deliver_to("writeback", trial_suggested(NAME, uid, 15, 1))
        assert trials_on_the_api(kube) == [2, 11, 12, 13, 14, 15]
        assert store.count_trials(NAME).complete == 16, "every trial stays in katuna's store"
        kube.status_writes.clear()
        dispatcher.deliver_to("writeback", trial_suggested(NAME, uid, 15, 1))
        assert trials_on_the_api(kube) == [2, 11, 12, 13, 14, 15], "a redelivery changes nothing"
    finally:
        store.close()


def test_a_trial_still_running_keeps_its_trial_until_it_ends():
    """Trial 0 runs on while 10 later trials end, with 3 kept: it is written while it runs,
    and once it ends, its Trial is deleted rather than written."""
    now = time.time()
    running = TrialRecord(NAME, 0, {"x": 0.0}, RUNNING, created_at=now, started_at=now)
    written, dropped = kept_trials([running, ended(10, 3.0, now)], 10, 3, 5, lambda number: number != 0)
    assert ([t.number for t in written], dropped) == ([0, 10], [7]), "trial 10 ends: trial 7 falls out"
    written, dropped = kept_trials([ended(0, 9.0, now)], 10, 3, 5, lambda number: True)
    assert (written, dropped) == ([], [0])
    written, dropped = kept_trials([ended(9, 2.0, now), ended(10, 2.0, now)], 10, 3, 7, lambda number: True)
    assert ([t.number for t in written], dropped) == ([9, 10], [6]), "the best (7) is kept"
    assert Settings().katib_trials_kept == TRIALS_KEPT == 10_000
