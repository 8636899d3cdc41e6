"""Stopping signals as ``katuna run`` takes them (:mod:`functions.interrupts`), in this process."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from functions.interrupts import Interrupted, interruptible
from infra.changes import Terminated, on_stopping_signals


def test_a_signal_another_thread_takes_calls_at_once_while_the_main_thread_sleeps():
    """The kernel gives a process's signal to any thread that does not block it; Python runs the
    handler on the main thread only once that thread runs again. ``at_once`` is not held up:
    here the main thread blocks SIGTERM, sleeps, and the handler never calls ``at_once``."""
    called = threading.Event()
    try:
        with pytest.raises(Interrupted), interruptible(lambda signum: None, at_once=called.set):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            os.kill(os.getpid(), signal.SIGTERM)
            called.wait(30)
            time.sleep(0.1)  # the handler runs on the main thread at last, here if not before
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    assert called.is_set()


def test_without_a_signal_at_once_is_not_called_and_the_former_handler_and_wakeup_are_back():
    called = threading.Event()
    handler, wakeup = signal.getsignal(signal.SIGTERM), _wakeup_fd()
    with interruptible(lambda signum: None, at_once=called.set):
        assert signal.getsignal(signal.SIGTERM) is not handler and _wakeup_fd() != wakeup
    assert not called.is_set()
    assert (signal.getsignal(signal.SIGTERM), _wakeup_fd()) == (handler, wakeup)


def _wakeup_fd() -> int:
    """The interpreter's signal wakeup descriptor, left as it was."""
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return fd


class _SignalledWhileFreed:
    """An object whose finalizer takes a signal: Python drops what a finalizer raises, so the
    handler's exception would end nothing (as in the import system's lock callback, which runs at
    every import, or a generator's close)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def __del__(self) -> None:
        signal.raise_signal(self.signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_whose_interruption_python_dropped_interrupts_once_that_code_is_done(signum: int):
    """A stopping signal that came while Python ran code whose exceptions it drops still ends
    the block, as one that came anywhere else does: dropped, the first signal left the run going
    with every later one taken for a repeat while it stopped (``again``), so Ctrl-C did nothing."""
    repeats: list[int] = []
    hook = sys.unraisablehook
    with pytest.raises(Interrupted) as raised, interruptible(repeats.append):
        _SignalledWhileFreed(signum)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.01)
    assert (raised.value.signum, repeats) == (signum, [])
    assert sys.unraisablehook is hook, "the hook that took the dropped interruption is gone with the block"


@pytest.mark.parametrize("signum,raised", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_the_provisioning_scripts_signal_whose_exception_python_dropped_stops_it_once_that_code_is_done(
        signum: int, raised: type[KeyboardInterrupt]):
    """``python -m infra.provision`` waits for the cloud for up to ``--timeout``: Ctrl-C or SIGTERM
    whose exception Python dropped left it waiting, where one anywhere else ends the wait."""
    handler, hook = signal.getsignal(signal.SIGTERM), sys.unraisablehook
    try:
        on_stopping_signals()
        with pytest.raises(raised):
            _SignalledWhileFreed(signum)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        signal.signal(signal.SIGTERM, handler)
        sys.unraisablehook = hook
