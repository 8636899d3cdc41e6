"""What a katuna event's data must hold, field by field, and the bounds of its numbers.

Apart from :mod:`functions.core.events`, which names the events and makes them: the dispatcher
checks every event it is given against these rules before any handler runs (a field missing or
of the wrong kind is refused, named), and the store's bounds (:data:`MAX_STORED_INT`) are read
by every reader of trial numbers and steps, command line and web included.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

from functions.core.events import (
    APISERVER_EVENTS,
    STUDY_COMPLETED,
    STUDY_CREATED,
    TRIAL_FINISHED,
    TRIAL_PROGRESS,
    TRIAL_SUGGESTED,
)
from functions.core.naming import LABEL_EXPECTED, is_label
from functions.core.records import TERMINAL_STATUSES
from functions.core.strict_json import NON_FINITE

MAX_STORED_INT = 2**63 - 1
"""The largest integer the store holds (SQLite's INTEGER is a signed 64-bit number): a larger
trial number, attempt or step is refused with the event, before any handler runs."""

EXIT_CODES = (-(2**31), 2**31 - 1)
"""An exit code is a 32-bit signed number (Kubernetes' ``exitCode``; a local process's status,
negative when a signal ended it)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """An int or float a float can hold: a larger int would overflow where it is compared."""
    return isinstance(value, float) or (_is_int(value) and abs(value) <= sys.float_info.max)


def _is_progress_value(value: Any) -> bool:
    """A finite number, or the name of a value that is not (:data:`NON_FINITE`); never a bare
    ``NaN`` or ``Infinity``, which are no JSON."""
    return (_is_number(value) and math.isfinite(value)) or (isinstance(value, str) and value in NON_FINITE)


def _whole(low: int, high: int) -> tuple[Any, str]:
    return (lambda v: _is_int(v) and low <= v <= high, f"an integer from {low} to {high}")


_TEXT = (lambda v: isinstance(v, str) and v != "", "a non-empty string")
_STUDY_NAME = (is_label, f"a study's name: {LABEL_EXPECTED}")
_COUNT = _whole(0, MAX_STORED_INT)
_ATTEMPT = _whole(1, MAX_STORED_INT)
_EXIT_CODE = _whole(*EXIT_CODES)
_PROGRESS_VALUE = (_is_progress_value,
                   'a finite number a float can hold, or the string "nan", "inf" or "-inf" for a value that is not')
MAX_POD_CHARS = 128
"""The longest pod a posted ``trial.progress`` may name: a pod's uid is a UUID (36 characters)."""
_POD = (lambda v: isinstance(v, str) and 0 < len(v) <= MAX_POD_CHARS,
        f"a pod's uid (its metadata.uid): a non-empty string of at most {MAX_POD_CHARS} characters")
_STUDY_FIELDS = {"study": _STUDY_NAME, "uid": _TEXT}
_TRIAL_FIELDS = {**_STUDY_FIELDS, "trial": _COUNT, "attempt": _ATTEMPT}
OUTCOMES = ("exited", "timeout", "error", "preempted", "interrupted")
_FIELDS: Mapping[str, Mapping[str, tuple[Any, str]]] = {
    STUDY_CREATED: _STUDY_FIELDS,
    TRIAL_SUGGESTED: _TRIAL_FIELDS,
    TRIAL_FINISHED: {**_TRIAL_FIELDS, "outcome": (lambda v: v in OUTCOMES, f"one of {', '.join(OUTCOMES)}"),
                     "exitCode": (lambda v: v is None or _EXIT_CODE[0](v), f"{_EXIT_CODE[1]}, or null"),
                     "message": (lambda v: isinstance(v, str), "a string")},
    TRIAL_PROGRESS: {**_TRIAL_FIELDS, "step": _COUNT, "value": _PROGRESS_VALUE, "token": _TEXT},
    STUDY_COMPLETED: {**_STUDY_FIELDS, "status": (lambda v: v in TERMINAL_STATUSES,
                                                  f"one of {', '.join(TERMINAL_STATUSES)}"),
                      "reason": (lambda v: isinstance(v, str), "a string")},
}
_OBJECT_FIELDS: Mapping[str, tuple[Any, str]] = {
    "metadata": (lambda v: isinstance(v, Mapping), "a mapping (the object's metadata)"),
    "kind": (lambda v: isinstance(v, str), "a string"), "apiVersion": (lambda v: isinstance(v, str), "a string")}
"""The fields of an ApiServerSource event's object that katuna reads, when it has them."""
_OPTIONAL: Mapping[str, Mapping[str, tuple[Any, str]]] = {
    STUDY_CREATED: {"restarts": _COUNT},
    STUDY_COMPLETED: {"restarts": _COUNT},
    TRIAL_PROGRESS: {"pod": _POD, "counted": (lambda v: v is True, "true (the step is the count of reports so far), "
                                                                  "or no field")},
    TRIAL_FINISHED: {"disruptions": _ATTEMPT, "cause": _TEXT,
                     "running": (lambda v: v is True, "true (the workload still runs), or no field"),
                     "pod": _TEXT, "peakMemory": _COUNT,
                     "refused": (lambda v: v is True, "true (katuna refused to start the attempt), or no field"),
                     "outputBytes": _COUNT},
    **{apiserver_event: _OBJECT_FIELDS for apiserver_event in APISERVER_EVENTS},
}


def data_problems(event_type: str, data: Mapping[str, Any]) -> list[str]:
    """What is wrong with the data of a katuna event, each naming its field; none for other types."""
    fields = _FIELDS.get(event_type, {})
    problems = []
    for name, (valid, expected) in {**fields, **_OPTIONAL.get(event_type, {})}.items():
        if name not in data:
            if name in fields:
                problems.append(f"data.{name}: required; expected {expected}")
        elif not valid(data[name]):
            problems.append(f"data.{name}: expected {expected}, got {data[name]!r:.80}")
    return problems


def attempt_named(data: Mapping[str, Any]) -> tuple[int, int] | None:
    """The trial number and attempt a trial event's data names, when both are numbers the store
    holds; None for data that names none (a study's event) or names them wrongly."""
    trial: Any = data.get("trial")
    attempt: Any = data.get("attempt")
    return (trial, attempt) if _COUNT[0](trial) and _ATTEMPT[0](attempt) else None
