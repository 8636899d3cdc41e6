"""The dashboard's pages in a real headless Chromium against a real ``katuna serve``: values with
no place to break a line (a categorical parameter's path, a long parameter name, a failure's
output) keep every page within the window; a browser with JavaScript off still reaches a
trial's log and is told what needs JavaScript; a screen reader hears why a chart is not drawn,
and why a login failed."""

from __future__ import annotations

import json
import sys

import pytest
from browser import screenshot
from http_helpers import Service
from playwright.sync_api import Browser, expect

pytestmark = pytest.mark.browser

LONG_VALUE = "gs://bucket/" + "v" * 300
"""A categorical parameter's value with no space in it (a data set's path, say)."""
LONG_NAME = "p" + "a" * 120
"""A parameter's name with no space in it."""
SHOUTED = "RuntimeError: " + "z" * 600
"""The last line a failing trial prints, with no space to break it at."""
FAILING = f"import sys; print('training', sys.argv[1][:20]); print({SHOUTED!r}, file=sys.stderr); sys.exit(3)"
"""A trial that prints a line, then the long line, and fails."""
WIDTH = 1360


def study(name: str) -> dict:
    """A study of two trials, each given the long value or a short one, each failing with the long line."""
    return {"name": name, "objective": {"metric": "loss", "direction": "minimize"},
            "parameters": [{"name": LONG_NAME, "type": "categorical", "values": [LONG_VALUE, "short"]},
                           {"name": "x", "type": "discrete", "values": [0.123456789]}],
            "algorithm": {"name": "grid"}, "parallelism": 1, "maxTrials": 2,
            "trialTemplate": {"command": [sys.executable, "-c", FAILING, f"${{trialParameters.{LONG_NAME}}}",
                                          "${trialParameters.x}"]}}


TOKEN = "layout-token-0123456789"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    running = Service(tmp_path_factory.mktemp("ui-layout"))
    status = running.request("POST", "/studies", json.dumps(study("wide")), {"Content-Type": "application/json"})[0]
    assert status == 201
    running.wait_for("wide")
    yield running
    running.close()


def long_trial(service: Service) -> int:
    """The number of the trial given the long value."""
    trials = service.json("GET", "/studies/wide/trials")[1]
    return next(t["number"] for t in trials if t["params"][LONG_NAME] == LONG_VALUE)


def test_long_values_names_and_failure_output_wrap_within_the_window(service: Service, browser: Browser):
    """The trial page (its failure, parameters and log), the trial table and the study page fit
    the window: a value, name or line with no space wraps in its own box instead of widening the
    page past it (the trial page was three times as wide as the window). A number still reads on
    one line beside a long value."""
    number = long_trial(service)
    context = browser.new_context(viewport={"width": WIDTH, "height": 900})
    page = context.new_page()
    try:
        for path in (f"/ui/studies/wide/trials/{number}", "/ui/studies/wide/trials", "/ui/studies/wide"):
            page.goto(service.base + path)
            if path.endswith(f"/{number}"):
                expect(page.locator("#log")).to_contain_text(SHOUTED[:40])
            screenshot(page, "wide" + path.replace("/", "-"))
            assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH, path
        page.goto(service.base + "/ui/studies/wide/trials")
        cell = page.locator(f'tr[data-number="{number}"] td[data-field="param:x"]')
        expect(cell).to_have_text("0.123457")
        lines = "td => { const text = document.createRange(); text.selectNodeContents(td); return text.getClientRects().length; }"
        assert cell.evaluate(lines) == 1
    finally:
        context.close()


def test_without_javascript_a_trials_log_is_a_link_away_and_the_study_page_says_what_needs_it(
        service: Service, browser: Browser):
    """JavaScript off: the trial page, whose log box the script fills, links the whole log, which
    opens as the trial printed it; the study page says its charts, Stop and Delete need the
    script, and links the trial table, which needs none; the new study form says what else
    submits a study, its button disabled."""
    number = long_trial(service)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(service.base + f"/ui/studies/wide/trials/{number}")
        link = page.locator("#log-without-script a")
        expect(link).to_be_visible()
        link.click()
        expect(page.locator("body")).to_contain_text(SHOUTED)
        expect(page.locator("body")).to_contain_text("training gs://bucket/vvvv")
        page.goto(service.base + "/ui/studies/wide")
        note = page.locator("#study-without-script")
        expect(note).to_be_visible()
        expect(note).to_contain_text("need JavaScript")
        note.get_by_role("link", name="trial table").click()
        expect(page.locator("#trials-table tbody tr")).to_have_count(2)
        page.goto(service.base + "/ui/new")
        expect(page.locator("#new-without-script")).to_contain_text("Submitting needs JavaScript")
        expect(page.locator("#submit-study")).to_be_disabled()
    finally:
        context.close()


def test_a_screen_reader_hears_why_a_chart_is_not_drawn(service: Service, browser: Browser):
    """A screen reader reads a chart's place by its label and the text after it: where the study
    cannot have the chart yet (no trial completed), the label says so too."""
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(service.base + "/ui/studies/wide")
        history = page.locator("#plot-history")
        expect(history).to_have_attribute("data-ready", "true")
        expect(history).to_have_attribute("role", "figure")
        expect(history).to_have_attribute("aria-label", "Optimization history chart: no completed trial yet")
    finally:
        context.close()


def test_a_refused_token_is_announced_and_tied_to_its_field(tmp_path, browser: Browser):
    """A login refused brings the form back with the token's field marked invalid and described
    by the refusal, which is announced: its focus alone, on that field, would say nothing of why."""
    guarded = Service(tmp_path, workers=1, KATUNA_API_TOKEN=TOKEN)
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(guarded.base + "/ui/login")
        page.fill("#token", "not-" + TOKEN)
        page.click("#login button")
        expect(page.locator("#login-error")).to_have_attribute("role", "alert")
        field = page.locator("#token")
        expect(field).to_be_focused()
        expect(field).to_have_attribute("aria-invalid", "true")
        expect(field).to_have_accessible_description("That token is not the service's token.")
    finally:
        context.close()
        guarded.close()


def test_numbers_are_right_aligned_and_labels_left_in_every_table(service: Service, browser: Browser):
    """A number's cell (a parameter's, a trial's number) is right-aligned, digits under digits;
    a categorical label's cell reads from the left as text does; a column's header is on the
    side of its cells."""
    number = long_trial(service)
    page = browser.new_page()
    align = "(cell) => getComputedStyle(cell).textAlign"
    try:
        page.goto(service.base + "/ui/studies/wide/trials")
        row = page.locator(f'tr[data-number="{number}"]')
        assert row.locator('td[data-field="param:x"]').evaluate(align) == "right"
        assert row.locator(f'td[data-field="param:{LONG_NAME}"]').evaluate(align) == "left"
        assert row.locator("td").first.evaluate(align) == "right", "the trial's number"
        head = {field: page.locator(f'#trials-table th[data-field="{field}"]').evaluate(align)
                for field in ("number", "state", "metric:loss", "param:x", f"param:{LONG_NAME}", "duration")}
        assert head == {"number": "right", "state": "left", "metric:loss": "right", "param:x": "right",
                        f"param:{LONG_NAME}": "left", "duration": "right"}, "a header over its cells' side"
        page.goto(service.base + "/ui/")
        assert page.locator("#studies-table th", has_text="best").evaluate(align) == "right"
        page.goto(service.base + f"/ui/studies/wide/trials/{number}")
        cells = page.locator("th[scope=row] + td")
        assert [cells.nth(i).evaluate(align) for i in range(2)] == ["left", "right"], "the trial's parameters"
    finally:
        page.close()
