"""What the multi-tenant broker's filter makes of a subscriber's answer, as Knative Eventing's
filter handler does before the channel dispatcher sees it.

- No answer (a connection error): a 500 whose error information is the dispatcher's words
  (``dispatch error: ...``: executeRequest sets both when the request fails), so its dead
  letter names the subscriber, code 500, and those words.
- A non-2xx answer: its status, passed on, with its body carried to the dead letter.
- A 2xx answer that is a CloudEvent (binary mode: a ``ce-specversion`` of 1.0 or 0.3; structured
  mode: ``Content-Type: application/cloudevents+json``): its status, and the event as the reply,
  which the channel forwards to the broker's ingress. One the filter cannot read (a batch, a
  structured body that is no JSON object of a known ``specversion``, an extension attribute
  Knative's CloudEvents SDK refuses: :func:`unreadable`): 502. The filter does not
  validate what it reads: the ingress does (:func:`ingress_event`), and refuses an event that
  lacks ``id``, ``source`` or ``type`` with 400, which the channel does not retry: the event
  answered is dead-lettered with the ingress as ``knativeerrordest``.
- A 2xx answer that is no CloudEvent: its status when its body is empty; a 502 when it has one
  ("the response MUST be either empty or a valid CloudEvent").

The filter's own 502 carries no error information, so a delivery given up after it is
dead-lettered with no ``knativeerror*`` extensions at all: the channel dispatcher takes them
from the filter's error body, and there is none (event_dispatcher.go
``dispatchExecutionInfoTransformers`` adds nothing when it cannot read one).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cloudevents.core.base import BaseCloudEvent

from .delivery import NO_ANSWER

BAD_GATEWAY = 502
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
SPEC_VERSIONS = ("1.0", "0.3")
"""The ``ce-specversion`` values Knative's CloudEvents SDK knows: any other is no event."""
REQUIRED = ("id", "source", "type")
"""What the ingress's validation requires besides ``specversion``, each a string that is not
blank (sdk-go ``EventContextV1.Validate`` trims it first)."""
_TOKEN = r"[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+"
MEDIA_TYPE = re.compile(rf"^\s*{_TOKEN}(?:/{_TOKEN})?\s*$")
"""A media type's part before its parameters as Go's ``mime.ParseMediaType`` takes it: a token,
or two joined by a slash (``checkMediaTypeDisposition``)."""
MEDIA_PARAMETER = re.compile(rf'\s*;\s*({_TOKEN})\s*=\s*(?:{_TOKEN}|"(?:[^"\\]|\\.)*")')
"""One ``; name=value`` parameter after it, the value a token or a quoted string."""
EXTENSION_NAME = re.compile(r"^[A-Za-z0-9]+$")
"""The extension names Knative's CloudEvents SDK reads (sdk-go event/extensions.go
``validateExtensionName``): ASCII letters and digits, either case, kept lower-cased; a name with
anything else fails the whole read. No length limit (``MaxExtensionNameLength`` is 0)."""
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
"""A ``time`` the SDK reads (``time.Parse`` with ``RFC3339Nano``): a date alone, or a time
without its offset, fails the read (the SDK here would take either)."""
STRUCTURED_ATTRIBUTES = frozenset({"specversion", "id", "source", "type", "subject", "time", "dataschema",
                                   "datacontenttype", "data", "data_base64", "schemaurl", "datacontentencoding"})
"""The members of a structured event the SDK reads as its context or data, not as extensions."""

Message = tuple[Mapping[str, str], bytes]
"""An HTTP message's headers (lowercase names) and body."""


@dataclass(frozen=True)
class FilterAnswer:
    """The filter's answer to the channel: ``status``; ``reply``, the event it read, to forward to
    the ingress; ``error_body``, the body its error information carries (None: it carries none)."""

    status: int
    reply: Message | None = None
    error_body: bytes | None = None

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _structured(body: bytes) -> dict | None:
    """A structured event's attributes, or None where the body is no JSON object."""
    try:
        found = json.loads(body)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def unreadable(headers: Mapping[str, str], body: bytes) -> str | None:
    """Why Knative's SDK cannot read the message (lower-case header names) as one event, or
    None. In binary mode every ``ce-`` header past the context attributes is an extension,
    whose name must be :data:`EXTENSION_NAME`'s; in structured mode so must every member past
    :data:`STRUCTURED_ATTRIBUTES`, with a value an attribute can hold (no object, no list). A
    ``time`` must be RFC 3339 (:data:`RFC3339`)."""
    media_type = _media_type(headers)
    if media_type == BATCH:
        return "a batch is no single event"
    if media_type != STRUCTURED:
        names = [name[3:] for name in headers if name.startswith("ce-")]
        time = headers.get("ce-time")
    else:
        attributes = _structured(body)
        if attributes is None or attributes.get("specversion") not in SPEC_VERSIONS:
            return "a structured event must be a JSON object of specversion 1.0 or 0.3"
        extensions = {name: value for name, value in attributes.items() if name not in STRUCTURED_ATTRIBUTES}
        held = [name for name, value in extensions.items() if isinstance(value, (dict, list))]
        if held:
            return f"extension {held[0]!r}: invalid CloudEvents value (an object or a list)"
        names, time = list(extensions), attributes.get("time")
    if time is not None and not (isinstance(time, str) and RFC3339.match(time)):
        return f"time {time!r}: expected an RFC 3339 timestamp"
    bad = [name for name in names if not EXTENSION_NAME.match(name)]
    return None if not bad else (f"bad key {bad[0]!r}: CloudEvents attribute names MUST consist of letters "
                                 "and digits")


def filtered(status: int | None, headers: Mapping[str, str], body: bytes) -> FilterAnswer:
    """The filter's answer to a subscriber's (``status`` None: there was none, and ``body`` is
    the dispatcher's words for it)."""
    if status is None:
        return FilterAnswer(NO_ANSWER, error_body=body)
    if not 200 <= status < 300:
        return FilterAnswer(status, error_body=body)
    lowered = {name.lower(): value for name, value in headers.items()}
    if _media_type(lowered) not in (STRUCTURED, BATCH) and lowered.get("ce-specversion") not in SPEC_VERSIONS:
        return FilterAnswer(BAD_GATEWAY if body else status)
    if unreadable(lowered, body) is not None:
        return FilterAnswer(BAD_GATEWAY)
    return FilterAnswer(status, reply=(lowered, body))


def invalid(attributes: Mapping[str, object], content_type: object) -> str | None:
    """What the ingress's validation (sdk-go ``EventContextV1.Validate``) refuses in an event's
    optional attributes, or None: a ``subject`` that is blank, a ``datacontenttype`` (binary
    mode: the ``Content-Type``) that is blank or no media type :func:`media_type_problem` takes,
    a ``dataschema`` that is no absolute URI."""
    subject, schema = attributes.get("subject"), attributes.get("dataschema")
    if subject is not None and not str(subject).strip():
        return "subject: if present, MUST be a non-empty string"
    if content_type is not None and (problem := media_type_problem(str(content_type))) is not None:
        return f"datacontenttype {content_type!r}: {problem}"
    if schema is not None and not urllib.parse.urlsplit(str(schema)).scheme:
        return f"dataschema {schema!r}: if present, MUST be an absolute URI"
    return None


def media_type_problem(text: str) -> str | None:
    """Why Go's ``mime.ParseMediaType`` refuses ``text``, or None: a blank one, a type that is not
    ``token`` or ``token/token``, a parameter that is not ``name=value``, a name twice (a trailing
    ``;`` is let through, as Go lets it)."""
    base = text.split(";", 1)[0]
    if not base.strip():
        return "no media type"
    if not MEDIA_TYPE.match(base):
        return "expected a type/subtype of tokens"
    rest, names = text[len(base):], []
    while rest.strip() and rest.strip() != ";":
        found = MEDIA_PARAMETER.match(rest)
        if found is None:
            return "invalid media parameter"
        names.append(found.group(1).lower())
        rest = rest[found.end():]
    return "duplicate parameter name" if len(names) != len(set(names)) else None


def ingress_event(headers: Mapping[str, str], body: bytes,
                  parse: Callable[[Mapping[str, str], bytes], BaseCloudEvent]) -> BaseCloudEvent:
    """The event the ingress takes from a message; ``ValueError`` where it answers 400 (an event
    it cannot read, or one lacking a required attribute, which the SDK here would make up). A
    structured event's extension names are taken lower-cased, as Knative's SDK takes them."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if _media_type(lowered) == STRUCTURED:
        attributes = _structured(body) or {}
        problem = unreadable(lowered, body) if attributes else None
        named = {name if name in STRUCTURED_ATTRIBUTES else name.lower(): value for name, value in attributes.items()}
        if problem is None and list(named) != list(attributes):
            body = json.dumps(named).encode()
    else:
        attributes = {name[3:]: value for name, value in lowered.items() if name.startswith("ce-")}
        problem = unreadable(lowered, body)
    if problem is not None:
        raise ValueError(problem)
    missing = [name for name in REQUIRED if not isinstance(attributes.get(name), str) or not attributes[name].strip()]
    if missing:
        raise ValueError(f"the event lacks {', '.join(missing)}")
    problem = invalid(attributes, lowered.get("content-type") if _media_type(lowered) != STRUCTURED
                      else attributes.get("datacontenttype"))
    if problem is not None:
        raise ValueError(problem)
    try:
        return parse(lowered, body)
    except Exception as exc:  # the SDK raises several kinds for a malformed event
        raise ValueError(str(exc)) from exc
