"""W3C Trace Context carried from each event to the events its handling emits, as Knative's
brokers and sources pass it (the ``traceparent``/``tracestate`` HTTP headers) and the CloudEvents
distributed-tracing extension names it, so a trace in Zipkin or Jaeger follows a study from
event to event; a malformed context is ignored, never refused nor copied on, and a
``tracestate`` is bounded."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent
from conftest import study_definition
from http_helpers import Service, Sink

from functions.adapters import cloudevents_http
from functions.adapters.log_lines import JsonLines
from functions.core import trace_context
from functions.core.events import Event, trial_finished
from functions.core.log_context import of_event

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
OTHER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

MALFORMED = [
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper-case hex
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # a trace id of zeros
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # a parent id of zeros
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # the version no trace takes
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  # version 00 with more after it
    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  # a later version not followed by "-"
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
    "4bf92f3577b34da6a3ce929d0e0e4736",  # a bare trace id
    "",
]


def test_a_valid_traceparent_is_read_and_a_later_versions_carried_on_as_version_00():
    assert trace_context.read(PARENT) == trace_context.TraceContext(PARENT)
    assert trace_context.read(f"cc-{TRACE}-00f067aa0ba902b7-09-what-comes-later").traceparent == \
        f"00-{TRACE}-00f067aa0ba902b7-09"
    assert trace_context.read(PARENT).trace_id == TRACE


@pytest.mark.parametrize("traceparent", [*MALFORMED, None, 5, True])
def test_a_malformed_traceparent_is_no_context(traceparent: object):
    assert trace_context.read(traceparent, "congo=t61rcWkgMzE") is None


def test_a_tracestate_is_checked_and_bounded_as_the_w3c_specification_has_it():
    def state(value: str) -> str | None:
        return trace_context.read(PARENT, value).tracestate

    assert state("congo=t61rcWkgMzE, rojo=00f067aa0ba902b7,,") == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert state("tenant1@vendor=x") == "tenant1@vendor=x"
    for malformed in ("Congo=x", "congo", "congo=x,congo=y", "congo=a=b", "congo=", "=x", " , "):
        assert state(malformed) is None, malformed
    assert state(",".join(f"k{n}=v" for n in range(33))) is None, "more than 32 entries: dropped whole"
    assert state(",".join(f"k{n}=v" for n in range(32))) is not None
    long_entry, entries = "big=" + "x" * 200, [f"k{n}=" + "v" * 60 for n in range(10)]
    assert state(",".join([entries[0], long_entry, *entries[1:3]])) == ",".join([entries[0], long_entry, *entries[1:3]])
    assert state(",".join([long_entry, *entries])) == ",".join(entries[:8]), \
        "past 512 characters: entries over 128 characters go first, then entries from the end"


def _binary(event_type: str, data: dict, **attributes: str) -> ce_http.HTTPMessage:
    return ce_http.to_binary_event(CloudEvent(attributes={"type": event_type, "source": "/test",
                                                          "datacontenttype": "application/json", **attributes}, data=data))


def test_an_event_is_read_in_its_deliverys_trace_else_its_own_and_a_malformed_one_is_taken_without_it():
    data = {"study": "s", "uid": "u", "trial": 0, "attempt": 1, "outcome": "exited", "exitCode": 0, "message": ""}
    message = _binary("dev.katuna.trial.finished", data, traceparent=OTHER, tracestate="rojo=1")
    own = cloudevents_http.from_http(message.headers, message.body)
    assert own.trace == trace_context.TraceContext(OTHER, "rojo=1")
    delivered = cloudevents_http.from_http({**message.headers, "Traceparent": PARENT}, message.body)
    assert delivered.trace == trace_context.TraceContext(PARENT)
    for malformed in MALFORMED:
        message = _binary("dev.katuna.trial.finished", data, traceparent=malformed)
        assert cloudevents_http.from_http({**message.headers, "traceparent": malformed}, message.body).trace is None
    structured = ce_http.to_structured_event(CloudEvent(attributes={
        "type": "dev.katuna.trial.finished", "source": "/test", "traceparent": PARENT}, data=data))
    assert cloudevents_http.from_http(structured.headers, structured.body).trace.traceparent == PARENT


def test_an_event_sent_carries_its_trace_as_the_extension_and_keeps_it_where_it_is_stored():
    event = trial_finished("s", "u", 0, 1, "exited", 0).caused_by(
        Event("dev.katuna.study.created", {}, trace=trace_context.read(PARENT, "congo=1")))
    headers, _ = cloudevents_http.to_http(event)
    assert (headers["ce-traceparent"], headers["ce-tracestate"]) == (PARENT, "congo=1")
    assert Event.from_dict(json.loads(json.dumps(event.to_dict()))).trace == event.trace
    assert Event.from_dict({**event.to_dict(), "traceparent": MALFORMED[0]}).trace is None
    assert event == replace(event, trace=None), "the same fact in another trace is the same event"
    line = json.loads(JsonLines().format(_record(**of_event(event))))
    assert line["traceId"] == TRACE and line["eventId"] == event.id


def _record(**extra: object) -> logging.LogRecord:
    record = logging.getLogger("katuna.functions").makeRecord("katuna.functions", logging.INFO, __file__, 1, "x", (),
                                                              None)
    record.__dict__.update(extra)
    return record


def _forward(service: Service, path: str, headers: dict[str, str], body: bytes, **traced: str):
    """Deliver an event as Knative's broker filter does: its ``ce-*`` headers, and the trace
    context of the delivery in ``traceparent``/``tracestate`` headers (``traced``, which may
    replace a ``ce-*`` header too)."""
    sent = {k: v for k, v in headers.items() if k.startswith("ce-") or k == "content-type"}
    return service.request("POST", path, body, {**sent, **traced})


@pytest.mark.slow
def test_the_events_a_handling_emits_under_gunicorn_carry_the_trace_of_their_cause(tmp_path: Path):
    """The study's ``study.created`` delivered in a trace: each ``trial.suggested`` it leads to
    is posted to ``K_SINK`` in that trace (headers and extension), its ``tracestate`` bounded; a
    reply carries the trace of the delivery it answers, a redelivery's own, and a malformed one
    none; a dead letter keeps its trace; the JSON lines name it."""
    sink = Sink()
    service = Service(tmp_path, workers=1, KATUNA_EVENTS="reply", K_SINK=sink.url, KATUNA_LOG_FORMAT="json")
    entries = [f"k{n}=" + "v" * 96 for n in range(10)]
    try:
        definition = study_definition(name="traced", maxTrials=3, parallelism=2)
        assert service.request("POST", "/studies", yaml.safe_dump(definition),
                               {"Content-Type": "application/yaml"})[0] == 201
        created = sink.wait(1)[0]
        assert "traceparent" not in created[0] and "ce-traceparent" not in created[0], "the API's event starts no trace"
        status, _, _ = _forward(service, "/functions/suggest", *created, traceparent=PARENT,
                                tracestate=",".join(entries))
        assert status == 202
        suggested = sink.wait(3)[1:3]
        assert [(h["ce-type"], h["traceparent"], h["ce-traceparent"]) for h, _ in suggested] == \
            [("dev.katuna.trial.suggested", PARENT, PARENT)] * 2
        assert {h["tracestate"] for h, _ in suggested} == {h["ce-tracestate"] for h, _ in suggested} == \
            {",".join(entries[:5])}

        for headers, body in suggested:
            assert _forward(service, "/", headers, body)[0] == 202
        finished = sink.wait(5)[3]
        status, reply, _ = _forward(service, "/functions/collect", *finished, traceparent=OTHER)
        assert status == 200 and reply["ce-type"] == "dev.katuna.trial.suggested" and reply["ce-traceparent"] == OTHER
        status, again, _ = _forward(service, "/functions/collect", *finished, traceparent=PARENT)
        assert (status, again["ce-id"], again["ce-traceparent"]) == (200, reply["ce-id"], PARENT), \
            "a redelivery's reply, answered from its record, is in the redelivery's trace"
        status, bare, _ = _forward(service, "/functions/collect", *finished, traceparent=MALFORMED[1],
                                   **{"ce-traceparent": MALFORMED[0], "ce-tracestate": "congo=1"})
        assert status == 200 and "ce-traceparent" not in bare and "ce-tracestate" not in bare

        letter = _binary("dev.katuna.trial.finished", {"study": "gone", "trial": 3}, id="lost-1",
                         knativeerrorcode="500", traceparent=OTHER)
        assert service.request("POST", "/dead-letters", letter.body, letter.headers)[0] == 202
        assert service.json("GET", "/dead-letters")[1][0]["event"]["traceparent"] == OTHER
    finally:
        service.close()
        sink.close()
    lines = [json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if "httpRequest" in line and line.get("eventId") == created[0]["ce-id"]]
    assert [line.get("traceId") for line in access] == [TRACE], access
