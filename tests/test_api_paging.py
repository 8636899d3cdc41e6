"""The API's long listings a page at a time, through the real app (Flask's test client on a real
Runtime and a real SQLite file): ``GET /studies/{name}/trials`` and ``GET /dead-letters`` answer at
most ``limit`` items and :data:`paging.PAGE_BYTES` of them, with a ``Link`` to the next page; the
links reach every item once, trials added meanwhile included; a bad ``limit`` or cursor, or a
parameter the listing does not take, is a ``400`` naming it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent
from conftest import study_definition

from functions.adapters.web import create_app, paging
from functions.core.events import Event
from functions.core.records import COMPLETE, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.runtime import Runtime
from functions.settings import Settings

TRIALS = 2_345


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator:
    base = tmp_path_factory.mktemp("paging")
    runtime = Runtime(Settings(db=base / "katuna.db"))
    store = runtime.store()
    definition = study_definition(name="big", maxTrials=TRIALS + 100)
    store.add_study(StudyRecord(parse_study(definition), definition, str(base), "uid-big", status="completed"))
    with store.transaction():
        for number in range(TRIALS):
            store.add_trial(TrialRecord("big", number, {"x": number / 1000}, COMPLETE, values=[number / 7],
                                        metrics={"loss": number / 7}))
    try:
        yield create_app(runtime).test_client()
    finally:
        runtime.close()


def _next(answer) -> str | None:
    found = re.fullmatch(r'<([^>]+)>; rel="next"', answer.headers.get("Link", ""))
    return found.group(1) if found else None


def _walk(client, path: str) -> tuple[list[dict], list[int]]:
    """Every item the links reach from ``path``, and the size of each page."""
    items, sizes = [], []
    while path is not None:
        answer = client.get(path)
        assert answer.status_code == 200, answer.get_json()
        items += answer.get_json()
        sizes.append(len(answer.get_json()))
        path = _next(answer)
    return items, sizes


def test_the_trials_come_a_page_at_a_time_and_the_links_reach_each_once(client):
    first = client.get("/studies/big/trials")
    assert [t["number"] for t in first.get_json()] == list(range(1_000))
    assert _next(first) == "/studies/big/trials?limit=1000&after=999"
    items, sizes = _walk(client, "/studies/big/trials?limit=700")
    assert [t["number"] for t in items] == list(range(TRIALS))
    assert sizes == [700, 700, 700, TRIALS - 2_100]
    assert items[5] == first.get_json()[5]


def test_trials_added_while_paging_come_last_and_none_twice(client):
    store = client.application.extensions["katuna"].store()
    first = client.get("/studies/big/trials?limit=1000")
    with store.transaction():
        for number in range(TRIALS, TRIALS + 10):
            store.add_trial(TrialRecord("big", number, {"x": 0.5}, COMPLETE, values=[0.0]))
    try:
        rest, _ = _walk(client, _next(first))
        numbers = [t["number"] for t in first.get_json() + rest]
        assert numbers == list(range(TRIALS + 10))
    finally:
        with store.transaction():
            for number in range(TRIALS, TRIALS + 10):
                store.discard_trial("big", number)


def test_a_page_is_written_as_compactly_as_every_other_answer(client):
    """A page's items are JSON without the spaces Python's ``json.dumps`` puts after ``,`` and
    ``:``, as ``jsonify`` writes a single trial: a page of many trials is not a tenth larger."""
    for url in ("/studies", "/studies/big/trials?limit=3", "/studies/big/best"):
        answer = client.get(url)
        text = answer.get_data(as_text=True)
        assert answer.status_code == 200 and answer.get_json(), url
        assert text.rstrip("\n") == json.dumps(answer.get_json(), separators=(",", ":"), sort_keys=True), url


def test_the_last_page_has_no_next_link(client):
    last = client.get(f"/studies/big/trials?after={TRIALS - 3}")
    assert [t["number"] for t in last.get_json()] == [TRIALS - 2, TRIALS - 1] and "Link" not in last.headers
    assert client.get(f"/studies/big/trials?after={TRIALS + 5}").get_json() == []


@pytest.mark.parametrize("query, named", [
    ("limit=0", "limit"), ("limit=10001", "limit"), ("limit=abc", "limit"), ("limit=", "limit"),
    ("after=-1", "after"), ("after=1.5", "after"), ("after=" + "9" * 30, "after"),
    ("offset=5", "offset"), ("page=2", "page"), ("before=3", "before"), ("limit=1&limit=2", "limit"),
    ("after=0&after=1", "after")])
def test_a_bad_paging_parameter_is_refused_naming_it(client, query: str, named: str):
    answer = client.get(f"/studies/big/trials?{query}")
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.get_json()["message"].startswith(f"{named}: "), answer.get_json()


def test_the_trials_of_a_missing_study_are_a_404(client):
    assert client.get("/studies/nosuch/trials?limit=5").status_code == 404


def test_the_whole_pareto_front_comes_a_page_at_a_time_where_the_study_samples_it(tmp_path):
    """``GET /studies/{name}`` lists at most 20 trials of a front; ``/best`` lists every one, by
    number, found by dominance in each objective's direction (ties all on it), and nothing else."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        store = runtime.store()
        definition = study_definition(name="front", maxTrials=200, objective={"metrics": [
            {"name": "loss", "direction": "minimize"}, {"name": "size", "direction": "maximize"}]})
        store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "uid-f", status="completed"))
        values = {n: [n % 60, n % 60 if n < 120 else n % 60 - 1] for n in range(150)}
        with store.transaction():
            for number, pair in values.items():
                store.add_trial(TrialRecord("front", number, {"x": 0.5}, COMPLETE, values=[float(v) for v in pair]))
            store.add_trial(TrialRecord("front", 150, {"x": 0.5}, "FAIL", reason="exited with code 1"))
        client = create_app(runtime).test_client()
        assert client.get("/studies/front").get_json()["frontSize"] == 120
        assert client.get("/studies/front").get_json()["links"]["best"] == "/studies/front/best"
        items, sizes = _walk(client, "/studies/front/best?limit=50")
        assert [t["number"] for t in items] == list(range(120)) and sizes == [50, 50, 20]
        assert items[7]["values"] == [7.0, 7.0]
    finally:
        runtime.close()


def test_the_best_of_one_objective_is_its_best_trial(client):
    assert [t["number"] for t in client.get("/studies/big/best").get_json()] == [0]
    assert client.get("/studies/big/best?after=0").get_json() == []
    assert client.get("/studies/big/best?offset=1").status_code == 400
    assert client.get("/studies/nosuch/best").status_code == 404


def test_a_page_of_large_trials_is_cut_at_the_page_bytes(tmp_path):
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        store = runtime.store()
        definition = study_definition(name="wide", maxTrials=100)
        store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "uid-w", status="failed"))
        reason = "r" * (1 << 20)
        with store.transaction():
            for number in range(20):
                store.add_trial(TrialRecord("wide", number, {"x": 0.1}, "FAIL", reason=reason))
        client = create_app(runtime).test_client()
        first = client.get("/studies/wide/trials")
        assert len(first.get_data()) <= paging.PAGE_BYTES + 2 and len(first.get_json()) == 7
        items, sizes = _walk(client, "/studies/wide/trials")
        assert [t["number"] for t in items] == list(range(20)) and sizes == [7, 7, 6]
    finally:
        runtime.close()


def _letter(client, number: int, data_bytes: int) -> None:
    event = CloudEvent(attributes={"type": "dev.katuna.trial.finished", "source": "/test", "id": f"lost-{number}",
                                   "datacontenttype": "application/json", "knativeerrorcode": "500"},
                       data={"study": "gone", "trial": number, "pad": "p" * data_bytes})
    message = ce_http.to_binary_event(event)
    answer = client.post("/dead-letters", data=message.body, headers=message.headers)
    assert answer.status_code == 202, answer.get_data(as_text=True)


def test_every_kept_dead_letter_is_reached_a_page_at_a_time(tmp_path):
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", max_dead_letters=150))
    try:
        client = create_app(runtime).test_client()
        for number in range(160):
            _letter(client, number, 10)
        first = client.get("/dead-letters")
        assert [d["event"]["id"] for d in first.get_json()] == [f"lost-{n}" for n in range(159, 59, -1)]
        items, sizes = _walk(client, "/dead-letters?limit=40")
        assert [d["event"]["id"] for d in items] == [f"lost-{n}" for n in range(159, 9, -1)]
        assert sizes == [40, 40, 40, 30]
        assert client.get("/dead-letters?limit=1001").get_json()["message"].startswith("limit: ")
        assert client.get("/dead-letters?offset=100").get_json()["message"].startswith("offset: ")
    finally:
        runtime.close()


def test_a_page_of_large_dead_letters_is_cut_at_the_page_bytes(tmp_path):
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        client = create_app(runtime).test_client()
        for number in range(12):
            _letter(client, number, 1000 * 1024)
        first = client.get("/dead-letters?limit=1000")
        assert len(first.get_data()) <= paging.PAGE_BYTES + 2 and len(first.get_json()) == 8
        items, sizes = _walk(client, "/dead-letters")
        assert [d["event"]["id"] for d in items] == [f"lost-{n}" for n in range(11, -1, -1)] and sizes == [8, 4]
    finally:
        runtime.close()


def test_the_store_reads_dead_letters_only_as_they_are_taken(tmp_path):
    """Each letter may be a MiB: a page that stops early has read no further."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        store = runtime.store()
        for number in range(3):
            store.add_dead_letter(Event("dev.katuna.trial.finished", {"trial": number}, f"e{number}"), "why")
        letters = store.dead_letters(10)
        assert next(letters)["event"]["id"] == "e2"
        letters.close()
        assert [d["id"] for d in store.dead_letters(10, before=3)] == [2, 1]
    finally:
        runtime.close()


def test_studies_are_listed_a_page_at_a_time_in_the_order_they_were_stored(tmp_path):
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    store = runtime.store()
    names = [f"s{n:03d}" for n in range(23)]
    for name in names:
        definition = study_definition(name=name)
        store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), f"uid-{name}",
                                    status="running" if name == "s000" else "completed"))
    client = create_app(runtime).test_client()
    try:
        listed, sizes = _walk(client, "/studies?limit=5")
        assert [s["name"] for s in listed] == names and sizes == [5, 5, 5, 5, 3]
        assert len(client.get("/studies").get_json()) == 23, "500 when left out"
        refused = client.get("/studies?limit=1001")
        assert refused.status_code == 400 and "limit" in refused.get_json()["message"]
        assert client.get("/studies?offset=5").status_code == 400, "a parameter the listing does not take"
        first = client.get("/studies?limit=2")
        store.delete_study("s001")
        assert [s["name"] for s in _walk(client, _next(first))[0]] == names[2:], "keys, not positions"
        fragment = client.get("/ui/studies.fragment").get_data(as_text=True)
        assert 'data-running="true"' in fragment and "studies-more" not in fragment
    finally:
        runtime.close()


def test_a_study_stored_after_the_last_ones_are_deleted_comes_on_the_next_page(tmp_path):
    """SQLite gives the id of a deleted last row again to the next row stored (a table without
    ``AUTOINCREMENT``): a page continued after the id of a study deleted since would leave out
    a study stored in its place. The links name studies by their creation time and name."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    store = runtime.store()

    def stored(name: str, created_at: float) -> None:
        definition = study_definition(name=name)
        store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), f"uid-{name}",
                                    status="completed", created_at=created_at))

    for at, name in enumerate(("a", "b", "c")):
        stored(name, 1_000.0 + at)
    client = create_app(runtime).test_client()
    try:
        first = client.get("/studies?limit=2")
        assert [s["name"] for s in first.get_json()] == ["a", "b"]
        assert _next(first) == "/studies?limit=2&after=1001.0~b"
        store.delete_study("c")
        store.delete_study("b")
        stored("x", 1_010.0)
        stored("y", 1_011.0)
        rest, _ = _walk(client, _next(first))
        assert [s["name"] for s in rest] == ["x", "y"], "none left out, none twice"
    finally:
        runtime.close()


@pytest.mark.parametrize("key, said", [
    ("2", "is a key an older katuna gave"), ("1001.0", "expected the key of a study"),
    ("1001.0~", "expected the key"), ("nan~b", "expected the key"), ("1e999~b", "expected the key"),
    ("1_001.0~b", "expected the key"), ("1001.0~" + "b" * 200, "expected the key"),
    ("1.0~a&after=2.0~b", "given 2 times")])
def test_a_study_key_no_next_link_gives_is_refused_naming_after(tmp_path, key: str, said: str):
    """An older katuna's key, the row's id, is refused rather than read: the row it named may
    be another study's now, and a page continued after it could leave studies out."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        answer = create_app(runtime).test_client().get(f"/studies?after={key}")
    finally:
        runtime.close()
    assert answer.status_code == 400, answer.get_data(as_text=True)
    message = answer.get_json()["message"]
    assert message.startswith("after: ") and said in message, message


def test_the_dashboards_list_shows_the_newest_studies_and_says_how_many_are_stored(tmp_path):
    from functions.adapters.web.ui import STUDIES_SHOWN

    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    store = runtime.store()
    stored = STUDIES_SHOWN + 2
    with store.transaction():
        for n in range(stored):
            definition = study_definition(name=f"s{n}")
            store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), f"uid-{n}",
                                        status="running" if n == 0 else "completed"))
    try:
        fragment = create_app(runtime).test_client().get("/ui/studies.fragment").get_data(as_text=True)
        shown = re.findall(r'data-study="s(\d+)"', fragment)
        assert [int(n) for n in shown] == list(range(stored - 1, 1, -1)), "the newest first"
        assert f"The {STUDIES_SHOWN} newest of {stored} studies" in fragment
        assert 'data-running="true"' in fragment, "an older study runs: the list is still followed"
    finally:
        runtime.close()


def test_the_dashboards_list_is_answered_304_only_while_what_it_shows_is_unchanged(tmp_path):
    """RFC 9110 section 8.8: a validator changes whenever what it validates does. The list shows
    each study's trial counts and best trial, which change as trials end (a study may run in
    another katuna process, one this service leaves alone, while the list here is idle), and a
    running study's duration, which the clock moves: its ETag is weak, and a trial's end changes
    it, so a client that names the ETag it holds is never told ``304`` of a list that changed."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    store = runtime.store()
    definition = study_definition(name="elsewhere")
    store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "uid-e", status="running",
                                runs_on="kubernetes", started_at=time.time()))
    store.add_trial(TrialRecord("elsewhere", 0, {"x": 0.1}, "RUNNING"))
    client = create_app(runtime).test_client()
    try:
        first = client.get("/ui/studies.fragment")
        etag = first.headers["ETag"]
        assert etag.startswith('W/"'), "a running study's duration moves with the clock"
        assert 'data-running="false"' in first.get_data(as_text=True), "the list is idle: it asks with its ETag"
        assert "0 done" in first.get_data(as_text=True)
        again = client.get("/ui/studies.fragment", headers={"If-None-Match": etag})
        assert (again.status_code, again.headers["ETag"]) == (304, etag), "nothing changed"
        store.update_trial("elsewhere", 0, state=COMPLETE, values=[0.5], metrics={"loss": 0.5})
        changed = client.get("/ui/studies.fragment", headers={"If-None-Match": etag})
        assert changed.status_code == 200 and "1 done" in changed.get_data(as_text=True)
        assert changed.headers["ETag"] != etag
        strong = client.get("/ui/studies.fragment", headers={"If-None-Match": changed.headers["ETag"][2:]})
        assert strong.status_code == 304, "If-None-Match compares weakly (RFC 9110 section 13.1.2)"
    finally:
        runtime.close()


def test_the_dashboards_list_pages_back_to_its_oldest_study(tmp_path):
    """Past the newest :data:`STUDIES_SHOWN`, the list's pages (``?page=2``...) reach every older
    study, each a link to its page, as the list's refresh keeps to the page it shows; a page
    past the last (its studies deleted since) leads to the last, and a page that is no whole
    number is refused, naming it."""
    from functions.adapters.web.ui import STUDIES_SHOWN

    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    store = runtime.store()
    stored = STUDIES_SHOWN + 3
    with store.transaction():
        for n in range(stored):
            definition = study_definition(name=f"s{n}")
            store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), f"uid-{n}",
                                        status="completed"))
    try:
        client = create_app(runtime).test_client()
        first = client.get("/ui/").get_data(as_text=True)
        assert '<a href="/ui/?page=2" id="older-studies">older ›</a>' in first
        older = client.get("/ui/?page=2").get_data(as_text=True)
        assert re.findall(r'data-study="s(\d+)"', older) == ["2", "1", "0"], "the oldest, newest first"
        assert '<a href="/ui/studies/s0">s0</a>' in older
        assert f"Studies {STUDIES_SHOWN + 1}–{stored} of {stored}, newest first" in older
        assert '<a href="/ui/" id="newer-studies">‹ newer</a>' in older and 'id="older-studies"' not in older
        assert 'data-src="/ui/studies.fragment?page=2"' in older, "its refresh keeps to its page"
        fragment = client.get("/ui/studies.fragment?page=2")
        assert re.findall(r'data-study="s(\d+)"', fragment.get_data(as_text=True)) == ["2", "1", "0"]
        assert fragment.headers["ETag"] != client.get("/ui/studies.fragment").headers["ETag"]
        past = client.get("/ui/?page=9")
        assert (past.status_code, past.headers["Location"]) == (302, "/ui/?page=2")
        refused = client.get("/ui/?page=0")
        assert refused.status_code == 400 and "page" in refused.get_data(as_text=True)
    finally:
        runtime.close()


def test_the_dashboards_trial_count_writes_thousands_as_its_row_range_does(client):
    page = client.get("/ui/studies/big/trials?size=100&page=2").text
    count = re.search(r'<p class="muted" id="trial-count"[^>]*>([^<]*)</p>', page)
    assert count is not None and count.group(1).startswith("2,345 trials match · page 2 of 24"), count
