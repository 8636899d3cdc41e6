"""A local trial's log read in part (:class:`functions.core.log_reads.LogReads`): the file is
read at the offsets asked for, so a read costs what it returns, however large the log grew.
The log is opened only once it proved a trial's file (:mod:`functions.adapters.trial_files`);
a log with no file (not written yet, or removed) is ``LogGone``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from functions.adapters import trial_files
from functions.core.errors import LogGone
from functions.core.launch import TrialLaunch
from functions.core.lines import bounded_lines
from functions.core.live_log import LogMark
from functions.core.log_reads import LogWindow, char_start, joined, window_of
from functions.core.overwrites import overwritten_lines

CHUNK = 64 * 1024
"""Bytes read at a time."""
EDGE = 4
"""Bytes read at a cut to find where its character begins (a UTF-8 character has at most 4)."""


class LocalLogReads:
    """The logs of the attempts whose files ``log_path(launch)`` names."""

    def __init__(self, log_path: Callable[[TrialLaunch], Path]) -> None:
        self._log_path = log_path

    def ends(self, launch: TrialLaunch, head: int, tail: int, overwrite: bool = False) -> Iterator[str]:
        with _opened(launch, self._log_path(launch)) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size <= head + tail:
                yield from _lines(_chunks(handle, 0, size), overwrite)
                return
            head_end = head + _lead(handle, head)
            tail_start = size - tail + _lead(handle, size - tail)
            yield from joined(_lines(_chunks(handle, 0, head_end), overwrite), tail_start - head_end, head_end,
                              _lines(_chunks(handle, tail_start, size), overwrite), size - tail_start)

    def window(self, launch: TrialLaunch, offset: int, limit: int, mark: LogMark | None = None) -> LogWindow:
        """The file read at ``offset`` (``mark`` is of no use where the log is read at offsets)."""
        with _opened(launch, self._log_path(launch)) as handle:
            size = os.fstat(handle.fileno()).st_size
            start = max(size - limit, 0) if offset < 0 else min(offset, size)
            handle.seek(start)
            return window_of(handle.read(limit + 1), start, limit, offset < 0)


def _lines(chunks: Iterator[bytes], overwrite: bool) -> Iterator[str]:
    """The lines of ``chunks``, each ``\\r`` a line break, or with ``overwrite`` as a terminal
    shows them (:func:`~functions.core.overwrites.overwritten_lines`)."""
    return overwritten_lines(bounded_lines(chunks, returns=True)) if overwrite else bounded_lines(chunks)


def _opened(launch: TrialLaunch, path: Path) -> BinaryIO:
    """The attempt's log file, opened; ``LogGone`` when there is none."""
    try:
        return trial_files.open_file(path)
    except FileNotFoundError:
        raise LogGone(f"no log of trial {launch.number} attempt {launch.attempt} is left: its file is not in the "
                      "trial-log folder (removed, or the attempt never started)") from None


def _lead(handle: BinaryIO, at: int) -> int:
    """How many bytes from ``at`` on continue a character begun before it."""
    handle.seek(at)
    return char_start(handle.read(EDGE))


def _chunks(handle: BinaryIO, start: int, end: int) -> Iterator[bytes]:
    """The bytes from ``start`` to ``end``, a chunk at a time."""
    handle.seek(start)
    position = start
    while position < end:
        chunk = handle.read(min(CHUNK, end - position))
        if not chunk:
            return
        position += len(chunk)
        yield chunk
