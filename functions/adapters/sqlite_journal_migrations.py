"""The three migrations that rewrote Optuna's journal: the eighteenth took how far trial logs
were read out of it, the twenty-fifth counted its trials, the twenty-sixth split the journal
every study shared into one for each study. They read that shared journal through Optuna's
journal API (:class:`_SharedJournal`), so an Optuna release that changes the API changes this
module alone; the numbered list that runs them is
:data:`functions.adapters.sqlite_migrations.MIGRATIONS`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import sqlite_utils
from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend

from functions.adapters.sqlite_journal_tables import SNAPSHOT_TABLE, STREAMS_TABLE
from functions.adapters.sqlite_journal_tables import TABLE as JOURNAL_TABLE
from functions.core.journal_split import Created, Deleted, Kept, split
from functions.core.optuna_compat import CREATE_TRIAL

HISTORY_TABLE = "optuna_history"
"""Where the twenty-fifth migration counted the trials of the journal shared by every study
(replaced by each study's count in :data:`STREAMS_TABLE` since)."""
OPTUNA_LOG_ATTRIBUTES = {"katuna:log_cursor": "log_cursor", "katuna:log_kept": "log_kept"}
"""The Optuna trial system attributes earlier katunas kept how far a log was read in, and their columns."""


def migrate_18(db: sqlite_utils.Database) -> None:
    """How far each running trial's log was read, kept with the trial (JSON: the progress cursor,
    and what was kept of its attempt's log), no longer in Optuna's trial system attributes: the
    running trials' are carried over, so none of their observations is kept twice."""
    for column in OPTUNA_LOG_ATTRIBUTES.values():
        db.table("trials").add_column(column, str)
    running = db.execute("SELECT study, number FROM trials WHERE state = 'RUNNING'").fetchall()
    if running:
        _carry_log_attributes(db, running)


class _SharedJournal(BaseJournalBackend):
    """Optuna's journal as every study shared it before the twenty-sixth migration, read only."""

    def __init__(self, db: sqlite_utils.Database, table: str = JOURNAL_TABLE) -> None:
        self._db = db
        self._table = table

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        rows = self._db.execute(f"SELECT body FROM {self._table} WHERE number > ? ORDER BY number", [log_number_from])
        return (json.loads(body) for (body,) in rows)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        raise NotImplementedError("a migration only reads the journal as it was")


def _carry_log_attributes(db: sqlite_utils.Database, trials: list[tuple[str, int]]) -> None:
    """Copy the trials' log attributes from Optuna's journal, as it then was (one for every
    study), to their columns; a trial Optuna does not know, or without them, keeps none."""
    storage = JournalStorage(_SharedJournal(db))
    for study, number in trials:
        try:
            trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study), number)
        except KeyError:
            continue
        attributes = storage.get_trial_system_attrs(trial_id)
        for key, column in OPTUNA_LOG_ATTRIBUTES.items():
            if key in attributes:
                db.execute(f"UPDATE trials SET [{column}] = ? WHERE study = ? AND number = ?",
                           [json.dumps(attributes[key]), study, number])


def migrate_25(db: sqlite_utils.Database) -> None:
    """How many trials Optuna's journal has created (:data:`HISTORY_TABLE`), counted once here
    from the records (each begins with its ``op_code``) and kept up to date as trials are added."""
    db.execute(f"CREATE TABLE {HISTORY_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), trials INTEGER NOT NULL)")
    db.execute(f"INSERT INTO {HISTORY_TABLE} (id, trials) SELECT 1, count(*) FROM {JOURNAL_TABLE} "
               f"WHERE body LIKE '{{\"op_code\": {CREATE_TRIAL},%'")


def migrate_26(db: sqlite_utils.Database) -> None:
    """Each study's Optuna records in a journal of their own (a stream, numbered in
    :data:`STREAMS_TABLE` with the trials it created), renumbered as
    :mod:`functions.core.journal_split` does, so that a study replays to the same trials and its
    sampler goes on as before; deleted studies' records go. The journal shared by every study,
    its snapshot and its count of trials (:data:`HISTORY_TABLE`) go too. No study gets a snapshot
    here: replaying every study once more would double the time this one-off migration holds the
    write lock (and delays the service's start); the first process to load a long journal writes
    its snapshot (:meth:`functions.adapters.sqlite_streams.KatunaStreams.snapshot_if_due`)."""
    db.execute(f"ALTER TABLE {JOURNAL_TABLE} RENAME TO optuna_shared_journal")
    db.execute(f"DROP TABLE {SNAPSHOT_TABLE}")
    db.execute(f"DROP TABLE {HISTORY_TABLE}")
    db.execute(f"CREATE TABLE {STREAMS_TABLE} (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, "
               "trials INTEGER NOT NULL DEFAULT 0)")
    db.execute(f"CREATE TABLE {JOURNAL_TABLE} (stream INTEGER NOT NULL, number INTEGER NOT NULL, body TEXT NOT NULL, "
               "PRIMARY KEY (stream, number))")
    db.execute(f"CREATE TABLE {SNAPSHOT_TABLE} (stream INTEGER PRIMARY KEY, log_number INTEGER NOT NULL, "
               "optuna_version TEXT NOT NULL, body BLOB NOT NULL)")
    _split_journal(db)
    db.execute("DROP TABLE optuna_shared_journal")


SPLIT_BATCH = 10_000
"""Records the twenty-sixth migration writes in one statement."""


def _split_journal(db: sqlite_utils.Database) -> None:
    """Write each live study's stream as the shared journal is read, in batches of
    :data:`SPLIT_BATCH` records, then each stream's count of trials once."""
    streams: dict[int, int] = {}
    lengths: dict[int, int] = {}
    trials: dict[int, int] = {}
    batch: list[tuple[int, int, str]] = []
    for step in split(_SharedJournal(db, "optuna_shared_journal").read_logs(0)):
        if isinstance(step, Created):
            streams[step.study] = db.execute(f"INSERT INTO {STREAMS_TABLE} (name) VALUES (?) RETURNING id",
                                             [step.name]).fetchone()[0]
            lengths[step.study] = trials[step.study] = 0
        elif isinstance(step, Kept):
            lengths[step.study] += 1
            trials[step.study] += step.record["op_code"] == CREATE_TRIAL
            batch.append((streams[step.study], lengths[step.study], json.dumps(step.record)))
            if len(batch) >= SPLIT_BATCH:
                _write_records(db, batch)
        elif isinstance(step, Deleted):
            _write_records(db, batch)
            stream = streams.pop(step.study)
            db.execute(f"DELETE FROM {JOURNAL_TABLE} WHERE stream = ?", [stream])
            db.execute(f"DELETE FROM {STREAMS_TABLE} WHERE id = ?", [stream])
    _write_records(db, batch)
    db.conn.executemany(f"UPDATE {STREAMS_TABLE} SET trials = ? WHERE id = ?",
                        [(trials[study], stream) for study, stream in streams.items()])


def _write_records(db: sqlite_utils.Database, batch: list[tuple[int, int, str]]) -> None:
    """Write the records of ``batch`` (stream, number, body), and empty it."""
    db.conn.executemany(f"INSERT INTO {JOURNAL_TABLE} (stream, number, body) VALUES (?, ?, ?)", batch)
    batch.clear()
