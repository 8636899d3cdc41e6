"""A local attempt's end, recorded beside its log once its process ended on its own, or once
katuna ended it by stopping itself.

The end of an attempt is reported as an event, and handled by reading its log. A katuna process
that stops while that handling reads the log (an interrupted ``katuna run``, a ``katuna serve``
worker stopping) gives it up, and the event goes with the process; the attempt had ended, its
log and exit status whole. So the executor records the exit status beside the log (in the
study's :data:`ENDS`) before it reports the end, for an attempt whose process ended without katuna
stopping or killing it (past its timeout excepted, which katuna reports as such): when the
study resumes, such an attempt is recorded from its log instead of run again. An attempt that
katuna killed because its own process was stopping (an interrupted ``katuna run``, a worker shut
down) is recorded as ``interrupted``: the resume runs it again, and that run does not count
against ``trialTemplate.maxAttempts`` (up to :data:`~functions.core.disruptions.INTERRUPTIONS`
attempts beyond it), as the trial lost nothing of its own. An attempt without
a record, or with one katuna cannot read as its own, is lost as before.

The records of a study's attempts are lines appended to one file in its log folder
(:data:`ENDS`), each a JSON object stamped with its attempt (its study's uid, trial and attempt)
and preceded by a newline, so a line cut short (a full disk) never spoils the next; the last
line of an attempt is its record, looked for from the file's end. An append is one ``write`` to
a file that exists, where a file of its own per attempt cost a new inode on every trial (0.3–0.6
ms of CPU on a fresh folder of an ext4 disk). The file is written and read as the log is, never
through a link a trial planted (:func:`functions.adapters.local_outputs.open_folder`), and only
while it is a regular file of one name. A record of an earlier release (``<trial>.<attempt>.exit``,
a file of its own) is still read where the file has none.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from functions.adapters import local_outputs
from functions.adapters.local_exits import Memory
from functions.core.launch import TrialLaunch

ENDS = "ends.jsonl"
"""The file of a study's log folder that the ends of its attempts are appended to."""
SUFFIX = ".exit"
"""An earlier release's record, a file of its own: the log's name with this suffix."""
MAX_BYTES = 4096
"""The most of a record read: katuna writes a hundred bytes or so."""
SCANNED = 64 << 20
"""The most of :data:`ENDS` looked through, from its end, for an attempt's record: hundreds of
thousands of records."""
CHUNK = 64 * 1024
"""Bytes of :data:`ENDS` read at a time."""
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def ends(log: Path) -> Path:
    """The file the end of the attempt logging to ``log`` is appended to."""
    return log.with_name(ENDS)


def path(log: Path) -> Path:
    """Where an earlier release recorded the end of the attempt logging to ``log``."""
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
    """Record how the attempt ended, a line appended to :data:`ENDS`; raises :class:`OSError`
    (or :class:`RefusedFile`) when it cannot be written."""
    memory = {} if end.memory is None else {"peakMemory": end.memory.peak, "peakExact": end.memory.exact}
    line = b"\n" + json.dumps({**_stamp(launch), "exitCode": end.code, "timedOut": end.timed_out,
                               "interrupted": end.interrupted, **memory}).encode()
    target = ends(log)
    folder = local_outputs.open_folder(target, log_dir)
    try:
        fd = local_outputs.own_file(folder, target, _APPEND, "end record")
    finally:
        os.close(folder)
    try:
        if os.write(fd, line) != len(line):
            raise OSError(f"{target}: the record of an attempt's end was written in part")
    finally:
        os.close(fd)


def recorded(log: Path, launch: TrialLaunch) -> End | None:
    """The end recorded for this very attempt (its study's uid, trial and attempt): its last
    line in :data:`ENDS`, else an earlier release's record; None without a record katuna can
    read as its own. A peak memory is read where the record has a whole one (records of older
    releases have none)."""
    data = _appended(ends(log), launch)
    if data is None:
        data = local_outputs.read_record(path(log), launch, MAX_BYTES)
    if data is None:
        return None
    code, timed_out, interrupted = data.get("exitCode"), data.get("timedOut"), data.get("interrupted", False)
    if type(code) is not int or type(timed_out) is not bool or type(interrupted) is not bool:
        return None
    peak, exact = data.get("peakMemory"), data.get("peakExact")
    memory = Memory(peak, exact) if type(peak) is int and peak >= 0 and type(exact) is bool else None
    return End(code, timed_out, interrupted, memory)


def _stamp(launch: TrialLaunch) -> dict[str, Any]:
    return {"uid": launch.uid, "trial": launch.number, "attempt": launch.attempt}


def _appended(target: Path, launch: TrialLaunch) -> dict[str, Any] | None:
    """The attempt's last record in the file ``target``, read only while it is a regular file
    of one name and not a link; None without one katuna can read as the attempt's own."""
    try:
        fd = os.open(target, _READ)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        held = os.fstat(fd)
        if not stat.S_ISREG(held.st_mode) or held.st_nlink != 1:
            return None
        line = _last_line(handle, held.st_size, json.dumps(_stamp(launch))[:-1].encode() + b", ")
    try:
        data = json.loads(line) if line is not None and len(line) <= MAX_BYTES else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or any(data.get(key) != value for key, value in _stamp(launch).items()):
        return None
    return data


def _last_line(handle: BinaryIO, size: int, prefix: bytes) -> bytes | None:
    """The last line of the open file (``size`` bytes) that begins with ``prefix``, looked for
    a chunk at a time from its end, through its last :data:`SCANNED` bytes at most. Of the bytes
    before a chunk's first newline only as many are kept as could begin a line that matches:
    a line longer than a chunk is no record."""
    position, carried = size, b""
    while position > 0 and size - position < SCANNED:
        start = max(0, position - CHUNK)
        handle.seek(start)
        block = (b"\n" if start == 0 else b"") + handle.read(position - start) + carried
        position = start
        found = block.rfind(b"\n" + prefix)
        if found >= 0:
            return block[found + 1:].split(b"\n", 1)[0]
        first = block.find(b"\n")
        carried = block[:first] if 0 <= first <= MAX_BYTES else block[:len(prefix)]
    return None
