"""``katuna show NAME NUMBER``: one trial with what a listing leaves out, as the dashboard's
trial page and ``GET /studies/{name}/trials/{number}`` give it: the runs its attempt lost to
disruptions (a cluster trial's preempted pod), each value it reported in order, its whole
reason; ``--json`` is the API's answer. A trial that is not there exits 1 naming it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import app_client, study_definition
from http_helpers import run_katuna

from functions.adapters.sqlite_store import SqliteStore
from functions.cli import main
from functions.core.disruptions import Disruption, LostPods
from functions.core.metrics import Observation
from functions.core.records import COMPLETE, FAIL, KUBERNETES, RUNNING, StudyRecord, TrialRecord
from functions.core.validate import parse_study

START = 1_796_500_000.0


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A cluster study: trial 0 failed after reporting a history of losses; trial 1 runs on, its
    first pod preempted."""
    path = tmp_path / "katuna.db"
    store = SqliteStore(path)
    try:
        definition = study_definition(name="c")
        store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "uid-c", runs_on=KUBERNETES))
        store.add_trial(TrialRecord("c", 0, {"x": 1.5}, FAIL, metrics={"loss": 0.25}, exit_code=1,
                                    reason="exited with code 1; last lines:\nTraceback\nValueError: nan loss",
                                    started_at=START, finished_at=START + 90))
        store.add_observations("c", 0, 1, [Observation("loss", 0.9, 1, "2026-12-06T00:00:01Z"),
                                           Observation("loss", 0.25, 2, "2026-12-06T00:00:02Z")])
        store.add_trial(TrialRecord("c", 1, {"x": -2.0}, RUNNING, started_at=START))
        lost = {"uid-p1": Disruption("PreemptionByScheduler", "default-scheduler: preempting")}
        store.set_lost_pods("c", 1, LostPods().seen(1, lost, frozenset({"uid-p2"})))
    finally:
        store.close()
    return path


def test_the_json_of_a_trial_is_the_apis(db: Path):
    with app_client(db) as client:
        for number in (0, 1):
            result = CliRunner().invoke(main, ["show", "c", str(number), "--db", str(db), "--json"])
            assert result.exit_code == 0, result.output
            assert json.loads(result.stdout) == client.get(f"/studies/c/trials/{number}").get_json()
    assert json.loads(CliRunner().invoke(main, ["show", "c", "1", "--db", str(db), "--json"]).stdout)["lostRuns"] == [
        {"pod": "uid-p1", "cause": "PreemptionByScheduler", "message": "default-scheduler: preempting"}]


def test_a_trial_reads_with_its_reason_its_lost_runs_and_its_metrics_history(db: Path):
    failed = run_katuna("show", "c", "0", "--db", str(db), cwd=db.parent, env={**os.environ, "COLUMNS": "120"})
    assert failed.returncode == 0, failed.stderr
    lines = [line.strip() for line in failed.stdout.splitlines()]
    assert lines[0] == "c trial 0  state: FAIL  attempt 1  exit code 1"
    assert "params: x=1.5" in lines and "metrics: loss=0.25" in lines
    assert "started: 2026-12-05 19:46:40 UTC  finished: 2026-12-05 19:48:10 UTC (90.0 s)" in lines
    assert lines[lines.index("reason:") + 1:][:3] == ["exited with code 1; last lines:", "Traceback",
                                                       "ValueError: nan loss"]
    assert "Observations (2)" in lines
    assert [line.split() for line in lines if line.startswith("loss ")] == [
        ["loss", "0.9", "1", "2026-12-06T00:00:01Z"], ["loss", "0.25", "2", "2026-12-06T00:00:02Z"]]
    running = CliRunner().invoke(main, ["show", "c", "1", "--db", str(db)])
    assert running.exit_code == 0, running.output
    assert "run lost: pod uid-p1: PreemptionByScheduler (default-scheduler: preempting)" in running.stdout
    assert "observations: none stored yet (they are read when the trial ends)" in running.stdout


def test_a_trial_that_ended_reporting_nothing_says_none_are_stored_and_none_will_be(tmp_path: Path):
    """As the dashboard's trial page says it: only a trial still to end has values to come."""
    path = tmp_path / "katuna.db"
    definition = study_definition(name="e")
    store = SqliteStore(path)
    try:
        store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "uid-e"))
        store.add_trial(TrialRecord("e", 0, {"x": 1.5}, FAIL, reason='could not start: program "pythn3" cannot be run',
                                    started_at=START, finished_at=START))
    finally:
        store.close()
    shown = CliRunner().invoke(main, ["show", "e", "0", "--db", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "observations: none stored\n" in shown.stdout and "read when the trial ends" not in shown.stdout


def test_a_trial_that_is_not_there_exits_1_naming_it(db: Path):
    result = CliRunner().invoke(main, ["show", "c", "7", "--db", str(db)])
    assert result.exit_code == 1 and "error: study 'c' has no trial 7" in result.output
    refused = CliRunner().invoke(main, ["show", "c", "-1", "--db", str(db)])
    assert refused.exit_code == 2 and "NUMBER" in refused.output


def test_a_studys_best_trial_reads_its_parameters_as_name_value_pairs(tmp_path: Path):
    """``katuna show NAME`` prints the best trial's parameters as a trial's page prints them
    (``x=0.001 c=日本``), not as a Python dict with its braces and quotes."""
    path = tmp_path / "katuna.db"
    definition = study_definition(name="b", parameters=[
        {"name": "x", "type": "float", "min": 0.0001, "max": 1.0},
        {"name": "c", "type": "categorical", "values": ["日本", "it's"]}])
    definition["trialTemplate"]["command"].append("${trialParameters.c}")
    store = SqliteStore(path)
    try:
        store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "uid-b"))
        store.add_trial(TrialRecord("b", 0, {"x": 0.001, "c": "日本"}, COMPLETE, values=[0.25], metrics={"loss": 0.25},
                                    started_at=START, finished_at=START + 1))
    finally:
        store.close()
    shown = CliRunner().invoke(main, ["show", "b", "--db", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "best: trial 0 value 0.25 params x=0.001 c=日本\n" in shown.stdout, shown.stdout
