"""A local trial's checkpoint folder under population-based training: made before its attempt
starts, as a copy of its parent's folder (empty for a trial of no parent), and the attempt
told where it is (:mod:`functions.core.checkpoints`).

The copy is made beside the folder (``.N.partial``) and renamed to it once whole, so a folder
that exists is complete: a launch delivered twice, or a later attempt of the trial, finds it
and copies nothing (the trial resumes from what it saved, as a Katib trial's restarted pod
finds its volume), and a copy cut short by a crash is made again from the start. A local trial
runs as the service's user and can plant links: no link below the log folder is followed on
the way to the study's checkpoints folder, nor at a trial's folder, nor in the parent's folder
(:mod:`.local_checkpoint_copies`, which keeps each file's mode). A refusal is a
:class:`~functions.core.errors.RefusedFile`, which fails the trial with its reason (the study
goes on); a parent's folder refused says so (:func:`~functions.core.checkpoints.refused_copy`),
and population-based training runs no such child again, as the same copy would be refused
again; a full disk is a :class:`~functions.core.errors.StorageFull`.

The path the study names is replaced in the attempt's command and environment without I/O
(:func:`told_where`), where the launch is made, inside its handling's write transaction; the
copy itself (:func:`made`, up to ``KATUNA_MAX_CHECKPOINT`` bytes) is made by the executor's
worker thread, after that transaction, before the attempt's process starts, and stops between
files and chunks once the attempt is stopped (:class:`~functions.adapters.local_checkpoint_copies.CopyStopped`).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

from functions.adapters import process_tree
from functions.adapters.local_checkpoint_copies import Budget, copied, never
from functions.adapters.local_outputs import disk_full, full, open_folder
from functions.core.checkpoints import FOLDER, Checkpoint, refused_copy, told
from functions.core.errors import LogsUnavailable, RefusedFile
from functions.core.launch import TrialLaunch

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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


def made(log_dir: Path, checkpoint: Checkpoint, max_bytes: int, cancelled: Callable[[], bool] = never,
         copier: str = "") -> Path:
    """The trial's checkpoint folder, made (a copy of its parent's, the folder of that name
    beside it) unless it exists; :class:`~functions.adapters.local_checkpoint_copies.CopyStopped` once ``cancelled()`` says so, before the
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
                _make(folder, own.name, parent, Budget(Path(parent or own.name), max_bytes, cancelled=cancelled),
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
        folder = _reached(log_dir, Path(log_folder))
        if folder is None:
            return False
        try:
            os.stat(FOLDER, dir_fd=folder, follow_symlinks=False)
            process_tree.end_study(uid)
            _clear(folder, FOLDER)
            return True
        finally:
            os.close(folder)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return False
        raise LogsUnavailable(f"cannot delete the study's checkpoints {log_dir / log_folder / FOLDER}: "
                              f"{exc.strerror or exc}; the study is kept, and deleting it again deletes them") from exc


def pruned(base: Path, study: Path, numbers: Sequence[int]) -> list[int]:
    """Delete the checkpoint folders of the trials ``numbers`` from the study's folder of them,
    ``study`` under ``base`` (a local study's ``<log folder>/checkpoints`` under the logs folder;
    a study's uid on the claim), which no later trial can copy
    (:func:`~functions.core.pbt.never_copied`): the numbers of those that were there. Safe to
    repeat (a folder gone is nothing to do). No link below ``base`` is followed: one on the way
    to the study's folder leaves them all, as nothing katuna made is behind it; a link in a
    folder is deleted, not followed. An ``OSError`` where one cannot be deleted (those before
    it are gone)."""
    folder = _reached(base, study)
    if folder is None:
        return []
    try:
        return [number for number in numbers if _gone(folder, str(number))]
    finally:
        os.close(folder)


def _reached(base: Path, below: Path) -> int | None:
    """The folder ``below`` under ``base`` opened, following no link below ``base``; None where
    it is not there, or a link or a file is on the way."""
    try:
        folder = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        for part in below.parts:
            inner = os.open(part, _DIRECTORY, dir_fd=folder)
            os.close(folder)
            folder = inner
    except (FileNotFoundError, NotADirectoryError):
        os.close(folder)
        return None
    except OSError as exc:
        os.close(folder)
        if exc.errno == errno.ELOOP:
            return None
        raise
    return folder


def _gone(folder: int, name: str) -> bool:
    """Whether ``name`` was in ``folder``, deleted now (following no link)."""
    try:
        os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return False
    _clear(folder, name)
    return True


def removed(parent: Path, name: str) -> bool:
    """Delete ``name`` from the folder ``parent`` (a folder with all in it, a file, a link),
    following no link: whether it was there. Safe to repeat; an ``OSError`` when it cannot be."""
    folder = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _gone(folder, name)
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


def _make(folder: int, name: str, parent: str | None, budget: Budget, copier: str) -> None:
    """The folder ``name`` in ``folder``, made whole: a copy of ``parent`` (in ``folder`` too)
    made as ``.name.partial`` (``.name.partial.<copier>``) within ``budget``, then renamed; an
    empty folder is made in place, with ``mkdir``, which replaces nothing."""
    partial = f".{name}.partial" + (f".{copier}" if copier else "")
    _clear(folder, partial)
    try:
        if parent is not None:
            try:
                copied(folder, parent, partial, budget)
            except RefusedFile as exc:
                raise RefusedFile(refused_copy(name, str(exc))) from exc
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


