"""The file system that holds the database, looked up as it is opened: on a network or FUSE one
(:mod:`functions.core.file_systems`) SQLite's write-ahead log is unsafe, so the database is
refused where a rule says so (``katuna serve``, by default), and otherwise kept with a rollback
journal, whose locks are the file system's own. Linux only: where ``/proc/self/mountinfo``
cannot be read (another system), nothing is looked up and the write-ahead log is used.
"""

from __future__ import annotations

from pathlib import Path

from functions.core.errors import StorageUnavailable
from functions.core.file_systems import Mount, NetworkRule, shared_mount

ROLLBACK, WAL = "DELETE", "WAL"
"""The journal modes: SQLite's rollback journal, and its write-ahead log."""


def _listed(mountinfo: str) -> str | None:
    """The text of the mount list, None where there is none to read."""
    try:
        return Path(mountinfo).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return None


def shared_holder(path: Path, rule: NetworkRule) -> Mount | None:
    """The network or FUSE mount that holds the database ``path`` (the file its links lead to),
    None where a local one does or the mounts cannot be read; :class:`StorageUnavailable`
    where ``rule`` refuses a database there, before the file is made or opened. A path whose
    links loop leads nowhere: opening it is refused next
    (:func:`~functions.adapters.sqlite_errors.check_file`)."""
    text = _listed(rule.mountinfo)
    if text is None:
        return None
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return None
    mount = shared_mount(str(resolved), text)
    if mount is not None and rule.refused_by is not None:
        raise StorageUnavailable(
            f"the database {resolved} is on a network or FUSE file system ({mount.described}), where "
            f"SQLite's locks and write-ahead log do not hold between machines, so two writers can damage it; "
            f"{rule.refused_by} refuses it: keep the database on a local disk (a ReadWriteOnce volume, or a local "
            "path with --db or KATUNA_DB), or set KATUNA_DB_ON_NETWORK_FS=allow where every katuna using it runs "
            "on one machine")
    return mount


def journal_mode(mount: Mount | None) -> str:
    """The journal a database on ``mount`` is kept with (:func:`shared_holder`)."""
    return WAL if mount is None else ROLLBACK


def network_warning(path: Path, mount: Mount) -> str:
    """What a process writing a database on a network file system says once, as it starts."""
    locks = "whose locks hold on this machine alone" if mount.local_locks else "and relies on the file system's locks"
    return (f"the database {path.resolve()} is on a network or FUSE file system ({mount.described}): katuna "
            f"keeps it with SQLite's rollback journal, not its write-ahead log, {locks}; run every katuna that uses "
            "it on this one machine, or move it to a local disk (--db or KATUNA_DB)")
