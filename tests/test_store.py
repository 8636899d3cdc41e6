"""The SQLite store: what is particular to it (its schema's migrations, Optuna's journal and its
snapshots). What every store does is checked by the contract in tests/test_conformance_store.py."""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
import sqlite_utils
import sqlite_utils.plugins
from conftest import (
    drop_kept_tails,
    drop_letters_by_sender,
    drop_log_folders,
    drop_log_reads,
    drop_lost_pods,
    drop_optuna_history,
    drop_processed_age,
    drop_recorded_events,
    drop_recorded_study_events,
    drop_report_keys,
    drop_stopped_tally,
    drop_unreported,
    study_definition,
    undo_trial_changes,
)

from functions.adapters import sqlite_service
from functions.adapters.sqlite_first_migrations import APPLICATION_ID
from functions.adapters.sqlite_service import session_hash
from functions.adapters.sqlite_store import SqliteStore
from functions.core.disruptions import Disruption, LostPods
from functions.core.events import Event
from functions.core.kept_tails import KeptTail
from functions.core.log_cursor import Cursor
from functions.core.log_keep import Kept, LogRead
from functions.core.records import STOPPED_AT_END, StudyRecord, TrialRecord, Unreported
from functions.core.spec import KnownResult
from functions.core.trial_query import TrialQuery
from functions.core.validate import parse_study


def record(**overrides) -> StudyRecord:
    definition = study_definition(**overrides)
    return StudyRecord(parse_study(definition), definition, "/tmp", "uid-1", created_at=1.0)


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteStore(tmp_path / "k.db")
    yield s
    s.close()


def test_a_database_from_before_trial_counts_gets_them_on_opening(tmp_path: Path):
    old = SqliteStore(tmp_path / "k.db")
    old.add_study(record())
    for n, state in enumerate(["COMPLETE", "COMPLETE", "RUNNING"]):
        old.add_trial(TrialRecord("demo", n, {"x": n}, state))
    for trigger in ("trial_counted", "trial_uncounted", "trial_recounted"):
        old.db.execute(f"DROP TRIGGER {trigger}")
    old.db.execute("DROP TABLE trial_counts")
    for column in ("spec_version", "failures", "seed", "katuna_version", "optuna_version"):
        old.db.execute(f"ALTER TABLE studies DROP COLUMN {column}")
    old.db.execute("ALTER TABLE trials DROP COLUMN image_digest")
    for column in ("owned", "adopted", "nodes", "looked_at", "nodes_problem"):
        old.db.execute(f"ALTER TABLE node_pools DROP COLUMN {column}")
    old.db.execute("DROP TABLE sessions")
    undo_trial_changes(old.tables())
    old.db.execute("DROP TABLE optuna_snapshot")
    old.db.execute("PRAGMA user_version = 4")
    old.close()
    reopened = SqliteStore(tmp_path / "k.db")
    counts = reopened.count_trials("demo")
    assert (counts.complete, counts.running, counts.created) == (2, 1, 3)
    assert reopened.get_trial("demo", 2).suggested_since == 0.0, "suggested when it was created"
    reopened.update_trial("demo", 2, state="COMPLETE")
    assert reopened.count_trials("demo").complete == 3
    reopened.close()


def test_sessions_kept_in_clear_by_an_older_database_are_dropped_on_opening(tmp_path: Path):
    old = SqliteStore(tmp_path / "k.db")
    old.db.execute("DROP TABLE sessions")
    old.db.execute("CREATE TABLE sessions (id TEXT PRIMARY KEY, csrf TEXT, host TEXT, expires_at FLOAT)")
    old.db.execute("INSERT INTO sessions VALUES ('clear-session-id', 'csrf', 'localhost', ?)", [time.time() + 600])
    drop_log_reads(old.tables())
    old.db.execute("PRAGMA user_version = 16")
    old.close()
    reopened = SqliteStore(tmp_path / "k.db")
    assert reopened.db.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0
    assert reopened.session("clear-session-id") is None, "its user logs in again"
    reopened.add_session("new-session-id", "csrf", "localhost", time.time() + 600, "mac")
    assert reopened.session("new-session-id") == {"csrf": "csrf", "host": "localhost", "expires_at": pytest.approx(
        time.time() + 600, abs=5), "token_mac": "mac"}
    reopened.close()


def test_sessions_bound_to_no_api_token_are_dropped_on_opening(tmp_path: Path):
    """An older katuna did not bind a session to the token it was opened with: such a session
    would outlive a change of the token, so its user logs in again."""
    old = SqliteStore(tmp_path / "k.db")
    drop_lost_pods(old.tables())
    old.db.execute("DROP TABLE sessions")
    old.db.execute("CREATE TABLE sessions (id_sha256 TEXT PRIMARY KEY, csrf TEXT, host TEXT, expires_at FLOAT)")
    old.db.execute("INSERT INTO sessions VALUES (?, 'csrf', 'localhost', ?)",
                   [session_hash("unbound-session-id"), time.time() + 600])
    old.db.execute("PRAGMA user_version = 22")
    old.close()
    reopened = SqliteStore(tmp_path / "k.db")
    assert reopened.session("unbound-session-id") is None
    assert reopened.db.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0
    reopened.close()


def test_studies_stored_before_progress_tokens_get_a_key_of_their_own_on_opening(tmp_path: Path):
    """Each study of an older database gets a random key, so its next attempts' reports carry
    tokens no other study's attempt can make; the key is never shown."""
    old = SqliteStore(tmp_path / "k.db")
    old.add_study(record())
    old.add_study(record(name="other"))
    drop_report_keys(old.tables())
    old.db.execute("PRAGMA user_version = 18")
    old.close()
    reopened = SqliteStore(tmp_path / "k.db")
    keys = [reopened.get_study(name).report_key for name in ("demo", "other")]
    assert all(len(key) == 32 and int(key, 16) >= 0 for key in keys) and keys[0] != keys[1], keys
    assert keys[0] not in repr(reopened.get_study("demo"))
    reopened.close()


def test_a_database_of_an_older_katuna_is_recognised_and_its_studies_logs_read_from_the_named_folder(tmp_path: Path):
    """An older katuna wrote a study's logs to ``<logs>/<name>``: they stay readable there,
    while a study stored now has a folder of its own, so a later one of its name writes elsewhere."""
    old = SqliteStore(tmp_path / "k.db")
    old.add_study(record())
    drop_log_folders(old.tables())
    old.db.execute("PRAGMA application_id = 0")
    old.db.execute("PRAGMA user_version = 20")
    old.close()
    reopened = SqliteStore(tmp_path / "k.db")
    assert reopened.get_study("demo").log_folder == "demo"
    assert reopened.db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    new = reopened.add_study(record(name="other"))
    assert reopened.get_study("other").log_folder == new.log_folder == f"other/{new.uid}"
    reopened.close()


def test_a_database_from_before_the_history_count_gets_each_studys_on_opening(tmp_path: Path):
    """The trials each study of an older database created are counted once when it is opened
    (a deleted study's are gone with it), and every trial created after adds one to its study's."""
    old = SqliteStore(tmp_path / "k.db")
    with old.transaction():
        for name, asked in (("gone", 2), ("demo", 3), ("other", 1)):
            study = old.optuna_study(name, ["minimize"])
            for _ in range(asked):
                study.ask()
        optuna.delete_study(study_name="gone", storage=old.optuna_storage())
    drop_optuna_history(old.tables())
    old.db.execute("PRAGMA user_version = 24")
    old.close()
    reopened = SqliteStore(tmp_path / "k.db")
    assert [reopened.optuna_history(name) for name in ("gone", "demo", "other")] == [0, 3, 1]
    with reopened.transaction():
        reopened.optuna_study("demo", ["minimize"]).ask()
    assert [reopened.optuna_history(name) for name in ("demo", "other")] == [4, 1]
    assert reopened.optuna_histories_over(0, 10) == ([("demo", 4), ("other", 1)], 2)
    assert reopened.optuna_histories_over(1, 10) == ([("demo", 4)], 1)
    reopened.close()


TALLY = {"seen": 2, "counts": {"loss": 2}, "values": {"loss": [0.5, 0.75, 0.5, 0.0]}, "nonFinite": {}}
"""What a summary of two observations of ``loss`` learnt (:meth:`functions.core.metric_summary.Summary.tally`)."""


def test_the_running_trials_of_an_older_database_have_lost_no_pods_yet(tmp_path: Path):
    """Their attempts count the disrupted pods seen from now on."""
    old = SqliteStore(tmp_path / "k.db")
    old.add_study(record())
    old.add_trial(TrialRecord("demo", 0, {"x": 1.0}, "RUNNING"))
    drop_lost_pods(old.tables())
    old.db.execute("PRAGMA user_version = 23")
    old.close()
    reopened = SqliteStore(tmp_path / "k.db")
    assert reopened.lost_pods("demo", 0) == LostPods()
    reopened.set_lost_pods("demo", 0, LostPods().seen(1, {"uid-1": Disruption("PreemptionByScheduler")}, frozenset()))
    assert list(reopened.lost_pods("demo", 0).of(1)) == ["uid-1"]
    assert reopened.get_trial("demo", 0) == TrialRecord("demo", 0, {"x": 1.0}, "RUNNING")
    reopened.close()


def test_the_trials_of_an_older_database_have_no_events_recorded_yet(tmp_path: Path):
    """Their Trials' Events are asked for once more by the next report (the API answering that
    they are there), and kept from then on."""
    old = SqliteStore(tmp_path / "k.db")
    old.add_study(record())
    old.add_trial(TrialRecord("demo", 0, {"x": 1.0}, "RUNNING"))
    drop_recorded_events(old.tables())
    old.db.execute("PRAGMA user_version = 46")
    old.close()
    reopened = SqliteStore(tmp_path / "k.db")
    try:
        assert reopened.recorded_events("demo", [0]) == {}
        reopened.add_recorded_events("demo", {0: ["demo-0.0123456789abcdef"]})
        assert reopened.recorded_events("demo", [0]) == {0: frozenset({"demo-0.0123456789abcdef"})}
        assert reopened.get_trial("demo", 0) == TrialRecord("demo", 0, {"x": 1.0}, "RUNNING")
    finally:
        reopened.close()


def test_the_studies_of_an_older_database_have_no_end_events_recorded_yet(tmp_path: Path):
    """An ended study's end Event is asked for once more by the next report (the API answering
    that it is there), and kept from then on."""
    old = SqliteStore(tmp_path / "k.db")
    stored = old.add_study(record())
    drop_recorded_study_events(old.tables())
    old.db.execute("PRAGMA user_version = 47")
    old.close()
    reopened = SqliteStore(tmp_path / "k.db")
    try:
        assert reopened.recorded_study_events("demo", stored.uid) == frozenset()
        reopened.add_recorded_study_events("demo", stored.uid, ["demo.0123456789abcdef"])
        assert reopened.recorded_study_events("demo", stored.uid) == frozenset({"demo.0123456789abcdef"})
        assert reopened.get_study("demo") == stored
    finally:
        reopened.close()


def test_the_trials_an_older_database_holds_stopped_by_their_studys_end_start_its_stopped_tally(tmp_path: Path):
    """Those stored are tallied ``stopped`` on opening, as are those stopped from then on; the
    early-stopped are ``pruned`` alone."""
    old = SqliteStore(tmp_path / "k.db")
    old.add_study(record())
    for number in range(3):
        old.add_trial(TrialRecord("demo", number, {"x": 1.0}, "RUNNING"))
    old.update_trial("demo", 0, state="PRUNED", reason=f"{STOPPED_AT_END} (stopped by the user)")
    old.update_trial("demo", 1, state="PRUNED", reason="pruned at step 1 by the median rule")
    drop_stopped_tally(old.tables())
    old.db.execute("PRAGMA user_version = 48")
    old.close()
    reopened = SqliteStore(tmp_path / "k.db")
    try:
        assert reopened.census().trials_finished.shown()["stopped"] == 1
        reopened.update_trial("demo", 2, state="PRUNED", reason=f"{STOPPED_AT_END} (max trials reached)")
        census = reopened.census()
        assert {key: census.trials_finished.shown()[key] for key in ("pruned", "stopped")} == {"pruned": 1, "stopped": 2}
        assert {key: census.trials.shown()[key] for key in ("pruned", "stopped")} == {"pruned": 1, "stopped": 2}
    finally:
        reopened.close()


OLDER_VERDICTS = {
    0: ("metrics unavailable: objective 'los' never reported (expected lines like los=<number> on its output; its "
        "last lines report loss, accuracy: is the name in objective.metric misspelt?); last lines:\nloss=0.5",
        Unreported(("los",), ("loss", "accuracy"), "objective.metric")),
    1: ("metrics unavailable: objective 'loss' never reported (expected lines like loss=<number> on its output; its "
        "last lines print loss with a colon (loss: 0.3), which is no name=value: print loss=0.3, or give "
        "spec.metricsCollectorSpec.source.filter.metricsFormat a rule that reads it; its last lines report epoch_time: "
        "is the name in spec.objective.objectiveMetricName misspelt?); last lines:\n- loss: 0.3 - epoch_time=2",
        Unreported(("loss",), ("epoch_time",), "spec.objective.objectiveMetricName", "loss",
                   "spec.metricsCollectorSpec.source.filter.metricsFormat")),
    2: ("metrics unavailable: objective 'loss', \"it's\" never reported (expected lines like loss=<number> on its "
        "output); last lines:\ndone\nattempt 1 preempted: the node shut down", Unreported(("loss", "it's"))),
    3: ("exited with code 1; last lines:\nmetrics unavailable: objective 'loss' never reported (", None),
    4: ("the kubelet rotated the trial's log ...\nmetrics unavailable: objective 'loss' never reported (expected "
        "lines like loss=<number> on its output); last lines:\n(no output)", None),
}
"""Failed trials' reasons as older katunas wrote them, and the mark each gets beside its verdict."""


def test_the_failed_trials_an_older_database_holds_get_the_mark_of_an_objective_never_reported(tmp_path: Path):
    """The mark is read once, on opening, from the first line of the reason an older katuna
    wrote (what the trial printed instead, where it said), for the trials whose verdict was
    that; those that failed otherwise have none, and the reasons stay as they were."""
    old = SqliteStore(tmp_path / "k.db")
    old.add_study(record())
    for number, (reason, _) in OLDER_VERDICTS.items():
        old.add_trial(TrialRecord("demo", number, {"x": 1.0}, "FAIL", reason=reason))
    old.add_trial(TrialRecord("demo", 5, {"x": 1.0}, "RUNNING", reason=OLDER_VERDICTS[2][0]))
    drop_unreported(old.tables())
    old.db.execute("PRAGMA user_version = 49")
    old.close()
    reopened = SqliteStore(tmp_path / "k.db")
    try:
        found = {number: reopened.get_trial("demo", number) for number in range(6)}
        assert {number: (trial.reason, trial.unreported) for number, trial in found.items() if number < 5} \
            == OLDER_VERDICTS
        assert found[5].unreported is None and reopened.count_metrics_unavailable("demo") == 3
    finally:
        reopened.close()


def test_the_dead_letters_an_older_database_holds_are_kept_as_vouched_for(tmp_path: Path):
    """An older katuna kept every dead letter within one bound: on opening, each is taken as
    vouched for (one nobody vouched for is its cut summary already), and those nobody vouches
    for that come later are kept within a bound of their own, never pushing them out."""
    old = SqliteStore(tmp_path / "k.db")
    for n in range(2):
        old.add_dead_letter(Event("dev.katuna.trial.finished", {"trial": n}, f"older-{n}"), "why", keep=2)
    drop_letters_by_sender(old.tables())
    old.db.execute("PRAGMA user_version = 50")
    old.close()
    reopened = SqliteStore(tmp_path / "k.db")
    try:
        for n in range(3):
            reopened.add_dead_letter(Event("dev.example.flood", {}, f"flood-{n}"), "why", keep=2, vouched=False)
        with closing(reopened.dead_letters(10)) as letters:
            assert [letter["event"]["id"] for letter in letters] == ["flood-2", "flood-1", "older-1", "older-0"]
    finally:
        reopened.close()


def test_how_far_the_running_trials_logs_were_read_comes_over_from_optunas_attributes_on_opening(tmp_path: Path):
    """An older katuna kept the log's read position as Optuna trial system attributes: the
    migration carries a running trial's over, so its next read goes on from there and keeps no
    observation twice."""
    cursor = Cursor("demo-0-1-abcde", 1_700_000_000_000_000_000, 2, 3, named=False)
    kept = Kept(1, (Cursor("demo-0-1-abcde", 1_700_000_000_000_000_000, 1, 2),), TALLY)
    old = SqliteStore(tmp_path / "k.db")
    old.add_study(record())
    with old.transaction():
        study = old.optuna_study("demo", ["minimize"])
        for number in range(3):
            study.ask()
            old.add_trial(TrialRecord("demo", number, {"x": number}, "RUNNING"))
        old.add_trial(TrialRecord("demo", 3, {"x": 3}, "RUNNING"))
        storage = old.optuna_stream("demo")
        for number in (0, 2):
            trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
            storage.set_trial_system_attr(trial_id, "katuna:log_cursor", cursor.to_dict())
            storage.set_trial_system_attr(trial_id, "katuna:log_kept", kept.to_dict())
    old.update_trial("demo", 2, state="COMPLETE", values=[0.5])
    drop_log_reads(old.tables())
    old.db.execute("PRAGMA user_version = 17")
    old.close()
    reopened = SqliteStore(tmp_path / "k.db")
    assert reopened.log_read("demo", 0) == LogRead(cursor, kept)
    assert reopened.log_read("demo", 1) == LogRead(), "a running trial never read has nothing"
    assert reopened.log_read("demo", 2) == LogRead(), "an ended trial's log is read no more"
    assert reopened.log_read("demo", 3) == LogRead(), "nor has one Optuna does not know"
    assert reopened.get_trial("demo", 0) == TrialRecord("demo", 0, {"x": 0}, "RUNNING")
    reopened.close()


def test_warm_start_results_kept_with_a_study_read_back_as_stored_and_damaged_ones_fail_it(store):
    taken = (KnownResult({"x": 1.5}, (0.25,)), KnownResult({"x": -2}, (float("inf"),)))
    store.add_study(replace(record(name="warm", warmStart={"study": "demo"}), warm_results=taken))
    store.add_study(record(name="cold"))
    assert store.get_study("warm").warm_results == taken
    assert store.get_study("cold").warm_results is None
    store.db.execute("UPDATE studies SET warm_results = '[{\"params\": 3}]' WHERE name = 'warm'")
    damaged = store.get_study("warm")
    assert (damaged.status, damaged.warm_results) == ("failed", None)
    assert damaged.reason.startswith("the stored warm-start results cannot be read: "), "it must not start cold"


def _grow(store: SqliteStore, trials: int) -> list[float]:
    x = optuna.distributions.FloatDistribution(0.0, 1.0)
    with store.transaction():
        study = store.optuna_study("demo", ["minimize"])
        study.sampler = optuna.samplers.RandomSampler(seed=3)
        for _ in range(trials):
            trial = study.ask({"x": x})
            study.tell(trial, trial.params["x"])
    return [t.value for t in study.get_trials(deepcopy=False)]


def _fresh_values(path: Path) -> list[float]:
    fresh = SqliteStore(path)
    values = [t.value for t in fresh.optuna_study("demo", ["minimize"]).get_trials(deepcopy=False)]
    fresh.close()
    return values


def test_a_fresh_store_starts_from_the_journal_snapshot_and_replays_only_what_came_after(tmp_path: Path):
    path = tmp_path / "k.db"
    store = SqliteStore(path)
    values = _grow(store, 2000)
    (snapshot_at,) = store.db.execute("SELECT log_number FROM optuna_snapshot").fetchone()
    assert snapshot_at >= 5000, "a study of 2,000 trials has a snapshot"
    values = _grow(store, 3)
    assert store.db.execute("SELECT log_number FROM optuna_snapshot").fetchone() == (snapshot_at,), \
        "a few more records are replayed, not snapshotted again"

    store.db.execute("UPDATE optuna_snapshot SET optuna_version = '0.0'")
    assert _fresh_values(path) == values, "a snapshot of another Optuna version is ignored: the journal is replayed"
    store.db.execute("UPDATE optuna_snapshot SET optuna_version = ?", [optuna.__version__])
    store.db.execute("DELETE FROM optuna_journal WHERE number <= ?", [snapshot_at])
    assert _fresh_values(path) == values, "the records the snapshot holds are not read again"
    store.close()


@pytest.mark.slow
def test_a_snapshot_taken_in_a_rolled_back_transaction_is_rolled_back_too(tmp_path: Path):
    store = SqliteStore(tmp_path / "k.db")
    with pytest.raises(RuntimeError), store.transaction():
        _grow(store, 2000)
        raise RuntimeError("rolled back")
    assert store.db.execute("SELECT count(*) FROM optuna_snapshot").fetchone() == (0,)
    assert store.db.execute("SELECT count(*) FROM optuna_journal").fetchone() == (0,)
    store.close()


def _journal_reads(store: SqliteStore) -> list[str]:
    reads: list[str] = []
    store.db.conn.set_trace_callback(lambda sql: reads.append(sql) if sql.startswith("SELECT body FROM optuna_journal") else None)
    return reads


def test_the_journal_is_read_once_per_write_transaction_and_stays_coherent_across_connections(tmp_path: Path, store):
    store.add_study(record())
    other = SqliteStore(tmp_path / "k.db")
    try:
        study = store.optuna_study("demo", ["minimize"])
        reads = _journal_reads(store)
        with store.transaction():
            for value in (3.0, 2.0, 1.0):
                trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
                study.tell(trial, value)
        assert len(reads) == 1, "Optuna's dozen reads per trial cost one query under the write lock"
        assert [t.value for t in study.get_trials()] == [3.0, 2.0, 1.0], "what this transaction appended is seen"

        seen = other.optuna_study("demo", ["minimize"])
        with other.transaction():
            seen.tell(seen.ask(), 0.5)
        with store.transaction():
            assert [t.value for t in study.get_trials()] == [3.0, 2.0, 1.0, 0.5], \
                "a later transaction reads what another connection committed"
        assert [t.value for t in study.get_trials()] == [3.0, 2.0, 1.0, 0.5]
        assert len(reads) > 2, "outside a write transaction every read queries"
    finally:
        other.close()


def test_a_rolled_back_transaction_leaves_no_cached_journal_records(store):
    store.add_study(record())
    study = store.optuna_study("demo", ["minimize"])
    with pytest.raises(RuntimeError), store.transaction():
        study.tell(study.ask(), 1.0)
        raise RuntimeError("rolled back")
    with store.transaction():
        fresh = store.optuna_study("demo", ["minimize"])
        assert fresh.get_trials() == []
        fresh.tell(fresh.ask(), 2.0)
    assert [t.number for t in store.optuna_study("demo", ["minimize"]).get_trials()] == [0]


def test_a_discrete_parameter_is_sorted_and_filtered_through_the_same_index_as_any_other_field(tmp_path: Path):
    """Casting a discrete parameter's strings to numbers changes no query plan: the study's
    trials are still searched by index, never the whole table scanned."""
    store = SqliteStore(tmp_path / "k.db")
    store.add_study(record(parameters=[{"name": "b", "type": "discrete", "values": ["16", "32"]},
                                       {"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
                           trialTemplate={"command": ["train", "${trialParameters.b}", "${trialParameters.x}"]}))
    plans = []
    for field in ("param:b", "param:x"):
        statements: list[str] = []
        store.db.conn.set_trace_callback(statements.append)
        store.query_trials("demo", TrialQuery(ranges=((field, 1.0, None),), sort=field))
        store.db.conn.set_trace_callback(None)
        page = next(s for s in statements if s.startswith("SELECT") and "FROM trials WHERE" in s and "ORDER BY" in s)
        plans.append([row[3] for row in store.db.execute(f"EXPLAIN QUERY PLAN {page}").fetchall()])
    assert plans[0] == plans[1]
    assert any(step.startswith("SEARCH trials USING INDEX") for step in plans[0]), plans[0]
    assert not any(step.startswith("SCAN trials") for step in plans[0]), plans[0]
    store.close()


class _MarkingPlugin:
    """A sqlite-utils plugin, as a package installed beside katuna may bring one: it gives every
    connection sqlite-utils prepares a SQL function of its own."""

    @sqlite_utils.hookimpl
    def prepare_connection(self, conn) -> None:
        conn.create_function("plugin_marker", 0, lambda: "plugged")


def test_a_sqlite_utils_plugin_installed_beside_katuna_leaves_its_connections_alone(tmp_path: Path):
    plugin = _MarkingPlugin()
    sqlite_utils.plugins.pm.register(plugin)
    try:
        assert sqlite_utils.Database(memory=True).execute("SELECT plugin_marker()").fetchone() == ("plugged",)
        store = SqliteStore(tmp_path / "katuna.db")
        with pytest.raises(Exception, match="no such function: plugin_marker"):
            store.db.execute("SELECT plugin_marker()")
        store.close()
    finally:
        sqlite_utils.plugins.pm.unregister(plugin)


def test_a_kept_tail_is_kept_per_attempt_never_lost_to_a_later_empty_one_and_goes_with_its_study(tmp_path: Path):
    """A database from before the kept tails gets their table on opening. A stop made again once
    the pods are gone reads no line: it leaves the tail the first stop kept, where it fills one
    that kept none. Deleting the study deletes its tails."""
    old = SqliteStore(tmp_path / "k.db")
    old.add_study(record())
    drop_kept_tails(old.tables())
    old.db.execute("PRAGMA user_version = 32")
    old.close()
    store = SqliteStore(tmp_path / "k.db")
    try:
        store.keep_tail("demo", 0, 1, KeptTail("", "deleted Job demo-0"))
        store.keep_tail("demo", 0, 1, KeptTail("epoch=1\n", "deleted Job demo-0", whole=True))
        store.keep_tail("demo", 0, 1, KeptTail("", "deleted Job demo-0"))
        store.keep_tail("demo", 0, 2, KeptTail("epoch=9\n", "suspended Job demo-0-a2"))
        assert store.kept_tail("demo", 0, 1) == KeptTail("epoch=1\n", "deleted Job demo-0", whole=True)
        assert store.kept_tail("demo", 0, 2) == KeptTail("epoch=9\n", "suspended Job demo-0-a2")
        assert store.kept_tail("demo", 1, 1) is None
        store.delete_study("demo")
        assert store.kept_tail("demo", 0, 1) is None
    finally:
        store.close()


def _prune_plan(store: SqliteStore) -> list[str]:
    """The query plan of the pruning of old handling records that the next record makes."""
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    store.record_processed(f"event-{len(statements)}-{time.time()}", "suggest", [])
    store.db.conn.set_trace_callback(None)
    prune = next(s for s in statements if s.startswith("DELETE FROM processed_events"))
    return [row[3] for row in store.db.execute(f"EXPLAIN QUERY PLAN {prune}").fetchall()]


def test_pruning_old_handling_records_reads_them_through_an_index(tmp_path: Path, monkeypatch):
    """Pruning the handlings' records past their week, inside a handling's transaction, finds
    them through the index of the records by age: a week of a busy service's handlings is
    hundreds of megabytes, which a scan read while holding the write lock. A database from
    before the index gets it on opening."""
    monkeypatch.setattr(sqlite_service, "PRUNE_EVERY", 1)
    store = SqliteStore(tmp_path / "k.db")
    store.record_processed("old", "suggest", [])
    store.db.execute("UPDATE processed_events SET processed_at = ?", [time.time() - sqlite_service.PROCESSED_KEPT - 1])
    assert _prune_plan(store) == ["SEARCH processed_events USING INDEX processed_events_age (processed_at<?)"]
    assert store.processed("old", "suggest") is None
    drop_processed_age(store.tables())
    store.db.execute("PRAGMA user_version = 41")
    store.close()
    reopened = SqliteStore(tmp_path / "k.db")
    try:
        assert _prune_plan(reopened) == ["SEARCH processed_events USING INDEX processed_events_age (processed_at<?)"]
    finally:
        reopened.close()
