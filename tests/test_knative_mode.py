"""Knative mode end to end: ``katuna serve`` in reply mode behind the loopback broker, fed by the
PingSource and the ApiServerSources of ``knative/``, trials as Jobs on the loopback Kubernetes
API; and the broker emulator itself held to Knative's delivery and filter rules."""

from __future__ import annotations

import base64
import copy
import http.client
import json
import re
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent
from conftest import study_definition
from gke_stub import GkeStub
from http_helpers import free_port
from knative_emulator import MANIFESTS, KnativeCluster, documents, katuna_service, manifests
from knative_emulator.broker import MAX_TTL, Broker, attributes_of, post
from knative_emulator.delivery import Delivery, iso_seconds
from knative_emulator.filters import UnsupportedFilter, delivered, trigger_filter
from knative_emulator.serving import Revision, revision_limits
from kube_standin.clouds import gke_pools, gke_resize
from kube_stub import KubeStub
from standin_server import StandInServer
from waiting import eventually

SERVICE_REF = "serving.knative.dev/v1/Service/katuna"


Answer = int | tuple[int, dict[str, str], bytes]
"""A status (with an error body from 300 up, else none), or a status with its headers and body."""


class Subscriber:
    """A loopback subscriber answering each POST with the next of ``answers`` (then the last one);
    ``reply`` maps an event type to the CloudEvent to answer it with (binary mode). It answers
    only while ``released`` is set (it is at first), ``hold`` seconds after a POST came; it
    listens on ``port`` (any free one for 0) until closed."""

    def __init__(self, answers: list[Answer], reply: dict[str, CloudEvent] | None = None, hold: float = 0,
                 port: int = 0) -> None:
        self.answers = answers
        self.hold = hold
        self.reply = reply or {}
        self.released = threading.Event()
        self.released.set()
        self.received: list[tuple[float, str, dict[str, str], bytes]] = []
        self.arrived = threading.Condition()
        subscriber = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with subscriber.arrived:
                    subscriber.received.append((time.monotonic(), self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    given = subscriber.answers[min(len(subscriber.received), len(subscriber.answers)) - 1]
                    subscriber.arrived.notify_all()
                subscriber.released.wait(30)
                time.sleep(subscriber.hold)
                code, headers, payload = given if isinstance(given, tuple) else (
                    given, {}, b'{"error": "refused"}' if given >= 300 else b"")
                self.send_response(code)
                for name, value in headers.items():
                    self.send_header(name, value)
                answer = subscriber.reply.get(self.headers.get("ce-type", ""))
                if answer is not None:
                    message = ce_http.to_binary_event(answer)
                    payload = message.body
                    for name, value in message.headers.items():
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                return

        self.server = StandInServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def wait(self, count: int, path: str | None = None, timeout: float = 30) -> list:
        def matching() -> list:
            return [r for r in self.received if path is None or r[1] == path]

        with self.arrived:
            self.arrived.wait_for(lambda: len(matching()) >= count, timeout=timeout)
            return matching()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def one_trigger(tmp_path: Path, delivery: str, filters: str = "- exact:\n        type: test.event") -> Path:
    """A manifests directory with a Broker and one Trigger to the ``katuna`` Service ref."""
    (tmp_path / "broker.yaml").write_text(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: katuna\nspec: {}\n")
    (tmp_path / "trigger.yaml").write_text(f"""\
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: failing
spec:
  broker: katuna
  filters:
    {filters}
  subscriber:
    ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: katuna}}
    uri: /functions/x
  delivery:
{delivery}
""")
    return tmp_path


def event(event_type: str = "test.event", **extensions: str) -> CloudEvent:
    return CloudEvent(attributes={"type": event_type, "source": "/test", "datacontenttype": "application/json",
                                  **extensions}, data={"study": "s"})


def test_a_failing_subscriber_is_retried_with_exponential_backoff_then_dead_lettered(tmp_path: Path):
    subscriber = Subscriber([503])
    delivery = """    retry: 2
    backoffPolicy: exponential
    backoffDelay: PT0.2S
    deadLetterSink:
      ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: katuna}
      uri: /dead-letters"""
    broker = Broker(one_trigger(tmp_path, delivery), {SERVICE_REF: subscriber.url}, token="secret")
    try:
        assert post(broker.url, event(), None)[0] == 500, "answered once given up: the dead-letter sink refused too"
        tries = subscriber.wait(3, "/functions/x")
        letters = subscriber.wait(1, "/dead-letters")
        assert len(tries) == 3, "the first attempt and two retries"
        gaps = [later[0] - earlier[0] for earlier, later in zip(tries, tries[1:], strict=False)]
        assert gaps[0] >= 0.2 and gaps[1] >= 0.4, "0.2 s, then 0.4 s: delay * 2^n"
        headers = letters[0][2]
        assert headers["ce-knativeerrorcode"] == "503"
        assert headers["ce-knativeerrordest"] == f"{subscriber.url}/functions/x"
        assert base64.b64decode(headers["ce-knativeerrordata"]) == b'{"error": "refused"}'
        assert headers["authorization"] == "Bearer secret"
    finally:
        broker.close()
        subscriber.close()


@pytest.mark.parametrize("code,attempts", [(400, 1), (422, 1), (404, 3), (408, 3), (409, 3), (429, 3), (500, 3)])
def test_which_answers_knative_retries(tmp_path: Path, code: int, attempts: int):
    subscriber = Subscriber([code])
    delivery = f"""    retry: 2
    backoffPolicy: linear
    backoffDelay: PT0.05S
    deadLetterSink:
      uri: {subscriber.url}/dead-letters"""
    broker = Broker(one_trigger(tmp_path, delivery), {SERVICE_REF: subscriber.url})
    try:
        post(broker.url, event(), None)
        subscriber.wait(1, "/dead-letters")
        assert len([r for r in subscriber.received if r[1] == "/functions/x"]) == attempts
    finally:
        broker.close()
        subscriber.close()


def test_the_ingress_answers_once_every_delivery_and_reply_it_started_has_ended(tmp_path: Path):
    """As on an InMemoryChannel: the post waits for the retry and for the reply's own delivery."""
    answered = CloudEvent(attributes={"type": "test.event", "source": "/test", "id": "reply-1"}, data={"r": 1})
    subscriber = Subscriber([503, 202, 202], reply={"test.first": answered})
    broker = Broker(one_trigger(tmp_path, RETRY_TWICE.format(sink=subscriber.url),
                                "- any:\n        - exact: {type: test.first}\n        - exact: {type: test.event}"),
                    {SERVICE_REF: subscriber.url})
    try:
        assert post(broker.url, event("test.first"), None)[0] == 202
        assert [r[2]["ce-type"] for r in subscriber.received] == ["test.first", "test.first", "test.event"], \
            "answered after the retry and the reply's delivery, not before"
        at_once = Broker(one_trigger(tmp_path, RETRY_TWICE.format(sink=subscriber.url)), {SERVICE_REF: subscriber.url},
                         answer_at_once=True)
        try:
            before = len(subscriber.received)
            subscriber.released.clear()
            assert post(at_once.url, event(), None)[0] == 202, \
                "a durable channel's broker answers on arrival, while the subscriber holds its delivery"
            subscriber.released.set()
            assert len(subscriber.wait(before + 1)) == before + 1, "and delivers it after"
        finally:
            at_once.close()
    finally:
        broker.close()
        subscriber.close()


def test_a_sender_hanging_up_cancels_the_deliveries_still_to_be_attempted(tmp_path: Path):
    subscriber = Subscriber([503])
    delivery = "    retry: 5\n    backoffPolicy: exponential\n    backoffDelay: PT0.4S"
    broker = Broker(one_trigger(tmp_path, delivery), {SERVICE_REF: subscriber.url})
    try:
        message = ce_http.to_binary_event(event())
        address = urllib.parse.urlsplit(broker.url)
        sender = http.client.HTTPConnection(address.netloc, timeout=0.2)
        sender.request("POST", address.path, message.body, dict(message.headers))
        with pytest.raises(TimeoutError):
            sender.getresponse()
        sender.close()
        eventually(lambda: broker.cancelled == 1 and broker.idle(), "the retry to be cancelled", timeout=10)
        assert len(subscriber.received) == 1, "the retries after the sender hung up were never attempted"
    finally:
        broker.close()
        subscriber.close()


NOT_EVENTS = {
    "json": ({"Content-Type": "application/json"}, b'{"emitted": []}'),
    "text": ({"Content-Type": "text/plain"}, b"accepted"),
    "unknown-specversion": ({"ce-specversion": "2.0", "ce-type": "t", "ce-id": "1", "ce-source": "/s",
                             "Content-Type": "application/json"}, b"{}"),
    "structured-not-json": ({"Content-Type": "application/cloudevents+json; charset=utf-8"}, b"accepted"),
    "structured-unknown-specversion": ({"Content-Type": "application/cloudevents+json"},
                                       b'{"specversion": "2.0", "type": "t", "source": "/s", "id": "1"}'),
    "batch": ({"Content-Type": "application/cloudevents-batch+json"},
              b'[{"specversion": "1.0", "type": "t", "source": "/s", "id": "1"}]'),
    "extension-name-not-alphanumeric": ({"ce-specversion": "1.0", "ce-type": "t", "ce-id": "1", "ce-source": "/s",
                                         "ce-trace-id": "x", "Content-Type": "application/json"}, b"{}"),
    "structured-extension-an-object": ({"Content-Type": "application/cloudevents+json"},
                                       b'{"specversion": "1.0", "type": "t", "source": "/s", "id": "1", "ext": {}}'),
    "time-a-date-alone": ({"ce-specversion": "1.0", "ce-type": "t", "ce-id": "1", "ce-source": "/s",
                           "ce-time": "2026-06-01", "Content-Type": "application/json"}, b"{}"),
}
"""2xx answers with a body Knative's broker filter cannot take as one CloudEvent (its SDK refuses
an extension named with anything but letters and digits, or holding an object)."""

RETRY_TWICE = """    retry: 2
    backoffPolicy: linear
    backoffDelay: PT0.05S
    deadLetterSink:
      uri: {sink}/dead-letters"""


@pytest.mark.parametrize("answer", NOT_EVENTS, ids=list(NOT_EVENTS))
def test_a_2xx_answer_neither_empty_nor_a_cloud_event_fails_with_502_and_is_retried(tmp_path: Path, answer: str):
    headers, body = NOT_EVENTS[answer]
    subscriber = Subscriber([(200, headers, body)])
    broker = Broker(one_trigger(tmp_path, RETRY_TWICE.format(sink=subscriber.url)), {SERVICE_REF: subscriber.url})
    try:
        post(broker.url, event(), None)
        letter = subscriber.wait(1, "/dead-letters")[0]
        assert len(subscriber.wait(3, "/functions/x")) == 3, "a 502 is retried like any 5xx"
        assert [a.status for a in broker.attempts if a.url.endswith("/functions/x")] == [200] * 3
        assert not [name for name in letter[2] if name.startswith("ce-knativeerror")], \
            "the filter's own 502 carries no error information for the dead letter"
        assert broker.replies == 0 and broker.received == {"test.event": 1}
    finally:
        broker.close()
        subscriber.close()


INVALID_REPLIES = {
    "binary-without-type": ({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s",
                             "Content-Type": "application/json"}, b"{}"),
    "structured-without-id": ({"Content-Type": "application/cloudevents+json"},
                              b'{"specversion": "1.0", "type": "t", "source": "/s"}'),
    "structured-blank-id": ({"Content-Type": "application/cloudevents+json"},
                            b'{"specversion": "1.0", "id": " ", "type": "t", "source": "/s"}'),
    "structured-blank-subject": ({"Content-Type": "application/cloudevents+json"},
                                 b'{"specversion": "1.0", "id": "1", "type": "t", "source": "/s", "subject": " "}'),
    "binary-malformed-content-type": ({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t",
                                       "Content-Type": "application/"}, b"{}"),
    "binary-relative-dataschema": ({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t",
                                    "ce-dataschema": "schemas/t", "Content-Type": "application/json"}, b"{}"),
}
"""Replies the filter reads but the ingress refuses (sdk-go ``EventContextV1.Validate``): a
missing or blank ``id``, ``source`` or ``type``; a blank ``subject``; a ``datacontenttype`` Go's
``mime.ParseMediaType`` refuses; a ``dataschema`` that is no absolute URI."""


@pytest.mark.parametrize("answer", INVALID_REPLIES, ids=list(INVALID_REPLIES))
def test_a_reply_the_ingress_refuses_dead_letters_the_event_answered(tmp_path: Path, answer: str):
    headers, body = INVALID_REPLIES[answer]
    subscriber = Subscriber([(200, headers, body)])
    broker = Broker(one_trigger(tmp_path, RETRY_TWICE.format(sink=subscriber.url)), {SERVICE_REF: subscriber.url})
    try:
        post(broker.url, event(), None)
        letter = subscriber.wait(1, "/dead-letters")[0][2]
        assert (letter["ce-type"], letter["ce-knativeerrorcode"], letter["ce-knativeerrordest"]) == (
            "test.event", "400", broker.url), "the ingress's 400 is not retried"
        assert len([r for r in subscriber.received if r[1] == "/functions/x"]) == 1
        assert broker.replies == 0 and broker.received == {"test.event": 1}
        message = ce_http.HTTPMessage(headers={k.lower(): v for k, v in headers.items()}, body=body)
        request = urllib.request.Request(broker.url, data=message.body, headers=dict(message.headers), method="POST")
        with pytest.raises(urllib.error.HTTPError, match="400"):
            urllib.request.urlopen(request, timeout=10)
    finally:
        broker.close()
        subscriber.close()


def test_an_empty_2xx_answer_is_delivered_whatever_its_headers(tmp_path: Path):
    subscriber = Subscriber([(202, {"Content-Type": "application/json", "Katuna-Emitted": "t 1"}, b""), 204])
    broker = Broker(one_trigger(tmp_path, RETRY_TWICE.format(sink=subscriber.url)), {SERVICE_REF: subscriber.url})
    try:
        post(broker.url, event(), None)
        post(broker.url, event(), None)
        subscriber.wait(2, "/functions/x")
        eventually(broker.idle, "the broker is idle", timeout=30)
        time.sleep(0.2)
        assert [r[1] for r in subscriber.received] == ["/functions/x"] * 2, "no retry, no dead letter"
        assert broker.replies == 0
    finally:
        broker.close()
        subscriber.close()


def test_no_answer_is_a_500_retried_whose_dead_letter_carries_the_dispatchers_words(tmp_path: Path):
    """A request that got no answer is a 500 with ``dispatch error: ...`` as its body
    (executeRequest), which the dead letter carries as any answer's."""
    sink = Subscriber([202])
    closed = f"http://127.0.0.1:{free_port()}"
    broker = Broker(one_trigger(tmp_path, RETRY_TWICE.format(sink=sink.url)), {SERVICE_REF: closed})
    try:
        post(broker.url, event(), None)
        headers = sink.wait(1, "/dead-letters")[0][2]
        assert headers["ce-type"] == "test.event"
        assert (headers["ce-knativeerrorcode"], headers["ce-knativeerrordest"]) == ("500", f"{closed}/functions/x")
        assert base64.b64decode(headers["ce-knativeerrordata"]).startswith(b"dispatch error: ")
        assert [a.status for a in broker.attempts][:3] == [None] * 3
    finally:
        broker.close()
        sink.close()


def test_an_error_answer_too_long_for_the_dead_letters_error_data_crashes_the_dispatcher_and_loses_the_event(
        tmp_path: Path):
    """The in-memory channel writes the answer's body, base64, into a buffer of 1,024
    characters: 768 bytes fit, one more panics the dispatcher (eventing-natss#434)."""
    fits, crashes = (422, {}, b"x" * 768), (422, {}, b"x" * 769)
    sink = Subscriber([202])
    for answer, letters in ((fits, 1), (crashes, 1)):
        subscriber = Subscriber([answer])
        broker = Broker(one_trigger(tmp_path, RETRY_TWICE.format(sink=sink.url)), {SERVICE_REF: subscriber.url})
        try:
            assert post(broker.url, event(), None)[0] == (202 if answer is fits else 500)
            assert len([r for r in sink.received if r[1] == "/dead-letters"]) == letters, "no dead letter after a crash"
            assert broker.crashes == ([] if answer is fits else [
                "index out of range [1024] with length 1024: an error answer of 769 bytes"])
        finally:
            broker.close()
            subscriber.close()
    sink.close()


def test_a_dead_letter_sinks_2xx_answer_with_a_body_that_is_no_event_fails_as_the_filter_judges_it(tmp_path: Path):
    """With OIDC, the dead-letter sink is reached through broker-filter's ``/dls``, whose answer
    rule is a subscriber's: an empty 2xx is taken, a body that is no CloudEvent is a 502."""
    for sink_answer, kept in (((202, {}, b'{"recorded": "x"}'), 0), ((202, {}, b""), 1)):
        sink, subscriber = Subscriber([sink_answer]), Subscriber([422])
        broker = Broker(one_trigger(tmp_path, RETRY_TWICE.format(sink=sink.url)), {SERVICE_REF: subscriber.url})
        try:
            post(broker.url, event(), None)
            assert len(broker.dead_letters) == kept
            assert len(sink.received) == (3 if kept == 0 else 1), "a 502 is retried"
        finally:
            broker.close()
            subscriber.close()
            sink.close()


def test_the_ingress_gives_each_event_a_ttl_and_refuses_one_spent(tmp_path: Path):
    """255 for an event without one, one less for one with one, a 400 where that leaves 0
    (eventing pkg/broker/ttl.go, ingress_handler.go); the subscriber gets its copy without it."""
    subscriber = Subscriber([202])
    broker = Broker(one_trigger(tmp_path, RETRY_TWICE.format(sink=subscriber.url)), {SERVICE_REF: subscriber.url})
    try:
        assert post(broker.url, event(), None)[0] == 202
        assert post(broker.url, event(knativebrokerttl="2"), None)[0] == 202
        assert post(broker.url, event(knativebrokerttl="1"), None)[0] == 400, "1 less is 0: refused"
        assert post(broker.url, event(knativebrokerttl="0"), None)[0] == 400
        delivered = subscriber.wait(2, "/functions/x")
        assert not [r for r in delivered if "ce-knativebrokerttl" in r[2]], "the filter takes the TTL off"
        assert broker.received == {"test.event": 2}
    finally:
        broker.close()
        subscriber.close()


def _ask(url: str, method: str, body: bytes | None = None) -> tuple[int, dict[str, str]]:
    """A request with no event headers: the answer's status and headers."""
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "text/plain"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def test_the_ingress_takes_events_only_at_the_brokers_address(tmp_path: Path):
    """The multi-tenant ingress serves each Broker at ``/<namespace>/<name>`` of its own address
    (ingress_handler.go ``ServeHTTP``): ``/`` alone is 404, a path of another shape 400, and a
    Broker it does not know 404 once the event is read (a body that is no event is 400 there);
    it allows POST and OPTIONS only, saying so in ``Allow``."""
    subscriber = Subscriber([202])
    broker = Broker(one_trigger(tmp_path, "    retry: 0"), {SERVICE_REF: subscriber.url}, namespace="tuning")
    try:
        root = broker.url.removesuffix("/tuning/katuna")
        assert broker.url == f"{root}/tuning/katuna" and root.count("/") == 2, "the Broker's address has its path"
        paths = ("/", "/tuning", "/tuning/katuna/x", "/tuning/other", "/katuna/katuna", "/tuning/katuna?x=1",
                 "/tuning/katuna/")
        assert {path: post(root + path, event(), None)[0] for path in paths} == {
            "/": 404, "/tuning": 400, "/tuning/katuna/x": 400, "/tuning/other": 404, "/katuna/katuna": 404,
            "/tuning/katuna?x=1": 404, "/tuning/katuna/": 202}
        assert (_ask(root + "/", "POST", b"no event")[0], _ask(root + "/tuning/other", "POST", b"no event")[0]) == (
            404, 400), "the path is checked before the event, the event before the Broker"
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            status, headers = _ask(broker.url, method)
            assert (status, headers["Allow"]) == (405, "POST, OPTIONS"), method
        status, headers = _ask(broker.url, "OPTIONS")
        assert (status, headers["WebHook-Allowed-Origin"], headers["WebHook-Allowed-Rate"]) == (200, "*", "*")
        assert broker.received == {"test.event": 1} and len(subscriber.received) == 1
    finally:
        broker.close()
        subscriber.close()


def test_a_chain_of_replies_is_refused_at_its_255th_and_the_event_answered_is_dead_lettered(tmp_path: Path):
    """Each reply carries the answered event's TTL back to the ingress, which takes one off: the
    255th reply in a row is refused (400, not retried), as Knative's broker bounds a loop."""
    subscriber = Subscriber([200], reply={"test.event": event("test.event")})
    broker = Broker(one_trigger(tmp_path, RETRY_TWICE.format(sink=subscriber.url)), {SERVICE_REF: subscriber.url})
    try:
        assert post(broker.url, event(), None)[0] == 202
        letter = subscriber.wait(1, "/dead-letters")[0][2]
        assert (letter["ce-knativeerrorcode"], letter["ce-knativeerrordest"], letter["ce-knativebrokerttl"]) == (
            "400", broker.url, "1"), "the event answered, as the channel holds it"
        assert broker.replies == MAX_TTL - 1
        assert len(subscriber.wait(MAX_TTL, "/functions/x")) == MAX_TTL, "the first event and each reply taken"
        assert broker.received == {"test.event": MAX_TTL}
    finally:
        broker.close()
        subscriber.close()


def two_triggers(tmp_path: Path, first: str, second: str, types: tuple[str, str] = ("first", "second")) -> Path:
    """A Broker with Trigger ``first`` (events of type test.<types[0]> to the ``katuna``
    Service) and Trigger ``second`` (type test.<types[1]> to the ``other`` Service), each with
    the ``delivery`` given."""
    (tmp_path / "broker.yaml").write_text(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: katuna\nspec: {}\n")
    for name, service, delivery, kind in (("first", "katuna", first, types[0]), ("second", "other", second, types[1])):
        (tmp_path / f"{name}.yaml").write_text(f"""\
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: {name}
spec:
  broker: katuna
  filters:
    - exact:
        type: test.{kind}
  subscriber:
    ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: {service}}}
  delivery:
{delivery}
""")
    return tmp_path


OTHER_REF = "serving.knative.dev/v1/Service/other"


def test_a_reply_the_ingress_fails_is_posted_again_with_back_off_then_dead_letters_the_event_answered(tmp_path: Path):
    """The channel posts a reply to the ingress with the Trigger's delivery (event_dispatcher.go
    ``send``): the ingress answers 500 while the reply's own delivery fails, so the reply is
    posted again after delay * 2^n, reaching its Trigger each time, and once the retries are
    spent the event answered is dead-lettered, naming the ingress and its empty answer."""
    answering = Subscriber([200], reply={"test.first": event("test.second")})
    refusing, sink = Subscriber([503]), Subscriber([202])
    first = f"""    retry: 2
    backoffPolicy: exponential
    backoffDelay: PT0.1S
    deadLetterSink:
      uri: {sink.url}/dead-letters"""
    broker = Broker(two_triggers(tmp_path, first, "    retry: 0"), {SERVICE_REF: answering.url, OTHER_REF: refusing.url})
    try:
        assert post(broker.url, event("test.first"), None)[0] == 202, "the dead-letter sink took the event answered"
        letter = sink.wait(1, "/dead-letters")[0][2]
        assert (letter["ce-type"], letter["ce-knativeerrorcode"], letter["ce-knativeerrordest"]) == (
            "test.first", "500", broker.url)
        assert letter["ce-knativeerrordata"] == "", "the ingress answers a failed fan-out with no body"
        tries = [r[0] for r in refusing.received]
        assert len(tries) == 3, "the reply's first post and two more"
        assert tries[1] - tries[0] >= 0.1 and tries[2] - tries[1] >= 0.2, "0.1 s, then 0.2 s: delay * 2^n"
        assert len(answering.received) == 1, "the subscriber's answer is not asked for again"
        assert broker.received == {"test.first": 1, "test.second": 3} and broker.replies == 3
    finally:
        broker.close()
        for subscriber in (answering, refusing, sink):
            subscriber.close()


def test_the_channel_waits_its_limit_for_each_next_delivery_to_end_not_for_all(tmp_path: Path):
    """The fan-out limit restarts with each delivery that ends (a fresh ``time.After`` per
    result in fanout_event_handler.go ``dispatch``): deliveries ending 0.6 and 1.2 limits after
    the post are both waited for. One still running a limit after the last result is not: the
    channel answers 500 and cancels it, so its retry is never attempted."""
    limit = 1.5
    soon, later = Subscriber([202], hold=0.6 * limit), Subscriber([202], hold=1.2 * limit)
    broker = Broker(two_triggers(tmp_path, "    retry: 0", "    retry: 0", ("event", "event")),
                    {SERVICE_REF: soon.url, OTHER_REF: later.url}, fanout_timeout=limit)
    try:
        assert post(broker.url, event(), None)[0] == 202
        assert (len(soon.received), len(later.received), broker.timeouts) == (1, 1, 0)
    finally:
        broker.close()
        soon.close()
        later.close()
    stuck = Subscriber([503])
    stuck.released.clear()
    (tmp_path / "stuck").mkdir()
    broker = Broker(one_trigger(tmp_path / "stuck", "    retry: 2"), {SERVICE_REF: stuck.url}, fanout_timeout=limit)
    try:
        assert post(broker.url, event(), None)[0] == 500
        assert broker.timeouts == 1
        stuck.released.set()
        eventually(lambda: broker.cancelled == 1 and broker.idle(), "the retry to be cancelled", timeout=10)
        assert len(stuck.received) == 1, "the retry after the channel answered was never attempted"
    finally:
        stuck.released.set()
        broker.close()
        stuck.close()


def test_time_scale_shrinks_the_back_off_and_keeps_the_retries(tmp_path: Path):
    subscriber = Subscriber([503])
    delivery = f"""    retry: 3
    backoffPolicy: exponential
    backoffDelay: PT10S
    deadLetterSink:
      uri: {subscriber.url}/dead-letters"""
    broker = Broker(one_trigger(tmp_path, delivery), {SERVICE_REF: subscriber.url}, time_scale=0.02)
    try:
        post(broker.url, event(), None)
        subscriber.wait(1, "/dead-letters")
        tries = [r[0] for r in subscriber.received if r[1] == "/functions/x"]
        gaps = [later - earlier for earlier, later in zip(tries, tries[1:], strict=False)]
        assert len(tries) == 4 and gaps[0] >= 0.2 and gaps[1] >= 0.4 and 0.8 <= gaps[2] < 5, gaps
    finally:
        broker.close()
        subscriber.close()
    with pytest.raises(ValueError, match="time_scale"):
        Broker(one_trigger(tmp_path, delivery), {SERVICE_REF: subscriber.url}, time_scale=0)


def test_a_structured_event_is_delivered_and_its_reply_re_enters_the_broker_once(tmp_path: Path):
    subscriber = Subscriber([200], reply={"test.first": event("test.reply")})
    broker = Broker(one_trigger(tmp_path, "    retry: 3", "- prefix:\n        type: test."), {SERVICE_REF: subscriber.url})
    try:
        structured = ce_http.to_structured_event(event("test.first"))
        request = urllib.request.Request(broker.url, data=structured.body, headers=structured.headers, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
        received = subscriber.wait(2)
        time.sleep(0.3)
        assert [r[2]["ce-type"] for r in subscriber.received] == ["test.first", "test.reply"], "each once, in binary mode"
        assert received[0][2]["ce-knativearrivaltime"], "stamped by the ingress"
        assert broker.received == {"test.first": 1, "test.reply": 1} and broker.replies == 1
        bad = urllib.request.Request(broker.url, data=b"{}", headers={"Content-Type": "application/json"}, method="POST")
        with pytest.raises(urllib.error.HTTPError, match="400"):
            urllib.request.urlopen(bad, timeout=10)
    finally:
        broker.close()
        subscriber.close()


def test_a_structured_replys_extension_names_are_taken_lower_cased_as_knatives_sdk_takes_them(tmp_path: Path):
    reply = json.dumps({"specversion": "1.0", "type": "test.reply", "source": "/s", "id": "r1", "traceId": "abc"})
    subscriber = Subscriber([(200, {"Content-Type": "application/cloudevents+json"}, reply.encode()), 202])
    broker = Broker(one_trigger(tmp_path, RETRY_TWICE.format(sink=subscriber.url), "- prefix:\n        type: test."),
                    {SERVICE_REF: subscriber.url})
    try:
        post(broker.url, event(), None)
        delivered = subscriber.wait(2)[1][2]
        assert (delivered["ce-type"], delivered["ce-traceid"]) == ("test.reply", "abc")
        assert broker.received == {"test.event": 1, "test.reply": 1} and broker.replies == 1
    finally:
        broker.close()
        subscriber.close()


def test_only_the_multi_tenant_channel_based_broker_is_emulated(tmp_path: Path):
    manifests_dir = one_trigger(tmp_path, "    retry: 1")
    broker = (manifests_dir / "broker.yaml").read_text()
    (manifests_dir / "broker.yaml").write_text(broker.replace(
        "name: katuna\n", "name: katuna\n  annotations:\n    eventing.knative.dev/broker.class: Kafka\n"))
    with pytest.raises(ValueError, match="broker.class 'Kafka' is not emulated"):
        Broker(manifests_dir, {SERVICE_REF: "http://127.0.0.1:1"})


def test_a_destination_is_resolved_and_refused_as_knatives_webhook_and_resolver_do(tmp_path: Path):
    """A ``uri`` beside a ``ref`` is relative to the ref's address (with or without its leading
    slash); an absolute one beside a ``ref``, or a relative one alone, is refused."""
    manifests_dir = one_trigger(tmp_path, "    retry: 1")
    trigger = (manifests_dir / "trigger.yaml").read_text()
    (manifests_dir / "trigger.yaml").write_text(trigger.replace("uri: /functions/x", "uri: functions/x"))
    broker = Broker(manifests_dir, {SERVICE_REF: "http://127.0.0.1:1"})
    broker.close()
    assert [t.subscriber for t in broker.triggers] == ["http://127.0.0.1:1/functions/x"]
    for uri, refused in (("http://elsewhere/functions/x", "absolute uri"), ("/functions/x", "without ref")):
        changed = trigger.replace("uri: /functions/x", f"uri: {uri}")
        if refused == "without ref":
            changed = changed.replace("    ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: katuna}\n", "")
        (manifests_dir / "trigger.yaml").write_text(changed)
        with pytest.raises(ValueError, match=refused):
            Broker(manifests_dir, {SERVICE_REF: "http://127.0.0.1:1"})


def test_a_triggers_delivery_naming_no_dead_letter_sink_dead_letters_to_the_brokers(tmp_path: Path):
    """Knative's Subscription falls back to its channel's dead-letter sink, the Broker's; the
    Trigger's own retries (none here) stay its own."""
    subscriber = Subscriber([500, 202])
    manifests_dir = one_trigger(tmp_path, "    retry: 0")
    (manifests_dir / "broker.yaml").write_text(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: katuna\nspec:\n  delivery:\n"
        f"    retry: 3\n    deadLetterSink:\n      uri: {subscriber.url}/broker-dead-letters\n")
    broker = Broker(manifests_dir, {SERVICE_REF: subscriber.url})
    try:
        post(broker.url, event(), None)
        assert [r[1] for r in subscriber.wait(2)] == ["/functions/x", "/broker-dead-letters"]
    finally:
        broker.close()
        subscriber.close()


def test_a_trigger_filters_on_the_event_without_the_brokers_ttl_as_knatives_filter_does(tmp_path: Path):
    subscriber = Subscriber([202])
    broker = Broker(one_trigger(tmp_path, "    retry: 0", "- exact:\n        knativebrokerttl: '255'"),
                    {SERVICE_REF: subscriber.url})
    try:
        assert post(broker.url, event(), None)[0] == 202
        assert subscriber.received == [] and broker.attempts == []
    finally:
        broker.close()
        subscriber.close()


def test_filters_evaluate_as_knative_does():
    def passes(filters: list, **attributes: str) -> bool:
        return delivered(trigger_filter({"filters": filters}), attributes)

    job = {"type": "dev.knative.apiserver.resource.update", "apiversion": "batch/v1", "kind": "Job"}
    assert passes([{"exact": {"type": job["type"], "apiversion": "batch/v1"}}], **job)
    assert not passes([{"exact": {"type": job["type"], "apiversion": "katuna.dev/v1"}}], **job)
    assert not passes([{"exact": {"subject": "x"}}], **job), "a missing attribute fails"
    assert passes([{"prefix": {"type": "dev.knative.apiserver."}}, {"suffix": {"type": ".update"}}], **job)
    assert passes([{"any": [{"exact": {"kind": "Study"}}, {"exact": {"kind": "Job"}}]}], **job)
    assert not passes([{"not": {"exact": {"kind": "Job"}}}], **job)
    assert passes([{"all": [{"not": {"exact": {"kind": "Study"}}}, {"prefix": {"apiversion": "batch"}}]}], **job)
    assert passes([], **job), "no filter delivers everything"
    for refused in ([{"exact": {"type": "a"}, "prefix": {"type": "b"}}], [{"cesql": "type = 'a'"}],
                    [{"exact": {"Type": "a"}}], [{"exact": {"type": ""}}]):
        with pytest.raises(UnsupportedFilter):
            trigger_filter({"filters": refused})
    with pytest.raises(UnsupportedFilter, match="spec.filter"):
        trigger_filter({"filter": {"attributes": {"type": "a"}}})
    with pytest.raises(UnsupportedFilter, match="multiple dialects"):
        trigger_filter({"filters": [{"exact": {"type": "a"}, "not": {}}]})
    assert passes([{"exact": {"type": job["type"]}, "cesql": ""}], **job), "an empty cesql is no dialect"


def test_delivery_reads_iso_durations_and_refuses_what_it_does_not_emulate():
    assert iso_seconds("PT0.5S") == 0.5 and iso_seconds("PT1M30S") == 90 and iso_seconds("P1DT1H") == 90000
    spec = Delivery.from_spec({"retry": 5, "backoffPolicy": "linear", "backoffDelay": "PT2S"})
    assert [spec.backoff(n) for n in range(3)] == [0, 2, 4], "linear: delay * n, n from 0"
    for bad in ({"retry": -1}, {"backoffPolicy": "random"}, {"timeout": "PT1S"}, {"backoffDelay": "0.5s"}):
        with pytest.raises(ValueError):
            Delivery.from_spec(bad)


def test_a_backoff_delay_keeps_one_decimal_place_as_knatives_period_parser_does():
    """rickb777/date's ``period.Parse`` keeps tenths: finer delays are cut, not rounded."""
    assert iso_seconds("PT0.25S") == 0.2 and iso_seconds("PT0.99S") == 0.9 and iso_seconds("PT1.05S") == 1.0
    assert Delivery.from_spec({"backoffPolicy": "exponential", "backoffDelay": "PT0.05S"}).backoff(3) == 0, \
        "PT0.05S is no delay at all on a cluster"


def test_the_manifests_triggers_route_each_event_type_to_its_functions():
    broker = Broker(MANIFESTS, {SERVICE_REF: "http://127.0.0.1:1"})
    try:
        def routed(event_type: str, **extensions: str) -> set[str]:
            attributes = attributes_of(event(event_type, **extensions))
            return {t.subscriber.rsplit("/", 1)[1] for t in broker.triggers if delivered(t.check, attributes)}

        assert routed("dev.katuna.study.created") == {"suggest", "provision"}
        assert routed("dev.katuna.study.completed") == {"stop", "provision", "writeback"}
        assert routed("dev.knative.sources.ping") == {"provision"} | ({"reconcile"} & _functions())
        assert routed("dev.knative.apiserver.resource.update", apiversion="batch/v1", kind="Job") == {"jobwatch"}
        assert routed("dev.knative.apiserver.resource.add", apiversion="katuna.dev/v1") == {"resource"}
        assert routed("dev.knative.apiserver.resource.add") == set(), "no apiversion, no Trigger"
        assert {t.dead_letter for t in broker.triggers} == {"http://127.0.0.1:1/dead-letters"}
    finally:
        broker.close()


def test_the_api_server_source_names_an_object_as_the_adapter_does_and_katuna_routes_by_its_apiversion():
    """The adapter's ``subject`` is ``createSelfLink``'s: ``/apis/`` and the apiVersion as it is
    (a core object's too, where its API path is ``/api/v1``), the resource guessed from the
    kind; the manifests' Triggers route on the ``apiversion`` attribute, whatever the subject."""
    from knative_emulator.sources import resource_event

    def changed(api_version: str, kind: str) -> dict[str, str]:
        obj = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "namespace": "katuna"}}
        return attributes_of(resource_event("update", obj))

    subjects = {kind: changed(version, kind)["subject"] for version, kind in (
        ("v1", "Pod"), ("v1", "Endpoints"), ("networking.k8s.io/v1", "Ingress"),
        ("networking.k8s.io/v1", "NetworkPolicy"), ("batch/v1", "Job"), ("katuna.dev/v1", "Study"))}
    assert subjects == {
        "Pod": "/apis/v1/namespaces/katuna/pods/x", "Endpoints": "/apis/v1/namespaces/katuna/endpoints/x",
        "Ingress": "/apis/networking.k8s.io/v1/namespaces/katuna/ingresses/x",
        "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/katuna/networkpolicies/x",
        "Job": "/apis/batch/v1/namespaces/katuna/jobs/x", "Study": "/apis/katuna.dev/v1/namespaces/katuna/studies/x"}
    broker = Broker(MANIFESTS, {SERVICE_REF: "http://127.0.0.1:1"})
    try:
        def routed(api_version: str, kind: str) -> set[str]:
            attributes = changed(api_version, kind)
            return {t.subscriber.rsplit("/", 1)[1] for t in broker.triggers if delivered(t.check, attributes)}

        assert (routed("batch/v1", "Job"), routed("katuna.dev/v1", "Study")) == ({"jobwatch"}, {"resource"})
        assert routed("v1", "Pod") == set(), "katuna takes no core object's change"
    finally:
        broker.close()


def test_the_services_address_holds_the_container_to_its_concurrency_and_its_requests_to_the_timeout():
    """The activator lets ``containerConcurrency`` requests reach the container at once and
    queues the rest; one unanswered after ``timeoutSeconds`` gets 504. The manifests' Service
    allows 8 at once and 300 s."""
    assert revision_limits(katuna_service(documents())) == (8, 300.0)
    container = Subscriber([202])
    container.released.clear()
    revision = Revision(revision_service(containerConcurrency=2, timeoutSeconds=1), int(container.url.rsplit(":", 1)[1]))
    answers: list[int | None] = []
    senders = [threading.Thread(target=lambda: answers.append(post(revision.url + "/functions/x", event(), None)[0]))
               for _ in range(3)]
    try:
        for sender in senders:
            sender.start()
        container.wait(2)
        eventually(lambda: revision.gate.waiting == 1, "the third request to wait in the queue", timeout=10)
        assert len(container.received) == 2, "two at once"
        container.released.set()
        for sender in senders:
            sender.join()
        assert (answers, len(container.received), revision.gate.most) == ([202] * 3, 3, 2)
        container.released.clear()
        status, _, body = post(revision.url + "/functions/x", event(), None)
        assert (status, body) == (504, b"activator request timeout")
    finally:
        container.released.set()
        revision.close()
        container.close()


def test_the_services_address_holds_requests_while_the_container_is_down_and_passes_them_on_once_it_is_ready():
    """With no ready pod the activator has no capacity for the revision: a request waits in its
    queue, as while a revision scales from zero, and reaches the container once the pod is ready
    again (a delay, not the 502 of a connection the proxy cannot make); one still waiting at
    ``timeoutSeconds`` gets the activator's 504."""
    port = free_port()
    container = Subscriber([202], port=port)
    revision = Revision(revision_service(containerConcurrency=2, timeoutSeconds=60), port)
    never = Revision(revision_service(timeoutSeconds=1), free_port())
    answers: list[int | None] = []
    sender = threading.Thread(target=lambda: answers.append(post(revision.url + "/functions/x", event(), None)[0]))
    try:
        assert post(revision.url + "/functions/x", event(), None)[0] == 202
        container.close()
        eventually(lambda: not revision.gate.ready, "the activator to count the pod not ready", timeout=10)
        sender.start()
        eventually(lambda: revision.gate.waiting == 1, "the request to wait in the activator's queue", timeout=10)
        container = Subscriber([202], port=port)
        sender.join(timeout=60)
        assert (answers, len(container.received)) == ([202], 1), "held while the container was down, then delivered"
        status, _, body = post(never.url + "/functions/x", event(), None)
        assert (status, body) == (504, b"activator request timeout"), "a pod never ready: the timeout, not a 502"
    finally:
        never.close()
        revision.close()
        container.close()


@pytest.mark.slow
def test_a_delivery_the_revision_timeout_cuts_off_is_handled_once_and_its_redelivery_replies_again(tmp_path: Path):
    """A handling that outlasts ``timeoutSeconds`` (the database's write lock held meanwhile)
    gets the activator's 504, which the Trigger retries; gunicorn does not stop the handling, which
    commits once the lock is free. The redelivery of the same event sends the events that
    handling emitted again, under the same ids (none is lost with the cut answer), and makes no
    trial again."""
    from http_helpers import Sink
    from knative_emulator.service import KatunaProcess

    token = "timeout-token-0123456789"
    sink = Sink()
    container = KatunaProcess(tmp_path, KATUNA_API_TOKEN=token, KATUNA_EVENTS="reply", K_SINK=sink.url)
    revision = Revision(revision_service(containerConcurrency=8, timeoutSeconds=1), container.port)
    bearer = {"Authorization": f"Bearer {token}"}

    def deliver() -> tuple[int, dict[str, str], bytes]:
        headers, body = next(item for item in sink.received if item[0]["ce-type"] == "dev.katuna.study.created")
        kept = {k: v for k, v in headers.items() if k.startswith("ce-") or k == "content-type"}
        request = urllib.request.Request(f"{revision.url}/functions/suggest", body, {**kept, **bearer}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, {}, error.read()

    def trials() -> list[int]:
        request = urllib.request.Request(f"{container.url}/studies/cut/trials", headers=bearer)
        with urllib.request.urlopen(request, timeout=30) as answer:
            return sorted(trial["number"] for trial in json.loads(answer.read()))

    def suggested() -> set[str]:
        return {h["ce-id"] for h, _ in list(sink.received) if h["ce-type"] == "dev.katuna.trial.suggested"}

    try:
        study = json.dumps(study_definition(name="cut", parallelism=2)).encode()
        request = urllib.request.Request(f"{container.url}/studies", study,
                                         {**bearer, "Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 201
        eventually(lambda: any(h["ce-type"] == "dev.katuna.study.created" for h, _ in sink.received),
                   "the study's study.created", timeout=30)
        lock = sqlite3.connect(tmp_path / "katuna.db", isolation_level=None, timeout=30)
        try:
            lock.execute("BEGIN IMMEDIATE")
            assert deliver()[:3:2] == (504, b"activator request timeout")
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        eventually(lambda: trials() == [0, 1], "the cut-off handling to commit its trials", timeout=30)
        eventually(lambda: len(suggested()) == 2, "the cut-off handling's events", timeout=30)
        first = suggested()
        status, headers, body = deliver()
        assert status == 202, (status, headers, body)
        again = {item.strip().partition(" ")[::2] for item in headers["katuna-emitted"].split(",")}
        assert again == {("dev.katuna.trial.suggested", id_) for id_ in first}, "the same events, under the same ids"
        assert trials() == [0, 1], "no trial made again"
    finally:
        revision.close()
        container.close()
        sink.close()


def revision_service(**spec: object) -> dict:
    """A Service whose template has ``spec`` and keeps the activator in every request's path."""
    return {"spec": {"template": {"metadata": {"annotations": {"autoscaling.knative.dev/target-burst-capacity": "-1"}},
                                  "spec": spec}}}


@pytest.mark.parametrize(("spec", "limits"), [
    ({"containerConcurrency": 1000, "timeoutSeconds": 600}, (1000, 600.0)),
    ({"containerConcurrency": 0, "timeoutSeconds": 0}, (0, 300.0)),
    ({}, (0, 300.0)),
    ({"timeoutSeconds": 601}, "timeoutSeconds"),
    ({"timeoutSeconds": -1}, "timeoutSeconds"),
    ({"containerConcurrency": 1001}, "containerConcurrency"),
    ({"containerConcurrency": -1}, "containerConcurrency"),
    ({"idleTimeoutSeconds": 30}, "idleTimeoutSeconds"),
    ({"containers": [{"image": "k:1", "ports": [{"containerPort": 8080}, {"containerPort": 9000}]}]},
     "more than one container port is set"),
    ({"containers": [{"image": "k:1"}, {"image": "s:1"}]}, "ports: missing, with more than one container"),
])
def test_the_services_limits_are_those_servings_webhook_takes_under_its_default_config(spec: dict, limits):
    """config-defaults: ``timeoutSeconds`` up to 600 (``max-revision-timeout-seconds``), 0 or
    none meaning 300; ``containerConcurrency`` up to 1,000 (``container-concurrency-max-limit``),
    0 meaning no limit; one port in all the containers (k8s_validation.go
    ``validateContainersPorts``). What the webhook refuses, the emulator refuses, naming the field."""
    service = revision_service(**spec)
    if isinstance(limits, str):
        with pytest.raises(ValueError, match=limits):
            revision_limits(service)
    else:
        assert revision_limits(service) == limits


@pytest.mark.parametrize("annotations", [{}, {"autoscaling.knative.dev/target-burst-capacity": "0"}])
def test_a_template_that_may_take_the_activator_out_of_the_path_is_not_emulated(annotations: dict):
    """Without the activator (a burst capacity the cluster's config or the annotation sets low),
    queue-proxy answers 503 beyond its own queue, which the emulator does not model."""
    service = {"spec": {"template": {"metadata": {"annotations": annotations}, "spec": {}}}}
    with pytest.raises(ValueError, match="target-burst-capacity: only -1 is emulated"):
        revision_limits(service)


@pytest.mark.parametrize(("annotation", "value", "refused"), [
    ("autoscaling.knative.dev/min-scale", "2", "max-scale=1 is less than min-scale=2"),
    ("autoscaling.knative.dev/initial-scale", "0", "initial-scale"),
    ("serving.knative.dev/progress-deadline", "15", "progress-deadline"),
])
def test_the_services_address_is_refused_for_a_template_servings_webhook_refuses(annotation: str, value: str,
                                                                                refused: str):
    service = copy.deepcopy(katuna_service(documents()))
    service["spec"]["template"]["metadata"]["annotations"][annotation] = value
    with pytest.raises(ValueError, match=refused):
        revision_limits(service)


def test_the_services_address_is_refused_for_a_service_annotation_servings_webhook_refuses():
    """An autoscaling annotation on the Service itself, where it would do nothing, is refused."""
    service = copy.deepcopy(katuna_service(documents()))
    service["metadata"].setdefault("annotations", {})["autoscaling.knative.dev/max-scale"] = "1"
    with pytest.raises(ValueError, match="autoscaling annotations must be put under spec.template"):
        revision_limits(service)


def _functions() -> set[str]:
    return {doc["spec"]["subscriber"]["uri"].rsplit("/", 1)[1] for doc in manifests("Trigger")}


def _ping(spec: dict) -> dict:
    return {"apiVersion": "sources.knative.dev/v1", "kind": "PingSource", "metadata": {"name": "tick"},
            "spec": {"sink": {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "katuna"}},
                     **spec}}


def test_the_ping_source_sends_its_data_as_knatives_adapter_makes_the_event():
    """``data`` as it is, or ``dataBase64`` decoded, with ``contentType`` as the event's
    ``datacontenttype`` and none without it (runner.go ``makeEvent``); no data, no body; the
    source names the PingSource (``PingSourceSource``)."""
    from knative_emulator.faults import Faults
    from knative_emulator.ping import PingSource

    def tick(manifest: dict, namespace: str = "katuna") -> ce_http.HTTPMessage:
        ping = PingSource(manifest, "http://127.0.0.1:1/", Faults(), interval=3600, namespace=namespace)
        ping.close()
        return ce_http.to_binary_event(ping.tick())

    shipped = tick(manifests("PingSource")[0], "tuning")
    name = manifests("PingSource")[0]["metadata"]["name"]
    assert (shipped.headers["ce-type"], shipped.headers["ce-source"]) == (
        "dev.knative.sources.ping", f"/apis/v1/namespaces/tuning/pingsources/{name}")
    assert (shipped.headers["content-type"], shipped.body) == ("application/json", b"{}")
    encoded = tick(_ping({"dataBase64": base64.b64encode(b"\x00tick").decode()}))
    assert ("content-type" not in encoded.headers, encoded.body) == (True, b"\x00tick"), "no contentType, none set"
    bare = tick(_ping({"schedule": "0/5 * * * * *", "timezone": "Europe/Paris"}))
    assert ("content-type" not in bare.headers, bare.body, bare.headers["ce-time"] != "") == (True, b"", True)


@pytest.mark.parametrize(("spec", "refused"), [
    ({"schedule": "*/2 * * * *"}, None), ({"schedule": "10 0/5 * * * ?"}, None), ({"schedule": "@hourly"}, None),
    ({"schedule": "0 9 * JAN-mar mon-FRI", "timezone": "America/New_York"}, None),
    ({"contentType": "application/json", "dataBase64": base64.b64encode(b'{"a": 1}').decode()}, None),
    ({"contentType": "text/plain", "data": "[1]"}, None),
    ({"schedule": "2"}, "spec.schedule"), ({"schedule": "@every 1m"}, "spec.schedule"),
    ({"schedule": "* * * * * * *"}, "spec.schedule"), ({"schedule": "60 * * * *"}, "spec.schedule"),
    ({"schedule": "* * * * 7"}, "spec.schedule"), ({"schedule": "*/0 * * * *"}, "spec.schedule"),
    ({"schedule": "5-1 * * * *"}, "spec.schedule"), ({"schedule": "@fortnightly"}, "spec.schedule"),
    ({"timezone": "Knative/Land"}, "spec.timezone"),
    ({"data": "x", "dataBase64": "eA=="}, "spec.data, spec.dataBase64"),
    ({"dataBase64": "$$$ not base64 $$$"}, "spec.dataBase64"),
    ({"contentType": "application/json", "data": "Invalid JSON"}, "spec.data"),
    ({"contentType": "application/json", "data": "[1]"}, "spec.data"),
    ({"contentType": "application/json", "dataBase64": base64.b64encode(b"no").decode()}, "spec.dataBase64"),
    ({"ceOverrides": {"extensions": {"a": "b"}}}, "not emulated"),
])
def test_a_ping_source_is_refused_as_eventings_webhook_refuses_it(spec: dict, refused: str | None):
    """robfig/cron v3 with seconds optional and descriptors, but not ``@every``; the timezone a
    location Go knows; one of ``data`` and ``dataBase64``, a JSON object under ``application/json``."""
    from knative_emulator.faults import Faults
    from knative_emulator.ping import PingSource

    if refused is None:
        PingSource(_ping(spec), "http://127.0.0.1:1/", Faults(), interval=3600).close()
        return
    with pytest.raises(ValueError, match=re.escape(refused)):
        PingSource(_ping(spec), "http://127.0.0.1:1/", Faults(), interval=3600)


def test_the_sink_binding_gives_the_service_the_brokers_address_and_its_ce_overrides():
    """``K_SINK`` is the Broker's ``status.address.url``, its path included; ``K_CE_OVERRIDES``
    is always set, empty where the binding has no ``ceOverrides`` (sinkbinding_lifecycle.go ``Do``)."""
    from knative_emulator import sink_binding_env, sink_of

    broker = Broker(MANIFESTS, {SERVICE_REF: "http://127.0.0.1:1"}, namespace="tuning")
    try:
        assert sink_binding_env(broker) == {"K_SINK": broker.url, "K_CE_OVERRIDES": ""}
        assert urllib.parse.urlsplit(broker.url).path == "/tuning/katuna"
        with pytest.raises(ValueError, match="sink ref to the Broker"):
            sink_of({"uri": broker.url}, broker, "a source")
    finally:
        broker.close()


@pytest.mark.parametrize(("change", "refused"), [
    ({"selector": {"matchLabels": {"app": "katuna"}}}, "exactly one of: name, selector"),
    ({"name": None}, "exactly one of: name, selector"),
    ({"kind": None}, "missing field"),
    ({"namespace": "elsewhere"}, "namespace 'elsewhere'"),
])
def test_a_sink_binding_whose_subject_eventings_webhook_refuses_is_refused(change: dict, refused: str):
    """tracker ``Reference.Validate``: ``apiVersion`` and ``kind``, one of ``name`` and
    ``selector``, and the binding's namespace (sinkbinding_validation.go)."""
    from knative_emulator import sink_binding_env

    docs = copy.deepcopy(documents())
    [binding] = [doc for doc in docs if doc["kind"] == "SinkBinding"]
    subject = binding["spec"]["subject"]
    subject.update(change)
    for field in [field for field, value in change.items() if value is None]:
        del subject[field]
    broker = Broker(docs, {SERVICE_REF: "http://127.0.0.1:1"})
    try:
        with pytest.raises(ValueError, match=refused):
            sink_binding_env(broker, docs)
    finally:
        broker.close()


@pytest.mark.parametrize(("answers", "posts", "answer"), [
    ([503, 502, 202], 3, 202), ([504, 429, 404, 413, 425, 200], 6, 200), ([503], 6, 503), ([500], 1, 500),
    ([400], 1, 400)])
def test_a_source_sends_again_after_what_the_cloudevents_sdk_retries_five_times_at_most(
        answers: list[int], posts: int, answer: int):
    """The adapters send with the SDK's exponential retries (50 ms, 5): after 404, 413, 425,
    429, 502, 503, 504 or no answer; the ingress's 500 (its fan-out failed) and 400 end the send."""
    from knative_emulator.sources import send_once

    ingress = Subscriber(answers)
    try:
        assert send_once(ingress.url, event()) == answer
        assert len(ingress.received) == posts
        assert len({headers["ce-id"] for _, _, headers, _ in ingress.received}) == 1, "the same event each time"
    finally:
        ingress.close()


def _study(name: str) -> dict:
    spec = study_definition(name=name)
    del spec["name"]
    return {"apiVersion": "katuna.dev/v1", "kind": "Study", "metadata": {"name": name, "namespace": "katuna"},
            "spec": spec}


@pytest.mark.slow
def test_the_api_server_source_sends_watched_changes_and_drops_what_a_relist_skips(tmp_path: Path):
    from knative_emulator.faults import Faults
    from knative_emulator.sources import ApiServerSource

    kube = KubeStub(history=10)
    ingress = Subscriber([202])
    kube.apply(_study("before"))
    manifest = next(d for d in manifests("ApiServerSource") if d["spec"]["resources"][0]["kind"] == "Study")
    source = ApiServerSource(manifest, kube.url, ingress.url + "/", Faults())
    try:
        eventually(lambda: source.watching == len(manifest["spec"]["resources"]),
                   "the source watches each resource", timeout=30)
        kube.apply(_study("seen"))
        headers = ingress.wait(1)[0][2]
        assert (headers["ce-type"], headers["ce-kind"], headers["ce-apiversion"], headers["ce-name"],
                headers["ce-namespace"], headers["ce-subject"]) == (
            "dev.knative.apiserver.resource.add", "Study", "katuna.dev/v1", "seen", "katuna",
            "/apis/katuna.dev/v1/namespaces/katuna/studies/seen")
        source.pause()
        eventually(lambda: source.watching == 0, "the source stops watching", timeout=30)
        for number in range(12):
            kube.apply(_study(f"gap-{number}"))
        kube.delete("Study", "katuna", "seen")
        source.resume()
        eventually(lambda: source.relists >= 1 and source.watching == len(manifest["spec"]["resources"]),
                   "the source lists again and watches from that list", timeout=30)
        kube.apply(_study("after"))
        ingress.wait(2)
        time.sleep(0.5)
        sent = [(r[2]["ce-type"].rsplit(".", 1)[1], r[2]["ce-name"]) for r in ingress.received]
        assert sent == [("add", "seen"), ("add", "after")], "nothing from before the start or from the gap"
    finally:
        source.close()
        ingress.close()
        kube.close()


@pytest.mark.slow
def test_the_api_server_source_watches_again_after_a_watch_is_cut_mid_chunk():
    """A watch the API server (or a proxy on the way) cuts in the middle of a chunk is a broken
    watch, which client-go's reflector meets by watching again: the source's thread goes on, where
    http.client's ``IncompleteRead`` (no ``OSError``) ended it with a traceback."""
    from knative_emulator.faults import Faults
    from knative_emulator.sources import ApiServerSource

    watches: list[str] = []

    class CutWatches(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            if "watch=true" not in self.path:
                body = json.dumps({"kind": "StudyList", "metadata": {"resourceVersion": "7"}, "items": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            watches.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"100\r\n" + b'{"type": "BOOKMARK"')
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args) -> None:
            return

    died: list[BaseException] = []
    hooked, threading.excepthook = threading.excepthook, lambda failure: died.append(failure.exc_value)
    api = StandInServer(("127.0.0.1", 0), CutWatches)
    threading.Thread(target=api.serve_forever, args=(0.05,), daemon=True).start()
    manifest = next(d for d in manifests("ApiServerSource") if d["spec"]["resources"][0]["kind"] == "Study")
    source = ApiServerSource(manifest, f"http://127.0.0.1:{api.server_address[1]}", "http://127.0.0.1:9/", Faults())
    try:
        eventually(lambda: len(watches) >= 3 * len(manifest["spec"]["resources"]), "the source to watch again after "
                   "each cut watch", timeout=30)
    finally:
        source.close()
        api.shutdown()
        api.server_close()
        threading.excepthook = hooked
    assert died == [], "no thread of the source died"


FAST_RETRIES = 0.005
"""The Triggers' back-offs in end-to-end tests: their 8.5 minutes of retries in 2.6 s."""


@pytest.mark.slow
def test_a_study_runs_to_completion_through_the_broker(tmp_path: Path):
    kube = KubeStub()
    cluster = KnativeCluster(tmp_path, kube.url, ping_interval=0.5, time_scale=FAST_RETRIES)
    try:
        definition = study_definition(name="through-knative", maxTrials=4, parallelism=2)
        definition["trialTemplate"]["image"] = "python:3.12"
        status, body = cluster.api("POST", "/studies", definition)
        assert status == 201, body
        study = cluster.wait_for("through-knative", timeout=90)
        assert (study["status"], study["counts"]["complete"]) == ("completed", 4)
        assert sorted(n for n in kube.created if n.startswith("through-knative-")) == [
            f"through-knative-{n}" for n in range(4)]
        assert cluster.broker.received["dev.katuna.trial.finished"] >= 4
        assert cluster.broker.replies > 0, "functions answered with replies that re-entered the broker"
        assert not cluster.broker.unreadable, "every answer was empty or one CloudEvent, as the broker filter requires"
        assert not cluster.broker.dead_letters, [attributes_of(e) for e in cluster.broker.dead_letters]
        transport = cluster.revision.transport
        assert transport.reuses > 0 and not transport.unsolicited, "queue-proxy's connections kept alive, and sound"
    finally:
        cluster.close()
        kube.close()


def _letters(cluster: KnativeCluster) -> list[tuple[str, str | None]]:
    return [(attributes_of(e)["type"], attributes_of(e).get("knativeerrorcode")) for e in cluster.broker.dead_letters]


def _start(cluster: KnativeCluster, name: str, **fields: object) -> None:
    """Submit a two-trial study of one trial at a time, with ``fields`` set on it."""
    definition = study_definition(name=name, maxTrials=2, parallelism=1)
    definition["trialTemplate"]["image"] = "python:3.12"
    definition.update(fields)
    status, body = cluster.api("POST", "/studies", definition)
    assert status == 201, body


def _gke_cluster(tmp_path: Path, create_seconds: float, **options: float) -> tuple[GkeStub, KubeStub, KnativeCluster]:
    """katuna behind the broker with GKE node pools whose creates take ``create_seconds``."""
    gke = GkeStub({"CREATE_NODE_POOL": create_seconds, "DELETE_NODE_POOL": 0.5, "UPDATE_CLUSTER": 0.5}, speed=1.0)
    gke.add_cluster("proj-7", "europe-west4", "tuning")
    kube = KubeStub(pools=gke_pools(gke), resize=gke_resize(gke), boot_seconds=0.2)
    cluster = KnativeCluster(tmp_path, kube.url, **options, KATUNA_GKE_PROJECT="proj-7",
                             KATUNA_GKE_LOCATION="europe-west4", KATUNA_GKE_CLUSTER="tuning",
                             KATUNA_GKE_ENDPOINT=gke.url, KATUNA_K8S_DEFAULT_RESOURCES="cpu=100m")
    return gke, kube, cluster


@pytest.mark.slow
def test_a_pool_create_busy_for_longer_than_the_retries_leaves_the_study_to_the_tick(tmp_path: Path):
    """GKE refuses a second pool create while the first runs (katuna: 503) for longer than the
    Triggers retry; the dead letter fails nothing, and the tick creates the pool once GKE is free."""
    gke, kube, cluster = _gke_cluster(tmp_path, 5.0, ping_interval=1.0, time_scale=FAST_RETRIES)
    try:
        for name in ("pool-a", "pool-b"):
            _start(cluster, name, nodePool={"provider": "gke"})
        studies = [cluster.wait_for(name, timeout=90) for name in ("pool-a", "pool-b")]
        assert [(s["status"], s["counts"]["complete"]) for s in studies] == [("completed", 2)] * 2, studies
        assert ("dev.katuna.study.created", "503") in _letters(cluster), "a delivery was given up while GKE was busy"
        assert len(gke.calls("POST", "/nodePools")) >= 3, "the second create was refused, then made by the tick"
        assert not cluster.broker.unreadable
    finally:
        cluster.close()
        kube.close()
        gke.close()


@pytest.mark.slow
def test_a_start_whose_deliveries_outlast_a_request_is_answered_at_once_and_delivered_whole(tmp_path: Path):
    """The broker answers a post once every delivery it started has ended. With GKE busy for 4 s,
    the study's pool create is retried nine times over 5 s (the Triggers' retries at a fiftieth
    of their back-off), a chain of deliveries no request should wait for: POST /studies still
    answers 201 at once (its event waits in the queue and is posted in the background), no
    delivery is cut short by a sender hanging up, and the pool is made within the retries."""
    gke, kube, cluster = _gke_cluster(tmp_path, 1.0, ping_interval=60.0, time_scale=0.02)
    try:
        gke.update_master(4, busy="master")
        _start(cluster, "slow-start", nodePool={"provider": "gke"})
        study = cluster.wait_for("slow-start", timeout=120)
        assert (study["status"], study["counts"]["complete"]) == ("completed", 2), study
        assert len(gke.calls("POST", "/nodePools")) >= 3, "the create was refused while GKE was busy, then made"
        assert cluster.broker.cancelled == 0, "no sender hung up on the deliveries its post started"
        assert not _letters(cluster), "the pool was made within the Triggers' retries"
    finally:
        cluster.close()
        kube.close()
        gke.close()


@pytest.mark.slow
def test_a_dead_letter_of_a_permanent_refusal_fails_its_study_with_the_reason(tmp_path: Path):
    """Trials in a namespace katuna may not create Jobs in (the service's own, where its Role was
    never bound, so no study names it and none is refused when submitted): the API's 403 is
    permanent (katuna answers 422), Knative does not retry it, and its dead letter fails the
    study: a broker without OIDC vouches for nothing, so katuna handles the event once more
    and fails the study with its own refusal, met again."""
    kube = KubeStub()
    cluster = KnativeCluster(tmp_path, kube.url, ping_interval=0.5, time_scale=FAST_RETRIES, namespace="elsewhere")
    try:
        _start(cluster, "forbidden")
        study = cluster.wait_for("forbidden", timeout=60)
        assert study["status"] == "failed"
        assert study["reason"].startswith("an event could not be delivered (dev.katuna.trial.suggested): "), study
        assert "refused for good, and again when katuna handled it once more: " in study["reason"], study["reason"]
        assert "403" in study["reason"] and "/functions/spawn" not in study["reason"], "katuna's own words"
        eventually(lambda: ("dev.katuna.trial.suggested", "422") in _letters(cluster),
                   "the broker to record the dead letter, once its sink has answered", timeout=30)
    finally:
        cluster.close()
        kube.close()


@pytest.mark.slow
def test_a_pytorchjob_trials_end_is_taken_from_its_event_with_no_tick(tmp_path: Path):
    """With the training-operator component, the source's PyTorchJob updates reach jobwatch,
    which reads each trial's end from them: the study completes though the PingSource never
    ticks (without them, only the tick's reconcile would notice an end)."""
    import sys

    from conftest import TRIAL

    kube = KubeStub()
    kube.install_operator("training-operator")
    cluster = KnativeCluster(tmp_path, kube.url, ping_interval=3600, components=("trial-kinds/training-operator",))
    try:
        definition = study_definition(name="torch-events", maxTrials=2, parallelism=2)
        master = {"replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [{
            "name": "pytorch", "image": "python:3.12",
            "command": [sys.executable, str(TRIAL), "--x", "${trialParameters.x}"]}]}}}
        definition["trialTemplate"] = {"primaryContainerName": "pytorch", "trialSpec": {
            "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {"Master": master}}}}
        status, body = cluster.api("POST", "/studies", definition)
        assert status == 201, body
        study = cluster.wait_for("torch-events", timeout=60)
        assert (study["status"], study["counts"]["complete"]) == ("completed", 2)
        assert cluster.ping.ticks == 0
        jobwatch = {a.event_id for a in cluster.broker.attempts
                    if a.url.endswith("/functions/jobwatch") and a.trigger == "katuna-jobwatch-update-pytorchjob"}
        assert jobwatch, "the ends came from the PyTorchJobs' updates"
        assert not cluster.broker.dead_letters, [attributes_of(e) for e in cluster.broker.dead_letters]
    finally:
        cluster.close()
        kube.close()
