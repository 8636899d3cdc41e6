"""Conditional reads and content negotiation of the study API, on the real app (Flask's test
client on a real Runtime, a real SQLite file and real trial processes): a study's view and its
trials' listing carry a weak ETag and answer 304 to an If-None-Match that names it, until a
write changes them; an Accept that takes none of the types an operation answers with is a 406
naming them, while what browsers and libraries send is answered as ever."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from conftest import study_definition

from functions.adapters.web import create_app
from functions.adapters.web.api._accept import acceptable
from functions.adapters.web.openapi import document
from functions.runtime import Runtime
from functions.settings import Settings

PATHS = {"/studies/held": "/studies/{name}", "/studies/held/trials?state=RUNNING&state=PRUNED": "/studies/{name}/trials"}
DOCUMENT = document()


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator:
    runtime = Runtime(Settings(db=tmp_path_factory.mktemp("conditional") / "katuna.db"))
    try:
        client = create_app(runtime).test_client()
        definition = study_definition(name="held", mode="hang", maxTrials=1, parallelism=1)
        assert client.post("/studies", json=definition).status_code == 201
        yield client
    finally:
        runtime.close()


def _settled(client, url: str) -> str:
    """The ETag of ``url`` once an If-None-Match naming it is answered 304 (the study's last
    writes, its trial's end, may still land after it ends)."""
    deadline = time.monotonic() + 30
    while True:
        etag = client.get(url).headers["ETag"]
        again = client.get(url, headers={"If-None-Match": etag})
        if again.status_code == 304 or time.monotonic() > deadline:
            assert again.status_code == 304, url
            assert again.get_data() == b"" and again.headers["ETag"] == etag
            assert "Content-Type" not in again.headers
            return etag
        time.sleep(0.2)


def test_a_study_and_its_trials_carry_an_etag_answered_304_until_they_change(client):
    deadline = time.monotonic() + 30
    while client.get("/studies/held").get_json()["counts"]["running"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    before = {url: client.get(url).headers["ETag"] for url in PATHS}
    assert all(etag.startswith('W/"') for etag in before.values()), before
    assert client.post("/studies/held/stop").status_code == 200
    deadline = time.monotonic() + 30
    while client.get("/studies/held").get_json()["counts"]["running"] and time.monotonic() < deadline:
        time.sleep(0.1)
    for url, path in PATHS.items():
        changed = client.get(url, headers={"If-None-Match": before[url]})
        assert changed.status_code == 200 and changed.headers["ETag"] != before[url], url
        assert changed.get_json(), url
        settled = _settled(client, url)
        assert client.get(url, headers={"If-None-Match": f'"other", {settled}'}).status_code == 304
        assert client.get(url, headers={"If-None-Match": "*"}).status_code == 304
        assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
        responses = DOCUMENT["paths"][path]["get"]["responses"]
        assert "ETag" in responses["304"]["headers"] and "ETag" in responses["200"]["headers"]


def test_a_refused_listing_is_refused_whatever_its_if_none_match_names(client):
    etag = client.get("/studies/held/trials").headers["ETag"]
    refused = client.get("/studies/held/trials?state=DONE", headers={"If-None-Match": etag})
    assert (refused.status_code, refused.get_json()["error"]) == (400, "malformed_request")
    assert client.get("/studies/nosuch", headers={"If-None-Match": "*"}).status_code == 404


@pytest.mark.parametrize("url, accept", [("/studies/held", "application/xml"), ("/studies", "text/html"),
                                         ("/openapi.json", "application/json;q=0, */*;q=0.1"),
                                         ("/studies/held/trials/0/logs", "application/json")])
def test_an_accept_that_takes_no_type_of_the_operation_is_a_406_naming_it(client, url: str, accept: str):
    refused = client.get(url, headers={"Accept": accept})
    body = refused.get_json()
    assert (refused.status_code, body["error"], body["retryable"]) == (406, "not_acceptable", False)
    offered = "text/plain" if url.endswith("/logs") else "application/json"
    assert accept in body["message"] and f"it answers {offered}" in body["message"]


@pytest.mark.parametrize("accept", ["", "*/*", "*", "application/*", "application/json; charset=utf-8",
                                    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                                    "APPLICATION/JSON", "not a media type"])
def test_what_browsers_and_libraries_accept_is_answered_as_ever(client, accept: str):
    assert client.get("/studies/held", headers={"Accept": accept}).status_code == 200
    assert client.get("/healthz", headers={"Accept": "application/xml"}).status_code == 200


@pytest.mark.parametrize("header, offered, taken", [
    ("application/xml, application/*;q=0", "application/json", False), ("text/*", "text/plain", True),
    ("text/*", "application/json", False), ("application/json;q=0.5;v=1", "application/json", True),
    ("*/*;q=0", "text/plain", False), ("application/problem+json", "application/json", False)])
def test_the_most_specific_range_decides_whether_a_type_is_taken(header: str, offered: str, taken: bool):
    assert acceptable(header, offered) is taken
