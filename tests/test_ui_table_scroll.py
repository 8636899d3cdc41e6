"""A wide, long trial table in a real headless Chromium against a real ``katuna serve``: read
far down and across (a study of many parameters, a page of 100 rows), its header row and its
trials' numbers stay in sight, so each cell can still be told by its column and its trial; and
a running study's table, refreshed, stays scrolled where its reader left it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import Service
from playwright.sync_api import Page
from waiting import eventually

from functions.adapters.sqlite_store import SqliteStore
from functions.core.records import COMPLETE, StudyRecord, TrialRecord
from functions.core.validate import parse_study

pytestmark = pytest.mark.browser

PARAMETERS = [{"name": f"a_parameter_of_a_long_name_{i}", "type": "int", "min": 0, "max": 9} for i in range(24)]


def _study(store: SqliteStore, folder: Path, name: str, trials: int, **record) -> None:
    definition = study_definition(name=name, maxTrials=500, parameters=PARAMETERS, trialTemplate={
        "command": ["true", *(f"${{trialParameters.{p['name']}}}" for p in PARAMETERS)]})
    store.add_study(StudyRecord(parse_study(definition), definition, str(folder), name, started_at=time.time(),
                                **record))
    for number in range(trials):
        _trial(store, name, number)


def _trial(store: SqliteStore, name: str, number: int) -> None:
    now = time.time()
    store.add_trial(TrialRecord(name, number, {p["name"]: number % 10 for p in PARAMETERS}, COMPLETE,
                                values=[number / 7], metrics={"loss": number / 7}, started_at=now, finished_at=now))


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """``wide``: an ended study of 120 trials of 24 parameters; ``going``: a running one of 60,
    whose trials run on a cluster (this service leaves it alone: the test adds its trials)."""
    folder = tmp_path_factory.mktemp("ui-scroll")
    store = SqliteStore(folder / "katuna.db")
    try:
        _study(store, folder, "wide", 120, status="completed", completed_at=time.time())
        _study(store, folder, "going", 60, status="running", runs_on="kubernetes")
    finally:
        store.close()
    running = Service(folder)
    yield running
    running.close()


VIEWPORT = (1024, 700)
"""The size of each test's page (:func:`conftest.page`): the table scrolls both ways."""


IN_SIGHT = """(el) => {
  const r = el.getClientRects()[0];
  const [x, y] = [r.left + Math.min(r.width, 20) / 2, r.top + r.height / 2];
  return y >= 0 && y <= innerHeight && x >= 0 && x <= innerWidth && el.contains(document.elementFromPoint(x, y));
}"""
"""Whether an element is on screen and not hidden under another (its start: its first line's first letters)."""


def test_read_far_down_and_across_the_header_row_and_the_trials_numbers_stay_in_sight(service: Service, page: Page):
    page.goto(service.base + "/ui/studies/wide/trials?size=100")
    last = page.locator("#trials-table tbody tr").last
    last.evaluate("(row) => row.scrollIntoView({block: 'end'})")
    page.locator("#trials-box").evaluate("(box) => box.scrollTo(box.scrollWidth, box.scrollTop)")
    assert last.locator("td").last.evaluate(IN_SIGHT), "the last row's last cell is read"
    assert page.locator("#trials-box").evaluate("(box) => box.getBoundingClientRect().bottom <= innerHeight"), \
        "the box's scroll bars are on screen"
    assert last.locator("a").first.evaluate(IN_SIGHT), "the trial's number stays beside its cells"
    assert page.locator("#trials-table th[data-field=number]").evaluate(IN_SIGHT), "the header row stays above"
    header = page.locator("#trials-table thead th").last
    assert header.evaluate(IN_SIGHT), "the last column's title stays above it"


def test_a_running_studys_table_refreshed_stays_scrolled_where_it_was_read(service: Service, page: Page):
    page.goto(service.base + "/ui/studies/going/trials?size=100")
    box = page.locator("#trials-box")
    box.evaluate("(box) => box.scrollTo(box.scrollWidth / 2, box.scrollHeight / 2)")
    where = box.evaluate("(box) => [box.scrollTop, box.scrollLeft]")
    assert where[0] > 0 and where[1] > 0, "the table scrolls within its box both ways"
    store = SqliteStore(service.workdir / "katuna.db")
    try:
        _trial(store, "going", 60)
    finally:
        store.close()
    eventually(lambda: page.locator("#trials-table tbody tr").count() == 61, "the table refreshed with the new trial")
    assert box.evaluate("(box) => [box.scrollTop, box.scrollLeft]") == where


@pytest.mark.parametrize("forward", [True, False])
def test_a_link_the_keyboard_reaches_in_the_scrolled_table_is_not_hidden_under_its_header_or_numbers(
        service: Service, page: Page, forward: bool):
    """Tab (or Shift+Tab) to a link scrolled out of the box brings it clear of the header row and
    the trials' numbers that stay in sight over the box (WCAG 2.4.11), backwards as forwards."""
    page.goto(service.base + "/ui/studies/wide/trials?size=100")
    box = page.locator("#trials-box")
    if forward:
        box.evaluate("(box) => box.scrollTo(0, 0)")
        page.locator("#trials-table thead th a").first.focus()
        for _ in range(len(PARAMETERS) + 3):
            page.keyboard.press("Tab")
            assert page.evaluate(f"({IN_SIGHT})(document.activeElement)"), "a sort link in the header"
    else:
        box.evaluate("(box) => box.scrollTo(box.scrollWidth, box.scrollHeight)")
        page.locator("#trials-table tbody a").last.focus()
        for _ in range(25):
            page.keyboard.press("Shift+Tab")
            assert page.evaluate(f"({IN_SIGHT})(document.activeElement)"), "a trial's number, upwards"
        box.evaluate("(box) => box.scrollTo(box.scrollWidth, 0)")
        page.locator("#trials-table thead th a").last.focus()
        for _ in range(len(PARAMETERS)):
            page.keyboard.press("Shift+Tab")
            assert page.evaluate(f"({IN_SIGHT})(document.activeElement)"), "a sort link, leftwards"
