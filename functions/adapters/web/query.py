"""A request's query parameters, checked: Flask's ``type=int`` falls back to the default on
text that is no number, and takes any number, and ``args.get`` takes the first of a parameter
given twice, so a wrong value would be answered as if it were right. Here a wrong one is a
``400`` naming the parameter and what it takes."""

from __future__ import annotations

import re
from collections.abc import Mapping

from flask import request

from functions.core.errors import MalformedRequest, StudyNotFound
from functions.core.events import MAX_STORED_INT
from functions.core.records import ACTIVE_STATES, TrialRecord

_WHOLE = re.compile(r"-?[0-9]{1,19}")
"""At most 19 digits: no stored number has more, and no longer text is read."""


def _whole(text: str) -> int | None:
    return int(text) if _WHOLE.fullmatch(text) else None


def whole_number(name: str, default: int, low: int, high: int = MAX_STORED_INT) -> int:
    """The ``name`` parameter, ``default`` when it is absent; ``MalformedRequest`` unless it is
    a whole number from ``low`` to ``high``."""
    return whole_of(name, one_value(name), default, low, high)


def one_value(name: str, args: Mapping[str, str] | None = None) -> str | None:
    """The ``name`` parameter of ``args`` (the request's by default), None when it is absent;
    ``MalformedRequest`` when it is given more than once, as which one the client meant is not
    for the service to guess (``limit=1&limit=2``)."""
    values = every_value(name, request.args if args is None else args)
    if len(values) > 1:
        raise MalformedRequest(f"{name}: given {len(values)} times; expected it once")
    return values[0] if values else None


def whole_of(name: str, text: str | None, default: int, low: int, high: int = MAX_STORED_INT) -> int:
    """``text``, parameter ``name``'s value, as a whole number from ``low`` to ``high`` (ASCII
    digits, an optional ``-``, nothing else: ``int`` would take ``1_0`` and full-width digits);
    ``default`` when there is none; ``MalformedRequest`` naming ``name`` otherwise."""
    if text is None:
        return default
    number = _whole(text)
    if number is None or not low <= number <= high:
        raise MalformedRequest(f"{name}: expected a whole number from {low} to {high}, got {text!r:.40}")
    return number


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


def every_value(name: str, args: Mapping[str, str]) -> list[str]:
    """Each value the ``name`` parameter of ``args`` is given (a request's, or a plain mapping's one)."""
    getlist = getattr(args, "getlist", None)
    return getlist(name) if getlist is not None else [args[name]] if name in args else []


def attempt_of(trial: TrialRecord) -> int:
    """The attempt a log request asks for (``?attempt=k``), the trial's current one by default;
    ``StudyNotFound`` (a 404) for an attempt that never ran."""
    text = one_value("attempt")
    if text is None:
        return trial.attempt
    number = _whole(text)
    if number is None or not 1 <= number <= MAX_STORED_INT:
        raise MalformedRequest(f"attempt: expected a whole number from 1 to {trial.attempt}, got {text!r:.40}")
    if number > trial.attempt:
        raise StudyNotFound(f"trial {trial.number} of study {trial.study!r} has no attempt {number}: "
                            f"its attempts are 1 to {trial.attempt}")
    return number


def attempt_ended(trial: TrialRecord, attempt: int) -> bool:
    """Whether the trial's ``attempt`` has ended (an earlier one, or its current one once the
    trial is finished): a log such an attempt lacks is gone, where one still to start has none yet."""
    return attempt < trial.attempt or trial.state not in ACTIVE_STATES
