"""The signals that end a ``katuna run`` early, each handled as Ctrl-C is.

Ctrl-C (SIGINT), ``kill`` (SIGTERM: also ``timeout(1)`` and most CI timeouts) and a hang-up
(SIGHUP: the terminal closed) all mean "stop now". Trials run in sessions of their own, so none
of these reaches them: left at their defaults, SIGTERM and SIGHUP would end ``katuna run`` at
once and leave its trials running unattended, their results never recorded. Here the first of
them raises :class:`Interrupted` in the main thread, so the run stops its trials and says how to
resume; any later one, while the trials are being stopped, only calls back (a second Ctrl-C must
not abort the stopping half way). A signal ignored when the run starts (``nohup``'s SIGHUP, a
background job's SIGINT) stays ignored.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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
def interruptible(again: Callable[[int], None]) -> Iterator[None]:
    """Inside, the first stopping signal raises :class:`Interrupted`; each one after it calls
    ``again(signum)`` instead, until the block is left and the former handlers are back."""
    received: list[int] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        if len(received) == 1:
            raise Interrupted(signum)
        again(signum)

    former = {sig: signal.getsignal(sig) or signal.SIG_DFL for sig in STOPPING_SIGNALS}
    for sig, handler in former.items():
        if handler is not signal.SIG_IGN:
            signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in former.items():
            if handler is not signal.SIG_IGN:
                signal.signal(sig, handler)
