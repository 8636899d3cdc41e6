"""The first twenty-four migrations of katuna's SQLite file, up to the one that marks it as
katuna's (:data:`APPLICATION_ID`): the tables, and the columns each later release added to them.
:data:`functions.adapters.sqlite_migrations.MIGRATIONS` runs them, in order, with the later ones;
the eighteenth, which rewrote Optuna's journal, is in
:mod:`functions.adapters.sqlite_journal_migrations`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.adapters.sqlite_journal_tables import SNAPSHOT_TABLE
from functions.adapters.sqlite_journal_tables import TABLE as JOURNAL_TABLE

if TYPE_CHECKING:
    import sqlite_utils

APPLICATION_ID = 0x6B74756E
"""What katuna's databases say they are in SQLite's ``application_id`` ("ktun"): set by the
twenty-second migration; older ones are told by their ``user_version`` and ``studies`` table."""


def migrate_1(db: sqlite_utils.Database) -> None:
    db.table("studies").create(
        {"name": str, "uid": str, "definition": str, "normalized": str, "base_dir": str, "status": str,
         "reason": str, "created_at": float, "started_at": float, "completed_at": float},
        pk="name",
    )
    db.table("trials").create(
        {"study": str, "number": int, "params": str, "state": str, "attempt": int, "value": float,
         "trial_values": str, "metrics": str, "reason": str, "exit_code": int,
         "created_at": float, "started_at": float, "finished_at": float},
        pk=("study", "number"),
    )
    db.table("trials").create_index(["study", "state"])
    db.table("trials").create_index(["study", "value"])
    db.table("observations").create(
        {"study": str, "trial": int, "attempt": int, "seq": int, "metric": str, "value": float,
         "step": int, "timestamp": str},
        pk=("study", "trial", "attempt", "seq"),
    )
    db.table("processed_events").create(
        {"event_id": str, "handler": str, "emitted": str, "processed_at": float},
        pk=("event_id", "handler"),
    )
    db.execute(f"CREATE TABLE {JOURNAL_TABLE} (number INTEGER PRIMARY KEY, body TEXT NOT NULL)")


def migrate_2(db: sqlite_utils.Database) -> None:
    db.table("dead_letters").create(
        {"id": int, "event_id": str, "type": str, "event": str, "reason": str, "received_at": float}, pk="id")


def migrate_3(db: sqlite_utils.Database) -> None:
    db.table("node_pools").create(
        {"uid": str, "study": str, "pool": str, "provider": str, "capacity": str, "machine_types": str,
         "max_nodes": int, "shared": int, "phase": str, "operation": str, "created": int, "deleted": int,
         "message": str, "requested_at": float, "ready_at": float, "released_at": float},
        pk="uid",
    )
    db.table("node_pools").create_index(["phase"])
    db.table("node_pools").create_index(["pool"])


def migrate_4(db: sqlite_utils.Database) -> None:
    db.table("studies").add_column("origin", str)


def migrate_5(db: sqlite_utils.Database) -> None:
    """Trial counts per study and state, kept by triggers: counting stays O(1) however many
    trials a study has (``INSERT OR REPLACE`` fires the delete trigger: recursive triggers)."""
    db.execute("CREATE TABLE trial_counts (study TEXT NOT NULL, state TEXT NOT NULL, n INTEGER NOT NULL, "
               "PRIMARY KEY (study, state)) WITHOUT ROWID")
    db.execute("INSERT INTO trial_counts SELECT study, state, count(*) FROM trials GROUP BY study, state")
    add = ("INSERT INTO trial_counts (study, state, n) VALUES (NEW.study, NEW.state, 1) "
           "ON CONFLICT (study, state) DO UPDATE SET n = n + 1")
    remove = "UPDATE trial_counts SET n = n - 1 WHERE study = OLD.study AND state = OLD.state"
    db.execute(f"CREATE TRIGGER trial_counted AFTER INSERT ON trials BEGIN {add}; END")
    db.execute(f"CREATE TRIGGER trial_uncounted AFTER DELETE ON trials BEGIN {remove}; END")
    db.execute(f"CREATE TRIGGER trial_recounted AFTER UPDATE OF state, study ON trials "
               f"BEGIN {remove}; {add}; END")


def migrate_6(db: sqlite_utils.Database) -> None:
    db.execute(f"CREATE TABLE {SNAPSHOT_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), log_number INTEGER NOT NULL, "
               "optuna_version TEXT NOT NULL, body BLOB NOT NULL)")


def migrate_7(db: sqlite_utils.Database) -> None:
    """Dashboard sessions, shared by every worker: a random id, its CSRF token, the Host it was
    issued for, and when it expires."""
    db.table("sessions").create({"id": str, "csrf": str, "host": str, "expires_at": float}, pk="id")
    db.table("sessions").create_index(["expires_at"])


def migrate_8(db: sqlite_utils.Database) -> None:
    """The stored spec's shape (:data:`functions.core.stored.SPEC_VERSION`; empty on older rows),
    and how many deliveries of the study's events failed (see
    :meth:`functions.adapters.sqlite_studies.SqliteStudies.count_failure`)."""
    db.table("studies").add_column("spec_version", int)
    db.table("studies").add_column("failures", int, not_null_default=0)


def migrate_9(db: sqlite_utils.Database) -> None:
    """What makes a study reproducible (the seed it runs with, the katuna and Optuna versions
    that started it; empty on older rows), and the image each trial ran as the cluster reports it."""
    db.table("studies").add_column("seed", int)
    db.table("studies").add_column("katuna_version", str)
    db.table("studies").add_column("optuna_version", str)
    db.table("trials").add_column("image_digest", str)


def migrate_10(db: sqlite_utils.Database) -> None:
    """Whose node pool a pool use is on: katuna's own (``owned``, true where the study created
    it), or one adopted, with its autoscaling settings as found (JSON). Older rows that found a
    pool are neither, so that pool is never deleted."""
    db.table("node_pools").add_column("owned", int, not_null_default=0)
    db.table("node_pools").add_column("adopted", str)
    db.execute("UPDATE node_pools SET owned = created")


def migrate_11(db: sqlite_utils.Database) -> None:
    """A pool use's nodes as the Kubernetes API listed them (JSON: name, creation, last seen,
    first found gone), when they were last asked for, and why that failed, for measured node-hours."""
    db.table("node_pools").add_column("nodes", str)
    db.table("node_pools").add_column("looked_at", float)
    db.table("node_pools").add_column("nodes_problem", str)


def migrate_12(db: sqlite_utils.Database) -> None:
    """Which trials changed since a study last reported them (its Katib Trial resources): each
    trial's latest change, numbered per study, and the change up to which the study reported;
    and pool uses found by their release, so the watcher reads only the pools it still watches."""
    db.table("trials").add_column("changed", int)
    db.execute("UPDATE trials SET changed = number + 1")
    db.table("trials").create_index(["study", "changed"])
    db.table("studies").add_column("trials_reported", int, not_null_default=0)
    db.table("node_pools").create_index(["released_at"])


def migrate_13(db: sqlite_utils.Database) -> None:
    """How many times each study was reopened after it ended, and when last (none on older rows)."""
    db.table("studies").add_column("restarts", int, not_null_default=0)
    db.table("studies").add_column("restarted_at", float)


def migrate_14(db: sqlite_utils.Database) -> None:
    """The completed trials of the study a warm start names, taken when the study was stored
    (JSON: params and values of each); empty on older rows, which read that study when they start."""
    db.table("studies").add_column("warm_results", str)


def migrate_15(db: sqlite_utils.Database) -> None:
    """How many changes each pool use has asked the cloud for, which names its next request
    (0 on older rows: their next request is new to the cloud either way)."""
    db.table("node_pools").add_column("requests", int, not_null_default=0)


def migrate_16(db: sqlite_utils.Database) -> None:
    """When each trial's current attempt was suggested, where it is a later one than the first
    (empty on older rows, and for first attempts: suggested when the trial was created)."""
    db.table("trials").add_column("suggested_at", float)


def migrate_17(db: sqlite_utils.Database) -> None:
    """Dashboard sessions kept under the SHA-256 of their id, not the id: the sessions of an older
    database, stored in clear, are dropped (their users log in again)."""
    db.table("sessions").drop()
    db.table("sessions").create({"id_sha256": str, "csrf": str, "host": str, "expires_at": float}, pk="id_sha256")
    db.table("sessions").create_index(["expires_at"])


def migrate_19(db: sqlite_utils.Database) -> None:
    """Each study's key for its attempts' progress tokens (:mod:`functions.core.report_token`):
    a random one for every study stored before. Its running trial Jobs were given no token, so
    their reports are refused; their progress is still read from their logs."""
    db.table("studies").add_column("report_key", str, not_null_default="")
    db.execute("UPDATE studies SET report_key = lower(hex(randomblob(16)))")


def migrate_20(db: sqlite_utils.Database) -> None:
    """The look-ahead each study started with, part of what makes it reproducible (empty on
    older rows)."""
    db.table("studies").add_column("lookahead", int)


def migrate_21(db: sqlite_utils.Database) -> None:
    """Where each study's trial logs are, under the logs folder: the studies stored before had
    theirs in a folder named after the study."""
    db.table("studies").add_column("log_folder", str, not_null_default="")
    db.execute("UPDATE studies SET log_folder = name")


def migrate_22(db: sqlite_utils.Database) -> None:
    """Mark the file as katuna's database (:data:`APPLICATION_ID`)."""
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def migrate_23(db: sqlite_utils.Database) -> None:
    """Each dashboard session bound to the API token it was opened with (an HMAC of the session
    id keyed with the token, never the token): the sessions of an older database, bound to none,
    are dropped (their users log in again)."""
    db.execute("DELETE FROM sessions")
    db.table("sessions").add_column("token_mac", str, not_null_default="")


def migrate_24(db: sqlite_utils.Database) -> None:
    """The pods each trial's attempt lost to disruptions, by uid (JSON; empty on older rows: their
    running attempts count from the pods still to be seen)."""
    db.table("trials").add_column("lost_pods", str)

