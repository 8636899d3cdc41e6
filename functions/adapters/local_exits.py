"""The end of a local attempt's main process, collected with its peak memory (Linux).

``Popen.wait`` collects a child's exit status with ``waitpid``, which drops what the kernel
counted of the child's resources; ``os.wait4`` collects both. The thread waiting for the
attempt collects it so (:func:`wait_within`), polling within its timeout as ``Popen.wait``
does, and copies the status into ``Popen.returncode``, as asyncio's child watchers do:
``poll``, ``wait`` and ``send_signal`` then see the process ended, and collect nothing. Every
other thread asks whether it ended with :func:`ended`, which leaves the status to that thread.

The peak is the kernel's ``ru_maxrss``: the most resident memory the process held, or one of
the children it waited for held (the largest of them, not their sum); processes it left to run
on, which katuna ends and collects, are not counted. It also counts the memory of katuna's
process that started it (a started process is katuna's copy until it runs its program), so a
peak no larger than katuna's own at the start only bounds the trial's (:class:`Memory`).
Elsewhere no peak is measured, and ``Popen`` waits and polls, under its own lock.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from typing import NamedTuple

from functions.core.memory_sizes import memory

MEASURED = sys.platform.startswith("linux")
"""Whether peaks are measured: Linux gives ``ru_maxrss`` in KiB, and another system in another unit."""

LONGEST_DELAY = 0.05
"""The longest pause between two looks at a process waited for with a timeout, as ``Popen.wait``'s."""


class Memory(NamedTuple):
    """The peak resident memory of a trial's process, in bytes: its own (``exact``), or, where it
    was no larger than katuna's own when it started the trial, a bound of it."""

    peak: int
    exact: bool

    def __str__(self) -> str:
        return f"peak memory {'' if self.exact else 'at most '}{memory(self.peak)}"


class Exit(NamedTuple):
    """How a process ended: its exit ``code`` (negative: a signal) and its peak ``memory``,
    where it was measured."""

    code: int
    memory: Memory | None = None


def own_peak() -> int | None:
    """The peak resident memory of this process so far, in bytes, which a child it started
    counts as its own until it runs its program (taken once the child runs it); None where
    peaks are not measured."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 if MEASURED else None


def wait(process: subprocess.Popen[bytes], floor: int | None) -> Exit:
    """Wait for the process to end, and collect its status. ``floor`` is :func:`own_peak` as the
    process started. Where peaks are not measured, ``Popen.wait`` collects it, under the lock
    that :func:`ended`'s ``Popen.poll`` takes too."""
    if not MEASURED:
        return Exit(process.wait())
    while (end := _collect(process, 0, floor)) is None:
        continue
    return end


def wait_within(process: subprocess.Popen[bytes], timeout: float | None, floor: int | None) -> Exit | None:
    """:func:`wait`, for at most ``timeout`` seconds (where given): None once they passed first."""
    if not MEASURED:
        try:
            return Exit(process.wait(timeout))
        except subprocess.TimeoutExpired:
            return None
    if timeout is None:
        return wait(process, floor)
    deadline, delay = time.monotonic() + timeout, 0.0005
    while (end := _collect(process, os.WNOHANG, floor)) is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        delay = min(delay * 2, remaining, LONGEST_DELAY)
        time.sleep(delay)
    return end


def _collect(process: subprocess.Popen[bytes], flags: int, floor: int | None) -> Exit | None:
    """The process's end, collected now; None while it runs. A process whose status the system
    keeps from no one (SIGCHLD ignored) ended with 0 as far as anyone knows, as ``Popen`` says;
    one whose status ``Popen`` collected meanwhile keeps what it collected."""
    if process.returncode is not None:
        return Exit(process.returncode)
    try:
        pid, status, usage = os.wait4(process.pid, flags)
    except ChildProcessError:
        if process.returncode is None:
            process.returncode = 0
        return Exit(process.returncode)
    if pid != process.pid:
        return None
    process.returncode = os.waitstatus_to_exitcode(status)
    peak = usage.ru_maxrss * 1024
    return Exit(process.returncode, None if floor is None else Memory(peak, peak > floor))


def ended(process: subprocess.Popen[bytes]) -> bool:
    """Whether the process ended, its status collected or not, asked without collecting it
    (where peaks are not measured, ``Popen.poll`` collects it: nothing is lost)."""
    if not MEASURED or process.returncode is not None:
        return process.poll() is not None
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True
