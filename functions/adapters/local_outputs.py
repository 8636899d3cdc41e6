"""Where a local trial attempt's output goes, and how what it leaves is read back.

Output (stdout and stderr) goes to a per-attempt log file, made new for each attempt and
readable by the service's user only, never through a link a trial planted. The log, a metrics file the attempt writes, or a folder of
TensorFlow event files (:mod:`functions.core.tfevents`) are read back as lines, in chunks, so
memory stays bounded however long a line; each only once it proved a trial's file, not one
of the service's own that a link led to. Kept apart from
:mod:`functions.adapters.local_executor`, which runs and stops attempts: this is their files only.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from functions.adapters import trial_files
from functions.core import tfevent_budget, tfevents
from functions.core.errors import LogsUnavailable, RefusedFile, Stopping, StorageFull
from functions.core.launch import TrialLaunch
from functions.core.lines import bounded_lines

if TYPE_CHECKING:
    from functions.adapters.local_marks import Mark

CHUNK = 64 * 1024
"""Bytes read at a time from a trial's output."""
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
"""How a log is opened: never through a link, and without blocking, so a FIFO planted there does
not hold the launch (it is refused once opened); it is emptied only once it proved a regular file."""


def new_log(path: Path, log_dir: Path) -> BinaryIO:
    """The attempt's log at ``path`` under ``log_dir``, new and readable by the service's user
    only (a trial's output may hold what its author would not show other users of the machine),
    in new folders only that user can enter; folders that exist keep their permissions.

    A local trial runs as the service's user and can plant a link at the path of a later
    attempt's log, or of its folder: opening it would truncate whatever file the link names. So
    no link below ``log_dir`` is followed, and what was opened must be a regular file of one
    name, emptied only then; anything else is a :class:`RefusedFile` naming the path. The log of
    an attempt launched again (an event delivered twice) is simply made new again."""
    try:
        folder = open_folder(path, log_dir)
        try:
            return _new_file(folder, path)
        finally:
            os.close(folder)
    except OSError as exc:
        if full(exc):
            raise disk_full(log_dir) from exc
        raise LogsUnavailable(f"cannot write the trial log {path}: {exc.strerror or exc}; katuna needs "
                              f"to write in the trial-log folder {log_dir} (KATUNA_LOG_DIR); trials start again once "
                              "it can") from exc


def full(exc: OSError) -> bool:
    """Whether ``exc`` says the disk (or the user's quota on it) is full."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(log_dir: Path) -> StorageFull:
    """The error of a full disk under the trial-log folder: temporary, trials start again."""
    return StorageFull(f"the disk holding the trial logs {log_dir} is full; trials start again once space is freed "
                       "there")


def open_folder(path: Path, log_dir: Path) -> int:
    """The folder of ``path`` under ``log_dir`` opened (made where it is not there), no link
    below ``log_dir`` followed on the way: a :class:`RefusedFile` names one met."""
    folder = _folder(log_dir)
    try:
        for part in path.relative_to(log_dir).parts[:-1]:
            inner = _subfolder(folder, part, path)
            os.close(folder)
            folder = inner
    except BaseException:
        os.close(folder)
        raise
    return folder


def write_record(target: Path, log_dir: Path, launch: TrialLaunch, fields: dict[str, object]) -> None:
    """Write ``fields`` of the attempt as the JSON record ``target`` beside its log, stamped with
    the attempt (its study's uid, trial and attempt); see :func:`replace_record`."""
    replace_record(target, log_dir, json.dumps({"uid": launch.uid, "trial": launch.number,
                                                "attempt": launch.attempt, **fields}).encode())


def read_record(target: Path, launch: TrialLaunch, limit: int) -> dict[str, object] | None:
    """The JSON record ``target`` written for this very attempt (at most ``limit`` bytes of it
    read); None without one katuna can read as the attempt's own."""
    try:
        with trial_files.open_file(target) as handle:
            data = json.loads(handle.read(limit))
    except (OSError, RefusedFile, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or (data.get("uid"), data.get("trial"), data.get("attempt")) != (
            launch.uid, launch.number, launch.attempt):
        return None
    return data


def replace_record(target: Path, log_dir: Path, data: bytes) -> None:
    """Write ``data`` as the file ``target`` under ``log_dir`` at once (a file of its own, renamed
    over any earlier one), never through a link a trial planted; raises :class:`OSError` (or
    :class:`RefusedFile`) when it cannot be written."""
    folder = open_folder(target, log_dir)
    try:
        temporary = f".{target.name}.{secrets.token_hex(4)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temporary, target.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=folder)
            raise
    finally:
        os.close(folder)


def check_log_dir(log_dir: Path) -> None:
    """Make the trial-log folder where it is not there yet, and prove a file can be written in
    it (then removed): a :class:`LogsUnavailable` naming the folder otherwise. Checked before a
    study is stored or a service starts, as no trial could start without it. A folder of another
    user's (not root's) is refused as well: its owner could swap a study's folder in it for one of
    their own, whose files (the records of how attempts ended, checkpoints a trial loads) katuna
    and its trials would take for theirs. So is one other users may write in (``/tmp`` itself, a
    folder a team shares), where any of them could make a study's folder first, and so own it."""
    try:
        folder = _folder(log_dir)
        try:
            found = os.fstat(folder)
        finally:
            os.close(folder)
        with tempfile.TemporaryFile(dir=log_dir):
            pass
    except OSError as exc:
        raise LogsUnavailable(f"cannot use the trial-log folder {log_dir}: {exc.strerror or exc}; katuna "
                              "needs to create it and write in it (KATUNA_LOG_DIR names another folder)") from exc
    if found.st_uid not in (os.geteuid(), 0):
        raise LogsUnavailable(f"cannot use the trial-log folder {log_dir}: it belongs to another user "
                              f"(uid {found.st_uid}), who could put files of their own in its studies' folders for "
                              f"katuna and its trials to read as this user (uid {os.geteuid()}); KATUNA_LOG_DIR names "
                              "another folder")
    if found.st_mode & 0o022:
        raise LogsUnavailable(f"cannot use the trial-log folder {log_dir}: other users may write in it (mode "
                              f"{found.st_mode & 0o7777:o}), and could make a study's folder there first, to put files "
                              "of their own in it for katuna and its trials to read as this user; KATUNA_LOG_DIR names "
                              "a folder only this user may write")


def _folder(log_dir: Path) -> int:
    """``log_dir`` opened (the operator's: a link there is followed), made with its missing
    parents where it is not there yet."""
    try:
        return os.open(log_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        for folder in reversed((log_dir, *log_dir.parents)):
            if not folder.exists():
                folder.mkdir(mode=0o700, exist_ok=True)
        return os.open(log_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _subfolder(parent: int, name: str, path: Path) -> int:
    """The folder ``name`` of the open folder ``parent`` opened, made where it is not there; a
    link there is refused, not followed."""
    try:
        try:
            return os.open(name, _FOLDER, dir_fd=parent)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=parent)
            return os.open(name, _FOLDER, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise RefusedFile(f"{path}: {name} on the way is not a folder (a link, say, that a trial could have "
                              "planted); katuna writes a trial's files only into its own folders") from exc
        raise


def _new_file(folder: int, path: Path) -> BinaryIO:
    """The log ``path`` (named in the open ``folder``) opened for writing, emptied, or created
    readable by this user only (:func:`own_file`)."""
    fd = own_file(folder, path, _FILE, "log")
    try:
        os.ftruncate(fd, 0)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "wb")


def own_file(folder: int, path: Path, flags: int, what: str) -> int:
    """The file ``path`` (named in the open ``folder``; a trial's ``what``, for refusals)
    opened with ``flags`` (created readable by this user only); never through a link, never a
    FIFO, a device or a file that has another name too (a hard link to a file of the
    service's): those are a :class:`RefusedFile`."""
    try:
        fd = os.open(path.name, flags, 0o600, dir_fd=folder)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RefusedFile(f"{path} is a link (one a trial could have planted to have katuna overwrite the "
                              f"file it names); katuna writes a trial's {what} only as a file of its own") from exc
        if exc.errno == errno.ENXIO:
            raise RefusedFile(f"{path} is a FIFO or a socket, not a regular file; katuna writes a trial's {what} "
                              "only as a file of its own") from exc
        raise
    try:
        held = os.fstat(fd)
        if not stat.S_ISREG(held.st_mode) or held.st_nlink != 1:
            kind = "a file with another name too" if stat.S_ISREG(held.st_mode) else "not a regular file"
            raise RefusedFile(f"{path} is {kind}; katuna writes a trial's {what} only as a file of its own")
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_metrics_folder(launch: TrialLaunch) -> None:
    """Make the folder the attempt's metrics file goes in (the tfevent collector's folder
    itself) where it is missing, as Katib mounts an empty volume there for its collector: a
    Katib example writing ``/katib/mnist.log`` finds ``/katib``. One that cannot be made is left
    to the trial, whose own error then says why."""
    if launch.metrics_file is None:
        return
    target = Path(launch.working_dir) / launch.metrics_file
    with contextlib.suppress(OSError):
        (target if launch.metrics_events else target.parent).mkdir(parents=True, exist_ok=True)


def read_file(launch: TrialLaunch, path: str, stopped: Callable[[], bool] = lambda: False,
              mark: Mark | None = None, most: int = tfevent_budget.MAX_READ) -> Iterator[str]:
    """The lines of a file the attempt wrote (``path`` from its working directory); a folder
    is read as TensorFlow event files, a JSON record a line, for at most ``most`` bytes of
    records (``KATUNA_MAX_TFEVENTS``). Only a trial's files are read
    (:mod:`functions.adapters.trial_files`): anything else is a :class:`RefusedFile`. Once
    ``stopped()`` holds, the read ends in a :class:`Stopping` (see :func:`lines`). With the
    ``mark`` of what was there before the attempt, only what it added is read."""
    target = Path(launch.working_dir) / path
    if target.is_dir():
        yield from _event_lines(target, stopped, mark, most)
    else:
        yield from lines(target, stopped, mark)


def _event_lines(target: Path, stopped: Callable[[], bool], mark: Mark | None, most: int) -> Iterator[str]:
    """The records of the event files under the folder ``target``, a JSON record a line. A folder
    of more than :data:`~functions.core.tfevents.MAX_FILES` files is a :class:`RefusedFile`
    before any is read; so is, once every other file was read, an event file found damaged
    (what came before the damage is read), naming it and why; and so is, not ``whole``, a folder
    whose files hold more than ``most`` bytes of records, once that much was read, naming the
    setting that raises it: its records cost the service's CPU as they are read."""
    try:
        directory = trial_files.real_directory(target)
    except FileNotFoundError:
        return
    earlier = mark.files if mark is not None else frozenset()
    damaged: list[str] = []
    try:
        for record in tfevents.directory_records(directory, trial_files.open_file, earlier, tfevents.MAX_FILES,
                                                 lambda file, why: damaged.append(f"{file}: {why}"),
                                                 _StoppableBudget(target, most, stopped).take):
            _check(stopped, target)
            yield json.dumps(record)
    except tfevents.TooManyFiles as exc:
        raise RefusedFile(str(exc)) from None
    except tfevent_budget.TooMuchToRead as exc:
        raise RefusedFile(str(exc), whole=False) from None
    if damaged:
        more = f" (and {len(damaged) - 1} more damaged event files)" if len(damaged) > 1 else ""
        raise RefusedFile(f"{damaged[0]}: read up to that record{more}")


class _StoppableBudget(tfevent_budget.Budget):
    """The bytes of records left to read of the folder ``target``, asking ``stopped()`` before
    each take: records that hold no scalar yield nothing, so without it a stop would wait for
    the read of all of them, up to ``KATUNA_MAX_TFEVENTS`` bytes (gigabytes where it is raised)."""

    def __init__(self, target: Path, most: int, stopped: Callable[[], bool]) -> None:
        super().__init__(str(target), most)
        self._target, self._stopped = target, stopped

    def take(self, count: int) -> None:
        """A :class:`Stopping` once ``stopped()`` holds, else count ``count`` bytes."""
        _check(self._stopped, self._target)
        super().take(count)


def lines(path: Path, stopped: Callable[[], bool] = lambda: False, mark: Mark | None = None) -> Iterator[str]:
    """The file's lines, read in chunks: however long a line, memory stays bounded. The file
    must be a trial's (:mod:`functions.adapters.trial_files`), whatever link its path became.
    ``stopped()`` is asked before each chunk: once it holds, the read ends in a
    :class:`Stopping`, so a stop never waits for the rest of a log of hundreds of megabytes.
    With a ``mark``, the lines the file held before the attempt are passed over."""
    try:
        with trial_files.open_file(path) as handle:
            if mark is not None:
                handle.seek(mark.offset(handle))
            yield from bounded_lines(_chunks(handle, stopped, path))
    except FileNotFoundError:
        return


def _chunks(handle: BinaryIO, stopped: Callable[[], bool], path: Path) -> Iterator[bytes]:
    """The file's bytes, a chunk at a time, until its end or until ``stopped()`` holds."""
    while True:
        _check(stopped, path)
        chunk = handle.read(CHUNK)
        if not chunk:
            return
        yield chunk


def _check(stopped: Callable[[], bool], path: Path) -> None:
    """A :class:`Stopping` once ``stopped()`` holds."""
    if stopped():
        raise Stopping(f"katuna is stopping: the read of {path} was given up; the trial's end is handled "
                       "when the study resumes")
