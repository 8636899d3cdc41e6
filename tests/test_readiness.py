"""``/readyz`` reads the database as a request would, and the service refuses writes once its
database path names another file than the one it opened: a corrupt database, or one moved or
deleted from under the service (where a study answered ``201`` went to a file nothing read),
makes it not ready, saying why, in one log line per change rather than one per probe."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import Service

from functions.adapters.web import create_app
from functions.runtime import Runtime
from functions.settings import Settings

DB_FILES = ("katuna.db", "katuna.db-wal", "katuna.db-shm")


def _submit(service: Service, name: str) -> tuple[int, dict]:
    definition = json.dumps(study_definition(name=name, parallelism=1, maxTrials=1))
    status, _, body = service.request("POST", "/studies", definition, {"Content-Type": "application/json"})
    return status, json.loads(body)


def test_a_database_damaged_in_place_makes_the_service_not_ready_saying_why_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture):
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", events="reply"))  # no thread of its own reading the file
    client = create_app(runtime).test_client()
    try:
        assert client.get("/readyz").status_code == 200
        for name in DB_FILES:
            with (tmp_path / name).open("r+b") as file:
                file.write(b"not a database, overwritten in place " * 3)
        caplog.set_level(logging.WARNING, logger="katuna")
        answers = [client.get("/readyz") for _ in range(3)]
        assert [answer.status_code for answer in answers] == [503] * 3
        body = answers[0].json
        assert body["error"] == "not_ready" and body["status"] == "not ready"
        assert "cannot use the database" in body["message"], body
        assert len([r for r in caplog.records if r.getMessage().startswith("not ready: ")]) == 1, caplog.text
    finally:
        runtime.close()


@pytest.mark.timeout(120)
def test_a_database_moved_away_makes_the_service_not_ready_and_refuse_writes_until_it_is_back(tmp_path: Path):
    """The study posted meanwhile is refused with a 503 that names the problem, not answered
    ``201`` and written to the moved file; once the file is back, the service is ready again."""
    service = Service(tmp_path, workers=1)
    moved = tmp_path / "moved"
    moved.mkdir()
    try:
        assert _submit(service, "before")[0] == 201
        for name in DB_FILES:
            (tmp_path / name).rename(moved / name)
        probes = [service.json("GET", "/readyz") for _ in range(3)]
        assert [status for status, _ in probes] == [503] * 3
        assert "is no longer the file this process opened" in probes[0][1]["message"], probes[0]
        status, body = _submit(service, "while-moved")
        assert (status, body["error"]) == (503, "storage_unavailable"), body
        assert "is no longer the file this process opened" in body["message"]
        assert not (tmp_path / "katuna.db").exists(), "no new, empty database made beside the moved one"
        for name in DB_FILES:
            (moved / name).rename(tmp_path / name)
        assert service.json("GET", "/readyz") == (200, {"status": "ready"})
        assert _submit(service, "after")[0] == 201
        status, studies = service.json("GET", "/studies")
        assert [study["name"] for study in studies] == ["before", "after"]
    finally:
        service.close()
    log = (tmp_path / "serve.log").read_text()
    assert log.count("not ready: the database") == 1, log
    assert log.count("ready again") == 1, log


TOKEN = "a-token-of-more-than-22-characters"


@pytest.mark.timeout(120)
def test_a_service_not_ready_tells_why_only_to_a_caller_with_the_token(tmp_path: Path):
    """The reason names the database's path and what is wrong with it: a probe needs the status
    alone, so a caller without the API token (a kubelet, or anyone who reaches the port) gets
    ``503`` and no more, a caller with it the reason, and the log has it; a wrong token is told
    nothing and counts as a failed attempt, as anywhere."""
    service = Service(tmp_path, workers=1, KATUNA_API_TOKEN=TOKEN)
    moved = tmp_path / "moved"
    moved.mkdir()
    try:
        for name in DB_FILES:
            (tmp_path / name).rename(moved / name)
        for headers in ({}, {"Authorization": "Bearer wrong-token-of-more-than-22-chars"}):
            status, _, body = service.request("GET", "/readyz", headers=headers)
            answer = json.loads(body)
            assert (status, answer["error"], answer["retryable"]) == (503, "not_ready", True), answer
            assert str(tmp_path) not in answer["message"] and "katuna.db" not in answer["message"], answer
            assert "log says why" in answer["message"], answer
        status, _, body = service.request("GET", "/readyz", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 503 and "is no longer the file this process opened" in json.loads(body)["message"], body
    finally:
        service.close()
    assert f"not ready: the database {tmp_path / 'katuna.db'} is no longer" in (tmp_path / "serve.log").read_text()


def test_without_a_token_a_page_rebound_to_the_service_is_not_told_why_it_is_not_ready(tmp_path: Path):
    """A service without a token answers its studies on loopback names only, but its probes on
    any: a page of another site whose name now resolves to 127.0.0.1 (DNS rebinding) reads the
    status and not the database's path; a loopback caller still reads why."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", events="reply"))
    client = create_app(runtime).test_client()
    try:
        for name in DB_FILES:
            with (tmp_path / name).open("r+b") as file:
                file.write(b"not a database, overwritten in place " * 3)
        rebound = client.get("/readyz", headers={"Host": "rebound.example"})
        assert rebound.status_code == 503 and str(tmp_path) not in rebound.get_data(as_text=True), rebound.json
        other_site = client.get("/readyz", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"})
        assert other_site.status_code == 503 and str(tmp_path) not in other_site.get_data(as_text=True)
        assert f"cannot use the database {tmp_path / 'katuna.db'}" in client.get("/readyz").json["message"]
    finally:
        runtime.close()
