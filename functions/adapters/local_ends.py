"""A local attempt's end, recorded beside its log once its process ended on its own, or once
katuna ended it by stopping itself.

The end of an attempt is reported as an event, and handled by reading its log. A katuna process
that stops while that handling reads the log (an interrupted ``katuna run``, a ``katuna serve``
worker stopping) gives it up, and the event goes with the process; the attempt had ended, its
log and exit status whole. So the executor writes the exit status beside the log (``<trial>.
<attempt>.exit``) before it reports the end, for an attempt whose process ended without katuna
stopping or killing it (past its timeout excepted, which katuna reports as such): when the
study resumes, such an attempt is recorded from its log instead of run again. An attempt that
katuna killed because its own process was stopping (an interrupted ``katuna run``, a worker shut
down) is recorded as ``interrupted``: the resume runs it again, and that run does not count
against ``trialTemplate.maxAttempts`` (up to :data:`~functions.core.disruptions.INTERRUPTIONS`
attempts beyond it), as the trial lost nothing of its own. An attempt without
a record, or with one katuna cannot read as its own, is lost as before.

The record is written as the log is, never through a link a trial planted
(:func:`functions.adapters.local_outputs.open_folder`), and replaces any earlier one at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from functions.adapters import local_outputs
from functions.adapters.local_exits import Memory
from functions.core.launch import TrialLaunch

SUFFIX = ".exit"
"""The record's name is the log's with this suffix."""
MAX_BYTES = 4096
"""The most of a record read: katuna writes a hundred bytes or so."""


def path(log: Path) -> Path:
    """Where the end of the attempt logging to ``log`` is recorded."""
    return log.with_suffix(SUFFIX)


class End(NamedTuple):
    """How an attempt's main process ended: its exit ``code`` (negative: a signal), killed past
    its timeout (``timed_out``) or by katuna stopping itself (``interrupted``), and its peak
    ``memory`` where it was measured."""

    code: int
    timed_out: bool = False
    interrupted: bool = False
    memory: Memory | None = None


def record(log: Path, log_dir: Path, launch: TrialLaunch, end: End) -> None:
    """Record how the attempt ended; raises :class:`OSError` (or :class:`RefusedFile`) when it
    cannot be written."""
    memory = {} if end.memory is None else {"peakMemory": end.memory.peak, "peakExact": end.memory.exact}
    local_outputs.write_record(path(log), log_dir, launch, {"exitCode": end.code, "timedOut": end.timed_out,
                                                            "interrupted": end.interrupted, **memory})


def recorded(log: Path, launch: TrialLaunch) -> End | None:
    """The end recorded for this very attempt (its study's uid, trial and attempt); None
    without a record katuna can read as its own. A peak memory is read where the record has a
    whole one (records of older releases have none)."""
    data = local_outputs.read_record(path(log), launch, MAX_BYTES)
    if data is None:
        return None
    code, timed_out, interrupted = data.get("exitCode"), data.get("timedOut"), data.get("interrupted", False)
    if type(code) is not int or type(timed_out) is not bool or type(interrupted) is not bool:
        return None
    peak, exact = data.get("peakMemory"), data.get("peakExact")
    memory = Memory(peak, exact) if type(peak) is int and peak >= 0 and type(exact) is bool else None
    return End(code, timed_out, interrupted, memory)
