"""The trial table's pager over a study of 130 trials stored directly (no trial processes): its
next and previous links find their page from the trial it follows or precedes (``after``,
``before``), keeping ``page`` (or ``row``) in the address as a bookmark has it, and walking
them lists every trial once, in the table's order, as the pages counted from their place do."""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Iterator

import pytest
from conftest import study_definition

from functions.adapters.web import create_app
from functions.core.records import COMPLETE, FAIL, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.runtime import Runtime
from functions.settings import Settings

TABLE = "/ui/studies/paged/trials"
TRIALS = 130


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator:
    """A study of :data:`TRIALS` trials, one in ten failed (no loss), each other's loss its own."""
    folder = tmp_path_factory.mktemp("pages")
    runtime = Runtime(Settings(db=folder / "katuna.db"))
    definition = study_definition(name="paged", maxTrials=TRIALS)
    store = runtime.store()
    store.add_study(StudyRecord(parse_study(definition), definition, str(folder), "uid-paged", status="completed"))
    with store.transaction():
        for n in range(TRIALS):
            loss = n * 37 % TRIALS / 10
            store.add_trial(TrialRecord("paged", n, {"x": 0.5}, FAIL, reason="exited with code 1") if n % 10 == 7
                            else TrialRecord("paged", n, {"x": 0.5}, COMPLETE, values=[loss], metrics={"loss": loss}))
    try:
        yield create_app(runtime).test_client()
    finally:
        runtime.close()


def rows_and_links(client, link: str) -> tuple[list[int], str | None, str | None, str]:
    """The trial numbers a page of the table lists, its previous and next links, and what it
    says of its place."""
    answer = client.get(link)
    assert answer.status_code == 200, answer.text
    page = answer.get_data(as_text=True)
    shown = [int(n) for n in re.findall(r'<tr data-number="(\d+)">', page)]
    links = [re.search(rf'<a href="([^"]+)" id="{name}">', page) for name in ("prev-page", "next-page")]
    said = re.search(r'id="trial-count"[^>]*>(.*?)</p>', page, re.S).group(1)
    return shown, *(html.unescape(found.group(1)) if found else None for found in links), html.unescape(said)


@pytest.mark.parametrize("order", ["sort=metric:loss&desc=1", "sort=metric:loss", "desc=1", "sort=duration"])
def test_next_and_previous_find_their_page_from_the_trial_beside_it_and_list_every_trial_once(client, order: str):
    """Forward from the first page by the next links, then back by the previous links: the
    pages counted from their place, each link naming the page it leads to and the trial it
    follows (or precedes)."""
    pages = [rows_and_links(client, f"{TABLE}?size=25&{order}&page={page}")[0] for page in range(1, 7)]
    assert sorted(n for page in pages for n in page) == list(range(TRIALS))
    link: str | None = f"{TABLE}?size=25&{order}"
    walked = []
    while link is not None:
        shown, _, link, said = rows_and_links(client, link)
        walked.append(shown)
        assert said.endswith(f"page {len(walked)} of 6"), said
        if link is not None:
            arguments = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
            assert arguments["page"] == [str(len(walked) + 1)] and arguments["after"] == [str(shown[-1])], link
    assert walked == pages
    link = rows_and_links(client, f"{TABLE}?size=25&{order}&page=6")[1]
    back = []
    while link is not None:
        arguments = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
        shown, link, _, said = rows_and_links(client, link)
        back.append(shown)
        assert said.endswith(f"page {5 - len(back) + 1} of 6"), said
        assert "before" in arguments or arguments["page"] == ["1"], arguments
    assert back == pages[4::-1]


def test_a_page_from_a_row_leads_on_and_back_by_the_trials_beside_it(client):
    """A page started at a row (as one after a page cut short by its bytes is): its next page
    starts after its last trial at the row after it, its previous ends before its first."""
    pages = [rows_and_links(client, f"{TABLE}?size=25&sort=metric:loss&page={page}")[0] for page in range(1, 7)]
    order = [n for page in pages for n in page]
    shown, previous, following, said = rows_and_links(client, f"{TABLE}?size=25&sort=metric:loss&row=31")
    assert shown == order[30:55] and said.endswith("rows 31–55")
    assert rows_and_links(client, following)[0] == order[55:80]
    assert "row=56" in following and "before" in previous and "row=6" in previous
    assert rows_and_links(client, previous)[0] == order[5:30]


@pytest.mark.parametrize(("query", "refusal"), [
    ("after=x", "after: expected a whole number from 0 to 9223372036854775807, got 'x'"),
    ("before=-1", "before: expected a whole number from 0 to 9223372036854775807, got '-1'"),
    ("after=3&before=4", "after, before: give one of them (the trial a page follows, or precedes), not both")])
def test_a_trial_the_page_follows_that_is_no_number_is_refused_naming_it(client, query: str, refusal: str):
    answer = client.get(f"{TABLE}.fragment?{query}")
    assert answer.status_code == 400 and refusal in answer.text, answer.text


def test_a_page_following_a_trial_not_stored_is_the_page_its_place_names(client):
    """A hand-edited ``after``: the page its ``page`` names, as a bookmark without one."""
    assert rows_and_links(client, f"{TABLE}?size=25&page=3&after=99999")[0] == \
        rows_and_links(client, f"{TABLE}?size=25&page=3")[0]
