"""The trial table's column titles are links that sort by the column: a first click on a
maximised objective puts the best trials first, as a minimised one's does, and a click on the
column already sorted by turns its order around."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator

import pytest
from conftest import app_client, study_definition

from functions.adapters.sqlite_store import SqliteStore
from functions.core.records import COMPLETE, KUBERNETES, StudyRecord, TrialRecord
from functions.core.validate import parse_study

OBJECTIVES = {"up": {"metric": "accuracy", "direction": "maximize"},
              "down": {"metric": "loss", "direction": "minimize"}}


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator:
    """An ended study that maximises accuracy and one that minimises loss, each reporting the
    other's metric too, with three completed trials."""
    db = tmp_path_factory.mktemp("ui-sort") / "katuna.db"
    now = time.time()
    store = SqliteStore(db)
    for name, objective in OBJECTIVES.items():
        other = "loss" if name == "up" else "accuracy"
        definition = study_definition(name=name, maxTrials=3, objective={**objective, "additionalMetrics": [other]})
        store.add_study(StudyRecord(parse_study(definition), definition, str(db.parent), "test", status="completed",
                                    created_at=now, started_at=now, completed_at=now))
        for number, value in enumerate((0.5, 0.9, 0.1)):
            store.add_trial(TrialRecord(name, number, {"x": value}, COMPLETE, values=[value],
                                        metrics={"accuracy": value, "loss": value}, exit_code=0,
                                        started_at=now, finished_at=now + 1))
    store.close()
    with app_client(db) as served:
        yield served


def sort_link(client, study: str, field: str, query: str = "") -> str:
    """The query of the link in ``field``'s column title on the study's trial table."""
    answer = client.get(f"/ui/studies/{study}/trials{query}")
    assert answer.status_code == 200, answer.text
    [href] = re.findall(rf'<th data-field="{re.escape(field)}"[^>]*>\s*<a href="([^"]*)"', answer.text)
    return html.unescape(href).partition("?")[2]


def values(client, study: str, query: str, metric: str) -> list[str]:
    answer = client.get(f"/ui/studies/{study}/trials?{query}")
    return re.findall(rf'<td class="num" data-field="metric:{metric}">([^<]*)</td>', answer.text)


def test_a_first_click_on_a_maximised_objective_lists_the_best_trials_first(client):
    query = sort_link(client, "up", "metric:accuracy")
    assert "desc=1" in query.split("&"), query
    assert values(client, "up", query, "accuracy") == ["0.9", "0.5", "0.1"]


def test_a_first_click_on_a_minimised_objective_or_another_metric_sorts_upwards(client):
    for study, field in (("down", "metric:loss"), ("up", "metric:loss"), ("down", "metric:accuracy")):
        query = sort_link(client, study, field)
        assert "desc=1" not in query.split("&"), (study, field, query)
    assert values(client, "down", sort_link(client, "down", "metric:loss"), "loss") == ["0.1", "0.5", "0.9"]


@pytest.mark.parametrize(("shown", "expected"), [("?sort=metric:accuracy&desc=1", False),
                                                 ("?sort=metric:accuracy", True)])
def test_a_click_on_the_column_sorted_by_turns_its_order_around(client, shown: str, expected: bool):
    query = sort_link(client, "up", "metric:accuracy", shown)
    assert ("desc=1" in query.split("&")) is expected, query


def test_an_empty_table_says_whether_the_filters_or_the_study_left_it_empty(tmp_path):
    """A study with trials whose filters match none, a running study that has none yet, and an
    ended one that ran none: each empty table says which it is. (The running study's trials run
    on a cluster, which this service, running local trials, leaves alone: it stays without one.)"""
    db = tmp_path / "katuna.db"
    store = SqliteStore(db)
    for name, status in (("some", "completed"), ("starting", "running"), ("none", "stopped")):
        definition = study_definition(name=name, maxTrials=3)
        store.add_study(StudyRecord(parse_study(definition), definition, str(db.parent), "test", status=status,
                                    created_at=time.time(), runs_on=KUBERNETES))
    store.add_trial(TrialRecord("some", 0, {"x": 0.5}, COMPLETE, values=[1.0], metrics={"loss": 1.0}, exit_code=0))
    store.close()
    with app_client(db) as served:
        def empty(path: str) -> str:
            [cell] = re.findall(r'<td colspan="\d+" class="empty">([^<]*)</td>', served.get(path).text)
            return cell

        assert empty("/ui/studies/some/trials?state=PRUNED") == "No trial matches the filters."
        assert empty("/ui/studies/none/trials") == "The study ran no trial."
        assert html.unescape(empty("/ui/studies/starting/trials")) == \
            "No trial yet: the table fills as the study's trials start."
