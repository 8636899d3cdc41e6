"""What a path that is not a regular file is, in words, for a refusal naming it: a directory, a
FIFO or a device given where a study file or a database file was expected."""

from __future__ import annotations

import stat

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def kind_of(mode: int) -> str:
    """What a file of ``mode`` (``st_mode``) is: ``a directory``, ``a FIFO``, ...; ``not a
    regular file`` for any other kind."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")
