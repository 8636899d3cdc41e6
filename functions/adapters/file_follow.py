"""A file another process is writing, read as it grows: the File collector's metrics file of a
local trial, followed while the trial runs so that early stopping judges its reports then, as
Katib's collector follows the file in the trial's pod.

The file is polled: it may not exist yet (it is opened once it does), it grows, and it may be
truncated or replaced (then it is read again from its start, as a file written anew). Only
complete lines are given while the writer runs; once ``ended()`` says the writer is done, the
file is read one last time, and a last line without its line break is given too. Only a
trial's file is read (:mod:`functions.adapters.trial_files`): one a link turned into another
(``/proc/self/environ``) ends the following with :class:`functions.core.errors.RefusedFile`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from functions.adapters import trial_files
from functions.core.lines import bounded_lines

if TYPE_CHECKING:
    from functions.adapters.local_marks import Mark

POLL_SECONDS = 0.2
"""How often the file is looked at while its writer runs."""

CHUNK = 64 * 1024
"""Bytes read at a time."""


def follow(path: Path, ended: Callable[[], bool], poll: float = POLL_SECONDS,
           sleep: Callable[[float], None] = time.sleep, mark: Mark | None = None) -> Iterator[str]:
    """The lines (each with its ``\\n``) of the file at ``path`` as they are written, until
    ``ended()`` and the file's last bytes are read; memory stays bounded however long a line.
    With a ``mark``, the lines the file held before the attempt started are passed over."""
    return bounded_lines(_chunks(path, ended, poll, sleep, mark))


def _chunks(path: Path, ended: Callable[[], bool], poll: float,
            sleep: Callable[[float], None], mark: Mark | None) -> Iterator[bytes]:
    """The file's bytes as they are written, from the ``mark`` of the file it was when the
    attempt started; a line break before a read from the start again, so that a line cut short
    by a truncation does not run into the new first line."""
    handle: BinaryIO | None = None
    try:
        while True:
            last = ended()
            if handle is not None and _rewritten(handle, path):
                handle.close()
                handle = None
                mark = None
                yield b"\n"
            handle = handle or _open(path, mark)
            if handle is not None:
                yield from iter(partial(handle.read, CHUNK), b"")
            if last:
                return
            sleep(poll)
    finally:
        if handle is not None:
            handle.close()


def _open(path: Path, mark: Mark | None) -> BinaryIO | None:
    """The file opened (where the ``mark`` says the attempt's lines begin), or None while it
    cannot be (not written yet): it is tried again. A file that is no trial's raises
    :class:`RefusedFile` (:mod:`functions.adapters.trial_files`)."""
    try:
        handle = trial_files.open_file(path)
    except OSError:
        return None
    if mark is not None:
        handle.seek(mark.offset(handle))
    return handle


def _rewritten(handle: BinaryIO, path: Path) -> bool:
    """Whether the file was truncated below what was read, or another file took its name."""
    try:
        now = path.stat()
    except OSError:
        return False
    held = os.fstat(handle.fileno())
    return (now.st_ino, now.st_dev) != (held.st_ino, held.st_dev) or now.st_size < handle.tell()
