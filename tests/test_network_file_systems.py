"""A database on a network or FUSE file system, where SQLite's write-ahead log is unsafe: the
mount that holds it is read from mountinfo, and the service refuses it while the commands keep
it with a rollback journal, unless ``KATUNA_DB_ON_NETWORK_FS`` says otherwise."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from functions.adapters.sqlite_queue import SqliteQueue
from functions.adapters.sqlite_store import SqliteStore
from functions.core.errors import InvalidSetting, StorageUnavailable
from functions.core.events import Event
from functions.core.file_systems import (
    MOUNTINFO,
    Mount,
    NetworkRule,
    mount_of,
    mounts,
    network_rule,
    parsed_line,
    shared_mount,
)
from functions.core.limits import Limits
from functions.settings import Settings

ROOT_LINE = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro"


@pytest.mark.parametrize("line, expected", [
    (ROOT_LINE, Mount("/", "ext4", "/dev/sda1")),
    ("45 22 0:40 / /home rw,relatime shared:30 - nfs4 fs1.example.org:/export/home rw,vers=4.2,rsize=1048576",
     Mount("/home", "nfs4", "fs1.example.org:/export/home")),
    # no optional field, a space and a backslash escaped in the mount point and the source
    ("46 22 0:41 / /mnt/my\\040share\\134x rw,relatime - cifs //srv/a\\040b rw,vers=3.1.1",
     Mount("/mnt/my share\\x", "cifs", "//srv/a b")),
    # a bind mount of a folder of an NFS export (its root field), with two optional fields
    ("47 22 0:42 /exports/katuna /data rw,relatime shared:31 master:2 - nfs 10.0.0.2:/vol1 rw,vers=3",
     Mount("/data", "nfs", "10.0.0.2:/vol1")),
    ("48 22 0:50 / /gcs rw,nosuid,nodev,relatime - fuse.gcsfuse my-bucket rw,user_id=0,group_id=0",
     Mount("/gcs", "fuse.gcsfuse", "my-bucket")),
    # a tab and a newline in a mount point
    ("49 22 0:51 / /a\\011b\\012c rw - tmpfs tmpfs rw", Mount("/a\tb\nc", "tmpfs", "tmpfs")),
])
def test_a_mountinfo_line_gives_its_mount_point_type_and_source(line: str, expected: Mount):
    assert parsed_line(line) == expected


@pytest.mark.parametrize("line", [
    "", "not a mount", "22 1 8:1 / / rw,relatime shared:1 ext4 /dev/sda1 rw",  # no separator
    "22 1 8:1 / / rw - ext4",  # nothing after the type
])
def test_a_line_that_is_no_mount_is_left_out(line: str):
    assert parsed_line(line) is None
    assert mounts(f"{ROOT_LINE}\n{line}\n") == [Mount("/", "ext4", "/dev/sda1")]


LISTED = mounts("\n".join([
    ROOT_LINE,
    "30 22 0:40 / /data rw - nfs4 efs.example:/ rw",
    "31 22 8:17 / /data2 rw - ext4 /dev/sdb1 rw",
    "32 30 8:33 / /data/local rw - xfs /dev/sdc1 rw",
    "33 22 0:41 / /scratch rw - lustre 10.1.0.1@tcp:/scratch rw",
    "34 33 0:42 / /scratch rw - tmpfs tmpfs rw",  # mounted over the Lustre one
]))


@pytest.mark.parametrize("path, fstype", [
    ("/data/katuna.db", "nfs4"), ("/data", "nfs4"), ("/data2/katuna.db", "ext4"), ("/data/local/k.db", "xfs"),
    ("/data/localx/k.db", "nfs4"), ("/var/katuna.db", "ext4"), ("/scratch/k.db", "tmpfs"), ("/data/./x/../k.db", "nfs4"),
])
def test_the_mount_that_holds_a_path_is_the_longest_mount_point_of_whole_names_over_it(path: str, fstype: str):
    found = mount_of(path, LISTED)
    assert found is not None and found.fstype == fstype


def test_no_mount_holds_a_path_when_none_listed_is_over_it():
    assert mount_of("/home/k.db", mounts("30 22 0:40 / /data rw - nfs4 efs.example:/ rw")) is None
    assert shared_mount("/home/k.db", "") is None


@pytest.mark.parametrize("fstype, shared", [
    ("nfs", True), ("nfs4", True), ("cifs", True), ("smb3", True), ("9p", True), ("ceph", True), ("lustre", True),
    ("gpfs", True), ("beegfs", True), ("fuse", True), ("fuse.sshfs", True), ("fuse.s3fs", True),
    ("fuse.mountpoint-s3", True), ("fuse.glusterfs", True),
    ("ext4", False), ("xfs", False), ("btrfs", False), ("tmpfs", False), ("overlay", False), ("zfs", False),
    ("fuseblk", False), ("fuse.fuse-overlayfs", False), ("fuse.bindfs", False),
])
def test_network_and_fuse_file_systems_are_shared_and_local_ones_are_not(fstype: str, shared: bool):
    text = f"{ROOT_LINE}\n30 22 0:40 / /db rw - {fstype} somewhere rw"
    assert (shared_mount("/db/katuna.db", text) is not None) == shared


@pytest.mark.parametrize("setting, service, refused_by", [
    (None, True, "katuna serve"), (None, False, None), ("allow", True, None), ("allow", False, None),
    ("refuse", True, "KATUNA_DB_ON_NETWORK_FS=refuse"), ("refuse", False, "KATUNA_DB_ON_NETWORK_FS=refuse"),
])
def test_the_service_refuses_a_database_on_a_network_file_system_unless_allowed(setting, service, refused_by):
    env = {} if setting is None else {"KATUNA_DB_ON_NETWORK_FS": f" {setting.upper()} "}
    assert Settings.from_env(env).network_rule(service) == NetworkRule(refused_by, MOUNTINFO)
    assert network_rule(setting, service, "/m") == NetworkRule(refused_by, "/m")


def test_another_value_of_the_setting_is_refused():
    with pytest.raises(InvalidSetting, match="^KATUNA_DB_ON_NETWORK_FS: expected allow or refuse, got 'warn'$"):
        Settings.from_env({"KATUNA_DB_ON_NETWORK_FS": "warn"})


def _mountinfo(tmp_path: Path, folder: Path, fstype: str, options: str = "rw,vers=4.2") -> str:
    """A mountinfo file that lists ``folder`` as a mount of ``fstype`` with the super block's
    ``options``, its spaces escaped."""
    point = str(folder.resolve()).replace("\\", "\\134").replace(" ", "\\040")
    listed = tmp_path / "mountinfo"
    listed.write_text(f"{ROOT_LINE}\n61 22 0:61 / {point} rw,relatime shared:40 - {fstype} srv:/export {options}\n")
    return str(listed)


def _journal(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()


def test_a_database_on_nfs_is_refused_where_the_rule_says_so_and_not_made(tmp_path: Path):
    share = tmp_path / "my share"
    share.mkdir()
    rule = NetworkRule("katuna serve", _mountinfo(tmp_path, share, "nfs4"))
    with pytest.raises(StorageUnavailable) as raised:
        SqliteStore(share / "katuna.db", 5.0, network=rule)
    assert str(raised.value) == (
        f"the database {share.resolve() / 'katuna.db'} is on a network or FUSE file system (nfs4 at "
        f"{share.resolve()}), where SQLite's locks and write-ahead log do not hold between machines, so two "
        "writers can damage it; katuna serve refuses it: keep the database on a local disk (a ReadWriteOnce "
        "volume, or a local path with --db or KATUNA_DB), or set KATUNA_DB_ON_NETWORK_FS=allow where every "
        "katuna using it runs on one machine")
    assert list(share.iterdir()) == [], "nothing was made"


def test_a_database_on_nfs_that_a_command_opens_is_kept_with_a_rollback_journal(tmp_path: Path):
    share = tmp_path / "share"
    share.mkdir()
    db = share / "katuna.db"
    local = SqliteStore(db, 5.0, network=NetworkRule(None, str(tmp_path / "no-mountinfo")))
    local.close()
    assert _journal(db) == "wal", "where the mounts cannot be read, the write-ahead log is kept"
    rule = NetworkRule(None, _mountinfo(tmp_path, share, "nfs4"))
    store, other = SqliteStore(db, 5.0, network=rule), SqliteStore(db, 5.0, network=rule)
    queue = SqliteQueue(db, 5.0, network=rule)
    try:
        assert store.shared_mount == Mount(str(share.resolve()), "nfs4", "srv:/export")
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2, "FULL: every commit synced"
        queue.put(Event("test.other", {"name": "x"}))
        assert other.studies_page(10) == [] and queue.depth(1.0) == 1
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "delete", "the queue kept the journal"
    finally:
        queue.close()
        other.close()
        store.close()
    assert sorted(p.name for p in share.iterdir()) == ["katuna.db"], "no -wal or -shm left beside it"
    assert _journal(db) == "delete"


def test_a_database_on_a_local_file_system_keeps_its_write_ahead_log(tmp_path: Path):
    folder = tmp_path / "local"
    folder.mkdir()
    store = SqliteStore(folder / "katuna.db", 5.0, network=NetworkRule("katuna serve",
                                                                      _mountinfo(tmp_path, folder, "ext4")))
    try:
        assert store.shared_mount is None
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        store.close()


def test_katuna_serve_refuses_a_database_on_nfs_at_start_unless_allowed_then_warns(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from functions.cli_servers import _warn_of_history

    share = tmp_path / "share"
    share.mkdir()
    mountinfo = _mountinfo(tmp_path, share, "fuse.gcsfuse")
    with pytest.raises(StorageUnavailable, match=r"\(fuse.gcsfuse at .*\).* katuna serve refuses it: keep"):
        _warn_of_history(share / "katuna.db", Limits(), 5.0, network_rule(None, service=True, mountinfo=mountinfo))
    assert list(share.iterdir()) == []
    _warn_of_history(share / "katuna.db", Limits(), 5.0, network_rule("allow", service=True, mountinfo=mountinfo))
    assert "".join(capsys.readouterr().err.split()) == "".join((  # the console breaks a long path anywhere
        f"warning: the database {share.resolve() / 'katuna.db'} is on a network or FUSE file system (fuse.gcsfuse "
        f"at {share.resolve()}): katuna keeps it with SQLite's rollback journal, not its write-ahead log, and relies "
        "on the file system's locks; run every katuna that uses it on this one machine, or move it to a local disk "
        "(--db or KATUNA_DB)").split())
    assert _journal(share / "katuna.db") == "delete"


@pytest.mark.parametrize("fstype, options, local", [
    ("nfs", "rw,vers=3,nolock,proto=tcp,local_lock=all", True), ("nfs4", "rw,vers=4.2,local_lock=posix", True),
    ("nfs4", "rw,vers=4.2,local_lock=all,addr=10.0.0.2", True), ("nfs4", "rw,vers=4.2,local_lock=none", False),
    ("nfs4", "rw,vers=4.2,local_lock=flock", False), ("cifs", "rw,nolock", False),
])
def test_an_nfs_mount_whose_locks_stay_on_this_machine_is_told_so(tmp_path: Path, fstype: str, options: str,
                                                                   local: bool, capsys: pytest.CaptureFixture[str]):
    """NFS mounted with ``nolock`` or ``local_lock=all|posix`` keeps SQLite's (POSIX) locks on
    this machine: the refusal and the warning say so, not that the file system's locks hold."""
    from functions.cli_servers import _warn_of_history

    share = tmp_path / "share"
    share.mkdir()
    mountinfo = _mountinfo(tmp_path, share, fstype, options)
    assert shared_mount(str(share.resolve() / "k.db"), Path(mountinfo).read_text()).local_locks == local
    kept = "mounted with its locks kept by this machine alone (nolock or local_lock)"
    with pytest.raises(StorageUnavailable) as refused:
        _warn_of_history(share / "katuna.db", Limits(), 5.0, network_rule(None, service=True, mountinfo=mountinfo))
    assert (kept in str(refused.value)) == local, str(refused.value)
    _warn_of_history(share / "katuna.db", Limits(), 5.0, network_rule("allow", service=True, mountinfo=mountinfo))
    said = "".join(capsys.readouterr().err.split())  # the console breaks a long path anywhere
    assert ("whoselocksholdonthismachinealone" in said) == local, said
    assert ("reliesonthefilesystem'slocks" in said) == (not local), said


def test_a_database_path_whose_links_loop_is_refused_as_such_on_nfs_too(tmp_path: Path):
    share = tmp_path / "share"
    share.mkdir()
    (share / "katuna.db").symlink_to("katuna.db")
    with pytest.raises(StorageUnavailable, match="it is a symbolic link that leads to no file"):
        SqliteStore(share / "katuna.db", 5.0, network=NetworkRule("katuna serve", _mountinfo(tmp_path, share, "nfs")))
