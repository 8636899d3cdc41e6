"""Waiting in tests for what a real process, server or stand-in does in its own time.

The parts the tests drive run beside them (subprocesses, loopback servers, background threads),
so a test looks again and again until what it expects holds, and fails, saying what it waited
for, once a deadline passes.
"""

from __future__ import annotations

import subprocess
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


START_WAIT = 120.0
"""Seconds a process a test starts (a fresh Python importing katuna, kubernetes, Optuna or moto:
a stand-in's server, ``katuna serve``, a handler) may take to answer or reach what the test waits
for. On a quiet two-core machine it takes a few seconds; with two busy loops beside a few test
workers, moto's server took 25-41 s to listen and a handler's imports 14-19 s; with six on its
core, a test worker's first ``katuna run`` (its warm Python started first) took 78-79 s to run
its first two trials, its later ones 12 s; and ``make test``
runs six workers with their browsers. A process that has exited is seen at once by the waits
that poll it, so only one still starting is waited for this long."""


BUSY_WAIT = 120.0
"""Seconds a test's own ``sqlite3`` connection waits for the write lock of a database a running
katuna holds (a ``katuna serve``, a ``katuna run``, an in-process runtime's threads): sqlite3's
default of 5 s leaves the holder's transaction half a second of CPU on a machine loaded twenty
processes deep on two cores, where a handler's transaction (Optuna's journal written in it) may
take that. The wait ends as soon as the lock is free."""


STOP_WAIT = 120.0
"""Seconds a stand-in server (moto's, a dashboard's) may take to exit once sent SIGTERM. Its
exit takes a third of a second of CPU (werkzeug's shutdown, then the teardown of moto's modules),
and on a machine loaded eighteen processes deep on two cores a process gets a ninth of one."""


def stopped(process: subprocess.Popen, timeout: float = STOP_WAIT) -> int:
    """SIGTERM to ``process``, then its exit status once it has exited, within ``timeout``
    seconds; past that it is killed, and :class:`subprocess.TimeoutExpired` raised."""
    process.terminate()
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
