"""The CloudEvent functions under real gunicorn, as a Knative broker drives them (reply mode)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent
from conftest import study_definition
from http_helpers import Service, Sink

from functions.adapters.sqlite_store import SqliteStore
from functions.adapters.web import create_app
from functions.core.events import Event
from functions.core.launch import trial_launch
from functions.runtime import Runtime
from functions.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path):
    sink = Sink()
    service = Service(tmp_path, workers=2, KATUNA_EVENTS="reply", K_SINK=sink.url)
    yield service, sink
    service.close()
    sink.close()


def event_of(headers: dict[str, str], body: bytes):
    return ce_http.from_http_event(ce_http.HTTPMessage(headers=headers, body=body))


def forward(service: Service, path: str, headers: dict[str, str], body: bytes, structured: bool = False):
    """Deliver an event the way a broker would, in binary or structured mode."""
    if structured:
        message = ce_http.to_structured_event(event_of(headers, body))
        return service.request("POST", path, message.body, message.headers)
    return service.request("POST", path, body, {k: v for k, v in headers.items() if k.startswith("ce-")
                                                 or k == "content-type"})


def test_the_functions_run_a_study_through_a_broker(cluster):
    service, sink = cluster
    definition = study_definition(name="knative", maxTrials=3, parallelism=2)
    status, _, _ = service.request("POST", "/studies", yaml.safe_dump(definition), {"Content-Type": "application/yaml"})
    assert status == 201

    created_headers, created_body = sink.wait(1)[0]
    assert created_headers["ce-type"] == "dev.katuna.study.created"
    assert created_headers["content-type"] == "application/json"

    status, answer_headers, body = forward(service, "/functions/suggest", created_headers, created_body)
    assert status == 202 and body == b"", "no reply: an empty answer, as Knative's broker filter requires"
    assert not any(name.lower().startswith("ce-") for name in answer_headers)
    suggested = sink.wait(3)[1:3]
    assert {h["ce-type"] for h, _ in suggested} == {"dev.katuna.trial.suggested"}
    assert answer_headers["Katuna-Emitted-Count"] == "2"
    assert sorted(answer_headers["Katuna-Emitted"].split(", ")) == sorted(f"{h['ce-type']} {h['ce-id']}" for h, _ in suggested), \
        "the events named are those sent (each sender thread posts its own, so they may arrive in either order)"

    for number, (headers, body) in enumerate(suggested):
        status, answer_headers, reply = forward(service, "/", headers, body, structured=number == 1)
        assert (status, reply, answer_headers["Katuna-Emitted-Count"]) == (202, b"", "0")
        assert "Katuna-Emitted" not in answer_headers, "no empty list of the events sent"

    finished = sink.wait(5)[3:5]
    assert {h["ce-type"] for h, _ in finished} == {"dev.katuna.trial.finished"}
    headers, body = finished[0]
    status, reply_headers, reply = forward(service, "/functions/collect", headers, body)
    assert status == 200, reply
    assert reply_headers["ce-type"] == "dev.katuna.trial.suggested"
    assert json.loads(reply)["trial"] == 2
    again = forward(service, "/functions/collect", headers, body)
    assert again[0] == 200 and again[1]["ce-id"] == reply_headers["ce-id"], "a retried function emits the same id"

    collected = json.loads(body)["trial"]
    states = {t["number"]: t["state"] for t in service.json("GET", "/studies/knative/trials")[1]}
    assert states == {collected: "COMPLETE", 1 - collected: "RUNNING", 2: "WAITING"}


def test_bad_events_are_permanent_errors_and_change_nothing(cluster):
    service, _ = cluster
    definition = study_definition(name="calm", maxTrials=2)
    service.request("POST", "/studies", json.dumps(definition), {"Content-Type": "application/json"})
    before = service.json("GET", "/studies")[1]

    assert service.request("POST", "/", b"not an event", {"Content-Type": "text/plain"})[0] == 415
    assert service.request("POST", "/", b"not an event", {"Content-Type": "application/cloudevents+json"})[0] == 400
    for not_an_object in (b"[]", b'"x"', b"1", b"null"):
        for path in ("/", "/functions/suggest", "/dead-letters"):
            assert service.request("POST", path, not_an_object, {"Content-Type": "application/cloudevents+json"})[0] == 400

    def send(path: str, event_type: str, data: dict) -> int:
        event = CloudEvent(attributes={"type": event_type, "source": "/test", "datacontenttype": "application/json"},
                           data=data)
        message = ce_http.to_binary_event(event)
        return service.request("POST", path, message.body, message.headers)[0]

    assert send("/", "com.example.unknown", {"study": "calm"}) == 422
    # a function this katuna lacks, or one not taking the type, may be a newer release's Trigger:
    # retried (503), never a dead letter that fails the study; it changes nothing either way
    assert send("/functions/spawn", "dev.katuna.study.created", {"study": "calm"}) == 503
    assert send("/functions/nope", "dev.katuna.study.created", {"study": "calm"}) == 503
    assert send("/functions/suggest", "dev.katuna.study.created", {"study": "missing", "uid": "x"}) == 202
    assert send("/functions/suggest", "dev.katuna.study.created", {"study": "calm", "uid": "x"}) == 202
    assert send("/functions/suggest", "dev.katuna.study.created", {"no": "study"}) == 400
    assert service.json("GET", "/studies")[1] == before


def test_dead_letters_are_kept_and_listed(cluster):
    service, _ = cluster
    event = CloudEvent(attributes={"type": "dev.katuna.trial.finished", "source": "/test", "id": "lost-1",
                                   "datacontenttype": "application/json", "knativeerrorcode": "500",
                                   "knativeerrordest": "http://katuna/functions/collect"},
                       data={"study": "gone", "trial": 3})
    message = ce_http.to_binary_event(event)
    status, headers, body = service.request("POST", "/dead-letters", message.body, message.headers)
    assert (status, body, headers["Katuna-Recorded"], headers["Katuna-Study-Failed"]) == (202, b"", "lost-1", "false")
    _, letters = service.json("GET", "/dead-letters")
    assert letters[0]["event"]["id"] == "lost-1"
    assert letters[0]["reason"] == "http://katuna/functions/collect 500"


def test_a_dead_letter_nested_past_the_bound_is_kept_as_its_text_and_the_list_still_reads(cluster):
    """Data nested hundreds of levels deep (a broker keeps whatever it was given) is kept as its
    JSON text: kept as data, every later listing of the dead letters failed with a 500."""
    service, _ = cluster
    deep: object = 1
    for _ in range(600):
        deep = {"a": deep}
    event = CloudEvent(attributes={"type": "dev.katuna.trial.finished", "source": "/test", "id": "deep-1",
                                   "datacontenttype": "application/json", "knativeerrorcode": "500"}, data=deep)
    message = ce_http.to_binary_event(event)
    assert service.request("POST", "/dead-letters", message.body, message.headers)[0] == 202
    status, letters = service.json("GET", "/dead-letters")
    assert status == 200, letters
    assert letters[0]["event"]["id"] == "deep-1" and json.loads(letters[0]["event"]["data"]["raw"]) == deep


def test_a_dead_letter_nested_past_what_python_reads_is_kept_as_its_text(cluster):
    """Binary-mode data nested past what Python's JSON reader reads (100,000 levels) is kept as
    its text, as data a key given twice is: the letter was refused 400, and a broker drops a
    dead letter it is refused, the only record of the failure."""
    service, _ = cluster
    deep = '{"a":' * 100_000 + "1" + "}" * 100_000
    headers = {"ce-specversion": "1.0", "ce-type": "dev.katuna.trial.finished", "ce-source": "/test",
               "ce-id": "deeper-1", "ce-knativeerrorcode": "500", "Content-Type": "application/json"}
    status, _, body = service.request("POST", "/dead-letters", deep, headers)
    assert status == 202, body
    status, letters = service.json("GET", "/dead-letters")
    assert letters[0]["event"]["id"] == "deeper-1" and letters[0]["event"]["data"] == {"raw": deep}


def test_a_dead_letter_kept_nested_past_the_bound_is_listed_with_its_data_as_text(tmp_path: Path):
    """A letter an earlier katuna kept as deep data is listed with that data as its text."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        deep: object = [1]
        for _ in range(600):
            deep = [deep]
        event = {"type": "dev.katuna.trial.finished", "id": "old-deep", "source": "/test", "data": {"d": deep}}
        store = runtime.store()
        store.add_dead_letter(Event("dev.katuna.trial.finished", {"trial": 1}, "shallow"), "why")
        with store.transaction():
            store.db.execute("INSERT INTO dead_letters (event_id, type, event, reason, received_at) "
                             "VALUES ('old-deep', 'dev.katuna.trial.finished', ?, 'why', 0)", [json.dumps(event)])
        answer = create_app(runtime).test_client().get("/dead-letters")
        assert answer.status_code == 200, answer.get_json()
        letters = answer.get_json()
        assert [letter["event"]["id"] for letter in letters] == ["old-deep", "shallow"]
        assert json.loads(letters[0]["event"]["data"]["raw"]) == {"d": deep}
        assert letters[1]["event"]["data"] == {"trial": 1}
    finally:
        runtime.close()


def test_a_study_posted_where_no_event_can_be_sent_on_is_refused_before_it_is_stored(tmp_path: Path):
    """Reply mode without ``K_SINK``: the study's first event could never go out, so the POST is
    a 503 to retry, and nothing is stored that would wait for ever."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", events="reply"))
    try:
        client = create_app(runtime).test_client()
        answer = client.post("/studies", json=study_definition(name="unsent"))
        assert answer.status_code == 503 and "K_SINK is not set" in answer.get_json()["message"], answer.get_json()
        assert client.get("/studies/unsent").status_code == 404
    finally:
        runtime.close()


def test_a_progress_report_is_answered_without_a_reply_and_what_it_emits_goes_to_the_sink(cluster):
    """A report that prunes its trial emits the next trial's ``trial.suggested``: it goes to
    ``K_SINK`` and the report is answered at once with 202, so the trial's reporter waits for one
    handling, not for the chain of the next trial's launch the broker would make it wait for."""
    service, sink = cluster
    definition = study_definition(name="reported", mode="hang", maxTrials=2, parallelism=1,
                                  earlyStopping={"algorithm": "threshold", "settings": {"upper": 10.0}})
    assert service.request("POST", "/studies", yaml.safe_dump(definition), {"Content-Type": "application/yaml"})[0] == 201
    status, suggested, body = forward(service, "/functions/suggest", *sink.wait(1)[0])
    assert status == 200 and suggested["ce-type"] == "dev.katuna.trial.suggested", "one event: the reply"
    assert forward(service, "/", suggested, body)[0] == 202
    store = SqliteStore(service.workdir / "katuna.db")
    try:
        record, trial = store.get_study("reported"), store.get_trial("reported", 0)
        token = trial_launch(record, trial).progress.token
    finally:
        store.close()
    report = ce_http.to_binary_event(CloudEvent(
        attributes={"type": "dev.katuna.trial.progress", "source": "/test", "datacontenttype": "application/json"},
        data={"study": "reported", "uid": record.uid, "trial": 0, "attempt": trial.attempt, "step": 1, "value": 100.0,
              "token": token}))
    status, headers, body = forward(service, "/functions/prune", dict(report.headers), report.body)
    assert (status, body, headers["Katuna-Emitted-Count"]) == (202, b"", "1"), body
    assert sink.wait(2)[1][0]["ce-type"] == "dev.katuna.trial.suggested"
    assert service.json("GET", "/studies/reported/trials")[1][0]["state"] == "PRUNED"
