"""The dashboard's Pareto front is of the study's own trials: its chart leaves out the known
results of a warm start (Optuna's storage holds them first), as its table, the API and the CLI
do; a Pareto chart of more objectives than it can draw says so; the best trials' table lists the
additional metrics."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from conftest import run_study, study_definition

from functions.adapters.web import create_app, plots
from functions.core.records import COMPLETE, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.runtime import Runtime
from functions.settings import Settings

BOTH = [{"name": "loss", "direction": "minimize"}, {"name": "size", "direction": "maximize"}]
KNOWN = [{"params": {"x": 0.3}, "values": [-100.0, 100.0]}, {"params": {"x": 0.5}, "values": [-50.0, 50.0]}]


def test_the_pareto_chart_leaves_out_a_warm_starts_known_results(embedded, tmp_path: Path):
    """Known results that dominate every trial of the study's own are not drawn as its front."""
    definition = study_definition(name="warm", maxTrials=3, parallelism=1, objective={"metrics": BOTH},
                                  warmStart={"trials": KNOWN})
    record = run_study(embedded, definition, tmp_path)
    pareto = json.loads(plots.figure_json(embedded.store.optuna_storage(), record, "pareto"))
    xs = [x for trace in pareto["data"] for x in trace.get("x") or []]
    assert sorted(xs) == sorted(t.values[0] for t in embedded.store.trials("warm")), "the study's own three"


def test_a_pareto_chart_of_more_than_three_objectives_says_the_table_lists_the_front(embedded, tmp_path: Path):
    four = [{"name": "loss", "direction": "minimize"}, {"name": "size", "direction": "maximize"},
            {"name": "loss2", "direction": "minimize"}, {"name": "size2", "direction": "maximize"}]
    definition = study_definition(name="four", maxTrials=1, parallelism=1, objective={"metrics": four})
    definition["trialTemplate"]["command"] = ["sh", "-c", "echo loss=1 size=2 loss2=3 size2=${trialParameters.x}"]
    record = run_study(embedded, definition, tmp_path)
    with pytest.raises(plots.NoChart, match="a Pareto front is drawn for 2 or 3 objectives, and this study has 4: "
                                           "the table lists its front"):
        plots.figure_json(embedded.store.optuna_storage(), record, "pareto")


def test_the_best_trials_table_lists_the_additional_metrics(tmp_path: Path):
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        definition = study_definition(name="extra", maxTrials=1, parallelism=1,
                                      objective={"metrics": BOTH, "additionalMetrics": ["epoch"]})

        embedded = Embedded(Settings(db=tmp_path / "katuna.db"))
        try:
            run_study(embedded, definition, tmp_path)
        finally:
            embedded.close()
        page = create_app(runtime).test_client().get("/ui/studies/extra/best.fragment").get_data(as_text=True)
        trial = Embedded(Settings(db=tmp_path / "katuna.db"))
        try:
            epoch = trial.store.trials("extra")[0].metrics["epoch"]
        finally:
            trial.close()
        assert "<th class=\"num\">epoch</th>" in page and f'<td class="num">{epoch:g}</td>' in page
    finally:
        runtime.close()


def test_the_pareto_chart_names_each_trial_by_its_number_where_a_parameter_is_normal(embedded, tmp_path: Path):
    """The chart of a study with a normal parameter is drawn from a copy holding the values the
    trials received: a copy of the study's own trials alone numbered them from 0, after the
    known results' numbers, so the hover named trial 0 what is trial 2."""
    definition = study_definition(name="warm", maxTrials=3, parallelism=1, objective={"metrics": BOTH},
                                  warmStart={"trials": KNOWN}, parameters=[
                                      {"name": "x", "type": "float", "min": -5.0, "max": 5.0, "distribution": "normal"}])
    record = run_study(embedded, definition, tmp_path)
    pareto = json.loads(plots.figure_json(embedded.store.optuna_storage(), record, "pareto"))
    shown = {json.loads(text.replace("<br>", "\n"))["number"]: x
             for trace in pareto["data"] for text, x in zip(trace.get("text") or [], trace.get("x") or [], strict=True)}
    own = {t.number: t.values[0] for t in embedded.store.trials("warm")}
    assert shown == pytest.approx(own)


def test_a_long_pareto_front_is_listed_spread_along_it_unless_all_is_asked_for(tmp_path: Path):
    """Every one of 600 trials trades loss for size: the study page lists 500 of them, its two
    ends among them, and links to the whole front, listed a page at a time by number (500 when
    no size is given), each page linking to the next, the one before and the first, and staying
    the same page as the table is fetched again."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        store = runtime.store()
        definition = study_definition(name="long", maxTrials=600, objective={"metrics": BOTH})
        store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "uid-long", status="completed"))
        with store.transaction():
            for number in range(600):
                store.add_trial(TrialRecord("long", number, {"x": 0.0}, COMPLETE, values=[number, number]))
        client = create_app(runtime).test_client()
        page = client.get("/ui/studies/long").get_data(as_text=True)
        assert page.count('<tr><td class="num"><a href="/ui/studies/long/trials/') == 500
        assert "500 of its 600 trials, spread along it" in page and "/ui/studies/long/trials/599\"" in page
        assert 'href="/ui/studies/long?front=all#best-trials"' in page
        whole = client.get("/ui/studies/long?front=all").get_data(as_text=True)
        assert _listed(whole) == list(range(500)) and "trials 1–500 of its 600, by number" in whole
        assert 'data-src="/ui/studies/long/best.fragment?front=all"' in whole
        assert '<a href="/ui/studies/long?front=all&amp;after=499#best-trials" id="front-next">' in whole
        assert _listed(client.get("/ui/studies/long/best.fragment?front=all").get_data(as_text=True)) == list(range(500))
        rest = client.get("/ui/studies/long?front=all&after=499").get_data(as_text=True)
        assert _listed(rest) == list(range(500, 600)) and "trials 501–600 of its 600, by number" in rest
        assert 'id="front-next"' not in rest and 'href="/ui/studies/long?front=all#best-trials" id="front-previous"' in rest
        assert 'data-src="/ui/studies/long/best.fragment?front=all&amp;after=499"' in rest
        small = client.get("/ui/studies/long/best.fragment?front=all&size=25&after=99").get_data(as_text=True)
        assert _listed(small) == list(range(100, 125)) and "trials 101–125 of its 600" in small
        assert 'href="/ui/studies/long?front=all&amp;size=25&amp;after=74#best-trials" id="front-previous"' in small
        assert 'href="/ui/studies/long?front=all&amp;size=25&amp;after=574#best-trials">last' in small
        assert _listed(client.get("/ui/studies/long?front=all&after=5000").get_data(as_text=True)) == \
            list(range(100, 600)), "a page past the end is the last"
        refused = client.get("/ui/studies/long/best.fragment?front=all&size=7")
        assert refused.status_code == 400 and "size: expected one of 25, 50, 100, 500" in refused.get_data(as_text=True)
    finally:
        runtime.close()


def test_the_fronts_pages_keep_the_charts_the_address_names(tmp_path: Path):
    """The study page keeps its chart choices in its address: the links that page its front and
    the table fetched again keep them, so the next page shows the same charts."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        store = runtime.store()
        definition = study_definition(name="pick", maxTrials=30, objective={"metrics": BOTH})
        store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "uid-pick", status="completed"))
        with store.transaction():
            for number in range(30):
                store.add_trial(TrialRecord("pick", number, {"x": 0.5}, COMPLETE, values=[number, number]))
        client = create_app(runtime).test_client()
        chosen = "objective=1&amp;params=x&amp;pair=contour"
        spread = client.get("/ui/studies/pick?objective=1&params=x&pair=contour").get_data(as_text=True)
        assert f'data-src="/ui/studies/pick/best.fragment?{chosen}"' in spread
        page = client.get("/ui/studies/pick?front=all&size=25&objective=1&params=x&pair=contour")
        assert page.status_code == 200
        text = page.get_data(as_text=True)
        assert f'href="/ui/studies/pick?front=all&amp;size=25&amp;{chosen}&amp;after=24#best-trials" id="front-next"' \
            in text, text
        assert f'data-src="/ui/studies/pick/best.fragment?front=all&amp;size=25&amp;{chosen}"' in text
        again = client.get(f"/ui/studies/pick/best.fragment?front=all&size=25&{chosen.replace('&amp;', '&')}")
        assert f'href="/ui/studies/pick?front=all&amp;size=25&amp;{chosen}&amp;after=24#best-trials"' in \
            again.get_data(as_text=True)
    finally:
        runtime.close()


def _listed(page: str) -> list[int]:
    """The numbers of the trials a best-trials table lists, in its order."""
    return [int(number) for number in re.findall(r'<tr><td class="num"><a href="/ui/studies/[^/]+/trials/(\d+)"', page)]


def study_page(tmp_path: Path, name: str) -> str:
    """The dashboard's page of the study ``name`` in the database under ``tmp_path``."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        return create_app(runtime).test_client().get(f"/ui/studies/{name}").get_data(as_text=True)
    finally:
        runtime.close()


def test_a_study_page_says_what_its_warm_start_gave_the_sampler(embedded, tmp_path: Path):
    definition = study_definition(name="warm", maxTrials=1, parallelism=1, objective={"metrics": BOTH},
                                  warmStart={"trials": KNOWN})
    run_study(embedded, definition, tmp_path)
    page = study_page(tmp_path, "warm")
    summary = " ".join(page[page.index('id="warm-start"'):].split("</dd>")[0].split())
    assert summary.startswith('id="warm-start">2 known results (2 given), not counted as the study\'s trials')


def test_a_grid_study_page_says_how_many_points_of_the_grid_its_warm_start_covered(embedded, tmp_path: Path):
    """The known points its trials do not run again, and the total the grid leaves them."""
    definition = study_definition(name="grid", parallelism=1, algorithm={"name": "grid"},
                                  parameters=[{"name": "x", "type": "int", "min": 0, "max": 3}],
                                  warmStart={"trials": [{"params": {"x": 1}, "value": 1.0},
                                                        {"params": {"x": 1}, "value": 1.0}]})
    del definition["maxTrials"]
    run_study(embedded, definition, tmp_path)
    page = study_page(tmp_path, "grid")
    summary = " ".join(page[page.index('id="warm-start"'):].split("</dd>")[0].split())
    assert 'they cover <span id="grid-covered">1 of the grid\'s 4 points</span>, which its trials do not run' in summary
    assert 'id="trial-counts">3 of 3:' in page


@pytest.mark.parametrize(("objectives", "query", "said"), [
    (1, "front=all&size=7", "size: expected one of 25, 50, 100, 500, got '7'"),
    (2, "front=all&size=7", "size: expected one of 25, 50, 100, 500, got '7'"),
    (1, "front=all&after=x", "after: expected a whole number"),
    (2, "size=7", "size: expected one of 25, 50, 100, 500, got '7'"),
    (2, "front=some", "front: expected all (the whole Pareto front, a page at a time), got 'some'"),
    (1, "front=all", "front: needs several objectives: this study has one, 'loss', and no Pareto front"),
])
def test_the_fronts_arguments_are_checked_whatever_the_study(tmp_path: Path, objectives: int, query: str, said: str):
    """The study page's ``front``, ``size`` and ``after`` are a ``400`` naming the one at fault
    on the page of a study of one objective as on one of several, never passed over; a study of
    one objective has no front to list (as the trial table's ``pareto=1`` is refused)."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        store = runtime.store()
        metrics = {"metrics": BOTH} if objectives == 2 else {"metrics": BOTH[:1]}
        definition = study_definition(name="checked", maxTrials=3, objective=metrics)
        store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "uid-checked",
                                    status="completed"))
        store.add_trial(TrialRecord("checked", 0, {"x": 0.5}, COMPLETE, values=[1.0] * objectives))
        client = create_app(runtime).test_client()
        assert client.get("/ui/studies/checked").status_code == 200
        for path in ("/ui/studies/checked", "/ui/studies/checked/best.fragment"):
            refused = client.get(f"{path}?{query}")
            text = html.unescape(refused.get_data(as_text=True))
            assert (refused.status_code, said in text) == (400, True), (path, text[-2000:])
    finally:
        runtime.close()
