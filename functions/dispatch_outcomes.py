"""How each event handling ended, as the dispatcher tells its :class:`Observer` (the service's
metrics count and time handlings by event type, handler and outcome): the outcomes, the
observer's protocol, and the outcome a handler's exception stands for."""

from __future__ import annotations

from typing import Protocol

from functions.core.errors import ForgedEvent, StudyNotFound, StudyRunsElsewhere
from functions.handlers.failures import temporary

OK, DUPLICATE, DROPPED, TEMPORARY_ERROR, PERMANENT_ERROR, FORGED = (
    "ok", "duplicate", "dropped", "temporary_error", "permanent_error", "forged")
OUTCOMES = (OK, DUPLICATE, DROPPED, TEMPORARY_ERROR, PERMANENT_ERROR, FORGED)
"""How a handling ended: the handler's effects committed (``ok``); a redelivered event answered
from its record (``duplicate``); the event's study is gone, or its trials run where this
service does not run trials, so there was nothing to do (``dropped``); a failure that retrying
may cure (``temporary_error``, answered 503); an event refused as forged, without katuna's
signature or its attempt's report token (``forged``, answered 403); any other failure
(``permanent_error``), an event refused before any handler ran included."""

NO_HANDLER = "none"
"""The handler reported for an event refused before any handler ran (malformed, unknown type
or function)."""

UNKNOWN_TYPE = "unknown"
"""The type reported for an event whose type nothing handles: a sender picks the type, and
every value would make a series of its own."""


class Observer(Protocol):
    """Told of every handling, as it ends."""

    def handled(self, event_type: str, handler: str, outcome: str, seconds: float | None) -> None:
        """``seconds`` is None for an event refused before any handler ran (:data:`NO_HANDLER`)."""


class Unobserved:
    """An observer that keeps nothing (``katuna run`` keeps no metrics)."""

    def handled(self, event_type: str, handler: str, outcome: str, seconds: float | None) -> None:
        return None


def outcome_of(exc: BaseException) -> str:
    """The outcome a handler's exception stands for."""
    if isinstance(exc, (StudyNotFound, StudyRunsElsewhere)):
        return DROPPED
    if isinstance(exc, ForgedEvent):
        return FORGED
    return TEMPORARY_ERROR if temporary(exc) else PERMANENT_ERROR
