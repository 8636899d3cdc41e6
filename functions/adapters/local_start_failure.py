"""What kept a local trial's process from starting, in words for its log and its end: the
error, and where every trial of the template would meet it (a program or working directory
that is missing or cannot be run), that cause (:mod:`functions.core.start_failures`).

Kept apart from the attempts' steps: it reads only the launch and the error.
"""

from __future__ import annotations

import errno

from functions.core import start_failures
from functions.core.launch import TrialLaunch

TEMPLATES_FAULTS = frozenset({errno.ENOENT, errno.EACCES, errno.ENOEXEC, errno.ENOTDIR, errno.ELOOP, errno.EISDIR})
"""Errors of starting a process that its program or working directory causes, which every
trial of the template meets; others (no memory or processes left to fork, an argument list too
long for a parameter's value, a script still being written) may not come again."""

EXPECTED_FAILURES = (OSError, ValueError)
"""What starting a process raises for the system's reasons or an argument it cannot take (a NUL
character); any other error is unforeseen, and fails the attempt all the same."""


def start_failure(launch: TrialLaunch, exc: Exception) -> tuple[str, str | None]:
    """What kept the attempt from starting, and its cause where it is the template's
    (:mod:`functions.core.start_failures`): the working directory when entering it failed
    (``subprocess`` names it as the error's file), otherwise the program. An error other than
    the system's or a bad argument's (:data:`EXPECTED_FAILURES`) is named with its type, as
    nothing katuna checked foresaw it."""
    reason = str(getattr(exc, "strerror", None) or exc)
    if not isinstance(exc, EXPECTED_FAILURES):
        reason = f"{type(exc).__name__}: {reason}"
    templates = isinstance(exc, OSError) and exc.errno in TEMPLATES_FAULTS
    if isinstance(exc, OSError) and exc.filename == launch.working_dir and launch.argv[0] != launch.working_dir:
        return (f"{launch.argv[0]!r}: working directory {launch.working_dir!r}: {reason}",
                start_failures.directory_cause(launch.working_dir, reason) if templates else None)
    return f"{launch.argv[0]!r}: {reason}", start_failures.program_cause(launch.argv[0], reason) if templates else None
