"""What ``katuna logs -f --attempt K`` says as its attempt ends and the trial runs again: the
command that follows the next attempt, on the database the follow read."""

from __future__ import annotations

from pathlib import Path

from conftest import study_definition

from functions.adapters.sqlite_store import SqliteStore
from functions.core.records import RUNNING, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.log_follow import LogFollow


def test_a_pinned_follow_names_the_database_in_the_command_that_follows_the_next_attempt(tmp_path: Path):
    """It said ``katuna logs -f demo 0``: followed as printed, that reads ./katuna.db (or
    $KATUNA_DB), where no such study is, or another study of the same name."""
    store = SqliteStore(tmp_path / "runs.db")
    definition = study_definition()
    store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "uid-1"))
    store.add_trial(TrialRecord("demo", 0, {"x": 0.5}, RUNNING, attempt=2,
                                reason="attempt 1 preempted: its node was reclaimed"))
    (tmp_path / "0.1.log").write_bytes(b"loss=0.9\n")
    told: list[str] = []
    follow = LogFollow(store, "demo", 0, tmp_path, told.append, lambda: False, pinned=True, db=" --db runs.db")
    try:
        assert b"".join(follow.output(1)) == b"loss=0.9\n"
    finally:
        store.close()
    assert told == ["attempt 1 ended: preempted: its node was reclaimed; the trial runs again as attempt 2 "
                    "(katuna logs -f demo 0 --db runs.db follows it)"]
