"""What a local attempt's metrics file or event folder held before the attempt started, recorded
beside its log (``<trial>.<attempt>.mark``), so that only what the attempt wrote is read.

Katib, and katuna on Kubernetes, mount an empty volume where a trial's collector reads: a pod's
metrics file holds its own lines alone. A local trial writes where its path says, on the machine
katuna runs on, where earlier trials wrote too: Katib's ``/katib/mnist.log`` is one file for every
trial of every study run here, and each appends to it. Read whole, a trial's metrics would be an
earlier trial's. So as the attempt starts, katuna records how far the file went (its inode and
size, and a digest of the bytes before that size), or which files the event folder held, and
reads only what came after: a file the attempt replaced or wrote anew (another inode, a shorter
file, other bytes before that size) is read whole, and of a folder, the files it added.
An attempt without a record katuna can read as its own has its file read whole, as before.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO, NamedTuple

from functions.adapters import local_outputs, trial_files
from functions.core import tfevents
from functions.core.errors import RefusedFile
from functions.core.launch import TrialLaunch

SUFFIX = ".mark"
"""The record's name is the log's with this suffix."""
MAX_BYTES = 4 << 20
"""The most of a record read."""
TAIL = 64 * 1024
"""The most bytes before the mark's size that its digest covers."""


class Mark(NamedTuple):
    """Where the attempt's metrics file stood when it started (``inode`` None: there was none),
    with the ``digest`` of its last bytes then, or the ``files`` its event folder held."""

    inode: int | None = None
    size: int = 0
    digest: str = ""
    files: frozenset[str] = frozenset()

    def offset(self, handle: BinaryIO) -> int:
        """Where the attempt's own lines begin in the open file: past what it held, where it is
        that file still, grown from it; else at its start."""
        held = os.fstat(handle.fileno())
        if held.st_ino != self.inode or held.st_size < self.size:
            return 0
        return self.size if _digest(handle, self.size) == self.digest else 0


def _digest(handle: BinaryIO, size: int) -> str:
    """The digest of the (at most :data:`TAIL`) bytes before ``size``."""
    start = max(size - TAIL, 0)
    handle.seek(start)
    return hashlib.sha256(handle.read(size - start)).hexdigest()


def taken(launch: TrialLaunch) -> Mark | None:
    """What the attempt's metrics file or event folder holds now; None without one, or for a
    folder of more files than are read (:data:`~functions.core.tfevents.MAX_FILES`: its walk
    stops at the next one, and its read is refused)."""
    if launch.metrics_file is None:
        return None
    target = Path(launch.working_dir) / launch.metrics_file
    if launch.metrics_events:
        try:
            files = tfevents.event_files(str(target), tfevents.MAX_FILES)
        except tfevents.TooManyFiles:
            return None
        return Mark(files=frozenset(os.path.relpath(file, target) for file in files))
    try:
        with trial_files.open_file(target) as handle:
            held = os.fstat(handle.fileno())
            return Mark(held.st_ino, held.st_size, _digest(handle, held.st_size))
    except (OSError, RefusedFile):
        return Mark()


def record(log: Path, log_dir: Path, launch: TrialLaunch, mark: Mark) -> None:
    """Record the attempt's mark; raises :class:`OSError` (or :class:`RefusedFile`) when it cannot be written."""
    local_outputs.write_record(log.with_suffix(SUFFIX), log_dir, launch, {
        "inode": mark.inode, "size": mark.size, "digest": mark.digest, "files": sorted(mark.files)})


def recorded(log: Path, launch: TrialLaunch) -> Mark | None:
    """The mark recorded for this very attempt; None without one katuna can read as its own."""
    data = local_outputs.read_record(log.with_suffix(SUFFIX), launch, MAX_BYTES)
    if data is None:
        return None
    inode, size, digest, files = data.get("inode"), data.get("size"), data.get("digest"), data.get("files")
    if not (inode is None or type(inode) is int) or type(size) is not int or not isinstance(digest, str) \
            or not isinstance(files, list) or not all(isinstance(name, str) for name in files):
        return None
    return Mark(inode, size, digest, frozenset(files))
