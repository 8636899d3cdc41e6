"""katuna's errors as HTTP answers: permanent ones 4xx, temporary ones 503 with Retry-After.

Every error answer of the service, whoever refuses (a route, the guard, Flask itself), has one
shape: ``error``, a snake_case code a client can switch on (``study_not_found``,
``host_not_allowed``), ``message`` for a person, and ``retryable``, whether the same request may
succeed later (then with ``Retry-After``); an invalid study adds ``problems`` (at most
:data:`~functions.core.errors.PROBLEMS_LISTED`, with ``problemsNotListed`` counting the rest), a
conflict ``changed``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from flask import jsonify

from functions.core.errors import (
    NO_ROOM,
    FollowsResource,
    ForgedEvent,
    InvalidStudy,
    KatunaError,
    LogGone,
    MalformedRequest,
    NoRoomForStudy,
    StudyConflict,
    StudyNotFound,
    StudyRunsElsewhere,
    TemporaryError,
    UnparseableStudy,
)

RETRY_AFTER_SECONDS = 2
ROOM_RETRY_AFTER_SECONDS = 15
"""The ``Retry-After`` of a study resource waiting for room (:class:`NoRoomForStudy`): room frees
only as a study ends, and the tick sends the resource's event again each minute anyway, so a
broker that honours it (a Trigger's ``delivery.retryAfterMax``, behind Knative's
``delivery-retryafter`` feature) spends the 3 retries of the resource Triggers
(knative/triggers.yaml) over 45 s, within the tick's minute, rather than 3 posts in 7 s; one that
does not, as by default, waits its own back-off."""
EVENT_ANSWER_MAX = 700
"""The most bytes of an error answer to an event's delivery. Knative's channel dispatcher puts
the answer's body, base64, into the dead letter's ``knativeerrordata``, sized for 1,024
characters, and its in-memory channel crashes on a body past 768 bytes
(``dispatchExecutionInfoTransformers``; knative-extensions/eventing-natss#434): the message is
cut to keep the whole answer (and a line end) under that."""


def status_of(exc: KatunaError, resource: bool = True) -> int:
    """The status for ``exc``; ``resource=False`` (event functions) never answers 404 or 409,
    which Knative would retry. A study resource waiting for room among the studies not ended is
    ``429``: Knative retries it, and honours its ``Retry-After`` where a Trigger sets
    ``delivery.retryAfterMax``, as it does a ``503``'s."""
    if isinstance(exc, NoRoomForStudy):
        return 429
    if isinstance(exc, TemporaryError):
        return 503
    if isinstance(exc, (UnparseableStudy, MalformedRequest)):
        return 400
    if isinstance(exc, ForgedEvent):
        return 403
    if resource and isinstance(exc, (StudyNotFound, LogGone)):
        return 404
    if resource and isinstance(exc, (StudyConflict, FollowsResource, StudyRunsElsewhere, *NO_ROOM)):
        return 409
    return 422


def error_code(exc: KatunaError) -> str:
    """The ``error`` of an answer: the error's class name in snake_case (``StudyNotFound`` is
    ``study_not_found``), the style of every other refusal's code."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def _fit(body: dict, most: int) -> None:
    """Make ``body`` take at most ``most`` bytes as JSON: the problems listed go from the last
    (each counted in ``problemsNotListed``), then a conflict's ``changed`` fields, then the
    message is cut (:func:`_cut`). Cutting the message alone left an invalid study's problems,
    up to :data:`~functions.core.errors.PROBLEMS_LISTED` of them, past the dispatcher's bound."""
    problems = body.get("problems")
    if problems:
        kept = _most_kept(len(problems), lambda count: _size(_listing(body, problems, count)) <= most)
        body.update(_listing(body, problems, kept))
    if body.get("changed"):
        changed = body["changed"]
        del changed[_most_kept(len(changed), lambda count: _size({**body, "changed": changed[:count]}) <= most):]
    body["message"] = _cut(body, most)


def _listing(body: dict, problems: list, count: int) -> dict:
    """``body`` listing the first ``count`` of its ``problems``, the others counted in
    ``problemsNotListed``."""
    if count == len(problems):
        return body
    return {**body, "problems": problems[:count],
            "problemsNotListed": body.get("problemsNotListed", 0) + len(problems) - count}


def _size(body: dict) -> int:
    """The bytes ``body`` takes as JSON."""
    return len(json.dumps(body).encode())


def _most_kept(total: int, fits: Callable[[int], bool]) -> int:
    """The most of ``total`` entries kept with which the answer ``fits`` (none, where none fits),
    counted up from none: the answer is small (:data:`EVENT_ANSWER_MAX`), so only the few entries
    it can hold, and one more, are each tried once, however many there are."""
    kept = 0
    while kept < total and fits(kept + 1):
        kept += 1
    return kept


def _cut(body: dict, most: int) -> str:
    """``body``'s message, cut so that ``body`` as JSON takes at most ``most`` bytes, saying how
    much was cut."""
    message = body["message"]
    over = _size(body) - most
    if over <= 0:
        return message
    keep = max(len(message) - over - 40, 0)
    while True:
        cut = f"{message[:keep]} [katuna: {len(message) - keep} more characters cut]"
        if _size({**body, "message": cut}) <= most or keep == 0:
            return cut
        keep = max(keep - 40, 0)


def _invalid(exc: InvalidStudy) -> str:
    """The message of an invalid (or unparseable) study: its first problem, and how many more
    ``problems`` lists."""
    what = "unparseable study" if isinstance(exc, UnparseableStudy) else "invalid study"
    if not exc.problems:
        return what
    first = exc.problems[0]
    more = exc.count - 1
    seen = f"the first {len(exc.listed)} in problems" if exc.unlisted else "see problems"
    return (f"{what}: {first.path + ': ' if first.path else ''}{first.message}"
            + (f" (and {more:,} more problem{'s' if more > 1 else ''}: {seen})" if more else ""))


def error_response(exc: KatunaError, resource: bool = True):
    body = {"error": error_code(exc), "message": str(exc), "retryable": exc.retryable}
    if isinstance(exc, InvalidStudy):
        body["message"] = _invalid(exc)
        body["problems"] = [{"path": p.path, "message": p.message} for p in exc.listed]
        if exc.unlisted:
            body["problemsNotListed"] = exc.unlisted
    if isinstance(exc, StudyConflict):
        body["changed"] = list(exc.changed)
    if not resource:
        _fit(body, EVENT_ANSWER_MAX)
    response = jsonify(body)
    response.status_code = status_of(exc, resource)
    if exc.retryable:
        response.headers["Retry-After"] = str(ROOM_RETRY_AFTER_SECONDS if isinstance(exc, NoRoomForStudy)
                                              else RETRY_AFTER_SECONDS)
    return response
