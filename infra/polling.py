"""Waiting for a node-pool change, for the provisioning script (never for a request: the
service checks a change again on its ticks instead).

A poll the cloud refuses for now (throttled, a per-minute read quota, a server's failure) says
nothing about the change, which goes on: the wait polls again at the next interval, as the
service's ticks do, until the change is done or the time is up. Time up with the last poll
refused is an error carrying the cloud's answer; a change still pending then is reported
pending, not failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from functions.core.errors import TemporaryError
from functions.core.nodepool import OperationStatus


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
                raise TemporaryError(f"{operation} is still pending after {timeout:g} s, as far as the last poll "
                                     f"could tell: {refused}") from refused
            return status
        time.sleep(min(interval, left))
