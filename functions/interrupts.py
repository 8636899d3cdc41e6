"""The signals that end a ``katuna run`` early, each handled as Ctrl-C is.

Ctrl-C (SIGINT), ``kill`` (SIGTERM: also ``timeout(1)`` and most CI timeouts) and a hang-up
(SIGHUP: the terminal closed) all mean "stop now". Trials run in sessions of their own, so none
of these reaches them: left at their defaults, SIGTERM and SIGHUP would end ``katuna run`` at
once and leave its trials running unattended, their results never recorded. Here the first of
them raises :class:`Interrupted` in the main thread, so the run stops its trials and says how to
resume; any later one, while the trials are being stopped, only calls back (a second Ctrl-C must
not abort the stopping half way). A signal ignored when the run starts (``nohup``'s SIGHUP, a
background job's SIGINT) stays ignored. What must stop the moment the signal comes (a handler's
read of a trial's log) is stopped from a thread of its own, whichever thread the signal reached.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sys import UnraisableHookArgs

STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SENT_AGAIN_AFTER = 0.05
"""Seconds after which a stopping signal whose interruption Python dropped is sent again: the
code that dropped it has returned by then, and no one notices the wait."""


class Interrupted(BaseException):
    """A stopping signal arrived: like :class:`KeyboardInterrupt`, no ``except Exception`` on
    the way catches it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        """The shell's convention for a command ended by this signal: 128 + its number."""
        return 128 + self.signum


@contextmanager
def interruptible(again: Callable[[int], None], at_once: Callable[[], None] | None = None) -> Iterator[None]:
    """Inside, the first stopping signal raises :class:`Interrupted`; each one after it calls
    ``again(signum)`` instead, until the block is left and the former handlers are back.
    ``at_once()`` is called the moment the first arrives (:func:`_at_once`)."""
    with _at_once(at_once), _handled(again):
        yield


@contextmanager
def _handled(again: Callable[[int], None]) -> Iterator[None]:
    """The first stopping signal raises :class:`Interrupted`, later ones call ``again``. One whose
    :class:`Interrupted` Python dropped, having raised it in code whose exceptions it drops (a
    finalizer, a generator closed as it is freed, the import system's callback that frees a
    module's lock, run at every import), is sent again once that code is done
    (:data:`SENT_AGAIN_AFTER`): dropped, it stopped nothing, and every later signal was taken
    for a repeat while the run stopped."""
    received: list[int] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        if len(received) == 1:
            raise Interrupted(signum)
        again(signum)

    def dropped(exc: BaseException | None) -> bool:
        if not (isinstance(exc, Interrupted) and received[:1] == [exc.signum]):
            return False
        received.clear()
        send_again(exc.signum)
        return True

    former = {sig: signal.getsignal(sig) or signal.SIG_DFL for sig in STOPPING_SIGNALS}
    for sig, handler in former.items():
        if handler is not signal.SIG_IGN:
            signal.signal(sig, handle)
    restore = on_dropped(dropped)
    try:
        yield
    finally:
        restore()
        for sig, handler in former.items():
            if handler is not signal.SIG_IGN:
                signal.signal(sig, handler)


def on_dropped(take: Callable[[BaseException | None], bool]) -> Callable[[], None]:
    """Have ``take`` see first each exception Python drops (``sys.unraisablehook``), raised where
    it runs code whose exceptions it drops: a finalizer, a generator closed as it is freed, the
    import system's callback that frees a module's lock, run at every import. That is where a
    stopping signal's exception is lost, stopping nothing; ``take`` answers whether it took the
    exception (sending the signal again, :func:`send_again`, or raising it later), and one it did
    not take goes on to the hook in place before. Returns what puts that hook back."""
    former = sys.unraisablehook

    def hook(unraisable: UnraisableHookArgs) -> None:
        if not take(unraisable.exc_value):
            former(unraisable)

    sys.unraisablehook = hook

    def restore() -> None:
        sys.unraisablehook = former
    return restore


def send_again(signum: int) -> None:
    """Send this process ``signum`` once :data:`SENT_AGAIN_AFTER` has passed: a stopping signal
    whose exception Python dropped, raised where it runs code whose exceptions it drops, which
    is done by then."""
    resend = threading.Timer(SENT_AGAIN_AFTER, os.kill, (os.getpid(), signum))
    resend.daemon = True
    resend.start()


@contextmanager
def _at_once(call: Callable[[], None] | None) -> Iterator[None]:
    """Inside, ``call()`` runs on a thread of its own as soon as a stopping signal arrives.

    Python runs a signal's handler on the main thread only, and only once that thread runs: the
    kernel may give the signal to another thread (one reading a trial's log of hundreds of MB, say),
    while the main thread sleeps in a timed wait that only a signal of its own would cut short. What
    must stop at once cannot wait for that, nor for the unwinding the handler's exception starts.
    The interpreter writes each signal that has a handler to its wakeup descriptor, from whichever
    thread received it; this watches that descriptor."""
    if call is None:
        yield
        return
    readable, writable = os.pipe()
    os.set_blocking(writable, False)
    former = signal.set_wakeup_fd(writable, warn_on_full_buffer=False)
    watcher = threading.Thread(target=_watch, args=(readable, call), name="katuna-signals", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(former)
        os.close(writable)
        watcher.join()
        os.close(readable)


def _watch(readable: int, call: Callable[[], None]) -> None:
    """Call ``call()`` once, at the first stopping signal written to ``readable``; end when the
    writing end closes."""
    stopping = {int(sig) for sig in STOPPING_SIGNALS}
    called = False
    while numbers := os.read(readable, 64):
        if not called and stopping.intersection(numbers):
            called = True
            call()


@contextmanager
def loading() -> Iterator[None]:
    """Imports that Ctrl-C ends with a :class:`KeyboardInterrupt`, wherever in them it came: one
    that reaches an extension module's import (NumPy loading ``datetime``) comes out of it as an
    ``ImportError``, raised here as the interrupt it was; one that came while Python ran code
    whose exceptions it drops (the callback with which the import system frees a module's lock,
    run at every import) is raised once they are done, not lost with a traceback on stderr.
    Only where Python's own Ctrl-C handler is in place, in the main thread (a signal ignored
    stays ignored)."""
    noted: list[bool] = []

    def note(signum: int, frame: FrameType | None) -> None:
        noted.append(True)
        raise KeyboardInterrupt

    noting = (threading.current_thread() is threading.main_thread()
              and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    restore = None
    if noting:
        signal.signal(signal.SIGINT, note)
        restore = on_dropped(lambda exc: bool(noted) and isinstance(exc, KeyboardInterrupt))
    try:
        yield
    except ImportError:
        if not noted:
            raise
        raise KeyboardInterrupt from None
    finally:
        if restore is not None:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            restore()
    if noted:
        raise KeyboardInterrupt
