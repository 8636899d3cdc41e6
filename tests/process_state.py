"""What a command's entry point sets for its whole process, kept around each test
(``tests/conftest.py``): a test that runs a command in the test process (click's ``CliRunner``)
leaves the next test of that process none of it.

A command owns its process: ``katuna``'s CLI installs its terminal log handler on the root
logger and sets katuna's log level (:func:`functions.adapters.log_lines.for_terminal`), a study
run sets Optuna's verbosity, and the provisioning script sets its SIGTERM handler and a hook of
the exceptions Python drops that sends a dropped Ctrl-C to the process again
(:func:`infra.changes.on_stopping_signals`); a library a command imports may set variables of the
process's environment (``katuna optuna-dashboard`` imports scikit-learn, which sets
``KMP_DUPLICATE_LIB_OK`` and ``KMP_INIT_AT_FORK``, then inherited by every process a later test
starts with ``os.environ``). Left set, each later test of the same pytest process ran with them,
in whatever order the tests were dealt out. The working directory too must be the one the test
started in; a test that changes it (rather than with ``contextlib.chdir``) fails."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import optuna

STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
LOGGERS = ("", "katuna")
"""The root logger and katuna's, whose levels a command sets."""
PYTESTS_VARIABLE = "PYTEST_CURRENT_TEST"
"""pytest's own variable, which it changes at each phase of a test."""


@contextmanager
def kept() -> Iterator[None]:
    """Put back, on the way out, the stopping signals' handlers, the hook of dropped exceptions,
    the root logger's handlers, the levels of :data:`LOGGERS` and of Optuna's logging and the
    environment; fail where the working directory changed."""
    handlers = {sig: signal.getsignal(sig) for sig in STOPPING}
    hook = sys.unraisablehook
    root = list(logging.getLogger().handlers)
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    verbosity = optuna.logging.get_verbosity()
    cwd = os.getcwd()
    environment = dict(os.environ)
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            if handler is not None and signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)
        sys.unraisablehook = hook
        _put_back_handlers(root)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        optuna.logging.set_verbosity(verbosity)
        _put_back_environment(environment)
    assert os.getcwd() == cwd, f"the test left the working directory {os.getcwd()}, not {cwd}"


def _put_back_handlers(kept_handlers: list[logging.Handler]) -> None:
    """Remove the root logger's handlers added since (a command's), and add back those removed;
    pytest's own, which it adds and removes around each phase of a test, are left to it."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler not in kept_handlers and not _pytests(handler):
            root.removeHandler(handler)
            handler.close()
    for handler in kept_handlers:
        if handler not in root.handlers and not _pytests(handler):
            root.addHandler(handler)


def _put_back_environment(environment: dict[str, str]) -> None:
    """Unset the variables set since, and set again those changed or unset (but pytest's own)."""
    for name in set(os.environ) - set(environment) - {PYTESTS_VARIABLE}:
        del os.environ[name]
    for name, value in environment.items():
        if name != PYTESTS_VARIABLE and os.environ.get(name) != value:
            os.environ[name] = value


def _pytests(handler: logging.Handler) -> bool:
    return type(handler).__module__.startswith("_pytest.")
