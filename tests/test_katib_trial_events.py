"""The Kubernetes Events katuna records about a Katib Experiment and its Trials, as
``kubectl describe`` lists them on the loopback Kubernetes API (with the overlay serving Katib's
kinds): Katib's reasons, one Event per happening however often a report is made, and nothing
else changed when the API refuses to record one. The stand-in refuses the Events the API server
refuses (``ValidateEventCreate``)."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from conftest import study_definition, watching_dispatcher
from kube_standin.rbac import TRIALS_ROLE
from kube_stub import KubeStub, described_time, serving_katib
from kubernetes import client
from test_katib import experiment

from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import resource_changed, study_completed, trial_suggested
from functions.core.katib_trials import EXPERIMENT_LABEL
from functions.core.records import COMPLETE, FAIL, PRUNED, RUNNING, STOPPED_AT_END, StudyRecord, TrialRecord, Unreported
from functions.core.resource_events import (
    NOTE_BYTES,
    Happening,
    Regarding,
    event_name,
    note,
    trial_happenings,
)
from functions.core.validate import parse_study

TEAM = "events-team"
USER = "describer"
NAME = "described"


@pytest.fixture
def kube() -> Iterator[KubeStub]:
    yield from serving_katib(TEAM, USER)


def user_api(kube: KubeStub) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(client.ApiClient(kube.configuration(USER)))


@pytest.fixture
def submitted(kube: KubeStub, tmp_path: Path) -> Iterator[SqliteStore]:
    """The store of katuna's handlers, with the Experiment ``NAME`` submitted."""
    body = experiment(maxTrialCount=5, parallelTrialCount=2)
    body["metadata"] = {"name": NAME, "namespace": TEAM}
    created = user_api(kube).create_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments", body)
    store = SqliteStore(tmp_path / "katuna.db")
    watching_dispatcher(store, client.ApiClient(kube.configuration()), TEAM).deliver_to(
        "resource", resource_changed("add", created))
    try:
        yield store
    finally:
        store.close()


def dispatcher_of(kube: KubeStub, store: SqliteStore):
    return watching_dispatcher(store, client.ApiClient(kube.configuration()), TEAM)


def add_trials(store: SqliteStore) -> None:
    """A trial of each kind of end, one running its second attempt after its first was preempted."""
    now = time.time()
    done = {"created_at": now - 60, "started_at": now - 50, "finished_at": now - 10}
    store.add_trial(TrialRecord(NAME, 0, {"x": 0.1}, COMPLETE, values=[1.0], metrics={"loss": 1.0}, **done))
    store.add_trial(TrialRecord(NAME, 1, {"x": 0.2}, FAIL, reason="metrics unavailable: objective 'loss' never "
                                "reported", unreported=Unreported(("loss",)), **done))
    store.add_trial(TrialRecord(NAME, 2, {"x": 0.3}, FAIL, reason="exited with code 3; last lines:\nboom", **done))
    store.add_trial(TrialRecord(NAME, 3, {"x": 0.4}, RUNNING, attempt=2, created_at=now - 60, started_at=now - 5,
                                suggested_at=now - 8, reason="attempt 1 preempted: the node shut down"))
    store.add_trial(TrialRecord(NAME, 4, {"x": 0.5}, PRUNED, reason="pruned at step 3 by the median rule", **done))


def end(store: SqliteStore, dispatcher) -> None:
    """The study's end, its running trial stopped by it, reported."""
    store.update_trial(NAME, 3, state=PRUNED, finished_at=time.time(), reason=f"{STOPPED_AT_END} (max trials reached)")
    ended = study_completed(NAME, store.get_study(NAME).uid, "completed", "max trials reached (5)")
    dispatcher.deliver_to("stop", ended)
    dispatcher.deliver_to("writeback", ended)


def trial(kube: KubeStub, number: int) -> dict:
    return user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "trials", f"{NAME}-{number}")


def told(kube: KubeStub, obj: dict) -> list[tuple[str, str, str]]:
    """Each Event ``kubectl describe`` shows of ``obj``: its type, reason and message."""
    return [(e["type"], e["reason"], e["message"]) for e in kube.described(obj)]


def all_events(kube: KubeStub) -> list[dict]:
    return client.CoreV1Api(client.ApiClient(kube.configuration())).list_namespaced_event(TEAM).items


def test_each_trial_and_the_experiment_get_katibs_events_as_kubectl_describe_lists_them(kube: KubeStub, submitted):
    store = submitted
    record = store.get_study(NAME)
    add_trials(store)
    dispatcher = dispatcher_of(kube, store)
    dispatcher.deliver_to("writeback", trial_suggested(NAME, record.uid, 4, 1))

    assert told(kube, trial(kube, 0)) == [("Normal", "JobCreated", f"Job {NAME}-0 has been created"),
                                          ("Normal", "JobRunning", f"Job {NAME}-0 is running"),
                                          ("Normal", "JobSucceeded", f"Job {NAME}-0 has succeeded"),
                                          ("Normal", "JobDeleted", f"Job {NAME}-0 has been deleted")]
    assert told(kube, trial(kube, 1))[-2] == (
        "Warning", "MetricsUnavailable", f"Metrics are not available for Job {NAME}-1: metrics unavailable: "
                                         "objective 'loss' never reported")
    assert told(kube, trial(kube, 2))[-2] == ("Warning", "JobFailed", f"Job {NAME}-2 has failed: exited with code 3; "
                                                                      "last lines:\nboom")
    assert told(kube, trial(kube, 3)) == [
        ("Warning", "TrialAttemptLost", "attempt 1 preempted: the node shut down; the trial runs again as attempt 2"),
        ("Normal", "JobCreated", f"Job {NAME}-3-a2 has been created"),
        ("Normal", "JobRunning", f"Job {NAME}-3-a2 is running")]
    assert told(kube, trial(kube, 4))[-2:] == [("Normal", "TrialEarlyStopped",
                                                "Trial is early stopped: pruned at step 3 by the median rule"),
                                               ("Normal", "JobDeleted", f"Job {NAME}-4 has been deleted")]
    experiment_resource = user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM,
                                                                      "experiments", NAME)
    assert told(kube, experiment_resource) == [], "a running Experiment has no Event of its end"

    end(store, dispatcher)
    assert [reason for _, reason, _ in told(kube, trial(kube, 3))[-2:]] == ["TrialKilled", "JobDeleted"]
    assert told(kube, experiment_resource) == [("Normal", "ExperimentMaxTrialsReached",
                                                "Experiment has succeeded: max trials reached (5)")]
    recorded = kube.described(experiment_resource)[0]
    assert (recorded["reportingComponent"], recorded["involvedObject"]["apiVersion"]) == ("katuna.dev/katuna",
                                                                                          "kubeflow.org/v1beta1")
    assert len(all_events(kube)) == 4 + 4 + 4 + 5 + 4 + 1, "a few Events a trial, one for the Experiment's end"


def test_a_report_made_again_records_no_happening_twice(kube: KubeStub, submitted, tmp_path: Path):
    """A report made again after its writes (its handling lost before the store committed, its
    event delivered again) writes the same Trials again: their Events are the ones recorded,
    refused as already there, not new ones."""
    store = submitted
    record = store.get_study(NAME)
    add_trials(store)
    with closing(sqlite3.connect(tmp_path / "before.db")) as copy:
        store.db.conn.backup(copy)
    event = trial_suggested(NAME, record.uid, 4, 1)
    dispatcher_of(kube, store).deliver_to("writeback", event)
    first = sorted((e.metadata.name, e.reason) for e in all_events(kube))

    again = SqliteStore(tmp_path / "before.db")
    try:
        dispatcher_of(kube, again).deliver_to("writeback", event)
    finally:
        again.close()
    assert sorted((e.metadata.name, e.reason) for e in all_events(kube)) == first
    assert len(first) == 19, "its workload made, run and deleted and its end, or its run lost, made and run"


def test_a_trial_that_ran_between_two_reports_shows_its_events_in_the_order_they_happened(kube: KubeStub,
                                                                                         submitted):
    """A trial waiting at one report and ended at the next (both within one tick of the clock)
    gets its workload's creation, its run, its end and its workload's deletion at once: dated
    apart, in that order, as ``kubectl describe`` sorts them by ``eventTime`` alone."""
    store = submitted
    record = store.get_study(NAME)
    now = time.time()
    store.add_trial(TrialRecord(NAME, 0, {"x": 0.1}, created_at=now))
    dispatcher = dispatcher_of(kube, store)
    dispatcher.deliver_to("writeback", trial_suggested(NAME, record.uid, 0, 1))
    assert told(kube, trial(kube, 0)) == []

    store.update_trial(NAME, 0, state=COMPLETE, started_at=now, finished_at=now, values=[1.0], metrics={"loss": 1.0})
    dispatcher.deliver_to("writeback", trial_suggested(NAME, record.uid, 1, 1))
    shown = kube.described(trial(kube, 0))
    assert [e["reason"] for e in shown] == ["JobCreated", "JobRunning", "JobSucceeded", "JobDeleted"]
    times = [described_time(e) for e in shown]
    assert times == sorted(set(times)), "no two of a trial's Events share a time kubectl sorts them by"


def test_a_running_trial_written_again_asks_for_no_event_again(kube: KubeStub, submitted):
    """A running trial whose Trial each later report writes again (its metrics changed) costs
    those reports no request for the Events of what it showed already: as many Event requests a
    trial as happenings, however many reports."""
    store = submitted
    record = store.get_study(NAME)
    now = time.time()
    store.add_trial(TrialRecord(NAME, 0, {"x": 0.1}, RUNNING, created_at=now - 9, started_at=now - 5))
    dispatcher = dispatcher_of(kube, store)
    dispatcher.deliver_to("writeback", trial_suggested(NAME, record.uid, 0, 1))
    recorded = len(all_events(kube))
    assert "JobRunning" in [reason for _, reason, _ in told(kube, trial(kube, 0))]

    for step in range(3):
        store.update_trial(NAME, 0, metrics={"loss": 1.0 / (step + 1)})
        before = len(kube.audit)
        dispatcher.deliver_to("writeback", trial_suggested(NAME, record.uid, 0, 1))
        asked = [(verb, resource) for verb, resource, _, _ in kube.audit[before:]]
        assert ("patch", "trials") in asked and ("create", "events") not in asked, asked
    assert len(all_events(kube)) == recorded


def test_another_process_asks_for_no_event_of_a_trial_again_nor_makes_one_expired_again(kube: KubeStub, submitted):
    """A running trial written again by a report of another process (another worker, one
    restarted) costs it no request for the Events recorded already (no 409 either), and once the
    API server's event TTL has let them expire, a report an hour later makes none of them again
    (a ``kubectl describe`` line hours late): only the Events of what happened since are made,
    as Katib's trial controller records each once, when the Trial's condition changes."""
    store = submitted
    record = store.get_study(NAME)
    now = time.time()
    store.add_trial(TrialRecord(NAME, 0, {"x": 0.1}, RUNNING, created_at=now - 9, started_at=now - 5))
    dispatcher_of(kube, store).deliver_to("writeback", trial_suggested(NAME, record.uid, 0, 1))
    assert [reason for _, reason, _ in told(kube, trial(kube, 0))] == ["JobCreated", "JobRunning"]

    for expired in (False, True):
        if expired:
            with kube.lock:
                kube.events.clear()  # the API server's --event-ttl (1 h) past
        store.update_trial(NAME, 0, metrics={"loss": 0.5 if expired else 0.9})
        before = len(kube.audit)
        dispatcher_of(kube, store).deliver_to("writeback", trial_suggested(NAME, record.uid, 0, 1))
        asked = [(verb, resource) for verb, resource, _, _ in kube.audit[before:]]
        assert ("patch", "trials") in asked and ("create", "events") not in asked, asked
    assert all_events(kube) == []

    store.update_trial(NAME, 0, state=COMPLETE, values=[0.5], finished_at=time.time())
    before = len(kube.audit)
    dispatcher_of(kube, store).deliver_to("writeback", trial_suggested(NAME, record.uid, 0, 1))
    assert [a for a in kube.audit[before:] if a[1] == "events"] == [("create", "events", TEAM, "")] * 2
    assert [reason for _, reason, _ in told(kube, trial(kube, 0))] == ["JobSucceeded", "JobDeleted"]


def test_another_process_neither_asks_for_a_studys_end_event_again_nor_makes_it_again_once_expired(
        kube: KubeStub, submitted):
    """The Experiment's end Event is kept with the study: a report of the ended study by another
    process (another worker, a service restarted), before or after the API server's event TTL
    let the Event expire, asks for none (no 409) and makes none again (a ``kubectl describe``
    line hours after the end)."""
    store = submitted
    record = store.get_study(NAME)
    add_trials(store)
    end(store, dispatcher_of(kube, store))
    experiment_resource = user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM,
                                                                      "experiments", NAME)
    assert [reason for _, reason, _ in told(kube, experiment_resource)] == ["ExperimentMaxTrialsReached"]

    for expired in (False, True):
        if expired:
            with kube.lock:
                kube.events.clear()  # the API server's --event-ttl (1 h) past
        before = len(kube.audit)
        dispatcher_of(kube, store).deliver_to("writeback", study_completed(NAME, record.uid, "completed",
                                                                           "max trials reached (5)"))
        asked = [(verb, resource) for verb, resource, _, _ in kube.audit[before:]]
        assert ("patch", "experiments") in asked and ("create", "events") not in asked, asked
    assert told(kube, experiment_resource) == []


def test_an_event_the_api_refuses_fails_nothing_and_is_said_once(kube: KubeStub, submitted, caplog):
    """Without the grant to create Events (an older RoleBinding's ClusterRole), or with the API
    failing them (503), the Trials and the Experiment's status are written as ever, and the
    handling neither fails nor repeats: the refusal is logged once per namespace and answer."""
    store = submitted
    record = store.get_study(NAME)
    [trials_role] = [o for o in kube.authorizer.objects if o["kind"] == "ClusterRole"
                     and o["metadata"]["name"] == TRIALS_ROLE]
    granted = trials_role["rules"]
    trials_role["rules"] = [r for r in granted if "events.k8s.io" not in r["apiGroups"]]
    add_trials(store)
    dispatcher = dispatcher_of(kube, store)
    with caplog.at_level(logging.WARNING, logger="katuna.kubernetes"):
        dispatcher.deliver_to("writeback", trial_suggested(NAME, record.uid, 4, 1))
    assert all_events(kube) == []
    listed = user_api(kube).list_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "trials",
                                                          label_selector=f"{EXPERIMENT_LABEL}={NAME}")["items"]
    assert len(listed) == 5 and all(t["status"]["conditions"] for t in listed)
    said = [r.getMessage() for r in caplog.records if "could not record Events" in r.getMessage()]
    assert len(said) == 1 and "403" in said[0] and "create` on events.events.k8s.io" in said[0]

    trials_role["rules"] = granted
    kube.faults.refuse("create", "events", times=100)
    with caplog.at_level(logging.WARNING, logger="katuna.kubernetes"):
        end(store, dispatcher)
    status = user_api(kube).get_namespaced_custom_object("kubeflow.org", "v1beta1", TEAM, "experiments",
                                                         NAME)["status"]
    assert status["conditions"][-1]["type"] == "Succeeded" and all_events(kube) == []
    said = [r.getMessage() for r in caplog.records if "could not record Events" in r.getMessage()]
    assert len(said) == 2 and "503" in said[1]


def events_api(kube: KubeStub) -> client.EventsV1Api:
    return client.EventsV1Api(client.ApiClient(kube.configuration()))


def event_body(**fields) -> dict:
    body = {"metadata": {"name": "x.0123456789abcdef", "namespace": TEAM}, "eventTime": "2025-01-02T03:04:05.000001Z",
            "reportingController": "katuna.dev/katuna", "reportingInstance": "katuna-0", "action": "Running",
            "reason": "JobRunning", "type": "Normal", "note": "Job x is running",
            "regarding": {"apiVersion": "v1", "kind": "Pod", "namespace": TEAM, "name": "x", "uid": "u-1"}}
    return {**body, **fields}


@pytest.mark.parametrize("fields, refused", [
    ({"eventTime": None}, "eventTime: Required value"),
    ({"type": "Info"}, "type: Invalid value"),
    ({"reportingController": "katuna katuna"}, "reportingController: Invalid value"),
    ({"reportingController": ""}, "reportingController: Required value"),
    ({"reportingInstance": "i" * 129}, "reportingInstance: Invalid value"),
    ({"action": ""}, "action: Required value"),
    ({"reason": "r" * 129}, "reason: Invalid value"),
    ({"reason": "é" * 65}, "reason: Invalid value"),
    ({"action": "é" * 65}, "action: Invalid value"),
    ({"reportingInstance": "é" * 65}, "reportingInstance: Invalid value"),
    ({"note": "é" * 513}, "message: Invalid value"),
    ({"deprecatedCount": 2}, "count: Invalid value"),
    ({"deprecatedSource": {"component": "me"}}, "source: Invalid value"),
    ({"metadata": {"name": "Not_A_Name", "namespace": TEAM}}, "metadata.name: Invalid value"),
    ({"regarding": {"kind": "Node", "name": "n", "uid": "u"}}, "involvedObject.namespace: Invalid value"),
])
def test_the_stand_in_refuses_the_events_the_api_server_refuses(kube: KubeStub, fields: dict, refused: str):
    """Sent as JSON, as any client may send it: Kubernetes' Python client refuses a few of these
    itself (an Event without ``eventTime``) before sending them."""
    body = {key: value for key, value in event_body(**fields).items() if value is not None}
    request = urllib.request.Request(f"{kube.url}/apis/events.k8s.io/v1/namespaces/{TEAM}/events",
                                     json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10)
    assert raised.value.code == 422 and refused in raised.value.read().decode()
    assert all_events(kube) == []


def test_an_event_made_again_is_refused_and_listed_through_v1_as_kubectl_lists_it(kube: KubeStub):
    events_api(kube).create_namespaced_event(TEAM, event_body())
    with pytest.raises(client.ApiException) as raised:
        events_api(kube).create_namespaced_event(TEAM, event_body(note="said again"))
    assert raised.value.status == 409
    [listed] = all_events(kube)
    assert (listed.involved_object.name, listed.message, listed.reporting_component, listed.count) == (
        "x", "Job x is running", "katuna.dev/katuna", None)


def test_a_trial_gets_a_few_events_whose_names_and_notes_the_api_takes():
    long = Regarding("kubeflow.org/v1beta1", "Trial", TEAM, "a" * 250 + "-7", "uid-1")
    name = event_name(long, "end")
    assert len(name) <= 253 and name == event_name(long, "end") != event_name(long, "running/1")
    assert not name.split(".")[0].endswith("-")
    assert len(note("é" * 2000).encode()) <= NOTE_BYTES and note("short") == "short"
    definition = study_definition(name=NAME)
    record = StudyRecord(parse_study(definition), definition, ".", "uid-1")
    ended = TrialRecord(NAME, 3, {"x": 0.1}, FAIL, attempt=4, reason="exited with code 1\nattempt 3 interrupted: x",
                        created_at=1.0, started_at=2.0, finished_at=3.0)
    happenings = trial_happenings(record, ended)
    assert [h.reason for h in happenings] == ["TrialAttemptLost", "JobCreated", "JobRunning", "JobFailed",
                                              "JobDeleted"]
    assert all(isinstance(h, Happening) and h.type in ("Normal", "Warning") for h in happenings)
    assert [h.at for h in happenings] == sorted({h.at for h in happenings}), "dated apart, in order"
    retained = study_definition(name=NAME)
    retained["trialTemplate"]["retain"] = True
    kept = StudyRecord(parse_study(retained), retained, ".", "uid-1")
    assert "JobDeleted" not in [h.reason for h in trial_happenings(kept, ended)], "a retained workload stays"
    waiting = TrialRecord(NAME, 3, {"x": 0.1}, PRUNED, attempt=2, reason="attempt 1 preempted: x", created_at=1.0,
                          started_at=2.0, suggested_at=3.0, finished_at=4.0)
    assert [h.reason for h in trial_happenings(record, waiting)] == ["TrialAttemptLost", "TrialEarlyStopped"], \
        "an attempt stopped before it started made no workload"
