"""The dashboard's trial page on trials written through the store (katuna's own SQLite store, read
by the real app through Flask's test client): the peak memory a local trial kept, an observation
log's columns, how a pruned trial's note is headed, and where its earlier attempts' logs open."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator

import pytest
from conftest import app_client, study_definition

from functions.adapters.sqlite_store import SqliteStore
from functions.core.metrics import Observation
from functions.core.records import COMPLETE, PRUNED, StudyRecord, TrialRecord
from functions.core.validate import parse_study

PEAK = 323_809_280
"""A trial's peak memory in bytes: 308.8 MiB."""


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator:
    db = tmp_path_factory.mktemp("trial-page") / "katuna.db"
    definition = study_definition(name="kept", maxTrials=2)
    now = time.time()
    store = SqliteStore(db)
    store.add_study(StudyRecord(parse_study(definition), definition, str(db.parent), "test", status="completed",
                                reason="max trials reached", created_at=now, started_at=now, completed_at=now))
    store.add_trial(TrialRecord("kept", 0, {"x": 0.5}, COMPLETE, values=[1.0], metrics={"loss": 1.0}, exit_code=0,
                                started_at=now, finished_at=now + 2, peak_memory=PEAK))
    store.add_observations("kept", 0, 1, [Observation("loss", 2.0, 1), Observation("loss", 1.0, 2)])
    store.add_trial(TrialRecord("kept", 1, {"x": 0.7}, PRUNED, metrics={"loss": 3.0}, started_at=now,
                                finished_at=now + 1, reason="pruned at step 1 by the median rule (loss=3)"))
    store.add_observations("kept", 1, 1, [Observation("loss", 3.0, 1, "2026-12-05T13:14:05Z")])
    store.add_trial(TrialRecord("kept", 2, {"x": 0.9}, COMPLETE, values=[2.0], metrics={"loss": 2.0}, exit_code=0,
                                attempt=3, started_at=now, finished_at=now + 3))
    store.close()
    with app_client(db) as served:
        yield served


def test_a_trials_peak_memory_is_shown_as_its_reason_words_one(client):
    page = client.get("/ui/studies/kept/trials/0").text
    assert '<dt>peak memory</dt><dd id="trial-peak-memory">308.8 MiB</dd>' in page
    assert "peak memory" not in client.get("/ui/studies/kept/trials/1").text, "a trial with none measured"


def test_the_observation_log_has_a_time_column_only_where_an_observation_has_a_time(client):
    untimed = client.get("/ui/studies/kept/trials/0").text.split('id="observations"')[1].split("</table>")[0]
    assert "<th class=\"num\">step</th></tr>" in untimed and "<th>time</th>" not in untimed
    timed = client.get("/ui/studies/kept/trials/1").text.split('id="observations"')[1].split("</table>")[0]
    assert "<th>time</th>" in timed and "<td>2026-12-05T13:14:05Z</td>" in timed


def test_a_pruned_trials_note_is_headed_pruned_not_as_a_failure(client):
    page = client.get("/ui/studies/kept/trials/1").text
    assert '<section class="card" id="reason">' in page and "<h2>Pruned</h2>" in page
    assert "pruned at step 1 by the median rule (loss=3)" in page


def test_an_earlier_attempts_log_opens_as_a_terminal_shows_it_as_the_page_shows_the_current_one(client):
    """The page shows the log as a terminal shows it (a progress bar at its last state); the
    link to each earlier attempt's log opens that attempt's log the same way, not every redraw
    of a bar as a line of its own."""
    earlier = client.get("/ui/studies/kept/trials/2").text.split('id="earlier-attempts"')[1].split("</p>")[0]
    links = re.findall(r'<a href="([^"]+)" data-attempt="(\d)">', earlier)
    assert [(html.unescape(href), k) for href, k in links] == [
        ("/studies/kept/trials/2/logs?attempt=1&terminal=true", "1"),
        ("/studies/kept/trials/2/logs?attempt=2&terminal=true", "2")]
    for href, _ in links:
        assert client.get(html.unescape(href)).status_code in (200, 404), "a URL the API takes"
