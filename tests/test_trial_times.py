"""Times read off the wall clock, which a time sync may set back, and which two service replicas
read apart: a trial that finished a moment "before" it started, as stored, ran for no time at
all in every place that shows its duration (``katuna show``, ``katuna trials --csv``, the
dashboard's pages, the API's duration filter and order), and a study another replica started a
moment "after" the dashboard's now has run for no time yet, never for a negative one. Every time
shown to a person is in UTC and says so, whatever the time zone katuna runs in; a range of a
time (``startedAt``, ``finishedAt``) takes seconds since the epoch or an RFC 3339 time with its
zone, and refuses a time without one, which names no instant."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from conftest import app_client, study_definition
from waiting import eventually

from functions.adapters.sqlite_store import SqliteStore
from functions.cli import main
from functions.core.records import COMPLETE, StudyRecord, TrialRecord
from functions.core.validate import parse_study

START = 1_796_500_000.0
"""2026-12-05 19:46:40 UTC."""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Study ``back``: trial 0 stored as finished 2.5 s before it started (the clock was set
    back while it ran), trial 1 ran 4 s, trial 2 no time. Study ``ahead`` runs, started 5 s after :data:`START`
    by a replica whose clock is ahead."""
    path = tmp_path / "katuna.db"
    store = SqliteStore(path)
    try:
        for name, started in (("back", START - 60), ("ahead", START + 5)):
            definition = study_definition(name=name)
            store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), f"uid-{name}",
                                        status="running", created_at=started))
            store.update_study(name, started_at=started)
        store.add_trial(TrialRecord("back", 0, {"x": 1.0}, COMPLETE, values=[0.5], metrics={"loss": 0.5}, exit_code=0,
                                    started_at=START, finished_at=START - 2.5))
        store.add_trial(TrialRecord("back", 1, {"x": 2.0}, COMPLETE, values=[0.7], metrics={"loss": 0.7}, exit_code=0,
                                    started_at=START, finished_at=START + 4))
        store.add_trial(TrialRecord("back", 2, {"x": 3.0}, COMPLETE, values=[0.9], metrics={"loss": 0.9}, exit_code=0,
                                    started_at=START, finished_at=START))
    finally:
        store.close()
    return path


@pytest.fixture
def served(db: Path) -> Iterator:
    """The dashboard and API over ``db``, their clock at :data:`START`, served as on Knative
    (``KATUNA_EVENTS=reply``): the service takes no event of its own and ticks on none, so the
    studies stay as stored while the pages read them. A service with its own broker would find
    both studies stalled (running, nothing alive) once its queue had been quiet for
    :data:`~functions.watch.RECONCILE_AFTER` seconds, and resume them: Optuna, which holds none of
    ``back``'s stored trials, suggests trial 0 again, which replaces the stored one."""
    with app_client(db, {"events": "reply"}, clock=lambda: START) as client:
        yield client


def test_katuna_show_gives_a_trial_the_clock_ran_back_on_no_time_not_a_negative_one(db: Path):
    result = CliRunner().invoke(main, ["show", "back", "0", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "started: 2026-12-05 19:46:40 UTC  finished: 2026-12-05 19:46:37 UTC (0.0 s)" in result.stdout


def test_the_csv_gives_it_a_duration_of_none_and_keeps_its_stored_times(db: Path):
    result = CliRunner().invoke(main, ["trials", "back", "--db", str(db), "--csv"])
    assert result.exit_code == 0, result.output
    rows = {row["number"]: row for row in csv.DictReader(io.StringIO(result.stdout))}
    assert (rows["0"]["started (UTC)"], rows["0"]["finished (UTC)"], rows["0"]["duration (s)"]) == (
        "2026-12-05 19:46:40", "2026-12-05 19:46:37", "0.0")
    assert rows["1"]["duration (s)"] == "4.0"


def test_both_csv_exports_give_a_duration_to_the_millisecond(db: Path, served):
    """``katuna trials --csv`` and the dashboard's export write one duration, to the millisecond
    (as its times are read off the wall clock), never a float's every digit."""
    store = SqliteStore(db)
    try:
        store.add_trial(TrialRecord("back", 3, {"x": 4.0}, COMPLETE, values=[1.1], metrics={"loss": 1.1}, exit_code=0,
                                    started_at=START + 0.25, finished_at=START + 12.595678901))
    finally:
        store.close()
    result = CliRunner().invoke(main, ["trials", "back", "--db", str(db), "--csv"])
    assert result.exit_code == 0, result.output
    exported = served.get("/ui/studies/back/trials.csv")
    assert exported.status_code == 200
    printed, served_rows = (list(csv.DictReader(io.StringIO(text))) for text in (result.stdout, exported.text))
    assert [row["duration (s)"] for row in printed] == ["0.0", "4.0", "0.0", "12.346"]
    assert printed == served_rows, "both exports the same"


def test_the_dashboard_shows_no_negative_span_for_a_trial_or_a_study(served):
    trial = served.get("/ui/studies/back/trials/0").text
    assert "<dd>2026-12-05 19:46:37 UTC (0.0s)</dd>" in trial
    table = served.get("/ui/studies/back/trials").text.split('data-number="0"')[1].split("</tr>")[0]
    assert 'data-field="duration">0.0s</td>' in table
    studies = served.get("/ui/").text.split("ahead</a>")[1].split("</tr>")[0]
    assert "2026-12-05 19:46:45 UTC" in studies and "<td>0.0s</td>" in studies
    assert "-1h" not in studies and "-" not in served.get("/ui/studies/ahead").text.split('id="study-span">')[1][:8]


def test_a_tick_while_the_pages_are_read_resumes_none_of_their_studies(served):
    """A tick (a PingSource's, as the broker of a service taking its own events sends one itself
    every few seconds) finds both studies stalled; the service under the pages resumes neither,
    so trial 0 stays as stored, not replaced by the trial Optuna would suggest first."""
    tick = {"ce-specversion": "1.0", "ce-type": "dev.knative.sources.ping", "ce-id": "tick-1",
            "ce-source": "/apis/v1/namespaces/katuna/pingsources/katuna-tick"}
    served.post("/", headers=tick)
    queue = served.application.extensions["katuna"].queue
    eventually(lambda: queue.depth() == 0, "the events the tick led to are handled")
    trial = served.get("/studies/back/trials/0").get_json()
    assert (trial["params"], trial["startedAt"], trial["finishedAt"]) == ({"x": 1.0}, START, START - 2.5), trial


def test_the_apis_duration_filter_takes_it_as_no_time(served):
    shortest = served.get("/studies/back/trials?field=duration&min=0&max=0").get_json()
    assert [t["number"] for t in shortest] == [0, 2]
    ordered = served.get("/studies/back/trials?order=duration:desc").get_json()
    assert [t["number"] for t in ordered] == [1, 2, 0], "trials 0 and 2 ran as long: the later number first"


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata"])
def test_a_time_zone_changes_neither_what_is_stored_nor_what_is_shown(db: Path, zone: str,
                                                                       monkeypatch: pytest.MonkeyPatch):
    before = CliRunner().invoke(main, ["show", "back", "1", "--db", str(db), "--json"]).stdout
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        shown = CliRunner().invoke(main, ["show", "back", "1", "--db", str(db)])
        assert "started: 2026-12-05 19:46:40 UTC  finished: 2026-12-05 19:46:44 UTC (4.0 s)" in shown.stdout
        assert CliRunner().invoke(main, ["show", "back", "1", "--db", str(db), "--json"]).stdout == before
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_a_times_range_takes_an_rfc_3339_time_with_its_zone_as_the_instant_it_names(served, db: Path):
    for low, high in (("2026-12-05T19:46:41Z", ""), ("2026-12-06T01:16:41+05:30", "1796500004.5"),
                      ("1796500001", "2026-12-05T19:46:44.5Z")):
        found = served.get(f"/studies/back/trials?field=finishedAt&min={quote(low)}&max={quote(high)}")
        assert (found.status_code, [t["number"] for t in found.get_json()]) == (200, [1]), (low, high)
    listed = CliRunner().invoke(main, ["trials", "back", "--db", str(db), "--json",
                                       "--max", "startedAt", "2026-12-05T14:46:40-05:00"])
    assert listed.exit_code == 0, listed.output
    assert [t["number"] for t in json.loads(listed.stdout)] == [0, 1, 2]


@pytest.mark.parametrize("given", ["2026-12-05", "2026-12-05T19:46:40", "2026-13-05T19:46:40Z", "yesterday"])
def test_a_time_without_its_zone_or_no_time_is_refused_saying_what_a_time_takes(served, db: Path, given: str):
    refused = served.get(f"/studies/back/trials?field=startedAt&min={quote(given)}")
    assert refused.status_code == 400
    assert refused.get_json()["message"] == (
        f"min of started: expected seconds since the epoch (1796500000) or an RFC 3339 time with its zone "
        f"(2026-12-05T19:46:40Z), got {given!r}")
    cli = CliRunner().invoke(main, ["trials", "back", "--db", str(db), "--min", "finishedAt", given])
    assert cli.exit_code == 2 and "RFC 3339 time with its zone" in cli.output, cli.output
