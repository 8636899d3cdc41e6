"""What katuna reads of a CloudEvent beyond what the CloudEvents SDK checks: its ``time``, the
text of its attributes, and its data, the JSON object katuna's functions take."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from typing import Any

from functions.core import utf8
from functions.core.errors import MalformedRequest
from functions.core.events import APISERVER_EVENTS, POOL_CHECK
from functions.core.json_keys import DuplicateKey, unique_keys

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""The control characters a CloudEvents String may not hold (the specification's type system)."""


class MalformedEvent(MalformedRequest):
    """The request is not a CloudEvent, or its data is not the JSON object katuna expects."""


RFC_3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})")


def check_time(value: object, where: str) -> None:
    """Refuse a ``time`` attribute that is no RFC 3339 timestamp, naming it."""
    if value is None:
        return
    try:
        valid = isinstance(value, str) and RFC_3339.fullmatch(value) is not None and timestamp(value) is not None
    except ValueError:
        valid = False
    if not valid:
        raise MalformedEvent(f"{where}: expected an RFC 3339 timestamp such as 2026-12-05T10:00:00Z, "
                             f"got {str(value)[:100]!r}")


def timestamp(value: str) -> datetime:
    """A ``time`` :func:`check_time` took, as a ``datetime`` with its offset."""
    return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))


def json_object(event_type: str, data: Any) -> dict[str, Any]:
    """The data of an event of ``event_type``, a type katuna handles: the JSON object it must be."""
    if event_type in APISERVER_EVENTS:
        if not isinstance(data, dict):
            raise MalformedEvent("expected the Kubernetes object as JSON data")
    elif event_type == POOL_CHECK:
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise MalformedEvent("expected a PingSource tick's data as a JSON object, such as {}")
    elif not isinstance(data, dict):
        raise MalformedEvent("expected JSON data: an object with the study's name in 'study'")
    return data


def decoded_json(data: bytes) -> Any:
    """``data_base64`` of a JSON ``datacontenttype`` (or none), read as JSON as strictly as a
    body is: UTF-8, each key once, no lone surrogate."""
    expected = "expected JSON (its datacontenttype) encoded in base64"
    try:
        parsed = json.loads(utf8.text(data), object_pairs_hook=unique_keys)
    except utf8.NotUtf8 as exc:
        raise MalformedEvent(f"data_base64: {expected}, got bytes that are not UTF-8: {exc}") from exc
    except DuplicateKey as exc:
        raise MalformedEvent(f"data_base64: duplicate key {exc.key!r}; {expected}, each key once") from exc
    except (ValueError, RecursionError) as exc:
        raise MalformedEvent(f"data_base64: {expected}, got text that is not JSON: {exc}") from exc
    check_encodable(utf8.unencodable(parsed, "data_base64"))
    return parsed


def check_encodable(where: str | None) -> None:
    """Refuse text at ``where`` (:func:`functions.core.utf8.unencodable`) that UTF-8 cannot hold."""
    if where is not None:
        raise MalformedEvent(f"{where}: expected Unicode text, got a lone surrogate (a \\uD800-\\uDFFF escape "
                             "that is no character), which UTF-8 cannot hold")


def kept(data: Any) -> dict[str, Any]:
    """Data that is no JSON object, kept as it came: text (or another JSON value) as
    ``{"raw": ...}``, bytes that are not UTF-8 as ``{"base64": ...}``, never with a byte replaced."""
    if not isinstance(data, bytes):
        return {"raw": data}
    try:
        return {"raw": utf8.text(data)}
    except utf8.NotUtf8:
        return {"base64": base64.b64encode(data).decode()}
