"""A Knative Broker on loopback: an HTTP ingress, the Triggers of ``knative/``, and their delivery.

The ingress takes CloudEvents in binary or structured mode (through the CloudEvents SDK),
answers 202, and stamps ``knativearrivaltime`` as the real ingress does. Each Trigger whose
filter passes gets its own copy, sent in binary mode to its subscriber with the Trigger's
``delivery`` (the Broker's where the Trigger has none): retries with back-off, then the
dead-letter sink. A subscriber's answer goes through the broker filter's rule
(:mod:`.answers`): a CloudEvent in a 2xx answer is a reply that re-enters the broker through
the ingress; an empty 2xx answer is a success; any other 2xx body is a failed delivery (502),
retried like any other.

The ingress bounds a chain of replies with the ``knativebrokerttl`` extension, as Knative's
multi-tenant broker does: an event that comes without one gets :data:`MAX_TTL`, one that
comes with one gets one less, and one left at 0 is refused (400). The filter takes the TTL off
the copy it delivers and puts the answered event's on the reply, so each reply costs one: the
255th reply in a row is refused, and the event it answered is dead-lettered (the dead letter
carrying the TTL, as the channel's copy does). An event posted afresh (a source's, one to
``K_SINK``) starts a new chain. ``time_scale`` shrinks every back-off (a test's minutes in seconds),
the number of retries staying the manifests'.

The ingress answers as the default broker does, on an InMemoryChannel: only once every
delivery the event started has ended (delivered, or dead-lettered, its retries and its
replies' own deliveries included), ``202`` when each did and ``500`` when one was given up on
with no dead-letter sink taking it, or after the channel's 15-minute fan-out limit. A sender
that hangs up before then cancels the deliveries still to be attempted, as the request's
context does in Knative (``cancelled`` counts them). ``answer_at_once`` answers ``202`` on
arrival instead, as a broker on a durable channel (Kafka) does.
"""

from __future__ import annotations

import heapq
import itertools
import select
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent

from .answers import FilterAnswer, filtered, ingress_event
from .delivery import Delivery, DispatcherCrash, error_data, retried
from .filters import Filter, delivered, trigger_filter

REQUEST_TIMEOUT = 60.0

TTL = "knativebrokerttl"
MAX_TTL = 255
"""The ingress's TTL for an event that has none (``MAX_TTL`` of eventing's cmd/broker/ingress/main.go):
the replies one event may start in a row (pkg/broker/ttl.go ``TTLDefaulter``)."""

FANOUT_TIMEOUT = 900.0
"""Seconds an InMemoryChannel waits for one event's deliveries before it answers ``500``."""


def attributes_of(event: BaseCloudEvent) -> dict[str, str]:
    """Context attributes and extensions as the strings filters compare."""
    return {name: value.isoformat() if isinstance(value, datetime) else str(value)
            for name, value in event.get_attributes().items() if value is not None}


def with_extensions(event: BaseCloudEvent, **extensions: Any) -> CloudEvent:
    return CloudEvent(attributes={**event.get_attributes(), **extensions}, data=event.get_data())


def ttl_of(event: BaseCloudEvent) -> int | None:
    """The event's ``knativebrokerttl``, as the SDK's ``ToInteger`` reads it (None: none readable)."""
    value = event.get_attributes().get(TTL)
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except ValueError:
        return None


def admitted(event: BaseCloudEvent) -> CloudEvent:
    """The event as the ingress takes it in (eventing pkg/broker/ingress/ingress_handler.go
    ``receive``): stamped with ``knativearrivaltime``, its TTL given (:data:`MAX_TTL`) or one
    less (never below 0); ``ValueError`` (the ingress's 400) where that leaves it at 0."""
    given = ttl_of(event)
    ttl = MAX_TTL if given is None else max(given - 1, 0)
    if ttl <= 0:
        raise ValueError(f"the event's {TTL} is spent: it was replied {MAX_TTL} times in a row")
    return with_extensions(event, knativearrivaltime=datetime.now(UTC).isoformat(), **{TTL: ttl})


def delivered_copy(event: BaseCloudEvent) -> CloudEvent:
    """The copy the filter posts to a subscriber: without the TTL (filter_handler.go ``DeleteTTL``)."""
    attributes = {name: value for name, value in event.get_attributes().items() if name != TTL}
    return CloudEvent(attributes=attributes, data=event.get_data())


def parse(headers: Mapping[str, str], body: bytes) -> BaseCloudEvent:
    """The CloudEvent of an HTTP message (binary or structured mode)."""
    return ce_http.from_http_event(ce_http.HTTPMessage(headers={k.lower(): v for k, v in headers.items()}, body=body))


def post(url: str, event: BaseCloudEvent, token: str | None) -> tuple[int | None, Mapping[str, str], bytes]:
    """POST an event in binary mode: the answer's status, headers and body; where there was no
    answer, None and the error as Knative's dispatcher words it."""
    message = ce_http.to_binary_event(event)
    headers = dict(message.headers)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=message.body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
    except OSError as error:
        return None, {}, f"dispatch error: {error}".encode()


@dataclass(frozen=True)
class Trigger:
    name: str
    check: Filter
    subscriber: str
    delivery: Delivery
    dead_letter: str | None


@dataclass
class Attempt:
    """One POST to a subscriber or a dead-letter sink, as the emulator records it."""

    trigger: str
    event_type: str
    event_id: str
    url: str
    status: int | None
    at: float = field(default_factory=time.monotonic)


class Addresses:
    """Where a ``ref`` (plus relative ``uri``) points: refs are looked up by ``apiVersion/kind/name``."""

    def __init__(self, refs: Mapping[str, str]) -> None:
        self.refs = dict(refs)

    def resolve(self, destination: Mapping[str, Any], where: str) -> str:
        ref, uri = destination.get("ref"), destination.get("uri", "")
        if ref is None:
            if not uri.startswith("http"):
                raise ValueError(f"{where}: a destination without ref needs an absolute uri")
            return uri
        key = f"{ref['apiVersion']}/{ref['kind']}/{ref['name']}"
        if key not in self.refs:
            raise ValueError(f"{where}: no address for {key} (known: {sorted(self.refs)})")
        return self.refs[key].rstrip("/") + uri


def load_triggers(manifests: Path | Sequence[Mapping[str, Any]], broker_name: str,
                  addresses: Addresses) -> list[Trigger]:
    """The Triggers of ``broker_name`` in ``manifests`` (a folder of manifests, or the objects a
    kustomization renders); the Broker's delivery is their default."""
    docs = manifests if not isinstance(manifests, Path) else [
        doc for path in sorted(manifests.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]
    brokers = [d for d in docs if d.get("kind") == "Broker" and d["metadata"]["name"] == broker_name]
    if len(brokers) != 1:
        raise ValueError(f"expected one Broker named {broker_name!r} in the manifests")
    default = brokers[0].get("spec", {}).get("delivery")
    triggers = []
    for doc in (d for d in docs if d.get("kind") == "Trigger" and d["spec"]["broker"] == broker_name):
        name, spec = doc["metadata"]["name"], doc["spec"]
        delivery = Delivery.from_spec(spec.get("delivery") or default)
        sink = delivery.dead_letter
        triggers.append(Trigger(name, trigger_filter(spec), addresses.resolve(spec["subscriber"], name), delivery,
                                None if sink is None else addresses.resolve(sink, f"{name} deadLetterSink")))
    return triggers


def _error_extensions(trigger: Trigger, answer: FilterAnswer) -> dict[str, Any]:
    """The ``knativeerror*`` extensions of a dead letter after ``answer``: none where the
    filter's answer carried no error information (its own 502)."""
    if answer.error_body is None:
        return {}
    return {"knativeerrordest": trigger.subscriber, "knativeerrorcode": answer.status,
            "knativeerrordata": error_data(answer.error_body)}


class _Schedule:
    """Tasks due at a monotonic time, run by a few worker threads."""

    def __init__(self, workers: int) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._closed = False
        self.busy = 0
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        for thread in self._threads:
            thread.start()

    def at(self, delay: float, task: Callable[[], None]) -> None:
        with self._ready:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._order), task))
            self._ready.notify()

    def idle(self) -> bool:
        with self._ready:
            return not self._heap and self.busy == 0

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._ready.wait(None if not self._heap else self._heap[0][0] - time.monotonic())
                if self._closed:
                    return
                _, _, task = heapq.heappop(self._heap)
                self.busy += 1
            try:
                task()
            finally:
                with self._ready:
                    self.busy -= 1

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()


class _Fanout:
    """The deliveries one post to the ingress started, its replies' included: what an
    InMemoryChannel waits for before it answers the post."""

    def __init__(self) -> None:
        self._pending = 0
        self._ended = threading.Condition()
        self.failed = False
        self.cancelled = False

    def add(self) -> None:
        with self._ended:
            self._pending += 1

    def finish(self, delivered: bool) -> None:
        with self._ended:
            self._pending -= 1
            self.failed = self.failed or not delivered
            self._ended.notify_all()

    def wait(self, timeout: float) -> bool:
        """Whether every delivery has ended, waiting up to ``timeout`` seconds."""
        with self._ended:
            return self._ended.wait_for(lambda: self._pending == 0, timeout)


def _hung_up(connection: socket.socket) -> bool:
    """Whether the sender closed its end of ``connection`` (it gave up waiting for the answer)."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class _QuietServer(ThreadingHTTPServer):
    """An HTTP server that takes a sender dying mid-request (a killed service) in its stride."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


class Broker:
    """The broker ``name`` of ``manifests`` (a folder, or rendered objects), delivering to the
    addresses given for its refs.

    ``token`` goes with every delivery as a bearer token; every back-off is ``time_scale`` times
    the manifests'. ``received`` counts the events the ingress took by type; ``attempts`` records
    every delivery attempt; ``unreadable`` the subscribers' 2xx answers the filter failed (502),
    by Trigger and event type; ``dead_letters`` the events given up on (with their
    ``knativeerror*`` extensions, where the filter's answer carried them); ``crashes`` the
    dispatcher's panics on an error answer too long to dead-letter (the event is lost).
    A dead-letter sink's answer goes through the filter's rule too, as it does where Eventing
    runs with OIDC (the sink reached through broker-filter's ``/dls``): a 2xx body that is no
    CloudEvent fails the delivery (502), retried as any other.
    """

    def __init__(self, manifests: Path | Sequence[Mapping[str, Any]], refs: Mapping[str, str], name: str = "katuna",
                 token: str | None = None, workers: int = 16, time_scale: float = 1.0,
                 answer_at_once: bool = False) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale: expected a positive number, got {time_scale}")
        self.triggers = load_triggers(manifests, name, Addresses(refs))
        self.token = token
        self.time_scale = time_scale
        self.received: Counter[str] = Counter()
        self.attempts: list[Attempt] = []
        self.unreadable: list[tuple[str, str]] = []
        self.dead_letters: list[BaseCloudEvent] = []
        self.crashes: list[str] = []
        self.replies = 0
        self.cancelled = 0
        self.answer_at_once = answer_at_once
        self._lock = threading.Lock()
        self._schedule = _Schedule(workers)
        broker = self

        class Ingress(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    event = admitted(ingress_event(dict(self.headers), body, parse))
                except ValueError as exc:
                    self._answer(400, str(exc).encode())
                    return
                fanout = broker.publish(event)
                if broker.answer_at_once:
                    self._answer(202, b"")
                    return
                deadline = time.monotonic() + FANOUT_TIMEOUT
                while not fanout.wait(0.05):
                    if _hung_up(self.connection):
                        fanout.cancelled = True
                        return
                    if time.monotonic() > deadline:
                        self._answer(500, b"fanout timed out")
                        return
                self._answer(500 if fanout.failed else 202, b"")

            def _answer(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                return

        self._server = _QuietServer(("127.0.0.1", 0), Ingress)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def publish(self, event: CloudEvent, fanout: _Fanout | None = None) -> _Fanout:
        """Start the deliveries of an event the ingress took in (:func:`admitted`), counted in
        ``fanout`` (a new one for a post; the answered event's for a reply)."""
        fanout = fanout or _Fanout()
        attributes = attributes_of(event)
        with self._lock:
            self.received[event.get_type()] += 1
        for trigger in self.triggers:
            if delivered(trigger.check, attributes):
                fanout.add()
                self._schedule.at(0, lambda t=trigger: self._deliver(t, event, 0, fanout))
        return fanout

    def _go_on(self, fanout: _Fanout) -> bool:
        """Whether a delivery may be attempted: not once its sender hung up."""
        if fanout.cancelled:
            with self._lock:
                self.cancelled += 1
            fanout.finish(False)
        return not fanout.cancelled

    def _deliver(self, trigger: Trigger, event: BaseCloudEvent, retry_number: int, fanout: _Fanout) -> None:
        if not self._go_on(fanout):
            return
        status, headers, body = self._attempt(trigger.name, trigger.subscriber, delivered_copy(event))
        answer = filtered(status, headers, body)
        if status is not None and 200 <= status < 300 and not answer.delivered:
            with self._lock:
                self.unreadable.append((trigger.name, event.get_type()))
        if answer.delivered:
            if answer.reply is not None:
                self._take_reply(trigger, event, answer.reply, fanout)
            fanout.finish(True)
        elif retried(answer.status) and retry_number < trigger.delivery.retry:
            self._schedule.at(self._backoff(trigger, retry_number),
                              lambda: self._deliver(trigger, event, retry_number + 1, fanout))
        elif trigger.dead_letter is not None:
            try:
                extensions = _error_extensions(trigger, answer)
            except DispatcherCrash as crash:
                with self._lock:
                    self.crashes.append(str(crash))
                fanout.finish(False)
                return
            self._dead_letter(trigger, with_extensions(event, **extensions), 0, fanout)
        else:
            fanout.finish(False)

    def _backoff(self, trigger: Trigger, retry_number: int) -> float:
        return trigger.delivery.backoff(retry_number) * self.time_scale

    def _dead_letter(self, trigger: Trigger, letter: CloudEvent, retry_number: int, fanout: _Fanout) -> None:
        assert trigger.dead_letter is not None
        if not self._go_on(fanout):
            return
        status, headers, body = self._attempt(trigger.name, trigger.dead_letter, letter)
        status = filtered(status, headers, body).status
        if status is not None and 200 <= status < 300:
            with self._lock:
                self.dead_letters.append(letter)
            fanout.finish(True)
        elif retried(status) and retry_number < trigger.delivery.retry:
            self._schedule.at(self._backoff(trigger, retry_number),
                              lambda: self._dead_letter(trigger, letter, retry_number + 1, fanout))
        else:
            fanout.finish(False)

    def _attempt(self, trigger: str, url: str, event: BaseCloudEvent) -> tuple[int | None, Mapping[str, str], bytes]:
        status, headers, body = post(url, event, self.token)
        with self._lock:
            self.attempts.append(Attempt(trigger, event.get_type(), event.get_id(), url, status))
        return status, headers, body

    def _take_reply(self, trigger: Trigger, event: BaseCloudEvent, reply: tuple[Mapping[str, str], bytes],
                    fanout: _Fanout) -> None:
        """Forward a reply, with the answered event's TTL, to the ingress, its deliveries counted
        with the answered event's; one the ingress refuses (400, not retried: an invalid event,
        or a TTL spent) dead-letters the event that was answered, naming the ingress."""
        try:
            read = ingress_event(*reply, parse)
            taken = admitted(with_extensions(read, **{TTL: ttl_of(event) or 0}))
        except ValueError:
            if trigger.dead_letter is not None:
                refused = {"knativeerrordest": self.url, "knativeerrorcode": 400, "knativeerrordata": ""}
                fanout.add()
                self._dead_letter(trigger, with_extensions(event, **refused), 0, fanout)
            return
        with self._lock:
            self.replies += 1
        self.publish(taken, fanout)

    def idle(self) -> bool:
        """Whether no delivery is running or waiting for its retry."""
        return self._schedule.idle()

    def close(self) -> None:
        self._schedule.close()
        self._server.shutdown()
        self._server.server_close()
