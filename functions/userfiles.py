"""Files the CLI is given (a study, the warm-start results a study names), read one safe way.

Only a regular file is read, a symbolic link to one included: a FIFO, a device such as
``/dev/zero``, a socket or a directory is refused without blocking (the file is opened
non-blocking and checked with ``fstat`` before any read). At most ``limit`` bytes are read
(``KATUNA_MAX_BODY``, the size the service accepts as a request body), and the bytes must be
UTF-8. A failure names the file and what was expected; it never quotes the file's content.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from functions.core.errors import UnreadableFile
from functions.core.file_kinds import kind_of

CHUNK = 1 << 16
"""Bytes read at a time: a file is read in memory of its own size, whatever the limit."""


def _head(file: BinaryIO, size: int) -> bytes:
    """The first ``size`` bytes of ``file`` (all of it, when shorter), read a chunk at a time:
    one read of ``size`` bytes would take that much memory up front, and a limit set large
    (``KATUNA_MAX_BODY``) is no file's size."""
    chunks = []
    while size > 0 and (chunk := file.read(min(size, CHUNK))):
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_text(path: str, limit: int, expected: str) -> str:
    """The UTF-8 text of the regular file at ``path``, at most ``limit`` bytes long; ``expected``
    says what the file should be (``a YAML or JSON text file``) when its bytes are no text."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise UnreadableFile(f"cannot open {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnreadableFile(f"{path} is {kind_of(mode)}; expected a regular file")
        try:
            data = _head(file, limit + 1)
        except OSError as exc:
            raise UnreadableFile(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise UnreadableFile(f"{path} is larger than {limit} bytes (KATUNA_MAX_BODY); expected a smaller file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"{path} is not UTF-8 text (byte {exc.start} cannot be decoded); "
                             f"expected {expected}") from exc
