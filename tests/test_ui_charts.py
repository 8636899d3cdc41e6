"""The study page's charts asked for at once, through the real app (Flask's test clients, one per
thread, on a real Runtime and SQLite file): a process reads a study's Optuna history once,
whatever the threads asking, then replays into it only the records each change adds, keeps a
bounded number of histories, builds each chart once, and keeps answering ``/healthz`` while
charts wait."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import optuna
import pytest
from conftest import study_definition
from optuna.distributions import FloatDistribution

from functions.adapters.sqlite_histories import ChartHistories
from functions.adapters.sqlite_store import SqliteStore
from functions.adapters.web import create_app, ui
from functions.core.records import COMPLETE, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.runtime import Runtime
from functions.settings import Settings

TRIALS = 60
CHARTS = ("history", "parallel", "slice?params={}", "contour?params={}", "importance", "intermediate")


def add_study(store: SqliteStore, name: str, trials: int = TRIALS) -> None:
    """A completed study of ``trials`` trials, written as katuna writes them: its rows and Optuna's journal."""
    definition = study_definition(name=name, maxTrials=trials, parameters=[
        {"name": "x", "type": "float", "min": 0.0, "max": 1.0}, {"name": "y", "type": "float", "min": 0.0, "max": 1.0}])
    definition["trialTemplate"]["command"] += ["--y", "${trialParameters.y}"]
    store.add_study(StudyRecord(parse_study(definition), definition, "/tmp", f"uid-{name}", status="completed"))
    space = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}
    with store.transaction():
        study = store.optuna_study(name, ["minimize"])
        for number in range(trials):
            params = {"x": number / trials, "y": (number * 7 % trials) / trials}
            store.add_trial(TrialRecord(name, number, params, COMPLETE, values=[sum(params.values())]))
            study.add_trial(optuna.trial.create_trial(params=params, distributions=space, value=sum(params.values())))


@pytest.fixture
def runtime(tmp_path) -> Iterator[Runtime]:
    running = Runtime(Settings(db=tmp_path / "katuna.db"))
    add_study(running.store(), "charted")
    ui.chart_cache.clear()
    try:
        yield running
    finally:
        running.close()


def fetch_at_once(runtime: Runtime, paths: list[str]) -> list[int]:
    """The statuses of ``paths``, each asked on a thread of its own at the same time."""
    app = create_app(runtime)
    start = threading.Barrier(len(paths))

    def get(path: str) -> int:
        client = app.test_client()
        start.wait()
        return client.get(path).status_code

    with ThreadPoolExecutor(len(paths)) as pool:
        return list(pool.map(get, paths))


def charts(name: str, params: str = "x,y") -> list[str]:
    return [f"/ui/studies/{name}/plots/" + chart.format(params) for chart in CHARTS]


def test_charts_asked_at_once_read_the_history_once_and_build_each_chart_once(runtime: Runtime):
    built = ui.chart_cache.built
    assert fetch_at_once(runtime, charts("charted") * 2) == [200] * len(CHARTS) * 2
    assert runtime.histories.reads == 1, "twelve threads, one read of the study's journal"
    assert ui.chart_cache.built - built == len(CHARTS), "a chart asked twice at once is built once"


def test_other_parameters_rebuild_only_the_charts_drawn_for_them(runtime: Runtime):
    fetch_at_once(runtime, charts("charted"))
    built = ui.chart_cache.built
    assert fetch_at_once(runtime, charts("charted", params="y,x")) == [200] * len(CHARTS)
    assert ui.chart_cache.built - built == 2, "slice and contour; history, parallel and the rest are kept"
    assert runtime.histories.reads == 1


def test_names_the_study_does_not_have_neither_change_a_chart_nor_build_it_again(runtime: Runtime):
    """The chart and its cache key are drawn for two distinct known names at most: junk appended
    to ``params`` cannot have the same chart built again under a new key."""
    fetch_at_once(runtime, ["/ui/studies/charted/plots/slice?params=x,y"])
    built = ui.chart_cache.built
    asked = [f"/ui/studies/charted/plots/slice?params=x,y,{junk}" for junk in ("j1", "j2", "x", "y,x")]
    assert fetch_at_once(runtime, [*asked, "/ui/studies/charted/plots/slice?params=x,x,y"]) == [200] * 5
    assert ui.chart_cache.built == built


def add_trial(store: SqliteStore, name: str = "charted") -> int:
    """One more completed trial in the study's Optuna journal; how many records that took."""
    before = store.optuna_version(name)
    with store.transaction():
        store.optuna_study(name, ["minimize"]).add_trial(optuna.trial.create_trial(
            params={"x": 0.5, "y": 0.5}, distributions={"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)},
            value=1.0))
    return store.optuna_version(name) - before


def test_a_changed_study_s_history_replays_only_the_records_that_came_after_it(runtime: Runtime):
    fetch_at_once(runtime, charts("charted"))
    store = runtime.store()
    histories = runtime.histories
    replayed = histories.replayed
    assert replayed == store.optuna_version("charted"), "the first chart replays the whole journal"
    added = add_trial(store)
    assert fetch_at_once(runtime, charts("charted")) == [200] * len(CHARTS)
    assert (histories.reads, histories.extends, histories.kept()) == (1, 1, 1)
    assert histories.replayed - replayed == added, "only the new trial's records are read"
    storage = store.chart_storage("charted", store.optuna_version("charted"))
    assert len(storage.get_all_trials(0, deepcopy=False)) == TRIALS + 1
    assert (histories.reads, histories.extends) == (1, 1), "a history as new as the journal is not read again"


def test_the_trials_a_chart_holds_stay_as_they_were_while_its_history_is_extended(runtime: Runtime):
    store = runtime.store()
    with store.transaction():
        asked = store.optuna_study("charted", ["minimize"]).ask()
    held = store.chart_storage("charted", store.optuna_version("charted")).get_all_trials(0, deepcopy=False)
    with store.transaction():
        store.optuna_study("charted", ["minimize"]).tell(asked, 0.25)
    add_trial(store)
    now = store.chart_storage("charted", store.optuna_version("charted")).get_all_trials(0, deepcopy=False)
    assert runtime.histories.extends == 1
    assert len(held) == TRIALS + 1 and held[-1].state == optuna.trial.TrialState.RUNNING
    assert len(now) == TRIALS + 2 and now[TRIALS].state == optuna.trial.TrialState.COMPLETE and now[TRIALS].value == 0.25


def test_a_study_created_again_under_its_name_is_read_from_its_own_stream(runtime: Runtime):
    store = runtime.store()
    assert len(store.chart_storage("charted", store.optuna_version("charted")).get_all_trials(0)) == TRIALS
    store.delete_study("charted")
    add_study(store, "charted", trials=5)
    storage = store.chart_storage("charted", store.optuna_version("charted"))
    assert [t.number for t in storage.get_all_trials(0, deepcopy=False)] == list(range(5))
    assert (runtime.histories.reads, runtime.histories.extends) == (2, 0), "never extended across streams"


def test_the_histories_kept_are_bounded_by_their_trials(tmp_path):
    histories = ChartHistories(kept_trials=TRIALS + TRIALS // 2)
    store = SqliteStore(tmp_path / "katuna.db", histories=histories)
    for name in ("first", "second"):
        add_study(store, name)
        storage = store.chart_storage(name, store.optuna_version(name))
        assert len(storage.get_all_trials(0, deepcopy=False)) == TRIALS
    assert histories.reads == 2 and histories.kept() == 1, "the first study's history went when the second came"
    assert store.chart_storage("none", 0) is None
    store.close()


def test_a_history_read_for_charts_takes_no_writes(tmp_path):
    store = SqliteStore(tmp_path / "katuna.db")
    add_study(store, "charted")
    storage = store.chart_storage("charted", store.optuna_version("charted"))
    with pytest.raises(PermissionError, match="takes no writes"):
        storage.set_study_user_attr(0, "note", "x")
    store.close()


def test_healthz_answers_while_charts_wait_for_a_history(runtime: Runtime):
    app = create_app(runtime)
    answers: list[int] = []
    with runtime.histories._reading:  # a read of another study's history under way
        waiting = threading.Thread(target=lambda: answers.append(app.test_client().get(charts("charted")[0]).status_code))
        waiting.start()
        assert app.test_client().get("/healthz").status_code == 200
        assert answers == [] and waiting.is_alive()
    waiting.join()
    assert answers == [200]
