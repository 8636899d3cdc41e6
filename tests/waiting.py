"""Waiting in tests for what a real process, server or stand-in does in its own time.

The parts the tests drive run beside them (subprocesses, loopback servers, background threads),
so a test looks again and again until what it expects holds, and fails, saying what it waited
for, once a deadline passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], what: str, timeout: float = 30, interval: float = 0.1) -> T:
    """``check()``'s first truthy result, calling it every ``interval`` seconds for up to
    ``timeout`` seconds.

    Past the deadline it raises an ``AssertionError`` naming ``what`` (what was waited for) and
    the timeout. An exception from ``check`` is not caught: it fails the test at once.
    """
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(interval)
    return result
