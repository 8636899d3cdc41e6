"""The ``katuna`` command: the CLI, then an exit that does not take the interpreter apart.

A katuna process may have imported much (Optuna, the Kubernetes and cloud clients, Flask). Once
it is done, Python frees those objects one by one before it exits: up to a quarter of a second
of CPU, the more the process imported, paid by ``katuna serve`` three times over when it stops
(the arbiter and each worker). Everything an exit must do still happens, in Python's own order: non-daemon
threads are joined, every ``atexit`` handler runs (logging flushes its handlers, temporary
directories go), the standard streams are flushed. What is skipped (:func:`os._exit`) is the
freeing of memory the system takes back anyway, and the finalizers of objects still open: katuna
closes its own database connections before it ends (the last one folds the write-ahead log into
the database file, which a copy of that file alone then holds whole) and writes no file it
leaves open.

The hook is registered before the CLI is imported, so that it runs after every other ``atexit``
handler, those registered in a forked gunicorn worker included. An exit that is not a
``SystemExit`` (an interrupt that escaped, a crash) is left to Python as it was.
"""

import atexit
import os
import signal
import sys
from collections.abc import Callable
from typing import NoReturn

from functions.collector import collect_less_often
from functions.interrupts import loading

INTERRUPTED = 128 + signal.SIGINT
BROKEN_STDOUT = 120
"""Python's exit status when the standard output cannot be flushed at exit."""

_status: list[int | None] = [None]
"""The status to exit with, once the CLI has ended with a ``SystemExit``; None leaves the exit to Python."""


def main() -> None:
    """Run the CLI (``functions.cli.main``) as the ``katuna`` console script."""
    atexit.register(_exit_now)
    collect_less_often()
    cli = _loaded_cli()
    try:
        cli()
    except SystemExit as exc:
        _status[0] = exit_status(exc.code)
        raise


def _loaded_cli() -> Callable[[], object]:
    """The CLI, imported; Ctrl-C meanwhile ends the process as it ends any command
    (:func:`_interrupted_while_loading`), wherever in an import it came (:func:`loading`)."""
    try:
        with loading():
            from functions.cli import main as cli
    except KeyboardInterrupt:
        _interrupted_while_loading()
    return cli


def _interrupted_while_loading() -> NoReturn:
    """Ctrl-C while the CLI loads ends it as it ends any command, with 130 and one line, not a
    traceback from inside an import."""
    if sys.stderr is not None:
        print("\nInterrupted (SIGINT).", file=sys.stderr)
    _status[0] = INTERRUPTED
    sys.exit(INTERRUPTED)


def exit_status(code: object) -> int:
    """The process status Python gives ``SystemExit(code)``: 0 for None, the number itself,
    else 1 (Python has printed the message)."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _exit_now() -> None:
    status = _status[0]
    if status is None:
        return
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # closed before the process started (`>&-`): nothing was written, none is lost
            continue
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            if stream is sys.stdout and status == 0:
                status = BROKEN_STDOUT
    os._exit(status)
