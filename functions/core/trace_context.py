"""W3C Trace Context as an event carries it, so that a trace in Zipkin or Jaeger follows a study
from the event that caused a handling to the events the handling emits.

Knative's brokers, Triggers and sources trace each delivery and pass its context on in the
``traceparent`` and ``tracestate`` HTTP headers; an event may also carry a context of its own in
the CloudEvents distributed-tracing extension (the ``traceparent`` and ``tracestate``
attributes). katuna starts no span itself: the events a handling emits carry the context of the
event that caused them, in both forms, so the broker's span for each is a child of the cause's.

A context is only ever carried on: it names no study, signs nothing, and no decision reads it.
One that is malformed is ignored as the W3C specification has it (the event is taken, and its
context neither refused nor copied); a ``tracestate`` that is malformed, or of more than
:data:`MOST_MEMBERS` entries, is dropped whole, and one longer than :data:`MOST_STATE` is cut
entry by entry, as the specification's truncation rules cut it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TRACEPARENT, TRACESTATE = "traceparent", "tracestate"
"""The names of the HTTP headers and of the CloudEvents extension attributes."""

_PARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_KEY = re.compile(r"[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}")
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_VERSION = "00"

MOST_MEMBERS = 32
"""The entries a ``tracestate`` may hold; one of more is dropped whole (W3C Trace Context 3.3.1.1)."""

MOST_STATE = 512
"""Characters of ``tracestate`` carried on: the specification asks that at least this many be
passed on, and lets a longer one be cut, its entries longer than :data:`LONG_MEMBER` first,
then from its end."""

LONG_MEMBER = 128


@dataclass(frozen=True)
class TraceContext:
    """A valid ``traceparent`` (version 00), and the ``tracestate`` beside it, if any."""

    traceparent: str
    tracestate: str | None = None

    @property
    def trace_id(self) -> str:
        """The trace's id, 32 hex digits: what a log line names, to be found in the trace."""
        return self.traceparent[3:35]

    def attributes(self) -> dict[str, str]:
        """As CloudEvents extension attributes, or HTTP headers, name it."""
        return {TRACEPARENT: self.traceparent, **({TRACESTATE: self.tracestate} if self.tracestate else {})}


def read(traceparent: object, tracestate: object = None) -> TraceContext | None:
    """The context of a ``traceparent`` and ``tracestate`` as received, or None where the
    ``traceparent`` is none the W3C specification takes: a later version's is read by its first
    55 characters and carried on as version 00."""
    parent = _parent(traceparent)
    return None if parent is None else TraceContext(parent, _state(tracestate))


def _parent(value: object) -> str | None:
    if not isinstance(value, str) or len(value) < 55:
        return None
    found = _PARENT.match(value)
    if found is None:
        return None
    version, trace_id, parent_id, flags = found.groups()
    tail = value[55:]
    if version == "ff" or version == _VERSION and tail or tail and not tail.startswith("-"):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return f"{_VERSION}-{trace_id}-{parent_id}-{flags}"


def _state(value: object) -> str | None:
    """``tracestate`` checked and bounded; None where there is none, or it is malformed."""
    if not isinstance(value, str):
        return None
    members = [member.strip(" \t") for member in value.split(",")]
    members = [member for member in members if member]
    if not members or len(members) > MOST_MEMBERS:
        return None
    keys = []
    for member in members:
        key, equals, text = member.partition("=")
        if not equals or not _KEY.fullmatch(key) or not _VALUE.fullmatch(text):
            return None
        keys.append(key)
    if len(set(keys)) != len(keys):
        return None
    return _bounded(members) or None


def _bounded(members: list[str]) -> str:
    """The entries joined, cut to :data:`MOST_STATE` characters: long entries dropped first,
    then entries from the end."""
    if len(",".join(members)) > MOST_STATE:
        members = [member for member in members if len(member) <= LONG_MEMBER]
    while len(",".join(members)) > MOST_STATE:
        members.pop()
    return ",".join(members)
