"""A Knative Broker on loopback: an HTTP ingress at its address (:mod:`.ingress`), the Triggers of
``knative/``, and their delivery, as the multi-tenant channel-based broker on an InMemoryChannel
does it.

The ingress takes CloudEvents in binary or structured mode (through the CloudEvents SDK),
and stamps ``knativearrivaltime`` as the real ingress does. Each Trigger whose filter passes
gets its own copy, sent in binary mode to its subscriber with the Trigger's ``delivery`` (the
Broker's where the Trigger has none): retries with back-off, then the dead-letter sink. A
subscriber's answer goes through the broker filter's rule (:mod:`.answers`): an empty 2xx
answer is a success; any other 2xx body that is no CloudEvent is a failed delivery (502),
retried like any other; a CloudEvent is a reply.

A reply is the Trigger's Subscription's ``reply``: the channel's dispatcher posts it to the
ingress (event_dispatcher.go ``send``) with the Trigger's delivery, retries and back-off
included, and the ingress answers that post as it answers any (below). A post that fails
(the ingress's ``400`` for an invalid reply or a spent TTL, not retried; its ``500`` when the
reply's own deliveries failed, retried, the reply going again to every Trigger it matches) ends,
once the retries are spent, in the dead-letter sink with the event that was answered, carrying
the ingress as ``knativeerrordest``, its status and its body (none). The broker filter's own
part is none without OIDC: the reply goes to the ingress from the channel directly (the
Trigger reconciler makes the Broker the Subscription's reply); with OIDC (``oidc``) the channel
posts it to the filter's ``/reply`` path, which passes it on once to the Broker's
``status.address`` and hands the ingress's answer back, so the channel's retries are the same
(filter_handler.go ``handleDispatchToReplyRequest``). The dead letter of a reply refused names
where the reply went: without OIDC the Subscription's reply, the Broker's address as a
reference resolves it (:attr:`Broker.url`); with OIDC the filter's ``status.address``
(:attr:`Broker.address`; the channel's dispatcher takes the filter's ``errdestination`` as
``knativeerrordest``, event_dispatcher.go ``dispatchExecutionInfoTransformers``). The two are
one address but under permissive ``transport_encryption`` (:mod:`.tls`), where the first is
https and the second http.

The ingress bounds a chain of replies with the ``knativebrokerttl`` extension, as Knative's
multi-tenant broker does: an event that comes without one gets :data:`MAX_TTL`, one that
comes with one gets one less, and one left at 0 is refused (400). The filter takes the TTL off
the copy it delivers and puts the answered event's on the reply, so each reply costs one: the
255th reply in a row is refused, and the event it answered is dead-lettered (the dead letter
carrying the TTL, as the channel's copy does). An event posted afresh (a source's, one to
``K_SINK``) starts a new chain. ``time_scale`` shrinks every back-off (a test's minutes in seconds),
the number of retries staying the manifests'.

The ingress answers as the default broker does, on an InMemoryChannel: only once every
delivery the event started has ended (delivered, or dead-lettered, its retries and its reply's
post included), ``202`` when each did and ``500`` when one was given up on with no dead-letter
sink taking it, or after the channel's fan-out limit (:mod:`.fanout`). A sender that hangs up
before then cancels the deliveries still to be attempted, as the request's context does in
Knative (``cancelled`` counts them). ``answer_at_once`` answers ``202`` on arrival instead, as a
broker on a durable channel (Kafka) does.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.v1.event import CloudEvent

from .answers import FilterAnswer, filtered, ingress_event
from .delivery import DispatcherCrash, error_data, retried
from .fanout import FANOUT_TIMEOUT, Fanout, Schedule
from .filters import delivered
from .ingress import RefusingMethods, answer, broker_path, hung_up, named_broker, refusal
from .messages import MAX_TTL, TTL, admitted, attributes_of, delivered_copy, parse, post, ttl_of, with_extensions
from .tls import Listeners
from .triggers import Addresses, Attempt, Trigger, load_triggers

__all__ = ["MAX_TTL", "Broker", "attributes_of", "post"]

Message = tuple[Mapping[str, str], bytes]


def _error_extensions(trigger: Trigger, answer: FilterAnswer) -> dict[str, Any]:
    """The ``knativeerror*`` extensions of a dead letter after ``answer``: none where the
    filter's answer carried no error information (its own 502)."""
    if answer.error_body is None:
        return {}
    return {"knativeerrordest": trigger.subscriber, "knativeerrorcode": answer.status,
            "knativeerrordata": error_data(answer.error_body)}


class _QuietServer(ThreadingHTTPServer):
    """An HTTP server that takes a sender dying mid-request (a killed service) in its stride."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


class Broker:
    """The broker ``name`` of ``manifests`` (a folder, or rendered objects) in ``namespace``,
    delivering to the addresses given for its refs; ``url`` is its address, the ingress's with
    ``/<namespace>/<name>`` (:mod:`.ingress`), where it takes events (and nowhere else).

    ``address`` is its ``status.address.url``, which differs from ``url`` only under
    ``transport_encryption`` ``permissive`` (:mod:`.tls`; ``ca_pem`` is the CA of its https
    address); ``oidc`` routes replies as Eventing's ``authentication-oidc`` does (above).
    ``token`` goes with every delivery as a bearer token; every back-off is ``time_scale`` times
    the manifests'; ``fanout_timeout`` is the channel's limit (:data:`FANOUT_TIMEOUT`).
    ``received`` counts the events the ingress took by type (a reply posted again, again);
    ``attempts`` records every delivery attempt; ``unreadable`` the subscribers' 2xx answers the
    filter failed (502), by Trigger and event type; ``dead_letters`` the events given up on (with
    their ``knativeerror*`` extensions, where the filter's answer carried them); ``crashes`` the
    dispatcher's panics on an error answer too long to dead-letter (the event is lost);
    ``timeouts`` the fanouts the channel's limit ended. A dead-letter sink's answer goes through
    the filter's rule too, as it does where Eventing runs with OIDC (the sink reached through
    broker-filter's ``/dls``): a 2xx body that is no CloudEvent fails the delivery (502),
    retried as any other.
    """

    def __init__(self, manifests: Path | Sequence[Mapping[str, Any]], refs: Mapping[str, str], name: str = "katuna",
                 namespace: str = "katuna", token: str | None = None, time_scale: float = 1.0, answer_at_once: bool = False,
                 fanout_timeout: float = FANOUT_TIMEOUT, oidc: bool = False, transport_encryption: str = "disabled") -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale: expected a positive number, got {time_scale}")
        self.triggers = load_triggers(manifests, name, Addresses(refs))
        self.name = (namespace, name)
        self.token = token
        self.time_scale = time_scale
        self.fanout_timeout = fanout_timeout
        self.received: Counter[str] = Counter()
        self.attempts: list[Attempt] = []
        self.unreadable: list[tuple[str, str]] = []
        self.dead_letters: list[BaseCloudEvent] = []
        self.crashes: list[str] = []
        self.replies = 0
        self.cancelled = 0
        self.timeouts = 0
        self.answer_at_once = answer_at_once
        self.oidc = oidc
        self._lock = threading.Lock()
        self._schedule = Schedule()
        self._listeners = Listeners(transport_encryption, lambda: _QuietServer(("127.0.0.1", 0), self._ingress()))
        self.url = self._listeners.resolved + broker_path(namespace, name)
        self.address = self._listeners.address + broker_path(namespace, name)
        self.ca_pem = self._listeners.ca_pem

    def _ingress(self) -> type[BaseHTTPRequestHandler]:
        broker = self

        class Ingress(RefusingMethods):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                refused = refusal(self.command, self.path)
                if refused is not None:
                    answer(self, refused)
                    return
                try:
                    event = ingress_event(dict(self.headers), body, parse)
                    if named_broker(self.path) != broker.name:
                        answer(self, 404)
                        return
                    event = admitted(event)
                except ValueError:
                    answer(self, 400)
                    return
                fanout = broker.publish(event)
                if broker.answer_at_once:
                    answer(self, 202)
                    return
                while not fanout.ended.wait(0.05):
                    if hung_up(self.connection):
                        fanout.cancel()
                        return
                answer(self, broker.answer(fanout))

            def log_message(self, *args) -> None:
                return

        return Ingress

    def publish(self, event: CloudEvent, parent: Fanout | None = None,
                on_end: Callable[[Fanout], None] | None = None) -> Fanout:
        """Start the deliveries of an event the ingress took in (:func:`admitted`): its fanout,
        cancelled with ``parent``'s (that of the delivery whose reply it is), ``on_end`` run once
        the channel answers. Filters see the event as the filter delivers it, without its TTL
        (filter_handler.go deletes it before filtering)."""
        attributes = attributes_of(delivered_copy(event))
        with self._lock:
            self.received[event.get_type()] += 1
        matched = [trigger for trigger in self.triggers if delivered(trigger.check, attributes)]
        limit = None if self.answer_at_once else self.fanout_timeout
        fanout = Fanout(self._schedule, len(matched), limit, parent, on_end)
        for trigger in matched:
            self._schedule.at(0, lambda t=trigger: self._deliver(t, event, 0, fanout))
        return fanout

    def answer(self, fanout: Fanout) -> int:
        """The ingress's answer once ``fanout`` has ended (a time-out counted)."""
        if fanout.timed_out:
            with self._lock:
                self.timeouts += 1
        return 500 if fanout.failed else 202

    def _go_on(self, fanout: Fanout) -> bool:
        """Whether a delivery may be attempted: not once its request's context is cancelled."""
        if fanout.cancelled:
            with self._lock:
                self.cancelled += 1
            fanout.finish(False)
        return not fanout.cancelled

    def _deliver(self, trigger: Trigger, event: BaseCloudEvent, retry_number: int, fanout: Fanout) -> None:
        if not self._go_on(fanout):
            return
        status, headers, body = self._attempt(trigger.name, trigger.subscriber, delivered_copy(event))
        answer = filtered(status, headers, body)
        if status is not None and 200 <= status < 300 and not answer.delivered:
            with self._lock:
                self.unreadable.append((trigger.name, event.get_type()))
        if answer.delivered:
            if answer.reply is None:
                fanout.finish(True)
            else:
                self._reply(trigger, event, answer.reply, 0, fanout)
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

    def _reply(self, trigger: Trigger, event: BaseCloudEvent, reply: Message, retry_number: int,
               fanout: Fanout) -> None:
        """Post the reply to the ingress, with the answered event's TTL: the ingress answers once
        the reply's own deliveries have ended (at once on a durable channel); one it refuses
        (an invalid event, or a TTL spent) is a 400."""
        if not self._go_on(fanout):
            return
        try:
            taken = admitted(with_extensions(ingress_event(*reply, parse), **{TTL: ttl_of(event) or 0}))
        except ValueError:
            self._replied(trigger, event, reply, retry_number, fanout, 400)
            return
        with self._lock:
            self.replies += 1
        if self.answer_at_once:
            self.publish(taken)
            self._replied(trigger, event, reply, retry_number, fanout, 202)
            return
        self.publish(taken, fanout, lambda child: self._replied(
            trigger, event, reply, retry_number, fanout, self.answer(child)))

    def _replied(self, trigger: Trigger, event: BaseCloudEvent, reply: Message, retry_number: int, fanout: Fanout,
                 status: int) -> None:
        """The ingress's answer to a reply's post: retried as a subscriber's answer is, then the
        event answered is dead-lettered, naming the ingress's address the reply went to."""
        if 200 <= status < 300:
            fanout.finish(True)
        elif retried(status) and retry_number < trigger.delivery.retry:
            self._schedule.at(self._backoff(trigger, retry_number),
                              lambda: self._reply(trigger, event, reply, retry_number + 1, fanout))
        elif trigger.dead_letter is not None:
            refused = {"knativeerrordest": self.address if self.oidc else self.url, "knativeerrorcode": status,
                       "knativeerrordata": ""}
            self._dead_letter(trigger, with_extensions(event, **refused), 0, fanout)
        else:
            fanout.finish(False)

    def _dead_letter(self, trigger: Trigger, letter: CloudEvent, retry_number: int, fanout: Fanout) -> None:
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

    def idle(self) -> bool:
        """Whether no delivery is running or waiting for its retry."""
        return self._schedule.idle()

    def close(self) -> None:
        self._schedule.close()
        self._listeners.close()
