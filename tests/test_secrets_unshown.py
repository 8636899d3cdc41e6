"""The service's tokens and cloud credentials appear nowhere it shows: not in what shows its
settings (their ``repr``, which a log line, a debugger, a ``partial`` of them or a traceback
showing its frames' locals writes), and not in its log, its answers, its database or its
trials' environment."""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
import time
import traceback
from contextlib import closing
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import Service

from functions.settings import Settings

API_TOKEN = "api-token-7f3c9a1e5b2d4c6a8e0f"
METRICS_TOKEN = "metrics-token-2b4d6f8a0c1e3a5c"
ENVIRONMENT = {"KATUNA_API_TOKEN": API_TOKEN, "KATUNA_METRICS_TOKEN": METRICS_TOKEN, "KATUNA_DB": "k.db"}


def _shows_no_token(text: str) -> None:
    assert API_TOKEN not in text and METRICS_TOKEN not in text, text


def _logged(message: str, *args: object) -> str:
    """The message of a log line written with ``args``, as a handler formats it."""
    return logging.LogRecord("katuna", logging.WARNING, __file__, 1, message, args, None).getMessage()


def _fails_holding(settings: Settings) -> None:
    raise RuntimeError(f"could not start with {settings!r}")


def test_the_settings_never_show_their_tokens():
    settings = Settings.from_env(ENVIRONMENT)
    assert (settings.api_token, settings.metrics_token) == (API_TOKEN, METRICS_TOKEN), "still held, still used"
    for shown in (repr(settings), str(settings), f"{settings}", _logged("settings: %r", settings), repr(partial(print, settings)),
                  repr(settings.with_db("other.db")), repr(replace(settings, events="reply"))):
        _shows_no_token(shown)
        assert "db=PosixPath('k.db')" in shown or "other.db" in shown, "the other settings are shown as before"
    try:
        _fails_holding(settings)
    except RuntimeError as exc:
        _shows_no_token("".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format()))
    assert settings != replace(settings, api_token="another-token-of-22-chars"), "the token still tells settings apart"


CLOUD_SECRET = "aws-secret-access-key-5e7a9c1b3d"
TRIAL = ("import os, sys, time\n"
         "print('\\n'.join(f'{name}={value}' for name, value in sorted(os.environ.items())))\n"
         "for step in range(1, 4):\n"
         "    print(f'step={step} loss={float(sys.argv[1]) + step}', flush=True)\n"
         "    time.sleep(0.05)\n")


@pytest.mark.timeout(180)
def test_a_service_shows_its_tokens_and_cloud_credentials_nowhere(tmp_path: Path):
    """``katuna serve`` with both tokens and a cloud credential in its environment, its log at
    DEBUG, runs a study with early stopping whose trials print their whole environment: none of
    the three is in a trial's environment, an answer of the API, the dashboard or the metrics,
    the service's log, or the database and trial logs it leaves."""
    environment = {"KATUNA_API_TOKEN": API_TOKEN, "KATUNA_METRICS_TOKEN": METRICS_TOKEN, "KATUNA_LOG_LEVEL": "DEBUG",
                   "AWS_SECRET_ACCESS_KEY": CLOUD_SECRET}
    service = Service(tmp_path, workers=1, **environment)
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}
    definition = study_definition(name="shown", parallelism=2, maxTrials=3,
                                  earlyStopping={"algorithm": "median", "settings": {"n_startup_trials": 1}},
                                  trialTemplate={"command": [sys.executable, "-c", TRIAL, "${trialParameters.x}"]})
    try:
        status, _, body = service.request("POST", "/studies", json.dumps(definition),
                                          {"Content-Type": "application/json", **bearer})
        assert status == 201, body
        shown = [body, *(_ended(service, bearer))]
        for path in ("/studies", "/studies/shown", "/studies/shown/trials", "/studies/shown/best",
                     "/studies/shown/trials/0", "/studies/shown/trials/0/observations", "/dead-letters", "/metrics",
                     "/ui/studies/shown", "/ui/studies/shown/trials/0", "/healthz", "/readyz", "/openapi.json"):
            for headers in (bearer, {}):
                status, answer_headers, answer = service.request("GET", path, headers=headers)
                shown.append(json.dumps(answer_headers).encode() + answer)
        trial_log = service.request("GET", "/studies/shown/trials/0/logs", headers=bearer)[2].decode()
        assert "PATH=" in trial_log and "KATUNA_TRIAL=0" in trial_log, trial_log
        assert not [line for line in trial_log.splitlines() if line.startswith(("AWS_", "KATUNA_REPORT"))], trial_log
    finally:
        service.close()
    shown += [path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()]
    with closing(sqlite3.connect(tmp_path / "katuna.db")) as db:
        shown.append("\n".join(db.iterdump()).encode())
    for secret in (API_TOKEN, METRICS_TOKEN, CLOUD_SECRET):
        assert not [text[:200] for text in shown if secret.encode() in text], secret


def _ended(service: Service, headers: dict[str, str]) -> list[bytes]:
    """The answers to ``GET /studies/shown`` until the study ended."""
    answers = []
    for _ in range(600):
        status, _, body = service.request("GET", "/studies/shown", headers=headers)
        answers.append(body)
        if status == 200 and json.loads(body)["status"] in ("completed", "failed"):
            return answers
        time.sleep(0.1)
    raise AssertionError(f"the study did not end: {answers[-1]!r}")
