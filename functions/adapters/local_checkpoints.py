"""A local trial's checkpoint folder under population-based training: made before its attempt
starts, as a copy of its parent's folder (empty for a trial of no parent), and the attempt
told where it is (:mod:`functions.core.checkpoints`).

The copy is made beside the folder (``.N.partial``) and renamed to it once whole, so a folder
that exists is complete: a launch delivered twice, or a later attempt of the trial, finds it
and copies nothing (the trial resumes from what it saved, as a Katib trial's restarted pod
finds its volume), and a copy cut short by a crash is made again from the start. Nothing of
the parent's folder is followed: a link is copied as the link it is (the trial, not the
service, may follow it), each file and folder is opened without following links, and any other
kind of file (a FIFO, a device) is refused; so is a folder of more than ``max_bytes`` bytes
(``KATUNA_MAX_CHECKPOINT``) or :data:`~functions.core.checkpoints.MAX_FILES` entries. A
refusal is a :class:`~functions.core.errors.RefusedFile`, which fails the trial with its reason.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass, replace
from pathlib import Path

from functions.core.checkpoints import MAX_FILES, Checkpoint, told
from functions.core.errors import RefusedFile
from functions.core.launch import TrialLaunch

CHUNK = 1 << 20
"""Bytes copied at a time."""
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass
class _Budget:
    """What a copy may still take, and the parent's folder it copies (for a refusal)."""

    source: Path
    bytes_left: int
    entries_left: int = MAX_FILES

    def take(self, entries: int = 0, size: int = 0) -> None:
        self.entries_left -= entries
        self.bytes_left -= size
        if self.entries_left < 0:
            raise RefusedFile(f"the parent's checkpoint folder {self.source} holds more than {MAX_FILES:,} files "
                              f"and folders, more than katuna copies for a child trial")
        if self.bytes_left < 0:
            raise RefusedFile(f"the parent's checkpoint folder {self.source} holds more bytes than katuna copies for "
                              f"a child trial (KATUNA_MAX_CHECKPOINT)")


def prepared(launch: TrialLaunch, log_dir: Path, max_bytes: int) -> TrialLaunch:
    """``launch`` with its checkpoint folder made, and the path its study names for it
    replaced in its command and environment; ``launch`` itself when it has none."""
    if launch.checkpoint is None:
        return launch
    folder = str(made(log_dir, launch.checkpoint, max_bytes))
    mount = launch.checkpoint.mount
    return replace(launch, argv=[told(word, mount, folder) for word in launch.argv],
                   env={name: told(value, mount, folder) for name, value in launch.env.items()})


def made(log_dir: Path, checkpoint: Checkpoint, max_bytes: int) -> Path:
    """The trial's checkpoint folder, made (a copy of its parent's) unless it exists."""
    own = log_dir / checkpoint.folder
    if own.is_dir() and not own.is_symlink():
        return own
    partial = own.with_name(f".{own.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    own.parent.mkdir(parents=True, exist_ok=True)
    if checkpoint.parent is None:
        partial.mkdir()
    else:
        _copy(log_dir / checkpoint.parent, partial, max_bytes)
    os.rename(partial, own)
    return own


def _copy(source: Path, target: Path, max_bytes: int) -> None:
    """The folder ``source`` copied to ``target``, links as links, within the bounds."""
    try:
        fd = os.open(source, _DIRECTORY)
    except OSError as exc:
        raise RefusedFile(f"the parent's checkpoint folder {source} cannot be copied: "
                          f"{exc.strerror or exc} (it was moved, deleted, or replaced by a link)") from exc
    try:
        _copy_folder(fd, target, _Budget(source, max_bytes))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        os.close(fd)


def _copy_folder(fd: int, target: Path, budget: _Budget) -> None:
    target.mkdir()
    with os.scandir(fd) as entries:
        for entry in entries:
            budget.take(entries=1)
            _copy_entry(fd, entry.name, target / entry.name, budget)


def _copy_entry(fd: int, name: str, target: Path, budget: _Budget) -> None:
    mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
    if stat.S_ISLNK(mode):
        os.symlink(os.readlink(name, dir_fd=fd), target)
        return
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise RefusedFile(f"{budget.source} holds {name}, neither a file, a folder nor a link: katuna copies no "
                          f"other kind of file for a child trial")
    inner = os.open(name, _DIRECTORY if stat.S_ISDIR(mode) else _FILE, dir_fd=fd)
    try:
        if stat.S_ISDIR(mode):
            _copy_folder(inner, target, budget)
        else:
            _copy_file(inner, target, budget)
    finally:
        os.close(inner)


def _copy_file(fd: int, target: Path, budget: _Budget) -> None:
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise RefusedFile(f"{budget.source} holds {target.name}, which changed into no regular file as it was copied")
    with open(target, "xb") as out:
        while chunk := os.read(fd, CHUNK):
            budget.take(size=len(chunk))
            out.write(chunk)
