"""What a log line is about: the study, trial and event it names, which a JSON line gives as
fields of their own (``KATUNA_LOG_FORMAT=json``: :mod:`functions.adapters.log_lines`), so that a
collector finds every line about a study or an event, whichever function, thread or sender
wrote it. Plain values for a log call's ``extra``, for any layer to give."""

from __future__ import annotations

from typing import Any

CONTEXT = ("study", "trial", "eventId", "eventType", "traceId")
"""What a record may be about (:func:`about`): a field of its JSON line when the call gave it.
``traceId`` is the W3C trace the event came in (:mod:`functions.core.trace_context`), which finds
the line from the trace Zipkin or Jaeger shows, and the trace from the line."""

NAMED_KEPT = 256
"""Characters kept of the study an event's data names, which a client may have chosen."""


def about(study: str | None = None, trial: int | None = None, event: Any = None) -> dict[str, Any]:
    """A log call's ``extra``: the study, trial and event (its id, type and trace) a line is about."""
    given = {"study": study, "trial": trial, "eventId": getattr(event, "id", None),
             "eventType": getattr(event, "type", None), "traceId": getattr(getattr(event, "trace", None), "trace_id", None)}
    return {key: value for key, value in given.items() if value is not None}


def of_event(event: Any) -> dict[str, Any]:
    """A log call's ``extra`` for a line about ``event``: its id and type, and the study and trial
    its data names (katuna's events name them)."""
    data = getattr(event, "data", None)
    found = data if isinstance(data, dict) else {}
    study, trial = found.get("study"), found.get("trial")
    return about(study[:NAMED_KEPT] if isinstance(study, str) else None,
                 trial if isinstance(trial, int) and not isinstance(trial, bool) else None, event)
