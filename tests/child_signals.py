"""What a child process is started with, so that a test's signals reach it as a user's would."""

from __future__ import annotations

import signal


def interruptible() -> None:
    """Ctrl-C reaches the child even where the tests run with SIGINT ignored (a background job
    of a shell), which the child would otherwise inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
