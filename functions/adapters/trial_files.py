"""Files a local trial leaves, opened by the service only where they are a trial's files.

The service reads back what a local trial leaves (its log, its metrics file, its TensorFlow event
files) in its own process. The trial, which runs as the service's user, can make any of those
paths a link, and a path the study names can lead anywhere: opened by the service,
``/proc/self/environ`` is the service's own environment, which its trials may not read (the
service is not dumpable). So what was opened is checked before a byte is read, whatever led to
it: it must be of the kind expected (a regular file; a directory for event files), and its real
path, as the kernel names the open file (``/proc/self/fd/N``), must lie outside the system's
folders (:data:`functions.core.system_paths.SYSTEM_ROOTS`) and still name that same file (not a
file deleted or with no name, such as another process's open file reached through a link).
A file is opened without blocking, so a FIFO does not hold the reading thread. A refusal is a
:class:`RefusedFile` naming the path, where it led and why, never the file's content.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from functions.core.errors import RefusedFile
from functions.core.system_paths import SYSTEM_ROOTS, system_root

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def open_file(path: Path | str) -> BinaryIO:
    """The regular file at ``path``, opened for reading once it proved a trial's file."""
    fd = os.open(path, _FLAGS)
    try:
        _check(fd, str(path), stat.S_ISREG, "a regular file")
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def real_directory(path: Path | str) -> str:
    """The real path of the directory at ``path``, once it proved a trial's directory: the files
    under it are then each opened with :func:`open_file`."""
    fd = os.open(path, _FLAGS | os.O_DIRECTORY)
    try:
        return _check(fd, str(path), stat.S_ISDIR, "a directory")
    finally:
        os.close(fd)


def _check(fd: int, path: str, kind: Callable[[int], bool], expected: str) -> str:
    """The real path of ``fd`` opened at ``path``; :class:`RefusedFile` unless it is ``expected``,
    outside the system's folders; ENOENT if it no longer has that name (deleted or renamed while
    opened, or reached through another process's open file)."""
    held = os.fstat(fd)
    if not kind(held.st_mode):
        found = next((name for test, name in _KINDS if test(held.st_mode)), "not a regular file")
        raise RefusedFile(f"{path} is {found}; katuna reads {expected} there")
    real = _real_path(fd, path)
    root = system_root(real)
    if root is not None:
        raise RefusedFile(f"{path} leads to {real}, under {root}: katuna reads no file under "
                          f"{', '.join(SYSTEM_ROOTS)} for a trial (there lie the service's own process, the "
                          f"kernel's and the machine's devices, never a trial's output)")
    try:
        named = os.stat(real, follow_symlinks=False)
    except OSError:
        named = None
    if named is None or (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino):
        raise FileNotFoundError(errno.ENOENT, "the file opened has no name of its own any more", path)
    return real


def _real_path(fd: int, path: str) -> str:
    """The path the kernel gives the open file (every link resolved, the one actually opened);
    without ``/proc`` (not Linux), the path's own resolution."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)
