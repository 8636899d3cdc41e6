"""How a CloudEvent came over HTTP, told by its ``Content-Type`` alone, as CloudEvents' HTTP
binding has a receiver tell it (section 3): a media type that begins with
``application/cloudevents-batch`` is batched mode, one that begins with
``application/cloudevents`` structured mode (in the event format its suffix names), and any
other, or none, binary mode. A ``ce-*`` header decides nothing: a structured event may carry
some beside its body (section 3.2.3), and its body holds every attribute.
"""

from __future__ import annotations

from typing import Literal

STRUCTURED_PREFIX = "application/cloudevents"
BATCHED_PREFIX = "application/cloudevents-batch"
STRUCTURED_JSON = "application/cloudevents+json"
"""The media type of a structured event in the JSON event format, the one format katuna reads."""

Mode = Literal["binary", "structured", "batched"]


def media_type(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` value, lower-cased (media types are
    case-insensitive), without its parameters; empty for none."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def content_mode(content_type: str | None) -> Mode:
    """The content mode a request with this ``Content-Type`` is in."""
    kind = media_type(content_type)
    if kind.startswith(BATCHED_PREFIX):
        return "batched"
    return "structured" if kind.startswith(STRUCTURED_PREFIX) else "binary"
