"""The numbered migrations of katuna's SQLite file, each run once, in order, by SQLite's
``user_version``: a database made by any earlier katuna reaches today's tables. Kept apart from
opening the file and refusing one katuna must not touch (:mod:`functions.adapters.sqlite_schema`),
and from the store's reads and writes, which see only the tables as the last migration leaves them.
The first twenty-four, which made the tables, are in
:mod:`functions.adapters.sqlite_first_migrations`; the later ones are here, with the names the
store's queries use their indexes by. The three that rewrote Optuna's journal, which lean on
Optuna's journal API, are in :mod:`functions.adapters.sqlite_journal_migrations`, imported only
when one of them is due: a database migrated already is opened without Optuna. The migrations are
given sqlite-utils' view of the connection
(:meth:`functions.adapters.sqlite_connection.SqliteConnection._migrate`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.adapters import sqlite_first_migrations as first
from functions.adapters.sqlite_unreported import older_mark, unreported_column

if TYPE_CHECKING:
    import sqlite_utils


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


def stopped_at_end(row: str = "") -> str:
    """The condition on a trial ``row`` (``NEW.`` in a trigger) that it was stopped because its
    study ended: its reason begins with :data:`functions.core.records.STOPPED_AT_END`."""
    return f"{row}state = 'PRUNED' AND substr({row}reason, 1, 45) = 'stopped: the study ended before the trial did'"


STOPPED_AT_END_ROWS = stopped_at_end()
"""The trials stopped because their study ended, as the index of the thirty-eighth migration
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


def _migrate_47(db: sqlite_utils.Database) -> None:
    """The names of the Kubernetes Events recorded about each trial's Trial (JSON; empty on older
    rows, whose Events a report asks for once more, the API answering that they are there):
    whichever process reports the trial next asks for none of them again, nor makes again one the
    API server has let expire (:mod:`functions.handlers.writeback`)."""
    db.table("trials").add_column("events_recorded", str)


def _migrate_48(db: sqlite_utils.Database) -> None:
    """The names of the Kubernetes Events recorded about each study's resource (its ends; JSON,
    empty on older rows): whichever process reports an ended study next makes its end's Event
    neither again where it is there (409) nor once the API server let it expire
    (:mod:`functions.handlers.writeback`), as the trials' Events since the forty-seventh."""
    db.table("studies").add_column("events_recorded", str)


def _migrate_49(db: sqlite_utils.Database) -> None:
    """The trials their study's end stopped tallied apart as they end (``STOPPED_AT_END``, among
    the ``PRUNED`` too), so the service's metrics count them ``stopped`` as the API does; the
    tally starts from those stored now."""
    ended = ", ".join(f"'{state}'" for state in ENDED)
    db.execute(f"INSERT INTO tallies SELECT 'trials_finished', 'STOPPED_AT_END', count(*) FROM trials "
               f"WHERE {STOPPED_AT_END_ROWS}")
    db.execute(f"CREATE TRIGGER trial_stop_at_end_tallied AFTER UPDATE OF state ON trials WHEN {stopped_at_end('NEW.')} "
               f"AND OLD.state NOT IN ({ended}) BEGIN INSERT INTO tallies (kind, label, n) VALUES "
               "('trials_finished', 'STOPPED_AT_END', 1) ON CONFLICT (kind, label) DO UPDATE SET n = n + 1; END")


def _migrate_50(db: sqlite_utils.Database) -> None:
    """The mark beside the verdict of a trial that never reported its objective
    (:mod:`functions.adapters.sqlite_unreported`), and that of each such trial stored failed,
    read from the first line of the reason an older katuna wrote."""
    db.table("trials").add_column("unreported", str)
    rows = db.execute("SELECT rowid, reason FROM trials WHERE state = 'FAIL' AND reason LIKE 'metrics unavailable%'")
    marks = [(unreported_column(older_mark(reason.partition("\n")[0])), rowid) for rowid, reason in rows.fetchall()]
    db.conn.executemany("UPDATE trials SET unreported = ? WHERE rowid = ?", marks)


LETTERS_BY_SENDER = "dead_letters_vouched"
"""The index of the dead letters by whether their sender or their event is vouched for, newest last."""


def _migrate_51(db: sqlite_utils.Database) -> None:
    """Whether each dead letter came vouched for (the API token, a sender katuna believes, or an
    event katuna signed): those nobody vouches for are kept within a bound of their own, so a
    flood of them leaves the broker's letters of katuna's events in place. Those stored are taken
    as vouched for: what was kept of one that was not is its cut summary already."""
    db.execute("ALTER TABLE dead_letters ADD COLUMN vouched INTEGER NOT NULL DEFAULT 1")
    db.execute(f"CREATE INDEX {LETTERS_BY_SENDER} ON dead_letters (vouched, id)")


def _migrate_18(db: sqlite_utils.Database) -> None:
    from functions.adapters.sqlite_journal_migrations import migrate_18

    migrate_18(db)


def _migrate_25(db: sqlite_utils.Database) -> None:
    from functions.adapters.sqlite_journal_migrations import migrate_25

    migrate_25(db)


def _migrate_26(db: sqlite_utils.Database) -> None:
    from functions.adapters.sqlite_journal_migrations import migrate_26

    migrate_26(db)


MIGRATIONS = (first.migrate_1, first.migrate_2, first.migrate_3, first.migrate_4, first.migrate_5,
              first.migrate_6, first.migrate_7, first.migrate_8, first.migrate_9, first.migrate_10,
              first.migrate_11, first.migrate_12, first.migrate_13, first.migrate_14, first.migrate_15,
              first.migrate_16, first.migrate_17, _migrate_18, first.migrate_19, first.migrate_20,
              first.migrate_21, first.migrate_22, first.migrate_23, first.migrate_24, _migrate_25, _migrate_26,
              _migrate_27, _migrate_28, _migrate_29, _migrate_30, _migrate_31, _migrate_32, _migrate_33,
              _migrate_34, _migrate_35, _migrate_36, _migrate_37, _migrate_38, _migrate_39, _migrate_40,
              _migrate_41, _migrate_42, _migrate_43, _migrate_44, _migrate_45, _migrate_46,
              _migrate_47, _migrate_48, _migrate_49, _migrate_50, _migrate_51)
