"""Waiting for a node-pool change, for the provisioning script (never for a request: the
service checks a change again on its ticks instead).

A poll the cloud refuses for now (throttled, a per-minute read quota, a server's failure) says
nothing about the change, which goes on: the wait polls again at the next interval, as the
service's ticks do, until the change is done or the time is up. Time up with the last poll
refused is an error carrying the cloud's answer; a change still pending then is reported
pending, not failed.

A change the cloud refuses for now (a cluster busy with another operation, throttling, a
server's failure) is asked again (:func:`retrying`), after a pause that doubles each time,
until the time is up; a refusal for good is not asked again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from functions.core.durations import tell_seconds
from functions.core.errors import TemporaryError
from functions.core.nodepool import OperationStatus

T = TypeVar("T")
FIRST_PAUSE, LONGEST_PAUSE = 1.0, 30.0
"""Seconds between tries of a change refused for now: the first pause, doubled each time up to the longest."""


def until_done(check: Callable[[str], OperationStatus], operation: str, interval: float,
               timeout: float) -> OperationStatus:
    """``check(operation)`` every ``interval`` seconds until it is done or ``timeout`` seconds
    have passed; the last status."""
    deadline = time.monotonic() + timeout
    while True:
        refused = None
        try:
            status = check(operation)
        except TemporaryError as exc:
            status, refused = OperationStatus(False), exc
        left = deadline - time.monotonic()
        if status.done or left <= 0:
            if refused is not None:
                raise TemporaryError(f"{operation} is still pending after {tell_seconds(timeout)} s, as far as the last poll "
                                     f"could tell: {refused}") from refused
            return status
        time.sleep(min(interval, left))


def retrying(call: Callable[[], T], deadline: float, told: Callable[[TemporaryError, float], None]) -> T:
    """``call()``, asked again while it raises :class:`TemporaryError` and ``deadline`` (a
    ``time.monotonic()`` value) has not passed; ``told`` hears of each refusal and the pause
    before the next try. The refusal still there at the deadline is raised, as is any other error at once."""
    pause = FIRST_PAUSE
    while True:
        try:
            return call()
        except TemporaryError as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            wait = min(pause, left)
            told(exc, wait)
            time.sleep(wait)
            pause = min(pause * 2, LONGEST_PAUSE)
