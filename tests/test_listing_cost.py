"""What a large study's listings cost does not grow with its size where a page or a report is
all that is asked: a Katib Experiment's status (the latest trials of each state), as the tick
checks it and each report writes it, reads the same at 3,300 trials as at 1,100, and a page of
the dashboard's trial table in another order than the trials' numbers sorts their numbers and
reads whole the page's rows alone. Work is counted in SQLite's virtual-machine
steps, or in the statements run, never in time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import drop_state_order, study_definition
from test_event_cost import STEPS, sqlite_work

from functions.adapters.sqlite_migrations import STATE_ORDER
from functions.adapters.sqlite_store import SqliteStore
from functions.core.records import COMPLETE, FAIL, StudyRecord, TrialQuery, TrialRecord
from functions.core.resources import KATIB_API_VERSIONS, Origin, Ref
from functions.core.validate import parse_study
from functions.handlers.writeback import behind

SMALL, LARGE = 1_100, 3_300
"""Study sizes whose work is compared: each has more failed trials than a status lists."""

ORIGIN = Origin(Ref("Experiment", "team", "big", KATIB_API_VERSIONS[0]), "uid-experiment", 1)


def experiment(folder: Path, trials: int) -> tuple[SqliteStore, StudyRecord]:
    """A Katib Experiment's study of ``trials`` trials (:func:`experiment_trials`), none
    running, waiting or pruned."""
    store = SqliteStore(folder / f"big-{trials}.db")
    definition = study_definition(name="big", maxTrials=trials + 10)
    record = store.add_study(StudyRecord(parse_study(definition), definition, str(folder), f"uid-{trials}",
                                         origin=ORIGIN.to_dict()))
    with store.transaction():
        for trial in experiment_trials(trials):
            store.add_trial(trial)
    return store, record


@pytest.fixture(scope="module")
def experiments(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, tuple[SqliteStore, StudyRecord]]]:
    """:func:`experiment` of :data:`SMALL` and :data:`LARGE` trials, built once."""
    folder = tmp_path_factory.mktemp("experiments")
    built = {trials: experiment(folder, trials) for trials in (SMALL, LARGE)}
    yield built
    for store, _ in built.values():
        store.close()


def check_work(store: SqliteStore, record: StudyRecord) -> int:
    """The SQLite work of the tick's check of whether the Experiment's status lags the store,
    its trials reported up to their latest change."""
    store.set_trials_reported("big", store.trial_changes("big", 0)[1])
    with sqlite_work(store) as counted:
        assert behind(record, ORIGIN, {"status": {}}, store)
    return counted[0]


def test_a_katib_experiments_status_reads_the_latest_trials_of_each_state_not_every_trial(experiments):
    """Its lists of the running, waiting and pruned trials, none of which the study has, read
    no trial: SQLite walked all of them by number, looking for one in that state."""
    small, large = (check_work(*experiments[trials]) for trials in (SMALL, LARGE))
    assert large <= 1.2 * small, f"{large * STEPS} SQLite steps at {LARGE} trials against {small * STEPS} at {SMALL}"


def test_a_database_from_before_the_index_of_trials_by_state_and_number_gets_it(tmp_path: Path):
    store, _ = experiment(tmp_path, 30)
    drop_state_order(store.tables())
    store.db.execute("PRAGMA user_version = 42")
    store.close()
    reopened = SqliteStore(tmp_path / "big-30.db")
    try:
        plan = reopened.db.execute("EXPLAIN QUERY PLAN SELECT * FROM trials WHERE study = ? AND state IN (?) "
                                   "ORDER BY number DESC LIMIT 20", ["big", "RUNNING"]).fetchall()
        assert [row[3] for row in plan] == [f"SEARCH trials USING INDEX {STATE_ORDER} (study=? AND state=?)"]
    finally:
        reopened.close()


def test_a_page_of_the_trial_table_in_a_metrics_order_sorts_numbers_and_reads_its_own_rows(tmp_path: Path):
    """A deep page sorted by a metric: the sort holds each trial's number and value (it held
    every trial's whole row before the page, a row a trial's parameters and metrics), and the
    page's rows alone are read whole, in the page's order."""
    store, _ = experiment(tmp_path, 400)
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    try:
        total, page = store.trials_page("big", TrialQuery(sort="metric:loss", descending=True, limit=10, offset=300))
        shown = list(page)
    finally:
        store.db.conn.set_trace_callback(None)
        store.close()
    every = sorted((t for t in experiment_trials(400) if t.metrics), key=lambda t: (-t.metrics["loss"], -t.number))
    assert total == 400 and [t.number for t in shown] == [t.number for t in (every + failed_trials(400))[300:310]]
    sorted_reads = [s for s in statements if "ORDER BY" in s and "FROM trials" in s]
    assert len(sorted_reads) == 1 and sorted_reads[0].startswith("SELECT number FROM trials"), sorted_reads
    whole = [s for s in statements if s.startswith("SELECT * FROM trials")]
    assert len(whole) == 10, whole


def experiment_trials(trials: int) -> list[TrialRecord]:
    """``trials`` trials, all completed but one in ten failed, each completed one's loss its
    own (``trials`` is prime to 37)."""
    return [TrialRecord("big", n, {"x": 0.5}, FAIL, reason="exited with code 1") if n % 10 == 7 else
            TrialRecord("big", n, {"x": 0.5}, COMPLETE, values=[n * 37 % trials / 10],
                        metrics={"loss": n * 37 % trials / 10}) for n in range(trials)]


def failed_trials(trials: int) -> list[TrialRecord]:
    """The trials without a loss, last in a metric's order, by number from the latest."""
    return sorted((t for t in experiment_trials(trials) if not t.metrics), key=lambda t: -t.number)
