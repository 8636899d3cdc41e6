"""Chromium against a real ``katuna serve``: a page on another port of the same host tries to
create a study (a no-cors fetch with a JSON blob, a ``<form enctype=text/plain>``), with and
without a logged-in dashboard session; the dashboard itself keeps working with its CSRF token."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

import pytest
import yaml
from browser import Console
from conftest import study_definition
from http_helpers import Service
from playwright.sync_api import Browser, expect
from standin_server import StandInServer

pytestmark = pytest.mark.browser

TOKEN = "browser-token-0123456789"


class AttackPage:
    """A loopback page on its own port that posts a study to ``target`` as soon as it loads."""

    def __init__(self, target: str, name: str) -> None:
        study = json.dumps(study_definition(name=name, maxTrials=1, parallelism=1))
        html = f"""<!doctype html><title>attack</title>
<form id="f" method="post" action="{target}/studies" enctype="text/plain">
<input name='{study[:-1]}, "x": "' value='"}}'></form>
<script>
const study = {json.dumps(study)};
fetch("{target}/studies", {{method: "POST", mode: "no-cors", credentials: "include",
  body: new Blob([study], {{type: "application/json"}})}})
  .catch(() => null)
  .then(() => fetch("{target}/studies", {{method: "POST", mode: "no-cors", credentials: "include", body: study}}))
  .catch(() => null)
  .then(() => document.getElementById("f").submit());
</script>""".encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(html)))
                self.end_headers()
                self.wfile.write(html)

            def log_message(self, *args) -> None:
                return

        self.server = StandInServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _attack(browser: Browser, service: Service, name: str, login: bool) -> None:
    context = browser.new_context()
    page = context.new_page()
    if login:
        page.goto(service.base + "/ui/login")
        page.fill("#token", TOKEN)
        page.click("#login button")
        page.wait_for_url(service.base + "/ui/")
    attacker = AttackPage(service.base, name)
    try:
        page.goto(attacker.url)
        page.wait_for_url(service.base + "/studies")
        assert page.locator("body").inner_text()
    finally:
        attacker.close()
        context.close()


def test_a_page_on_another_port_cannot_create_a_study(tmp_path, browser: Browser):
    open_service = Service(tmp_path, workers=1)
    try:
        _attack(browser, open_service, "drive-by-open", login=False)
        assert open_service.json("GET", "/studies")[1] == []
    finally:
        open_service.close()


def test_a_page_on_another_port_cannot_ride_the_dashboard_session(tmp_path, browser: Browser):
    guarded = Service(tmp_path, workers=1, KATUNA_API_TOKEN=TOKEN)
    try:
        _attack(browser, guarded, "drive-by-session", login=True)
        assert guarded.json("GET", "/studies", headers={"Authorization": f"Bearer {TOKEN}"})[1] == []
    finally:
        guarded.close()


def test_the_dashboard_submits_stops_deletes_and_logs_out_with_its_csrf_token(tmp_path, browser: Browser):
    guarded = Service(tmp_path, workers=2, KATUNA_API_TOKEN=TOKEN)
    context = browser.new_context()
    try:
        page = context.new_page()
        console = Console(page)
        page.goto(guarded.base + "/ui/new")
        page.fill("#token", TOKEN)
        page.click("#login button")
        page.fill("#study-text", yaml.safe_dump(study_definition(name="from-form", mode="hang", maxTrials=2),
                                                sort_keys=False))
        page.click("#submit-study")
        page.wait_for_url(guarded.base + "/ui/studies/from-form")
        page.on("dialog", lambda dialog: dialog.accept())
        page.evaluate("window.sameDocument = true")
        page.click("#stop-study")
        expect(page.locator("#study-status")).to_have_text("stopped", timeout=20_000)
        expect(page.locator("#trial-counts")).to_contain_text("0 running")
        expect(page.locator("#stop-study")).to_have_count(0)
        expect(page.locator("#stop-reason")).not_to_have_text("running")
        assert page.evaluate("window.sameDocument") is True, "the stopped study is shown in place, not reloaded"
        expect(page.locator("#restart-study")).to_have_count(0)
        page.click("#delete-study")
        page.click("#delete-confirm")
        page.wait_for_url(guarded.base + "/ui/")
        expect(page.locator("#notice")).to_have_text('Deleted the study "from-form", with its trials.')
        assert guarded.request("GET", "/studies/from-form", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 404
        cookie = next(c for c in context.cookies() if c["name"] == "katuna_session")
        page.click("text=Log out")
        page.wait_for_url(guarded.base + "/ui/login")
        replayed = {"Cookie": f"katuna_session={cookie['value']}"}
        assert guarded.request("GET", "/studies", headers=replayed)[0] == 401
        assert not console.unexpected()
    finally:
        context.close()
        guarded.close()


def test_a_stop_or_delete_the_service_refuses_is_said_on_the_page_and_the_study_runs_on(tmp_path, browser: Browser):
    """Logged in again in another tab, the study page's CSRF token is the old session's: its Stop
    and its Delete are refused (403), and the page says so beside the buttons, which stay, rather
    than reloading as if the study had stopped, or leaving as if it had been deleted. Pressed from
    the keyboard, each keeps the focus once refused, where it fell to the page's start."""
    guarded = Service(tmp_path, workers=1, KATUNA_API_TOKEN=TOKEN)
    bearer = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    context = browser.new_context()
    try:
        definition = study_definition(name="stale-stop", mode="hang", maxTrials=1, parallelism=1)
        assert guarded.request("POST", "/studies", json.dumps(definition), bearer)[0] == 201
        page = context.new_page()
        console = Console(page)
        console.expect("status of 403")
        page.goto(guarded.base + "/ui/studies/stale-stop")
        page.fill("#token", TOKEN)
        page.click("#login button")
        page.wait_for_url(guarded.base + "/ui/studies/stale-stop")
        expect(page.locator("#stop-study")).to_be_visible()
        page.evaluate("window.sameDocument = true")
        other = context.new_page()
        other.goto(guarded.base + "/ui/login")
        other.fill("#token", TOKEN)
        other.click("#login button")
        other.wait_for_url(guarded.base + "/ui/")
        page.on("dialog", lambda dialog: dialog.accept())
        page.focus("#stop-study")
        page.keyboard.press("Enter")
        expect(page.locator("#stop-problem")).to_contain_text("The study was not stopped: a write with the "
                                                              "dashboard's session needs a same-origin request "
                                                              "carrying the page's CSRF token")
        expect(page.locator("#stop-study")).to_be_enabled()
        expect(page.locator("#stop-study")).to_be_focused()
        page.focus("#delete-study")
        page.keyboard.press("Enter")
        page.click("#delete-confirm")
        expect(page.locator("#delete-problem")).to_contain_text("The study was not deleted: a write with the "
                                                                "dashboard's session needs a same-origin request "
                                                                "carrying the page's CSRF token")
        expect(page.locator("#delete-study")).to_be_enabled()
        expect(page.locator("#delete-study")).to_be_focused()
        assert page.evaluate("window.sameDocument") is True, "the page was not reloaded as if stopped, nor left"
        assert guarded.json("GET", "/studies/stale-stop", headers=bearer)[1]["status"] == "running"
        assert not console.unexpected()
    finally:
        context.close()
        guarded.close()


def test_markup_that_slipped_past_escaping_runs_nothing_on_the_dashboards_pages(tmp_path, browser: Browser):
    """Every page sets itself up from the service's own script (``<body data-page>``), so the
    pages' policy refuses inline scripts and event handlers: markup that reached a page unescaped
    would run nothing."""
    service = Service(tmp_path, workers=1)
    page = browser.new_page()
    console = Console(page)
    console.expect("Content Security Policy", "status of 422")
    try:
        assert service.request("POST", "/studies", json.dumps(study_definition(name="policed", maxTrials=1,
                                                                                parallelism=1)),
                               {"Content-Type": "application/json"})[0] == 201
        for path in ("/ui/", "/ui/studies/policed", "/ui/new"):
            page.goto(service.base + path)
            page.evaluate("""() => {
                window.refused = 0;
                document.addEventListener("securitypolicyviolation", () => { window.refused += 1; });
                const box = document.createElement("div");
                box.innerHTML = '<img src="data:," onerror="window.injected = 1">';
                const script = Object.assign(document.createElement("script"), {textContent: "window.injected = 2"});
                document.body.append(box, script);
            }""")
            page.wait_for_function("window.refused >= 2")
            assert page.evaluate("window.injected") is None, path
        page.fill("#study-text", "name: Not-A-Name")
        page.click("#new-study button")
        expect(page.locator("#study-problems")).to_contain_text("The study is not valid:")
        assert console.unexpected() == [], "the page's own script ran, and only the injected markup was refused"
    finally:
        page.close()
        service.close()


CHART_POINTS = """(id) => {
    const div = document.getElementById(id);
    if (!div.data) return -1;
    return div.data.reduce((n, t) => n + (t.dimensions ? t.dimensions[0].values.length : (t.x || []).length), 0);
}"""


def test_every_chart_of_a_running_study_follows_its_trials_keeping_brushed_ranges_and_hidden_axes(tmp_path,
                                                                                                  browser: Browser):
    """As its trials end, a running study's parallel coordinates and slice are redrawn in place
    with them, as its history is, not left with the trials of their first draw until the study
    ends; a range brushed on the parallel coordinates and an axis hidden there stay."""
    service = Service(tmp_path, workers=2)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    console = Console(page)
    try:
        command = study_definition()["trialTemplate"]["command"] + ["--y", "${trialParameters.y}", "--sleep", "2"]
        # Trials of 2 s one at a time: the study runs past every wait below (330 s in all), so it is
        # still running when the page follows it, however slowly a loaded machine draws the page.
        service.submit(study_definition(
            name="followed", maxTrials=200, parallelism=1,
            parameters=[{"name": "x", "type": "float", "min": -5, "max": 5},
                        {"name": "y", "type": "float", "min": -5, "max": 5}],
            trialTemplate={"command": command}))
        deadline = time.monotonic() + 60
        while service.json("GET", "/studies/followed")[1]["counts"]["complete"] < 2:
            assert time.monotonic() < deadline, "two trials end"
            time.sleep(0.2)
        page.goto(service.base + "/ui/studies/followed")
        page.wait_for_function(f"({CHART_POINTS})('plot-parallel') >= 2 && ({CHART_POINTS})('plot-pair') >= 2")
        drawn = {id_: page.evaluate(CHART_POINTS, id_) for id_ in ("plot-parallel", "plot-pair")}
        page.evaluate("""() => Plotly.restyle(document.getElementById('plot-parallel'),
                                              {'dimensions[0].constraintrange': [[-5, 4.5]]})""")
        page.locator('#parallel-axes input[data-axis="y"]').uncheck()
        page.wait_for_function(f"""() => document.getElementById('study-status').textContent === 'running'
            && ({CHART_POINTS})('plot-parallel') > {drawn['plot-parallel']}
            && ({CHART_POINTS})('plot-pair') > {drawn['plot-pair']}""", timeout=90_000)
        dimensions = page.evaluate("document.getElementById('plot-parallel').data[0].dimensions"
                                   ".map((d) => [d.label, d.visible !== false, d.constraintrange || null])")
        assert [d[1:] for d in dimensions if d[0] == "y"] == [[False, None]], "the hidden axis stays hidden"
        assert dimensions[0][2] == [-5, 4.5], "the brushed range stays"
        expect(page.locator('#parallel-axes input[data-axis="y"]')).not_to_be_checked()
        assert not console.unexpected()
    finally:
        page.close()
        service.close()


def test_a_study_submitted_again_unchanged_after_it_ended_is_said_so_on_the_form_which_stays(tmp_path,
                                                                                            browser: Browser):
    """Restart… submitted without raising maxTrials, or a study pasted identical to one that
    ended: the service answers 200 with the stored study, unchanged and still ended, so the form
    says so (and how to run more of it) rather than opening the old study as if it had run again.
    With maxTrials raised, the restarted study opens."""
    service = Service(tmp_path, workers=1)
    page = browser.new_page()
    console = Console(page)
    try:
        definition = study_definition(name="ended-once", maxTrials=1, parallelism=1)
        service.submit(definition)
        service.wait_for("ended-once")
        page.goto(service.base + "/ui/new?restart=ended-once")
        expect(page.locator("#restart-hint")).to_be_visible()
        page.evaluate("window.sameDocument = true")
        for text in (None, json.dumps(definition)):
            if text is not None:
                page.fill("#study-text", text)
            page.click("#submit-study")
            unchanged = page.locator("#study-unchanged")
            expect(unchanged).to_have_text('The study "ended-once" exists already with this definition, unchanged, '
                                           "and ended (completed: max trials reached (1)): nothing was created or "
                                           "restarted.")
            expect(page.locator("#study-problems")).to_contain_text("raise maxTrials (spec.maxTrialCount for a "
                                                                    "Katib Experiment) above its 1 trial")
            expect(page.locator("#study-problems a")).to_have_attribute("href", "/ui/studies/ended-once")
        assert page.evaluate("window.sameDocument") is True, "the form stays"
        assert page.url == service.base + "/ui/new?restart=ended-once"
        page.fill("#study-text", json.dumps({**definition, "maxTrials": 2}))
        page.click("#submit-study")
        page.wait_for_url(service.base + "/ui/studies/ended-once")
        assert service.wait_for("ended-once")["trials"] == 2
        assert not console.unexpected()
    finally:
        page.close()
        service.close()


def test_a_range_bound_that_is_not_a_number_is_said_beside_the_filters_as_typed_naming_its_field(tmp_path,
                                                                                               browser: Browser):
    """A bound of ``0,5`` is refused (400), on the trial table's page: its form as typed, the
    refusal right under the range naming its field and the bound, the bad input marked in red
    and focused, and the table below without the range refused, keeping the states, sort and size
    asked for; applied again as it stands, the form keeps its rows."""
    service = Service(tmp_path, workers=1)
    page = browser.new_page()
    console = Console(page)
    console.expect("status of 400")
    try:
        service.submit(study_definition(name="filtered", maxTrials=3, parallelism=2))
        service.wait_for("filtered")
        page.goto(service.base + "/ui/studies/filtered/trials?sort=value&desc=1&size=25")
        page.check('input[name=state][value="COMPLETE"]')
        page.select_option(".range select[name=field]", "param:x")
        page.fill(".range input[name=min]", "0,5")
        with page.expect_response(lambda r: "/ui/studies/filtered/trials?" in r.url) as answer:
            page.click("#apply-filters")
        assert answer.value.status == 400
        expect(page.locator("#filter-problem")).to_have_text(
            "Not applied: min of x: expected a number, got '0,5'. The table below leaves out what was not applied.")
        expect(page.locator("#filter-problem")).to_have_attribute("role", "alert")
        bad = page.locator(".range input[name=min]").first
        expect(bad).to_have_value("0,5")
        expect(bad).to_have_attribute("aria-invalid", "true")
        expect(bad).to_be_focused()
        expect(bad).to_have_css("border-color", "rgb(180, 35, 24)")
        expect(page.locator("fieldset.ranges > .range:nth-of-type(1) + #filter-problem")).to_have_count(1)
        expect(page.locator(".range select[name=field]").first).to_have_value("param:x")
        expect(page.locator('input[name=state][value="COMPLETE"]')).to_be_checked()
        expect(page.locator("select[name=size]")).to_have_value("25")
        expect(page.locator("#trials tbody tr")).to_have_count(3)
        csv = urllib.parse.urlsplit(page.get_attribute("#csv-link", "href"))
        assert (csv.path, sorted(urllib.parse.parse_qsl(csv.query))) == (
            "/ui/studies/filtered/trials.csv", [("desc", "1"), ("size", "25"), ("sort", "value"), ("state", "COMPLETE")])
        with page.expect_response(lambda r: "/ui/studies/filtered/trials?" in r.url) as again:
            page.click("#apply-filters")
        assert again.value.status == 400
        expect(page.locator(".range")).to_have_count(2)  # the range typed and one spare, however often applied
        assert not console.unexpected()
    finally:
        page.close()
        service.close()


def test_the_trial_table_marks_the_pareto_front_and_keeps_it_alone_when_its_box_is_ticked(tmp_path,
                                                                                          browser: Browser):
    """A study of two objectives (loss falls as x nears 2, size rises with |x|): the table marks
    the trials of its front, those ``GET /studies/{name}/best`` lists; ticking "on the front
    only" and applying lists them alone, the box ticked, and the export keeps the filter."""
    service = Service(tmp_path, workers=1)
    page = browser.new_page()
    console = Console(page)
    try:
        service.submit(study_definition(name="fronted", maxTrials=8, parallelism=2,
                                        parameters=[{"name": "x", "type": "float", "min": -1.0, "max": 3.0}],
                                        objective={"metrics": [{"name": "loss", "direction": "minimize"},
                                                               {"name": "size", "direction": "minimize"}]}))
        service.wait_for("fronted")
        _, best = service.json("GET", "/studies/fronted/best")
        front = sorted(t["number"] for t in best)
        assert 0 < len(front) < 8, "some trials beaten"
        page.goto(service.base + "/ui/studies/fronted/trials")
        expect(page.locator("#trials tbody tr")).to_have_count(8)
        marked = page.locator("#trials tbody tr:has(.on-front)")
        expect(marked).to_have_count(len(front))
        assert sorted(int(n) for n in marked.evaluate_all("rows => rows.map(r => r.dataset.number)")) == front
        page.check("input[name=pareto]")
        with page.expect_response(lambda r: "/ui/studies/fronted/trials?" in r.url) as answer:
            page.click("#apply-filters")
        assert answer.value.status == 200
        expect(page.locator("#trials tbody tr")).to_have_count(len(front))
        expect(page.locator("input[name=pareto]")).to_be_checked()
        assert ("pareto", "1") in urllib.parse.parse_qsl(urllib.parse.urlsplit(
            page.get_attribute("#csv-link", "href")).query)
        assert not console.unexpected()
    finally:
        page.close()
        service.close()
