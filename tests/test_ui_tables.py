"""The dashboard's trial table and CSV export on a study whose discrete parameter is written as
strings, as every converted Katib Experiment's is: they sort and filter by the numbers the
strings spell, and a categorical parameter, whose values are labels, is offered no range."""

from __future__ import annotations

import csv
import html
import io
import re
import sys
import time
import urllib.parse
from collections.abc import Iterator

import pytest
from conftest import TRIAL, study_definition

from functions.adapters.web import create_app
from functions.core.records import PRUNED, RUNNING, STOPPED_AT_END, StudyRecord, TrialRecord
from functions.core.trial_filters import RANGED_FIELDS
from functions.core.validate import parse_study
from functions.runtime import Runtime
from functions.settings import Settings

TABLE = "/ui/studies/katib-like/trials"


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator:
    runtime = Runtime(Settings(db=tmp_path_factory.mktemp("tables") / "katuna.db"))
    try:
        client = create_app(runtime).test_client()
        definition = study_definition(
            name="katib-like", maxTrials=6, parallelism=2, algorithm={"name": "grid"},
            parameters=[{"name": "b", "type": "discrete", "values": ["16", "32", "128"]},
                        {"name": "c", "type": "categorical", "values": ["ok", "crash"]}],
            trialTemplate={"command": [sys.executable, str(TRIAL), "--x", "${trialParameters.b}",
                                       "--mode", "${trialParameters.c}"]})
        assert client.post("/studies", json=definition).status_code == 201
        deadline = time.monotonic() + 60
        while client.get("/studies/katib-like").get_json()["status"] != "completed":
            assert time.monotonic() < deadline, "the study did not complete"
            time.sleep(0.1)
        yield client
    finally:
        runtime.close()


def shown(client, query: str, name: str = "b") -> list[str]:
    """The values of parameter ``name`` in the table's rows, in order: a number's cell is of class
    ``num`` (right-aligned), a label's of none."""
    answer = client.get(f"{TABLE}?size=25&{query}")
    assert answer.status_code == 200, answer.text
    return re.findall(rf'<td(?: class="num")? data-field="param:{name}">([^<]*)</td>', answer.text)


def test_a_discrete_parameter_written_as_strings_sorts_as_numbers(client):
    assert shown(client, "sort=param:b") == ["16", "16", "32", "32", "128", "128"]
    assert shown(client, "sort=param:b&desc=1") == ["128", "128", "32", "32", "16", "16"]


def test_its_range_filter_compares_numbers(client):
    assert shown(client, "sort=param:b&field=param:b&max=50") == ["16", "16", "32", "32"]
    assert shown(client, "sort=param:b&field=param:b&min=50") == ["128", "128"]
    assert shown(client, "sort=param:b&field=param:b&min=20&max=40") == ["32", "32"]


def test_the_csv_export_sorts_and_filters_the_same(client):
    answer = client.get(f"{TABLE}.csv?sort=param:b&desc=1&field=param:b&min=20")
    assert answer.status_code == 200
    assert [row["b"] for row in csv.DictReader(io.StringIO(answer.text))] == ["128", "128", "32", "32"]


def test_the_csv_export_names_the_zone_of_its_times_and_the_unit_of_its_durations(client):
    """The page says its times are UTC; the export's columns say so too, and that a duration is seconds."""
    header = next(csv.reader(io.StringIO(client.get(f"{TABLE}.csv").text)))
    assert header[-4:] == ["started (UTC)", "finished (UTC)", "duration (s)", "reason"]


def ranges_form(page: str) -> str:
    """The ranges' fieldset of a trial table's page."""
    return page.split('<fieldset class="ranges">')[1].split("</fieldset>")[0]


def test_a_refused_bound_is_said_beside_its_range_marked_and_focused_the_spare_row_not_repeated(client):
    """The refusal stands right under the range at fault, its bad bound marked and focused (a
    keyboard or screen-reader user lands on it); the blank spare row the form sent is not shown
    again beside its own, so each Apply of the refused form keeps the same rows."""
    answer = client.get(f"{TABLE}?field=param:b&min=1&max=&field=param:b&min=0,5&max=9&field=&min=&max=")
    assert answer.status_code == 400
    rows = re.split(r'<div class="range">', ranges_form(answer.text))[1:]
    assert len(rows) == 3, "the two ranges typed, and one spare row"
    assert 'id="filter-problem"' not in rows[0] and "aria-invalid" not in rows[0]
    assert re.search(r'<input name="min"[^>]*value="0,5" aria-invalid="true" aria-describedby="filter-problem" '
                     r'autofocus>', rows[1])
    assert "aria-invalid" not in rows[1].split('name="max"')[1].split(">")[0]
    assert rows[1].rstrip().endswith("</p>") and "min of b: expected a number, got &#39;0,5&#39;" in rows[1]
    assert answer.text.count('id="filter-problem"') == 1 and answer.text.count("autofocus") == 1


def test_a_bound_of_no_field_is_refused_beside_its_range_marking_the_field(client):
    """A bound typed without its field picked would filter nothing, silently: it is refused,
    the field's picker marked; a refusal of no one range stands after the form."""
    answer = client.get(f"{TABLE}?field=&min=5&max=")
    assert answer.status_code == 400
    row = ranges_form(answer.text).split('<div class="range">')[1]
    assert re.search(r'<select name="field" aria-label="field" aria-invalid="true" '
                     r'aria-describedby="filter-problem" autofocus>', row)
    assert "field: a range has a bound but no field: pick the field it bounds" in row
    other = client.get(f"{TABLE}?stat=FAIL&field=param:b&min=20")
    assert other.status_code == 400
    assert 'id="filter-problem"' not in ranges_form(other.text) and 'id="filter-problem"' in other.text
    assert "aria-invalid" not in other.text and "autofocus" not in other.text


def test_a_bound_beyond_the_fields_named_is_refused_not_left_out(client):
    """A link's ``max=50`` with no ``field`` (or a ``min`` more than the fields named) bounds no
    field: left out, the table and its export would list every trial as if filtered."""
    for query in ("max=50", "field=param:b&min=20&min=40", "size=25&min=1&max="):
        for path in (TABLE, f"{TABLE}.csv"):
            answer = client.get(f"{path}?{query}")
            assert answer.status_code == 400, (path, query)
            assert "field: a range has a bound but no field: pick the field it bounds" in answer.text
    page = client.get(f"{TABLE}?max=50&sort=param:b")
    assert 'id="filter-problem"' not in ranges_form(page.text) and 'id="filter-problem"' in page.text
    assert len(re.findall(r'<td class="num" data-field="param:b">', page.text)) == 6, "the table without the bound"
    assert shown(client, "field=param:b&min=&max=&min=&max=") == shown(client, ""), "blank bounds bound nothing"


def test_a_categorical_parameter_is_offered_no_range_and_one_asked_for_is_refused(client):
    page = client.get(TABLE).text
    options = re.findall(r'<option value="([^"]+)"', page.split('name="field"')[1].split("</select>")[0])
    assert "param:b" in options and "param:c" not in options
    for path in (TABLE, f"{TABLE}.csv"):
        answer = client.get(f"{path}?field=param:c&min=0")
        assert answer.status_code == 400
        assert "field: 'param:c' takes labels, not numbers" in html.unescape(answer.text)
    assert shown(client, "sort=param:c", "c") == ["crash"] * 3 + ["ok"] * 3, "its labels still sort"
    assert '<td data-field="param:c">crash</td>' in client.get(TABLE).text, "a label is not aligned as a number"


def test_a_range_filters_bounds_are_kept_as_given_so_applying_it_again_matches_the_same(client):
    """The form shows the bounds it was given, as they read back, not rounded: the same Apply
    again (say with another page size) filters the same trials."""
    page = client.get(f"{TABLE}?field=param:b&min=0.1237238&max=31.9999999")
    assert 'value="0.1237238"' in page.text and 'value="31.9999999"' in page.text


def test_a_dashboard_path_with_nothing_there_is_the_dashboards_error_page(client):
    for path in ("/ui/studies", "/ui/nonexistent", "/ui/studies/katib-like/trials/1/nothing"):
        answer = client.get(path)
        assert answer.status_code == 404 and answer.mimetype == "text/html", path
        assert "Not found" in answer.text and 'href="/ui/"' in answer.text
    assert client.get("/studies/katib-like/nothing").mimetype == "application/json", "the API keeps its JSON"


def test_a_fields_repeated_ranges_filter_as_their_tightest_bounds_shown_as_one_range(client):
    """All ranges must hold, so a field's several ranges are one: the same trials, one test of
    each trial in SQL however often the field is repeated, and one row of the form."""
    repeated = "field=param:b&min=10&max=&field=param:b&min=20&max=100&field=param:b&min=&max=40"
    assert shown(client, f"sort=param:b&{repeated}") == shown(client, "sort=param:b&field=param:b&min=20&max=40")
    assert shown(client, f"sort=param:b&{repeated}") == ["32", "32"]
    page = client.get(f"{TABLE}?{'&'.join(['field=param:b&min=20&max='] * 170)}&field=duration&min=0&max=")
    assert page.status_code == 200, page.text
    assert page.text.count('<div class="range">') == 3, "param:b, duration, and the empty row to add one"
    assert re.findall(r'name="min"[^>]*value="([^"]*)"', page.text) == ["20.0", "0s", ""]


def test_ranges_on_more_fields_than_the_table_takes_at_once_are_refused_naming_field(client):
    names = [f"p{i}" for i in range(RANGED_FIELDS + 1)]
    definition = study_definition(
        name="wide", maxTrials=1, parallelism=1,
        parameters=[{"name": n, "type": "float", "min": 0, "max": 1} for n in names],
        trialTemplate={"command": [sys.executable, "-c", "print('loss=1')"],
                       "env": {n.upper(): f"${{trialParameters.{n}}}" for n in names}})
    assert client.post("/studies", json=definition).status_code == 201
    ranges = [f"field=param:{n}&min=0&max=1" for n in names]
    for path in ("/ui/studies/wide/trials", "/ui/studies/wide/trials.csv"):
        assert client.get(f"{path}?{'&'.join(ranges[:-1] * 3)}").status_code == 200, "repeats count once"
        answer = client.get(f"{path}?{'&'.join(ranges)}")
        assert answer.status_code == 400
        assert (f"field: expected ranges on at most {RANGED_FIELDS} fields at once, got {RANGED_FIELDS + 1}"
                in html.unescape(answer.text))


def test_page_and_size_are_plain_whole_numbers_as_the_api_takes_them(client):
    """Python's ``int`` takes ``1_0`` and full-width digits; the table takes what the API does."""
    for path in (TABLE, f"{TABLE}.csv"):
        for name, text in (("page", "1_0"), ("page", "\uff12"), ("page", " 2"), ("page", "+1"), ("size", "5_0"),
                           ("size", "\uff15\uff10"), ("size", "050"), ("size", " 50")):
            answer = client.get(path, query_string={name: text})
            assert answer.status_code == 400, (path, name, text)
            assert f"{name}: expected " in html.unescape(answer.text), (path, name, text)
        assert client.get(path, query_string={"page": "1", "size": "100"}).status_code == 200
        assert client.get(f"{path}?page=&size=").status_code == 200, "a blank field is the default"


def test_an_unknown_sort_or_range_field_is_refused_naming_the_fields_the_table_takes(client):
    for path in (TABLE, f"{TABLE}.csv"):
        answer = client.get(f"{path}?sort=param:nope")
        assert answer.status_code == 400
        assert ("sort: unknown trial field 'param:nope'; expected one of number, state, metric:loss, param:b, "
                "param:c, duration, startedAt, value, finishedAt") in html.unescape(answer.text)
        answer = client.get(f"{path}?field=hidden&min=1")
        assert answer.status_code == 400
        assert ("field: unknown trial field 'hidden'; expected one of number, metric:loss, param:b, duration, "
                "startedAt, value, finishedAt") in html.unescape(answer.text)


def test_an_argument_the_table_does_not_take_or_one_given_twice_is_refused_naming_it(client):
    """A misspelt filter would export every trial as if filtered; of two sorts, which one was
    meant is not the table's to guess. Repeated states and ranges are the table's own."""
    for path in (TABLE, f"{TABLE}.fragment", f"{TABLE}.csv"):
        answer = client.get(f"{path}?stat=COMPLETE")
        assert answer.status_code == 400, path
        assert ("stat: not an argument of the trial table, which takes state, field, min, max, pareto, sort, desc, "
                "page, size") in html.unescape(answer.text)
        answer = client.get(f"{path}?sort=number&sort=value")
        assert answer.status_code == 400 and "sort: given 2 times; expected it once" in html.unescape(answer.text)
        kept = client.get(f"{path}?state=COMPLETE&state=FAIL&field=param:b&min=1&field=param:b&max=99")
        assert kept.status_code == 200 and kept.text, html.unescape(kept.text)


def test_a_refusal_of_an_unknown_field_lists_a_wide_study_s_first_fields_only(client):
    names = [f"q{i}" for i in range(40)]
    definition = study_definition(
        name="wider", maxTrials=1, parallelism=1,
        parameters=[{"name": n, "type": "float", "min": 0, "max": 1} for n in names],
        trialTemplate={"command": [sys.executable, "-c", "print('loss=1')"],
                       "env": {n.upper(): f"${{trialParameters.{n}}}" for n in names}})
    assert client.post("/studies", json=definition).status_code == 201
    page = client.get("/ui/studies/wider/trials?sort=nope")
    assert page.status_code == 400
    text = html.unescape(re.search(r'<p id="filter-problem"[^>]*>(.*?)</p>', page.text, re.S).group(1))
    assert "expected one of number, state, metric:loss, param:q0, " in text
    assert "param:q16 and 27 more" in text and "param:q17" not in text


@pytest.mark.parametrize("refused", ["sort=bogus", "size=7", "state=NOPE", "page=0", "desc=1&page=x", "desc=yes"])
def test_a_refused_argument_alone_is_left_out_of_the_table_below_and_of_the_form(client, refused: str):
    """One bad argument outside the ranges keeps the valid states and ranges in the table, its
    links and its export, and is not written back into the form, so the next Apply is taken."""
    page = client.get(f"{TABLE}?{refused}&state=COMPLETE&field=param:b&min=20")
    assert page.status_code == 400
    exported = html.unescape(re.search(r'id="csv-link" href="([^"]*)"', page.text).group(1))
    kept = sorted(urllib.parse.parse_qsl(urllib.parse.urlsplit(exported).query, keep_blank_values=True))
    assert [pair for pair in kept if pair[0] in ("state", "field", "min")] == [
        ("field", "param:b"), ("min", "20"), ("state", "COMPLETE")]
    assert refused.rpartition("&")[2] not in exported
    assert re.findall(r'<input type="hidden" name="sort" value="([^"]*)">', page.text) == ["number"]


@pytest.mark.parametrize("order", ["yes", "descending", "2", "TRUE"])
def test_an_order_the_table_does_not_take_is_refused_naming_desc_not_taken_as_ascending(client, order: str):
    """``desc`` takes 1 or true, 0 or false: any other value was taken as ascending, and an
    export in the wrong order looked like the one asked for."""
    answer = client.get(f"{TABLE}.csv?sort=param:b&desc={order}")
    assert answer.status_code == 400
    assert answer.get_json()["message"] == f"desc: expected 1 or true (descending), 0 or false (ascending), got {order!r}"
    assert client.get(f"{TABLE}.csv?sort=param:b&desc=false").status_code == 200


def test_a_page_past_the_tables_last_leads_to_its_last_page_with_the_same_arguments(client):
    answer = client.get(f"{TABLE}?state=COMPLETE&size=25&page=9999")
    assert answer.status_code == 302
    target = urllib.parse.urlsplit(answer.headers["Location"])
    assert (target.path, urllib.parse.parse_qs(target.query)) == (TABLE, {"state": ["COMPLETE"], "size": ["25"],
                                                                          "page": ["1"]})
    assert client.get(f"{TABLE}?size=25&page=1").status_code == 200


@pytest.mark.parametrize("segment", ["%EF%BC%91", "%D9%A1", "-1", "abc"])
def test_a_trials_page_and_its_log_take_its_number_in_ascii_digits_as_the_api_does(client, segment: str):
    """werkzeug's ``int`` takes any Unicode digit, so ``１`` served trial 1's page under
    another address; the dashboard's trial paths read the number as the API's do."""
    for suffix in ("", "/log"):
        answer = client.get(f"{TABLE}/{segment}{suffix}")
        assert answer.status_code == 400, (segment, suffix)
        assert "number: expected a whole number from 0 to 9223372036854775807" in answer.get_data(as_text=True)
    assert client.get(f"{TABLE}/%EF%BC%91").mimetype == "text/html", "a page's refusal is the dashboard's error page"
    assert client.get(f"{TABLE}/1").status_code == 200


def test_the_best_trials_number_is_right_aligned_as_the_trial_tables_is(client):
    """The study page's best trials right-align their number under a right-aligned header
    (``num``), as the trial table does its ``number`` and both do a parameter of numbers (``b``);
    before, the best trials' number was left-aligned."""
    study = client.get("/ui/studies/katib-like").text
    best = study[study.index('<table class="grid compact" id="best">'):]
    best = best[:best.index("</table>")]
    assert re.search(r'<thead><tr><th class="num">trial</th>', best), best
    rows = re.findall(r"<tr><td( class=\"num\")?><a href=\"/ui/studies/katib-like/trials/\d+\">#\d+</a></td>", best)
    assert rows and set(rows) == {' class="num"'}, best
    assert '<th class="num">b</th>' in best and '<th>c</th>' in best
    table = client.get(TABLE).text
    assert re.search(r'<th data-field="number" class="num"', table)
    assert re.findall(r'<td class="num"><a href="/ui/studies/katib-like/trials/\d+">#\d+</a></td>', table)


def test_a_trial_its_studys_end_stopped_shows_stopped_apart_from_the_pruned_as_the_counts_say(tmp_path):
    """Both are stored ``PRUNED``: the table, the trial's page and the state its page polls say
    ``STOPPED`` for the one the study's end stopped, ``PRUNED`` for the one early stopping did."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        client = create_app(runtime).test_client()
        definition = study_definition(name="stops")
        store = runtime.store()
        store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "uid-1", created_at=1.0))
        for number in range(2):
            store.add_trial(TrialRecord("stops", number, {"x": 0.5}, RUNNING))
        store.update_trial("stops", 0, state=PRUNED, reason="pruned at step 2 by the median rule")
        store.update_trial("stops", 1, state=PRUNED, reason=f"{STOPPED_AT_END} (stopped by the user)")
        table = client.get("/ui/studies/stops/trials?sort=number").text
        assert re.findall(r'<span class="state (\w+)"[^>]*>(\w+)</span>', table) == [("PRUNED", "PRUNED"),
                                                                                     ("STOPPED", "STOPPED")]
        for number, state in ((0, "PRUNED"), (1, "STOPPED")):
            page = client.get(f"/ui/studies/stops/trials/{number}").text
            assert f'<span class="state {state}" id="trial-state">{state}</span>' in page
            assert client.get(f"/ui/studies/stops/trials/{number}/log").get_json()["state"] == state
        filtered = client.get("/ui/studies/stops/trials?state=PRUNED").text
        assert len(re.findall(r'<tr data-number="', filtered)) == 2, "the filter matches the stored state"
    finally:
        runtime.close()
