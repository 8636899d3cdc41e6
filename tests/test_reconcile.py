"""The tick repairs what lost events left behind: a real ``katuna serve`` in reply mode running
trial Jobs on the loopback Kubernetes API, fed PingSource ticks (``{}``, through the CloudEvents
SDK) and the events it sends, as a Knative broker would deliver them (the routing table's
Triggers, replies and ``K_SINK``); and the same reconcile run by the watcher in queue mode."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import closing
from pathlib import Path

import pytest
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent
from conftest import study_definition
from http_helpers import Service, Sink
from kube_standin import katib_api
from kube_stub import KubeStub
from test_resources import katib_resource
from waiting import BUSY_WAIT, eventually

from functions.adapters.kubernetes_resources import LIST_PAGE
from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.cluster_ports import ClusterResources, watched_namespace
from functions.core.disruptions import Disruption
from functions.core.errors import TemporaryError
from functions.core.events import OBJECTS, ROUTES, derived_id, study_created, study_stalled, trial_finished
from functions.core.launch import trial_launch
from functions.core.records import RUNNING, StudyRecord, TrialRecord
from functions.core.rotation import rotated
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps, starting
from functions.handlers.reconcile import Budget, reconcile_study
from functions.handlers.resource_check import IN_FLIGHT
from functions.handlers.submit import store_study
from functions.settings import Settings

NAMESPACE = "katuna"
KUBE_NAMESPACES = ("rc-queue", "rc-many")
"""Other namespaces these tests apply study resources in, a copy of katuna's Role bound in each
(as where katuna is deployed in that namespace)."""
PING = "dev.knative.sources.ping"
FINISHED = "dev.katuna.trial.finished"
COMPLETED = "dev.katuna.study.completed"
SUGGESTED = "dev.katuna.trial.suggested"
CREATED = "dev.katuna.study.created"


@pytest.fixture(scope="module", autouse=True)
def study_grants(kube: KubeStub) -> None:
    with kube.lock:
        for namespace in KUBE_NAMESPACES:
            kube.authorizer.copy_role("katuna", namespace)


def parse(headers: dict[str, str], body: bytes) -> BaseCloudEvent:
    return ce_http.from_http_event(ce_http.HTTPMessage(headers={k.lower(): v for k, v in headers.items()}, body=body))


def ping() -> CloudEvent:
    """A tick as a PingSource sends it: its ``data`` (``{}``) as JSON, a fresh id."""
    return CloudEvent(attributes={"type": PING, "source": f"/apis/v1/namespaces/{NAMESPACE}/pingsources/katuna-tick",
                                  "datacontenttype": "application/json"}, data={})


def about(event: BaseCloudEvent, study: str) -> bool:
    data = event.get_data()
    return isinstance(data, dict) and study in (data.get("study"), (data.get("metadata") or {}).get("name"))


class Broker:
    """Plays the Knative broker: delivers each event to the functions whose Triggers match it
    (type, and ``apiversion`` for ApiServerSource events), then what they reply and send to
    ``K_SINK``, until nothing is left."""

    def __init__(self, service: Service, sink: Sink) -> None:
        self.service, self.sink = service, sink
        self.taken = len(sink.received)

    def post(self, event: BaseCloudEvent, function: str) -> list[BaseCloudEvent]:
        """Deliver to one function: its reply and what it sent to ``K_SINK``, in that order."""
        message = ce_http.to_binary_event(event)
        status, headers, body = self.service.request("POST", f"/functions/{function}", message.body, message.headers)
        assert status in (200, 202), (function, status, body)
        if status == 200:
            return [parse(headers, body)]
        assert body == b"", "an answer that is no reply is empty, as Knative's broker filter requires"
        return self._sent(int(headers["Katuna-Emitted-Count"]))

    def _sent(self, count: int) -> list[BaseCloudEvent]:
        start, self.taken = self.taken, self.taken + count
        received = self.sink.wait(self.taken)
        return [parse(*message) for message in received[start:self.taken]]

    def pending(self) -> list[BaseCloudEvent]:
        """What the service sent to ``K_SINK`` outside a delivery (a submitted study's start)."""
        return self._sent(len(self.sink.received) - self.taken)

    def run(self, events: Iterable[BaseCloudEvent], lost: Callable[[BaseCloudEvent], bool] = lambda e: False) -> list[BaseCloudEvent]:
        """Deliver ``events`` and every event that follows from them; all of them, in order."""
        queue, seen = deque([*self.pending(), *events]), []
        while queue:
            event = queue.popleft()
            seen.append(event)
            if lost(event):
                continue
            for function in ROUTES[event.get_type()]:
                if OBJECTS.get(function, event.get_extension("apiversion")) == event.get_extension("apiversion"):
                    queue.extend(self.post(event, function))
        return seen


@pytest.fixture(scope="module")
def sink():
    running = Sink()
    yield running
    running.close()


@pytest.fixture(scope="module")
def service(kube: KubeStub, sink: Sink, tmp_path_factory):
    running = Service(tmp_path_factory.mktemp("reconcile"), workers=1, KATUNA_EVENTS="reply", K_SINK=sink.url,
                      KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE=NAMESPACE,
                      KATUNA_TICK_FLOOR="0")
    yield running
    running.close()


@pytest.fixture
def broker(service: Service, sink: Sink) -> Broker:
    return Broker(service, sink)


def definition(name: str, **overrides) -> dict:
    native = study_definition(name=name, **overrides)
    native["trialTemplate"]["image"] = "python:3.12"
    return native


def submit(service: Service, name: str, **overrides) -> str:
    """POST the study (its start goes to ``K_SINK``, sent on once no event waits to be); its uid."""
    status, _, body = service.request("POST", "/studies", json.dumps(definition(name, **overrides)),
                                      {"Content-Type": "application/json"})
    assert status == 201, body
    eventually(lambda: b"katuna_queue_depth 0.0" in service.request("GET", "/metrics")[2],
               "the start's post", timeout=60)
    return uid_of(service, name)


def uid_of(service: Service, name: str) -> str:
    with closing(sqlite3.connect(service.workdir / "katuna.db")) as db:
        return db.execute("SELECT uid FROM studies WHERE name = ?", [name]).fetchone()[0]


def backdate(service: Service, update: str, *args: object) -> None:
    """Move a stored time :data:`IN_FLIGHT` seconds back (``update``'s first parameter): as if
    that long had passed since."""
    with closing(sqlite3.connect(service.workdir / "katuna.db", timeout=BUSY_WAIT)) as db, db:
        db.execute(update, [IN_FLIGHT, *args])


def job_ended(kube: KubeStub, name: str) -> bool:
    job = kube.jobs.get((NAMESPACE, name))
    return job is not None and any(c["type"] in ("Complete", "Failed") for c in job["status"].get("conditions", []))


def study(service: Service, name: str) -> dict:
    return service.json("GET", f"/studies/{name}")[1]


def trials(service: Service, name: str) -> list[dict]:
    return service.json("GET", f"/studies/{name}/trials")[1]


def handled(service: Service, handler: str, event_id: str) -> int:
    with closing(sqlite3.connect(service.workdir / "katuna.db")) as db:
        return db.execute("SELECT count(*) FROM processed_events WHERE handler = ? AND event_id = ?",
                          [handler, event_id]).fetchone()[0]


def answer(service: Service, event: BaseCloudEvent, function: str) -> tuple[list[str], list[BaseCloudEvent]]:
    """Deliver to one function: the ids of the events it emitted, and its reply (the others went
    to ``K_SINK``)."""
    message = ce_http.to_binary_event(event)
    status, headers, body = service.request("POST", f"/functions/{function}", message.body, message.headers)
    if status == 200:
        reply = parse(headers, body)
        return [reply.get_id()], [reply]
    assert status == 202 and body == b"", body
    return [named.rsplit(" ", 1)[1] for named in headers.get("Katuna-Emitted", "").split(", ") if named], []


def job_event(kube: KubeStub, name: str) -> CloudEvent:
    """The update an ApiServerSource sends about a trial Job as the API holds it now."""
    job = {"apiVersion": "batch/v1", "kind": "Job", **kube.jobs[(NAMESPACE, name)]}
    return CloudEvent(attributes={"type": "dev.knative.apiserver.resource.update", "source": "https://10.96.0.1:443",
                                  "datacontenttype": "application/json", "kind": "Job", "apiversion": "batch/v1",
                                  "name": name, "namespace": NAMESPACE}, data=job)


@pytest.mark.slow
def test_a_pingsource_tick_with_empty_data_is_taken_by_every_function_it_is_routed_to(service: Service):
    message = ce_http.to_binary_event(ping())
    status, _, body = service.request("POST", "/", message.body, message.headers)
    assert status in (200, 202), body
    assert ROUTES[PING] == ("provision", "reconcile")


@pytest.mark.slow
def test_a_trial_whose_job_ended_unannounced_ends_on_the_next_tick(service: Service, broker: Broker, kube: KubeStub):
    uid = submit(service, "rc-lost", maxTrials=1, parallelism=1)
    broker.run([])
    eventually(lambda: job_ended(kube, "rc-lost-0"), "the Job's end", timeout=60)
    assert trials(service, "rc-lost")[0]["state"] == "RUNNING", "no ApiServerSource event told of the Job's end"
    seen = broker.run([ping()])
    finished = [e for e in seen if e.get_type() == FINISHED and about(e, "rc-lost")]
    assert [e.get_id() for e in finished] == [derived_id("finished", uid, 0, 1)]
    assert study(service, "rc-lost")["status"] == "completed"
    trial = trials(service, "rc-lost")[0]
    assert trial["state"] == "COMPLETE" and trial["value"] is not None
    assert not [e for e in broker.run([ping()]) if about(e, "rc-lost")], "an ended study is left alone"


@pytest.mark.slow
def test_a_time_budget_ends_a_study_on_a_tick_and_a_study_waiting_on_its_jobs_is_not_stalled(
        service: Service, broker: Broker, kube: KubeStub):
    submit(service, "rc-budget", mode="hang", timeBudget=3600, maxTrials=5, parallelism=1)
    broker.run([])
    eventually(lambda: ("katuna", "rc-budget-0") in kube.jobs, "the trial's Job", timeout=60)
    early = [e for e in broker.run([ping()]) if about(e, "rc-budget")]
    assert early == [], "a study whose Job runs is neither stalled nor over its budget"
    with closing(sqlite3.connect(service.workdir / "katuna.db", timeout=BUSY_WAIT)) as db, db:
        db.execute("UPDATE studies SET started_at = started_at - 3600 WHERE name = ?", ["rc-budget"])
    ended = [e for e in broker.run([ping()]) if about(e, "rc-budget")]
    assert [e.get_type() for e in ended if e.get_type() == COMPLETED] == [COMPLETED]
    record = study(service, "rc-budget")
    assert record["status"] == "failed" and "time budget of 1h00m used" in record["reason"]
    assert [t["state"] for t in trials(service, "rc-budget")] == ["STOPPED"]
    assert ("katuna", "rc-budget-0") not in kube.jobs, "its Job was deleted"


@pytest.mark.slow
def test_a_study_whose_start_was_lost_resumes_on_a_tick_with_one_id_per_stall(
        service: Service, broker: Broker, kube: KubeStub):
    submit(service, "rc-stalled", maxTrials=1, parallelism=1)
    lost = [e for e in broker.run([], lost=lambda e: e.get_type() == CREATED) if about(e, "rc-stalled")]
    assert [e.get_type() for e in lost] == [CREATED] and study(service, "rc-stalled")["startedAt"] is None
    ticks = [[e for e in broker.run([ping()], lost=lambda e: e.get_type() == CREATED) if about(e, "rc-stalled")]
             for _ in range(2)]
    assert [[e.get_type() for e in tick] for tick in ticks] == [[CREATED], [CREATED]]
    assert ticks[0][0].get_id() == ticks[1][0].get_id(), "the same stall, the same resume"
    broker.run(ticks[0])
    eventually(lambda: job_ended(kube, "rc-stalled-0"), "the trial's Job end", timeout=60)
    broker.run([ping()])
    assert study(service, "rc-stalled")["status"] == "completed"


def test_a_restarted_runs_stall_is_resumed_under_an_id_of_its_own_however_like_an_earlier_stall():
    state = (3, [(2, 0, RUNNING)])
    first, again, restarted = (study_stalled("s", "u", state, restarts) for restarts in (0, 0, 1))
    assert first.id == again.id == derived_id("stalled", "u", state), "a first run's stall keeps the id it had"
    assert restarted.id != first.id, "an earlier run's handled stall would hide the restarted run's"
    assert (first.data.get("restarts"), restarted.data["restarts"]) == (None, 1)


def resource(name: str, **overrides) -> dict:
    native = definition(name, **overrides)
    del native["name"]
    return {"apiVersion": "katuna.dev/v1", "kind": "Study", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": native}


@pytest.mark.slow
def test_a_resource_applied_unannounced_starts_on_a_tick_and_stops_when_deleted_unannounced(
        service: Service, broker: Broker, kube: KubeStub):
    obj = kube.apply(resource("rc-kst", mode="hang", maxTrials=2, parallelism=1))
    seen = broker.run([ping()])
    added = [e for e in seen if e.get_type() == "dev.knative.apiserver.resource.add" and about(e, "rc-kst")]
    assert [(e.get_extension("apiversion"), e.get_extension("kind"), e.get_extension("namespace")) for e in added] \
        == [("katuna.dev/v1", "Study", NAMESPACE)], "routed by the Triggers that take study resources"
    record = study(service, "rc-kst")
    assert record["status"] == "running" and record["resource"] == {"kind": "Study", "namespace": NAMESPACE,
                                                                    "name": "rc-kst"}
    eventually(lambda: ("katuna", "rc-kst-0") in kube.jobs, "the trial's Job", timeout=60)
    assert not [e for e in broker.run([ping()]) if about(e, "rc-kst")], "a resource handled is not sent again"
    assert kube.resources[("studies", NAMESPACE, "rc-kst")]["status"]["phase"] == "Running"

    kube.delete("Study", NAMESPACE, "rc-kst")
    seen = broker.run([ping()])
    assert [e.get_type() for e in seen if about(e, "rc-kst")][:2] == ["dev.knative.apiserver.resource.delete", COMPLETED]
    record = study(service, "rc-kst")
    assert (record["status"], record["reason"]) == ("stopped", "stopped: its resource was deleted")
    assert ("katuna", "rc-kst-0") not in kube.jobs
    assert obj["metadata"]["uid"] not in json.dumps([e.get_data() for e in broker.run([ping()])])


@pytest.mark.slow
def test_two_ticks_at_once_send_each_fact_with_one_id_and_change_nothing_twice(
        service: Service, broker: Broker, kube: KubeStub):
    uid = submit(service, "rc-twice", maxTrials=2, parallelism=2)
    broker.run([])
    eventually(lambda: job_ended(kube, "rc-twice-0") and job_ended(kube, "rc-twice-1"), "both Jobs' ends", timeout=60)
    first = ping()
    deliveries = [(first, "reconcile"), (first, "reconcile"), (ping(), "reconcile"), (job_event(kube, "rc-twice-0"), "jobwatch")]
    answers: list[tuple[list[str], list[BaseCloudEvent]]] = [([], [])] * len(deliveries)

    def deliver(index: int) -> None:
        answers[index] = answer(service, *deliveries[index])

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(len(deliveries))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    facts = [derived_id("finished", uid, number, 1) for number in (0, 1)]
    ids = [sorted(i for i in emitted if i in facts) for emitted, _ in answers]
    assert ids == [sorted(facts)] * 3 + [facts[:1]], "each tick, and the Job's own event, send each fact with one id"

    sent = sum(len(emitted) for emitted, replies in answers if not replies)
    broker.sink.wait(broker.taken + sent)  # katuna's senders post to K_SINK after the answers, from their own threads
    seen = broker.run([e for _, replies in answers for e in replies])
    assert study(service, "rc-twice")["status"] == "completed"
    assert sorted(t["state"] for t in trials(service, "rc-twice")) == ["COMPLETE", "COMPLETE"]
    assert [handled(service, "collect", fact) for fact in facts] == [1, 1]
    completed = {e.get_id() for e in seen if e.get_type() == COMPLETED and about(e, "rc-twice")}
    assert len(completed) == 1 and handled(service, "stop", completed.pop()) == 1
    assert sorted(name for _, name in kube.create_requests if name.startswith("rc-twice")) == ["rc-twice-0", "rc-twice-1"]


@pytest.mark.slow
def test_a_trial_whose_suggestion_was_lost_starts_on_a_tick_while_the_studys_other_trials_run(
        service: Service, broker: Broker, kube: KubeStub):
    uid = submit(service, "rc-unsuggested", mode="hang", maxTrials=3, parallelism=3)

    def lost(event: BaseCloudEvent) -> bool:
        return event.get_type() == SUGGESTED and about(event, "rc-unsuggested") and event.get_data()["trial"] == 1

    original = [e for e in broker.run([], lost=lost) if lost(e)]
    assert len(original) == 1
    eventually(lambda: {("katuna", "rc-unsuggested-0"), ("katuna", "rc-unsuggested-2")} <= kube.jobs.keys(),
               "the other trials' Jobs", timeout=60)
    assert not [e for e in broker.run([ping()]) if about(e, "rc-unsuggested")], \
        "a suggestion just made may still be on its way"

    backdate(service, "UPDATE trials SET created_at = created_at - ? WHERE study = ? AND number = 1", "rc-unsuggested")
    again = [e for e in broker.run([ping()]) if about(e, "rc-unsuggested")]
    assert [(e.get_type(), e.get_id()) for e in again] == [(SUGGESTED, derived_id("suggested", uid, 1, 1))]
    assert [t["state"] for t in trials(service, "rc-unsuggested")] == ["RUNNING"] * 3
    assert ("katuna", "rc-unsuggested-1") in kube.jobs
    assert not job_ended(kube, "rc-unsuggested-0") and not job_ended(kube, "rc-unsuggested-2"), \
        "started while the others run"

    broker.run(original)
    assert handled(service, "spawn", original[0].get_id()) == 1, "the lost event, come late, is a duplicate"
    assert [name for _, name in kube.create_requests].count("rc-unsuggested-1") == 1
    assert not [e for e in broker.run([ping()]) if about(e, "rc-unsuggested")], "a started trial is left alone"
    assert service.request("POST", "/studies/rc-unsuggested/stop")[0] == 200
    broker.run([])
    assert not {name for _, name in kube.jobs if name.startswith("rc-unsuggested-")}


@pytest.mark.slow
def test_an_ended_studys_status_whose_write_back_was_given_up_is_written_on_a_tick(
        service: Service, broker: Broker, kube: KubeStub):
    kube.apply(resource("rc-written", maxTrials=1, parallelism=1))
    broker.run([ping()])
    uid = uid_of(service, "rc-written")
    eventually(lambda: job_ended(kube, "rc-written-0"), "the trial's Job end", timeout=60)

    def lost(event: BaseCloudEvent) -> bool:
        return event.get_type() == COMPLETED and about(event, "rc-written")

    ended = [e for e in broker.run([ping()], lost=lost) if lost(e)]
    assert [e.get_id() for e in ended] == [derived_id("completed", uid)]
    for function in ("stop", "provision"):
        broker.post(ended[0], function)  # delivered by their Triggers; writeback's gave up
    assert study(service, "rc-written")["status"] == "completed"
    shown = kube.resources[("studies", NAMESPACE, "rc-written")]["status"]
    assert shown["phase"] == "Running", "the status the last write-back left"
    assert not [e for e in broker.run([ping()]) if about(e, "rc-written")], \
        "a study that just ended may still have its study.completed on its way"

    backdate(service, "UPDATE studies SET completed_at = completed_at - ? WHERE name = ?", "rc-written")
    again = [e for e in broker.run([ping()]) if about(e, "rc-written")]
    assert [(e.get_type(), e.get_id()) for e in again] == [(COMPLETED, ended[0].get_id())]
    status = kube.resources[("studies", NAMESPACE, "rc-written")]["status"]
    assert (status["phase"], status["trialsSucceeded"], status["trialsRunning"]) == ("Succeeded", 1, 0)
    assert status["conditions"][-1]["type"] == "Succeeded" and "completionTime" in status
    assert (handled(service, "stop", ended[0].get_id()), handled(service, "provision", ended[0].get_id())) == (1, 0), \
        "stop takes it as the duplicate it is; provision, with no node pool to release, keeps no record of it"
    assert not [e for e in broker.run([ping()]) if about(e, "rc-written")], "a status as stored is left alone"


@pytest.mark.slow
def test_in_queue_mode_the_watcher_starts_a_resource_applied_while_the_service_was_down(
        kube: KubeStub, tmp_path: Path):
    obj = resource("rc-queued", maxTrials=2, parallelism=2)
    obj["metadata"]["namespace"] = "rc-queue"
    del obj["spec"]["trialTemplate"]["image"]
    kube.apply(obj)
    running = Service(tmp_path, workers=1, KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE="rc-queue")
    try:
        assert running.wait_for("rc-queued")["status"] == "completed"
        eventually(lambda: (kube.resources[("studies", "rc-queue", "rc-queued")].get("status") or {}).get("phase")
                   == "Succeeded", "the resource's status", timeout=60)
    finally:
        running.close()


def test_a_later_attempt_lost_is_suggested_again_once_its_own_suggestion_is_old_enough(tmp_path: Path):
    """A preempted trial's next attempt is suggested when the preemption is handled, long after
    the trial was created: the tick counts from that suggestion, not the trial's creation."""
    now = [1000.0]
    store = SqliteStore(tmp_path / "katuna.db")
    executor = LocalExecutor(tmp_path / "logs", lambda event: None)
    deps = Deps(store, executor, lambda: now[0])
    native = study_definition("rc-again", mode="hang", maxTrials=2, parallelism=2)
    record, _ = store_study(deps, parse_study(native), native)
    dispatcher = Dispatcher(deps)
    try:
        for suggested in dispatcher.deliver(study_created("rc-again", record.uid)):
            dispatcher.deliver(suggested)
        now[0] += 1000
        lost = dispatcher.deliver(trial_finished("rc-again", record.uid, 0, 1, "preempted", message="node reclaimed"))
        assert [e.id for e in lost] == [derived_id("suggested", record.uid, 0, 2)]
        now[0] += IN_FLIGHT - 1
        assert reconcile_study(record, deps, Budget()) == [], "its suggestion may still be on its way"
        now[0] += 1
        again = reconcile_study(record, deps, Budget())
        assert [e.id for e in again] == [e.id for e in lost]
        dispatcher.deliver(again[0])
        trial = store.get_trial("rc-again", 0)
        assert (trial.state, trial.attempt) == ("RUNNING", 2)
        assert executor.exists(trial_launch(record, trial))
    finally:
        executor.shutdown()
        store.close()


def compacting_during_the_list(kube: KubeStub, monkeypatch: pytest.MonkeyPatch, change: Callable[[int], None],
                               changes: int, times: int = 1) -> list[str]:
    """Make ``kube`` answer the first ``times`` ``continue`` requests of lists only after
    ``changes`` changes (``change(i)``, ``i`` counting on) pushed the list's version out of its
    kept history, as etcd's compaction does to a slow list: 410 Expired. The continue tokens
    asked with, in order."""
    serve, asked = kube.serve, []

    def compacted(call):
        token = call.query.get("continue")
        if token:
            if len(asked) < times:
                for i in range(len(asked) * changes, (len(asked) + 1) * changes):
                    change(i)
            asked.append(token)
        return serve(call)

    monkeypatch.setattr(kube, "serve", compacted)
    return asked


def test_a_list_whose_continue_token_expired_is_started_again_and_whole(monkeypatch: pytest.MonkeyPatch):
    """A continue token the API server compacted away (410 Expired, "start a new list without
    the continue parameter") starts the list again from its first page: every resource, those
    made meanwhile included, listed once."""
    kube = KubeStub(namespaces=("rc-expire",), history=20)
    with kube.lock:
        kube.authorizer.copy_role("katuna", "rc-expire")
    try:
        names = [f"rc-expire-{i:03}" for i in range(LIST_PAGE + 1)]
        for name in names:
            kube.apply({**resource(name), "metadata": {"name": name, "namespace": "rc-expire"}})
        late = [f"rc-expire-late-{i:02}" for i in range(25)]
        asked = compacting_during_the_list(kube, monkeypatch, lambda i: kube.apply(
            {**resource(late[i]), "metadata": {"name": late[i], "namespace": "rc-expire"}}), len(late))
        listed = ClusterResources(kube.url, "rc-expire").list("rc-expire")
        assert sorted(o["metadata"]["name"] for o in listed) == sorted(names + late)
        assert len(asked) == 2, "the expired token, then the new list's own"
    finally:
        kube.close()


def test_a_list_whose_continue_token_expires_again_is_a_temporary_error(monkeypatch: pytest.MonkeyPatch):
    """The list started again once expires too: the event is delivered again, later."""
    kube = KubeStub(namespaces=("rc-expire",), history=20)
    with kube.lock:
        kube.authorizer.copy_role("katuna", "rc-expire")
    try:
        for i in range(LIST_PAGE + 1):
            kube.apply({**resource(f"rc-expire-{i:03}"), "metadata": {"name": f"rc-expire-{i:03}", "namespace": "rc-expire"}})
        asked = compacting_during_the_list(kube, monkeypatch, lambda i: kube.apply(
            {**resource(f"rc-again-{i:02}"), "metadata": {"name": f"rc-again-{i:02}", "namespace": "rc-expire"}}),
                                           25, times=2)
        with pytest.raises(TemporaryError, match="410 Gone|Expired"):
            ClusterResources(kube.url, "rc-expire").list("rc-expire")
        assert len(asked) == 2, "the list was started again once"
    finally:
        kube.close()


def test_katibs_experiments_are_listed_across_namespaces_page_by_page_and_whole_when_a_token_expires(
        monkeypatch: pytest.MonkeyPatch):
    """Katib's Experiments in every namespace are read :data:`LIST_PAGE` at a time, never in one
    answer of them all; a continue token the API server compacted away (410 Expired) starts the
    list again: every Experiment, those made meanwhile included, listed once."""
    kube = KubeStub(namespaces=("kx-a", "kx-b"), history=20)
    katib_api.install(kube)
    try:
        names = [(f"kx-{'ab'[i % 2]}", f"kx-{i:03}") for i in range(LIST_PAGE + 1)]
        for namespace, name in names:
            kube.apply(katib_experiment(namespace, name))
        late = [("kx-b", f"kx-late-{i:02}") for i in range(25)]
        asked = compacting_during_the_list(kube, monkeypatch, lambda i: kube.apply(katib_experiment(*late[i])),
                                           len(late))
        serve, limits = kube.serve, []
        monkeypatch.setattr(kube, "serve", lambda call: limits.append(call.query.get("limit")) or serve(call))
        listed = ClusterResources(kube.url, katib_api=True).list_katib()
        assert sorted((o["metadata"]["namespace"], o["metadata"]["name"]) for o in listed) == sorted(names + late)
        assert {(o["apiVersion"], o["kind"]) for o in listed} == {("kubeflow.org/v1beta1", "Experiment")}
        assert len(asked) == 2, "the expired token, then the new list's own"
        assert limits and set(limits) == {str(LIST_PAGE)}, "every page asked for with a limit"
    finally:
        kube.close()


def katib_experiment(namespace: str, name: str) -> dict:
    """Katib's own Experiment (``kubeflow.org/v1beta1``) named ``name`` in ``namespace``."""
    return {**katib_resource(name), "apiVersion": "kubeflow.org/v1beta1",
            "metadata": {"name": name, "namespace": namespace}}


def test_a_tick_looks_at_a_different_slice_each_window_and_at_everything_over_enough_of_them():
    items = list(range(7))
    assert rotated(items, 5, 10) == items
    slices = [rotated(items, window, 3)[:3] for window in range(7)]
    assert slices[0] == [0, 1, 2] and slices[1] == [3, 4, 5] and slices[2] == [6, 0, 1]
    assert {i for chosen in slices[:3] for i in chosen} == set(items)


def test_resources_are_listed_page_by_page_only_where_there_is_a_cluster(kube: KubeStub):
    names = [f"rc-many-{i:03}" for i in range(LIST_PAGE + 1)]
    for name in names:
        kube.apply({**resource(name), "metadata": {"name": name, "namespace": "rc-many"}})
    kube.apply({"apiVersion": "katuna.dev/v1", "kind": "Experiment",
                "metadata": {"name": "rc-katib", "namespace": "rc-many"},
                "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"},
                         "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
                         "trialTemplate": {}}})
    listed = ClusterResources(kube.url, "rc-many").list("rc-many")
    assert sorted((o["kind"], o["metadata"]["name"]) for o in listed) == \
        [("Experiment", "rc-katib")] + [("Study", name) for name in names]
    assert all(o["apiVersion"] == "katuna.dev/v1" for o in listed)
    assert watched_namespace(Settings()) is None, "no API address and not in a cluster: nothing is listed"
    assert watched_namespace(Settings(k8s_api=kube.url)) == "default"
    in_a_pod = Settings.from_env({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KATUNA_K8S_NAMESPACE": "katuna"})
    assert watched_namespace(in_a_pod) == "katuna"


def test_a_ticks_writes_from_what_it_read_never_land_on_a_study_made_since_under_the_same_name(tmp_path: Path):
    """A look read study 'demo' (uid A) and its trial 0; A is deleted and B made under its name,
    with a trial 0 of its own running; what the look saw of A's trial (a lost pod, why it waits,
    the observations of its log) is not kept for B's."""
    store = SqliteStore(tmp_path / "k.db")
    spec = parse_study(study_definition("demo"))
    old = store.add_study(StudyRecord(spec, {}, str(tmp_path), uid="uid-a"))
    store.add_trial(TrialRecord("demo", 0, {"x": 1.0}, RUNNING, started_at=1.0))
    seen = store.get_trial("demo", 0)
    store.delete_study("demo")
    new = store.add_study(StudyRecord(spec, {}, str(tmp_path), uid="uid-b"))
    store.add_trial(TrialRecord("demo", 0, {"x": -3.0}, RUNNING, started_at=2.0))
    deps = Deps(store, None, lambda: 3.0)
    try:
        assert starting.current_attempt(store, old, seen) is None
        starting._keep_lost(old, seen, deps, {"pod-of-a": Disruption("Evicted", "node drained")}, frozenset(),
                           None)
        starting._note_held(old, seen, deps, "waiting for Kueue to admit it (queue full)")
        assert store.lost_pods("demo", 0).of(1) == {} and store.get_trial("demo", 0).reason == ""
        assert starting.current_attempt(store, new, store.get_trial("demo", 0)) is not None, "B's own look writes"
    finally:
        store.close()


def test_a_tick_judges_the_stop_rules_on_the_study_as_stored_now_not_as_it_read_it(tmp_path: Path):
    """The tick read the study with ``maxFailedTrials: 1``; an edit raised it to 5 before the tick
    judged it, with two trials failed: the study runs on."""
    store = SqliteStore(tmp_path / "k.db")
    definition = study_definition("edited", maxTrials=10, maxFailedTrials=1)
    read = store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), uid="uid-e"))
    for number in (0, 1):
        store.add_trial(TrialRecord("edited", number, {"x": 1.0}, "FAIL", started_at=1.0))
    deps = Deps(store, LocalExecutor(tmp_path / "logs", lambda event: None), lambda: 3.0)
    try:
        assert [e.data["status"] for e in reconcile_study(read, deps, Budget(), poll=False)
                if e.type == "dev.katuna.study.completed"] == ["failed"], "by the rule it was read with"
        edited = {**definition, "maxFailedTrials": 5}
        store.update_study("edited", spec=parse_study(edited), definition=edited)
        assert not [e for e in reconcile_study(read, deps, Budget(), poll=False)
                    if e.type == "dev.katuna.study.completed"]
    finally:
        deps.executor.shutdown()
        store.close()
