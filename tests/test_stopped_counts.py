"""A trial stopped because its study ended (stored ``PRUNED``, as Optuna has no other state for
it, its reason saying why) is counted ``stopped``, apart from the trials early stopping pruned,
wherever a study's counts are shown: the API's study and studies, as the OpenAPI document says,
``katuna show --json`` and ``katuna studies --json``, the dashboard's study summary and studies
table; each trial counted once, and ``?state=PRUNED`` still lists both, each export of a trial
saying ``STOPPED`` for the stopped one as the tables do. The listing of studies
reads the stopped ones only of a study that has pruned trials. Through the real app (Flask's test
client on a real Runtime and SQLite file) and the real CLI."""

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
from conftest import app_client, study_definition
from jsonschema import Draft202012Validator

from functions.adapters.sqlite_store import SqliteStore
from functions.adapters.web.openapi import document
from functions.cli import main
from functions.core.records import COMPLETE, FAIL, PRUNED, SHOWN_STOPPED, STOPPED_AT_END, StudyRecord, TrialRecord
from functions.core.validate import parse_study

COUNTS = {"complete": 2, "failed": 1, "pruned": 1, "stopped": 2, "running": 0, "waiting": 0}
"""The counts of study ``ended``: two of its three ``PRUNED`` trials stopped by its end."""

PLAIN = {"complete": 1, "failed": 0, "pruned": 0, "stopped": 0, "running": 0, "waiting": 0}
"""The counts of study ``plain``, none pruned."""


def _study(store: SqliteStore, folder: Path, name: str, trials: list[TrialRecord]) -> None:
    definition = study_definition(name=name, maxTrials=10)
    store.add_study(StudyRecord(parse_study(definition), definition, str(folder), f"uid-{name}", status="stopped",
                                reason="stopped by its user"))
    for trial in trials:
        store.add_trial(trial)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("stopped")
    store = SqliteStore(folder / "katuna.db")
    ended = f"{STOPPED_AT_END} (stopped by its user)"
    _study(store, folder, "ended", [
        TrialRecord("ended", 0, {"x": 0.1}, COMPLETE, values=[0.1], metrics={"loss": 0.1}),
        TrialRecord("ended", 1, {"x": 0.2}, COMPLETE, values=[0.2], metrics={"loss": 0.2}),
        TrialRecord("ended", 2, {"x": 0.3}, FAIL, reason="exited with code 1"),
        TrialRecord("ended", 3, {"x": 0.4}, PRUNED, reason="pruned at step 3 by the median rule"),
        TrialRecord("ended", 4, {"x": 0.5}, PRUNED, reason=ended),
        TrialRecord("ended", 5, {"x": 0.6}, PRUNED, reason=ended)])
    _study(store, folder, "plain", [TrialRecord("plain", 0, {"x": 0.1}, COMPLETE, values=[0.1], metrics={"loss": 0.1})])
    store.close()
    return folder / "katuna.db"


@pytest.fixture(scope="module")
def client(db: Path) -> Iterator:
    with app_client(db) as test_client:
        yield test_client


def test_the_apis_counts_tell_the_trials_the_studys_end_stopped_apart_as_documented(client):
    """``stopped`` beside ``pruned`` (the early-stopped alone), their sum the study's trials, in
    the study and in the studies listed, each as the OpenAPI document's ``Counts`` schema says;
    the trials listed ``?state=PRUNED`` are both (stored ``PRUNED``), the stopped ones ``STOPPED``."""
    study = client.get("/studies/ended").get_json()
    assert (study["counts"], study["trials"]) == (COUNTS, sum(COUNTS.values()))
    listed = {s["name"]: s["counts"] for s in client.get("/studies").get_json()}
    assert listed == {"ended": COUNTS, "plain": PLAIN}
    schema = document()["components"]["schemas"]["Counts"]
    assert schema["required"] == list(COUNTS) and schema["additionalProperties"] is False
    for counts in listed.values():
        assert not list(Draft202012Validator(schema).iter_errors(counts))
    pruned = client.get("/studies/ended/trials?state=PRUNED").get_json()
    assert [(t["number"], t["state"]) for t in pruned] == [(3, PRUNED), (4, SHOWN_STOPPED), (5, SHOWN_STOPPED)]


def test_katuna_show_and_studies_json_count_them_as_the_api_does(db: Path):
    shown = CliRunner().invoke(main, ["show", "ended", "--db", str(db), "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["counts"] == COUNTS
    listed = CliRunner().invoke(main, ["studies", "--db", str(db), "--json"])
    assert listed.exit_code == 0, listed.output
    assert [s["counts"] for s in json.loads(listed.stdout)] == [COUNTS, PLAIN]
    text = CliRunner().invoke(main, ["show", "ended", "--db", str(db)])
    assert "(complete 2, failed 1, pruned 1, stopped 2, running 0, waiting 0)" in " ".join(text.stdout.split())


def test_the_dashboards_summary_counts_them_stopped_and_its_studies_table_done(client):
    """The study's summary says ``2 stopped`` (a study with none says nothing of them), the page
    counts them among the trials that ended (what its charts follow), and the studies table
    among those done."""
    page = html.unescape(client.get("/ui/studies/ended").text)
    counts = re.search(r'<span id="trial-counts">([^<]*)</span>', page)
    assert counts is not None and " ".join(counts[1].split()) == \
        "6 of 10: 2 complete, 1 failed, 1 pruned, 2 stopped, 0 running, 0 waiting"
    assert 'data-finished="6"' in page
    plain = html.unescape(client.get("/ui/studies/plain").text)
    assert "1 of 10: 1 complete, 0 failed, 0 pruned, 0 running, 0 waiting" in " ".join(plain.split())
    table = " ".join(html.unescape(client.get("/ui/").text).split())
    assert re.search(r'data-study="ended">.*?5 done · 1 failed · 0 running of 10', table), table


def test_the_studies_listed_read_the_stopped_of_those_with_pruned_trials_alone(db: Path):
    """The count of trials stopped at the end is read through its index, once for the study with
    pruned trials and not for the other: no statement per study for studies that prune none."""
    statements: list[str] = []
    with app_client(db) as listing:
        store = listing.application.extensions["katuna"].store()  # the test client's thread's, the one it reads
        store.db.conn.set_trace_callback(statements.append)
        try:
            assert listing.get("/studies").status_code == 200
        finally:
            store.db.conn.set_trace_callback(None)
    assert len([s for s in statements if "trials_stopped_at_end" in s]) == 1, statements


def test_a_stopped_trials_page_heads_its_note_stopped_and_its_table_row_says_stopped(client):
    """Its note (the reason why) is headed ``Stopped``, an early-stopped one's ``Pruned``; the
    trial table's state column says ``STOPPED`` (its title naming the stored ``PRUNED``), while
    its state filter, as the API's ``?state=PRUNED``, goes by the stored state, and lists it
    among the pruned with its reason beside it."""
    assert "<h2>Stopped</h2>" in client.get("/ui/studies/ended/trials/4").text
    assert "<h2>Pruned</h2>" in client.get("/ui/studies/ended/trials/3").text
    table = html.unescape(client.get("/ui/studies/ended/trials?state=PRUNED").text)
    rows = re.findall(r'<span class="state (\w+)"[^>]*>\w+</span></td>.*?<td class="reason">([^<]*)</td>', table, re.S)
    assert [(state, reason.split(" (")[0]) for state, reason in rows] == \
        [(PRUNED, "pruned at step 3 by the median rule"), (SHOWN_STOPPED, STOPPED_AT_END),
         (SHOWN_STOPPED, STOPPED_AT_END)], rows


def test_every_export_of_a_trial_says_its_state_as_the_tables_do(client, db: Path):
    """The API's trials (listed and one by one), ``katuna trials --json`` and ``--csv``, and the
    dashboard's CSV say ``STOPPED`` for a trial its study's end stopped and ``PRUNED`` for the one
    early stopping pruned, as the trial tables do; each trial as the OpenAPI ``Trial`` schema says."""
    wanted = [(3, PRUNED), (4, SHOWN_STOPPED), (5, SHOWN_STOPPED)]
    listed = client.get("/studies/ended/trials?state=PRUNED").get_json()
    assert [(t["number"], t["state"]) for t in listed] == wanted
    assert [client.get(f"/studies/ended/trials/{n}").get_json()["state"] for n, _ in wanted] == [s for _, s in wanted]
    schema = {**document(), "$ref": "#/components/schemas/Trial"}
    for trial in listed:
        assert not list(Draft202012Validator(schema).iter_errors(trial)), trial
    as_json = CliRunner().invoke(main, ["trials", "ended", "--db", str(db), "--state", PRUNED, "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert [(t["number"], t["state"]) for t in json.loads(as_json.stdout)] == wanted
    as_csv = CliRunner().invoke(main, ["trials", "ended", "--db", str(db), "--state", PRUNED, "--csv"])
    assert as_csv.exit_code == 0, as_csv.output
    dashboard = client.get("/ui/studies/ended/trials.csv?state=PRUNED").text
    for text in (as_csv.stdout, dashboard):
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [(int(r["number"]), r["state"]) for r in rows] == wanted, text
