"""The trial table's filters on trials written through the store (katuna's own SQLite store, read
by the real app through Flask's test client, its clock fixed): a categorical parameter's values,
a duration's bounds in seconds, minutes or hours, each refused naming its argument; and how long
a running trial has run so far, on its row and its page."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

import pytest
from conftest import app_client, study_definition

from functions.adapters.sqlite_store import SqliteStore
from functions.core.records import COMPLETE, FAIL, RUNNING, StudyRecord, TrialRecord
from functions.core.validate import parse_study

NOW = 1_800_000_000.0
TABLE = "/ui/studies/labels/trials"
VALUES = ["adam", "sgd", 2, True, None, 0.5]
"""A categorical parameter's values: text, numbers, a boolean, null."""


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator:
    db = tmp_path_factory.mktemp("filters") / "katuna.db"
    definition = study_definition(name="labels", maxTrials=8, parameters=[
        {"name": "opt", "type": "categorical", "values": VALUES},
        {"name": "lr", "type": "float", "min": 0.0, "max": 1.0}],
        trialTemplate={"command": ["echo", "${trialParameters.opt}", "${trialParameters.lr}"]})
    store = SqliteStore(db)
    # Run on a cluster, not by the service under test: it would resume a study of its own.
    store.add_study(StudyRecord(parse_study(definition), definition, str(db.parent), "test", status="running",
                                created_at=NOW - 7200, started_at=NOW - 7200, runs_on="kubernetes"))
    for number, (value, seconds) in enumerate(zip(VALUES, [30, 90, 300, 3600, 5400, 45], strict=True)):
        store.add_trial(TrialRecord("labels", number, {"opt": value, "lr": 0.5}, COMPLETE if number % 3 else FAIL,
                                    values=[float(number)], metrics={"loss": float(number)},
                                    started_at=NOW - 7000, finished_at=NOW - 7000 + seconds))
    store.add_trial(TrialRecord("labels", 6, {"opt": "adam", "lr": 0.5}, RUNNING, started_at=NOW - 65))
    store.close()
    with app_client(db, clock=lambda: NOW) as served:
        yield served


def numbers(client, query: str, status: int = 200) -> list[int]:
    """The numbers of the trials the table lists for ``query``."""
    answer = client.get(f"{TABLE}?{query}")
    assert answer.status_code == status, answer.text
    return [int(n) for n in re.findall(r'<tr data-number="(\d+)">', answer.text)]


def test_a_categorical_parameters_values_filter_the_table_its_export_and_stay_checked(client):
    assert numbers(client, "param:opt=adam") == [0, 6]
    assert numbers(client, "param:opt=adam&param:opt=sgd&state=COMPLETE") == [1]
    page = client.get(f"{TABLE}?param:opt=sgd&param:opt=null").text
    assert re.findall(r'name="param:opt" value="([^"]*)" checked', page) == ["sgd", "null"]
    assert re.findall(r'name="param:opt" value="([^"]*)"', page) == ["adam", "sgd", "2", "true", "null", "0.5"]
    exported = client.get(f"{TABLE}.csv?param:opt=sgd&param:opt=null&sort=number&desc=1").text
    assert [row["number"] for row in csv.DictReader(io.StringIO(exported))] == ["4", "1"]
    assert numbers(client, "param:opt=adam&field=duration&max=60") == [0], "with a range, both hold"


def test_a_value_matches_the_parameters_value_of_its_type(client):
    """``2`` is the number 2, ``true`` the boolean (stored as JSON true, which SQLite reads as 1)."""
    assert numbers(client, "param:opt=2") == [2]
    assert numbers(client, "param:opt=true") == [3]
    assert numbers(client, "param:opt=null") == [4]
    assert numbers(client, "param:opt=0.5&param:opt=true") == [3, 5]
    assert numbers(client, "param:opt=") == list(range(7)), "a blank value, as a form may send, filters nothing"


@pytest.mark.parametrize(("query", "refusal"), [
    ("param:opt=nadam", "param:opt: expected one of its values, 'adam', 'sgd', '2', 'true', 'null', '0.5'; got 'nadam'"),
    ("param:lr=0.5", "param:lr: its values are numbers, which a min/max range filters (field param:lr)"),
    ("param:momentum=0.9", "param:momentum: not a categorical parameter of the study; expected param:opt"),
    ("field=param:opt&min=1", "field: 'param:opt' takes labels, not numbers, so it has no min/max range"),
    ("field=duration&min=5+minutes", "min of duration: expected seconds (90 or 90s), or minutes and hours (5m, "
                                     "1.5h, 1h 30m), got '5 minutes'"),
])
def test_a_filter_the_table_cannot_apply_is_refused_naming_its_argument_and_the_rest_applies(client, query, refusal):
    answer = client.get(f"{TABLE}?{query}&state=FAIL")
    assert answer.status_code == 400
    assert refusal in answer.text.replace("&#39;", "'")
    assert numbers(client, f"{query}&state=FAIL", 400) == [0, 3], "the state filter still applies"
    assert client.get(f"{TABLE}.csv?{query}").status_code == 400


@pytest.mark.parametrize(("low", "high", "expected"), [
    ("90", "", [1, 2, 3, 4]), ("90s", "", [1, 2, 3, 4]), ("1m", "5m", [1, 2]), ("1.5h", "", [4]),
    ("1h 30m", "", [4]), ("1m 05s", "1h", [1, 2, 3]), (".5m", "45s", [0, 5]),
])
def test_a_durations_bounds_take_seconds_or_the_units_the_table_writes(client, low, high, expected):
    """A running trial has no duration yet, so no range holds it."""
    assert numbers(client, f"field=duration&min={low}&max={high}") == expected


def test_the_form_says_a_durations_unit_and_shows_its_bounds_in_seconds(client):
    page = client.get(f"{TABLE}?field=duration&min=5m&max=1h+30m").text
    assert "a duration's are seconds (90 or 90s), or minutes and hours (5m, 1.5h, 1h 30m)" in page
    assert re.findall(r'name="(min|max)"[^>]*value="([^"]*)"', page)[:2] == [("min", "300s"), ("max", "5400s")]


def test_a_running_trial_shows_how_long_it_has_run_on_its_row_and_its_page(client):
    row = client.get(TABLE).text.split('<tr data-number="6">')[1].split("</tr>")[0]
    assert '<td class="num so-far" data-field="duration">1m 05s so far</td>' in row
    ended = client.get(TABLE).text.split('<tr data-number="1">')[1].split("</tr>")[0]
    assert '<td class="num" data-field="duration">1m 30s</td>' in ended
    assert '<dt>running for</dt><dd id="trial-elapsed">1m 05s</dd>' in client.get(f"{TABLE}/6").text
    assert "running for" not in client.get(f"{TABLE}/1").text
    assert client.get(f"{TABLE}/6/log").get_json()["elapsed"] == 65
    assert client.get(f"{TABLE}/1/log").get_json()["elapsed"] is None


def test_the_logs_view_is_asked_as_true_or_false_and_anything_else_is_refused_naming_it(client):
    answer = client.get("/studies/labels/trials/6/logs?terminal=yes")
    assert answer.status_code == 400
    assert answer.get_json()["message"] == "terminal: expected true or 1 (yes), false or 0 (no), got 'yes'"
    assert client.get("/studies/labels/trials/6/logs?terminal=true").status_code == 200
