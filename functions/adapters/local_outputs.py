"""Where a local trial attempt's output goes, and how what it leaves is read back.

Output (stdout and stderr) goes to a per-attempt log file, made new for each attempt and
readable by the service's user only. The log, a metrics file the attempt writes, or a folder of
TensorFlow event files (:mod:`functions.core.tfevents`) are read back as lines, in chunks, so
memory stays bounded however long a line; each only once it proved a trial's file, not one
of the service's own that a link led to. Kept apart from
:mod:`functions.adapters.local_executor`, which runs and stops attempts: this is their files only.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import BinaryIO

from functions.adapters import trial_files
from functions.core import tfevents
from functions.core.errors import StorageFull
from functions.core.launch import TrialLaunch
from functions.core.lines import bounded_lines

CHUNK = 64 * 1024
"""Bytes read at a time from a trial's output."""


def new_log(path: Path, log_dir: Path) -> BinaryIO:
    """The attempt's log at ``path`` under ``log_dir``, new and readable by the service's user
    only (a trial's output may hold what its author would not show other users of the machine),
    in new folders only that user can enter; folders that exist keep their permissions."""
    try:
        try:
            return _new_file(path)
        except FileNotFoundError:
            for folder in reversed((path.parent, *path.parent.parents)):
                if not folder.exists():
                    folder.mkdir(mode=0o700, exist_ok=True)
            return _new_file(path)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull(f"the disk holding the trial logs {log_dir} is full; "
                              "trials start again once space is freed there") from exc
        raise


def _new_file(path: Path) -> BinaryIO:
    """``path`` opened for writing, emptied, or created readable by this user only."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


def read_file(launch: TrialLaunch, path: str) -> Iterator[str]:
    """The lines of a file the attempt wrote (``path`` from its working directory); a folder
    is read as TensorFlow event files, a JSON record a line. Only a trial's files are read
    (:mod:`functions.adapters.trial_files`): anything else is a :class:`RefusedFile`."""
    target = Path(launch.working_dir) / path
    if target.is_dir():
        try:
            directory = trial_files.real_directory(target)
        except FileNotFoundError:
            return
        records = tfevents.directory_records(directory, trial_files.open_file)
        yield from (json.dumps(record) for record in records)
    else:
        yield from lines(target)


def lines(path: Path) -> Iterator[str]:
    """The file's lines, read in chunks: however long a line, memory stays bounded. The file
    must be a trial's (:mod:`functions.adapters.trial_files`), whatever link its path became."""
    try:
        with trial_files.open_file(path) as handle:
            yield from bounded_lines(iter(partial(handle.read, CHUNK), b""))
    except FileNotFoundError:
        return
