"""katuna events over HTTP as CloudEvents, through the CloudEvents SDK (the only module using it):
read from requests, dead letters included, and written for posts (:mod:`.cloudevents_sink` sends them).

Requests are read in binary or structured mode, as their ``Content-Type`` tells (the HTTP
binding's rule); katuna sends binary mode with JSON data.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.exceptions import BaseCloudEventException, CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from functions.adapters.cloudevents_attributes import binary, structured
from functions.adapters.cloudevents_data import MalformedEvent, check_encodable, decoded_json, json_object, kept
from functions.core import event_signature, trace_context, utf8
from functions.core.content_modes import content_mode
from functions.core.events import ADVISORY, APISERVER_EVENTS, ROUTES, Event
from functions.core.json_keys import DuplicateKey, unique_keys
from functions.core.trace_context import TRACEPARENT, TRACESTATE, TraceContext


def _read(headers: Mapping[str, str], body: bytes, strict_data: bool = True) -> tuple[BaseCloudEvent, str | None]:
    """The CloudEvent of a request, in the content mode its ``Content-Type`` names (structured
    for ``application/cloudevents+json``, else binary: :mod:`functions.core.content_modes`), its
    attributes checked as CloudEvents 1.0 has them (:mod:`.cloudevents_attributes`); with the text
    of binary-mode JSON data giving a key twice where ``strict_data`` is off (a dead letter's)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if content_mode(lowered.get("content-type")) == "structured":
        return _checked(*structured(body, strict_data)), None
    lowered = binary(lowered)
    kept_text = _check_json(lowered, body, strict_data)
    read = body if kept_text is None else b""  # data kept as its text is not read again
    try:
        return ce_http.from_binary(ce_http.HTTPMessage(headers=lowered, body=read), JSONFormat(), _checked), kept_text
    except (BaseCloudEventException, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise MalformedEvent(_refusal(exc)) from exc


def _checked(attributes: dict[str, Any], data: Any) -> BaseCloudEvent:
    """The CloudEvents 1.0 event of ``attributes`` (checked already) and ``data``, whose text is
    text UTF-8 holds: data whose JSON escapes a lone surrogate would fail where it is stored."""
    check_encodable(utf8.unencodable(data, "data"))
    try:
        return CloudEvent(attributes, data)
    except BaseCloudEventException as exc:
        raise MalformedEvent(_refusal(exc)) from exc


def _refusal(exc: Exception) -> str:
    """The SDK's refusal in katuna's words, each attribute named (``attributes.<name>: ...``):
    none comes past the checks before it, but the SDK may check more in a later version."""
    if isinstance(exc, CloudEventValidationError):
        return "; ".join(f"attributes.{name}: {', '.join(map(str, problems))}" for name, problems in exc.errors.items())
    return f"not a CloudEvent: {exc}"


TEMPORARY_CODES = frozenset({404, 408, 409, 429})
"""Answers below 500 that Knative retries, each a condition that passes (a pod not ready yet, a
timeout, a conflict, throttling): a delivery given up after them failed for the time being."""

PERMANENT_SERVER_CODES = frozenset({501, 505})
"""Server errors that say the request itself will never be served (not implemented, HTTP
version not supported)."""


@dataclass(frozen=True)
class DeadLetter:
    """An event a Knative broker gave up delivering, with what its last attempt got.

    ``code`` is ``knativeerrorcode``: the destination's answer (500 where it gave none at all, a
    connection error, with the dispatcher's ``dispatch error: ...`` as its data), or None where
    the broker set no code: the multi-tenant broker sets none when its filter could not read a
    2xx answer (so the function had run)."""

    event: Event
    reason: str
    code: int | None
    authentic: bool = True
    """Whether the event may be believed: where the dead letter came without the API token, only
    an event katuna signed (:mod:`functions.core.event_signature`)."""
    reply_refused: bool = False
    """Whether what refused was the broker (``knativeerrordest`` is its address, ``K_SINK``, in
    either scheme: :func:`_same_broker`): its ingress refused the reply katuna answered the event
    with, not the event, which was handled. Knative dead-letters the event answered when the
    ingress refuses its reply, as it does one that was the 255th in a row (the
    ``knativebrokerttl`` spent)."""

    @property
    def permanent(self) -> bool:
        """Whether the delivery was refused for good: a code below 500 that Knative does not
        retry (katuna answers 400 or 422 for a permanent error), or a 501/505, from the
        function. Anything else (5xx, 404, 408, 409, 429, no code, the broker's refusal of the
        reply) failed for the time being, and what the event (or its reply) would have done is
        redone by the tick."""
        if self.code is None or self.reply_refused:
            return False
        return self.code in PERMANENT_SERVER_CODES or self.code < 500 and self.code not in TEMPORARY_CODES

    @property
    def fails_study(self) -> bool:
        """Whether the event's study fails for it: a delivery refused for good, of an event the
        study cannot do without (not a progress report: :data:`functions.core.events.ADVISORY`),
        that katuna sent."""
        return self.permanent and self.event.type not in ADVISORY and self.authentic


def dead_letter(headers: Mapping[str, str], body: bytes, key: bytes | None = None,
                broker: str | None = None) -> DeadLetter:
    """A dead letter from a Knative broker: the event, and why its delivery failed (from the
    ``knativeerror*`` extension attributes; the answer's body decoded where it is text). With
    ``key`` (it came without the API token), it is believed only if katuna signed its event with it.
    ``broker`` is the broker's address (``K_SINK``), where a refusal of its means the reply was refused.

    Its attributes are read as strictly as an event function reads them (a ``time`` that is no
    timestamp, a structured event's key given twice or JSON that is not UTF-8: refused, named),
    as they say which event it is; its data is kept as sent, never refused: a broker that is
    refused a dead letter drops it, and with it the only record of the failure. Data that is not
    a JSON object katuna reads strictly (JSON with a key given twice, or text) is kept as its
    text, ``{"raw": ...}``, and bytes that are not UTF-8 as ``{"base64": ...}``: never a key
    dropped or a byte replaced."""
    cloud_event, binary_data = _read(headers, body, strict_data=False)
    dest, code, data = (str(cloud_event.get_extension(name) or "") for name in
                        ("knativeerrordest", "knativeerrorcode", "knativeerrordata"))
    reason = " ".join(part for part in (dest, code, _error_text(data)) if part)
    number = int(code) if code.isdigit() and len(code) <= 3 else None
    event = replace(_to_event(cloud_event, strict=False), trace=_trace(headers, cloud_event))
    if binary_data is not None:
        event = replace(event, data={"raw": binary_data})
    authentic = key is None or event_signature.is_katunas(key, event.type, event.data, _signature(cloud_event))
    refused_by_broker = broker is not None and bool(dest) and _same_broker(dest, broker)
    return DeadLetter(event, reason or "no reason given", number, authentic, refused_by_broker)


def _same_broker(dest: str, broker: str) -> bool:
    """Whether ``dest`` is the broker's address ``broker``, by host and path, whatever the scheme
    and port. A reference to the Broker (``K_SINK``, a reply without OIDC) resolves to the first
    of its ``status.addresses``, while with Eventing's OIDC the filter posts a reply to its
    ``status.address`` and the dead letter names that (filter_handler.go
    ``handleDispatchToReplyRequest``): under permissive transport encryption the first is its
    https address, the second its http one."""
    ours, theirs = urllib.parse.urlsplit(broker), urllib.parse.urlsplit(dest)
    return bool(ours.hostname) and (theirs.hostname, theirs.path.rstrip("/")) == (ours.hostname,
                                                                                   ours.path.rstrip("/"))


def _error_text(data: str) -> str:
    """``knativeerrordata`` (an answer's body in base64, cut at 1,024 characters, a multiple of
    4) as one line of text where it is UTF-8, else as given. A character the cut split at the
    end is left out (decoded as not final), so a cut text still reads as text."""
    try:
        body = base64.b64decode(data, validate=True)
        return " ".join(codecs.getincrementaldecoder("utf-8")().decode(body, final=False).split())
    except (binascii.Error, UnicodeDecodeError):
        return data


def from_http(headers: Mapping[str, str], body: bytes, key: bytes | None = None) -> Event:
    """The katuna event in an HTTP request. With ``key`` (it came without the API token), an event of
    a type katuna signs is refused (:class:`~functions.core.errors.ForgedEvent`) unless katuna
    signed it with that key. JSON that is not UTF-8 is refused naming its first undecodable byte
    (:func:`_check_json`)."""
    cloud_event = _read(headers, body)[0]
    event = replace(_to_event(cloud_event), trace=_trace(headers, cloud_event))
    if key is not None:
        event_signature.check(key, event.type, event.data, _signature(cloud_event))
    return event


def _check_json(headers: Mapping[str, str], body: bytes, data: bool = True) -> str | None:
    """Refuse binary-mode data the SDK would take without a word: JSON (a JSON ``Content-Type``,
    or none, which CloudEvents reads as JSON) that is not UTF-8 (as JSON must be, RFC 8259
    section 8.1), or that gives a key twice (which ``study`` was meant?). The SDK would take such
    data as bytes, or as text; a study resource's JSON read with bytes replaced would submit a
    name or command nobody wrote. Without ``data`` (a dead letter's), nothing is refused: the
    text of JSON that gives a key twice, or nests past what Python's reader reads, is returned,
    to be kept as it is."""
    content_type = headers.get("content-type") or JSONFormat.DEFAULT_CONTENT_TYPE
    if not JSONFormat.JSON_CONTENT_TYPE_PATTERN.match(content_type):
        return None
    what = "the event's JSON data"
    try:
        text = utf8.text(body)
    except utf8.NotUtf8 as exc:
        if not data:
            return None
        raise MalformedEvent(f"the body is not UTF-8 text: {exc}; expected {what} in UTF-8") from exc
    try:
        json.loads(text, object_pairs_hook=unique_keys) if text.strip() else None
    except DuplicateKey as exc:
        if not data:
            return text
        raise MalformedEvent(f"duplicate key {exc.key!r}; expected {what} with each key once") from exc
    except RecursionError:
        return None if data else text  # nested past what Python reads: the SDK would fail on it too
    except ValueError:
        return None  # not JSON at all: the SDK takes it as text, refused as no JSON data
    return None


def _trace(headers: Mapping[str, str], cloud_event: BaseCloudEvent) -> TraceContext | None:
    """The trace the event came in: the delivery's (the ``traceparent`` HTTP header Knative's
    broker, Trigger or source traced it under), else the event's own (the distributed-tracing
    extension); either one only where it is valid (:func:`trace_context.read`), never refused."""
    lowered = {name.lower(): value for name, value in headers.items()}
    return trace_context.read(lowered.get(TRACEPARENT), lowered.get(TRACESTATE)) or trace_context.read(
        cloud_event.get_extension(TRACEPARENT), cloud_event.get_extension(TRACESTATE))


def _signature(cloud_event: BaseCloudEvent) -> str | None:
    given = cloud_event.get_extension(event_signature.EXTENSION)
    return given if isinstance(given, str) else None


def _to_event(cloud_event: BaseCloudEvent, strict: bool = True) -> Event:
    """The event, its data checked as far as its type is known here; a katuna event's fields
    (``study`` and the rest) are checked by the dispatcher, after the type and the function, so
    an event of a type or for a function that does not exist is refused as such (``422``)."""
    data = cloud_event.get_data()
    if not strict or cloud_event.get_type() not in ROUTES:
        data = data if isinstance(data, dict) else kept(data)
    else:
        data = json_object(cloud_event.get_type(), _json_data(cloud_event))
    time = cloud_event.get_time() or datetime.now(UTC)
    return Event(type=cloud_event.get_type(), data=data, id=cloud_event.get_id(),
                 source=cloud_event.get_source(), subject=cloud_event.get_subject(), time=time.isoformat())


def _json_data(cloud_event: BaseCloudEvent) -> Any:
    """The data of an event katuna handles, read as the JSON it must be. Bytes of a JSON
    ``datacontenttype``, or of none (which CloudEvents' JSON format reads as JSON), are a
    structured event's ``data_base64``, as the CloudEvents SDKs write data given as bytes: read
    as JSON, as strictly as a body is (UTF-8, each key once). Data of any other type is refused
    naming its type: the refusal of ``curl -d``'s form type said JSON was expected, which is what
    was sent."""
    data, content_type = cloud_event.get_data(), cloud_event.get_datacontenttype()
    if isinstance(data, (str, bytes)) and content_type is not None \
            and not JSONFormat.JSON_CONTENT_TYPE_PATTERN.match(content_type):
        raise MalformedEvent(f"datacontenttype: expected application/json (the Content-Type header in binary "
                             f"mode): katuna reads an event's data as JSON; got {content_type[:100]!r}")
    if not isinstance(data, bytes):
        return data
    return decoded_json(data)


def to_http(event: Event, key: bytes | None = None,
            extensions: tuple[tuple[str, str], ...] = ()) -> tuple[dict[str, str], bytes]:
    """Headers and body of ``event`` in binary mode; signed with ``key``, where given; with the
    ``extensions`` of ``K_CE_OVERRIDES`` (:func:`functions.reporter.parse_overrides`), under katuna's own
    attributes, which no override replaces; with its trace context, where it has one, as the
    distributed-tracing extension (``ce-traceparent``, ``ce-tracestate``)."""
    attributes: dict[str, Any] = dict(extensions)
    attributes.update(type=event.type, source=event.source, id=event.id, time=datetime.fromisoformat(event.time),
                      datacontenttype="application/json")
    if event.subject:
        attributes["subject"] = event.subject
    if key is not None:
        attributes[event_signature.EXTENSION] = event_signature.signature(key, event.type, event.data)
    if event.type in APISERVER_EVENTS:
        attributes.update(_object_attributes(event.data))
    if event.trace is not None:
        attributes.update(event.trace.attributes())
    message = ce_http.to_binary_event(CloudEvent(attributes=attributes, data=dict(event.data)))
    return message.headers, message.body


def _object_attributes(obj: Mapping[str, Any]) -> dict[str, str]:
    """The extension attributes an ApiServerSource sets on an event about ``obj``, which its
    Triggers filter on: ``apiversion``, ``kind``, ``name`` and ``namespace``."""
    metadata = obj.get("metadata") or {}
    found = {"apiversion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": metadata.get("name"),
             "namespace": metadata.get("namespace")}
    return {key: value for key, value in found.items() if isinstance(value, str) and value}
