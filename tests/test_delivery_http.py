"""At-least-once delivery through the cluster's own path: ``katuna serve`` (real gunicorn, two
workers) in reply mode on loopback, trials as Jobs on the loopback Kubernetes API, and this
module playing the Knative broker and its sources with the real CloudEvents SDK. Each event goes
to the functions its Triggers name (``POST /functions/<name>``), as a broker posts it; what a
handling emits comes back as its reply, or through ``K_SINK``.

The broker here is as unkind as Knative may be: every event delivered twice, at once to both
workers, and again under a new id with the same content; events shuffled, a Job's changes sent
as an ApiServerSource sends them (an add and updates, the whole list again as after a relist,
older copies after newer ones); PingSource ticks racing the handlers. Every study must end as
delivered once: its trials each counted once, each Job created once, no more running than its
parallelism, and no study brought back once deleted.
"""

from __future__ import annotations

import copy
import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent
from conftest import study_definition
from http_helpers import Service, Sink
from kube_stub import KubeStub

from functions.core.events import ROUTES

pytestmark = pytest.mark.slow

KUBE_NAMESPACES = ("chaos", "deleted", "stopped", "together")
APISERVER = "https://kubernetes.default.svc"
PING_SOURCE = "/apis/v1/namespaces/katuna/pingsources/katuna-tick"


def job_study(name: str, **overrides) -> dict:
    definition = study_definition(name=name, **overrides)
    definition["trialTemplate"]["image"] = "python:3.12"
    return definition


class Delivered:
    """A CloudEvent as the broker holds it: the headers and body of its binary-mode message."""

    def __init__(self, headers: dict[str, str], body: bytes) -> None:
        self.headers = {key.lower(): value for key, value in headers.items()
                        if key.lower().startswith("ce-") or key.lower() == "content-type"}
        self.body = body

    @classmethod
    def made(cls, attributes: dict[str, str], data: dict) -> Delivered:
        """The event a source outside katuna makes, through the CloudEvents SDK."""
        message = ce_http.to_binary_event(CloudEvent(attributes={**attributes, "datacontenttype": "application/json"},
                                                     data=data))
        return cls(dict(message.headers), message.body)

    @property
    def type(self) -> str:
        return self.headers["ce-type"]

    @property
    def data(self) -> dict:
        return json.loads(self.body)

    def renamed(self) -> Delivered:
        """The same content under a new id, as a source that sends a fact again makes it."""
        return Delivered({**self.headers, "ce-id": str(uuid.uuid4())}, self.body)


class Broker:
    """Knative's broker and sources as this module plays them, over one ``katuna serve``."""

    def __init__(self, service: Service, sink: Sink) -> None:
        self.service = service
        self.sink = sink
        self.seen_sink = 0
        self.expected = 0
        """Events the service said it sent on to ``K_SINK`` (``Katuna-Emitted-Count``)."""
        self.answers: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()

    def post(self, function: str, event: Delivered) -> list[Delivered]:
        """Deliver ``event`` to ``function``; the events its handling replied with. A 503 is
        delivered again, as a Trigger retries it."""
        for _ in range(50):
            status, answered, reply = self.service.request("POST", f"/functions/{function}", event.body, event.headers)
            with self.lock:
                self.answers.append((function, event.type, status))
            if status != 503:
                break
            time.sleep(0.05)
        assert status in (200, 202), (function, event.type, status, reply)
        with self.lock:
            self.expected += int(answered.get("Katuna-Emitted-Count", 0)) if status == 202 else 0
        return [Delivered(answered, reply)] if status == 200 and reply else []

    def deliver(self, event: Delivered) -> list[Delivered]:
        """Deliver ``event`` to every function its type is routed to, each a delivery of its own."""
        functions = ("jobwatch",) if event.type.startswith("dev.knative.apiserver.") else ROUTES[event.type]
        return [reply for function in functions for reply in self.post(function, event)]

    def sent_on(self) -> list[Delivered]:
        """The events posted to ``K_SINK`` since the last call, once all the service said it sent are there."""
        with self.lock:
            expected = self.expected
        with self.sink.arrived:
            assert self.sink.arrived.wait_for(lambda: len(self.sink.received) >= expected, timeout=30)
            arrived = self.sink.received[self.seen_sink:]
            self.seen_sink = len(self.sink.received)
        return [Delivered(headers, body) for headers, body in arrived]


def job_events(kube: KubeStub, namespace: str, rng: random.Random) -> list[Delivered]:
    """The ApiServerSource's events of the namespace's Jobs as they are now: an add or an update
    of each."""
    with kube.lock:
        jobs = [copy.deepcopy(job) for (space, _), job in kube.jobs.items() if space == namespace]
    return [Delivered.made({"type": f"dev.knative.apiserver.resource.{rng.choice(('add', 'update'))}", "source": APISERVER,
                       "id": str(uuid.uuid4()), "kind": "Job", "apiversion": "batch/v1",
                       "name": job["metadata"]["name"], "namespace": namespace}, job) for job in jobs]


def tick() -> Delivered:
    return Delivered.made({"type": "dev.knative.sources.ping", "source": PING_SOURCE, "id": str(uuid.uuid4())}, {})


@pytest.fixture
def served(kube: KubeStub, tmp_path: Path) -> Iterator:
    started: list[tuple[Service, Sink]] = []

    def start(namespace: str) -> Broker:
        sink = Sink()
        service = Service(tmp_path, workers=2, KATUNA_EVENTS="reply", K_SINK=sink.url, KATUNA_EXECUTOR="kubernetes",
                          KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE=namespace, KATUNA_TICK_FLOOR="0")
        started.append((service, sink))
        return Broker(service, sink)

    yield start
    for service, sink in started:
        service.close()
        sink.close()


def submitted(broker: Broker, definition: dict) -> Delivered:
    """Submit the study; its ``study.created``, as posted to ``K_SINK``."""
    status, _, body = broker.service.request("POST", "/studies", yaml.safe_dump(definition),
                                             {"Content-Type": "application/yaml"})
    assert status == 201, body
    broker.expected += 1
    (created,) = broker.sent_on()
    return created


def posted_jobs(kube: KubeStub, namespace: str) -> list[str]:
    with kube.lock:
        return [name for space, name in kube.create_requests if space == namespace]


def study(broker: Broker, name: str) -> dict | None:
    status, found = broker.service.json("GET", f"/studies/{name}")
    return found if status == 200 else None


def trial_rows(broker: Broker, name: str) -> list[dict]:
    return sorted(broker.service.json("GET", f"/studies/{name}/trials")[1], key=lambda trial: trial["number"])


def running_jobs(kube: KubeStub, namespace: str) -> int:
    with kube.lock:
        return sum(1 for (space, _), job in kube.jobs.items()
                   if space == namespace and not job["status"].get("conditions") and not job["spec"].get("suspend"))


@pytest.mark.parametrize("seed", range(2))
def test_every_event_twice_at_once_and_again_under_a_new_id_shuffled_runs_each_trial_once(served, kube: KubeStub,
                                                                                          seed: int):
    rng = random.Random(seed)
    broker = served("chaos")
    name = f"chaos-{seed}"
    pending = [submitted(broker, job_study(name, maxTrials=6, parallelism=2))]
    stale: list[Delivered] = []
    most_running = 0
    with ThreadPoolExecutor(4) as pool:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pending += broker.sent_on()
            most_running = max(most_running, running_jobs(kube, "chaos"))
            if not pending:
                current = study(broker, name)
                if current is not None and current["status"] != "running" and not [
                        t for t in trial_rows(broker, name) if t["state"] in ("RUNNING", "WAITING")]:
                    break
                relisted = job_events(kube, "chaos", rng)
                stale += [event for event in relisted if rng.random() < 0.3]
                pending += relisted + rng.sample(stale, min(len(stale), 2)) + [tick()]
                time.sleep(0.05)
                continue
            event = pending.pop(rng.randrange(len(pending)))
            copies = [event, event] + ([event.renamed()] if rng.random() < 0.5 else [])
            for replies in pool.map(broker.deliver, copies):
                pending += replies
        else:
            raise AssertionError(f"study {name} did not end: {study(broker, name)}")
    trials = trial_rows(broker, name)
    assert [(t["number"], t["state"], t["attempt"]) for t in trials] == [(n, "COMPLETE", 1) for n in range(6)]
    assert sorted(job for job in posted_jobs(kube, "chaos") if job.startswith(f"{name}-")) == sorted(
        f"{name}-{n}" for n in range(6)), "each Job created once"
    assert most_running <= 2, "no more trials ran at once than the study's parallelism"
    assert study(broker, name)["status"] == "completed"


def held_study(name: str, release: Path, **overrides) -> dict:
    """A study whose trials run until ``release`` exists."""
    definition = job_study(name, **overrides)
    definition["trialTemplate"]["command"] += ["--until", str(release)]
    return definition


def run_until_quiet(broker: Broker, events: list[Delivered], seen: list[Delivered]) -> None:
    """Deliver ``events`` and all they lead to, each once, in order; every event delivered is kept in ``seen``."""
    pending = list(events)
    while pending:
        event = pending.pop(0)
        seen.append(event)
        pending += broker.deliver(event) + broker.sent_on()


def replay(broker: Broker, seen: list[Delivered], kube: KubeStub, namespace: str) -> None:
    """Every event delivered again, under its own id and under a new one, both workers at once,
    with the namespace's Jobs' events and a tick."""
    rng = random.Random(0)
    again = [copy for event in seen for copy in (event, event.renamed())] + job_events(kube, namespace, rng) + [tick()]
    with ThreadPoolExecutor(4) as pool:
        for replies in pool.map(broker.deliver, again + again):
            for reply in replies:
                broker.deliver(reply)
    for event in broker.sent_on():
        broker.deliver(event)


def test_a_deleted_studys_events_replayed_bring_back_no_study_and_make_no_job(served, kube: KubeStub, tmp_path: Path):
    broker = served("deleted")
    seen: list[Delivered] = []
    run_until_quiet(broker, [submitted(broker, held_study("gone", tmp_path / "release", maxTrials=4))], seen)
    assert sorted(posted_jobs(kube, "deleted")) == ["gone-0", "gone-1"]
    assert broker.service.request("DELETE", "/studies/gone")[0] == 204
    replay(broker, seen, kube, "deleted")
    assert study(broker, "gone") is None, "the study stays deleted"
    assert sorted(posted_jobs(kube, "deleted")) == ["gone-0", "gone-1"], "no Job made again"
    with kube.lock:
        assert not [name for space, name in kube.jobs if space == "deleted"], "its Jobs stay deleted"


def test_a_stopped_studys_late_trial_ends_and_starts_change_nothing(served, kube: KubeStub, tmp_path: Path):
    broker = served("stopped")
    seen: list[Delivered] = []
    run_until_quiet(broker, [submitted(broker, held_study("halted", tmp_path / "release", maxTrials=4))], seen)
    uid = seen[0].data["uid"]
    assert broker.service.request("POST", "/studies/halted/stop")[0] == 200
    stopped = trial_rows(broker, "halted")
    finished = [Delivered.made({"type": "dev.katuna.trial.finished", "source": "/katuna", "id": str(uuid.uuid4())},
                               {"study": "halted", "uid": uid, "trial": number, "attempt": 1, "outcome": "exited",
                                "exitCode": 0, "message": ""}) for number in (0, 1)]
    replay(broker, seen + finished, kube, "stopped")
    assert trial_rows(broker, "halted") == stopped, "the stop's verdicts stand"
    assert [t["state"] for t in stopped] == ["STOPPED", "STOPPED"]
    assert study(broker, "halted")["status"] == "stopped"
    assert sorted(posted_jobs(kube, "stopped")) == ["halted-0", "halted-1"], "no Job made again"
