"""Requests past what the service can hold, through the real app (Flask's test client on a real
Runtime, real trials, real SQLite): each is a 4xx naming the field and what it takes, and
leaves every stored study as it was. Numbers past the store's integers, past a float, past the
digits Python reads; NUL characters no trial can start with; log queries for attempts that
never ran."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import study_definition

HUGE = 2**63



def _wait(client, name: str, done, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        study = client.get(f"/studies/{name}").get_json()
        if done(study):
            return study
        time.sleep(0.1)
    raise AssertionError(f"{name} did not get there: {study}")


def _state(client, name: str) -> tuple[dict, list]:
    return client.get(f"/studies/{name}").get_json(), client.get(f"/studies/{name}/trials").get_json()


@pytest.fixture(scope="module")
def running(client) -> Iterator[str]:
    """The uid of a study whose one trial runs until it is stopped (events name their study by it)."""
    definition = study_definition(name="running", mode="hang", maxTrials=1, parallelism=1)
    assert client.post("/studies", json=definition).status_code == 201
    _wait(client, "running", lambda s: s["counts"].get("running") == 1)
    yield client.application.extensions["katuna"].store().get_study("running").uid
    client.delete("/studies/running")


def _event(client, event_type: str, **data):
    headers = {"ce-specversion": "1.0", "ce-id": f"bounds-{time.monotonic_ns()}", "ce-source": "/test",
               "ce-type": event_type}
    return client.post("/", data=json.dumps(data), headers=headers, content_type="application/json")


FINISHED = "dev.katuna.trial.finished"
PROGRESS = "dev.katuna.trial.progress"
SUGGESTED = "dev.katuna.trial.suggested"
_ENDED = {"trial": 0, "attempt": 1, "outcome": "exited", "exitCode": 0, "message": ""}

# (case id, event type, data beside study and uid, the field the answer must name)
PAST_THE_STORE = [
    ("finished-trial", FINISHED, {**_ENDED, "trial": HUGE}, "data.trial"),
    ("finished-trial-2**70", FINISHED, {**_ENDED, "trial": 2**70}, "data.trial"),
    ("finished-attempt", FINISHED, {**_ENDED, "attempt": HUGE}, "data.attempt"),
    ("finished-exitCode", FINISHED, {**_ENDED, "exitCode": 2**31}, "data.exitCode"),
    ("finished-exitCode-negative", FINISHED, {**_ENDED, "exitCode": -(2**63) - 1}, "data.exitCode"),
    ("suggested-trial", SUGGESTED, {"trial": HUGE, "attempt": 1}, "data.trial"),
    ("progress-step", PROGRESS, {"trial": 0, "attempt": 1, "step": HUGE, "value": 1.0}, "data.step"),
    ("progress-value", PROGRESS, {"trial": 0, "attempt": 1, "step": 1, "value": 10**400}, "data.value"),
]


def test_events_with_numbers_past_the_store_are_refused_and_count_nothing_against_the_study(client, running):
    before = _state(client, "running")
    for _ in range(3):  # three failures of a handler would fail the study
        for case, event_type, data, field in PAST_THE_STORE:
            answer = _event(client, event_type, study="running", uid=running, **data)
            assert answer.status_code == 400, (case, answer.get_json())
            assert f"{field}: expected " in answer.get_json()["message"], (case, answer.get_json())
    assert _state(client, "running") == before
    assert before[0]["status"] == "running" and before[1][0]["state"] == "RUNNING"


def test_the_largest_stored_numbers_still_pass_the_check(client, running):
    """At the bound the event is read: its trial names none, so nothing changes either."""
    before = _state(client, "running")
    answer = _event(client, FINISHED, study="running", uid=running, **{**_ENDED, "trial": HUGE - 1,
                                                                               "exitCode": -(2**31)})
    assert answer.status_code in (200, 202), answer.get_json()
    assert _state(client, "running") == before


_YAML = yaml.safe_dump(study_definition(name="huge"), sort_keys=False)
_DIGITS = "9" * 5000

# (case id, content type, body, the problem path, a word of its message)
HUGE_NUMBERS = [
    ("maxTrials-5001-digits", "application/yaml", _YAML.replace("maxTrials: 4", "maxTrials: 1" + "0" * 5000),
     "maxTrials", "1.8e+308"),
    ("maxTrials-5000-digits-json", "application/json",
     json.dumps(study_definition(name="huge")).replace('"maxTrials": 4', '"maxTrials": ' + _DIGITS), "maxTrials",
     "line 1"),
    ("maxTrials-hex", "application/yaml", _YAML.replace("maxTrials: 4", "maxTrials: 0x" + "f" * 5000), "maxTrials",
     "1.8e+308"),
    ("timeBudget", "application/yaml", _YAML + f"timeBudget: {_DIGITS}\n", "timeBudget", "1.8e+308"),
    ("seed", "application/yaml", _YAML.replace("seed: 1", f"seed: {_DIGITS}"), "algorithm.seed", "1.8e+308"),
    ("int-min-10**400", "application/yaml", _YAML.replace("type: float", "type: int").replace(
        "min: -5.0", f"min: {10**400}").replace("max: 5.0", f"max: {10**401}"), "parameters[0].min", "1.8e+308"),
    ("int-min-just-past-2**53", "application/yaml", _YAML.replace("type: float", "type: int").replace(
        "min: -5.0", f"min: {10**300}").replace("max: 5.0", f"max: {10**301}"), "parameters[0].min",
     "at most 2**53"),
    ("discrete-value-4000-digits", "application/yaml", _YAML.replace(
        "- name: x\n  type: float\n  min: -5.0\n  max: 5.0",
        "- name: x\n  type: discrete\n  values: [" + "9" * 4000 + ", 1]"), "parameters[0].values[0]", "1.8e+308"),
    ("int-step-400-digits", "application/yaml", _YAML.replace("type: float", "type: int").replace(
        "min: -5.0", "min: 0").replace("max: 5.0", "max: 10\n  step: " + "9" * 400), "parameters[0].step",
     "1.8e+308"),
    ("binary", "application/yaml", _YAML + "description: !!binary aGVsbG8=\n", "", "no JSON form"),
]


@pytest.mark.parametrize("case, content_type, body, path, word", HUGE_NUMBERS, ids=[c[0] for c in HUGE_NUMBERS])
def test_a_number_too_large_to_read_is_refused_naming_where_it_is(client, case: str, content_type: str, body: str,
                                                                  path: str, word: str):
    answer = client.post("/studies", data=body, content_type=content_type)
    assert answer.status_code in (400, 422), (case, answer.get_data(as_text=True)[:500])
    problems = answer.get_json()["problems"]
    assert any(p["path"] == path and word in p["message"] for p in problems), (case, problems)
    assert client.get("/studies/huge").status_code == 404


def test_a_date_is_kept_as_the_text_it_is_written_as(client):
    """YAML 1.1 reads ``2024-01-01`` as a date, which no JSON holds (the study is stored as
    JSON): it stays the text it is, as JSON and YAML 1.2 read it, even one no calendar has."""
    body = _YAML.replace("name: huge", "name: dated") + "description: 2001-13-45\n"
    answer = client.post("/studies", data=body, content_type="application/yaml")
    assert answer.status_code == 201, answer.get_data(as_text=True)[:500]
    assert client.post("/studies/dated/stop").status_code == 200


def _nul(change) -> dict:
    definition = study_definition(name="nul")
    change(definition)
    return definition


# (case id, definition, the problem path)
NULS = [
    ("command", _nul(lambda d: d["trialTemplate"]["command"].insert(2, "print('x')\x00")),
     "trialTemplate.command[2]"),
    ("env-value", _nul(lambda d: d["trialTemplate"].update(env={"A": "b\x00c"})), "trialTemplate.env.A"),
    ("env-name", _nul(lambda d: d["trialTemplate"].update(env={"A\x00B": "c"})), "trialTemplate.env.A\\0B"),
    ("workingDir", _nul(lambda d: d["trialTemplate"].update(workingDir="runs\x00")), "trialTemplate.workingDir"),
    ("categorical-value", _nul(lambda d: d.update(parameters=[{"name": "x", "type": "categorical",
                                                               "values": ["a\x00b", "c"]}])),
     "parameters[0].values[0]"),
]


@pytest.mark.parametrize("case, definition, path", NULS, ids=[c[0] for c in NULS])
def test_a_nul_character_no_trial_could_start_with_is_refused_at_submission(client, case: str, definition: dict,
                                                                            path: str):
    for content_type, body in (("application/json", json.dumps(definition)),
                               ("application/yaml", yaml.safe_dump(definition))):
        answer = client.post("/studies", data=body, content_type=content_type)
        assert answer.status_code == 422, (case, answer.get_json())
        problems = {p["path"]: p["message"] for p in answer.get_json()["problems"]}
        assert "NUL" in problems.get(path, ""), (case, problems)
    assert client.get("/studies/nul").status_code == 404


@pytest.fixture(scope="module")
def finished(client) -> str:
    definition = study_definition(name="logged", maxTrials=1, parallelism=1)
    assert client.post("/studies", json=definition).status_code == 201
    _wait(client, "logged", lambda s: s["status"] == "completed")
    return "logged"


@pytest.mark.parametrize("path", ["/studies/logged/trials/0/logs", "/ui/studies/logged/trials/0/log"])
@pytest.mark.parametrize("attempt", ["0", "-1", "abc", "1.0", "", "9" * 30, str(HUGE)])
def test_a_log_request_for_an_attempt_that_is_no_whole_number_from_1_is_refused(client, finished, path: str,
                                                                                attempt: str):
    answer = client.get(path, query_string={"attempt": attempt})
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.get_json()["message"] == f"attempt: expected a whole number from 1 to 9223372036854775807, " \
                                           f"got {attempt!r:.40}", "the API document's bound, whatever the trial's attempts"


@pytest.mark.parametrize("path", ["/studies/logged/trials/0/logs", "/ui/studies/logged/trials/0/log"])
@pytest.mark.parametrize("attempt", ["2", str(HUGE - 1)])
def test_a_log_request_for_an_attempt_that_never_ran_is_not_found(client, finished, path: str, attempt: str):
    answer = client.get(path, query_string={"attempt": attempt})
    assert answer.status_code == 404, answer.get_data(as_text=True)
    assert f"has no attempt {attempt}: its attempts are 1 to 1" in answer.get_json()["message"]


def test_the_log_of_an_attempt_that_ran_is_served(client, finished):
    api = client.get("/studies/logged/trials/0/logs?attempt=1")
    assert api.status_code == 200 and "loss=" in api.get_data(as_text=True)
    ui = client.get("/ui/studies/logged/trials/0/log?attempt=1&offset=-1").get_json()
    assert ui["attempt"] == 1 and "loss=" in ui["text"]


@pytest.mark.parametrize("offset", ["abc", "-2", "1e3", "99999999999999999999999"])
def test_a_log_offset_that_is_no_whole_number_from_minus_1_is_refused(client, finished, offset: str):
    answer = client.get("/ui/studies/logged/trials/0/log", query_string={"offset": offset})
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.get_json()["message"].startswith("offset: expected a whole number from -1 to ")


def test_a_working_directory_gone_since_submission_is_named_as_what_kept_the_trial_from_starting(
        client, tmp_path: Path):
    """A folder missing at submission is refused then (``test_working_dir_at_submission``); one
    removed while the study runs is what keeps its next trial from starting, said in its reason."""
    folder, go = tmp_path / "work", tmp_path / "go"
    folder.mkdir()
    wait = f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.05)\nprint('loss=1')"
    definition = study_definition(name="nowhere", maxTrials=2, parallelism=1)
    definition["trialTemplate"].update(command=[sys.executable, "-c", wait, "${trialParameters.x}"],
                                       workingDir=str(folder))
    assert client.post("/studies", json=definition).status_code == 201
    _wait(client, "nowhere", lambda s: s["counts"]["running"] == 1)
    folder.rmdir()
    go.touch()
    _wait(client, "nowhere", lambda s: s["status"] in ("completed", "failed"))
    first, second = client.get("/studies/nowhere/trials").get_json()
    assert first["state"] == "COMPLETE"
    assert second["reason"] == f'could not start: working directory "{folder}" cannot be entered: No such file or directory'
