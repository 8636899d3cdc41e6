"""The dashboard's pages as a keyboard or a screen reader reaches them, read from the HTML the real
app renders (Flask's test client over katuna's own SQLite store): a skip link to the content; each
chart a figure whose text says where its data is as text; each box that scrolls on its own a named
region the keyboard reaches; and a box that pauses each part of a page that updates itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from conftest import app_client, study_definition

from functions.adapters.sqlite_store import SqliteStore
from functions.core.metrics import Observation
from functions.core.records import COMPLETE, FAIL, RUNNING, StudyRecord, TrialRecord
from functions.core.validate import parse_study

TWO = {"metrics": [{"name": "loss", "direction": "minimize"}, {"name": "size", "direction": "maximize"}]}
"""A study's two objectives."""


class Element:
    """One element of a page: its tag, its attributes, and the elements and text inside it."""

    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Element | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Element] = []
        self.text = ""

    def find(self, test) -> list[Element]:
        """Every element inside this one (itself too) for which ``test`` holds, in the page's order."""
        found = [self] if test(self) else []
        for child in self.children:
            found += child.find(test)
        return found

    def all_text(self) -> str:
        return self.text + "".join(child.all_text() for child in self.children)


VOID = {"meta", "link", "input", "br", "img", "hr", "source", "col", "area", "base", "wbr"}


class Page(HTMLParser):
    """A page parsed into :class:`Element`s, rooted at a document element of its own."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.root = self.open = Element("#document", {}, None)
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs), self.open)
        self.open.children.append(element)
        if tag not in VOID:
            self.open = element

    def handle_endtag(self, tag: str) -> None:
        closing = self.open
        while closing.parent is not None and closing.tag != tag:
            closing = closing.parent
        if closing.parent is not None:
            self.open = closing.parent

    def handle_data(self, data: str) -> None:
        self.open.text += data

    def by_id(self, id_: str) -> Element:
        found = self.root.find(lambda e: e.attrs.get("id") == id_)
        assert len(found) == 1, f"one element #{id_}, found {len(found)}"
        return found[0]

    def all(self, test) -> list[Element]:
        return self.root.find(test)


def classes(element: Element) -> set[str]:
    return set((element.attrs.get("class") or "").split())


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator:
    """An ended study of one objective (a completed trial with observations, a failed one), an
    ended one of two objectives, and a running study with a running trial. The service resumes
    the running study, its trial's run lost: its trials hang, so it is still running whenever a
    test reads it."""
    db = tmp_path_factory.mktemp("ui-access") / "katuna.db"
    now = time.time()
    store = SqliteStore(db)
    for name, status, objective in (("ended", "completed", None), ("pair", "completed", TWO), ("going", "running", None)):
        definition = study_definition(name=name, mode="hang" if status == "running" else "ok", maxTrials=3,
                                      **({"objective": objective} if objective else {}))
        store.add_study(StudyRecord(parse_study(definition), definition, str(db.parent), "test", status=status,
                                    created_at=now, started_at=now, completed_at=None if status == "running" else now))
    store.add_trial(TrialRecord("ended", 0, {"x": 0.5}, COMPLETE, values=[1.0], metrics={"loss": 1.0}, exit_code=0,
                                started_at=now, finished_at=now + 2))
    store.add_observations("ended", 0, 1, [Observation("loss", 2.0, 1), Observation("loss", 1.0, 2)])
    store.add_trial(TrialRecord("ended", 1, {"x": 0.7}, FAIL, exit_code=2, reason="exited with code 2",
                                started_at=now, finished_at=now + 1))
    store.add_trial(TrialRecord("pair", 0, {"x": 0.5}, COMPLETE, values=[1.0, 2.0], metrics={"loss": 1.0, "size": 2.0},
                                exit_code=0, started_at=now, finished_at=now + 2))
    store.add_trial(TrialRecord("going", 0, {"x": 0.1}, RUNNING, started_at=now))
    store.close()
    with app_client(db) as served:
        yield served


PAGES = ("/ui/", "/ui/new", "/ui/studies/ended", "/ui/studies/pair", "/ui/studies/ended/trials",
         "/ui/studies/going/trials", "/ui/studies/ended/trials/0", "/ui/studies/ended/trials/1",
         "/ui/studies/going/trials/0", "/ui/studies/nothing")


def page(client, path: str) -> Page:
    answer = client.get(path)
    assert answer.status_code == (404 if path.endswith("nothing") else 200), path
    return Page(answer.text)


@pytest.mark.parametrize("path", PAGES)
def test_the_keyboards_first_stop_on_every_page_skips_to_its_content(client, path: str):
    """The first thing Tab reaches is a link past the header's links to the page's main content,
    so a keyboard does not go through the header on every page (WCAG 2.4.1)."""
    shown = page(client, path)
    body = shown.all(lambda e: e.tag == "body")[0]
    reached = body.find(lambda e: e.tag in ("a", "button", "input", "select", "textarea") and e.attrs.get("type") != "hidden")
    assert reached[0].tag == "a" and reached[0].attrs.get("href") == "#content", path
    assert reached[0].all_text().strip() == "Skip to the content"
    assert shown.by_id("content").tag == "main"


@pytest.mark.parametrize("name", ["ended", "pair"])
def test_each_chart_is_a_figure_described_by_where_its_data_is_as_text(client, name: str):
    """A chart is a figure (the toolbar plotly draws in it stays reachable; an image would hide
    its buttons from a screen reader while the keyboard still stops on them), named by its
    label and described by the text after it, which links the table that holds its data, or
    lists it (the importances, filled in once drawn)."""
    shown = page(client, f"/ui/studies/{name}")
    charts = shown.all(lambda e: "plot" in classes(e))
    kinds = {"history", "parallel", "slice", "importance", "intermediate"} | ({"pareto"} if name == "pair" else set())
    assert {chart.attrs["data-kind"] for chart in charts} == kinds
    for chart in charts:
        assert chart.attrs.get("role") == "figure", chart.attrs
        assert chart.attrs.get("aria-label", "").endswith(" chart")
        text = shown.by_id(chart.attrs["aria-describedby"])
        assert text.all_text().strip().startswith("As text:"), chart.attrs
        links = [e.attrs["href"] for e in text.find(lambda e: e.tag == "a")]
        if chart.attrs["data-kind"] == "importance":
            assert "listed here once the chart is drawn" in text.all_text()
        elif chart.attrs["data-kind"] == "pareto":
            assert links == [f"/ui/studies/{name}/trials?pareto=1"]
        else:
            assert links == [f"/ui/studies/{name}/trials"], chart.attrs


@pytest.mark.parametrize("path", ["/ui/", "/ui/studies/ended", "/ui/studies/pair", "/ui/studies/ended/trials",
                                  "/ui/studies/ended/trials/0"])
def test_each_box_that_scrolls_on_its_own_is_a_named_region_the_keyboard_reaches(client, path: str):
    """A table or log that scrolls in a box of its own (a wide table on a phone, a long log) is in
    the keyboard's order, so its arrow keys scroll it in a browser that does not put such a box
    there itself, and a screen reader names it (WCAG 2.1.1)."""
    shown = page(client, path)
    boxes = shown.all(lambda e: classes(e) & {"scroll", "log"})
    assert boxes, path
    for box in boxes:
        assert box.attrs.get("tabindex") == "0", (path, box.attrs)
        assert box.attrs.get("role") == "region" and box.attrs.get("aria-label"), (path, box.attrs)


@pytest.mark.parametrize("path", ["/ui/", "/ui/studies/ended", "/ui/studies/going", "/ui/studies/going/trials",
                                  "/ui/studies/going/trials/0"])
def test_a_page_that_updates_itself_has_a_box_to_pause_it(client, path: str):
    """The studies list, a study's page, and a running study's trial table and a running trial's
    log update themselves: each has a checked box, labelled, that pauses it (WCAG 2.2.2), so a
    screen reader's place in a table is not lost to the next refresh."""
    box = page(client, path).by_id("live")
    assert box.tag == "input" and box.attrs.get("type") == "checkbox" and "checked" in box.attrs
    label = box.parent
    assert label is not None and label.tag == "label"
    assert label.all_text().strip() in ("update live", "follow the log as the trial prints it")


@pytest.mark.parametrize("path", ["/ui/studies/ended/trials", "/ui/studies/ended/trials/0"])
def test_a_page_that_no_longer_updates_has_no_box_to_pause_it(client, path: str):
    shown = page(client, path)
    assert not shown.all(lambda e: e.attrs.get("id") == "live"), path


@pytest.mark.parametrize("path", ["/ui/", "/ui/studies/ended", "/ui/studies/pair", "/ui/studies/ended/trials",
                                  "/ui/studies/pair/trials", "/ui/studies/ended/trials/0", "/ui/studies/ended/trials/1"])
def test_every_table_has_a_caption_a_screen_reader_names_it_by(client, path: str):
    """A screen reader's list of tables, and its announcement on entering one, names each by its
    caption (WCAG 1.3.1): studies, trials, best trials, the Pareto front, a trial's parameters,
    metrics and observations; a caption a heading above already shows is out of sight."""
    tables = page(client, path).all(lambda e: e.tag == "table")
    assert tables, path
    for table in tables:
        [caption] = [child for child in table.children if child.tag == "caption"] or [None]
        assert caption is not None and table.children[0] is caption, (path, table.attrs)
        assert caption.all_text().strip(), (path, table.attrs)
        assert "visually-hidden" in classes(caption)


def test_the_trial_tables_caption_says_its_order_and_page(client):
    """Sorted by a column, the table says by which and in which order (the column's own
    ``aria-sort`` is heard only in that column), and which page of how many it is."""
    [caption] = page(client, "/ui/studies/ended/trials?sort=metric:loss&desc=1").all(lambda e: e.tag == "caption")
    assert caption.all_text().strip() == "Trials of ended, sorted by loss, descending: page 1 of 1"
    [caption] = page(client, "/ui/studies/ended/trials").all(lambda e: e.tag == "caption")
    assert caption.all_text().strip() == "Trials of ended, sorted by trial, ascending: page 1 of 1"


def test_a_trials_parameters_and_metrics_are_named_by_their_row_headers(client):
    """Each row of a trial's parameters and metrics is a name and its value: the name is the
    row's header, so a screen reader reads ``x, 0.5`` as the value of ``x``."""
    shown = page(client, "/ui/studies/ended/trials/0")
    for table in ("params", "metrics"):
        headers = shown.by_id(table).find(lambda e: e.tag == "th")
        assert headers and all(th.attrs.get("scope") == "row" for th in headers), table
