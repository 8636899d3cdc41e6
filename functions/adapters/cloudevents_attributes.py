"""A CloudEvent's attributes checked as CloudEvents 1.0 has them, before the CloudEvents SDK reads
them: each refusal names the attribute (``attributes.<name>`` in structured mode, its header in
binary mode: ``ce-<name>``, ``Content-Type``) and what was expected, where the SDK's own checks
named it in its words, or not at all (``time: null`` failed inside it), and took what the
specification forbids.

``specversion`` is ``1.0``, the version katuna reads and sends (Knative's brokers and sources
send it, as the CloudEvents SDKs do by default): a 0.3 event, whose attributes differ, is refused
naming ``specversion`` rather than read as another version. ``id``, ``source`` and ``type`` are
required; ``source`` is a URI-reference and ``dataschema`` a URI (RFC 3986), ``datacontenttype``
a media type (RFC 2046), ``time`` an RFC 3339 timestamp, and every String holds no control
character. An extension's value is a Boolean, an Integer (32 bits) or a String: a JSON object,
array or fraction is no CloudEvents type. In structured mode a ``null`` attribute is unset, as
the JSON format has it (section 2.2); ``data`` and ``data_base64`` are never both present, and
data that is no string comes only under a JSON ``datacontenttype`` (section 3.1). In binary mode
each header is printable ASCII, percent-decoded once into UTF-8, a double-quoted value unquoted
first (HTTP binding section 3.1.3.2); ``datacontenttype`` is ``Content-Type``, never a
``ce-datacontenttype`` header (section 3.1.1).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from functions.adapters.cloudevents_data import CONTROL, MalformedEvent, check_encodable, check_time, timestamp
from functions.core import utf8
from functions.core.content_modes import media_type
from functions.core.json_keys import DuplicateKey, unique_keys

SPECVERSION = "1.0"
REQUIRED = ("specversion", "id", "source", "type")

_PCT = r"%[0-9A-Fa-f]{2}"
_UNRESERVED_SUB = r"A-Za-z0-9\-._~!$&'()*+,;="
_PCHAR = rf"(?:[{_UNRESERVED_SUB}:@]|{_PCT})"
_SEGMENT_NZ_NC = rf"(?:[{_UNRESERVED_SUB}@]|{_PCT})+"
_AUTHORITY = (rf"(?:(?:[{_UNRESERVED_SUB}:]|{_PCT})*@)?"
              rf"(?:\[[0-9A-Za-z:.\-_~!$&'()*+,;=]+\]|(?:[{_UNRESERVED_SUB}]|{_PCT})*)(?::[0-9]*)?")
_TAIL = rf"(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?"
_ABSOLUTE = (rf"[A-Za-z][A-Za-z0-9+.\-]*:(?://{_AUTHORITY}(?:/{_PCHAR}*)*|/(?:{_PCHAR}+(?:/{_PCHAR}*)*)?"
             rf"|{_PCHAR}+(?:/{_PCHAR}*)*)?{_TAIL}")
URI = re.compile(_ABSOLUTE)
"""RFC 3986's URI: a scheme, then what the scheme names."""
URI_REFERENCE = re.compile(rf"{_ABSOLUTE}|(?://{_AUTHORITY}(?:/{_PCHAR}*)*|/(?:{_PCHAR}+(?:/{_PCHAR}*)*)?"
                           rf"|{_SEGMENT_NZ_NC}(?:/{_PCHAR}*)*)?{_TAIL}")
"""RFC 3986's URI-reference: a URI, or a relative reference (``/apis/v1/...``, ``//host/path``)."""
_HTTP_WORD = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
MEDIA_TYPE = re.compile(rf"{_HTTP_WORD}/{_HTTP_WORD}(?:[ \t]*;[ \t]*(?:{_HTTP_WORD}=(?:{_HTTP_WORD}|\"(?:[\t !#-\[\]-~]|\\[\t -~])*\"))?)*")
"""A media type with its parameters (RFC 2046, written as RFC 9110 section 8.3.1 has it)."""
NAME = re.compile(r"[a-z0-9]+")
INTEGER = range(-(2**31), 2**31)
"""CloudEvents' Integer: a signed 32-bit number."""

EXPECTED = {
    "specversion": f'"{SPECVERSION}", the CloudEvents version katuna reads (Knative\'s brokers and sources send it, '
                   "as the CloudEvents SDKs do by default)",
    "id": "a non-empty String that, with its source, identifies the event",
    "source": "a non-empty URI-reference (RFC 3986), such as /apis/v1/namespaces/team/pingsources/tick",
    "type": "a non-empty String, such as dev.katuna.study.created",
    "subject": "a non-empty String",
    "datacontenttype": "a media type (RFC 2046), such as application/json",
    "dataschema": "a URI (RFC 3986) with its scheme, such as https://example.com/schemas/study.json",
}
SYNTAX = {"source": URI_REFERENCE, "dataschema": URI, "datacontenttype": MEDIA_TYPE}
EXTENSION = "a CloudEvents Boolean, Integer (32 bits) or String: a JSON true or false, whole number or string"


def check_attributes(attributes: Mapping[str, object], where: Callable[[str], str]) -> None:
    """Refuse attributes CloudEvents 1.0 does not take, naming the first at ``where(name)``."""
    for name in REQUIRED:
        if name not in attributes:
            raise MalformedEvent(f"{where(name)}: the CloudEvent has no {name}; expected {EXPECTED[name]}")
    for name, value in attributes.items():
        _check_attribute(name, value, where(name))


def _check_attribute(name: str, value: object, where: str) -> None:
    if not NAME.fullmatch(name) or name == "data":
        raise MalformedEvent(f"{where}: expected an attribute name of ASCII lower-case letters and digits (other "
                             f"than data, which is the event's data), got {name[:100]!r}")
    if name == "time":
        check_time(value, where)
        return
    expected = EXPECTED.get(name)
    if not isinstance(value, str):
        if expected is None and isinstance(value, bool | int) and (isinstance(value, bool) or value in INTEGER):
            return
        raise MalformedEvent(f"{where}: expected {expected or EXTENSION}, got {_shown(value)}")
    check_encodable(None if utf8.encodable(value) else where)
    if CONTROL.search(value):
        raise MalformedEvent(f"{where}: expected a CloudEvents String, which holds no control character "
                             f"(U+0000-U+001F, U+007F-U+009F), got {value[:100]!r}")
    syntax = SYNTAX.get(name)
    if name == "specversion" and value != SPECVERSION or expected is not None and not value \
            or syntax is not None and not syntax.fullmatch(value):
        raise MalformedEvent(f"{where}: expected {expected}, got {value[:100]!r}")


def _shown(value: object) -> str:
    """A JSON value as a refusal names it."""
    kinds = {dict: "a JSON object", list: "a JSON array", bool: "a JSON boolean", int: "a JSON number",
             float: "a JSON number"}
    return f"{kinds.get(type(value), 'a JSON value')}: {json.dumps(value)[:100]}"


def is_json(content_type: str | None) -> bool:
    """Whether a ``datacontenttype`` declares JSON data: ``*/json`` or ``*/*+json``, or none at
    all (JSON format section 3.1.1)."""
    subtype = media_type(content_type).partition("/")[2]
    return content_type is None or subtype == "json" or subtype.endswith("+json")


def structured(body: bytes, strict_data: bool = True) -> tuple[dict[str, Any], Any]:
    """The attributes and data of a structured event in the JSON format, checked: ``time`` a
    ``datetime``, ``data_base64`` decoded to bytes. Without ``strict_data`` (a dead letter's,
    kept as it came), data that is no string under a type that is not JSON is taken."""
    expected = "expected the event as JSON (structured mode)"
    try:
        event = json.loads(utf8.text(body), object_pairs_hook=unique_keys)
    except utf8.NotUtf8 as exc:
        raise MalformedEvent(f"the body is not UTF-8 text: {exc}; {expected} in UTF-8") from exc
    except DuplicateKey as exc:
        raise MalformedEvent(f"duplicate key {exc.key!r}; {expected} with each key once") from exc
    except (ValueError, RecursionError) as exc:
        raise MalformedEvent(f"not a CloudEvent: the body is no JSON ({exc}); {expected}") from exc
    if not isinstance(event, dict):
        raise MalformedEvent("not a CloudEvent: expected a JSON object of its attributes (structured mode), "
                             "got JSON of another kind")
    data, encoded = event.pop("data", None), event.pop("data_base64", None)
    attributes = {name: value for name, value in event.items() if value is not None}
    check_attributes(attributes, lambda name: f"attributes.{name}")
    content_type = attributes.get("datacontenttype")
    if encoded is not None:
        data = _decoded(encoded, data)
    elif strict_data and data is not None and not isinstance(data, str) and not is_json(content_type):
        raise MalformedEvent(f"attributes.datacontenttype: {str(content_type)[:100]!r} is no JSON type, and the JSON format "
                             f"carries such data as a string; got {_shown(data)}: send datacontenttype "
                             "application/json, or the data as the string its type reads")
    if "time" in attributes:
        attributes["time"] = timestamp(attributes["time"])
    return attributes, data


def _decoded(encoded: object, data: object) -> bytes:
    """``data_base64``'s bytes; refused beside a ``data`` member, or where it is no Base64."""
    if data is not None:
        raise MalformedEvent("data_base64: expected an event's data in data or in data_base64, never both "
                             "(the JSON format)")
    try:
        if isinstance(encoded, str):
            return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedEvent(f"data_base64: expected Base64 text (RFC 4648): {exc}") from exc
    raise MalformedEvent(f"data_base64: expected Base64 text (RFC 4648), got {_shown(encoded)}")


def binary(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of a binary-mode event (names lower-cased), checked, a double-quoted
    ``ce-*`` value unquoted (still percent-encoded, as the SDK decodes it)."""
    if "ce-datacontenttype" in headers:
        raise MalformedEvent("ce-datacontenttype: binary mode carries datacontenttype in the Content-Type header, "
                             "and the HTTP binding forbids this header beside it")
    unquoted = {name: _unquoted(value) if name.startswith("ce-") else value for name, value in headers.items()}
    attributes = {name[3:]: _decoded_header(name, value) for name, value in unquoted.items() if name.startswith("ce-")}
    if "content-type" in headers:
        attributes["datacontenttype"] = headers["content-type"]
    check_attributes(attributes, lambda name: "Content-Type" if name == "datacontenttype" else f"ce-{name}")
    return unquoted


def _unquoted(value: str) -> str:
    """A header value written as an HTTP quoted-string, unquoted: older senders quote a value
    holding a space or a double quote where they do not percent-encode it."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _decoded_header(name: str, value: str) -> str:
    """A ``ce-*`` header's value percent-decoded into UTF-8, refused where the header holds more
    than printable ASCII or the bytes it encodes are no UTF-8."""
    if not all(" " <= character <= "~" for character in value):
        raise MalformedEvent(f"{name}: expected printable ASCII, with any other character percent-encoded as "
                             f"UTF-8 (the HTTP binding), got {value[:100]!r}")
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError as exc:
        raise MalformedEvent(f"{name}: expected percent-encoded UTF-8 (the HTTP binding), got bytes that are no "
                             f"UTF-8 once decoded: {exc.reason} at byte {exc.start}") from exc
