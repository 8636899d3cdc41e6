"""A request's query parameters, checked: Flask's ``type=int`` falls back to the default on
text that is no number, and takes any number, and ``args.get`` takes the first of a parameter
given twice, so a wrong value would be answered as if it were right. Here a wrong one is a
``400`` naming the parameter and what it takes."""

from __future__ import annotations

from collections.abc import Mapping

from flask import request

from functions.core.errors import MalformedRequest, StudyNotFound
from functions.core.event_data import MAX_STORED_INT
from functions.core.query_args import one_of, whole, whole_of
from functions.core.records import ACTIVE_STATES, TrialRecord


def whole_number(name: str, default: int, low: int, high: int = MAX_STORED_INT) -> int:
    """The ``name`` parameter, ``default`` when it is absent; ``MalformedRequest`` unless it is
    a whole number from ``low`` to ``high``."""
    return whole_of(name, one_value(name), default, low, high)


def one_value(name: str, args: Mapping[str, str] | None = None) -> str | None:
    """The ``name`` parameter of ``args`` (the request's by default), None when it is absent;
    ``MalformedRequest`` when it is given more than once, as which one the client meant is not
    for the service to guess (``limit=1&limit=2``)."""
    return one_of(name, request.args if args is None else args)


FLAGS = {"0": False, "false": False, "1": True, "true": True}
"""What a yes-or-no parameter takes."""


def flag(name: str) -> bool:
    """The yes-or-no ``name`` parameter (:data:`FLAGS`), False when it is absent; another value
    is refused, naming it, not taken as either."""
    text = one_value(name)
    if text is None:
        return False
    if text not in FLAGS:
        raise MalformedRequest(f"{name}: expected true or 1 (yes), false or 0 (no), got {text!r:.40}")
    return FLAGS[text]


def only(*names: str) -> None:
    """``MalformedRequest`` naming a query parameter the route does not take (one of ``names``
    is all it takes): a parameter ignored, a misspelt ``attempt`` say, would make a wrong answer
    look right."""
    unknown = sorted(set(request.args) - set(names))
    if unknown:
        raise MalformedRequest(f"{unknown[0]:.40}: not a parameter of this path, which takes {', '.join(names)}")


def attempt_of(trial: TrialRecord) -> int:
    """The attempt a log request asks for (``?attempt=k``), the trial's current one by default;
    ``MalformedRequest`` (a 400) for one that is no attempt's number at all, whatever the trial
    (``attempt=0``), as the API's document bounds it; ``StudyNotFound`` (a 404) for an attempt
    that never ran, naming the trial's attempts."""
    text = one_value("attempt")
    if text is None:
        return trial.attempt
    number = whole(text)
    if number is None or not 1 <= number <= MAX_STORED_INT:
        raise MalformedRequest(f"attempt: expected a whole number from 1 to {MAX_STORED_INT}, got {text!r:.40}")
    if number > trial.attempt:
        raise StudyNotFound(f"trial {trial.number} of study {trial.study!r} has no attempt {number}: "
                            f"its attempts are 1 to {trial.attempt}")
    return number


def attempt_ended(trial: TrialRecord, attempt: int) -> bool:
    """Whether the trial's ``attempt`` has ended (an earlier one, or its current one once the
    trial is finished): a log such an attempt lacks is gone, where one still to start has none yet."""
    return attempt < trial.attempt or trial.state not in ACTIVE_STATES
