"""No stored study stops the service: studies load as they were accepted, never validated again;
a row that cannot be read at all, or a study whose every event fails, is failed with its reason
while the others run on."""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent
from conftest import TRIAL, run_study, study_definition
from http_helpers import Service, Sink, run_katuna

from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import trial_suggested
from functions.core.formats import load_study
from functions.core.records import StudyRecord, TrialRecord
from functions.core.spec import Study
from functions.core.stored import SPEC_VERSION, UnreadableSpec, study_from_dict
from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.handlers.failures import MAX_FAILURES
from functions.settings import Settings

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).parent.parent / "examples"

RICH = study_definition(
    "rich",
    objective={"metrics": [{"name": "loss", "direction": "minimize", "goal": 0.01}],
               "additionalMetrics": ["size"], "strategies": {"size": "latest"}},
    parameters=[
        {"name": "opt", "type": "categorical", "values": ["sgd", "adam", None, True]},
        {"name": "lr", "type": "float", "min": 0.001, "max": 0.1, "log": True, "when": {"opt": ["adam"]}},
        {"name": "units", "type": "int", "min": 8, "max": 64, "step": 8},
        {"name": "x", "type": "discrete", "values": [1, 2.5, 4]},
    ],
    algorithm={"name": "tpe", "settings": {"n_startup_trials": 3}, "seed": 7},
    maxFailedTrials=2,
    timeBudget="10m",
    trialTemplate={"command": [sys.executable, str(TRIAL), "--x", "${trialParameters.x}",
                               "--mode", "${trialParameters.opt}${trialParameters.lr}${trialParameters.units}"],
                   "env": {"A": "1"}, "workingDir": "sub", "timeout": "30s", "image": "python:3.11",
                   "resources": {"cpu": "1"}, "maxAttempts": 2},
    metricsCollector={"kind": "stdout", "filters": [r"(\w+)=(\S+)"]},
    kubernetes={"namespace": "ml", "serviceAccountName": "trainer", "imagePullSecrets": ["reg"],
                "ttlSecondsAfterFinished": 600, "backoffLimit": 1, "nodeSelector": {"disk": "ssd"}, "tolerations": []},
    earlyStopping={"algorithm": "median", "settings": {"n_startup_trials": 2}, "patience": 1},
    warmStart={"trials": [{"params": {"opt": "sgd", "units": 16, "x": 1}, "value": 3.0}]},
    nodePool={"provider": "eks", "instanceTypes": ["m5.large", "m5a.large"], "maxNodes": 4, "diskSizeGb": 50,
              "labels": {"team": "ml"}, "capacity": "on-demand"},
)


def _examples() -> list[dict[str, Any]]:
    return [load_study(path.read_text())[0].to_dict() for path in sorted(EXAMPLES.glob("*.yaml"))]


@pytest.mark.parametrize("normalized", [parse_study(RICH).to_dict(), *_examples(),
                                        parse_study(study_definition(
                                            nodePool={"provider": "gke", "machineType": "g2-standard-8",
                                                      "accelerators": [{"type": "nvidia-l4", "count": 1}]},
                                        )).to_dict()])
def test_a_stored_spec_loads_as_the_study_it_was(normalized: dict[str, Any]):
    stored = json.loads(json.dumps(normalized))
    assert study_from_dict(stored).to_dict() == normalized
    assert study_from_dict(stored) == parse_study(stored)


def test_a_spec_that_is_no_study_is_unreadable_not_a_crash():
    for damaged in ([], {"name": 3}, {"name": "x", "parameters": [{"name": "p"}]}, {"name": "x", "objective": 1},
                    {"name": "x", "parallelism": "3"}, {"name": "x", "timeBudget": True}):
        with pytest.raises(UnreadableSpec):
            study_from_dict(damaged)


def _loose(name: str) -> dict[str, Any]:
    """A study as an older, looser validator stored it: one trial, yet the default parallelism 3."""
    normalized = parse_study(study_definition(name, maxTrials=2)).to_dict()
    normalized.update(maxTrials=1, parallelism=3)
    return normalized


def _plant(db: Path, name: str, normalized: str, version: int | None = None) -> None:
    """Insert a study row with raw SQL, as an older katuna (or a damaged file) left it."""
    store = SqliteStore(db)
    store.db.execute(
        "INSERT INTO studies (name, uid, definition, normalized, spec_version, base_dir, status, reason, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, 'running', '', 1.0)",
        [name, f"uid-{name}", json.dumps({"name": name}), normalized, version, str(db.parent)])
    store.close()


def test_a_study_stored_under_looser_rules_still_loads_and_a_damaged_row_fails_alone(tmp_path: Path):
    db = tmp_path / "katuna.db"
    _plant(db, "loose", json.dumps(_loose("loose")))
    _plant(db, "damaged", "{not json", SPEC_VERSION)
    store = SqliteStore(db)
    loose = store.get_study("loose")
    assert (loose.spec.max_trials, loose.spec.parallelism, loose.status) == (1, 3, "running")
    by_name = {r.name: r for r in store.list_studies()}
    assert by_name["damaged"].status == "failed"
    assert "the stored spec is not JSON" in by_name["damaged"].reason
    store.delete_study("damaged")
    assert [r.name for r in store.list_studies()] == ["loose"]
    store.close()


def _cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_katuna(*args, "--db", str(db), cwd=Path.cwd(), timeout=60)


def test_the_cli_lists_and_shows_every_study_beside_a_damaged_one(tmp_path: Path):
    db = tmp_path / "katuna.db"
    _plant(db, "loose", json.dumps(_loose("loose")))
    _plant(db, "damaged", '{"name": "damaged", "parameters": 5}')
    listed = _cli(db, "studies", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {v["name"]: v["status"] for v in json.loads(listed.stdout)} == {"loose": "running", "damaged": "failed"}
    shown = _cli(db, "show", "loose", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["maxTrials"] == 1
    damaged = _cli(db, "show", "damaged")
    assert damaged.returncode == 0, damaged.stderr
    assert "failed" in damaged.stdout and "cannot be read" in damaged.stdout


def test_the_service_serves_and_runs_the_others_beside_poisoned_rows(tmp_path: Path):
    db = tmp_path / "katuna.db"
    _plant(db, "loose", json.dumps(_loose("loose")))
    _plant(db, "damaged", "{not json")
    odd = parse_study(study_definition("odd")).to_dict()
    odd["maxTrials"] = "4"
    _plant(db, "odd", json.dumps(odd))
    service = Service(tmp_path, workers=1)
    try:
        assert service.request("GET", "/readyz")[0] == 200
        good = study_definition("good")
        assert service.request("POST", "/studies", json.dumps(good), {"Content-Type": "application/json"})[0] == 201
        assert service.wait_for("good")["status"] == "completed"
        loose = service.wait_for("loose")
        assert (loose["status"], loose["trials"]) == ("completed", 1)
        failed = service.wait_for("odd")
        assert failed["status"] == "failed" and "maxTrials is '4', not a number" in failed["reason"]
        status, listed = service.json("GET", "/studies")
        assert status == 200
        views = {v["name"]: v for v in listed}
        assert views["damaged"]["status"] == "failed" and "not JSON" in views["damaged"]["reason"]
        assert service.json("GET", "/studies/damaged")[0] == 200
        for page in ("/ui/", "/ui/studies.fragment", "/ui/studies/damaged", "/ui/studies/loose"):
            assert service.request("GET", page)[0] == 200, page
        assert service.request("DELETE", "/studies/damaged")[0] == 204
        assert service.json("GET", "/studies/damaged")[0] == 404
    finally:
        service.close()
    _plant(db, "damaged-again", "[]")
    restarted = Service(tmp_path, workers=1)
    try:
        assert restarted.request("GET", "/readyz")[0] == 200
        assert {v["name"] for v in restarted.json("GET", "/studies")[1]} == {"good", "loose", "odd", "damaged-again"}
    finally:
        restarted.close()


def _breaking(name: str) -> Study:
    """A study whose sampler setting breaks every ask (TPE compares ``n_startup_trials`` with a
    count), built as a store would load it: no validator stands in the way."""
    normalized = parse_study(study_definition(name)).to_dict()
    normalized["algorithm"] = {"name": "tpe", "settings": {"n_startup_trials": "abc"}}
    return study_from_dict(normalized)


def _plant_study(db: Path, spec: Study, waiting: bool = False) -> None:
    """Store the study as running; with ``waiting``, its trial 0 too, waiting at attempt 1, whose
    ``trial.suggested`` a dead letter then carries for the study's current run."""
    store = SqliteStore(db)
    store.add_study(StudyRecord(spec, spec.to_dict(), str(db.parent), f"uid-{spec.name}", created_at=1.0))
    if waiting:
        store.add_trial(TrialRecord(spec.name, 0, {"x": 1.0}))
    store.close()


def test_katuna_run_ends_a_study_whose_sampler_always_fails_with_the_reason(tmp_path: Path):
    db = tmp_path / "katuna.db"
    _plant_study(db, _breaking("broken"))
    runner = Embedded(Settings(db=db))
    try:
        record = runner.run("broken")
    finally:
        runner.close()
    assert record.status == "failed"
    assert "TypeError" in record.reason and f"failed {MAX_FAILURES} times" in record.reason
    store = SqliteStore(db)
    assert store.db.execute("SELECT failures FROM studies WHERE name = 'broken'").fetchone()[0] == MAX_FAILURES
    store.close()


def test_the_service_fails_a_study_whose_sampler_always_fails_and_runs_the_next(tmp_path: Path):
    db = tmp_path / "katuna.db"
    _plant_study(db, _breaking("broken"))
    service = Service(tmp_path, workers=2)
    try:
        broken = service.wait_for("broken", timeout=60)
        assert broken["status"] == "failed" and "TypeError" in broken["reason"]
        good = study_definition("good")
        assert service.request("POST", "/studies", json.dumps(good), {"Content-Type": "application/json"})[0] == 201
        assert service.wait_for("good")["status"] == "completed"
        assert service.request("GET", "/readyz")[0] == 200
    finally:
        service.close()
    store = SqliteStore(db)
    assert store.db.execute("SELECT failures FROM studies WHERE name = 'broken'").fetchone()[0] <= MAX_FAILURES + 2
    store.close()


def _post_event(service: Service, path: str, event_type: str, data: dict, **extensions: str):
    event = CloudEvent(attributes={"type": event_type, "source": "/test", "datacontenttype": "application/json",
                                   **extensions}, data=data)
    message = ce_http.to_binary_event(event)
    return service.request("POST", path, message.body, message.headers)


PERMANENT_LETTERS = {"refused-400": "400", "refused-422": "422", "not-implemented": "501"}
"""Dead letters of deliveries refused for good (katuna's answers to a permanent error included)."""

TEMPORARY_LETTERS = {"busy-503": "503", "no-answer-500": "500", "gateway-504": "504", "throttled-429": "429",
                     "not-ready-404": "404", "timeout-408": "408", "no-code": None}
"""Dead letters of deliveries given up after temporary failures, or with no code (the broker's
filter could not read a 2xx answer: the function ran)."""


def test_on_knative_a_study_whose_function_keeps_failing_fails_and_a_dead_letter_fails_its_study(tmp_path: Path):
    db = tmp_path / "katuna.db"
    _plant_study(db, _breaking("broken"))
    for name in (*PERMANENT_LETTERS, *TEMPORARY_LETTERS):
        _plant_study(db, study_from_dict(parse_study(study_definition(name)).to_dict()), waiting=True)
    sink = Sink()
    service = Service(tmp_path, workers=1, KATUNA_EVENTS="reply", K_SINK=sink.url)
    try:
        created = {"study": "broken", "uid": "uid-broken"}
        answers = [_post_event(service, "/functions/suggest", "dev.katuna.study.created", created)
                   for _ in range(MAX_FAILURES)]
        assert [status for status, _, _ in answers[:-1]] == [500] * (MAX_FAILURES - 1)
        status, headers, body = answers[-1]
        assert status == 200 and headers["ce-type"] == "dev.katuna.study.completed"
        assert json.loads(body)["status"] == "failed"
        broken = service.json("GET", "/studies/broken")[1]
        assert broken["status"] == "failed" and "TypeError" in broken["reason"]

        for name, code in {**PERMANENT_LETTERS, **TEMPORARY_LETTERS}.items():
            errors = {} if code is None else {"knativeerrorcode": code, "knativeerrordest": "http://katuna/functions/spawn",
                                              "knativeerrordata": base64.b64encode(b'{"error": "x"}').decode()}
            status, headers, _ = _post_event(service, "/dead-letters", "dev.katuna.trial.suggested",
                                             {"study": name, "uid": f"uid-{name}", "trial": 0, "attempt": 1}, **errors)
            assert (status, headers["Katuna-Study-Failed"]) == (202, str(name in PERMANENT_LETTERS).lower()), name
        for code in ("400", "422"):
            refused_reply = {"knativeerrorcode": code, "knativeerrordest": sink.url, "knativeerrordata": ""}
            status, headers, _ = _post_event(service, "/dead-letters", "dev.katuna.trial.suggested",
                                             {"study": "busy-503", "uid": "uid-busy-503", "trial": 0, "attempt": 1},
                                             **refused_reply)
            assert (status, headers["Katuna-Study-Failed"]) == (202, "false"), \
                "the broker (K_SINK) refused the reply katuna answered with, not the event: its TTL was spent"
        for code in ("400", "403"):
            report = {"study": "busy-503", "uid": "uid-busy-503", "trial": 0, "attempt": 1, "step": 1,
                      "value": 1.0, "token": "forged"}
            status, headers, _ = _post_event(service, "/dead-letters", "dev.katuna.trial.progress", report,
                                             knativeerrorcode=code, knativeerrordest="http://katuna/functions/prune")
            assert (status, headers["Katuna-Study-Failed"]) == (202, "false"), "a lost report fails no study"
        for name, code in PERMANENT_LETTERS.items():
            lost = service.json("GET", "/studies/" + name)[1]
            assert lost["status"] == "failed", name
            assert lost["reason"] == ('an event could not be delivered (dev.katuna.trial.suggested): '
                                      f'http://katuna/functions/spawn {code} {{"error": "x"}}')
        for name in TEMPORARY_LETTERS:
            assert service.json("GET", "/studies/" + name)[1]["status"] == "running", f"{name}: left to the tick"
        letters = {letter["event"]["data"]["study"]: letter["reason"] for letter in service.json("GET", "/dead-letters")[1]}
        assert letters.keys() == {*PERMANENT_LETTERS, *TEMPORARY_LETTERS}, "every dead letter is kept"
        assert letters["no-code"] == "no reason given"
    finally:
        service.close()
        sink.close()


def test_katuna_run_fails_a_study_at_once_for_an_event_refused_for_good(tmp_path: Path):
    """A launch refused as every trial's would be fails the study in its handling, with the
    refusal as its reason, not after the tick finds it stuck, nor once the queue gave up on the
    event as a Knative broker does: the run would otherwise wait for nothing."""
    db = tmp_path / "katuna.db"
    normalized = parse_study(study_definition("unrunnable")).to_dict()
    normalized["trialTemplate"] = {"trialSpec": {"spec": {}}, "maxAttempts": 5}
    _plant_study(db, study_from_dict(normalized))
    runner = Embedded(Settings(db=db))
    try:
        runner.store.add_trial(TrialRecord("unrunnable", 0, {"x": 1.0}))
        runner.broker.publish(trial_suggested("unrunnable", "uid-unrunnable", 0, 1))
        runner.broker.run(until=lambda: True)
        record = runner.store.get_study("unrunnable")
    finally:
        runner.close()
    assert record.status == "failed", record
    assert record.reason.startswith("InvalidStudy: "), record.reason
    assert "names no container of the trialSpec" in record.reason and "(trial 0's launch refused it)" in record.reason


def test_a_study_whose_trials_cannot_be_rendered_any_more_fails_alone(tmp_path: Path):
    db = tmp_path / "katuna.db"
    normalized = parse_study(study_definition("unrunnable")).to_dict()
    normalized["trialTemplate"] = {"trialSpec": {"spec": {}}, "maxAttempts": 5}
    _plant_study(db, study_from_dict(normalized))
    store = SqliteStore(db)
    store.add_trial(TrialRecord("unrunnable", 0, {"x": 1.0}, "RUNNING"))
    store.close()
    runner = Embedded(Settings(db=db))
    try:
        record = runner.run("unrunnable")
        assert record.status == "failed" and "names no container of the trialSpec" in record.reason, record.reason
        good = run_study(runner, study_definition("good"), tmp_path)
    finally:
        runner.close()
    assert good.status == "completed"


def test_a_study_whose_optuna_journal_is_damaged_fails_naming_the_record_and_can_still_be_deleted(tmp_path: Path):
    """A record of a study's Optuna journal damaged in the file: running the study again fails
    it at once, its reason naming the database, the study and the record; deleting it works
    (without reading its journal) and leaves the database usable. The refusal is permanent, so
    ``katuna run``'s queue gives up on the event at its first delivery and its dead letter fails
    the study (:meth:`functions.embedded.Embedded._dropped`), as a Knative broker's dead-letter
    sink does; without it the run would wait for a trial no suggestion ever made."""
    db = tmp_path / "katuna.db"
    definition = study_definition("torn", maxTrials=2)
    runner = Embedded(Settings(db=db))
    try:
        assert run_study(runner, definition, tmp_path).status == "completed"
    finally:
        runner.close()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE optuna_journal SET body = substr(body, 1, 30) WHERE number = 2")
    conn.close()
    raised = tmp_path / "raised.yaml"
    raised.write_text(json.dumps({**definition, "maxTrials": 3}))
    run = _cli(db, "run", str(raised))
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    shown = json.loads(_cli(db, "show", "torn", "--json").stdout)
    assert shown["status"] == "failed", shown
    assert shown["reason"].startswith(
        f"an event could not be delivered (dev.katuna.study.created): the Optuna journal of study 'torn' in the "
        f"database {db} is damaged: its record 2 cannot be read"), shown["reason"]
    assert "failure 1 of 3" in run.stderr and "dropped dev.katuna.study.created" in run.stderr, run.stderr
    deleted = _cli(db, "delete", "torn")
    assert deleted.returncode == 0 and "Traceback" not in deleted.stderr, deleted.stderr
    assert json.loads(_cli(db, "studies", "--json").stdout) == []
