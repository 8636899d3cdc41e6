"""A local trial's checkpoint folder under population-based training: made before its attempt
starts, as a copy of its parent's folder (empty for a trial of no parent), and the attempt
told where it is (:mod:`functions.core.checkpoints`).

The copy is made beside the folder (``.N.partial``) and renamed to it once whole, so a folder
that exists is complete: a launch delivered twice, or a later attempt of the trial, finds it
and copies nothing (the trial resumes from what it saved, as a Katib trial's restarted pod
finds its volume), and a copy cut short by a crash is made again from the start. A local trial
runs as the service's user and can plant links: no link below the log folder is followed on
the way to the study's checkpoints folder, nor at a trial's folder, and nothing of the
parent's folder is followed either: a link is copied as the link it is (the trial, not the
service, may follow it), each file and folder is opened by its folder's descriptor without
following links, and any other kind of file (a FIFO, a device) is refused; so is a folder of
more than ``max_bytes`` bytes (``KATUNA_MAX_CHECKPOINT``), more than
:data:`~functions.core.checkpoints.MAX_FILES` entries or folders nested more than
:data:`~functions.core.checkpoints.MAX_DEPTH` deep, and a file of it that cannot be read. A
refusal is a :class:`~functions.core.errors.RefusedFile`, which fails the trial with its reason
(the study goes on); a full disk is a :class:`~functions.core.errors.StorageFull`.

The path the study names is replaced in the attempt's command and environment without I/O
(:func:`told_where`), where the launch is made, inside its handling's write transaction; the
copy itself (:func:`made`, up to ``KATUNA_MAX_CHECKPOINT`` bytes) is made by the executor's
worker thread, after that transaction, before the attempt's process starts, and stops between
files and chunks once the attempt is stopped (:class:`CopyStopped`).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from functions.adapters import process_tree
from functions.adapters.local_outputs import disk_full, full, open_folder
from functions.core.checkpoints import FOLDER, MAX_DEPTH, MAX_FILES, Checkpoint, told
from functions.core.errors import LogsUnavailable, RefusedFile
from functions.core.launch import TrialLaunch

T = TypeVar("T")

CHUNK = 1 << 20
"""Bytes copied at a time."""
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class CopyStopped(Exception):
    """The copy was given up as ``cancelled()`` said (the attempt stopped, its executor closing):
    nothing of it is left, and the folder is not made."""


def _never() -> bool:
    return False


@dataclass
class _Budget:
    """What a copy may still take, the parent's folder it copies (for a refusal), and whether to
    give it up."""

    source: Path
    bytes_left: int
    entries_left: int = MAX_FILES
    cancelled: Callable[[], bool] = field(default=_never)

    def take(self, entries: int = 0, size: int = 0) -> None:
        if self.cancelled():
            raise CopyStopped(f"the copy of {self.source} was given up")
        self.entries_left -= entries
        self.bytes_left -= size
        if self.entries_left < 0:
            raise RefusedFile(f"the parent's checkpoint folder {self.source} holds more than {MAX_FILES:,} files "
                              f"and folders, more than katuna copies for a child trial")
        if self.bytes_left < 0:
            raise RefusedFile(f"the parent's checkpoint folder {self.source} holds more bytes than katuna copies for "
                              f"a child trial (KATUNA_MAX_CHECKPOINT)")


def told_where(launch: TrialLaunch, log_dir: Path) -> TrialLaunch:
    """``launch`` with the path its study names for its checkpoint folder replaced, in its
    command and environment, by where :func:`made` makes that folder; ``launch`` itself when it
    has none. No I/O: the folder is made later, off the handling's transaction."""
    if launch.checkpoint is None:
        return launch
    folder = str(log_dir / launch.checkpoint.folder)
    mount = launch.checkpoint.mount
    return replace(launch, argv=[told(word, mount, folder) for word in launch.argv],
                   env={name: told(value, mount, folder) for name, value in launch.env.items()})


def made(log_dir: Path, checkpoint: Checkpoint, max_bytes: int, cancelled: Callable[[], bool] = _never,
         copier: str = "") -> Path:
    """The trial's checkpoint folder, made (a copy of its parent's, the folder of that name
    beside it) unless it exists; :class:`CopyStopped` once ``cancelled()`` says so, before the
    copy is whole. A ``copier`` names this copy apart from others of the same trial that may run
    at once (two pods of one trial's Job): each copies to its own ``.N.partial.<copier>``, the
    first whole one becomes the folder and never replaces it, a copy finding it made (or its
    partial copy cleared by the one that made it) is given up as made, and the copies of the
    trial left beside it (cut short) are cleared once it is made."""
    own = log_dir / checkpoint.folder
    try:
        folder = open_folder(own, log_dir)
        try:
            if not _is_folder(folder, own):
                parent = None if checkpoint.parent is None else Path(checkpoint.parent).name
                _make(folder, own.name, parent, _Budget(Path(parent or own.name), max_bytes, cancelled=cancelled),
                      copier)
            if copier:
                _clear_copies(folder, own.name)
        finally:
            os.close(folder)
    except OSError as exc:
        if full(exc):
            raise disk_full(log_dir) from exc
        raise
    return own


def dropped(log_dir: Path, log_folder: str, uid: str) -> bool:
    """Delete the study's checkpoints (the folder :data:`~functions.core.checkpoints.FOLDER` in
    its folder of trial logs ``log_folder``, with all in it), as the study ``uid`` is deleted,
    before its record goes: whether there were any. What still runs of its trials is ended
    first, and waited for (:func:`~functions.adapters.process_tree.end_study`): a trial stopped
    as its study ended has a grace to end in, in which it may save its checkpoint, and would
    otherwise make its folder again once it was deleted, kept for good. Safe to repeat (none
    there is nothing to do), so a deletion cut short is finished by the next. No link below ``log_dir`` is followed: one on
    the way (a trial could plant it) leaves the folder as it is, as nothing katuna made is
    behind it, and a link inside is deleted, not followed. A folder that cannot be deleted (a
    trial still writing in it, a permission) is :class:`~functions.core.errors.LogsUnavailable`:
    the study is kept, for a deletion again."""
    try:
        folder = os.open(log_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        for part in Path(log_folder).parts:
            inner = os.open(part, _DIRECTORY, dir_fd=folder)
            os.close(folder)
            folder = inner
        os.stat(FOLDER, dir_fd=folder, follow_symlinks=False)
        process_tree.end_study(uid)
        _clear(folder, FOLDER)
        return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return False
        raise LogsUnavailable(f"cannot delete the study's checkpoints {log_dir / log_folder / FOLDER}: "
                              f"{exc.strerror or exc}; the study is kept, and deleting it again deletes them") from exc
    finally:
        os.close(folder)


def removed(parent: Path, name: str) -> bool:
    """Delete ``name`` from the folder ``parent`` (a folder with all in it, a file, a link),
    following no link: whether it was there. Safe to repeat; an ``OSError`` when it cannot be."""
    folder = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return False
    else:
        _clear(folder, name)
        return True
    finally:
        os.close(folder)


def _is_folder(folder: int, path: Path) -> bool:
    """Whether the trial's folder ``path`` (named in the open ``folder``) exists; anything but a
    folder there (a link a trial planted) is refused."""
    try:
        mode = os.stat(path.name, dir_fd=folder, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(mode):
        raise RefusedFile(f"{path} is not a folder (a link, say, that a trial could have planted); katuna makes a "
                          "trial's checkpoint folder only as a folder of its own")
    return True


def _make(folder: int, name: str, parent: str | None, budget: _Budget, copier: str) -> None:
    """The folder ``name`` in ``folder``, made whole: a copy of ``parent`` (in ``folder`` too)
    made as ``.name.partial`` (``.name.partial.<copier>``) within ``budget``, then renamed; an
    empty folder is made in place, with ``mkdir``, which replaces nothing."""
    partial = f".{name}.partial" + (f".{copier}" if copier else "")
    _clear(folder, partial)
    try:
        if parent is not None:
            _copy(folder, parent, partial, budget)
            if not _removed_if_empty(folder, partial):
                _settle(folder, partial, name)
                return
        os.mkdir(name, dir_fd=folder)
    except OSError:
        if not (copier and _is_folder(folder, Path(name))):
            raise
        with suppress(OSError):
            _clear(folder, partial)


def _removed_if_empty(folder: int, name: str) -> bool:
    """Whether the folder ``name`` was empty, and so is removed."""
    try:
        os.rmdir(name, dir_fd=folder)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise
    return True


def _settle(folder: int, partial: str, name: str) -> None:
    """The whole copy ``partial`` renamed to ``name``; given up where another copy made ``name``
    first: a rename replaces an empty folder, and a trial may have started in it."""
    if _is_folder(folder, Path(name)):
        _clear(folder, partial)
        return
    os.rename(partial, name, src_dir_fd=folder, dst_dir_fd=folder)


def _clear_copies(folder: int, name: str) -> None:
    """Clear the copies of the trial ``name`` beside its folder, made: cut short, or still being
    made by a copier that, its copy gone, finds the folder made."""
    for entry in os.listdir(folder):
        if entry == f".{name}.partial" or entry.startswith(f".{name}.partial."):
            with suppress(OSError):
                _clear(folder, entry)


def _clear(folder: int, name: str) -> None:
    """Remove ``name`` from ``folder`` (a copy cut short), whatever it is, following no link."""
    try:
        mode = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(name, dir_fd=folder)
    else:
        os.unlink(name, dir_fd=folder)


def _copy(folder: int, parent: str, target: str, budget: _Budget) -> None:
    """The folder ``parent`` copied to ``target`` (both in ``folder``), links as links, within
    the ``budget``; nothing of ``target`` left when it could not be."""
    try:
        source = os.open(parent, _DIRECTORY, dir_fd=folder)
    except OSError as exc:
        raise RefusedFile(f"the parent's checkpoint folder {parent} cannot be copied: "
                          f"{exc.strerror or exc} (it was moved, deleted, or replaced by a link)") from exc
    try:
        os.mkdir(target, dir_fd=folder)
        out = os.open(target, _DIRECTORY, dir_fd=folder)
        try:
            _copy_folder(source, out, budget, 0)
        finally:
            os.close(out)
    except BaseException:
        shutil.rmtree(target, dir_fd=folder, ignore_errors=True)
        raise
    finally:
        os.close(source)


@contextmanager
def _reading(budget: _Budget, name: str) -> Iterator[None]:
    """An error reading the parent's entry ``name`` as a refusal naming it: the child fails."""
    try:
        yield
    except OSError as exc:
        raise RefusedFile(f"the parent's checkpoint folder {budget.source} holds {name}, which cannot be read: "
                          f"{exc.strerror or exc}; katuna copies only what it can read for a child trial") from exc


def _read(budget: _Budget, name: str, step: Callable[[], T]) -> T:
    with _reading(budget, name):
        return step()


def _copy_folder(source: int, target: int, budget: _Budget, depth: int) -> None:
    with _reading(budget, "a folder"):
        names = [entry.name for entry in _listed(source, budget)]
    for name in names:
        _copy_entry(source, target, name, budget, depth)


def _listed(source: int, budget: _Budget) -> list[os.DirEntry[str]]:
    """The entries of the open folder ``source``, counted against the budget as they are read."""
    entries = []
    with os.scandir(source) as listing:
        for entry in listing:
            budget.take(entries=1)
            entries.append(entry)
    return entries


def _copy_entry(source: int, target: int, name: str, budget: _Budget, depth: int) -> None:
    mode = _read(budget, name, lambda: os.stat(name, dir_fd=source, follow_symlinks=False)).st_mode
    if stat.S_ISLNK(mode):
        os.symlink(_read(budget, name, lambda: os.readlink(name, dir_fd=source)), name, dir_fd=target)
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


def _copy_subfolder(source: int, target: int, name: str, budget: _Budget, depth: int) -> None:
    os.mkdir(name, dir_fd=target)
    out = os.open(name, _DIRECTORY, dir_fd=target)
    try:
        _copy_folder(source, out, budget, depth + 1)
    finally:
        os.close(out)


def _copy_file(fd: int, target: int, name: str, budget: _Budget) -> None:
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise RefusedFile(f"{budget.source} holds {name}, which changed into no regular file as it was copied")
    with os.fdopen(os.open(name, _NEW, 0o666, dir_fd=target), "wb") as out:
        while chunk := _read(budget, name, lambda: os.read(fd, CHUNK)):
            budget.take(size=len(chunk))
            out.write(chunk)
