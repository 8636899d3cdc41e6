"""Which file system holds a path, read from Linux's ``/proc/self/mountinfo``, and whether it is
one whose file locks and shared memory may not hold between the machines that mount it.

SQLite's write-ahead log keeps its index in memory every process using the database maps from
the ``-shm`` file: "all processes using a database must be on the same host computer; WAL does
not work over a network filesystem" (https://www.sqlite.org/wal.html). A network file system,
or a FUSE one (gcsfuse, s3fs and sshfs among them, which may be remote and may not keep POSIX
locks at all), gives no such guarantee; on one, SQLite advises its rollback journal, whose
locks are the file system's own (https://www.sqlite.org/useovernet.html). The adapter reads the
file (:mod:`functions.adapters.sqlite_file_system`); this module only reads its text.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"
"""Where Linux lists the mounts this process sees."""

ALLOW, REFUSE = "allow", "refuse"
"""The values of ``KATUNA_DB_ON_NETWORK_FS``."""

NETWORK_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "smb2", "ncpfs", "9p", "afs", "coda", "ceph", "glusterfs", "lustre",
    "gpfs", "beegfs", "pvfs2", "orangefs", "davfs", "ocfs2", "gfs2", "cvfs", "panfs", "quobyte", "fhgfs",
})
"""File system types (mountinfo's ninth field) shared between machines over a network, or
between a virtual machine and its host (``9p``). Lustre, GPFS and BeeGFS are where an HPC
cluster's home and scratch folders usually are; AWS EFS and GCP Filestore are ``nfs4`` and
``nfs``; a Kubernetes ReadWriteMany claim is one of these or a FUSE mount."""

LOCAL_FUSE = frozenset({"fuse.fuse-overlayfs", "fuse.bindfs", "fuse.squashfuse", "fuse.lxcfs"})
"""FUSE file systems that are a view of this machine's own disk: fuse-overlayfs is the root of a
rootless container (Podman's, rootless Docker's), where a database in the container's own
folders is local; bindfs mirrors a local folder; squashfuse and lxcfs are read-only images and
``/proc`` views."""

LOCAL_LOCK_OPTIONS = frozenset({"nolock", "local_lock=all", "local_lock=posix"})
"""NFS super block options (Linux's ``nfs_show_mount_options``) under which the POSIX locks
SQLite takes (``fcntl``) are kept by this machine alone, never sent to the server: another
machine that opens the database is not locked out, whatever the journal."""

_ESCAPED = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo: where a file system is mounted, its type and its source."""

    point: str
    fstype: str
    source: str
    local_locks: bool = False
    """Whether its file locks are this machine's alone (:data:`LOCAL_LOCK_OPTIONS`)."""

    @property
    def described(self) -> str:
        """The mount in a message: its type and point, and its locks where they are this machine's."""
        kept = ", mounted with its locks kept by this machine alone (nolock or local_lock)" if self.local_locks else ""
        return f"{self.fstype} at {self.point}{kept}"

    @property
    def shared(self) -> bool:
        """Whether SQLite's write-ahead log is unsafe here (:data:`NETWORK_TYPES`, or FUSE:
        ``fuse`` or ``fuse.<name>``; ``fuseblk``, a local disk through FUSE, is not, nor are
        those of :data:`LOCAL_FUSE`)."""
        if self.fstype in LOCAL_FUSE:
            return False
        return self.fstype in NETWORK_TYPES or self.fstype == "fuse" or self.fstype.startswith("fuse.")


def _unescaped(field: str) -> str:
    """A mountinfo field as the path it names: the kernel writes a space, tab, newline and
    backslash in it as octal escapes (``\\040``, ``\\011``, ``\\012``, ``\\134``)."""
    return _ESCAPED.sub(lambda found: chr(int(found.group(1), 8)), field)


def parsed_line(line: str) -> Mount | None:
    """The mount one mountinfo line describes, None for a line that is not one. Its fields:
    mount id, parent id, major:minor, root, mount point, mount options, then zero or more
    optional fields (``shared:1``, ``master:2``...) ended by a lone ``-``, then the file system
    type, the source and the super block's options (proc(5))."""
    fields = line.split()
    if len(fields) < 9 or "-" not in fields[6:]:
        return None
    separator = fields.index("-", 6)
    if len(fields) < separator + 3:
        return None
    fstype = _unescaped(fields[separator + 1])
    options = fields[separator + 3].split(",") if len(fields) > separator + 3 else []
    local_locks = fstype in ("nfs", "nfs4") and not LOCAL_LOCK_OPTIONS.isdisjoint(options)
    return Mount(_unescaped(fields[4]), fstype, _unescaped(fields[separator + 2]), local_locks)


def mounts(text: str) -> list[Mount]:
    """Every mount a mountinfo text lists, in its order (a later mount on the same point hides
    an earlier one); lines that are not mounts are left out."""
    return [mount for line in text.splitlines() if (mount := parsed_line(line)) is not None]


def _within(path: str, point: str) -> bool:
    """Whether the absolute ``path`` is at or below the mount point ``point``, whole names only
    (``/data2`` is not below ``/data``)."""
    return point == "/" or path == point or path.startswith(point.rstrip("/") + "/")


def mount_of(path: str, listed: list[Mount]) -> Mount | None:
    """The mount that holds the absolute, resolved ``path``: the one of the longest mount point
    that contains it, the last listed of those on the same point (mounted over the others);
    None when none does (a mountinfo from another root)."""
    path = posixpath.normpath(path)
    found: Mount | None = None
    for mount in listed:
        if _within(path, mount.point) and (found is None or len(mount.point) >= len(found.point)):
            found = mount
    return found


def shared_mount(path: str, mountinfo: str) -> Mount | None:
    """The network or FUSE mount (:attr:`Mount.shared`) that holds ``path`` as a mountinfo text
    lists them; None where a local one holds it or none listed does."""
    mount = mount_of(path, mounts(mountinfo))
    return mount if mount is not None and mount.shared else None


@dataclass(frozen=True)
class NetworkRule:
    """What katuna does with its database on a shared file system (:attr:`Mount.shared`):
    ``refused_by`` names what refuses it (``katuna serve``, whose workers and pods may write
    it at once, or the setting), None where it is opened with a rollback journal instead of
    the write-ahead log. ``mountinfo``: where the mounts are listed (tests name another file)."""

    refused_by: str | None = None
    mountinfo: str = MOUNTINFO


def network_rule(setting: str | None, service: bool, mountinfo: str = MOUNTINFO) -> NetworkRule:
    """The rule for a command (``service`` false: ``katuna run`` and the commands that read the
    database, as on an HPC cluster's home folder, where one process writes) or the service,
    from ``KATUNA_DB_ON_NETWORK_FS``: ``allow`` opens it everywhere, ``refuse`` nowhere, and
    unset refuses it to the service only."""
    if setting == REFUSE:
        return NetworkRule("KATUNA_DB_ON_NETWORK_FS=refuse", mountinfo)
    if service and setting != ALLOW:
        return NetworkRule("katuna serve", mountinfo)
    return NetworkRule(None, mountinfo)


ROLLBACK_ON_NETWORK = NetworkRule()
"""The rule that refuses no database: one on a network file system is kept with a rollback journal."""
