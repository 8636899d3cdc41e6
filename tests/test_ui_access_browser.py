"""The dashboard in a real headless Chromium against a real ``katuna serve``, as a person with low
vision, a keyboard or a screen reader meets it: every text and field stands out from what it is
on, and a link from the text beside it; the skip link shows when it has the focus; the
importance chart's values are text too; a list or log paused asks the service nothing until
it is resumed; and a trial table whose study is deleted while it is followed says so, aloud. The page's clock is Playwright's, its timers firing as the test moves it on."""

from __future__ import annotations

import json
import sys

import pytest
from browser import Console
from conftest import TRIAL, study_definition
from http_helpers import Service
from playwright.sync_api import Page, expect
from waiting import eventually

pytestmark = pytest.mark.browser

IDLE_MS = 10_000
"""How often the studies list asks whether it changed while no study runs (``katuna.js``)."""
REFRESH_MS = 3000
"""How often a running study's trial table is fetched again (``katuna.js``)."""
LOG_POLL_MS = 1000
"""How often a running trial's log is asked for (``katuna.js``)."""
CHART_WAIT_MS = 90_000
"""How long a test waits for a chart: a fresh worker loads Optuna's plotting stack for its first,
seconds of one core that took past 30 s with the whole suite's workers sharing two cores."""

WAITS = r"""import pathlib, sys, time
print("first line", flush=True)
while not pathlib.Path(sys.argv[1]).exists():
    time.sleep(0.05)
print("second line")
print("loss=1.0")
"""
"""A trial that prints a line, then waits for a file before it prints another and ends."""


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """A study of two parameters whose trials all complete, and one whose trials fail."""
    running = Service(tmp_path_factory.mktemp("ui-access"))
    two = study_definition(name="access", maxTrials=6, parallelism=2,
                           parameters=[{"name": "x", "type": "float", "min": -5.0, "max": 5.0},
                                       {"name": "y", "type": "float", "min": -2.0, "max": 2.0}])
    two["trialTemplate"]["command"] = [sys.executable, str(TRIAL), "--x", "${trialParameters.x}",
                                       "--y", "${trialParameters.y}"]
    for definition in (two, study_definition(name="access-fails", mode="crash", maxTrials=1, parallelism=1)):
        status = running.request("POST", "/studies", json.dumps(definition), {"Content-Type": "application/json"})[0]
        assert status == 201
    running.wait_for("access")
    running.wait_for("access-fails")
    yield running
    running.close()


VIEWPORT = (1280, 900)
"""The size of each test's page (:func:`conftest.page`)."""


LOOK = """() => {
  const rgba = (color) => color.match(/[\\d.]+/g).map(Number);
  const luminance = (color) => rgba(color).slice(0, 3).map((v) => v / 255)
    .map((v) => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const ratio = (one, other) => {
    const [a, b] = [luminance(one), luminance(other)].sort((x, y) => y - x);
    return (a + 0.05) / (b + 0.05);
  };
  const background = (el) => {
    for (let at = el; at; at = at.parentElement) {
      const color = getComputedStyle(at).backgroundColor;
      if ((rgba(color)[3] ?? 1) > 0) return color;
    }
    return "rgb(255, 255, 255)";
  };
  const shown = (el) => el.checkVisibility() && !el.closest(".plot, [hidden], dialog:not([open])");
  const named = (el) => `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}.${el.className} "${el.textContent.trim().slice(0, 40)}"`;
  const faint = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((node) => node.nodeType === Node.TEXT_NODE && node.data.trim());
    if (!own || !shown(el) || el.matches(":disabled, option")) continue;
    const style = getComputedStyle(el);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const got = ratio(style.color, background(el));
    if (got < needed) faint.push(`${named(el)}: ${got.toFixed(2)} < ${needed}`);
  }
  const edges = [...document.querySelectorAll("input:not([type=checkbox], [type=radio], [type=hidden], [type=file]), select, textarea")]
    .filter(shown)
    .map((el) => [named(el), ratio(getComputedStyle(el).borderTopColor, background(el.parentElement))])
    .filter(([, got]) => got < 3).map(([name, got]) => `${name}: its edge ${got.toFixed(2)} < 3`);
  const plain = [...document.querySelectorAll("main a:not(.button)")].filter(shown)
    .filter((a) => !getComputedStyle(a).textDecorationLine.includes("underline")).map(named);
  return {faint, edges, plain};
}"""
"""What a page shows that does not stand out: text under WCAG's contrast against its background
(4.5:1, 3:1 where large), a field whose edge is under 3:1 against what it sits on, and a link in
the page marked apart from the text beside it by its colour alone (2.9:1 against it, under 3:1)."""


def test_every_text_field_and_link_stands_out_on_each_page(service: Service, page: Page,
                                                           console: dict[Page, Console]):
    """Each page, with what it shows only at times: the trial table's refusal of a range, a failed
    trial's reason and its log's note of output not shown, and the new-study form's problems
    (field paths in red on pale red were 4.4:1; fields' edges 1.5:1; links told by colour alone)."""
    console[page].expect(r"status of 400 \(BAD REQUEST\)", r"status of 422 \(UNPROCESSABLE ENTITY\)")
    failed = service.json("GET", "/studies/access-fails/trials")[1][0]["number"]
    for path in ("/ui/", "/ui/studies/access", "/ui/studies/access/trials?field=value&min=abc",
                 f"/ui/studies/access-fails/trials/{failed}", "/ui/new"):
        page.goto(service.base + path)
        if path.endswith(f"/{failed}"):
            expect(page.locator("#log-status")).to_have_text("")
            page.evaluate("""() => document.getElementById("log").prepend(Object.assign(document.createElement("a"),
                {href: "#", className: "muted", textContent: "… earlier output not shown (open the log)\\n"}))""")
        if path == "/ui/new":
            page.fill("#study-text", "name: bad\nparameters: 3\n")
            page.click("#submit-study")
            expect(page.locator("#study-problems li code").first).to_be_visible()
        if path.endswith("min=abc"):
            expect(page.locator("#filter-problem")).to_be_visible()
        assert page.evaluate(LOOK) == {"faint": [], "edges": [], "plain": []}, path


def test_the_skip_link_shows_once_it_has_the_focus_and_leads_past_the_header(service: Service, page: Page):
    page.goto(service.base + "/ui/studies/access")
    skip = page.locator("a.skip")
    assert skip.bounding_box()["y"] + skip.bounding_box()["height"] <= 0, "out of sight until focused"
    page.keyboard.press("Tab")
    expect(skip).to_be_focused()
    assert skip.bounding_box()["y"] >= 0
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.locator("#live")).to_be_focused()


def test_the_importance_chart_lists_each_parameters_importance_as_text(service: Service, page: Page):
    """Its values are shown nowhere else on the page: the text after the chart lists them, most
    important first, as the chart's bars label them."""
    page.goto(service.base + "/ui/studies/access")
    chart = page.locator("#plot-importance")
    expect(chart).to_have_attribute("data-ready", "true", timeout=CHART_WAIT_MS)
    bars = page.evaluate("document.getElementById('plot-importance').data[0]")
    listed = ", ".join(f"{name} {text}" for name, text in reversed(list(zip(bars["y"], bars["text"], strict=True))))
    assert sorted(bars["y"]) == ["x", "y"]
    expect(page.locator("#plot-importance-text")).to_have_text(
        f"As text: each parameter's importance for loss, most important first: {listed}.")
    assert chart.get_attribute("aria-describedby") == "plot-importance-text"


def test_a_paused_studies_list_asks_nothing_until_it_is_resumed(service: Service, page: Page):
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/ui/studies.fragment" in request.url else None)
    page.clock.install()
    page.goto(service.base + "/ui/")
    expect(page.locator('tr[data-study="access"]')).to_contain_text("completed")
    page.uncheck("#live")
    page.clock.run_for(IDLE_MS * 3)
    assert page.evaluate("fetch('/healthz').then((answer) => answer.status)") == 200
    assert asked == [], "a paused list asks nothing"
    page.check("#live")
    eventually(lambda: page.wait_for_timeout(50) or len(asked) == 1, "an ask once resumed", timeout=15)


def test_a_paused_log_is_left_as_it_is_and_followed_on_once_resumed(service: Service, page: Page):
    """A running trial's log stops being asked for while paused, its heading saying so; resumed,
    it is followed on from where it was, to the trial's end."""
    go = service.workdir / "go-on"
    definition = study_definition(name="access-log", maxTrials=1, parallelism=1,
                                  trialTemplate={"command": [sys.executable, "-c", WAITS, str(go), "${trialParameters.x}"]})
    assert service.request("POST", "/studies", json.dumps(definition), {"Content-Type": "application/json"})[0] == 201
    eventually(lambda: service.request("GET", "/studies/access-log/trials/0")[0] == 200, "trial 0", timeout=20)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/trials/0/log?" in request.url else None)
    page.clock.install()
    page.goto(service.base + "/ui/studies/access-log/trials/0")
    log = page.locator("#log")
    expect(log).to_have_text("first line\n")
    page.uncheck("#live")
    before = len(asked)
    page.clock.run_for(LOG_POLL_MS * 3)
    expect(page.locator("#log-status")).to_have_text("paused")
    go.touch()
    service.wait_for("access-log")
    page.clock.run_for(LOG_POLL_MS * 3)
    assert page.evaluate("fetch('/healthz').then((answer) => answer.status)") == 200
    assert len(asked) - before <= 1, "at most the ask under way as it was paused"
    expect(log).to_have_text("first line\n")
    page.check("#live")
    eventually(lambda: page.clock.run_for(LOG_POLL_MS) or page.wait_for_timeout(50)
               or "second line" in log.inner_text(), "the log followed on", timeout=30)


def test_a_trial_table_whose_study_is_deleted_says_so_keeps_its_rows_and_asks_no_more(service: Service, page: Page,
                                                                                       console: dict[Page, Console]):
    """The table of a running study deleted meanwhile: its next fetch answered 404, the page
    says (as an alert) that the study was deleted, keeps the rows it showed and its "update
    live" box goes; it asks for the table no more, where it asked every 3 s for ever."""
    definition = study_definition(name="access-gone", mode="hang", maxTrials=1, parallelism=1)
    assert service.request("POST", "/studies", json.dumps(definition), {"Content-Type": "application/json"})[0] == 201
    eventually(lambda: service.request("GET", "/studies/access-gone/trials/0")[0] == 200, "trial 0", timeout=20)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/access-gone/trials.fragment" in request.url
            else None)
    console[page].expect(r"status of 404")
    page.clock.install()
    page.goto(service.base + "/ui/studies/access-gone/trials")
    expect(page.locator('#trials-table tr[data-number="0"]')).to_have_count(1)
    assert service.request("DELETE", "/studies/access-gone")[0] < 300
    page.clock.run_for(REFRESH_MS)
    expect(page.locator("#study-gone[role=alert]")).to_have_text(
        "This study was deleted: the table below shows its trials as they were when it was. back to the studies")
    expect(page.locator("#study-gone a#back-to-studies")).to_have_attribute("href", service.base + "/ui/")
    expect(page.locator("#live")).to_have_count(0)
    expect(page.locator('#trials-table tr[data-number="0"]')).to_have_count(1)
    before = len(asked)
    page.clock.run_for(REFRESH_MS * 3)
    assert page.evaluate("fetch('/healthz').then((answer) => answer.status)") == 200
    assert len(asked) == before == 1, "asked once, answered 404, and no more"


def test_a_trial_page_whose_study_is_deleted_says_so_and_asks_no_more(service: Service, page: Page,
                                                                      console: dict[Page, Console]):
    """The log of a running trial whose study is deleted meanwhile: its next read answered 404,
    the heading says why the log is unavailable (the study was deleted), not the bare status,
    and the page says so aloud, with a link back to the studies list; its "follow" box goes."""
    definition = study_definition(name="access-gone-log", mode="hang", maxTrials=1, parallelism=1)
    assert service.request("POST", "/studies", json.dumps(definition), {"Content-Type": "application/json"})[0] == 201
    eventually(lambda: service.request("GET", "/studies/access-gone-log/trials/0")[0] == 200, "trial 0", timeout=20)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/trials/0/log?" in request.url else None)
    console[page].expect(r"status of 404")
    page.clock.install()
    page.goto(service.base + "/ui/studies/access-gone-log/trials/0")
    expect(page.locator("#log-status")).to_have_text("following…")
    assert service.request("DELETE", "/studies/access-gone-log")[0] < 300
    eventually(lambda: page.clock.run_for(LOG_POLL_MS) or page.wait_for_timeout(50)
               or page.locator("#log-status").inner_text().startswith("log unavailable"), "the 404", timeout=30)
    expect(page.locator("#log-status")).to_have_text(
        "log unavailable: this trial's study was deleted (or the trial with it)")
    expect(page.locator("#study-gone[role=alert]")).to_have_text(
        "This trial's study was deleted (or the trial with it): the page shows the trial as it was. back to the studies")
    expect(page.locator("#study-gone a#back-to-studies")).to_have_attribute("href", service.base + "/ui/")
    expect(page.locator("#live")).to_have_count(0)
    before = len(asked)
    page.clock.run_for(LOG_POLL_MS * 3)
    assert page.evaluate("fetch('/healthz').then((answer) => answer.status)") == 200
    assert len(asked) == before, "answered 404, and asked no more"


def test_a_study_stopped_from_the_keyboard_leaves_the_focus_on_its_heading_which_says_it_stopped(service: Service,
                                                                                                   page: Page):
    """Stop, pressed from the keyboard and confirmed, goes from the page as the study stops: the
    focus goes to the study's heading, which names the study and says it stopped (what a screen
    reader then reads), where it fell to the page's start, a keyboard user's place lost and the
    stop never said."""
    definition = study_definition(name="access-stop", mode="hang", maxTrials=1, parallelism=1)
    assert service.request("POST", "/studies", json.dumps(definition), {"Content-Type": "application/json"})[0] == 201
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(service.base + "/ui/studies/access-stop")
    page.focus("#stop-study")
    page.keyboard.press("Enter")
    expect(page.locator("#study-status")).to_have_text("stopped")
    expect(page.locator("#stop-study")).to_have_count(0)
    expect(page.locator("h1#study-heading")).to_be_focused()
    expect(page.locator("h1#study-heading")).to_have_text("access-stop stopped")


def test_a_trial_that_ends_while_its_page_follows_it_is_shown_ended_in_place_keeping_the_focus(service: Service,
                                                                                                 page: Page):
    """The page of a running trial shows it ended (its state, metrics and observations) without a
    reload, which took the focus and a screen reader's place to the page's start: the focus on
    its JSON link stays there, and the log keeps what it followed, its "follow" box gone."""
    go = service.workdir / "go-on-ended"
    definition = study_definition(name="access-ends", maxTrials=1, parallelism=1,
                                  trialTemplate={"command": [sys.executable, "-c", WAITS, str(go), "${trialParameters.x}"]})
    assert service.request("POST", "/studies", json.dumps(definition), {"Content-Type": "application/json"})[0] == 201
    eventually(lambda: service.request("GET", "/studies/access-ends/trials/0")[0] == 200, "trial 0", timeout=20)
    page.goto(service.base + "/ui/studies/access-ends/trials/0")
    expect(page.locator("#log")).to_have_text("first line\n")
    page.evaluate("window.sameDocument = true")
    json_link = page.locator('.heading a[href="/studies/access-ends/trials/0"]')
    json_link.focus()
    go.touch()
    expect(page.locator("#trial-state")).to_have_text("COMPLETE", timeout=30_000)
    expect(page.locator("#metrics")).to_contain_text("loss")
    expect(page.locator("#observations")).to_contain_text("loss")
    expect(page.locator("#log")).to_have_text("first line\nsecond line\nloss=1.0\n")
    expect(page.locator("#live")).to_have_count(0)
    assert page.evaluate("window.sameDocument") is True, "shown ended in place, not reloaded"
    expect(json_link).to_be_focused()
