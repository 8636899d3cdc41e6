"""The numbered migrations of katuna's SQLite file, each run once, in order, by SQLite's
``user_version``: a database made by any earlier katuna reaches today's tables. Kept apart from
opening the file and refusing one katuna must not touch (:mod:`functions.adapters.sqlite_schema`),
and from the store's reads and writes, which see only the tables as the last migration leaves them.
The three that rewrote Optuna's journal, which lean on Optuna's journal API, are in
:mod:`functions.adapters.sqlite_journal_migrations`, imported only when one of them is due: a
database migrated already is opened without Optuna. The migrations are given sqlite-utils'
view of the connection (:meth:`functions.adapters.sqlite_connection.SqliteConnection._migrate`).
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



def _migrate_1(db: sqlite_utils.Database) -> None:
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


def _migrate_2(db: sqlite_utils.Database) -> None:
    db.table("dead_letters").create(
        {"id": int, "event_id": str, "type": str, "event": str, "reason": str, "received_at": float}, pk="id")


def _migrate_3(db: sqlite_utils.Database) -> None:
    db.table("node_pools").create(
        {"uid": str, "study": str, "pool": str, "provider": str, "capacity": str, "machine_types": str,
         "max_nodes": int, "shared": int, "phase": str, "operation": str, "created": int, "deleted": int,
         "message": str, "requested_at": float, "ready_at": float, "released_at": float},
        pk="uid",
    )
    db.table("node_pools").create_index(["phase"])
    db.table("node_pools").create_index(["pool"])


def _migrate_4(db: sqlite_utils.Database) -> None:
    db.table("studies").add_column("origin", str)


def _migrate_5(db: sqlite_utils.Database) -> None:
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


def _migrate_6(db: sqlite_utils.Database) -> None:
    db.execute(f"CREATE TABLE {SNAPSHOT_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), log_number INTEGER NOT NULL, "
               "optuna_version TEXT NOT NULL, body BLOB NOT NULL)")


def _migrate_7(db: sqlite_utils.Database) -> None:
    """Dashboard sessions, shared by every worker: a random id, its CSRF token, the Host it was
    issued for, and when it expires."""
    db.table("sessions").create({"id": str, "csrf": str, "host": str, "expires_at": float}, pk="id")
    db.table("sessions").create_index(["expires_at"])


def _migrate_8(db: sqlite_utils.Database) -> None:
    """The stored spec's shape (:data:`functions.core.stored.SPEC_VERSION`; empty on older rows),
    and how many deliveries of the study's events failed (see
    :meth:`functions.adapters.sqlite_studies.SqliteStudies.count_failure`)."""
    db.table("studies").add_column("spec_version", int)
    db.table("studies").add_column("failures", int, not_null_default=0)


def _migrate_9(db: sqlite_utils.Database) -> None:
    """What makes a study reproducible (the seed it runs with, the katuna and Optuna versions
    that started it; empty on older rows), and the image each trial ran as the cluster reports it."""
    db.table("studies").add_column("seed", int)
    db.table("studies").add_column("katuna_version", str)
    db.table("studies").add_column("optuna_version", str)
    db.table("trials").add_column("image_digest", str)


def _migrate_10(db: sqlite_utils.Database) -> None:
    """Whose node pool a pool use is on: katuna's own (``owned``, true where the study created
    it), or one adopted, with its autoscaling settings as found (JSON). Older rows that found a
    pool are neither, so that pool is never deleted."""
    db.table("node_pools").add_column("owned", int, not_null_default=0)
    db.table("node_pools").add_column("adopted", str)
    db.execute("UPDATE node_pools SET owned = created")


def _migrate_11(db: sqlite_utils.Database) -> None:
    """A pool use's nodes as the Kubernetes API listed them (JSON: name, creation, last seen,
    first found gone), when they were last asked for, and why that failed, for measured node-hours."""
    db.table("node_pools").add_column("nodes", str)
    db.table("node_pools").add_column("looked_at", float)
    db.table("node_pools").add_column("nodes_problem", str)


def _migrate_12(db: sqlite_utils.Database) -> None:
    """Which trials changed since a study last reported them (its Katib Trial resources): each
    trial's latest change, numbered per study, and the change up to which the study reported;
    and pool uses found by their release, so the watcher reads only the pools it still watches."""
    db.table("trials").add_column("changed", int)
    db.execute("UPDATE trials SET changed = number + 1")
    db.table("trials").create_index(["study", "changed"])
    db.table("studies").add_column("trials_reported", int, not_null_default=0)
    db.table("node_pools").create_index(["released_at"])


def _migrate_13(db: sqlite_utils.Database) -> None:
    """How many times each study was reopened after it ended, and when last (none on older rows)."""
    db.table("studies").add_column("restarts", int, not_null_default=0)
    db.table("studies").add_column("restarted_at", float)


def _migrate_14(db: sqlite_utils.Database) -> None:
    """The completed trials of the study a warm start names, taken when the study was stored
    (JSON: params and values of each); empty on older rows, which read that study when they start."""
    db.table("studies").add_column("warm_results", str)


def _migrate_15(db: sqlite_utils.Database) -> None:
    """How many changes each pool use has asked the cloud for, which names its next request
    (0 on older rows: their next request is new to the cloud either way)."""
    db.table("node_pools").add_column("requests", int, not_null_default=0)


def _migrate_16(db: sqlite_utils.Database) -> None:
    """When each trial's current attempt was suggested, where it is a later one than the first
    (empty on older rows, and for first attempts: suggested when the trial was created)."""
    db.table("trials").add_column("suggested_at", float)


def _migrate_17(db: sqlite_utils.Database) -> None:
    """Dashboard sessions kept under the SHA-256 of their id, not the id: the sessions of an older
    database, stored in clear, are dropped (their users log in again)."""
    db.table("sessions").drop()
    db.table("sessions").create({"id_sha256": str, "csrf": str, "host": str, "expires_at": float}, pk="id_sha256")
    db.table("sessions").create_index(["expires_at"])


def _migrate_19(db: sqlite_utils.Database) -> None:
    """Each study's key for its attempts' progress tokens (:mod:`functions.core.report_token`):
    a random one for every study stored before. Its running trial Jobs were given no token, so
    their reports are refused; their progress is still read from their logs."""
    db.table("studies").add_column("report_key", str, not_null_default="")
    db.execute("UPDATE studies SET report_key = lower(hex(randomblob(16)))")


def _migrate_20(db: sqlite_utils.Database) -> None:
    """The look-ahead each study started with, part of what makes it reproducible (empty on
    older rows)."""
    db.table("studies").add_column("lookahead", int)


def _migrate_21(db: sqlite_utils.Database) -> None:
    """Where each study's trial logs are, under the logs folder: the studies stored before had
    theirs in a folder named after the study."""
    db.table("studies").add_column("log_folder", str, not_null_default="")
    db.execute("UPDATE studies SET log_folder = name")


def _migrate_22(db: sqlite_utils.Database) -> None:
    """Mark the file as katuna's database (:data:`APPLICATION_ID`)."""
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def _migrate_23(db: sqlite_utils.Database) -> None:
    """Each dashboard session bound to the API token it was opened with (an HMAC of the session
    id keyed with the token, never the token): the sessions of an older database, bound to none,
    are dropped (their users log in again)."""
    db.execute("DELETE FROM sessions")
    db.table("sessions").add_column("token_mac", str, not_null_default="")


def _migrate_24(db: sqlite_utils.Database) -> None:
    """The pods each trial's attempt lost to disruptions, by uid (JSON; empty on older rows: their
    running attempts count from the pods still to be seen)."""
    db.table("trials").add_column("lost_pods", str)


def _migrate_27(db: sqlite_utils.Database) -> None:
    """The latest change of a study's trials that are gone (a trial discarded before it started),
    so that no later write of a trial takes a change number one took before: whoever read the
    trials up to a change (a Katib status, a Pareto front kept) would miss that write."""
    db.table("studies").add_column("trials_removed", int, not_null_default=0)
    db.execute("CREATE TRIGGER trial_change_kept AFTER DELETE ON trials BEGIN UPDATE studies "
               "SET trials_removed = max(trials_removed, coalesce(OLD.changed, 0)) WHERE name = OLD.study; END")


def _migrate_28(db: sqlite_utils.Database) -> None:
    """The most trials each study without ``maxTrials`` creates, and the setting that bounds it,
    worked out when it is admitted (:mod:`functions.core.trial_cap`); empty on older rows, which
    run to ``KATUNA_MAX_TRIALS`` as set now."""
    db.table("studies").add_column("trial_cap", int)
    db.table("studies").add_column("trial_cap_setting", str)


def _migrate_29(db: sqlite_utils.Database) -> None:
    """Whether the step emptying a shared pool after a study's release was taken, and whether the
    cloud took the resize to 0 nodes (none on older rows, whose pools were left to the autoscaler)."""
    db.table("node_pools").add_column("empty_asked", int, not_null_default=0)
    db.table("node_pools").add_column("emptied", int, not_null_default=0)


def _migrate_30(db: sqlite_utils.Database) -> None:
    """Whether an ended trial's workload is still to be stopped: set with the verdict that ends
    it, cleared once the executor stopped it (:mod:`functions.handlers.stopping`), and found by
    the tick through an index of the few set."""
    db.table("trials").add_column("stopping", int, not_null_default=0)
    db.execute("CREATE INDEX trials_stopping ON trials (study, number) WHERE stopping = 1")


def _migrate_31(db: sqlite_utils.Database) -> None:
    """Where each study's trials run, ``local`` or ``kubernetes``
    (:attr:`~functions.core.records.StudyRecord.runs_on`). An older row is ``kubernetes`` where
    what it left proves its trials ran on a cluster (it came from a study resource, used a node
    pool, or has a trial whose image the cluster reported); else empty, and its study runs where
    it is served, as before."""
    db.table("studies").add_column("runs_on", str)
    db.execute("UPDATE studies SET runs_on = 'kubernetes' WHERE origin IS NOT NULL OR uid IN (SELECT uid FROM "
               "node_pools) OR EXISTS (SELECT 1 FROM trials WHERE trials.study = studies.name AND "
               "trials.image_digest IS NOT NULL)")


def _migrate_32(db: sqlite_utils.Database) -> None:
    """The process that claimed each study's local run (``katuna run``), by ``pid:start time``:
    kept in the database, which every process running the study shares, where its trial-log
    folder may differ between them (:meth:`~functions.adapters.sqlite_studies.SqliteStudies.claim_runner`)."""
    db.table("studies").add_column("runner", str)


def _migrate_33(db: sqlite_utils.Database) -> None:
    """The last lines of each cluster trial attempt's log, kept as katuna stopped its workload
    (:mod:`functions.core.kept_tails`), and what katuna did to it (``deleted Job demo-0``)."""
    db.execute("CREATE TABLE kept_tails (study TEXT NOT NULL, trial INTEGER NOT NULL, attempt INTEGER NOT NULL, "
               "text TEXT NOT NULL, stopped TEXT NOT NULL, whole INTEGER NOT NULL, "
               "PRIMARY KEY (study, trial, attempt)) WITHOUT ROWID")


def _migrate_34(db: sqlite_utils.Database) -> None:
    """The releases of the libraries each study's sampler draws on besides Optuna, as JSON
    (:attr:`~functions.core.records.StudyRecord.library_versions`; empty on older rows)."""
    db.table("studies").add_column("library_versions", str)


ENDED = ("COMPLETE", "FAIL", "PRUNED")
"""The trial states that end a trial, as stored."""


def _migrate_35(db: sqlite_utils.Database) -> None:
    """Tallies that only grow, kept by triggers for the service's metrics: trials that ended, by
    state, and dead letters received. Deleting a study, or the dead letters past the kept
    number, lowers neither. They start from the trials and dead letters stored now."""
    ended = ", ".join(f"'{state}'" for state in ENDED)
    db.execute("CREATE TABLE tallies (kind TEXT NOT NULL, label TEXT NOT NULL, n INTEGER NOT NULL, "
               "PRIMARY KEY (kind, label)) WITHOUT ROWID")
    db.execute(f"INSERT INTO tallies SELECT 'trials_finished', state, count(*) FROM trials WHERE state IN ({ended}) "
               "GROUP BY state")
    db.execute("INSERT INTO tallies SELECT 'dead_letters', '', count(*) FROM dead_letters")
    tally = "INSERT INTO tallies (kind, label, n) VALUES ({}, 1) ON CONFLICT (kind, label) DO UPDATE SET n = n + 1"
    trial_end = tally.format("'trials_finished', NEW.state")
    letter = tally.format("'dead_letters', ''")
    db.execute(f"CREATE TRIGGER trial_end_tallied AFTER UPDATE OF state ON trials WHEN NEW.state IN ({ended}) "
               f"AND OLD.state NOT IN ({ended}) BEGIN {trial_end}; END")
    db.execute(f"CREATE TRIGGER dead_letter_tallied AFTER INSERT ON dead_letters BEGIN {letter}; END")


def _migrate_36(db: sqlite_utils.Database) -> None:
    """The peak memory of each trial's ended attempt, in bytes, where its executor measured it
    (empty on older rows)."""
    db.table("trials").add_column("peak_memory", int)


def _migrate_37(db: sqlite_utils.Database) -> None:
    """Each trial's generation and parent under population-based training (empty otherwise)."""
    db.table("trials").add_column("generation", int)
    db.table("trials").add_column("parent", int)


STOPPED_AT_END_ROWS = ("state = 'PRUNED' AND substr(reason, 1, 45) = "
                       "'stopped: the study ended before the trial did'")
"""The trials stopped because their study ended (their reason begins with
:data:`functions.core.records.STOPPED_AT_END`), as the index of the thirty-eighth migration
holds them: a query that finds them through it says this, word for word."""


def _migrate_38(db: sqlite_utils.Database) -> None:
    """The trials each study's end stopped, by study: a Katib Experiment's status counts them
    (``trialsKilled``) after each of its trials, where it read every pruned trial's reason."""
    db.execute(f"CREATE INDEX IF NOT EXISTS trials_stopped_at_end ON trials (study) WHERE {STOPPED_AT_END_ROWS}")


def _migrate_39(db: sqlite_utils.Database) -> None:
    """When the tick last took each marked trial's stop (0: not yet), and the marked trials in
    that order: the tick takes those it tried least recently first, so marks whose stops keep
    failing starve no other (:func:`functions.handlers.stopping.finish_marked`)."""
    db.table("trials").add_column("stop_taken", float, not_null_default=0)
    db.execute("CREATE INDEX trials_stop_taken ON trials (stop_taken, study, number) WHERE stopping = 1")


WAITING_LINE = "trials_waiting_line"
"""The index of each study's waiting trials by since when their current attempt waits."""

WAITING_SINCE = "coalesce(suggested_at, created_at, 0)"
"""Since when a trial's current attempt waits, as the index :data:`WAITING_LINE` keeps it."""


def _migrate_40(db: sqlite_utils.Database) -> None:
    """Each study's waiting trials by since when they wait, the waiting trials alone: those that
    waited longest are read first, in line for room among the trials running at once
    (:mod:`functions.handlers.turns`), however many of a study wait."""
    db.execute(f"CREATE INDEX IF NOT EXISTS {WAITING_LINE} ON trials (study, {WAITING_SINCE}, number) "
               "WHERE state = 'WAITING'")


INITIAL_TRIALS = "trials_initial"
"""The index of each study's trials that run an entry of its ``initialTrials``, those alone."""


def _migrate_41(db: sqlite_utils.Database) -> None:
    """The entry of its study's ``initialTrials`` each trial runs (empty for a sampler's trial),
    and those trials by study: asking for a trial reads which entries trials hold already
    (:mod:`functions.core.initial_trials`) through them alone, at any study size."""
    db.table("trials").add_column("initial_trial", int)
    db.execute(f"CREATE INDEX IF NOT EXISTS {INITIAL_TRIALS} ON trials (study, initial_trial) "
               "WHERE initial_trial IS NOT NULL")


PROCESSED_AGE = "processed_events_age"
"""The index of the handlings' records by when each was made."""


def _migrate_42(db: sqlite_utils.Database) -> None:
    """The handlings' records by when each was made: pruning those past their week (inside a
    handling's transaction, :meth:`~functions.adapters.sqlite_service.SqliteServiceRecords.record_processed`)
    reads the old ones alone, where it read the whole table, hundreds of megabytes on a busy
    service, while holding the write lock."""
    db.execute(f"CREATE INDEX IF NOT EXISTS {PROCESSED_AGE} ON processed_events (processed_at)")


STATE_ORDER = "trials_state_order"
"""The index of each study's trials by state, then number."""


def _migrate_43(db: sqlite_utils.Database) -> None:
    """Each study's trials by state, then number: the latest trials of a state (a Katib
    Experiment's status lists those of each state after every trial) are read from the index
    alone, where SQLite walked every trial of the study by number for a state few or none of
    them are in, 100,000 rows a report for its running, waiting and pruned trials."""
    db.execute(f"CREATE INDEX IF NOT EXISTS {STATE_ORDER} ON trials (study, state, number)")


def _migrate_44(db: sqlite_utils.Database) -> None:
    """Each multi-objective study's Pareto front as last computed, with the trial change it
    covers (:mod:`functions.adapters.sqlite_fronts`): a new process reads it and the trials
    changed since, not every completed trial's values. A later migration that changes trials'
    values without a new trial change must empty it."""
    db.execute("CREATE TABLE IF NOT EXISTS study_fronts (study TEXT PRIMARY KEY, uid TEXT NOT NULL, "
               "change INTEGER NOT NULL, front TEXT NOT NULL)")


def _migrate_45(db: sqlite_utils.Database) -> None:
    """The fronts kept until then by the readers that computed them may lag behind their
    trials, which the writes now take as current: they go, and the next migration computes
    each multi-objective study's front at its latest trial change, which from here on the
    transaction that writes a trial keeps current (:mod:`functions.adapters.sqlite_fronts`)."""
    db.execute("DELETE FROM study_fronts")


def _migrate_46(db: sqlite_utils.Database) -> None:
    """One row a trial of each kept Pareto front, where the whole front was one value written
    again by every trial's write that changed it (0.76 s a write at 100,000 trials on a front
    of four objectives): a write now writes the rows of the trials that enter or leave it
    (:func:`functions.adapters.sqlite_fronts.front_rows`). A later migration that changes
    trials' values without a new trial change must compute the fronts again."""
    from functions.adapters.sqlite_fronts import front_rows

    front_rows(db)


def _migrate_18(db: sqlite_utils.Database) -> None:
    from functions.adapters.sqlite_journal_migrations import migrate_18

    migrate_18(db)


def _migrate_25(db: sqlite_utils.Database) -> None:
    from functions.adapters.sqlite_journal_migrations import migrate_25

    migrate_25(db)


def _migrate_26(db: sqlite_utils.Database) -> None:
    from functions.adapters.sqlite_journal_migrations import migrate_26

    migrate_26(db)


MIGRATIONS = (_migrate_1, _migrate_2, _migrate_3, _migrate_4, _migrate_5, _migrate_6, _migrate_7, _migrate_8,
              _migrate_9, _migrate_10, _migrate_11, _migrate_12, _migrate_13, _migrate_14, _migrate_15,
              _migrate_16, _migrate_17, _migrate_18, _migrate_19, _migrate_20,
              _migrate_21, _migrate_22, _migrate_23, _migrate_24, _migrate_25, _migrate_26, _migrate_27,
              _migrate_28, _migrate_29, _migrate_30, _migrate_31, _migrate_32, _migrate_33, _migrate_34,
              _migrate_35, _migrate_36, _migrate_37, _migrate_38, _migrate_39, _migrate_40,
              _migrate_41, _migrate_42, _migrate_43, _migrate_44, _migrate_45, _migrate_46)
