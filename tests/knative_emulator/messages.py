"""CloudEvents as the broker's parts pass them on: the ingress's TTL and arrival time, the
filter's copy for a subscriber, and a POST in binary mode.

A POST waits for its answer however long it takes, as Knative's senders do: the channel
dispatcher's client has no timeout where a Trigger's ``delivery`` sets none, nor has a source's
(``K_SINK_TIMEOUT`` unset). What bounds a delivery to the katuna Service is Serving's revision
timeout, whose ``504`` the Service's address answers (:mod:`.serving`); what bounds a post to
the ingress is the channel's fan-out limit (:mod:`.fanout`).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent

from .tls import trusting

TTL = "knativebrokerttl"
MAX_TTL = 255
"""The ingress's TTL for an event that has none (``MAX_TTL`` of eventing's cmd/broker/ingress/main.go):
the replies one event may start in a row (pkg/broker/ttl.go ``TTLDefaulter``)."""


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
    """POST an event in binary mode and wait for the answer: its status, headers and body; where
    there was no answer, None and the error as Knative's dispatcher words it. An https address
    is trusted with the cluster's CA (:func:`.tls.trusting`)."""
    message = ce_http.to_binary_event(event)
    headers = dict(message.headers)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=message.body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, context=trusting() if url.startswith("https:") else None) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
    except OSError as error:
        return None, {}, f"dispatch error: {error}".encode()
