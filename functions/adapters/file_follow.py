"""A file another process is writing, read as it grows: the File collector's metrics file of a
local trial, followed while the trial runs so that early stopping judges its reports then, as
Katib's collector follows the file in the trial's pod.

The file is polled: it may not exist yet (it is opened once it does), it grows, and it may be
truncated or replaced (then it is read again from its start, as a file written anew). Only
complete lines are given while the writer runs; once ``ended()`` says the writer is done, the
file is read one last time, and a last line without its line break is given too. Only a
trial's file is read (:mod:`functions.adapters.trial_files`): one a link turned into another
(``/proc/self/environ``) ends the following with :class:`functions.core.errors.RefusedFile`.
``katuna logs -f`` reads a trial's log so too (:class:`GrowingFile`, :mod:`functions.log_follow`).
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
    attempt started (:class:`GrowingFile`)."""
    with GrowingFile(path, mark) as growing:
        while True:
            last = ended()
            yield from growing.read()
            if last:
                return
            sleep(poll)


class GrowingFile:
    """A file another process writes, read a part at a time as it grows: opened once it exists
    (from where a ``mark`` says the attempt's lines begin), and read again from its start
    where it was truncated or replaced, after a line break, so that a line cut short by the
    truncation does not run into the new first line. A file that is no trial's raises
    :class:`RefusedFile` (:mod:`functions.adapters.trial_files`)."""

    def __init__(self, path: Path, mark: Mark | None = None) -> None:
        self.path = path
        self._mark = mark
        self._handle: BinaryIO | None = None

    @property
    def opened(self) -> bool:
        """Whether the file was there to open (a read opens it once it is)."""
        return self._handle is not None

    def read(self) -> Iterator[bytes]:
        """What was written since the last read, :data:`CHUNK` bytes at a time; nothing while
        the file is not there."""
        if self._handle is not None and _rewritten(self._handle, self.path):
            self.close()
            self._mark = None
            yield b"\n"
        self._handle = self._handle or _open(self.path, self._mark)
        if self._handle is not None:
            yield from iter(partial(self._handle.read, CHUNK), b"")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> GrowingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
