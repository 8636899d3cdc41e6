"""``GET /studies/{name}/trials`` filtered and ordered as the dashboard's trial table filters
(the same parsing: :mod:`functions.core.trial_filters`), through the real app (Flask's test
client on a real Runtime and a real SQLite file): by state (repeated or a comma list), by ranges
on parameters, metrics, the objective's value and the duration (with units), by a categorical
parameter's values, ordered by a field either way, a page at a time whose next links keep the
filters and reach every match once, in order, whatever changed between pages. Each answer, a
refusal naming its parameter included, is checked against the OpenAPI document; ``katuna
trials`` takes the same filters as options."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import referencing.jsonschema
from click.testing import CliRunner
from conftest import app_client, study_definition
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from functions.adapters.web.openapi import document
from functions.cli import main
from functions.core.errors import MalformedRequest
from functions.core.query_args import Arguments
from functions.core.records import COMPLETE, FAIL, PRUNED, RUNNING, StudyRecord, TrialRecord
from functions.core.trial_listing import parse_listing
from functions.core.validate import parse_study
from functions.runtime import Runtime
from functions.settings import Settings

TRIALS = 300
START = 1_700_000_000.0
OPTIONS = ["adam", "sgd", "rms"]
DOCUMENT = document()
REGISTRY = Registry().with_resource("urn:katuna", Resource.from_contents(
    DOCUMENT, default_specification=referencing.jsonschema.DRAFT202012))
PATH = "/studies/{name}/trials"


def state_of(number: int) -> str:
    return {0: FAIL, 1: RUNNING, 2: PRUNED}.get(number % 10, COMPLETE)


def trial(number: int) -> TrialRecord:
    """Values that repeat (ties, broken by number), trials without a value or a duration, and
    durations from 0 to 6 minutes."""
    state = state_of(number)
    value = (number * 37 % 101) / 10 if state == COMPLETE else None
    metrics = ({"loss": value} if value is not None else {}) | ({} if state == RUNNING else {"acc": number / TRIALS})
    return TrialRecord("big", number, {"x": (number % 50) / 10 - 2.5, "opt": OPTIONS[number % 3]}, state,
                       values=None if value is None else [value], metrics=metrics, started_at=START + number,
                       finished_at=None if state == RUNNING else START + number + (number % 7) * 60)


EVERY = [trial(number) for number in range(TRIALS)]


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("filters")
    runtime = Runtime(Settings(db=base / "katuna.db"))
    definition = study_definition(name="big", maxTrials=TRIALS + 100, parameters=[
        {"name": "x", "type": "float", "min": -5.0, "max": 5.0},
        {"name": "opt", "type": "categorical", "values": OPTIONS}],
        trialTemplate={"command": ["train", "${trialParameters.x}", "${trialParameters.opt}"]})
    store = runtime.store()
    store.add_study(StudyRecord(parse_study(definition), definition, str(base), "uid-big", status="completed"))
    with store.transaction():
        for each in EVERY:
            store.add_trial(each)
    runtime.close()
    return base / "katuna.db"


@pytest.fixture(scope="module")
def client(db: Path) -> Iterator:
    with app_client(db) as served:
        yield served


def documented(answer) -> Any:
    """The answer's body, once its status and body are checked against the OpenAPI document."""
    responses = DOCUMENT["paths"][PATH]["get"]["responses"]
    assert str(answer.status_code) in responses, answer.get_data(as_text=True)
    schema = responses[str(answer.status_code)]["content"]["application/json"]["schema"]
    resolved = json.loads(json.dumps(schema).replace('"#/components', '"urn:katuna#/components'))
    body = answer.get_json()
    assert not [e.message for e in Draft202012Validator(resolved, registry=REGISTRY).iter_errors(body)]
    return body


def walk(client, query: str) -> tuple[list[int], list[str]]:
    """The numbers of every trial the next links reach from the first page of ``query``, and each link."""
    numbers, links, path = [], [], f"/studies/big/trials?{query}"
    while path:
        answer = client.get(path)
        numbers += [t["number"] for t in documented(answer)]
        found = re.fullmatch(r'<([^>]+)>; rel="next"', answer.headers.get("Link", ""))
        path = found.group(1) if found else None
        links += [path] if path else []
    return numbers, links


def listed(client, query: str) -> list[int]:
    return walk(client, f"limit=10000&{query}")[0]


def duration(each: TrialRecord) -> float | None:
    return None if each.finished_at is None else each.finished_at - each.started_at


@pytest.mark.parametrize("query", ["state=COMPLETE,PRUNED", "state=COMPLETE&state=PRUNED",
                                   "state=PRUNED&state=COMPLETE,PRUNED", "state=+COMPLETE+,PRUNED,"])
def test_states_are_kept_repeated_or_as_a_comma_list(client, query: str):
    assert listed(client, query) == [t.number for t in EVERY if t.state in (COMPLETE, PRUNED)]


def test_ranges_and_a_categorical_parameters_values_filter_together_as_the_dashboard_does(client):
    assert listed(client, "field=param:x&min=-1&max=0.5") == [t.number for t in EVERY if -1 <= t.params["x"] <= 0.5]
    assert listed(client, "param:opt=adam&param:opt=rms") == [t.number for t in EVERY if t.params["opt"] != "sgd"]
    assert listed(client, "field=metric:loss&min=&max=2") == [t.number for t in EVERY if (t.metrics.get("loss") or 9) <= 2]
    assert listed(client, "field=value&min=9.5&max=") == [t.number for t in EVERY if t.values and t.values[0] >= 9.5]
    assert listed(client, "field=duration&min=90s&max=5m") == [
        t.number for t in EVERY if duration(t) is not None and 90 <= duration(t) <= 300]
    both = "state=COMPLETE&field=param:x&field=duration&min=0&min=1m&max=&max=&param:opt=sgd"
    assert listed(client, both) == [t.number for t in EVERY if t.state == COMPLETE and t.params["x"] >= 0
                                    and duration(t) >= 60 and t.params["opt"] == "sgd"]


def in_order(field: str, descending: bool, kept: list[TrialRecord]) -> list[int]:
    """The numbers of ``kept`` in the order by ``field``, those without a value last by number."""
    value = {"value": lambda t: t.values[0] if t.values else None, "duration": duration,
             "number": lambda t: t.number, "metric:loss": lambda t: t.metrics.get("loss"),
             "param:x": lambda t: t.params["x"]}[field]
    having = sorted((t for t in kept if value(t) is not None), key=lambda t: (value(t), t.number), reverse=descending)
    return [t.number for t in having] + sorted((t.number for t in kept if value(t) is None), reverse=descending)


@pytest.mark.parametrize("order", ["value", "value:desc", "duration", "duration:desc", "number:desc", "metric:loss:desc",
                                   "param:x:desc", "number"])
def test_each_order_pages_through_every_match_once_its_links_keeping_the_filters(client, order: str):
    field, _, direction = order.rpartition(":") if order.endswith(("asc", "desc")) else (order, "", "")
    kept = [t for t in EVERY if t.state != PRUNED and t.params["opt"] != "rms"]
    numbers, links = walk(client, f"order={order}&limit=7&state=COMPLETE,FAIL,RUNNING&param:opt=adam&param:opt=sgd")
    assert numbers == in_order(field, direction == "desc", kept)
    assert len(links) == (len(kept) - 1) // 7
    assert all("state=COMPLETE%2CFAIL%2CRUNNING&param%3Aopt=adam&param%3Aopt=sgd" in link for link in links)


def test_a_page_goes_on_after_its_last_trials_key_whatever_changed_since(client):
    """The key holds the last trial's value: that trial gaining another moves no page (it comes
    again where its new value puts it), and trials added meanwhile take their places in the order."""
    store = client.application.extensions["katuna"].store()
    first = client.get("/studies/big/trials?order=value:desc&state=COMPLETE&limit=5")
    numbers = [t["number"] for t in first.get_json()]
    last = EVERY[numbers[-1]]
    link = re.fullmatch(r'<([^>]+)>; rel="next"', first.headers["Link"]).group(1)
    assert link.endswith(f"after={last.values[0]!r}~{last.number}")
    added = [TrialRecord("big", TRIALS, {"x": 0.0, "opt": "adam"}, COMPLETE, values=[100.0]),
             TrialRecord("big", TRIALS + 1, {"x": 0.0, "opt": "adam"}, COMPLETE, values=[0.05])]
    try:
        with store.transaction():
            store.update_trial("big", last.number, values=[-1.0])
            for each in added:
                store.add_trial(each)
        rest, _ = walk(client, link.split("?", 1)[1])
    finally:
        with store.transaction():
            store.update_trial("big", last.number, values=last.values)
            for each in added:
                store.discard_trial("big", each.number)
    assert numbers == in_order("value", True, [t for t in EVERY if t.state == COMPLETE])[:5]
    now = [replace(t, values=[-1.0]) if t is last else t for t in EVERY if t.state == COMPLETE] + added
    after_key = [t for t in now if (t.values[0], t.number) < (last.values[0], last.number)]
    assert rest == in_order("value", True, after_key)
    assert rest[-2:] == [TRIALS + 1, last.number] and TRIALS not in rest


@pytest.mark.parametrize(("query", "message"), [
    ("state=DONE", "state: expected one of WAITING, RUNNING, COMPLETE, FAIL, PRUNED, got 'DONE'"),
    ("state=COMPLETE,failed", "state: expected one of WAITING, RUNNING, COMPLETE, FAIL, PRUNED, got 'failed'"),
    ("state=STOPPED", "state: expected one of WAITING, RUNNING, COMPLETE, FAIL, PRUNED, got 'STOPPED': a trial shown "
                      "STOPPED (stopped as its study ended) is stored PRUNED, the state that lists it, with the trials "
                      "early stopping pruned"),
    ("field=param:y&min=1", "field: unknown trial field 'param:y'; expected one of number, metric:loss, param:x, "),
    ("param:x=1", "param:x: its values are numbers, which a min/max range filters (field param:x)"),
    ("param:y=1", "param:y: not a categorical parameter of the study; expected param:opt"),
    ("param:opt=nadam", "param:opt: expected one of its values, 'adam', 'sgd', 'rms'; got 'nadam'"),
    ("field=param:x&min=2&max=1", "min of x: expected at most its max, 1.0, got 2.0 (no trial could match)"),
    ("field=duration&min=5m&max=90s", "min of duration: expected at most its max, 90s, got 300s"),
    ("field=metric:loss&min=abc", "min of loss: expected a number, got 'abc'"),
    ("field=param:x&field=value&max=1", "max: given 1 times for 2 field values; expected it once per field"),
    ("max=1", "field: a range has a bound but no field"),
    ("field=param:opt&min=1", "field: 'param:opt' takes labels, not numbers"),
    ("order=opt", "order: unknown trial field 'opt'; expected a field whose values are numbers"),
    ("order=param:opt", "order: unknown trial field 'param:opt'"),
    ("order=value:down", "order: expected value alone or followed by :asc or :desc, got 'value:down'"),
    ("order=metric:loss:up", "order: expected metric:loss alone or followed by :asc or :desc, got 'metric:loss:up'"),
    ("order=:up", "order: no field before ':up'; expected a field whose values are numbers, optionally followed by "
                  ":asc or :desc: one of number, "),
    ("order=:desc", "order: no field before ':desc'; expected a field whose values are numbers"),
    ("order=value&order=number", "order: given 2 times; expected it once"),
    ("after=0.5~3", "after: expected a whole number from 0 to"),
    ("order=value&after=3", "after: expected the key of a trial as the next link gives it, its value and number"),
    ("order=value&after=NaN~3", "after: expected the key of a trial"),
    ("order=value&after=[1]~3", "after: expected the key of a trial"),
    ("order=value&after=1~-3", "after: expected the key of a trial"),
    ("offset=5", "offset: not a parameter of this listing, which takes limit, state, field, min, max, pareto, order, after"),
    ("sort=value", "sort: not a parameter of this listing"),
    ("limit=0", "limit: expected a whole number from 1 to 10000"),
])
def test_a_filter_or_order_the_listing_cannot_apply_is_a_400_naming_its_parameter(client, query: str, message: str):
    answer = client.get(f"/studies/big/trials?{query}")
    assert answer.status_code == 400
    body = documented(answer)
    assert body["error"] == "malformed_request" and message in body["message"], body["message"]


def test_a_missing_study_is_a_404_and_a_misspelt_parameter_a_400_before_it(client):
    assert client.get("/studies/nosuch/trials?state=COMPLETE").status_code == 404
    assert client.get("/studies/nosuch/trials?stat=COMPLETE").status_code == 400


def test_a_filtered_ordered_page_is_one_statement_that_reads_its_page_alone(client):
    """Filtered and ordered in SQL, no count, at most ``limit + 1`` rows read of 300 (besides
    the listing's version for its ETag, read from the trials' change marker alone)."""
    store = client.application.extensions["katuna"].store()
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    try:
        answer = client.get("/studies/big/trials?state=COMPLETE&field=param:x&min=0&param:opt=adam&order=value&limit=3")
    finally:
        store.db.conn.set_trace_callback(None)
    assert answer.status_code == 200 and len(answer.get_json()) == 3
    version = [s for s in statements if "FROM trials" in s and "max(changed)" in s]
    reads = [s for s in statements if "FROM trials" in s and s not in version]
    assert len(version) == 1 and "ORDER BY" not in version[0], version
    assert len(reads) == 1 and "state IN ('COMPLETE')" in reads[0] and reads[0].endswith("LIMIT 4"), reads


def test_katuna_trials_takes_the_same_filters_and_order_as_options(client, db: Path):
    options = ["--state", "COMPLETE,FAIL", "--min", "param:x", "-1", "--max", "duration", "5m", "--param", "opt=sgd",
               "--order", "value:desc"]
    result = CliRunner().invoke(main, ["trials", "big", "--db", str(db), "--json", *options])
    assert result.exit_code == 0, result.output
    api = listed(client, "state=COMPLETE,FAIL&field=param:x&field=duration&min=-1&min=&max=&max=5m&param:opt=sgd"
                         "&order=value:desc")
    assert [t["number"] for t in json.loads(result.output)] == api and api
    key = client.get("/studies/big/trials?order=value:desc&state=COMPLETE&limit=4").headers["Link"].split("after=")[1]
    paged = CliRunner().invoke(main, ["trials", "big", "--db", str(db), "--json", "--order", "value:desc",
                                      "--state", "COMPLETE", "--after", key.split(">")[0].replace("%7E", "~"),
                                      "--limit", "2"])
    assert [t["number"] for t in json.loads(paged.stdout)] == in_order(
        "value", True, [t for t in EVERY if t.state == COMPLETE])[4:6]


@pytest.mark.parametrize(("options", "named"), [
    (("--state", "DONE"), "'--state'"), (("--min", "param:nope", "1"), "'--min/--max'"),
    (("--max", "param:x", "a"), "'--max'"), (("--param", "opt"), "'--param'"), (("--param", "opt=x"), "'--param'"),
    (("--order", "nope"), "'--order'"), (("--order", "value", "--after", "3"), "'--after'"),
])
def test_katuna_trials_refuses_a_filter_naming_its_option(db: Path, options: tuple[str, ...], named: str):
    result = CliRunner().invoke(main, ["trials", "big", "--db", str(db), *options])
    assert result.exit_code == 2 and f"Invalid value for {named}" in result.output, result.output


@pytest.mark.parametrize(("options", "message"), [
    (("--state", "DONE"), "'--state': expected one of WAITING, RUNNING, COMPLETE, FAIL, PRUNED, got 'DONE'"),
    (("--order", ":up"), "'--order': no field before ':up'; expected a field whose values are numbers"),
    (("--order", "value:down"), "'--order': expected value alone or followed by :asc or :desc, got 'value:down'"),
    (("--min", "x", "1"), "'--min/--max': unknown trial field 'x'; expected one of number, "),
    (("--param", "x=1"), "'--param': x: its values are numbers, which --min/--max param:x filters; --param takes a "
                         "categorical parameter's values"),
    (("--param", "y=1"), "'--param': y: not a categorical parameter of the study; expected opt"),
    (("--param", "opt=nadam"), "'--param': opt: expected one of its values, 'adam', 'sgd', 'rms'; got 'nadam'"),
    (("--param", "=adam"), "'--param': expected NAME=VALUE, a categorical parameter's NAME and one of its values, "
                           "got '=adam'"),
])
def test_katuna_trials_says_what_its_option_expected_in_the_options_words(db: Path, options: tuple[str, ...],
                                                                          message: str):
    """A refusal names the option once, and a parameter as ``--param`` takes it (its name alone)."""
    result = CliRunner().invoke(main, ["trials", "big", "--db", str(db), *options])
    assert result.exit_code == 2 and f"Error: Invalid value for {message}" in result.output, result.output


def test_a_categorical_filter_of_a_study_without_one_says_it_has_none():
    spec = parse_study(study_definition())
    with pytest.raises(MalformedRequest) as refused:
        parse_listing(spec, Arguments([("param:x", "1")]))
    assert str(refused.value) == ("param:x: its values are numbers, which a min/max range filters (field param:x); "
                                  "param:<name> takes a categorical parameter's values")
    with pytest.raises(MalformedRequest) as refused:
        parse_listing(spec, Arguments([("param:kind", "a")]))
    assert str(refused.value) == "param:kind: not a categorical parameter of the study, which has none"


def test_the_dashboards_table_takes_a_comma_list_of_states_and_refuses_a_min_above_its_max(client):
    table = client.get("/ui/studies/big/trials?state=COMPLETE,PRUNED&size=500")
    assert table.status_code == 200 and f"{sum(t.state in (COMPLETE, PRUNED) for t in EVERY)} trials match" in table.text
    refused = client.get("/ui/studies/big/trials?field=param:x&min=2&max=1")
    assert refused.status_code == 400 and "min of x: expected at most its max, 1.0, got 2.0" in refused.text


NAMED = {"α": [0.75, 0.25, 0.5, None], "a\\b": [1, 3, 2, 4], "学习率": ["16", "64", "32", "16"],
         "优化器": ["adam", "sgd", "adam", "sgd"]}
"""Parameters whose names JSON writes escaped (past ASCII, a backslash), each trial's value (a
float, an int, a discrete parameter's numbers as Katib writes them, a categorical's labels)."""


def test_parameters_named_past_ascii_or_with_a_backslash_filter_and_order_as_any_other(tmp_path: Path):
    """Their trials are stored with the names escaped (``"\\u03b1"``): read by a path, ``$."α"``,
    no trial had a value, so a range or a label kept none and an order put all of them last."""
    definition = study_definition(name="named", maxTrials=10, parameters=[
        {"name": "α", "type": "float", "min": 0.0, "max": 1.0}, {"name": "a\\b", "type": "int", "min": 0, "max": 9},
        {"name": "学习率", "type": "discrete", "values": [16, 32, 64]},
        {"name": "优化器", "type": "categorical", "values": ["adam", "sgd"]}],
        trialTemplate={"command": ["train", *(f"${{trialParameters.{name}}}" for name in NAMED)]})
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    store = runtime.store()
    store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "uid-named", status="completed"))
    with store.transaction():
        for number in range(4):
            params = {name: values[number] for name, values in NAMED.items() if values[number] is not None}
            store.add_trial(TrialRecord("named", number, params, COMPLETE, values=[number], started_at=START,
                                        finished_at=START + 1))
    runtime.close()
    with app_client(tmp_path / "katuna.db") as served:
        def numbers(query: str) -> list[int]:
            answer = served.get(f"/studies/named/trials?{query}")
            assert answer.status_code == 200, answer.get_json()
            return [t["number"] for t in answer.get_json()]

        assert numbers("field=param:%CE%B1&min=0.4") == [0, 2]
        assert numbers("order=param:%CE%B1") == [1, 2, 0, 3]
        assert numbers("field=param:a%5Cb&min=2&max=3") == [1, 2]
        assert numbers("order=param:a%5Cb:desc") == [3, 1, 2, 0]
        assert numbers("order=param:%E5%AD%A6%E4%B9%A0%E7%8E%87&field=param:%E5%AD%A6%E4%B9%A0%E7%8E%87&min=20") == \
            [2, 1]
        assert numbers("param:%E4%BC%98%E5%8C%96%E5%99%A8=sgd") == [1, 3]


@pytest.mark.parametrize("state", ["", " ", ",", "COMPLETE", " COMPLETE ,PRUNED,", "COMPLETE,,FAIL", "DONE",
                                   "complete", "COMPLETE;FAIL", "COMPLETE FAIL", "COMPLETED"])
def test_the_documents_pattern_for_state_takes_what_the_listing_takes_and_no_more(client, state: str):
    """A blank state is left out, as a form sends its empty fields: the document says so too,
    where a client that checks its requests against it would refuse one the listing takes."""
    (parameter,) = [p for p in DOCUMENT["paths"][PATH]["parameters"] if p.get("name") == "state"]
    pattern = parameter["schema"]["items"]["pattern"]
    answer = client.get("/studies/big/trials", query_string={"state": state, "limit": "1"})
    assert answer.status_code in (200, 400), answer.get_data(as_text=True)
    assert (answer.status_code == 200) == bool(re.search(pattern, state)), answer.get_data(as_text=True)
