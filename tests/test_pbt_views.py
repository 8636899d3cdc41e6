"""What a study of population-based training shows of its trials' lineage: ``katuna trials``
gives each trial's generation and parent in columns of their own, ``katuna show`` how far the
population has come, and the dashboard's trial table and trial page the generation and the
parent, as a link to the parent's page; the CSV export too. Other studies show none of it."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import app_client, study_definition
from http_helpers import run_katuna
from rich.console import Console

from functions.adapters.sqlite_store import SqliteStore
from functions.cli_trial_table import trial_table
from functions.core import pbt
from functions.core.records import COMPLETE, FAIL, RUNNING, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.core.views import population_view

SETTINGS = {"suggestion_trial_dir": "/ckpt", "n_population": 5, "truncation_threshold": 0.2}
LINEAGE = [(0, None, COMPLETE), (0, None, COMPLETE), (0, None, FAIL), (0, None, COMPLETE), (0, None, COMPLETE),
           (0, None, COMPLETE), (1, 3, COMPLETE), (1, 0, RUNNING), (1, 1, FAIL)]
"""Generation, parent and state of each trial, by number."""


def record(name: str, algorithm: str) -> StudyRecord:
    """A running study whose trials run on a cluster, which the service under test leaves to the
    cluster's: one it ran itself it would resume, running trials over the stored ones."""
    settings = {"settings": SETTINGS} if algorithm == pbt.NAME else {}
    definition = study_definition(name=name, algorithm={"name": algorithm, "seed": 1, **settings}, maxTrials=20)
    now = time.time()
    return StudyRecord(parse_study(definition), definition, ".", f"uid-{name}", status="running", created_at=now,
                       started_at=now, runs_on="kubernetes")


def trials(name: str, pbt_study: bool) -> list[TrialRecord]:
    return [TrialRecord(name, number, {"x": 0.5 + number}, state, values=[1.0 + number] if state == COMPLETE else None,
                        metrics={"loss": 1.0 + number} if state == COMPLETE else {},
                        generation=generation if pbt_study else None, parent=parent if pbt_study else None)
            for number, (generation, parent, state) in enumerate(LINEAGE)]


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pbt-views") / "katuna.db"
    store = SqliteStore(path)
    for name, algorithm in (("population", pbt.NAME), ("drawn", "random")):
        store.add_study(record(name, algorithm))
        for trial in trials(name, algorithm == pbt.NAME):
            store.add_trial(trial)
    store.close()
    return path


@pytest.fixture(scope="module")
def client(db: Path) -> Iterator:
    with app_client(db) as served:
        yield served


def printed(name: str, algorithm: str) -> str:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(trial_table(record(name, algorithm), trials(name, algorithm == pbt.NAME)))
    return console.file.getvalue()


def test_katuna_trials_gives_a_pbt_study_generation_and_parent_columns():
    lines = printed("population", pbt.NAME).splitlines()
    assert lines[1].split()[:4] == ["trial", "state", "generation", "parent"]
    assert lines[3].split()[:3] == ["0", "COMPLETE", "0"] and lines[3].split()[3] != "None"
    assert lines[9].split()[:4] == ["6", "COMPLETE", "1", "3"]
    other = printed("drawn", "random")
    assert "generation" not in other and "parent" not in other


def test_the_api_gives_how_far_the_population_has_come(client):
    """GET /studies/{name} gives the newest generation, its trials asked for and succeeded, and
    n_population, as katuna show and the dashboard's study page word them; null for another study."""
    assert client.get("/studies/population").json["population"] == {"generation": 1, "trials": 3, "succeeded": 1,
                                                                      "size": 5}
    assert client.get("/studies/drawn").json["population"] is None
    listed = {view["name"]: view for view in client.get("/studies").json}
    assert listed["population"]["population"]["generation"] == 1


def test_the_dashboards_study_page_says_how_far_the_population_has_come(client):
    page = client.get("/ui/studies/population").text
    assert '<dd id="population">generation 1: 1 of its 3 trials succeeded' in page
    assert "(5 succeeded start generation 2)" in page
    assert 'id="population"' not in client.get("/ui/studies/drawn").text


def test_a_population_with_no_trial_yet_is_at_generation_0(tmp_path: Path):
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        fresh = store.add_study(record("fresh", pbt.NAME))
        assert population_view(store, fresh) == {"generation": 0, "trials": 0, "succeeded": 0, "size": 5}
    finally:
        store.close()


def test_katuna_show_says_how_far_the_population_has_come(db: Path):
    wide = {**os.environ, "COLUMNS": "200"}
    shown = run_katuna("show", "population", "--db", str(db), cwd=db.parent, env=wide)
    assert shown.returncode == 0, shown.stderr
    assert "population: generation 1, 1 of its 3 trials succeeded (5 succeeded start generation 2)" in shown.stdout
    other = run_katuna("show", "drawn", "--db", str(db), cwd=db.parent, env=wide)
    assert other.returncode == 0 and "population" not in other.stdout


def test_the_dashboards_trial_table_links_each_trial_to_its_parent(client):
    page = client.get("/ui/studies/population/trials").text
    assert '<th data-field="generation"' in page and '<th data-field="parent"' in page
    assert '<td class="num" data-field="parent"><a href="/ui/studies/population/trials/3">#3</a></td>' in page
    assert page.count('<td class="num" data-field="parent"></td>') == 6, "none for generation 0"
    by_parent = client.get("/ui/studies/population/trials?sort=parent&desc=1&field=generation&min=1").text
    assert "3 trials match" in by_parent
    assert by_parent.index("/trials/3\">#3") < by_parent.index("/trials/1\">#1</a></td>")
    other = client.get("/ui/studies/drawn/trials").text
    assert 'data-field="generation"' not in other and 'data-field="parent"' not in other


def test_the_dashboards_trial_page_gives_the_generation_and_a_link_to_the_parent(client):
    child = client.get("/ui/studies/population/trials/6").text
    assert '<dd id="trial-generation">1</dd>' in child
    assert '<a href="/ui/studies/population/trials/3">#3</a>, whose checkpoint it started from' in child
    assert "none: drawn from the search space" in client.get("/ui/studies/population/trials/0").text
    assert "trial-generation" not in client.get("/ui/studies/drawn/trials/6").text


def test_the_csv_export_gives_a_pbt_studys_lineage(client):
    rows = client.get("/ui/studies/population/trials.csv").text.splitlines()
    assert rows[0].startswith("number,state,generation,parent,loss,x,")
    assert rows[7].startswith("6,COMPLETE,1,3,")
    assert client.get("/ui/studies/drawn/trials.csv").text.startswith("number,state,loss,x,")


def test_how_far_the_population_has_come_is_one_grouped_count(db: Path):
    """A study's view, and each pbt study's in the studies' listing, counts its newest generation
    in one statement, not a read of its newest trial and two counts."""
    store = SqliteStore(db)
    try:
        record = store.get_study("population")
        statements: list[str] = []
        store.db.conn.set_trace_callback(statements.append)
        try:
            view = population_view(store, record)
        finally:
            store.db.conn.set_trace_callback(None)
        assert view == {"generation": 1, "trials": 3, "succeeded": 1, "size": 5}
        reads = [sql for sql in statements if "FROM trials" in sql]
        assert len(reads) == 1 and "GROUP BY generation" in reads[0], statements
    finally:
        store.close()
