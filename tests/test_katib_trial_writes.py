"""A Katib Experiment's Trial resources cost katuna as many requests per event as trials changed,
at any study size: no event lists the Experiment's Trials, a redelivered event writes none, and
the Trials on the API end up as the store says. Requests are counted as the client sends them
to the loopback Kubernetes API (with the overlay that serves Katib's kinds)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from conftest import watching_dispatcher
from kube_standin import katib_api
from kube_standin.server import KATUNA_USER as KATUNA
from kube_stub import KubeStub, serving_katib
from kubernetes import client
from test_katib import _pytorch_job, experiment
from test_security import KNATIVE, granted_permissions

from functions.adapters.kubernetes_resources import KubernetesResources
from functions.adapters.sqlite_store import SqliteStore
from functions.core.errors import PermanentError, TemporaryError
from functions.core.events import resource_changed, study_completed, trial_suggested
from functions.core.katib_trials import EXPERIMENT_LABEL, TRIALS_LISTED, trial_lists, trial_resource, trial_status
from functions.core.metrics import Observation
from functions.core.records import COMPLETE, FAIL, PRUNED, RUNNING, WAITING, TrialRecord, Unreported
from functions.core.resource_status import PARETO_FRONT_SHOWN
from functions.core.resources import Origin, ref_of
from functions.dispatch import Dispatcher
from functions.handlers.writeback import report

TEAM = "writes-team"
KATIB_RBAC = KNATIVE / "katib-api" / "rbac.yaml"
USER = "writer"
NAME = "writes"


class CountedClient(client.ApiClient):
    """The Kubernetes client, keeping the method and path of every request it sends."""

    def __init__(self, host: str) -> None:
        configuration = client.Configuration()
        configuration.host = host
        super().__init__(configuration)
        self.sent: list[tuple[str, str]] = []

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        self.sent.append((method, url.split("?")[0].removeprefix(self.configuration.host)))
        return super().call_api(method, url, *args, **kwargs)


@pytest.fixture
def kube() -> Iterator[KubeStub]:
    yield from serving_katib(TEAM, USER)


def user_api(kube: KubeStub) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(client.ApiClient(kube.configuration(USER)))


def trials_on_the_api(kube: KubeStub) -> dict[str, dict]:
    listed = user_api(kube).list_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "trials",
                                                          label_selector=f"{EXPERIMENT_LABEL}={NAME}")
    return {item["metadata"]["name"]: item.get("status") for item in listed["items"]}


def expected_status(store: SqliteStore, trial: TrialRecord) -> dict:
    """The status katuna writes for ``trial``'s Trial, its metrics from its stored reports."""
    return trial_status(trial, store.get_study(NAME).spec, store.observations(NAME, trial.number, trial.attempt))


@pytest.fixture
def service(kube: KubeStub, tmp_path: Path) -> Iterator[tuple[CountedClient, SqliteStore, Dispatcher]]:
    """katuna's handlers with the Experiment ``NAME`` submitted: the counted client, the store
    and the dispatcher."""
    body = experiment(maxTrialCount=100, parallelTrialCount=2)
    body["metadata"] = {"name": NAME, "namespace": TEAM}
    created = user_api(kube).create_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", body)
    api = CountedClient(kube.url)
    store = SqliteStore(tmp_path / "katuna.db")
    dispatcher = watching_dispatcher(store, api, TEAM)
    dispatcher.deliver_to("resource", resource_changed("add", created))
    try:
        yield api, store, dispatcher
    finally:
        store.close()


@pytest.mark.slow
def test_an_event_writes_only_the_trials_that_changed_and_lists_none(kube: KubeStub, service):
    api, store, dispatcher = service
    record = store.get_study(NAME)
    now = time.time()
    for number in range(10):
        store.add_trial(TrialRecord(NAME, number, {"x": number / 10}, COMPLETE, values=[1.0 + number],
                                    metrics={"loss": 1.0 + number}, created_at=now, started_at=now, finished_at=now))
    store.add_trial(TrialRecord(NAME, 10, {"x": 3.0}, RUNNING, created_at=now, started_at=now))
    dispatcher.deliver_to("writeback", trial_suggested(NAME, record.uid, 10, 1))
    assert len(trials_on_the_api(kube)) == 11, "the first report writes every trial"

    store.update_trial(NAME, 10, state=COMPLETE, values=[0.5], metrics={"loss": 0.5}, finished_at=time.time())
    store.add_trial(TrialRecord(NAME, 11, {"x": 3.1}, WAITING, created_at=time.time()))
    event = trial_suggested(NAME, record.uid, 11, 1)
    api.sent.clear()
    dispatcher.deliver_to("writeback", event)
    trial_requests = [(method, path) for method, path in api.sent if "/trials" in path]
    assert not [path for method, path in trial_requests if method == "GET"], "no Trial is read, no list is made"
    written = {path.split("/trials/")[1].split("/")[0] for _, path in trial_requests if "/trials/" in path}
    assert written == {f"{NAME}-10", f"{NAME}-11"}, "only the two trials that changed are written"
    assert [method for method, path in trial_requests if path.endswith("/trials")] == ["POST"], \
        "one Trial is created: the new trial's"

    api.sent.clear()
    dispatcher.deliver_to("writeback", event)
    assert not [path for _, path in api.sent if "/trials" in path], "a redelivered event finds nothing changed"

    on_the_api = trials_on_the_api(kube)
    assert on_the_api == {f"{NAME}-{t.number}": expected_status(store, t) for t in store.trials(NAME)}


def test_the_trials_are_on_the_api_before_the_experiment_status_that_counts_them(kube: KubeStub, service):
    """Katib's controller sums an Experiment's status from its Trials, and its SDK relies on it:
    once ``wait_for_experiment_condition`` sees the Experiment succeeded, ``list_trials`` finds
    each Trial succeeded. So a report writes the changed Trials first and the status that counts
    them after; a report with no Trial to write writes the status alone."""
    api, store, dispatcher = service
    record = store.get_study(NAME)
    now = time.time()
    for number in range(3):
        store.add_trial(TrialRecord(NAME, number, {"x": number / 10}, COMPLETE, values=[1.0], metrics={"loss": 1.0},
                                    created_at=now, started_at=now, finished_at=now))
    status_path = f"/apis/kubeflow.org/v1beta1/namespaces/{TEAM}/experiments/{NAME}/status"
    ended = study_completed(NAME, record.uid, "completed", "max trials reached (3)")
    for event in (trial_suggested(NAME, record.uid, 2, 1), ended):
        api.sent.clear()
        dispatcher.deliver_to("writeback", event)
        writes = [path for method, path in api.sent if method != "GET" and not path.endswith("/events")]
        assert writes[-1] == status_path, writes
    assert writes == [status_path], "the Trials were written by the report before"
    api.sent.clear()
    dispatcher.deliver_to("writeback", trial_suggested(NAME, record.uid, 2, 1))
    assert [(method, path) for method, path in api.sent if "/trials" in path] == []
    status = user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", NAME)["status"]
    assert status["trialsSucceeded"] == 3
    assert all(s["conditions"][-1]["type"] == "Succeeded" for s in trials_on_the_api(kube).values())


def test_a_trial_the_study_ended_before_it_started_loses_its_trial_resource(kube: KubeStub, service):
    api, store, dispatcher = service
    record = store.get_study(NAME)
    now = time.time()
    store.add_trial(TrialRecord(NAME, 0, {"x": 0.5}, COMPLETE, values=[1.0], metrics={"loss": 1.0},
                                created_at=now, started_at=now, finished_at=now))
    store.add_trial(TrialRecord(NAME, 1, {"x": 0.7}, WAITING, created_at=now))
    dispatcher.deliver_to("writeback", trial_suggested(NAME, record.uid, 1, 1))
    assert trials_on_the_api(kube)[f"{NAME}-1"]["conditions"][-1]["type"] == "Created"

    ended = study_completed(NAME, record.uid, "completed", "goal reached")
    dispatcher.deliver_to("stop", ended)
    assert store.get_trial(NAME, 1) is None, "the trial that never started is no trial of the study"
    assert set(trials_on_the_api(kube)) == {f"{NAME}-0"}, "its Trial is deleted, as Katib deletes those it will not run"

    api.sent.clear()
    dispatcher.deliver_to("stop", ended)
    dispatcher.deliver_to("writeback", ended)
    assert set(trials_on_the_api(kube)) == {f"{NAME}-0"}, "a redelivery neither fails nor writes the Trial again"
    assert ("DELETE", f"/apis/kubeflow.org/v1beta1/namespaces/{TEAM}/trials/{NAME}-1") not in api.sent


def test_a_trial_stopped_because_the_experiment_ended_is_killed_not_early_stopped(kube: KubeStub, service):
    """katuna stops the trials still running when the study ends (Katib lets them run on):
    such a trial was stopped by no early-stopping rule, so its Trial ends ``Killed``
    (``TrialKilled``), counted in the Experiment's ``trialsKilled``, as Katib counts a trial
    ended before its end from outside (trial_types.go, status_util.go); one a rule stopped stays
    ``EarlyStopped``."""
    api, store, dispatcher = service
    record = store.get_study(NAME)
    now = time.time()
    store.add_trial(TrialRecord(NAME, 0, {"x": 0.5}, PRUNED, metrics={"loss": 2.0}, created_at=now, started_at=now,
                                finished_at=now, reason="pruned at step 3 by the medianstop rule (loss=2)"))
    store.add_trial(TrialRecord(NAME, 1, {"x": 0.7}, RUNNING, created_at=now, started_at=now))
    twin = store.optuna_study(NAME, [o.direction for o in record.spec.objectives])
    for _ in range(2):  # the trials as the sampler asked for them, for the stop to tell
        twin.ask()
    ended = study_completed(NAME, record.uid, "completed", "goal reached")
    dispatcher.deliver_to("writeback", ended)
    running = user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", NAME)["status"]
    assert (running["runningTrialList"], running["earlyStoppedTrialList"]) == ([f"{NAME}-1"], [f"{NAME}-0"])
    dispatcher.deliver_to("stop", ended)
    dispatcher.deliver_to("writeback", ended)
    ends = {name: (status["conditions"][-1]["type"], status["conditions"][-1]["reason"])
            for name, status in trials_on_the_api(kube).items()}
    assert ends == {f"{NAME}-0": ("EarlyStopped", "TrialEarlyStopped"), f"{NAME}-1": ("Killed", "TrialKilled")}
    status = user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", NAME)["status"]
    assert (status["trialsEarlyStopped"], status["trialsKilled"]) == (1, 1), status
    lists = {key: value for key, value in status.items() if key.endswith("TrialList")}
    assert lists == {"earlyStoppedTrialList": [f"{NAME}-0"], "killedTrialList": [f"{NAME}-1"]}, \
        "Katib's UI counts the trials from these lists; one emptied since is gone"
    assert store.get_trial(NAME, 1).reason.startswith("stopped: the study ended before the trial did (goal reached")


def test_a_trials_metrics_have_the_min_max_and_latest_of_its_reports_as_katib_writes_them(kube: KubeStub, service):
    """Katib's Metric has ``min``, ``max`` and ``latest`` (text its SDK reads with ``float``),
    each over the trial's numeric reports, in its Trial and in the Experiment's
    ``currentOptimalTrial`` (a NaN report is no number: Katib's collector reads none from it).
    The one the metric's strategy picks (``latest`` here) is katuna's reduced value; the
    additional metric the trial never reported is ``unavailable``, as Katib lists it."""
    _, store, dispatcher = service
    record = store.get_study(NAME)
    now = time.time()
    store.add_trial(TrialRecord(NAME, 0, {"x": 0.5}, COMPLETE, values=[0.5], metrics={"loss": 0.5},
                                created_at=now, started_at=now, finished_at=now))
    store.add_observations(NAME, 0, 1, [Observation("loss", v) for v in (0.9, 0.3, math.nan, 0.5)])
    dispatcher.deliver_to("writeback", trial_suggested(NAME, record.uid, 0, 1))
    expected = [{"name": "loss", "min": "0.3", "max": "0.9", "latest": "0.5", "value": 0.5},
                {"name": "size", "min": "unavailable", "max": "unavailable", "latest": "unavailable"}]
    assert trials_on_the_api(kube)[f"{NAME}-0"]["observation"]["metrics"] == expected
    status = user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", NAME)["status"]
    assert status["currentOptimalTrial"]["observation"]["metrics"] == expected


def test_the_optimal_trial_is_the_best_of_the_succeeded_and_early_stopped_as_katibs_controller_reads_them(
        kube: KubeStub, service):
    """Katib's controller picks ``currentOptimalTrial`` from every Trial with an observation
    (status_util.go's updateTrialsSummary), which its trial controller fills for a trial that
    succeeded and for one an early-stopping rule stopped, from its reports so far; a failed
    trial, or one killed as the Experiment ended, has none. katuna picked the completed trials'
    best alone, so a trial stopped early at a better loss was never the optimal one."""
    _, store, dispatcher = service
    record = store.get_study(NAME)
    now = time.time()
    ended = {"created_at": now, "started_at": now, "finished_at": now}
    store.add_trial(TrialRecord(NAME, 0, {"x": 0.5}, COMPLETE, values=[0.5], metrics={"loss": 0.5}, **ended))
    store.add_trial(TrialRecord(NAME, 1, {"x": 0.2}, PRUNED, metrics={"loss": 0.2}, **ended,
                                reason="pruned at step 3 by the medianstop rule (loss=0.2)"))
    store.add_trial(TrialRecord(NAME, 2, {"x": 0.1}, PRUNED, metrics={"loss": 0.1}, **ended,
                                reason="stopped: the study ended before the trial did (goal reached)"))
    store.add_trial(TrialRecord(NAME, 3, {"x": 0.05}, FAIL, metrics={"loss": 0.05}, **ended, reason="exit 1"))
    store.add_trial(TrialRecord(NAME, 4, {"x": 0.0}, PRUNED, metrics={"loss": math.nan}, **ended,
                                reason="pruned at step 3 by the medianstop rule (loss=nan)"))
    store.add_observations(NAME, 1, 1, [Observation("loss", v) for v in (0.9, 0.2)])
    dispatcher.deliver_to("writeback", trial_suggested(NAME, record.uid, 3, 1))
    status = user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", NAME)["status"]
    optimal = status["currentOptimalTrial"]
    assert (optimal["bestTrialName"], optimal["trialNumber"], optimal["objectiveValue"]) == (f"{NAME}-1", 1, 0.2)
    assert optimal["parameterAssignments"] == [{"name": "x", "value": "0.2"}]
    assert optimal["observation"]["metrics"][0] == {"name": "loss", "min": "0.2", "max": "0.9", "latest": "0.2",
                                                    "value": 0.2}

    store.update_trial(NAME, 0, values=[0.2], metrics={"loss": 0.2})
    dispatcher.deliver_to("writeback", trial_suggested(NAME, record.uid, 0, 1))
    status = user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", NAME)["status"]
    assert status["currentOptimalTrial"]["bestTrialName"] == f"{NAME}-0", "of two alike, the first"


def test_each_state_lists_at_most_as_many_trials_as_a_pareto_front_the_latest_ones():
    """A resource is stored whole, at most 1.5 MiB: each per-state list of a long Experiment names
    its state's latest 100 Trials, in order (the ``trials*`` counters count them all)."""
    trials = [TrialRecord(NAME, n, {"x": 0.5}, COMPLETE) for n in range(250, -1, -1)]
    trials.append(TrialRecord(NAME, 251, {"x": 0.5}, WAITING))
    lists = trial_lists(NAME, trials)
    assert len(lists["succeededTrialList"]) == TRIALS_LISTED == PARETO_FRONT_SHOWN
    assert lists["succeededTrialList"][0] == f"{NAME}-151" and lists["succeededTrialList"][-1] == f"{NAME}-250"
    assert lists["pendingTrialList"] == [f"{NAME}-251"] and lists["runningTrialList"] is None


def owned_trials(kube: KubeStub) -> dict[str, tuple[list[str], list[dict], dict | None]]:
    """Each Trial labelled with the Experiment's name: the uids of its owners, its parameter
    assignments and its status."""
    listed = user_api(kube).list_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "trials",
                                                          label_selector=f"{EXPERIMENT_LABEL}={NAME}")
    return {item["metadata"]["name"]: ([o["uid"] for o in item["metadata"].get("ownerReferences") or []],
                                       item["spec"]["parameterAssignments"], item.get("status"))
            for item in listed["items"]}


def apply_again(kube: KubeStub, dispatcher: Dispatcher, first: dict, cascade: str = "background") -> dict:
    """Delete the Experiment ``first`` (``kubectl delete --cascade=<cascade>``) and apply it
    again under its name, each change delivered to katuna as the ApiServerSource delivers it;
    the Experiment applied again."""
    kube.delete("Experiment", TEAM, NAME, api_version="kubeflow.org/v1beta1", cascade=cascade)
    dispatcher.deliver_to("resource", resource_changed("delete", first))
    body = experiment(maxTrialCount=100, parallelTrialCount=2)
    body["metadata"] = {"name": NAME, "namespace": TEAM}
    again = user_api(kube).create_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", body)
    dispatcher.deliver_to("resource", resource_changed("add", again))
    return again


@pytest.mark.parametrize("cascade", ["background", "orphan"])
def test_an_experiment_applied_again_under_its_name_replaces_the_trials_the_first_one_left(kube: KubeStub, service,
                                                                                         cascade: str):
    """Trial names carry no uid, and the first Experiment's Trials outlive it until the garbage
    collector reaches them (it lags here, as on a busy control plane), or for good when
    ``kubectl delete --cascade=orphan`` orphans them. The Experiment applied again under the
    name writes Trials of its own (its owner, its parameters, its status) in their place, and
    the collector's pass, once it comes, leaves them; a late delete of the first Experiment's
    Trials leaves them too."""
    api, store, dispatcher = service
    first = user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", NAME)
    record, now = store.get_study(NAME), time.time()
    for number in range(3):
        store.add_trial(TrialRecord(NAME, number, {"x": number / 10}, COMPLETE, values=[1.0], metrics={"loss": 1.0},
                                    created_at=now, started_at=now, finished_at=now))
    dispatcher.deliver_to("writeback", trial_suggested(NAME, record.uid, 2, 1))

    kube.gc_seconds = 3600.0
    again = apply_again(kube, dispatcher, first, cascade)
    renewed = store.get_study(NAME)
    assert renewed.uid != record.uid
    store.add_trial(TrialRecord(NAME, 0, {"x": 3.0}, RUNNING, created_at=now, started_at=now))
    store.add_trial(TrialRecord(NAME, 1, {"x": -1.0}, WAITING, created_at=now))
    event = trial_suggested(NAME, renewed.uid, 1, 1)
    dispatcher.deliver_to("writeback", event)

    def expected() -> dict:
        return {f"{NAME}-{t.number}": ([again["metadata"]["uid"]], [{"name": "x", "value": str(t.params["x"])}],
                                       expected_status(store, t)) for t in store.trials(NAME)}

    left = [first["metadata"]["uid"]] if cascade == "background" else []
    assert owned_trials(kube) == {**expected(), f"{NAME}-2": (left, [{"name": "x", "value": "0.2"}], ANY)}

    katib_api.collect_due(kube, math.inf)
    KubernetesResources(lambda: api, katib_api=True).delete_trials(ref_of(first), first["metadata"]["uid"],
                                                                   [f"{NAME}-0", f"{NAME}-1"])
    store.update_trial(NAME, 0, state=COMPLETE, values=[0.5], metrics={"loss": 0.5}, finished_at=time.time())
    dispatcher.deliver_to("writeback", trial_suggested(NAME, renewed.uid, 2, 1))
    dispatcher.deliver_to("writeback", event)
    trials = owned_trials(kube)
    assert {name: trials[name] for name in expected()} == expected()
    assert (f"{NAME}-2" in trials) == (cascade == "orphan"), "the collector deletes only the first Experiment's"


def test_a_trial_of_a_trials_name_katuna_did_not_make_refuses_the_write_and_is_left(kube: KubeStub, service):
    api, store, dispatcher = service
    record, now = store.get_study(NAME), time.time()
    foreign = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial",
               "metadata": {"name": f"{NAME}-0", "labels": {"team": "vision"}}, "spec": {}}
    user_api(kube).create_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "trials", foreign)
    store.add_trial(TrialRecord(NAME, 0, {"x": 0.5}, RUNNING, created_at=now, started_at=now))
    origin, trial = Origin.from_dict(record.origin), store.get_trial(NAME, 0)
    with pytest.raises(PermanentError, match=f"the Trial {NAME}-0 in namespace {TEAM} exists and is no Trial of an "
                                             f"Experiment named {NAME}"):
        KubernetesResources(lambda: api, katib_api=True).put_trials(
            origin.ref, [{**trial_resource(record, origin, trial), "status": expected_status(store, trial)}])
    found = user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "trials", f"{NAME}-0")
    assert found["metadata"]["labels"] == {"team": "vision"} and "status" not in found


def second_worker(kube: KubeStub, tmp_path: Path) -> tuple[Dispatcher, SqliteStore]:
    """Another worker of the service: its own client and connection to the same store."""
    api = CountedClient(kube.url)
    store = SqliteStore(tmp_path / "katuna.db")
    return watching_dispatcher(store, api, TEAM), store


def test_a_late_report_of_a_deleted_experiment_leaves_the_trial_of_the_one_applied_again(
        kube: KubeStub, service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Two workers share the store. One reports on the Experiment: its status is written, and
    before the report goes on to the Trials, the Experiment is deleted and applied again under
    its name, and the other worker writes the new Experiment's Trial. The late report then
    writes the trial that changed with the record it started with, owned by the deleted
    Experiment: it neither deletes the new Experiment's Trial nor makes it anew as the deleted
    one's (which the garbage collector would then delete, the new Experiment's results with it),
    and it records nothing as reported, so the new Experiment's next report writes the trial's
    completion. The API server holds the late report's answer until the rest is done: no sleeps."""
    _, store, dispatcher = service
    first = user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", NAME)
    record = store.get_study(NAME)
    arrived, go = threading.Event(), threading.Event()
    serve = kube.serve

    def held(call):
        """The API server, holding its answer to the first status write of the Experiment."""
        answer = serve(call)
        if call.subresource == "status" and call.resource == "experiments" and not arrived.is_set():
            arrived.set()
            go.wait(30)
        return answer

    late, late_store = second_worker(kube, tmp_path)
    monkeypatch.setattr(kube, "serve", held)
    worker = threading.Thread(target=late.deliver_to, args=("writeback", trial_suggested(NAME, record.uid, 0, 1)))
    try:
        worker.start()
        assert arrived.wait(30), "the late report wrote no status"
        again = apply_again(kube, dispatcher, first)
        renewed, now = store.get_study(NAME), time.time()
        store.add_trial(TrialRecord(NAME, 0, {"x": 0.9}, RUNNING, created_at=now, started_at=now))
        dispatcher.deliver_to("writeback", trial_suggested(NAME, renewed.uid, 0, 1))
        store.update_trial(NAME, 0, state=COMPLETE, values=[0.5], metrics={"loss": 0.5}, finished_at=time.time())
        written = owned_trials(kube)
        assert written == {f"{NAME}-0": ([again["metadata"]["uid"]], [{"name": "x", "value": "0.9"}], ANY)}
        made = trial_uid(kube, f"{NAME}-0")
    finally:
        go.set()
        worker.join(30)
        late_store.close()
    assert not worker.is_alive()
    assert owned_trials(kube) == written, "the new Experiment's Trial is left as it was"
    assert trial_uid(kube, f"{NAME}-0") == made, "and not made anew"
    dispatcher.deliver_to("writeback", trial_suggested(NAME, renewed.uid, 0, 1))
    assert owned_trials(kube)[f"{NAME}-0"] == ([again["metadata"]["uid"]], [{"name": "x", "value": "0.9"}],
                                               expected_status(store, store.get_trial(NAME, 0))), \
        "the new Experiment's report writes the trial's completion, which the late one left unrecorded"
    assert trial_uid(kube, f"{NAME}-0") == made


def test_a_trial_write_of_a_deleted_experiment_leaves_the_trial_of_the_one_applied_again(kube: KubeStub, service):
    """The Trials adapter's own guard, below the store's: a write of a Trial in the name of an
    Experiment that was deleted and applied again (its owner uid no longer the Experiment's)
    neither deletes the new Experiment's Trial nor makes it anew as the deleted one's."""
    api, store, dispatcher = service
    first = user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", NAME)
    record, now = store.get_study(NAME), time.time()
    again = apply_again(kube, dispatcher, first)
    store.add_trial(TrialRecord(NAME, 0, {"x": 0.9}, RUNNING, created_at=now, started_at=now))
    dispatcher.deliver_to("writeback", trial_suggested(NAME, store.get_study(NAME).uid, 0, 1))
    written, made = owned_trials(kube), trial_uid(kube, f"{NAME}-0")
    assert written[f"{NAME}-0"][0] == [again["metadata"]["uid"]]

    origin = Origin.from_dict(record.origin)
    finished = TrialRecord(NAME, 0, {"x": 0.1}, COMPLETE, values=[0.5], metrics={"loss": 0.5},
                           created_at=now, started_at=now, finished_at=now)
    KubernetesResources(lambda: api, katib_api=True).put_trials(
        origin.ref, [{**trial_resource(record, origin, finished), "status": expected_status(store, finished)}])
    assert owned_trials(kube) == written, "the new Experiment's Trial is left as it was"
    assert trial_uid(kube, f"{NAME}-0") == made, "and not made anew"


def trial_uid(kube: KubeStub, name: str) -> str:
    return user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "trials", name)["metadata"]["uid"]


def test_a_trial_made_anew_between_katunas_read_and_its_delete_is_left(kube: KubeStub, service,
                                                                         monkeypatch: pytest.MonkeyPatch):
    """Replacing the Trial an earlier Experiment of the same name left, katuna reads it, then
    deletes it only while its uid is the one read. Between the two, the garbage collector may
    delete it and someone else make a Trial of the name: the delete is refused (409, the API
    server's uid precondition) and that Trial is left, katuna's write refused until it is gone."""
    api, store, dispatcher = service
    first = user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", NAME)
    record, now = store.get_study(NAME), time.time()
    store.add_trial(TrialRecord(NAME, 0, {"x": 0.1}, COMPLETE, values=[1.0], metrics={"loss": 1.0},
                                created_at=now, started_at=now, finished_at=now))
    dispatcher.deliver_to("writeback", trial_suggested(NAME, record.uid, 0, 1))
    kube.gc_seconds = 3600.0
    apply_again(kube, dispatcher, first)
    renewed = store.get_study(NAME)
    store.add_trial(TrialRecord(NAME, 0, {"x": 3.0}, RUNNING, created_at=now, started_at=now))
    foreign = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial",
               "metadata": {"name": f"{NAME}-0", "labels": {"team": "vision"}}, "spec": {}}
    made: list[dict] = []
    serve = kube.serve

    def swapped(call):
        """The API server, where the collector's pass and another's create land just before
        katuna's first delete of the Trial."""
        if call.method == "DELETE" and call.resource == "trials" and not made:
            katib_api.collect_due(kube, math.inf)
            made.append(user_api(kube).create_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "trials",
                                                                       foreign))
        return serve(call)

    monkeypatch.setattr(kube, "serve", swapped)
    with pytest.raises(TemporaryError, match=f"the Trials {NAME}-0 of an earlier Experiment named {NAME} are being "
                                             "deleted"):
        dispatcher.deliver_to("writeback", trial_suggested(NAME, renewed.uid, 0, 1))
    assert made, "katuna deleted the first Experiment's Trial"
    found = user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "trials", f"{NAME}-0")
    assert (found["metadata"]["uid"], found["metadata"]["labels"]) == (made[0]["metadata"]["uid"], {"team": "vision"})
    assert "status" not in found
    with pytest.raises(PermanentError, match=f"the Trial {NAME}-0 in namespace {TEAM} exists and is no Trial of an "
                                             f"Experiment named {NAME}"):
        dispatcher.deliver_to("writeback", trial_suggested(NAME, renewed.uid, 0, 1))
    assert trial_uid(kube, f"{NAME}-0") == made[0]["metadata"]["uid"]


def test_a_report_written_while_a_refused_edit_commits_waits_for_it_and_keeps_its_generation(kube: KubeStub, service):
    """The ``resource`` function reports a refused edit inside its transaction, so the status
    holds generation 2 before the store does: a report by another worker that reads the
    resource then computes its status once that transaction has committed, never from the store
    before it, which would put generation 1 back (seen as a flaky status under load)."""
    _, store, dispatcher = service
    experiments = ("kubeflow.org", "v1beta1", TEAM, "experiments", NAME)
    parameters = user_api(kube).get_namespaced_custom_object(*experiments)["spec"]["parameters"]
    parameters[0]["feasibleSpace"]["max"] = "9"
    edited = user_api(kube).patch_namespaced_custom_object(*experiments, {"spec": {"parameters": parameters}})

    def another_worker() -> None:
        other = SqliteStore(store.path)
        try:
            report(other.get_study(NAME), replace(dispatcher.deps, store=other))
        finally:
            other.close()
    worker = threading.Thread(target=another_worker)
    with store.transaction():
        dispatcher.deliver_to("resource", resource_changed("update", edited))
        refused = user_api(kube).get_namespaced_custom_object(*experiments)["status"]
        assert refused["observedGeneration"] == 2
        worker.start()
        worker.join(timeout=1.0)
    worker.join(timeout=30)
    assert user_api(kube).get_namespaced_custom_object(*experiments)["status"]["observedGeneration"] == 2


def test_a_report_begun_before_an_edit_was_refused_leaves_the_refusal_in_the_status(kube: KubeStub, service):
    """A report writes the status the store holds when it writes: one that read its study
    before an edit was refused, and writes after the refusal was reported, must not put back the
    generation before it (the handler of a trial's event in one worker, a refused edit in
    another)."""
    _, store, dispatcher = service
    begun = store.get_study(NAME)
    experiments = ("kubeflow.org", "v1beta1", TEAM, "experiments", NAME)
    parameters = user_api(kube).get_namespaced_custom_object(*experiments)["spec"]["parameters"]
    parameters[0]["feasibleSpace"]["max"] = "9"
    edited = user_api(kube).patch_namespaced_custom_object(*experiments, {"spec": {"parameters": parameters}})
    dispatcher.deliver_to("resource", resource_changed("update", edited))
    refused = user_api(kube).get_namespaced_custom_object(*experiments)["status"]
    assert refused["observedGeneration"] == edited["metadata"]["generation"] == 2
    assert "UpdateRefused" in [condition["type"] for condition in refused["conditions"]]

    report(begun, dispatcher.deps)
    assert user_api(kube).get_namespaced_custom_object(*experiments)["status"] == refused


def test_katuna_asks_of_katibs_kinds_exactly_what_its_katib_role_grants(kube: KubeStub, service):
    """A walk of every call katuna makes on Katib's Experiments, Trials and Suggestions, as the
    API server's authorizer sees them: an Experiment's status written, its Trials and its
    Suggestion created and written, those an earlier Experiment of its name left read, deleted
    and made anew, a Trial that will not run
    deleted, the Experiments listed. ``katuna-katib`` grants each, and nothing katuna never asks."""
    api, store, dispatcher = service
    first = user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", NAME)
    record, now = store.get_study(NAME), time.time()
    store.add_trial(TrialRecord(NAME, 0, {"x": 0.5}, COMPLETE, values=[1.0], metrics={"loss": 1.0},
                                created_at=now, started_at=now, finished_at=now))
    dispatcher.deliver_to("writeback", trial_suggested(NAME, record.uid, 0, 1))
    kube.gc_seconds = 3600.0
    apply_again(kube, dispatcher, first, "orphan")
    renewed = store.get_study(NAME)
    store.add_trial(TrialRecord(NAME, 0, {"x": 3.0}, COMPLETE, values=[2.0], metrics={"loss": 2.0},
                                created_at=now, started_at=now, finished_at=now))
    store.add_trial(TrialRecord(NAME, 1, {"x": -1.0}, WAITING, created_at=now))
    dispatcher.deliver_to("writeback", trial_suggested(NAME, renewed.uid, 1, 1))
    dispatcher.deliver_to("stop", study_completed(NAME, renewed.uid, "completed", "goal reached"))
    KubernetesResources(lambda: api, katib_api=True).list_katib()

    walked = {(request.resource + (f"/{request.subresource}" if request.subresource else ""), request.verb)
              for request in kube.authorized if request.user == KATUNA and request.group == "kubeflow.org"}
    kinds = ("experiments", "experiments/status", "trials", "trials/status", "suggestions", "suggestions/status")
    granted = {(resource, verb) for group, resource, verb in granted_permissions("katuna-katib", KATIB_RBAC)
               if group == "kubeflow.org" and resource in kinds}
    assert walked - {("studyjobs", "list")} == granted


def test_a_trial_that_never_reported_its_objective_is_metrics_unavailable_not_failed(kube: KubeStub, service):
    """A trial that ended without its objective's metric is Katib's ``MetricsUnavailable``, not
    ``Failed`` (trial_controller_util.go): its Trial ends with that condition (reason
    ``MetricsUnavailable``, message "Metrics are not available"), and the Experiment counts it in
    ``trialMetricsUnavailable`` and lists it in ``metricsUnavailableTrialList`` (status_util.go),
    apart from a trial that exited with an error, which stays ``Failed``."""
    _, store, dispatcher = service
    record = store.get_study(NAME)
    now = time.time()
    store.add_trial(TrialRecord(NAME, 0, {"x": 0.5}, FAIL, metrics={"size": 3.0}, created_at=now, started_at=now,
                                finished_at=now, reason="metrics unavailable: objective 'loss' never reported "
                                                        "(expected a line loss=<number>); last lines:\nsize=3",
                                unreported=Unreported(("loss",))))
    store.add_trial(TrialRecord(NAME, 1, {"x": 0.7}, FAIL, created_at=now, started_at=now, finished_at=now,
                                reason="exited with code 1; last lines:\nboom"))
    store.add_trial(TrialRecord(NAME, 2, {"x": 0.6}, COMPLETE, values=[0.4], metrics={"loss": 0.4}, created_at=now,
                                started_at=now, finished_at=now))
    dispatcher.deliver_to("writeback", trial_suggested(NAME, record.uid, 2, 1))
    trials = trials_on_the_api(kube)
    unavailable = trials[f"{NAME}-0"]["conditions"][-1]
    assert (unavailable["type"], unavailable["reason"]) == ("MetricsUnavailable", "MetricsUnavailable")
    assert unavailable["message"].startswith("Metrics are not available: metrics unavailable: objective 'loss'")
    assert trials[f"{NAME}-0"]["conditions"][-2]["type"] == "Running"
    assert trials[f"{NAME}-1"]["conditions"][-1]["type"] == "Failed"
    status = user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", NAME)["status"]
    assert (status["trialsFailed"], status["trialMetricsUnavailable"], status["trialsSucceeded"]) == (1, 1, 1)
    assert (status["failedTrialList"], status["metricsUnavailableTrialList"]) == ([f"{NAME}-1"], [f"{NAME}-0"])


@pytest.mark.parametrize(("kind", "given", "labels"), [
    ("PyTorchJob", None, {"training.kubeflow.org/job-role": "master"}),
    ("PyTorchJob", {"training.kubeflow.org/replica-type": "worker"}, {"training.kubeflow.org/replica-type": "worker"}),
    ("Job", None, None)])
def test_a_trial_carries_the_primary_pod_labels_katib_gives_it(kube: KubeStub, tmp_path: Path, kind: str,
                                                                given: dict | None, labels: dict | None):
    """Katib's controller copies the template's ``primaryPodLabels`` into each Trial's spec, its
    webhook having defaulted them by the trial's kind (a Kubeflow training job's master; none
    for a Job): its SDK's ``get_job_logs`` selects a Trial's primary pod by them."""
    body = _pytorch_job() if kind == "PyTorchJob" else experiment()
    body["spec"].update(maxTrialCount=4, parallelTrialCount=2)
    if given is not None:
        body["spec"]["trialTemplate"]["primaryPodLabels"] = given
    body["metadata"] = {"name": NAME, "namespace": TEAM}
    created = user_api(kube).create_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", body)
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        dispatcher = watching_dispatcher(store, CountedClient(kube.url), TEAM)
        dispatcher.deliver_to("resource", resource_changed("add", created))
        record = store.get_study(NAME)
        store.add_trial(TrialRecord(NAME, 0, {"x": 0.5}, WAITING, created_at=time.time()))
        dispatcher.deliver_to("writeback", trial_suggested(NAME, record.uid, 0, 1))
    finally:
        store.close()
    trial = user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "trials", f"{NAME}-0")
    assert trial["spec"].get("primaryPodLabels") == labels
    assert trial["spec"]["primaryContainerName"] == body["spec"]["trialTemplate"]["primaryContainerName"]
