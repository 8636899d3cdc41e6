"""katuna events over HTTP as CloudEvents, through the CloudEvents SDK (the only module using it).

Requests are read in binary or structured mode; katuna sends binary mode with JSON data.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
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


class Sink:
    """Where katuna posts events beyond its replies: ``K_SINK``, reached as Knative's SinkBinding
    sets it up. With Eventing's ``authentication-oidc`` feature on, the binding mounts an OIDC
    token for the sink's audience at ``token_file`` and the broker refuses (401) a post without
    it; the token is read again for every post, as the binding rotates it. With transport
    encryption the sink is https, signed by the cluster's CA, whose PEM certificates the binding
    puts in ``K_CA_CERTS`` (``ca_certs``): trusted besides the system's."""

    def __init__(self, url: str, token_file: Path | None = None, ca_certs: str | None = None) -> None:
        self.url = url
        self._token_file = token_file
        self._context = _trusting(ca_certs) if ca_certs else None

    def send(self, event: Event) -> None:
        """POST ``event`` to the sink; a failure is temporary (a refusal included: the token
        may be renewed meanwhile)."""
        headers, body = to_http(event)
        request = urllib.request.Request(self.url, data=body, headers={**headers, **self._authorization()},
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_SECONDS, context=self._context):
                return
        except (urllib.error.URLError, OSError) as exc:
            raise TemporaryError(f"could not send {event.type} to {self.url}: {exc}") from exc

    def _authorization(self) -> dict[str, str]:
        """The bearer token as the file holds it now; none while there is no file (OIDC is off)."""
        if self._token_file is None:
            return {}
        try:
            token = self._token_file.read_text().strip()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise TemporaryError(f"could not read the OIDC token for {self.url} at {self._token_file}: {exc}") from exc
        return {"Authorization": f"Bearer {token}"} if token else {}


def _trusting(ca_certs: str) -> ssl.SSLContext:
    """A TLS context that trusts the system's CAs and the PEM certificates in ``ca_certs``;
    ``ValueError`` when they are not PEM certificates."""
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cadata=ca_certs)
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(f"K_CA_CERTS: expected PEM CA certificates for the sink, could not load them: {exc}") from exc
    return context
