"""katuna events over HTTP as CloudEvents, through the CloudEvents SDK (the only module using it).

Requests are read in binary or structured mode; katuna sends binary mode with JSON data.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.v1.event import CloudEvent

from functions.core.errors import MalformedRequest, TemporaryError
from functions.core.events import APISERVER_EVENTS, POOL_CHECK, Event

SEND_TIMEOUT_SECONDS = 10


class MalformedEvent(MalformedRequest):
    """The request is not a CloudEvent, or its data is not the JSON object katuna expects."""


def _parse(headers: Mapping[str, str], body: bytes) -> BaseCloudEvent:
    message = ce_http.HTTPMessage(headers={k.lower(): v for k, v in headers.items()}, body=body)
    try:
        return ce_http.from_http_event(message)
    except (BaseCloudEventException, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise MalformedEvent(f"not a CloudEvent: {exc}") from exc


def dead_letter(headers: Mapping[str, str], body: bytes) -> tuple[Event, str]:
    """A dead letter from a Knative broker: the event, and why its delivery failed (from the
    ``knativeerror*`` extension attributes)."""
    cloud_event = _parse(headers, body)
    reason = " ".join(str(cloud_event.get_extension(name) or "") for name in
                      ("knativeerrordest", "knativeerrorcode", "knativeerrordata")).strip()
    return _to_event(cloud_event, strict=False), reason or "no reason given"


def from_http(headers: Mapping[str, str], body: bytes) -> Event:
    """The katuna event in an HTTP request."""
    return _to_event(_parse(headers, body))


def _to_event(cloud_event: BaseCloudEvent, strict: bool = True) -> Event:
    data = cloud_event.get_data()
    if not strict:
        data = data if isinstance(data, dict) else {"raw": data.decode(errors="replace") if isinstance(data, bytes) else data}
    elif cloud_event.get_type() in APISERVER_EVENTS:
        if not isinstance(data, dict):
            raise MalformedEvent("expected the Kubernetes object as JSON data")
    elif cloud_event.get_type() == POOL_CHECK:
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise MalformedEvent("expected a PingSource tick's data as a JSON object, such as {}")
    elif not isinstance(data, dict) or not isinstance(data.get("study"), str):
        raise MalformedEvent("expected JSON data with the study's name in 'study'")
    time = cloud_event.get_time() or datetime.now(UTC)
    return Event(type=cloud_event.get_type(), data=data, id=cloud_event.get_id(),
                 source=cloud_event.get_source(), subject=cloud_event.get_subject(), time=time.isoformat())


def to_http(event: Event) -> tuple[dict[str, str], bytes]:
    """Headers and body of ``event`` in binary mode."""
    attributes = {"type": event.type, "source": event.source, "id": event.id,
                  "time": datetime.fromisoformat(event.time), "datacontenttype": "application/json"}
    if event.subject:
        attributes["subject"] = event.subject
    if event.type in APISERVER_EVENTS:
        attributes.update(_object_attributes(event.data))
    message = ce_http.to_binary_event(CloudEvent(attributes=attributes, data=dict(event.data)))
    return message.headers, message.body


def _object_attributes(obj: Mapping[str, Any]) -> dict[str, str]:
    """The extension attributes an ApiServerSource sets on an event about ``obj``, which its
    Triggers filter on: ``apiversion``, ``kind``, ``name`` and ``namespace``."""
    metadata = obj.get("metadata") or {}
    found = {"apiversion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": metadata.get("name"),
             "namespace": metadata.get("namespace")}
    return {key: value for key, value in found.items() if isinstance(value, str) and value}


def send(url: str, event: Event) -> None:
    """POST ``event`` to ``url`` (a broker or ``K_SINK``); a failure is temporary."""
    headers, body = to_http(event)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_SECONDS):
            return
    except (urllib.error.URLError, OSError) as exc:
        raise TemporaryError(f"could not send {event.type} to {url}: {exc}") from exc
