"""The copy of a parent trial's checkpoint folder for its child (population-based training),
as :func:`functions.adapters.local_checkpoints.made` makes it, locally and in the seed init
container on a cluster's claim.

Nothing of the parent's folder is followed: a link is copied as the link it is, each file and
folder is opened by its folder's descriptor without following links, and any other kind of file
(a FIFO, a device) is refused; so is a folder of more than ``max_bytes`` bytes
(``KATUNA_MAX_CHECKPOINT``), more than :data:`~functions.core.checkpoints.MAX_FILES` entries or
folders nested more than :data:`~functions.core.checkpoints.MAX_DEPTH` deep, and a file of it
that cannot be read (:class:`~functions.core.errors.RefusedFile`).

Each file and folder copied keeps its mode (permission bits; set-user-ID, set-group-ID and
sticky bits dropped), whatever the copier's umask, as Katib's ``copytree`` keeps them: a file a
trial saved readable by its own user only (``tempfile.mkstemp``'s 0600) stays so in its child's
folder. A folder's owner may always write and enter it (0700 added), so a copy cut short, or
the study's checkpoints, can be deleted. Run as root (a seed for a trial whose image's user
katuna cannot know), the copy keeps each entry's owner and group too, so the child's user owns
what its parent's did. Run as another user than the owner (katuna's image's, on a claim whose
trials are non-root), the copy cannot be given to the owner: each class of users may then do
with it what the owner could, as the child's user, unknown, is one of them.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from functions.core.checkpoints import MAX_DEPTH, MAX_FILES
from functions.core.errors import RefusedFile

T = TypeVar("T")

CHUNK = 1 << 20
"""Bytes copied at a time."""
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_PRIVATE = 0o600
"""A file's mode while it is copied, before it is given its parent's."""
_OWNER = 0o700
"""What a copied folder's owner may always do with it."""


class CopyStopped(Exception):
    """The copy was given up as ``cancelled()`` said (the attempt stopped, its executor closing):
    nothing of it is left, and the folder is not made."""


def never() -> bool:
    return False


@dataclass
class Budget:
    """What a copy may still take, the parent's folder it copies (for a refusal), and whether to
    give it up."""

    source: Path
    bytes_left: int
    entries_left: int = MAX_FILES
    cancelled: Callable[[], bool] = field(default=never)

    def take(self, entries: int = 0, size: int = 0, name: str = "") -> None:
        """Count ``entries`` and ``size`` bytes (of the file ``name``) against what is left."""
        if self.cancelled():
            raise CopyStopped(f"the copy of {self.source} was given up")
        self.entries_left -= entries
        self.bytes_left -= size
        if self.entries_left < 0:
            raise RefusedFile(f"the parent's checkpoint folder {self.source} holds more than {MAX_FILES:,} files "
                              f"and folders, more than katuna copies for a child trial")
        if self.bytes_left < 0:
            raise RefusedFile(f"the parent's checkpoint folder {self.source} holds more bytes than katuna copies for "
                              f"a child trial (KATUNA_MAX_CHECKPOINT), over it at {name}")


def copied(folder: int, parent: str, target: str, budget: Budget) -> None:
    """The folder ``parent`` copied to ``target`` (both in ``folder``), links as links, within
    the ``budget``; nothing of ``target`` left when it could not be."""
    try:
        source = os.open(parent, _DIRECTORY, dir_fd=folder)
    except OSError as exc:
        raise RefusedFile(f"the parent's checkpoint folder {parent} cannot be copied: "
                          f"{exc.strerror or exc} (it was moved, deleted, or replaced by a link)") from exc
    try:
        os.mkdir(target, _OWNER, dir_fd=folder)
        out = os.open(target, _DIRECTORY, dir_fd=folder)
        try:
            _copy_folder(source, out, budget, 0)
            _keep(out, os.fstat(source), _OWNER)
        finally:
            os.close(out)
    except BaseException:
        shutil.rmtree(target, dir_fd=folder, ignore_errors=True)
        raise
    finally:
        os.close(source)


@contextmanager
def _reading(budget: Budget, name: str) -> Iterator[None]:
    """An error reading the parent's entry ``name`` as a refusal naming it: the child fails."""
    try:
        yield
    except OSError as exc:
        raise RefusedFile(f"the parent's checkpoint folder {budget.source} holds {name}, which cannot be read: "
                          f"{exc.strerror or exc}; katuna copies only what it can read for a child trial") from exc


def _read(budget: Budget, name: str, step: Callable[[], T]) -> T:
    with _reading(budget, name):
        return step()


def _copy_folder(source: int, target: int, budget: Budget, depth: int) -> None:
    with _reading(budget, "a folder"):
        names = [entry.name for entry in _listed(source, budget)]
    for name in names:
        _copy_entry(source, target, name, budget, depth)


def _listed(source: int, budget: Budget) -> list[os.DirEntry[str]]:
    """The entries of the open folder ``source``, counted against the budget as they are read."""
    entries = []
    with os.scandir(source) as listing:
        for entry in listing:
            budget.take(entries=1)
            entries.append(entry)
    return entries


def _copy_entry(source: int, target: int, name: str, budget: Budget, depth: int) -> None:
    found = _read(budget, name, lambda: os.stat(name, dir_fd=source, follow_symlinks=False))
    mode = found.st_mode
    if stat.S_ISLNK(mode):
        os.symlink(_read(budget, name, lambda: os.readlink(name, dir_fd=source)), name, dir_fd=target)
        if _as_root():
            os.chown(name, found.st_uid, found.st_gid, dir_fd=target, follow_symlinks=False)
        return
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise RefusedFile(f"{budget.source} holds {name}, neither a file, a folder nor a link: katuna copies no "
                          f"other kind of file for a child trial")
    if stat.S_ISDIR(mode) and depth >= MAX_DEPTH:
        raise RefusedFile(f"{budget.source} holds folders nested more than {MAX_DEPTH} deep, more than katuna "
                          f"copies for a child trial")
    inner = _read(budget, name, lambda: os.open(name, _DIRECTORY if stat.S_ISDIR(mode) else _FILE, dir_fd=source))
    try:
        if stat.S_ISDIR(mode):
            _copy_subfolder(inner, target, name, budget, depth)
        else:
            _copy_file(inner, target, name, budget)
    finally:
        os.close(inner)


def _copy_subfolder(source: int, target: int, name: str, budget: Budget, depth: int) -> None:
    os.mkdir(name, _OWNER, dir_fd=target)
    out = os.open(name, _DIRECTORY, dir_fd=target)
    try:
        _copy_folder(source, out, budget, depth + 1)
        _keep(out, os.fstat(source), _OWNER)
    finally:
        os.close(out)


def _copy_file(fd: int, target: int, name: str, budget: Budget) -> None:
    found = os.fstat(fd)
    if not stat.S_ISREG(found.st_mode):
        raise RefusedFile(f"{budget.source} holds {name}, which changed into no regular file as it was copied")
    with os.fdopen(os.open(name, _NEW, _PRIVATE, dir_fd=target), "wb") as out:
        while chunk := _read(budget, name, lambda: os.read(fd, CHUNK)):
            budget.take(size=len(chunk), name=name)
            out.write(chunk)
        out.flush()
        _keep(out.fileno(), found)


def _as_root() -> bool:
    """Whether the copier runs as root, which may give a copy to its original's owner."""
    return os.geteuid() == 0


def _keep(fd: int, found: os.stat_result, always: int = 0) -> None:
    """Give the copy open at ``fd`` the permission bits of the original ``found`` (and ``always``
    those): its owner and group too, run as root; the owner's bits for every class of users,
    run as another user than the original's owner, who cannot be given the copy."""
    mode = stat.S_IMODE(found.st_mode) & 0o777
    if _as_root():
        os.fchown(fd, found.st_uid, found.st_gid)
    elif found.st_uid != os.geteuid():
        owner = mode >> 6 & 0o7
        mode |= owner << 3 | owner
    os.fchmod(fd, mode | always)
