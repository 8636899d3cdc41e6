"""A process's state and parent, as ``/proc/<pid>/stat`` gives them. Its name comes first, in
parentheses, and may itself hold spaces and parentheses: the fields are read after its last ``)``."""

from __future__ import annotations

import os
from pathlib import Path


def _fields(pid: int | str) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def state(pid: int | str) -> str | None:
    """The process's state (``R``, ``S``, ``T`` when stopped, ``Z`` a zombie, ...); None once
    it is gone."""
    try:
        return _fields(pid)[0]
    except (FileNotFoundError, ProcessLookupError):  # gone before its file was opened, or while it was read
        return None


def alive(pid: int | str) -> bool:
    """Whether the process runs: neither gone nor a zombie waiting for its parent to reap it."""
    return state(pid) not in (None, "Z")


def parent_of(pid: int | str) -> int:
    """The process's parent (FileNotFoundError once it is gone)."""
    return int(_fields(pid)[1])


def working_in(folder: Path) -> list[int]:
    """This user's processes whose working directory is ``folder`` or lies within it."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:  # gone, or another user's
            continue
        if cwd == folder or folder in cwd.parents:
            found.append(int(entry.name))
    return found
