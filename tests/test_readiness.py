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
