"""What a large study's listings cost does not grow with its size where a page or a report is
all that is asked: a Katib Experiment's status (the latest trials of each state), as the tick
checks it and each report writes it, reads the same at 3,300 trials as at 1,100, and a page of
the dashboard's trial table in another order than the trials' numbers sorts their numbers and
reads whole the page's rows alone; a page that follows (or precedes) a trial, as the pager's
links ask, does the work of the first page at any depth, where a page counted by its place
sorted every trial before it. Work is counted in SQLite's virtual-machine
steps, or in the statements run, never in time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import drop_state_order, study_definition
from test_event_cost import STEPS, sqlite_work

from functions.adapters.sqlite_migrations import STATE_ORDER
from functions.adapters.sqlite_store import SqliteStore
from functions.core.records import COMPLETE, FAIL, StudyRecord, TrialRecord
from functions.core.resources import KATIB_API_VERSIONS, Origin, Ref
from functions.core.trial_query import TrialQuery
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
    assert len(sorted_reads) == 1 and sorted_reads[0].startswith("SELECT number FROM (SELECT number,"), sorted_reads
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


ORDERS = [("metric:loss", True), ("metric:loss", False), ("number", True), ("number", False)]
"""Orders the table's pages are walked in: by a metric (the failed trials, without one, last) and by number."""


def reference(trials: list[TrialRecord], sort: str, descending: bool) -> list[int]:
    """The numbers of ``trials`` in the table's order: by ``sort``, then number, the same way;
    those without the field last."""
    def key(trial: TrialRecord) -> tuple:
        value = trial.number if sort == "number" else trial.metrics.get(sort.partition(":")[2])
        sign = -1 if descending else 1
        return (value is None, sign * (value or 0), sign * trial.number)
    return [trial.number for trial in sorted(trials, key=key)]


def numbers(store: SqliteStore, query: TrialQuery) -> list[int]:
    return [trial.number for trial in store.trials_page("big", query)[1]]


@pytest.mark.parametrize(("sort", "descending"), ORDERS)
def test_the_pages_that_follow_or_precede_a_trial_are_the_pages_of_the_tables_order(tmp_path: Path, sort: str,
                                                                                    descending: bool):
    """Walked forward from the first page by the last trial of each (``after``), and back from
    the last by the first of each (``before``), the pages are those of the order, through the
    trials without a loss too, and the page counted from its place (its second half read from
    the end) is the same."""
    store, _ = experiment(tmp_path, 97)
    order, size = reference(experiment_trials(97), sort, descending), 10
    pages = [order[start:start + size] for start in range(0, len(order), size)]
    query = TrialQuery(sort=sort, descending=descending, limit=size)
    walked = [numbers(store, query)]
    while len(walked) < len(pages) + 1 and walked[-1]:
        walked.append(numbers(store, TrialQuery(sort=sort, descending=descending, limit=size, after=walked[-1][-1])))
    assert walked == [*pages, []]
    back = [numbers(store, TrialQuery(sort=sort, descending=descending, limit=size, before=order[-1])) + [order[-1]]]
    while len(back) < len(pages) + 1 and back[-1][0] != order[0]:
        back.append(numbers(store, TrialQuery(sort=sort, descending=descending, limit=size, before=back[-1][0])))
    assert [number for page in reversed(back) for number in page] == order
    assert [numbers(store, replace(query, offset=start)) for start in range(0, 97, size)] == pages
    assert numbers(store, replace(query, offset=5)) == order[5:15]
    assert numbers(store, replace(query, offset=90)) == order[90:]
    assert numbers(store, replace(query, after=10_000, offset=20)) == pages[2], "a trial not stored: by its place"
    store.close()


def test_a_deep_page_that_follows_a_trial_costs_what_the_first_page_does(tmp_path: Path):
    """Pages of the 3,300 trials in a metric's order, each found from the trial it follows: no
    more SQLite work the deeper the page lies (the trials before it never reach the sort), where
    a page counted from its place works more the more trials come before it."""
    store, _ = experiment(tmp_path, LARGE)
    query = TrialQuery(sort="metric:loss", descending=True, limit=50)
    order = reference(experiment_trials(LARGE), "metric:loss", True)
    following, placed = {}, {}
    for depth in (100, 800, 1600):
        for work, asked in ((following, replace(query, after=order[depth - 1])), (placed, replace(query, offset=depth))):
            with sqlite_work(store) as counted:
                assert numbers(store, asked) == order[depth:depth + 50]
            work[depth] = counted[0]
    store.close()
    assert following[1600] <= following[800] <= following[100], following
    assert placed[100] < placed[800] < placed[1600] and following[1600] < placed[1600], (following, placed)
