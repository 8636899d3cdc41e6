"""The study page's charts asked for at once, through the real app (Flask's test clients, one per
thread, on a real Runtime and SQLite file): a process reads a study's Optuna history once,
whatever the threads asking, then replays into it only the records each change adds, keeps a
bounded number of histories, builds each chart once, and keeps answering ``/healthz`` while
charts wait. A chart reads a bounded number of a study's values, so a wide study's charts are
drawn from fewer of its trials, and say so."""

from __future__ import annotations

import gzip
import json
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import optuna
import pytest
from conftest import study_definition
from optuna.distributions import FloatDistribution

from functions.adapters.sqlite_histories import ChartHistories
from functions.adapters.sqlite_store import SqliteStore
from functions.adapters.web import create_app, plots
from functions.adapters.web.chart_cache import Chart, _ChartCache, chart_cache
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
    chart_cache.clear()
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
    built = chart_cache.built
    assert fetch_at_once(runtime, charts("charted") * 2) == [200] * len(CHARTS) * 2
    assert runtime.histories.reads == 1, "twelve threads, one read of the study's journal"
    assert chart_cache.built - built == len(CHARTS), "a chart asked twice at once is built once"


def test_other_parameters_rebuild_only_the_charts_drawn_for_them(runtime: Runtime):
    fetch_at_once(runtime, charts("charted"))
    built = chart_cache.built
    assert fetch_at_once(runtime, charts("charted", params="y,x")) == [200] * len(CHARTS)
    assert chart_cache.built - built == 2, "slice and contour; history, parallel and the rest are kept"
    assert runtime.histories.reads == 1


def test_another_objective_rebuilds_only_the_charts_drawn_for_one_objective(runtime: Runtime):
    """The page asks for every chart with the objective it picked: the Pareto front draws every
    objective and the intermediate values none, so picking another builds neither again."""
    add_wide_study(runtime.store(), "two", width=2, trials=20, objectives=2)
    asked = ("pareto", "intermediate", "history")
    assert fetch_at_once(runtime, [f"/ui/studies/two/plots/{kind}?objective=0" for kind in asked]) == [200] * 3
    built = chart_cache.built
    assert fetch_at_once(runtime, [f"/ui/studies/two/plots/{kind}?objective=1" for kind in asked]) == [200] * 3
    assert chart_cache.built - built == 1, "the history of the other objective"


def test_names_the_study_does_not_have_are_refused_and_a_repeated_name_builds_the_chart_not_again(runtime: Runtime):
    """A misspelt name would draw other axes than the ones asked for: a ``400`` naming it, with
    nothing built. The chart and its cache key are drawn for two distinct known names at most:
    a name repeated cannot have the same chart built again under a new key."""
    fetch_at_once(runtime, ["/ui/studies/charted/plots/slice?params=x,y"])
    built = chart_cache.built
    client = create_app(runtime).test_client()
    for junk in ("x,y,j1", "nosuch", "y,x,"):
        refused = client.get(f"/ui/studies/charted/plots/contour?params={junk}")
        assert refused.status_code == 400, junk
        assert refused.get_json()["message"].startswith("params: "), refused.get_json()
    assert client.get("/ui/studies/charted/plots/slice?params=nosuch").get_json()["message"] == (
        "params: 'nosuch' is no parameter of study 'charted'; expected names of its parameters, comma-separated "
        "('x', 'y')")
    asked = [f"/ui/studies/charted/plots/slice?params={names}" for names in ("x,y,x", "x,x,y", "x,y,y")]
    assert fetch_at_once(runtime, asked) == [200] * 3
    assert chart_cache.built == built


def add_trial(store: SqliteStore, name: str = "charted") -> int:
    """One more completed trial in the study's Optuna journal; how many records that took."""
    before = store.optuna_version(name)
    with store.transaction():
        store.optuna_study(name, ["minimize"]).add_trial(optuna.trial.create_trial(
            params={"x": 0.5, "y": 0.5}, distributions={"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)},
            value=1.0))
    return store.optuna_version(name) - before


def test_a_chart_of_no_known_kind_is_a_404_and_a_parameter_it_does_not_take_a_400(runtime: Runtime):
    """Neither is a message such as a chart still to come shows: a misspelt kind or ``param``
    would look like a chart the study cannot have yet. Nothing is read or built for either."""
    client, built = create_app(runtime).test_client(), chart_cache.built
    missing = client.get("/ui/studies/charted/plots/nope")
    assert (missing.status_code, missing.get_json()["error"]) == (404, "not_found")
    for query, named in (("param=x", "param"), ("params=x&params=y", "params"), ("objective=0&objective=0", "objective")):
        refused = client.get(f"/ui/studies/charted/plots/slice?{query}")
        assert (refused.status_code, refused.get_json()["message"].partition(":")[0]) == (400, named), query
    assert chart_cache.built == built
    assert client.get("/ui/studies/charted/plots/slice?params=x,y&objective=0").status_code == 200


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
    storage = store.chart_history("charted", store.optuna_version("charted")).storage
    assert len(storage.get_all_trials(0, deepcopy=False)) == TRIALS + 1
    assert (histories.reads, histories.extends) == (1, 1), "a history as new as the journal is not read again"


def test_the_trials_a_chart_holds_stay_as_they_were_while_its_history_is_extended(runtime: Runtime):
    store = runtime.store()
    with store.transaction():
        asked = store.optuna_study("charted", ["minimize"]).ask()
    charted = store.chart_history("charted", store.optuna_version("charted"))
    held = charted.storage.get_all_trials(0, deepcopy=False)
    with store.transaction():
        store.optuna_study("charted", ["minimize"]).tell(asked, 0.25)
    add_trial(store)
    charted = store.chart_history("charted", store.optuna_version("charted"))
    now = charted.storage.get_all_trials(0, deepcopy=False)
    assert runtime.histories.extends == 1
    assert len(held) == TRIALS + 1 and held[-1].state == optuna.trial.TrialState.RUNNING
    assert len(now) == TRIALS + 2 and now[TRIALS].state == optuna.trial.TrialState.COMPLETE and now[TRIALS].value == 0.25


def test_a_study_created_again_under_its_name_is_read_from_its_own_stream(runtime: Runtime):
    store = runtime.store()
    assert len(store.chart_history("charted", store.optuna_version("charted")).storage.get_all_trials(0)) == TRIALS
    store.delete_study("charted")
    add_study(store, "charted", trials=5)
    storage = store.chart_history("charted", store.optuna_version("charted")).storage
    assert [t.number for t in storage.get_all_trials(0, deepcopy=False)] == list(range(5))
    assert (runtime.histories.reads, runtime.histories.extends) == (2, 0), "never extended across streams"


def test_the_histories_kept_are_bounded_by_their_values(tmp_path):
    """A trial of ``add_study`` is one record setting two parameters and one value: four cells."""
    histories = ChartHistories(kept_cells=(TRIALS + TRIALS // 2) * 4)
    store = SqliteStore(tmp_path / "katuna.db", histories=histories)
    for name in ("first", "second"):
        add_study(store, name)
        storage = store.chart_history(name, store.optuna_version(name)).storage
        assert len(storage.get_all_trials(0, deepcopy=False)) == TRIALS
    assert histories.reads == 2 and histories.kept() == 1, "the first study's history went when the second came"
    assert store.chart_history("none", 0) is None
    store.close()


def test_a_history_read_for_charts_takes_no_writes(tmp_path):
    store = SqliteStore(tmp_path / "katuna.db")
    add_study(store, "charted")
    storage = store.chart_history("charted", store.optuna_version("charted")).storage
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


def add_wide_study(store: SqliteStore, name: str, width: int, trials: int, objectives: int = 1) -> StudyRecord:
    """A completed study of ``width`` parameters and ``trials`` trials, as :func:`add_study`
    writes one; with two objectives every trial is on the Pareto front."""
    names = [f"p{i}" for i in range(width)]
    metrics = [{"name": "loss", "direction": "minimize"}, {"name": "size", "direction": "maximize"}][:objectives]
    definition = study_definition(name=name, maxTrials=trials, objective={"metrics": metrics},
                                  parameters=[{"name": p, "type": "float", "min": 0.0, "max": 1.0} for p in names])
    definition["trialTemplate"]["command"] = ["train", *(f"${{trialParameters.{p}}}" for p in names)]
    record = store.add_study(StudyRecord(parse_study(definition), definition, "/tmp", f"uid-{name}",
                                         status="completed"))
    space = {p: FloatDistribution(0.0, 1.0) for p in names}
    with store.transaction():
        study = store.optuna_study(name, ["minimize", "maximize"][:objectives])
        for number in range(trials):
            params = {p: (number * (i + 1) % trials) / trials for i, p in enumerate(names)}
            values = [number / trials, number / trials][:objectives]
            store.add_trial(TrialRecord(name, number, params, COMPLETE, values=values))
            study.add_trial(optuna.trial.create_trial(params=params, distributions=space, values=values))
    return record


def test_a_chart_reads_a_bounded_number_of_values_so_a_wide_study_is_drawn_from_fewer_trials(tmp_path):
    """Each trial here is one record setting its parameters and its value: 2 + 1 + 1 cells for
    the narrow study, 40 + 1 + 1 for the wide one. A history is read up to the budget, when first
    read or when brought up to date, and no further however the study grows; the charts drawn
    from it say which trials they show."""
    histories = ChartHistories(read_cells=2_000)
    store = SqliteStore(tmp_path / "katuna.db", histories=histories)
    add_wide_study(store, "narrow", width=2, trials=200)
    wide = add_wide_study(store, "wide", width=40, trials=200)
    narrow_read = store.chart_history("narrow", store.optuna_version("narrow"))
    wide_read = store.chart_history("wide", store.optuna_version("wide"))
    assert narrow_read.cut is None and len(narrow_read.storage.get_all_trials(0)) == 200
    assert wide_read.cut == (2_000 // 42, 200, 2_000), "the wide study's first 47 trials of 200"
    assert len(wide_read.storage.get_all_trials(0)) == 2_000 // 42
    reads, replayed = histories.reads, histories.replayed
    with store.transaction():
        store.optuna_study("wide", ["minimize"]).add_trial(optuna.trial.create_trial(
            params={f"p{i}": 0.5 for i in range(40)}, distributions={f"p{i}": FloatDistribution(0.0, 1.0)
                                                                       for i in range(40)}, value=0.5))
    again = store.chart_history("wide", store.optuna_version("wide"))
    assert again.cut == (47, 201, 2_000), "a history cut is read no further"
    assert (histories.reads, histories.replayed) == (reads, replayed)
    space = {"p0": FloatDistribution(0.0, 1.0), "p1": FloatDistribution(0.0, 1.0)}
    with store.transaction():
        study = store.optuna_study("narrow", ["minimize"])
        for _ in range(400):
            study.add_trial(optuna.trial.create_trial(params={"p0": 0.5, "p1": 0.5}, distributions=space, value=0.5))
    grown = store.chart_history("narrow", store.optuna_version("narrow"))
    assert grown.cut == (200 + (2_000 - 801) // 4, 600, 2_000), "a history brought up to date stops at the budget too"
    figure = json.loads(plots.figure_json(again.storage, wide, "history", cut=again.cut))
    assert figure["layout"]["title"]["text"] == ("the study's first 47 of 201 trials: a chart reads 2,000 values at "
                                                 "most<br>the trial table lists every trial")
    assert len(figure["data"][0]["x"]) == 47
    store.close()


def test_the_parallel_coordinates_of_a_wide_study_draw_a_bounded_sample(tmp_path):
    """250 parameters and an objective over 420 trials is 105,420 values: past
    :data:`~functions.adapters.web.plots.PARALLEL_VALUES`, so the chart draws an even sample."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        add_wide_study(runtime.store(), "wide", width=250, trials=420)
        response = create_app(runtime).test_client().get("/ui/studies/wide/plots/parallel")
    finally:
        runtime.close()
    figure = json.loads(response.get_data())
    dimensions = figure["data"][0]["dimensions"]
    drawn = plots.PARALLEL_VALUES // 251
    assert len(dimensions) == 251 and {len(d["values"]) for d in dimensions} == {drawn}
    assert figure["layout"]["title"]["text"] == f"from {drawn} of 420 completed trials"


def test_a_sampled_chart_is_drawn_from_the_studys_own_trials_copying_none(tmp_path, monkeypatch):
    """Parallel coordinates and a contour past their bounds draw a sample of the history's
    trials as they are: none is copied into a study of its own, which cost seconds for the
    25,000 a study of 100,000 trials draws. The sample holds the best trial, and says so."""
    store = SqliteStore(tmp_path / "katuna.db")
    record = add_wide_study(store, "wide", width=250, trials=420)
    history = store.chart_history("wide", store.optuna_version("wide"))

    def refused(*args, **kwargs):
        raise AssertionError("a trial was copied into a study of its own")

    monkeypatch.setattr(optuna.storages.InMemoryStorage, "create_new_trial", refused)
    drawn = plots.PARALLEL_VALUES // 251
    parallel = json.loads(plots.figure_json(history.storage, record, "parallel"))
    contour = json.loads(plots.figure_json(history.storage, record, "contour", ["p0", "p1"]))
    store.close()
    dimensions = parallel["data"][0]["dimensions"]
    assert {len(d["values"]) for d in dimensions} == {drawn} and 0.0 in dimensions[0]["values"]
    assert parallel["layout"]["title"]["text"] == f"from {drawn} of 420 completed trials"
    assert contour["layout"]["title"]["text"] == f"from {plots.CONTOUR_TRIALS} of 420 completed trials"


def test_a_contour_is_drawn_when_the_pareto_front_holds_more_trials_than_its_sample(tmp_path):
    """Every one of 320 trials is on the front, and the contour draws 300 of them."""
    store = SqliteStore(tmp_path / "katuna.db")
    record = add_wide_study(store, "front", width=2, trials=320, objectives=2)
    history = store.chart_history("front", store.optuna_version("front"))
    figure = json.loads(plots.figure_json(history.storage, record, "contour", ["p0", "p1"]))
    assert figure["layout"]["title"]["text"] == f"from {plots.CONTOUR_TRIALS} of 320 completed trials"
    store.close()


def test_a_kept_chart_is_sent_gzipped_as_it_was_compressed_when_built(runtime: Runtime):
    """A browser takes gzip: the chart kept holds its gzipped bytes beside its JSON, and every
    answer to such a client is those bytes, compressed once; a client that takes no gzip gets the
    JSON as it is. The two answers differ, so their ETags do, and ``Vary`` says so."""
    client, built = create_app(runtime).test_client(), chart_cache.built
    plain = client.get("/ui/studies/charted/plots/history")
    packed = [client.get("/ui/studies/charted/plots/history", headers={"Accept-Encoding": "gzip"}) for _ in range(2)]
    store = runtime.store()
    kept = chart_cache.get((str(store.path), "uid-charted", "history", (), 0, store.optuna_version("charted")))
    assert kept is not None and kept.gzipped is not None and chart_cache.built - built == 1
    for answer in packed:
        assert (answer.status_code, answer.headers["Content-Encoding"], answer.data) == (200, "gzip", kept.gzipped)
        assert answer.headers["Vary"] == "Accept-Encoding"
    assert "Content-Encoding" not in plain.headers and plain.data == kept.body == gzip.decompress(kept.gzipped)
    assert plain.headers["Vary"] == "Accept-Encoding" and plain.headers["ETag"] != packed[0].headers["ETag"]
    assert packed[0].headers["ETag"] == packed[1].headers["ETag"]


def test_the_charts_kept_are_bounded_by_their_json_and_gzipped_bytes_together():
    """Two charts whose JSON fits the bound but not with their gzipped copies: the older goes."""
    charts = [Chart.of(json.dumps({"data": [{"y": [number * 7919 % 1000 for number in range(start, start + 400)]}]}))
              for start in (0, 400)]
    assert all(chart.gzipped is not None for chart in charts)
    cache = _ChartCache(total=sum(len(chart.body) for chart in charts) + 1)
    for key, chart in enumerate(charts):
        cache.put((key,), chart)
    assert (cache.get((0,)), cache.get((1,))) == (None, charts[1])
    assert Chart.of('{"message": "short"}').gzipped is None, "what gzip would not shrink is kept once"


def test_a_chart_asked_with_the_etag_it_has_is_answered_304_and_not_built_again(runtime: Runtime):
    """The ETag follows the chart's cache key: a conditional request naming it is answered ``304``
    without the chart, even by a worker that does not keep it (here the cache emptied), until the
    study changes. The answers stay ``no-store``: the page asks again itself."""
    client = create_app(runtime).test_client()
    path = "/ui/studies/charted/plots/slice?params=x,y"
    for encoding in ("gzip", "identity"):
        first = client.get(path, headers={"Accept-Encoding": encoding})
        chart_cache.clear()
        built = chart_cache.built
        again = client.get(path, headers={"Accept-Encoding": encoding, "If-None-Match": first.headers["ETag"]})
        assert (again.status_code, again.data, again.headers["ETag"]) == (304, b"", first.headers["ETag"]), encoding
        assert again.headers["Cache-Control"] == first.headers["Cache-Control"] == "no-store"
        assert again.headers["Vary"] == "Accept-Encoding" and chart_cache.built == built
    etag = client.get(path).headers["ETag"]
    add_trial(runtime.store())
    changed = client.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert len(changed.get_json()["data"][0]["x"]) == TRIALS + 1


def chosen(page: str) -> dict[str, object]:
    """What a study page's charts are drawn for, as its controls show it."""
    def selected(select: str) -> list[str]:
        block = re.search(rf'<select id="{select}"[^>]*>(.*?)</select>', page, re.S)
        return [] if block is None else re.findall(r"<option[^>]*selected[^>]*>([^<]*)</option>", block[1])

    return {"objective": selected("objective"), "params": selected("param-a") + selected("param-b"),
            "pair": re.findall(r'name="pair-kind" value="(\w+)" checked', page),
            "drawn": re.search(r'id="plot-pair"[^>]*data-kind="(\w+)"', page)[1]}


def test_the_study_page_draws_its_charts_for_what_its_address_names_and_refuses_what_they_do_not_take(
        runtime: Runtime):
    """The objective, parameters and slice or contour the page keeps in its address, as it was
    when they were picked: a reload or a link sent on shows them so, not the study's first ones;
    without them, the defaults; a name the study does not have is a ``400`` naming its argument."""
    add_wide_study(runtime.store(), "two", width=3, trials=5, objectives=2)
    client = create_app(runtime).test_client()
    page = client.get("/ui/studies/two?objective=1&params=p2,p0&pair=contour").get_data(as_text=True)
    assert chosen(page) == {"objective": ["size"], "params": ["p2", "p0"], "pair": ["contour"], "drawn": "contour"}
    page = client.get("/ui/studies/charted?params=y,y").get_data(as_text=True)
    assert chosen(page) == {"objective": [], "params": ["y", "y"], "pair": ["slice"], "drawn": "slice"}
    page = client.get("/ui/studies/charted").get_data(as_text=True)
    assert chosen(page) == {"objective": [], "params": ["x", "y"], "pair": ["slice"], "drawn": "slice"}
    for query, argument in (("params=nosuch", "params"), ("pair=pie", "pair"), ("objective=2", "objective")):
        refused = client.get(f"/ui/studies/two?{query}")
        assert refused.status_code == 400 and f"{argument}: " in refused.get_data(as_text=True), query
