"""The Pareto front marked and filtered in every listing of a study's trials, through the real
app (Flask's test client on a real Runtime and a real SQLite file) and the real CLI: the API's
``GET /studies/{name}/trials?pareto=true``, the dashboard's trial table (its Pareto column and
its "on the front only" box), its CSV export (a ``pareto`` column) and ``katuna trials
--pareto``. Each is checked against a brute-force front of the stored trials; the front is the
one the process keeps, read again only where trials changed, never for each page. A study of
one objective has no front: the filter is refused naming ``pareto``."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import study_definition
from http_helpers import Service
from test_api_trial_filters import documented

from functions.adapters.web import create_app
from functions.cli import main
from functions.core.pareto import best_trials
from functions.core.records import COMPLETE, FAIL, RUNNING, Counts, StudyRecord, TrialRecord
from functions.core.resource_status import study_status
from functions.core.resources import Origin, Ref
from functions.core.validate import parse_study
from functions.runtime import Runtime
from functions.settings import Settings

TRIALS = 60
START = 1_700_000_000.0
TWO = {"metrics": [{"name": "loss", "direction": "minimize"}, {"name": "acc", "direction": "maximize"}]}


def trial(number: int, study: str = "mo", values: list[float] | None = None) -> TrialRecord:
    """Failed and running trials among completed ones, whose accuracy mostly rises with their
    loss (a front of many), and whose last repeats the values of trial 3 (a tie on the front)."""
    state = {0: FAIL, 1: RUNNING}.get(number % 10, COMPLETE)
    if values is None and state == COMPLETE:
        seed = 3 if number == TRIALS - 1 else number
        loss = seed * 37 % 23 / 10
        values = [loss, round(loss * 0.4 - seed * 7 % 5 / 25, 3)]
    metrics = {"loss": values[0], "acc": values[1]} if values else {}
    return TrialRecord(study, number, {"x": (number % 50) / 10 - 2.5}, state if values is None else COMPLETE,
                       values=values, metrics=metrics, started_at=START + number,
                       finished_at=None if state == RUNNING and values is None else START + number + 60)


def brute_front(trials: list[TrialRecord]) -> list[int]:
    """The completed trials no other is as good as on both objectives and better on one, by number."""
    done = [t for t in trials if t.state == COMPLETE]

    def beats(a: TrialRecord, b: TrialRecord) -> bool:
        (la, aa), (lb, ab) = a.values, b.values
        return la <= lb and aa >= ab and (la < lb or aa > ab)
    return sorted(t.number for t in done if not any(beats(o, t) for o in done))


EVERY = [trial(number) for number in range(TRIALS)]
FRONT = brute_front(EVERY)


def add_study(runtime: Runtime, name: str, objective: dict, trials: list[TrialRecord]) -> None:
    definition = study_definition(name=name, maxTrials=1000, objective=objective)
    store = runtime.store()
    store.add_study(StudyRecord(parse_study(definition), definition, ".", f"uid-{name}", status="running"))
    with store.transaction():
        for each in trials:
            store.add_trial(each)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[Runtime, object, Path]]:
    db = tmp_path / "katuna.db"
    runtime = Runtime(Settings(db=db))
    add_study(runtime, "mo", TWO, EVERY)
    add_study(runtime, "one", {"metric": "loss", "direction": "minimize"},
              [TrialRecord("one", n, {"x": 0.1 * n}, COMPLETE, values=[float(n)], metrics={"loss": float(n)},
                           started_at=START, finished_at=START + 1) for n in range(5)])
    try:
        yield runtime, create_app(runtime).test_client(), db
    finally:
        runtime.close()


def walk(client, query: str) -> list[int]:
    """The numbers of every trial the next links reach from the first page of ``query``."""
    numbers, path = [], f"/studies/mo/trials?{query}"
    while path:
        answer = client.get(path)
        numbers += [t["number"] for t in documented(answer)]
        found = re.fullmatch(r'<([^>]+)>; rel="next"', answer.headers.get("Link", ""))
        path = found.group(1) if found else None
    return numbers


def test_the_api_lists_the_front_alone_with_the_other_filters_and_orders_a_page_at_a_time(app):
    _, client, _ = app
    assert 8 < len(FRONT) < 45 and {3, TRIALS - 1} <= set(FRONT), "a front among failed, running and beaten trials"
    assert walk(client, "pareto=true") == FRONT
    assert walk(client, "pareto=1&limit=3") == FRONT, "the next links keep the filter and reach each once"
    assert walk(client, "pareto=false") == list(range(TRIALS))
    by_loss = sorted((t for t in EVERY if t.number in FRONT), key=lambda t: (t.values[0], t.number))
    assert walk(client, "pareto=true&order=metric:loss&limit=4") == [t.number for t in by_loss]
    assert walk(client, "pareto=true&field=metric:acc&min=0.5") == [
        t.number for t in EVERY if t.number in FRONT and t.values[1] >= 0.5]


def test_the_front_follows_the_trials_as_they_complete(app):
    runtime, client, _ = app
    assert walk(client, "pareto=true") == FRONT
    store = runtime.store()
    store.update_trial("mo", 1, state=COMPLETE, values=[0.0, 1.0], metrics={"loss": 0.0, "acc": 1.0},
                       finished_at=START + 99)
    assert walk(client, "pareto=true") == [1], "a trial better on both objectives than every other"
    store.add_trial(trial(TRIALS, values=[-1.0, 0.0]))
    assert walk(client, "pareto=true") == [1, TRIALS]


def test_the_front_is_not_computed_again_for_each_page(app):
    """Read once, the front is kept while no trial changes: the pages after the first read the
    study's trials marker and their own rows, no trial's values for the front."""
    runtime, client, _ = app
    first: list[str] = []
    runtime.store().db.conn.set_trace_callback(first.append)
    assert walk(client, "pareto=true") == FRONT
    assert [s for s in first if "trial_values NOT IN" in s], "the first page computes the front"
    statements: list[str] = []
    runtime.store().db.conn.set_trace_callback(statements.append)
    try:
        assert walk(client, "pareto=true&limit=2") == FRONT
    finally:
        runtime.store().db.conn.set_trace_callback(None)
    assert len([s for s in statements if "json_each" in s]) >= len(FRONT) // 2, "each page filtered in SQL"
    assert not [s for s in statements if "trial_values NOT IN" in s], "no page computed the front again"


@pytest.mark.parametrize(("study", "query", "message"), [
    ("one", "pareto=true", "pareto: needs several objectives: this study has one, 'loss', and no Pareto front; its "
                           "best trial is GET /studies/one/best (katuna best)"),
    ("mo", "pareto=yes", "pareto: expected true or 1 (the trials on the Pareto front alone), false or 0, got 'yes'"),
    ("mo", "pareto=true&pareto=false", "pareto: given 2 times; expected it once"),
])
def test_a_pareto_filter_the_listing_cannot_apply_is_a_400_naming_it(app, study: str, query: str, message: str):
    _, client, _ = app
    answer = client.get(f"/studies/{study}/trials?{query}")
    assert answer.status_code == 400
    body = documented(answer)
    assert body["error"] == "malformed_request" and body["message"] == message
    assert client.get(f"/studies/{study}/trials?pareto=false").status_code == 200
    described = client.get("/openapi.json").get_json()["paths"]["/studies/{name}/trials"]["get"]["responses"]["400"]
    assert "pareto is other than true, 1, false or 0, or asked of a study of one objective" in described[
        "description"], "the document says why the listing refuses pareto"


def table_rows(page: str) -> dict[int, str]:
    """Each row of a trial table's page by number, with its Pareto cell's text."""
    rows = re.findall(r'<tr data-number="(\d+)">(.*?)</tr>', page, re.S)
    return {int(number): "".join(re.findall(r'<td class="front" data-field="pareto">(.*?)</td>', row, re.S))
            for number, row in rows}


def test_the_dashboards_table_marks_the_front_and_keeps_it_alone_when_asked(app):
    _, client, _ = app
    page = client.get("/ui/studies/mo/trials?size=100")
    assert page.status_code == 200
    assert '<th data-field="pareto"' in page.text
    rows = table_rows(page.text)
    assert sorted(rows) == list(range(TRIALS))
    assert sorted(n for n, cell in rows.items() if "on-front" in cell) == FRONT
    assert f"on the front only ({len(FRONT)} trials)" in page.text
    assert '<input type="checkbox" name="pareto" value="1">' in page.text, "unticked"

    only = client.get("/ui/studies/mo/trials?size=25&pareto=1&sort=metric:loss")
    assert only.status_code == 200
    assert f"{len(FRONT)} trials match" in only.text
    shown = table_rows(only.text)
    assert set(shown) <= set(FRONT) and len(shown) == min(25, len(FRONT))
    assert all("on-front" in cell for cell in shown.values())
    assert '<input type="checkbox" name="pareto" value="1" checked>' in only.text
    sort_links = re.findall(r'<th data-field="[^"]+"[^>]*>\s*<a href="([^"]+)"', only.text)
    assert sort_links and all("pareto=1" in html.unescape(link) for link in sort_links), "sorting keeps the filter"
    fragment = client.get("/ui/studies/mo/trials.fragment?size=100&pareto=1")
    assert sorted(table_rows(fragment.text)) == FRONT


def test_a_study_of_one_objective_has_no_pareto_column_and_its_table_refuses_the_filter(app):
    _, client, _ = app
    page = client.get("/ui/studies/one/trials")
    assert page.status_code == 200 and 'data-field="pareto"' not in page.text and 'name="pareto"' not in page.text
    refused = client.get("/ui/studies/one/trials?pareto=1")
    assert refused.status_code == 400
    assert "Not applied: pareto: needs several objectives" in html.unescape(refused.text)
    assert len(table_rows(refused.text)) == 5, "the table below shows what it can without the filter"
    assert client.get("/ui/studies/one/trials.csv?pareto=1").status_code == 400
    header = next(csv.reader(io.StringIO(client.get("/ui/studies/one/trials.csv").text)))
    assert "pareto" not in header


def test_the_csv_export_says_of_each_trial_whether_it_is_on_the_front(app):
    _, client, _ = app
    answer = client.get("/ui/studies/mo/trials.csv")
    assert answer.status_code == 200
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert list(rows[0])[:4] == ["number", "state", "pareto", "loss"]
    assert {int(r["number"]): r["pareto"] for r in rows} == {
        n: "true" if n in FRONT else "false" for n in range(TRIALS)}
    only = list(csv.DictReader(io.StringIO(client.get("/ui/studies/mo/trials.csv?pareto=1&sort=number&desc=1").text)))
    assert [int(r["number"]) for r in only] == FRONT[::-1] and {r["pareto"] for r in only} == {"true"}


def test_katuna_trials_lists_the_front_alone_with_pareto(app):
    runtime, client, db = app
    result = CliRunner().invoke(main, ["trials", "mo", "--db", str(db), "--json", "--pareto"])
    assert result.exit_code == 0, result.output
    assert [t["number"] for t in json.loads(result.output)] == FRONT == walk(client, "pareto=true")
    table = CliRunner().invoke(main, ["trials", "mo", "--db", str(db), "--pareto", "--order", "metric:loss:desc"])
    assert table.exit_code == 0, table.output
    refused = CliRunner().invoke(main, ["trials", "one", "--db", str(db), "--pareto"])
    assert refused.exit_code == 2
    assert "'--pareto'" in refused.output and "needs several objectives" in refused.output


def test_every_json_of_a_multi_objective_studys_trials_says_whether_each_is_on_the_front(app):
    """The API's listing, its best trials and a trial of its own, ``katuna trials --json``,
    ``best --json`` and ``show --json`` mark each trial as the table and the CSV export do; a
    study of one objective, which has no front, has no such field."""
    _, client, db = app
    marks = {n: n in FRONT for n in range(TRIALS)}
    listed = documented(client.get("/studies/mo/trials?limit=1000"))
    assert {t["number"]: t["pareto"] for t in listed} == marks
    assert {t["number"]: t["pareto"] for t in client.get("/studies/mo/best").get_json()} == {n: True for n in FRONT}
    assert [client.get(f"/studies/mo/trials/{n}").get_json()["pareto"] for n in (FRONT[0], 0, 1)] == [True, False,
                                                                                                    False]
    assert {t["pareto"] for t in client.get("/studies/mo").get_json()["best"]} == {True}
    cli = {args[0]: CliRunner().invoke(main, [*args, "--db", str(db), "--json"]) for args in
           (("trials", "mo"), ("best", "mo"), ("show", "mo"))}
    assert {t["number"]: t["pareto"] for t in json.loads(cli["trials"].stdout)} == marks
    assert {t["number"]: t["pareto"] for t in json.loads(cli["best"].stdout)} == {n: True for n in FRONT}
    assert {t["pareto"] for t in json.loads(cli["show"].stdout)["best"]} == {True}
    one = [*client.get("/studies/one/trials").get_json(), *client.get("/studies/one/best").get_json(),
           client.get("/studies/one/trials/2").get_json(),
           *json.loads(CliRunner().invoke(main, ["trials", "one", "--db", str(db), "--json"]).stdout)]
    assert one and not [t for t in one if "pareto" in t]
    schema = client.get("/openapi.json").get_json()["components"]["schemas"]["Trial"]["properties"]
    assert schema["pareto"]["type"] == "boolean"


def table_numbers(text: str) -> list[int]:
    """The trial numbers of a CLI table's rows, in their order (its first column)."""
    return [int(found) for found in re.findall(r"^\s*(\d+)\s", text, re.M)]


def test_every_view_lists_the_front_by_number(app):
    """One order wherever the front is listed, whole or as a sample spread along it: by number,
    as ``GET /studies/{name}/best`` pages it (the front's order by loss is another here)."""
    runtime, client, db = app
    assert sorted(FRONT, key=lambda n: (EVERY[n].values[0], n)) != FRONT
    assert [t["number"] for t in client.get("/studies/mo/best").get_json()] == FRONT
    assert [t["number"] for t in client.get("/studies/mo").get_json()["best"]] == FRONT
    listed = [t for t in client.get("/studies").get_json() if t["name"] == "mo"]
    assert [t["number"] for t in listed[0]["best"]] == FRONT
    assert walk(client, "pareto=true") == FRONT
    best = json.loads(CliRunner().invoke(main, ["best", "mo", "--db", str(db), "--json"]).stdout)
    shown = json.loads(CliRunner().invoke(main, ["show", "mo", "--db", str(db), "--json"]).stdout)
    assert [t["number"] for t in best] == [t["number"] for t in shown["best"]] == FRONT
    for args in (("best", "mo"), ("show", "mo"), ("trials", "mo", "--pareto")):
        result = CliRunner().invoke(main, [*args, "--db", str(db)], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert table_numbers(result.output.split("Pareto front", 1)[-1]) == FRONT, args
    page = client.get("/ui/studies/mo").text
    box = page.split('id="best"', 1)[1].split("</table>", 1)[0]
    assert [int(n) for n in re.findall(r'>#(\d+)</a>', box)] == FRONT
    store = runtime.store()
    record = store.get_study("mo")
    status = study_status(record, Counts(complete=len(FRONT)), best_trials(store, record),
                          Origin(Ref("Study", "team", "mo"), "uid-mo", 1))
    assert [t["trialNumber"] for t in status["paretoFront"]] == FRONT


def test_the_served_trial_page_says_whether_the_trial_is_on_the_front(tmp_path: Path):
    """Through ``katuna serve`` (gunicorn): a trial's page of a multi-objective study says whether
    it is on the front, as its JSON does, and links the front; a study of one objective's says
    nothing of a front."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    add_study(runtime, "mo", TWO, EVERY)
    add_study(runtime, "one", {"metric": "loss", "direction": "minimize"},
              [TrialRecord("one", 0, {"x": 0.1}, COMPLETE, values=[1.0], metrics={"loss": 1.0})])
    runtime.close()
    service = Service(tmp_path, workers=1)
    try:
        for number, said in ((FRONT[0], "on it"), (0, "not on it")):
            status, _, page = service.request("GET", f"/ui/studies/mo/trials/{number}")
            shown = re.search(r'<dd id="trial-pareto">(.*?)</dd>', page.decode(), re.S)
            assert status == 200 and shown and shown.group(1).startswith(said), page.decode()[:2000]
            assert service.json("GET", f"/studies/mo/trials/{number}")[1]["pareto"] is (said == "on it")
        assert "/ui/studies/mo/trials?pareto=1" in service.request("GET", f"/ui/studies/mo/trials/{FRONT[0]}")[2].decode()
        status, _, page = service.request("GET", "/ui/studies/one/trials/0")
        assert status == 200 and b"trial-pareto" not in page
    finally:
        service.close()
