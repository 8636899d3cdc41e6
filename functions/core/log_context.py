"""What a log line is about: the study, trial and event it names, which a JSON line gives as
fields of their own and a text line as ``name=value`` after its message (``KATUNA_LOG_FORMAT``:
:mod:`functions.adapters.log_lines`), so that a collector, or ``grep`` over ``kubectl logs``,
finds every line about a study, a trial or an event, whichever function, thread or sender wrote
it. Plain values for a log call's ``extra``, for any layer to give."""

from __future__ import annotations

from typing import Any

CONTEXT = ("study", "trial", "eventId", "eventType", "eventSource", "traceId")
"""What a record may be about (:func:`about`): a field of its line when the call gave it. An
event is told from another by its source and id together (two producers may number theirs
alike: :func:`functions.core.events.delivery_key`). ``traceId`` is the W3C trace the event came in (:mod:`functions.core.trace_context`), which finds
the line from the trace Zipkin or Jaeger shows, and the trace from the line."""

NAMED_KEPT = 256
"""Characters kept of the study an event's data names, which a client may have chosen."""


def about(study: str | None = None, trial: int | None = None, event: Any = None) -> dict[str, Any]:
    """A log call's ``extra``: the study, trial and event (its id, type, source and trace) a line
    is about."""
    given = {"study": study, "trial": trial, "eventId": getattr(event, "id", None),
             "eventType": getattr(event, "type", None), "eventSource": getattr(event, "source", None),
             "traceId": getattr(getattr(event, "trace", None), "trace_id", None)}
    return {key: value for key, value in given.items() if value is not None}


def of_event(event: Any) -> dict[str, Any]:
    """A log call's ``extra`` for a line about ``event``: its id and type, and the study and trial
    its data names (katuna's events name them)."""
    data = getattr(event, "data", None)
    found = data if isinstance(data, dict) else {}
    study, trial = found.get("study"), found.get("trial")
    return about(study[:NAMED_KEPT] if isinstance(study, str) else None,
                 trial if isinstance(trial, int) and not isinstance(trial, bool) else None, event)
