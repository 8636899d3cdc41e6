"""The dashboard in a real headless Chromium against a real ``katuna serve`` on loopback."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from browser import Console, screenshot
from conftest import TRIAL, study_definition
from http_helpers import Service
from playwright.sync_api import Browser, Page, Route, expect
from test_katib import experiment
from waiting import eventually

pytestmark = pytest.mark.browser

TOKEN = "ui-s3cret-0123456789abcdef"
STUDY_REFRESH_MS = 5000
"""How often a study page asks for its running study (``katuna.js``)."""
REFRESH_MS = 3000
"""How often the studies list and the trial table are fetched again while they run (``katuna.js``)."""
IDLE_MS = 10_000
"""How often the studies list asks whether it changed while no study runs (``katuna.js``)."""
CHART_WAIT_MS = 90_000
"""How long a test waits for a chart: a fresh worker loads Optuna's plotting stack for its first,
seconds of one core that took past 30 s with the whole suite's workers sharing two cores."""


def mixed_study(name: str) -> dict:
    """Two float parameters and a mode that makes some trials print no objective."""
    return study_definition(
        name=name, maxTrials=12, parallelism=4,
        objective={"metric": "loss", "direction": "minimize", "additionalMetrics": ["size"]},
        parameters=[{"name": "x", "type": "float", "min": -5.0, "max": 5.0},
                    {"name": "y", "type": "float", "min": -2.0, "max": 2.0},
                    {"name": "mode", "type": "categorical", "values": ["ok", "silent"]}],
        trialTemplate={"command": [sys.executable, str(TRIAL), "--x", "${trialParameters.x}",
                                   "--y", "${trialParameters.y}", "--mode", "${trialParameters.mode}"]})


def post(service: Service, definition: dict) -> int:
    return service.request("POST", "/studies", json.dumps(definition), {"Content-Type": "application/json"})[0]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    running = Service(tmp_path_factory.mktemp("ui"))
    assert post(running, mixed_study("ui-demo")) == 201
    assert post(running, study_definition(name="ui-pareto", maxTrials=6, objective={"metrics": [
        {"name": "loss", "direction": "minimize"}, {"name": "size", "direction": "maximize"}]})) == 201
    curves = study_definition(name="ui-curves", mode="curve", maxTrials=4, parallelism=2,
                              earlyStopping={"algorithm": "median", "settings": {"n_startup_trials": 2}})
    curves["trialTemplate"]["command"] += ["--sleep", "0.4"]
    assert post(running, curves) == 201
    for name in ("ui-demo", "ui-pareto", "ui-curves"):
        running.wait_for(name)
    yield running
    running.close()


def trials_of(service: Service, name: str) -> list[dict]:
    return service.json("GET", f"/studies/{name}/trials")[1]


def passing_after(asked: list[str], failing_from: int) -> Callable[[Route], None]:
    """A route handler noting each request's URL in ``asked``: the ``failing_from``-th request
    (from 1) is answered a busy database's 503 (Retry-After 1 s), the next one's connection is
    reset (a worker restarting), and every other request goes to the service."""

    def handle(route: Route) -> None:
        asked.append(route.request.url)
        if len(asked) == failing_from:
            route.fulfill(status=503, headers={"Retry-After": "1"}, json={"error": "temporary_error"})
        elif len(asked) == failing_from + 1:
            route.abort("connectionreset")
        else:
            route.continue_()

    return handle


def hurried(page: Page, done: Callable[[], object], what: str, timeout: float = 30) -> None:
    """Wait until ``done``, the page's clock (installed with ``page.clock.install``) run ahead
    half a second at a time, each of its timers firing as it comes due: a refresh is made in
    turn as it would be in time, without the test waiting out its period."""
    eventually(lambda: page.clock.run_for(500) or page.wait_for_timeout(50) or done(), what, timeout=timeout)


def test_studies_list_shows_each_study_with_its_progress(service: Service, page: Page):
    trials = trials_of(service, "ui-demo")
    done = sum(t["state"] == "COMPLETE" for t in trials)
    failed = sum(t["state"] == "FAIL" for t in trials)
    page.goto(service.base + "/ui/")
    row = page.locator('tr[data-study="ui-demo"]')
    expect(row).to_contain_text("completed")
    expect(row).to_contain_text(f"{done} done · {failed} failed · 0 running of 12")
    expect(row.locator("td").nth(2)).to_have_text("random")
    screenshot(page, "studies")
    page.goto(service.base + "/")
    assert page.url == service.base + "/ui/", "the service's address leads to the dashboard"


LONG_NAME = "скорость обучения очень длинное имя параметра"
"""A parameter's name longer than a phone's screen is wide in its pickers and tables."""

CONTRAST = """(selector) => {
  const rgb = (color) => color.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const luminance = (color) => rgb(color).map((v) => v / 255)
    .map((v) => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  return [...document.querySelectorAll(selector)].map((el) => {
    const style = getComputedStyle(el);
    const [a, b] = [luminance(style.color), luminance(style.backgroundColor)].sort((x, y) => y - x);
    return [el.className, (a + 0.05) / (b + 0.05)];
  });
}"""
"""Each element's contrast of its text's colour against its background (WCAG 2's ratio)."""


def test_the_pages_fit_a_narrow_screen_and_go_down_one_heading_level_at_a_time(service: Service, page: Page):
    """320 px (WCAG 1.4.10's width, a window at 400% zoom): no page scrolls sideways (a wide table
    scrolls in its own box, the new-study form's file picker fits), a long parameter name
    included; each heading is at most one level below the one before it, as a screen reader's
    outline needs; the new-study form's problems are announced; every status and state badge's
    white text stands out from its colour (4.5:1, WCAG AA for small text)."""
    long = study_definition(name="ui-narrow", maxTrials=1, parallelism=1,
                            parameters=[{"name": LONG_NAME, "type": "float", "min": 0.0, "max": 1.0}])
    long["trialTemplate"]["command"][3] = f"${{trialParameters.{LONG_NAME}}}"
    assert post(service, long) == 201
    service.wait_for("ui-narrow")
    page.set_viewport_size({"width": 320, "height": 800})
    for path in ("/ui/", "/ui/studies/ui-demo", "/ui/studies/ui-pareto", "/ui/new", "/ui/studies/ui-narrow",
                 "/ui/studies/ui-narrow/trials", "/ui/studies/ui-narrow/trials/0"):
        page.goto(service.base + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 320, path
        levels = page.evaluate("[...document.querySelectorAll('h1, h2, h3, h4')].map(h => Number(h.tagName[1]))")
        assert all(later <= earlier + 1 for earlier, later in zip([1, *levels], levels)), (path, levels)
    page.goto(service.base + "/ui/new")
    assert page.get_attribute("#study-problems", "role") == "alert"
    badges = [f'<span class="status {s}">{s}</span>' for s in ("running", "completed", "failed", "stopped", "deleted")]
    badges += [f'<span class="state {s}">{s}</span>' for s in ("WAITING", "RUNNING", "COMPLETE", "FAIL", "PRUNED",
                                                                    "STOPPED")]
    page.evaluate("(html) => document.querySelector('main').insertAdjacentHTML('beforeend', html)", "".join(badges))
    ratios = page.evaluate(CONTRAST, ".status, .state")
    assert len(ratios) == 11 and all(ratio >= 4.5 for _, ratio in ratios), ratios


def test_study_page_draws_optunas_charts_from_the_trials(service: Service, page: Page):
    complete = [t for t in trials_of(service, "ui-demo") if t["state"] == "COMPLETE"]
    page.goto(service.base + "/ui/studies/ui-demo")
    expect(page.locator("#summary")).to_contain_text("minimize loss")
    for chart in ("history", "parallel", "pair", "importance", "intermediate"):
        expect(page.locator(f"#plot-{chart}")).to_have_attribute("data-ready", "true", timeout=CHART_WAIT_MS)

    history = page.evaluate("document.getElementById('plot-history').data")
    assert history is not None, page.locator("#plot-history").inner_text()
    assert len(history[0]["y"]) == len(complete)
    assert history[1]["name"] == "Best Value"
    assert min(history[1]["y"]) == pytest.approx(min(t["value"] for t in complete))

    dimensions = page.evaluate("document.getElementById('plot-parallel').data[0].dimensions")
    assert [d["label"] for d in dimensions] == ["loss", "mode", "x", "y"]
    assert all(len(d["values"]) == len(complete) for d in dimensions)
    titles = page.locator("#plot-parallel .axis-title")
    expect(titles).to_have_count(4)
    page.locator('#parallel-axes input[data-axis="mode"]').uncheck()
    expect(titles).to_have_count(3)
    assert page.evaluate("document.getElementById('plot-parallel').data[0].dimensions[1].visible") is False
    for chart in ("history", "parallel"):  # the parallel coordinates drawn again as an axis was hidden
        expect(page.locator(f"#plot-{chart} .modebar-btn[data-title='Download plot as a PNG']")).to_have_count(1)
        expect(page.locator(f"#plot-{chart} .modebar-btn[data-title='Share chart...']")).to_have_count(0)

    assert page.evaluate("document.getElementById('plot-pair').data[0].type") == "scatter"
    page.locator('input[name="pair-kind"][value="contour"]').check()
    page.wait_for_function("document.getElementById('plot-pair').data?.[0]?.type === 'contour'")
    axes = page.evaluate("(({layout}) => [layout.xaxis.title.text, layout.yaxis.title.text])(document.getElementById('plot-pair'))")
    assert axes == ["x", "y"]

    importance = page.evaluate("document.getElementById('plot-importance').data[0].y")
    assert sorted(importance) == ["mode", "x", "y"]
    expect(page.locator("#plot-intermediate")).to_contain_text("no intermediate values")
    screenshot(page, "study")
    expect(page).to_have_url(re.compile(r"\?params=x%2Cy&pair=contour$"))  # what was picked, kept for a reload
    page.reload()
    page.wait_for_function("document.getElementById('plot-pair').data?.[0]?.type === 'contour'")


def test_a_chart_asked_again_unchanged_is_answered_304_and_stays_as_drawn(service: Service, page: Page):
    """The page asks for a chart again naming the ETag of the one it drew (here: the same pair of
    parameters picked again, as a running study's page asks for its history as trials end): the
    service answers 304 with no body, and the chart stays as drawn, its plot the same."""
    page.goto(service.base + "/ui/studies/ui-demo")
    pair = page.locator("#plot-pair")
    expect(pair).to_have_attribute("data-ready", "true", timeout=CHART_WAIT_MS)
    drawn = pair.get_attribute("data-etag")
    assert drawn, "the ETag of the chart drawn is kept"
    page.evaluate("window.keptPlot = document.getElementById('plot-pair').data")
    with page.expect_response("**/plots/slice*") as asked:
        page.locator("#param-a").dispatch_event("change")
    answer = asked.value
    assert (answer.status, answer.request.headers.get("if-none-match")) == (304, drawn)
    expect(pair).not_to_have_class(re.compile(r"\bloading\b"))
    assert page.evaluate("document.getElementById('plot-pair').data === window.keptPlot")
    assert pair.get_attribute("data-etag") == drawn


def test_a_chart_the_service_cannot_answer_for_now_is_asked_again_and_drawn(service: Service, page: Page,
                                                                            console: dict[Page, Console]):
    """A busy database's 503 and a worker that never answers (restarting) are passing: the chart
    is asked again after the Retry-After given, and drawn. A 404 is not asked again."""
    console[page].expect("status of 503", "status of 404", "ERR_CONNECTION_RESET")
    asked: list[str] = []
    history = passing_after(asked, failing_from=1)

    missing: list[str] = []
    page.route("**/plots/history*", history)
    page.route("**/plots/importance*", lambda route: missing.append(route.request.url) or route.fulfill(status=404))
    page.goto(service.base + "/ui/studies/ui-demo")
    expect(page.locator("#plot-history")).to_have_attribute("data-ready", "true", timeout=CHART_WAIT_MS)
    assert page.evaluate("document.getElementById('plot-history').data[0].y.length") > 0
    assert len(asked) == 3
    expect(page.locator("#plot-importance")).to_have_text("Could not load the chart: 404 Not Found")
    page.wait_for_timeout(3000)
    assert len(missing) == 1, "a chart that is not there was asked for again"


def test_a_multi_objective_study_shows_its_pareto_front_and_charts_either_objective(service: Service, page: Page):
    complete = [t for t in trials_of(service, "ui-pareto") if t["state"] == "COMPLETE"]
    page.goto(service.base + "/ui/studies/ui-pareto")
    expect(page.locator("#plot-pareto")).to_have_attribute("data-ready", "true", timeout=CHART_WAIT_MS)
    points = page.evaluate("document.getElementById('plot-pareto').data.map(trace => trace.x.length)")
    assert sum(points) == len(complete)
    front = service.json("GET", "/studies/ui-pareto")[1]["best"]
    expect(page.locator("#best tbody tr")).to_have_count(len(front))
    history_title = "document.getElementById('plot-history').layout.yaxis.title.text"
    page.wait_for_function(f"document.getElementById('plot-history').layout && {history_title} === 'loss'")
    page.select_option("#objective", "1")
    page.wait_for_function(f"{history_title} === 'size'")
    screenshot(page, "study-pareto")


LINK = "<a href='https://example.com/'>sgd</a>"
"""A categorical value that plotly.js, given it as it is, would draw as a link to another site."""


def test_names_and_values_that_read_as_markup_are_drawn_in_the_charts_as_written(service: Service, page: Page):
    """A parameter named ``<b>lr</b>`` and categorical values ``<a href=...>`` and ``a &amp; b``:
    the charts (whose text plotly.js reads as a little HTML) show them as written, with no link
    and no bold, in axis titles, category ticks, parallel coordinates' axes and their checkboxes,
    and the importance bars."""
    definition = study_definition(
        name="ui-markup", maxTrials=4, parallelism=2, algorithm={"name": "grid"},
        parameters=[{"name": "<b>lr</b>", "type": "discrete", "values": ["1", "3"]},
                    {"name": "opt", "type": "categorical", "values": [LINK, "a &amp; b"]}],
        trialTemplate={"command": [sys.executable, "-c", "import sys; print(sys.argv[2]); print('loss=' + sys.argv[1])",
                                   "${trialParameters.<b>lr</b>}", "${trialParameters.opt}"]})
    assert post(service, definition) == 201
    assert service.wait_for("ui-markup")["counts"]["complete"] == 4
    page.goto(service.base + "/ui/studies/ui-markup")
    for chart in ("history", "parallel", "pair", "importance"):
        expect(page.locator(f"#plot-{chart}")).to_have_attribute("data-ready", "true", timeout=CHART_WAIT_MS)

    def texts(chart: str) -> set[str]:
        return set(page.locator(f"#plot-{chart} svg text").all_text_contents())

    assert {"<b>lr</b>", "opt", LINK, "a &amp; b"} <= texts("pair"), "a slice ticks labels as written"
    assert {"<b>lr</b>", "opt", LINK, "a &amp; b"} <= texts("parallel")
    assert {"<b>lr</b>", "opt"} <= texts("importance")
    expect(page.locator(".charts svg a")).to_have_count(0)
    expect(page.locator('#parallel-axes input[data-axis="<b>lr</b>"]')).to_have_count(1)
    assert "<b>lr</b>" in page.locator("#parallel-axes").inner_text()


METRIC_LINK = "<a href='https://example.com/'>loss</a>"
"""A metric's name (a JSON key of a trial's output) that plotly.js, given it as it is, would draw
as a link to another site."""


def test_a_metric_name_that_reads_as_markup_is_drawn_in_the_charts_as_written(service: Service, page: Page):
    """In the history's axis title and legend, the slice's axis title, and the parallel
    coordinates' axis and color bar: as written, with no link."""
    definition = study_definition(
        name="ui-metric-markup", maxTrials=3, parallelism=1, metricsCollector={"format": "json"},
        objective={"metric": METRIC_LINK, "direction": "minimize"},
        trialTemplate={"command": [sys.executable, "-c", "import json, sys; print(json.dumps({sys.argv[1]: "
                                   "float(sys.argv[2])}))", METRIC_LINK, "${trialParameters.x}"]})
    assert post(service, definition) == 201
    assert service.wait_for("ui-metric-markup")["counts"]["complete"] == 3
    page.goto(service.base + "/ui/studies/ui-metric-markup")
    for chart in ("history", "parallel", "pair"):
        expect(page.locator(f"#plot-{chart}")).to_have_attribute("data-ready", "true", timeout=CHART_WAIT_MS)
    for chart in ("history", "parallel", "pair"):
        assert METRIC_LINK in page.locator(f"#plot-{chart} svg text").all_text_contents(), chart
    expect(page.locator(".charts svg a")).to_have_count(0)


def test_intermediate_values_are_drawn_for_a_study_with_early_stopping(service: Service, page: Page):
    trials = trials_of(service, "ui-curves")
    page.goto(service.base + "/ui/studies/ui-curves")
    expect(page.locator("#plot-intermediate")).to_have_attribute("data-ready", "true", timeout=CHART_WAIT_MS)
    curves = page.evaluate("document.getElementById('plot-intermediate').data.map(t => [t.name, t.x])")
    assert sorted(name for name, _ in curves) == sorted(f"Trial{t['number']}" for t in trials)
    verdicts = {t["number"]: int(re.match(r"pruned at step (\d+)", t["reason"])[1])
                for t in trials if t["state"] == "PRUNED"}
    assert all(steps == sorted(steps) for _, steps in curves)
    # a completed trial's curve is made whole from its output at its end; a pruned one's holds the
    # reports handled before its verdict (one handled by another worker meanwhile is too late)
    assert all(steps[0] == 1 for name, steps in curves if int(name[5:]) not in verdicts)
    assert all(steps[-1] <= verdicts[int(name[5:])] for name, steps in curves if int(name[5:]) in verdicts)


def test_trial_table_sorts_filters_pages_and_exports(service: Service, page: Page):
    trials = trials_of(service, "ui-demo")
    page.goto(service.base + "/ui/studies/ui-demo/trials?size=25")
    expect(page.locator("#trials-table tbody tr")).to_have_count(12)

    page.locator('th[data-field="metric:loss"] a').click()
    expect(page.locator('th[data-field="metric:loss"]')).to_have_attribute("aria-sort", "ascending")
    losses = [float(v) for v in page.locator('td[data-field="metric:loss"]').all_inner_texts() if v]
    assert losses == sorted(losses) and len(losses) == sum(t["state"] == "COMPLETE" for t in trials)
    page.locator('th[data-field="metric:loss"] a').click()
    expect(page.locator('th[data-field="metric:loss"]')).to_have_attribute("aria-sort", "descending")
    cells = page.locator('td[data-field="metric:loss"]').all_inner_texts()
    shown = [float(v) for v in cells if v]
    assert shown == sorted(shown, reverse=True) and cells[-1] == ""

    page.locator('input[name="state"][value="FAIL"]').check()
    page.locator("#apply-filters").click()
    page.wait_for_url("**state=FAIL**")
    failed = sorted(t["number"] for t in trials if t["state"] == "FAIL")
    numbers = page.locator("#trials-table tbody tr").evaluate_all("rows => rows.map(r => +r.dataset.number)")
    assert sorted(numbers) == failed
    expect(page.locator("#trials-table tbody")).to_contain_text("metrics unavailable")

    page.goto(service.base + "/ui/studies/ui-demo/trials")
    page.locator(".range select").last.select_option("param:x")
    page.locator('.range input[name="min"]').last.fill("0")
    page.locator("#apply-filters").click()
    page.wait_for_url("**param%3Ax**")
    page.locator(".range select").last.select_option("param:y")
    page.locator('.range input[name="max"]').last.fill("0")
    page.locator("#apply-filters").click()
    page.wait_for_url("**param%3Ay**")
    expected = sorted(t["number"] for t in trials if t["params"]["x"] >= 0 and t["params"]["y"] <= 0)
    numbers = page.locator("#trials-table tbody tr").evaluate_all("rows => rows.map(r => +r.dataset.number)")
    assert sorted(numbers) == expected
    expect(page.locator("#trial-count")).to_contain_text(f"{len(expected)} trial")
    screenshot(page, "trials")

    page.goto(service.base + "/ui/studies/ui-demo/trials?size=25&state=COMPLETE&sort=metric:loss")
    exported = page.locator("#csv-link").get_attribute("href")
    status, headers, body = service.request("GET", exported)
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert [float(r["loss"]) for r in rows] == sorted(t["value"] for t in trials if t["state"] == "COMPLETE")
    assert list(rows[0])[:7] == ["number", "state", "loss", "size", "x", "y", "mode"]


def test_the_trial_table_follows_a_running_study_in_its_order_and_stops_once_the_study_ends(service: Service,
                                                                                             page: Page):
    """Sorted by trial number, descending: the table shows the trials of a running study as they
    run and end, without a reload, its links still those of the table's page; once the study
    ends it is fetched no more."""
    release = service.workdir / "release-ui-table"
    definition = study_definition(name="ui-table", maxTrials=2, parallelism=2, algorithm={"name": "grid"},
                                  parameters=[{"name": "x", "type": "discrete", "values": ["1", "3"]}])
    definition["trialTemplate"]["command"] += ["--mode", "curve", "--epochs", "2", "--until",
                                               f"{release}-${{trialParameters.x}}"]
    assert post(service, definition) == 201
    eventually(lambda: len(trials_of(service, "ui-table")) == 2, "both trials", timeout=20)
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url) if "trials.fragment" in request.url else None)
    page.clock.install()
    try:
        page.goto(service.base + "/ui/studies/ui-table/trials?sort=number&desc=1")
        page.evaluate("window.sameDocument = true")
        rows = page.locator("#trials-table tbody tr")
        expect(rows.locator(".state")).to_have_text(["RUNNING", "RUNNING"])
        Path(f"{release}-1").touch()
        eventually(lambda: service.json("GET", "/studies/ui-table")[1]["counts"]["complete"] == 1, "a trial complete",
                   timeout=20)
        page.clock.run_for(REFRESH_MS)
        done = next(t["number"] for t in trials_of(service, "ui-table") if t["state"] == "COMPLETE")
        expect(page.locator(f'#trials-table tr[data-number="{done}"] .state')).to_have_text("COMPLETE")
        assert rows.evaluate_all("rows => rows.map(r => +r.dataset.number)") == [1, 0]
        expect(page.locator("#trials-table th[data-field=number] a")).to_have_attribute(
            "href", "/ui/studies/ui-table/trials?sort=number")
        Path(f"{release}-3").touch()
        service.wait_for("ui-table")
        page.clock.run_for(REFRESH_MS)
        expect(rows.locator(".state")).to_have_text(["COMPLETE", "COMPLETE"])
        expect(page.locator("#trial-count")).to_have_attribute("data-running", "false")
        asked = len(fetched)
        page.clock.run_for(REFRESH_MS * 3)
        assert page.evaluate("fetch('/healthz').then((answer) => answer.status)") == 200
        assert len(fetched) == asked, "the table of an ended study is fetched no more"
        assert page.evaluate("window.sameDocument") is True, "followed, not reloaded"
    finally:
        Path(f"{release}-1").touch()
        Path(f"{release}-3").touch()


def test_bad_table_arguments_are_named(service: Service, page: Page, console: dict[Page, Console]):
    console[page].expect("status of 400")
    response = page.goto(service.base + "/ui/studies/ui-demo/trials?sort=param:nope")
    assert response.status == 400
    expect(page.locator(".problem")).to_contain_text("sort: unknown trial field 'param:nope'")


def test_trial_page_shows_params_metrics_observations_and_log(service: Service, page: Page):
    trial = next(t for t in trials_of(service, "ui-demo") if t["state"] == "COMPLETE")
    page.goto(service.base + f"/ui/studies/ui-demo/trials/{trial['number']}")
    expect(page.locator("#params")).to_contain_text(f"{trial['params']['x']:.6g}")
    expect(page.locator("#metrics")).to_contain_text(f"{trial['metrics']['size']:.6g}")
    observations = service.json("GET", f"/studies/ui-demo/trials/{trial['number']}")[1]["observations"]
    assert {o["metric"] for o in observations} == {"loss", "size"}
    expect(page.locator("#observations tbody tr")).to_have_count(len(observations))
    expect(page.locator("#log")).to_contain_text(f"loss={trial['value']:.6f}")
    expect(page.locator("#reason")).to_have_count(0)
    whole = service.request("GET", f"/studies/ui-demo/trials/{trial['number']}/logs")[2].decode()
    assert page.locator("#log").inner_text().rstrip() == whole.rstrip()
    status, tail = service.json("GET", f"/ui/studies/ui-demo/trials/{trial['number']}/log?offset=10")
    assert status == 200 and tail["text"] == whole[10:] and tail["offset"] == len(whole)
    assert not tail["more"] and not tail["running"]


def test_trial_page_explains_unavailable_metrics(service: Service, page: Page):
    trial = next(t for t in trials_of(service, "ui-demo") if t["state"] == "FAIL")
    page.goto(service.base + f"/ui/studies/ui-demo/trials/{trial['number']}")
    reason = page.locator("#reason")
    expect(reason).to_contain_text("Metrics unavailable")
    expect(reason).to_contain_text("lines like loss=<number>")
    expect(reason).to_contain_text("It reported none of the study's metrics (loss, size)")
    expect(reason.locator("pre")).to_contain_text("training without reporting the objective\nValidation-loss=0.5")
    screenshot(page, "trial-failed")


def test_a_finished_trials_log_removed_from_the_log_folder_is_said_to_be_gone_not_shown_empty(service: Service,
                                                                                              page: Page):
    """A trial's log removed from the trial-log folder is no empty output: the page says it is
    gone, and why, where it said "(no output)", and the API answers 404 where it sent nothing."""
    assert post(service, study_definition(name="ui-gone-log", maxTrials=1, parallelism=1)) == 201
    assert service.wait_for("ui-gone-log")["status"] == "completed"
    (log,) = (service.workdir / "katuna-logs" / "ui-gone-log").glob("*/0.1.log")
    log.unlink()
    status, answer = service.json("GET", "/studies/ui-gone-log/trials/0/logs")
    gone = ("no log of trial 0 attempt 1 is left: its file is not in the trial-log folder (removed, or the attempt "
            "never started)")
    assert (status, answer["error"], answer["message"]) == (404, "log_gone", gone)
    page.goto(service.base + "/ui/studies/ui-gone-log/trials/0")
    expect(page.locator("#log-status")).to_have_text(gone)
    expect(page.locator("#log")).to_have_text("")


def test_trial_log_and_studies_list_follow_a_running_trial(service: Service, page: Page):
    release = service.workdir / "release-ui-slow"
    slow = study_definition(name="ui-slow", maxTrials=1, parallelism=1, trialTemplate={"command": [
        sys.executable, str(TRIAL), "--x", "${trialParameters.x}", "--mode", "curve", "--epochs", "4",
        "--until", str(release)]})
    assert post(service, slow) == 201
    eventually(lambda: service.request("GET", "/studies/ui-slow/trials/0")[0] == 200, "trial 0", timeout=20)
    page.clock.install()
    page.goto(service.base + "/ui/studies/ui-slow/trials/0")
    expect(page.locator("#log")).to_contain_text("epoch=1 ", timeout=CHART_WAIT_MS)
    expect(page.locator("#trial-state")).to_have_text(re.compile("WAITING|RUNNING"))
    expect(page.locator("#log-status")).to_have_text("following…")
    assert "epoch=2 " not in page.locator("#log").inner_text()
    screenshot(page, "trial-log-running")
    studies = page.context.new_page()
    studies.goto(service.base + "/ui/")
    row = studies.locator('tr[data-study="ui-slow"]')
    expect(row).to_contain_text("running")
    study = page.context.new_page()
    study.goto(service.base + "/ui/studies/ui-slow")
    expect(study.locator("#plot-history")).to_contain_text("no completed trial yet")
    release.touch()
    hurried(page, lambda: page.locator("#trial-state").inner_text() == "COMPLETE" and "completed" in row.inner_text()
            and study.locator("#study-status").inner_text() == "completed", "every page to see the trial end",
            timeout=CHART_WAIT_MS / 1000)
    expect(page.locator("#trial-state")).to_have_text("COMPLETE")
    expect(row).to_contain_text("completed")
    expect(study.locator("#study-status")).to_have_text("completed")
    expect(study.locator("#trial-counts")).to_contain_text("1 of 1: 1 complete")
    study.wait_for_function("document.getElementById('plot-history').data?.[0]?.y?.length === 1")
    expect(page.locator("#log")).to_contain_text("epoch=4 ")
    log = page.locator("#log").inner_text()
    assert log.count("epoch=1 ") == 1 and log.rstrip().splitlines()[-1].startswith("loss=")


def test_a_followed_log_the_service_cannot_serve_for_now_is_asked_again_and_followed_to_its_end(
        service: Service, page: Page, console: dict[Page, Console]):
    """A poll of a running trial's log answered 503 (a busy database), then not answered at all
    (a restarting worker), is asked again: the log is followed to the trial's end, not left at
    "log unavailable" with the trial still printing."""
    console[page].expect("status of 503", "ERR_CONNECTION_RESET")
    release = service.workdir / "release-ui-flaky"
    definition = study_definition(name="ui-flaky-log", maxTrials=1, parallelism=1, trialTemplate={"command": [
        sys.executable, str(TRIAL), "--x", "${trialParameters.x}", "--mode", "curve", "--epochs", "3",
        "--until", str(release)]})
    assert post(service, definition) == 201
    eventually(lambda: service.request("GET", "/studies/ui-flaky-log/trials/0")[0] == 200, "trial 0", timeout=20)
    polls: list[str] = []
    flaky = passing_after(polls, failing_from=2)

    page.route("**/ui/studies/ui-flaky-log/trials/0/log?*", flaky)
    try:
        page.goto(service.base + "/ui/studies/ui-flaky-log/trials/0")
        expect(page.locator("#log")).to_contain_text("epoch=1 ", timeout=CHART_WAIT_MS)
        eventually(lambda: page.wait_for_timeout(100) or len(polls) > 3, "a poll after the failed ones", timeout=20)
        expect(page.locator("#log-status")).to_have_text("following…")
    finally:
        release.touch()
    expect(page.locator("#trial-state")).to_have_text("COMPLETE", timeout=CHART_WAIT_MS)
    expect(page.locator("#log")).to_contain_text("epoch=3 ")


CHATTY = """import pathlib, sys, time
go, done = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
print("started", flush=True)
while not go.exists():
    time.sleep(0.05)
for i in range(40_000):
    print(f"line {i:06d} " + "x" * 90)
print("loss=1", flush=True)
while not done.exists():
    time.sleep(0.05)
"""


def test_a_followed_log_far_behind_jumps_to_its_end_and_the_page_keeps_its_latest_part(service: Service, page: Page):
    """A trial prints 4 MB at once while its page follows it: the page shows its end with a note
    of what it does not show, not every chunk one after another, and holds at most about a MiB."""
    go, done = service.workdir / "chatty-go", service.workdir / "chatty-done"
    definition = study_definition(name="ui-chatty", maxTrials=1, parallelism=1, trialTemplate={
        "command": [sys.executable, "-c", CHATTY, str(go), str(done), "${trialParameters.x}"]})
    assert post(service, definition) == 201
    eventually(lambda: service.request("GET", "/studies/ui-chatty/trials/0")[0] == 200, "trial 0", timeout=20)
    page.goto(service.base + "/ui/studies/ui-chatty/trials/0")
    expect(page.locator("#log")).to_contain_text("started", timeout=CHART_WAIT_MS)
    go.touch()
    expect(page.locator("#log")).to_contain_text("loss=1", timeout=CHART_WAIT_MS)
    text = page.evaluate("document.getElementById('log').textContent")
    assert "line 039999 " in text and "line 000000 " not in text
    assert "earlier bytes not shown (open the log)" in text and len(text) <= 1024 * 1024 + 256 * 1024
    done.touch()
    expect(page.locator("#trial-state")).to_have_text("COMPLETE", timeout=CHART_WAIT_MS)


def started_preemptible(service: Service, name: str, tag: str) -> tuple[Path, Path]:
    """A one-trial study whose trial writes each attempt's pid (``<number>.<attempt>.pid``) in
    the folder returned first, and runs until the file returned second exists; once its first
    attempt has started."""
    pids, release = service.workdir / f"{tag}-pids", service.workdir / f"release-ui-{tag}"
    pids.mkdir()
    definition = study_definition(name=name, maxTrials=1, parallelism=1, trialTemplate={
        "command": [sys.executable, str(TRIAL), "--x", "${trialParameters.x}", "--mode", "curve", "--epochs", "3",
                    "--until", str(release)],
        "env": {"PID_DIR": str(pids)}})
    assert post(service, definition) == 201
    eventually(lambda: (pids / "0.1.pid").exists(), "attempt 1 started", timeout=20)
    return pids, release


def test_a_followed_log_starts_a_new_attempt_from_its_beginning_after_a_preemption(service: Service, page: Page):
    """Attempt 1 is killed from outside (a preemption) and the trial runs again: the page reads
    attempt 2's log from its first byte, after a separator, and links attempt 1's log."""
    pids, release = started_preemptible(service, "ui-preempt", "preempt")
    page.goto(service.base + "/ui/studies/ui-preempt/trials/0")
    expect(page.locator("#log")).to_contain_text("epoch=1 ", timeout=CHART_WAIT_MS)
    expect(page.locator("#earlier-attempts")).to_be_hidden()
    os.kill(int((pids / "0.1.pid").read_text()), signal.SIGKILL)

    separator = page.locator('#log .attempt-separator[data-attempt="2"]')
    expect(separator).to_have_count(1, timeout=20000)
    expect(page.locator("#log-attempt")).to_have_text("(attempt 2)")
    expect(page.locator("#trial-attempt")).to_have_text("2")
    page.wait_for_function("document.getElementById('log').textContent.split('attempt 2:')[1].includes('epoch=1 ')")
    first, _, second = page.evaluate("document.getElementById('log').textContent").partition(
        separator.text_content())
    assert first.count("epoch=1 ") == 1 and "could not be read" not in first, "the rest of attempt 1's log is read"
    assert second.startswith("epoch=1 "), "attempt 2's log from its first line"
    earlier = page.locator('#earlier-attempts a[data-attempt="1"]')
    expect(earlier).to_be_visible()
    assert earlier.get_attribute("href").endswith("?attempt=1&terminal=true"), "as the page shows a log"
    status, _, body = service.request("GET", earlier.get_attribute("href"))
    assert status == 200 and body.decode().startswith("epoch=1 ")
    screenshot(page, "trial-log-attempt-2")
    release.touch()
    expect(page.locator("#trial-state")).to_have_text("COMPLETE", timeout=CHART_WAIT_MS)
    expect(page.locator('#earlier-attempts a[data-attempt="1"]')).to_be_visible()


def test_a_followed_trial_run_again_twice_shows_its_current_attempts_state_and_latest_reason(service: Service,
                                                                                              page: Page):
    """The page of a trial opened in its second attempt follows it into its third, after a second
    preemption: its state and reason are the third attempt's and the latest ones, not those the
    page was opened with (the first attempt's note)."""
    pids, release = started_preemptible(service, "ui-twice", "twice")
    os.kill(int((pids / "0.1.pid").read_text()), signal.SIGKILL)
    eventually(lambda: (pids / "0.2.pid").exists(), "attempt 2 started", timeout=20)
    page.goto(service.base + "/ui/studies/ui-twice/trials/0")
    reason = page.locator("#reason .reason-text")
    expect(reason).to_have_text(re.compile(r"^attempt 1 "))
    expect(page.locator("#log")).to_contain_text("epoch=1 ", timeout=CHART_WAIT_MS)
    os.kill(int((pids / "0.2.pid").read_text()), signal.SIGKILL)

    expect(page.locator('#log .attempt-separator[data-attempt="3"]')).to_have_count(1, timeout=20000)
    expect(page.locator("#trial-attempt")).to_have_text("3")
    expect(reason).to_have_text(re.compile(r"^attempt 2 .*\nattempt 1 ", re.DOTALL))
    expect(page.locator("#trial-state")).to_have_text("RUNNING")
    trial = service.json("GET", "/studies/ui-twice/trials/0")[1]
    assert (trial["state"], trial["attempt"]) == ("RUNNING", 3) and trial["reason"] == reason.text_content()
    release.touch()
    expect(page.locator("#trial-state")).to_have_text("COMPLETE", timeout=CHART_WAIT_MS)


RERUN_CHATTY = """import os, pathlib, sys, time
here = pathlib.Path(sys.argv[1])
block = "".join(f"{i:05d} " + "x" * 93 + "\\n" for i in range(2_000))
if not (here / "first").exists():
    (here / "first").touch()
    print(block + "attempt-1-end", flush=True)
    (here / "pid").write_text(str(os.getpid()))
    time.sleep(600)
for k in range(1, 5):
    while not (here / f"go-{k}").exists():
        time.sleep(0.05)
    print(block + "x" * 45_000 + f" chunk-{k}", flush=True)
while not (here / "done").exists():
    time.sleep(0.05)
print("loss=1", flush=True)
"""


def test_a_trimmed_followed_log_links_the_attempt_whose_output_it_no_longer_shows(service: Service, page: Page):
    """Attempt 1 printed 200 KB before it was preempted; attempt 2's output, followed a chunk at
    a time, fills the page past its MiB: attempt 1's text leaves the page, and the note in its
    place links attempt 1's log, not attempt 2's."""
    here = service.workdir / "rerun-chatty"
    here.mkdir()
    definition = study_definition(name="ui-rerun-trim", maxTrials=1, parallelism=1, trialTemplate={
        "command": [sys.executable, "-c", RERUN_CHATTY, str(here), "${trialParameters.x}"]})
    assert post(service, definition) == 201
    # the file is made empty, then written: its pid, not its name, says attempt 1 printed
    pid = int(eventually(lambda: (here / "pid").exists() and (here / "pid").read_text(), "attempt 1 printed",
                         timeout=20))
    page.goto(service.base + "/ui/studies/ui-rerun-trim/trials/0")
    expect(page.locator("#log")).to_contain_text("attempt-1-end", timeout=CHART_WAIT_MS)
    os.kill(pid, signal.SIGKILL)
    expect(page.locator('#log .attempt-separator[data-attempt="2"]')).to_have_count(1, timeout=20000)
    for k in range(1, 5):
        (here / f"go-{k}").touch()
        expect(page.locator("#log")).to_contain_text(f"chunk-{k}", timeout=CHART_WAIT_MS)
    assert "attempt-1-end" not in page.locator("#log").text_content()
    expect(page.locator('#log .attempt-separator[data-attempt="2"]')).to_have_count(1)
    first = page.locator("#log > a").first
    expect(first).to_contain_text("earlier output not shown")
    assert first.get_attribute("href").endswith("?attempt=1")
    (here / "done").touch()
    expect(page.locator("#trial-state")).to_have_text("COMPLETE", timeout=CHART_WAIT_MS)


def test_the_study_page_follows_its_best_trials_and_ends_its_stop_button_without_a_reload(service: Service,
                                                                                          page: Page):
    release = service.workdir / "release-ui-live"
    definition = study_definition(name="ui-live", maxTrials=2, parallelism=2, algorithm={"name": "grid"},
                                  parameters=[{"name": "x", "type": "discrete", "values": ["1", "3"]}])
    definition["trialTemplate"]["command"] += ["--mode", "curve", "--epochs", "2", "--until", f"{release}-${{trialParameters.x}}"]
    assert post(service, definition) == 201
    page.clock.install()
    page.goto(service.base + "/ui/studies/ui-live")
    page.evaluate("window.sameDocument = true")
    expect(page.locator("#stop-study")).to_be_visible()
    expect(page.locator("#best tbody tr")).to_have_count(0)
    eventually(lambda: service.request("GET", "/studies/ui-live/trials/0")[0] == 200, "trial 0", timeout=20)
    first = service.json("GET", "/studies/ui-live/trials/0")[1]
    Path(f"{release}-{first['params']['x']}").touch()
    hurried(page, lambda: page.locator("#best tbody tr").count() == 1, "the page to show the best trial", timeout=20)
    expect(page.locator("#best tbody tr")).to_have_count(1)
    expect(page.locator("#best tbody")).to_contain_text("#0")
    expect(page.locator("#study-status")).to_have_text("running")
    expect(page.locator("#stop-study")).to_be_visible()
    for value in ("1", "3"):
        Path(f"{release}-{value}").touch()
    hurried(page, lambda: page.locator("#study-status").inner_text() == "completed", "the page to see the study end",
            timeout=20)
    expect(page.locator("#study-status")).to_have_text("completed")
    expect(page.locator("#best tbody tr")).to_have_count(2)
    expect(page.locator("#stop-study")).to_have_count(0)
    expect(page.locator("#restart-study")).to_be_visible()
    assert page.evaluate("window.sameDocument") is True, "followed, not reloaded"


def test_the_study_page_redraws_its_charts_for_a_trial_that_finished_before_its_first_refresh(service: Service,
                                                                                              page: Page):
    """The page's charts are drawn as it loads, with no trial finished; one finishes before the
    page's first refresh (the page's clock, Playwright's, stands still until the test moves it):
    that refresh redraws the history, which shows the trial, not "no completed trial yet" until
    another trial finishes."""
    release = service.workdir / "release-ui-early"
    definition = study_definition(name="ui-early", maxTrials=2, parallelism=2, algorithm={"name": "grid"},
                                  parameters=[{"name": "x", "type": "discrete", "values": ["1", "3"]}])
    definition["trialTemplate"]["command"] += ["--mode", "curve", "--epochs", "2", "--until",
                                               f"{release}-${{trialParameters.x}}"]
    assert post(service, definition) == 201
    eventually(lambda: len(trials_of(service, "ui-early")) == 2, "both trials", timeout=20)
    start = time.time()
    page.clock.install(time=start)
    page.clock.pause_at(start + 1)
    try:
        page.goto(service.base + "/ui/studies/ui-early")
        expect(page.locator("#plot-history")).to_have_text("no completed trial yet", timeout=CHART_WAIT_MS)
        Path(f"{release}-1").touch()
        eventually(lambda: service.json("GET", "/studies/ui-early")[1]["counts"]["complete"] == 1, "a trial complete",
                   timeout=20)
        page.clock.run_for(STUDY_REFRESH_MS)
        expect(page.locator("#best tbody tr")).to_have_count(1)
        page.wait_for_function("document.getElementById('plot-history').data?.[0]?.y?.length === 1",
                               timeout=CHART_WAIT_MS)
        expect(page.locator("#study-status")).to_have_text("running")
    finally:
        Path(f"{release}-3").touch()
        Path(f"{release}-1").touch()


def test_a_running_studys_charts_are_updated_in_place_keeping_the_range_a_person_zoomed_to(service: Service,
                                                                                          page: Page):
    """A trial ending while the page is open updates its charts in place (``Plotly.react``), not
    drawn anew: the parallel coordinates keep their WebGL canvas (a new one costs the browser
    over a second of CPU where it renders in software), the range a person brushed on an axis and
    the axis they hid, and the history keeps the range a person dragged it to, while showing the
    new trial."""
    release = service.workdir / "release-ui-zoom"
    definition = study_definition(name="ui-zoom", maxTrials=3, parallelism=1, algorithm={"name": "grid"},
                                  parameters=[{"name": "x", "type": "discrete", "values": ["1", "2", "3"]}])
    definition["trialTemplate"]["command"] += ["--mode", "curve", "--epochs", "2", "--until",
                                               f"{release}-${{trialParameters.x}}"]
    assert post(service, definition) == 201

    def finish_one(done: int) -> None:
        running = eventually(lambda: [t for t in trials_of(service, "ui-zoom") if t["state"] == "RUNNING"],
                             "a running trial", timeout=20)
        Path(f"{release}-{running[0]['params']['x']}").touch()
        eventually(lambda: service.json("GET", "/studies/ui-zoom")[1]["counts"]["complete"] == done,
                   f"{done} trials complete", timeout=20)

    finish_one(1)
    finish_one(2)
    start = time.time()
    page.clock.install(time=start)
    page.clock.pause_at(start + 1)
    page.goto(service.base + "/ui/studies/ui-zoom")
    history = page.locator("#plot-history")
    page.wait_for_function("document.getElementById('plot-history').data?.[0]?.y?.length === 2"
                           " && document.querySelector('#plot-parallel canvas') !== null", timeout=CHART_WAIT_MS)
    page.evaluate("window.keptCanvas = document.querySelector('#plot-parallel canvas')")
    box = history.locator(".nsewdrag").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.3)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.7, steps=5)
    page.mouse.up()
    zoomed = history.evaluate("div => div.layout.xaxis.range")
    assert zoomed is not None and history.evaluate("div => div._fullLayout.xaxis.autorange") is False
    brush = page.locator("#plot-parallel .axis-brush .background").first
    brush.scroll_into_view_if_needed()
    box = brush.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.6, steps=5)
    page.mouse.up()
    brushed = "div => div.data[0].dimensions[0].constraintrange"
    kept_range = page.locator("#plot-parallel").evaluate(brushed)
    assert kept_range is not None, "the brush set a range on the objective's axis"
    page.locator('#parallel-axes input[data-axis="x"]').uncheck()
    hidden_x = "div => div.data[0].dimensions.find((d) => d.label === 'x').visible === false"
    assert page.locator("#plot-parallel").evaluate(hidden_x)

    finish_one(3)
    page.clock.run_for(STUDY_REFRESH_MS)
    page.wait_for_function("document.getElementById('plot-history').data?.[0]?.y?.length === 3"
                           " && document.getElementById('plot-parallel').data[0].dimensions[0].values.length === 3",
                           timeout=CHART_WAIT_MS)
    assert history.evaluate("div => div.layout.xaxis.range") == zoomed, "the zoomed range stays"
    assert page.evaluate("document.querySelector('#plot-parallel canvas') === window.keptCanvas"), \
        "the parallel coordinates were updated on their canvas, not drawn on a new one"
    assert page.locator("#plot-parallel").evaluate(hidden_x), "the hidden axis stays hidden"
    assert page.locator("#plot-parallel").evaluate(brushed) == kept_range, "the brushed range stays"
    expect(page.locator('#parallel-axes input[data-axis="x"]')).not_to_be_checked()


def test_a_study_deleted_while_its_page_is_open_is_said_to_be_and_no_longer_followed(service: Service, page: Page,
                                                                                   console: dict[Page, Console]):
    """The page's clock is Playwright's: its refresh timer fires when the test moves the clock on."""
    console[page].expect("status of 404")
    release = service.workdir / "release-ui-deleted"
    definition = study_definition(name="ui-deleted", maxTrials=1, parallelism=1)
    definition["trialTemplate"]["command"] += ["--mode", "curve", "--until", str(release)]
    assert post(service, definition) == 201
    followed: list[str] = []
    page.on("request", lambda request: followed.append(request.url) if request.url.endswith("/studies/ui-deleted") else None)
    page.clock.install()
    try:
        page.goto(service.base + "/ui/studies/ui-deleted")
        expect(page.locator("#stop-study")).to_be_visible()
        assert service.request("DELETE", "/studies/ui-deleted")[0] == 204
        page.clock.run_for(STUDY_REFRESH_MS)
        expect(page.locator("#study-status")).to_have_text("deleted")
        expect(page.locator("#stop-reason")).to_contain_text("this study was deleted")
        expect(page.locator("#stop-study")).to_have_count(0)
        asked = len(followed)
        page.clock.run_for(STUDY_REFRESH_MS * 3)
        assert page.evaluate("fetch('/healthz').then((answer) => answer.status)") == 200
        assert len(followed) == asked, "the page no longer asks for the deleted study"
    finally:
        release.touch()


def test_a_running_study_deleted_from_its_page_once_confirmed_is_stopped_and_gone_and_the_list_says_so(
        service: Service, page: Page):
    """Delete opens a dialog naming the study, which says it runs and is stopped first; Cancel
    (and Escape) keep it; Delete goes through the API's DELETE, and the studies list opens with a
    notice, shown once, the study gone from it and from the API."""
    release = service.workdir / "release-ui-doomed"
    definition = study_definition(name="ui-doomed", maxTrials=1, parallelism=1)
    definition["trialTemplate"]["command"] += ["--mode", "curve", "--until", str(release)]
    assert post(service, definition) == 201
    try:
        page.goto(service.base + "/ui/studies/ui-doomed")
        dialog = page.locator("#delete-dialog")
        page.click("#delete-study")
        expect(dialog).to_be_visible()
        expect(dialog.locator("#delete-title")).to_have_text("Delete the study ui-doomed?")
        expect(dialog.locator("#delete-running")).to_be_visible()
        expect(dialog.locator("#delete-running")).to_contain_text("it is stopped first")
        expect(dialog.locator("#delete-confirm")).to_have_text("Delete ui-doomed")
        expect(dialog.locator("#delete-cancel")).to_be_focused()
        screenshot(page, "delete-dialog")
        page.click("#delete-cancel")
        expect(dialog).to_be_hidden()
        page.click("#delete-study")
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        assert service.json("GET", "/studies/ui-doomed")[1]["status"] == "running"
        page.click("#delete-study")
        page.click("#delete-confirm")
        page.wait_for_url(service.base + "/ui/")
        expect(page.locator("#notice")).to_have_text('Deleted the study "ui-doomed", with its trials.')
        expect(page.locator('tr[data-study="ui-doomed"]')).to_have_count(0)
        assert service.request("GET", "/studies/ui-doomed")[0] == 404
        page.reload()
        expect(page.locator("#notice")).to_be_hidden()
    finally:
        release.touch()


def test_a_delete_the_service_refuses_is_said_on_the_page_and_the_study_stays(service: Service, page: Page,
                                                                             console: dict[Page, Console]):
    """The database busy past the busy timeout (here the answer the service gives then, 503):
    the page says why beside the buttons and stays, the Delete button there for another try."""
    console[page].expect("status of 503")
    assert post(service, study_definition(name="ui-kept", maxTrials=1, parallelism=1)) == 201
    service.wait_for("ui-kept")
    busy = {"error": "temporarily_unavailable", "retryable": True,
            "message": "the database is busy: another writer held it past the busy timeout (KATUNA_BUSY_TIMEOUT); "
                       "retry later"}
    page.route("**/studies/ui-kept", lambda route: route.fulfill(status=503, json=busy, headers={"Retry-After": "1"})
               if route.request.method == "DELETE" else route.continue_())
    page.goto(service.base + "/ui/studies/ui-kept")
    page.evaluate("window.sameDocument = true")
    expect(page.locator("#delete-running")).to_be_hidden()
    page.click("#delete-study")
    page.click("#delete-confirm")
    expect(page.locator("#delete-problem")).to_have_text("The study was not deleted: the database is busy: another "
                                                         "writer held it past the busy timeout (KATUNA_BUSY_TIMEOUT); "
                                                         "retry later")
    expect(page.locator("#delete-study")).to_be_enabled()
    assert page.evaluate("window.sameDocument") is True
    assert service.json("GET", "/studies/ui-kept")[1]["status"] == "completed"


def test_the_pareto_front_table_lists_the_whole_front_with_its_count(service: Service, page: Page):
    definition = study_definition(name="ui-front", maxTrials=14, parallelism=4, objective={"metrics": [
        {"name": "loss", "direction": "minimize"}, {"name": "size", "direction": "minimize"}]},
        parameters=[{"name": "x", "type": "float", "min": 0.0, "max": 2.0}])
    assert post(service, definition) == 201
    service.wait_for("ui-front")
    front = service.json("GET", "/studies/ui-front")[1]["best"]
    assert len(front) > 10, "every trial trades loss for size"
    page.goto(service.base + "/ui/studies/ui-front")
    expect(page.locator("#best tbody tr")).to_have_count(len(front))
    expect(page.locator("#best-count")).to_have_text(f"{len(front)} trials")


def test_an_ended_session_sends_the_studies_list_to_the_login_page(tmp_path, browser: Browser):
    """The list refreshes itself while a study runs; once the session ends (logged out in
    another tab, expired) the refresh sends the whole window to the login page, the list as next."""
    guarded = Service(tmp_path, workers=1, KATUNA_API_TOKEN=TOKEN)
    release = tmp_path / "release-ui-ended"
    try:
        context = browser.new_context()
        page = context.new_page()
        console = Console(page)
        console.expect("status of 401")
        page.goto(guarded.base + "/ui/login?next=/ui/")
        page.fill("#token", TOKEN)
        page.click("#login button")
        page.wait_for_url(guarded.base + "/ui/")
        definition = study_definition(name="ui-ended", maxTrials=1, parallelism=1)
        definition["trialTemplate"]["command"] += ["--mode", "curve", "--until", str(release)]
        bearer = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        assert guarded.request("POST", "/studies", json.dumps(definition), bearer)[0] == 201
        page.reload()
        expect(page.locator('tr[data-study="ui-ended"]')).to_contain_text("running")
        assert guarded.request("GET", "/ui/studies.fragment")[0] == 401
        cookie = next(c["value"] for c in context.cookies() if c["name"] == "katuna_session")
        csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
        form = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"katuna_session={cookie}",
                "Origin": guarded.base}
        guarded.request("POST", "/ui/logout", urllib.parse.urlencode({"csrf": csrf}), form)
        page.wait_for_url(guarded.base + "/ui/login?next=/ui/", timeout=CHART_WAIT_MS)
        expect(page.locator("header.top")).to_have_count(1)
        expect(page.locator("#login")).to_have_count(1)
        assert not console.unexpected()
        context.close()
    finally:
        release.touch()
        guarded.close()


def hide(page: Page, hidden: bool) -> None:
    """The tab hidden (another tab in front, the window minimised) or shown again, as the page sees it."""
    page.evaluate("""(hidden) => {
        Object.defineProperty(document, "visibilityState", {value: hidden ? "hidden" : "visible", configurable: true});
        document.dispatchEvent(new Event("visibilitychange"));
    }""", hidden)


def test_the_idle_studies_list_shows_studies_stored_and_deleted_elsewhere_asking_only_whether_it_changed(
        tmp_path, browser: Browser):
    """No study runs: every 10 s the list asks whether it changed, with the version it shows, and
    the service answers 304 until a study is stored or deleted (here through the API), which the
    list then shows. A hidden tab asks nothing, and asks at once when shown again. The page's
    clock is Playwright's: its timers fire as the test moves it on."""
    service = Service(tmp_path, workers=1)
    context = browser.new_context()
    try:
        page = context.new_page()
        console = Console(page)
        answers: list[int] = []
        page.on("response", lambda answer: answers.append(answer.status) if "/ui/studies.fragment" in answer.url
                else None)
        assert post(service, study_definition(name="ui-idle-first", maxTrials=1, parallelism=1)) == 201
        service.wait_for("ui-idle-first")
        page.clock.install()
        page.goto(service.base + "/ui/")
        expect(page.locator('tr[data-study="ui-idle-first"]')).to_contain_text("completed")
        page.clock.run_for(IDLE_MS)
        eventually(lambda: page.wait_for_timeout(50) or answers == [304], "an unchanged list's answer", timeout=15)

        assert post(service, study_definition(name="ui-idle-second", maxTrials=1, parallelism=1)) == 201
        service.wait_for("ui-idle-second")
        page.clock.run_for(IDLE_MS)
        expect(page.locator('tr[data-study="ui-idle-second"]')).to_contain_text("completed")
        assert service.request("DELETE", "/studies/ui-idle-first")[0] == 204
        page.clock.run_for(IDLE_MS)
        expect(page.locator('tr[data-study="ui-idle-first"]')).to_have_count(0)
        assert answers == [304, 200, 200]

        hide(page, True)
        page.clock.run_for(IDLE_MS * 3)
        assert page.evaluate("fetch('/healthz').then((answer) => answer.status)") == 200
        assert answers == [304, 200, 200], "a hidden tab asks nothing"
        hide(page, False)
        eventually(lambda: page.wait_for_timeout(50) or answers == [304, 200, 200, 304], "an ask once shown",
                   timeout=15)
        assert not console.unexpected()
    finally:
        context.close()
        service.close()


def test_new_study_form_shows_problems_by_field_then_submits_an_uploaded_katib_experiment(service: Service, page: Page,
                                                                                        console: dict[Page, Console]):
    console[page].expect("status of 422")
    page.goto(service.base + "/ui/new")
    bad = study_definition(name="ui-new", parallelism=0)
    page.fill("#study-text", yaml.safe_dump(bad, sort_keys=False))
    page.focus("#submit-study")
    page.keyboard.press("Enter")
    problem = page.locator('#study-problems li[data-path="parallelism"]')
    expect(problem).to_contain_text("expected an integer >= 1")
    expect(page.locator("#study-problems")).to_be_focused()  # read next from the keyboard, not hunted for
    screenshot(page, "new-study-invalid")
    assert service.request("GET", "/studies/ui-new")[0] == 404

    katib = service.workdir / "experiment.yaml"
    katib.write_text(yaml.safe_dump(experiment()))
    page.set_input_files("#study-file", str(katib))
    expect(page.locator("#study-text")).to_have_value(katib.read_text())
    page.click("#submit-study")
    page.wait_for_url("**/ui/studies/katib-exp")
    expect(page.locator("h1")).to_contain_text("katib-exp")
    assert service.wait_for("katib-exp")["status"] == "completed"


def test_a_study_that_reached_its_max_trials_restarts_from_its_page_with_the_budget_raised(service: Service,
                                                                                            page: Page):
    """The ended study's Restart opens the form holding its definition as submitted; raised by
    one trial, it runs one more trial, numbered after the others, and its page, open meanwhile,
    offers Restart again once it ends."""
    assert post(service, study_definition(name="ui-again", maxTrials=2, parallelism=1)) == 201
    service.wait_for("ui-again")
    page.clock.install()
    page.goto(service.base + "/ui/studies/ui-again")
    page.click("#restart-study")
    page.wait_for_url("**/ui/new?restart=ui-again")
    expect(page.locator("#restart-hint")).to_contain_text("Raise maxTrials above its 2 trials")
    definition = json.loads(page.locator("#study-text").input_value())
    assert definition == study_definition(name="ui-again", maxTrials=2, parallelism=1)
    page.fill("#study-text", json.dumps({**definition, "maxTrials": 3}))
    page.click("#submit-study")
    page.wait_for_url("**/ui/studies/ui-again")
    assert service.wait_for("ui-again")["counts"]["complete"] == 3
    assert sorted(t["number"] for t in trials_of(service, "ui-again")) == [0, 1, 2]
    hurried(page, lambda: page.locator("#restart-study").is_visible(), "the page to see the study end")
    expect(page.locator("#restart-study")).to_be_visible()
    page.evaluate("window.stillThisPage = true")
    assert post(service, study_definition(name="ui-again", maxTrials=4, parallelism=1)) == 200
    hurried(page, lambda: "4 of 4: 4 complete" in page.locator("#trial-counts").inner_text(),
            "the page to see the restarted study end")
    expect(page.locator("#trial-counts")).to_contain_text("4 of 4: 4 complete")
    expect(page.locator("#restart-study")).to_be_visible()
    assert page.evaluate("window.stillThisPage"), "a restart made elsewhere is followed on the page left open"
    assert post(service, study_definition(name="ui-stopped", mode="hang", maxTrials=1, parallelism=1)) == 201
    assert service.request("POST", "/studies/ui-stopped/stop", headers={"Content-Type": "application/json"})[0] == 200
    page.goto(service.base + "/ui/studies/ui-stopped")
    expect(page.locator("#study-status")).to_have_text("stopped")
    expect(page.locator("#restart-study")).to_have_count(0)


def test_a_study_the_service_could_not_be_reached_for_is_said_so_and_kept_in_the_form(service: Service, page: Page,
                                                                                       console: dict[Page, Console]):
    """The connection drops as the form posts (a restarting worker): the form says the service
    could not be reached and keeps the text for another try, rather than failing on the console."""
    console[page].expect("ERR_CONNECTION_RESET")
    page.route("**/studies", lambda route: route.abort("connectionreset"))
    page.goto(service.base + "/ui/new")
    text = yaml.safe_dump(study_definition(name="ui-unreached"), sort_keys=False)
    page.fill("#study-text", text)
    page.click("#submit-study")
    expect(page.locator("#study-problems")).to_contain_text("the service could not be reached")
    expect(page.locator("#study-text")).to_have_value(text)
    assert service.request("GET", "/studies/ui-unreached")[0] == 404


def test_login_form_trades_the_token_for_a_strict_cookie(tmp_path, browser: Browser):
    guarded = Service(tmp_path, workers=1, KATUNA_API_TOKEN=TOKEN)
    try:
        context = browser.new_context()
        page = context.new_page()
        console = Console(page)
        console.expect("status of 401", "status of 404", "status of 422")
        page.goto(guarded.base + "/ui/studies/none")
        assert page.url == guarded.base + "/ui/login?next=/ui/studies/none"
        page.fill("#token", "wrong")
        page.click("#login button")
        expect(page.locator("#login-error")).to_be_visible()
        screenshot(page, "login")

        page.fill("#token", TOKEN)
        page.click("#login button")
        expect(page.locator(".problem")).to_contain_text("no study named 'none'")
        cookie = next(c for c in context.cookies() if c["name"] == "katuna_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]
        assert TOKEN not in page.url

        assert page.request.get(guarded.base + "/studies").status == 200
        assert guarded.request("GET", "/studies")[0] == 401
        assert guarded.request("GET", "/ui/studies/none/plots/history")[0] == 401
        page.goto(guarded.base + "/ui/new")
        page.fill("#study-text", yaml.safe_dump(study_definition(name="ui-guarded", maxTrials=0), sort_keys=False))
        page.click("#submit-study")
        expect(page.locator('#study-problems li[data-path="maxTrials"]')).to_be_visible()

        page.click("text=Log out")
        page.wait_for_url("**/ui/login**")
        page.go_back()  # no page of the session is kept (Cache-Control: no-store): it is asked for again
        page.wait_for_url(guarded.base + "/ui/login?next=/ui/new")
        expect(page.locator("#login")).to_have_count(1)
        page.goto(guarded.base + "/ui/")
        assert "/ui/login" in page.url
        assert not console.unexpected()
        context.close()
    finally:
        guarded.close()


def test_the_studies_list_starts_no_refresh_while_one_is_unanswered(service: Service, page: Page):
    """The list refreshes while a study runs, one fetch at a time: an answer that is slow to come
    (a database busy with a large study) has no others piling up behind it. The page's clock is
    run ahead, its timers firing as they come due, rather than waited for."""
    release = service.workdir / "release-ui-held"
    held = study_definition(name="ui-held", maxTrials=1, parallelism=1, trialTemplate={"command": [
        sys.executable, str(TRIAL), "--x", "${trialParameters.x}", "--mode", "curve", "--until", str(release)]})
    assert post(service, held) == 201
    asked: list = []
    page.route("**/ui/studies.fragment", lambda route: asked.append(route))
    page.clock.install()
    page.goto(service.base + "/ui/")
    expect(page.locator('tr[data-study="ui-held"]')).to_contain_text("running")
    hurried(page, lambda: asked, "a first refresh", timeout=15)
    page.clock.run_for(IDLE_MS)  # more than three refresh periods, every timer due in them fired
    page.wait_for_timeout(500)
    assert len(asked) == 1, "refreshes started while the first was unanswered"
    asked[0].continue_()
    hurried(page, lambda: len(asked) == 2, "the next refresh, once the first was answered", timeout=15)
    asked[1].continue_()
    release.touch()
    service.wait_for("ui-held")



def test_each_error_page_is_titled_and_headed_by_what_it_is(service: Service, page: Page,
                                                           console: dict[Page, Console]):
    """A tab's title and the page's heading name the error (a screen reader scanning tabs hears
    which), and the message under it is katuna's, not prefixed with HTTP's name for it."""
    console[page].expect("status of 404", "status of 400")
    for path, status, heading, message in [
            ("/ui/studies/no-such-study", 404, "Not found", "no study named 'no-such-study'"),
            ("/ui/nowhere", 404, "Not found", "no such path: /ui/nowhere"),
            ("/ui/studies/ui-demo/trials/abc", 400, "Bad request",
             "number: expected a whole number from 0 to 9223372036854775807, got 'abc'")]:
        assert page.goto(service.base + path).status == status
        expect(page).to_have_title(f"{heading} · katuna")
        expect(page.locator("h1")).to_have_text(heading)
        expect(page.locator(".problem")).to_have_text(message)


def test_a_page_number_refused_says_where_the_tables_pages_start_and_end(service: Service, page: Page,
                                                                        console: dict[Page, Console]):
    """``page=0`` was refused as not "a whole number from 1 to 184467440737095516" (the last page
    SQLite could reach): the refusal names the table's own last page; the export, which has no
    pages, where they start."""
    console[page].expect("status of 400")
    trials = len(trials_of(service, "ui-demo"))
    assert page.goto(service.base + "/ui/studies/ui-demo/trials?size=25&page=0").status == 400
    last = (trials + 24) // 25
    expect(page.locator("#filter-problem")).to_contain_text(f"page: expected a page number from 1 to {last}, got '0'.")
    status, _, body = service.request("GET", "/ui/studies/ui-demo/trials.csv?page=x")
    assert (status, json.loads(body)["message"]) == (400, "page: expected a page number from 1, got 'x'")


def test_the_slice_and_the_contour_draw_the_parameters_in_the_order_picked(service: Service, page: Page):
    """Picked ``y`` then ``x``: the slice's first column and the contour's x axis are ``y``, where
    Optuna draws them in the order of their names, each with ``y``'s values."""
    values = sorted(t["params"]["y"] for t in trials_of(service, "ui-demo") if t["state"] == "COMPLETE")
    page.goto(service.base + "/ui/studies/ui-demo?params=y,x")
    expect(page.locator("#plot-pair")).to_have_attribute("data-ready", "true", timeout=CHART_WAIT_MS)
    slice_ = page.evaluate("""(({data, layout}) => ({
        titles: [layout.xaxis.title.text, layout.xaxis2.title.text],
        first: data.filter((trace) => (trace.xaxis || 'x') === 'x').flatMap((trace) => trace.x)}))(
        document.getElementById('plot-pair'))""")
    assert slice_["titles"] == ["y", "x"]
    assert sorted(slice_["first"]) == pytest.approx(values)
    page.locator('input[name="pair-kind"][value="contour"]').check()
    page.wait_for_function("document.getElementById('plot-pair').data?.[0]?.type === 'contour'")
    contour = page.evaluate("""(({data, layout}) => ({
        titles: [layout.xaxis.title.text, layout.yaxis.title.text], points: data[1].x}))(
        document.getElementById('plot-pair'))""")
    assert contour["titles"] == ["y", "x"]
    assert sorted(contour["points"]) == pytest.approx(values)


LAST_AXIS = """() => {
  const box = (el) => el.getBoundingClientRect();
  const bar = [...document.querySelectorAll('#plot-parallel .colorbar :is(.cbfill, .cbaxis text, .cbtitle text)')]
    .map(box);
  const labels = [...[...document.querySelectorAll('#plot-parallel .y-axis')].at(-1).querySelectorAll('text')]
    .filter((text) => text.textContent).map(box);
  return {bar: Math.min(...bar.map((b) => b.left)), labels: Math.max(...labels.map((b) => b.right)),
          figure: box(document.querySelector('#plot-parallel svg.main-svg')).right};
}"""
"""The left of the parallel coordinates' colour bar (its ticks and title included), the right of
the last axis' text (its ticks, range and title), and the right of the figure, in pixels."""


def test_the_parallel_coordinates_colour_bar_stands_clear_of_the_last_axis(service: Service, page: Page):
    """At 1280 px, two charts a row: the last axis' range labels, centred on it, reached into the
    colour bar's column; the figure's right margin now holds the bar apart, and whole."""
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(service.base + "/ui/studies/ui-demo")
    expect(page.locator("#plot-parallel")).to_have_attribute("data-ready", "true", timeout=CHART_WAIT_MS)
    placed = page.evaluate(LAST_AXIS)
    assert placed["labels"] < placed["bar"], placed
    assert page.evaluate("Math.max(...[...document.querySelectorAll('#plot-parallel .colorbar text')]"
                         ".map((text) => text.getBoundingClientRect().right))") <= placed["figure"]


def test_the_pareto_front_chart_gives_its_points_the_width_of_a_narrow_screen(service: Service, page: Page):
    """320 px (WCAG 1.4.10's width): the Pareto front chart's two colour bars, the trials' and the
    front's, lie below its points, each across the chart, where side by side beside the points they
    took half its width; every bar stays within the chart."""
    page.set_viewport_size({"width": 320, "height": 800})
    page.goto(service.base + "/ui/studies/ui-pareto")
    expect(page.locator("#plot-pareto")).to_have_attribute("data-ready", "true", timeout=CHART_WAIT_MS)
    chart, plot, bars = page.evaluate("""() => {
      const chart = document.getElementById('plot-pareto');
      const box = (el) => { const {left, right, top, bottom} = el.getBoundingClientRect(); return {left, right, top, bottom}; };
      return [box(chart), box(chart.querySelector('.nsewdrag')), [...chart.querySelectorAll('g.colorbar')].map(box)];
    }""")
    screenshot(page, "study-pareto-narrow")
    assert len(bars) == 2
    assert plot["right"] - plot["left"] >= 0.6 * (chart["right"] - chart["left"]), (chart, plot)
    for bar in bars:
        assert bar["top"] >= plot["bottom"] and chart["left"] <= bar["left"] and bar["right"] <= chart["right"], (bar, plot, chart)
