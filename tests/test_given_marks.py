"""A trial that ran a point the study gave (``initialTrials``) is told from one the sampler
suggested wherever trials are listed, not on its own page alone: the dashboard's trial table and
best trials (or Pareto front), its CSV export, and ``katuna trials``, ``best`` and ``show``. A
study that gives none lists its trials as before, with no such column."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import app_client, study_definition

from functions.adapters.sqlite_store import SqliteStore
from functions.cli import main
from functions.core.records import COMPLETE, FAIL, StudyRecord, TrialRecord
from functions.core.validate import parse_study

PBT = {"suggestion_trial_dir": "/ckpt", "n_population": 5, "truncation_threshold": 0.2}
TWO = {"metrics": [{"name": "loss", "direction": "minimize"}, {"name": "size", "direction": "maximize"}]}


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    """``given``: two initial trials (#0 failed, #2 the best) and two the sampler suggested;
    ``pair``: two objectives, #0 given and on the front with #1; ``population``: population-based
    training, #0 given; ``plain``: no initial trial."""
    path = tmp_path_factory.mktemp("given") / "katuna.db"
    now = time.time()
    studies = {"given": {"initialTrials": [{"x": 0.1}, {"x": -1.0}]},
               "pair": {"initialTrials": [{"x": 0.5}], "objective": TWO}, "plain": {},
               "population": {"initialTrials": [{"x": 0.5}], "algorithm": {"name": "pbt", "settings": PBT}}}
    store = SqliteStore(path)
    try:
        for name, extra in studies.items():
            definition = study_definition(name=name, maxTrials=6, **extra)
            store.add_study(StudyRecord(parse_study(definition), definition, str(path.parent), name, status="completed",
                                        created_at=now, started_at=now, completed_at=now))
        for number, given, loss in ((0, 0, None), (1, None, 0.5), (2, 1, 0.2), (3, None, 0.9)):
            state = FAIL if loss is None else COMPLETE
            store.add_trial(TrialRecord("given", number, {"x": -1.0 if given == 1 else 0.1 + number}, state,
                                        values=None if loss is None else [loss],
                                        metrics={} if loss is None else {"loss": loss}, initial_trial=given,
                                        started_at=now, finished_at=now + 1))
        for number, given, values in ((0, 0, [1.0, 1.0]), (1, None, [2.0, 3.0]), (2, None, [3.0, 0.5])):
            store.add_trial(TrialRecord("pair", number, {"x": 0.5 + number}, COMPLETE, values=values,
                                        metrics={"loss": values[0], "size": values[1]}, initial_trial=given,
                                        started_at=now, finished_at=now + 1))
        for number, given, parent in ((0, 0, None), (1, None, None), (2, None, 0)):
            store.add_trial(TrialRecord("population", number, {"x": 0.5}, COMPLETE, values=[1.0], metrics={"loss": 1.0},
                                        initial_trial=given, generation=0 if parent is None else 1, parent=parent,
                                        started_at=now, finished_at=now + 1))
        store.add_trial(TrialRecord("plain", 0, {"x": 0.5}, COMPLETE, values=[1.0], metrics={"loss": 1.0},
                                    started_at=now, finished_at=now + 1))
    finally:
        store.close()
    return path


@pytest.fixture(scope="module")
def client(db: Path) -> Iterator:
    with app_client(db) as served:
        yield served


def rows(html: str, table: str) -> list[str]:
    """The rows of the table ``table`` (its id), each as its cells' text joined by ``|``."""
    body = html.split(f'id="{table}"')[1].split("</table>")[0]
    return ["|".join(re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S))
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def test_the_trial_table_names_the_entry_each_given_trial_ran(client):
    page = client.get("/ui/studies/given/trials").text
    header, *listed = rows(page, "trials-table")
    assert header.split("|")[:4] == ["trial ▲", "state", "given", "loss"], header
    assert [row.split("|")[:3] for row in listed] == [
        ["#0", "FAIL", "initialTrials[0]"], ["#1", "COMPLETE", ""], ["#2", "COMPLETE", "initialTrials[1]"],
        ["#3", "COMPLETE", ""]]


def test_under_population_based_training_given_follows_the_lineage_as_everywhere(client, db: Path):
    """State, generation, parent, then given: the columns' order of ``katuna trials`` and the
    CSV export too."""
    header, *listed = rows(client.get("/ui/studies/population/trials").text, "trials-table")
    assert header.split("|")[:6] == ["trial ▲", "state", "generation", "parent", "given", "loss"], header
    assert [row.split("|")[:5] for row in listed] == [["#0", "COMPLETE", "0", "", "initialTrials[0]"],
                                                      ["#1", "COMPLETE", "0", "", ""], ["#2", "COMPLETE", "1", "#0", ""]]
    assert re.search(r"trial\s+state\s+generation\s+parent\s+given\s+loss", katuna(db, "trials", "population"))
    exported = next(csv.reader(io.StringIO(client.get("/ui/studies/population/trials.csv").text)))
    assert exported[:5] == ["number", "state", "generation", "parent", "given (initialTrials entry)"]


def test_a_study_without_initial_trials_has_no_given_column(client):
    page = client.get("/ui/studies/plain/trials").text
    assert rows(page, "trials-table")[0].split("|")[:3] == ["trial ▲", "state", "loss"]
    assert 'data-field="given"' not in page
    assert "given" not in rows(client.get("/ui/studies/plain").text, "best")[0].split("|")


def test_an_empty_filtered_table_spans_the_given_column_too(client):
    page = client.get("/ui/studies/given/trials?state=PRUNED").text
    header, empty = rows(page, "trials-table")
    assert empty == "No trial matches the filters."
    assert f'colspan="{len(header.split("|"))}"' in page


def test_the_best_trials_and_the_pareto_front_name_the_entry_a_given_trial_ran(client):
    best = rows(client.get("/ui/studies/given").text, "best")
    assert best[0].split("|")[:3] == ["trial", "given", "loss"]
    assert [row.split("|")[:2] for row in best[1:]] == [["#2", "initialTrials[1]"], ["#1", ""], ["#3", ""]]
    front = rows(client.get("/ui/studies/pair").text, "best")
    assert [row.split("|")[:2] for row in front] == [["trial", "given"], ["#0", "initialTrials[0]"], ["#1", ""]]


def test_the_csv_export_has_the_index_of_each_given_trials_entry(client):
    exported = list(csv.DictReader(io.StringIO(client.get("/ui/studies/given/trials.csv").text)))
    assert [row["given (initialTrials entry)"] for row in exported] == ["0", "", "1", ""]
    header = next(csv.reader(io.StringIO(client.get("/ui/studies/plain/trials.csv").text)))
    assert not [title for title in header if title.startswith("given")]


def katuna(db: Path, *args: str) -> str:
    shown = CliRunner().invoke(main, [*args, "--db", str(db)], terminal_width=120)
    assert shown.exit_code == 0, shown.output
    return shown.stdout


def cells(output: str) -> list[list[str]]:
    """The rows of the table ``output`` prints, each as its cells (split at two spaces or more)."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.splitlines() if re.match(r"\s+\d+\s", line)]


def test_katuna_trials_has_a_given_column_of_each_entry_run(db: Path):
    shown = katuna(db, "trials", "given")
    assert re.search(r"trial\s+state\s+given\s+loss", shown), shown
    assert [row[:3] for row in cells(shown)] == [["0", "FAIL", "[0]"], ["1", "COMPLETE", "0.5"],
                                                 ["2", "COMPLETE", "[1]"], ["3", "COMPLETE", "0.9"]]
    assert "given" not in katuna(db, "trials", "plain")


def test_katuna_best_and_show_mark_a_given_best_trial(db: Path):
    assert cells(katuna(db, "best", "given")) == [["2", "[1]", "0.2", "-1"]]
    assert "best: trial 2 (given: initialTrials[1]) value 0.2 params x=-1\n" in katuna(db, "show", "given")
    front = katuna(db, "show", "pair")
    assert re.search(r"trial\s+given\s+loss\s+size", front), front
    assert [row[:2] for row in cells(front)] == [["0", "[0]"], ["1", "2"]]
    assert "best: trial 0 value 1 params x=0.5\n" in katuna(db, "show", "plain")
