"""Concurrency: ``katuna serve`` with 4 gunicorn workers on loopback, hit at once by study
submissions and by a flood of redelivered ``trial.finished`` CloudEvents.

A few "settled" studies run to completion first; their trials' ``trial.finished`` events are
then redelivered many times (as Knative redelivers), mixed with events for trials that do not
exist, while new studies are submitted, some twice. The property: every answer is 2xx, a
deliberate 4xx, or a 503 with ``Retry-After``; no ``database is locked`` reaches a client; every
study ends with exactly its trials, each launched once; the settled studies do not change.

Sizes come from ``KATUNA_LOAD_EVENTS`` / ``KATUNA_LOAD_STUDIES`` (defaults 1000 and 50).
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import Service

from functions.adapters.cloudevents_http import to_http
from functions.core.events import trial_finished

pytestmark = pytest.mark.slow

EVENTS = int(os.environ.get("KATUNA_LOAD_EVENTS", "1000"))
STUDIES = int(os.environ.get("KATUNA_LOAD_STUDIES", "50"))
SETTLED = 3
TRIALS = 2
THREADS = 16


def _uids(workdir: Path) -> dict[str, str]:
    with closing(sqlite3.connect(workdir / "katuna.db")) as db:
        return dict(db.execute("SELECT name, uid FROM studies"))


def _submit(service: Service, name: str) -> tuple[int, dict, bytes]:
    definition = study_definition(name=name, maxTrials=TRIALS, parallelism=2)
    return service.request("POST", "/studies", json.dumps(definition), {"Content-Type": "application/json"})


def _submit_until_taken(service: Service, name: str) -> None:
    """Submit a study again while it is answered 503, as a client honouring ``Retry-After`` does."""
    for _ in range(30):
        status, headers, body = _submit(service, name)
        if status != 503:
            assert status in (200, 201), body
            return
        time.sleep(float(headers["Retry-After"]))
    raise AssertionError(f"{name} was refused 30 times")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    running = Service(tmp_path_factory.mktemp("load"), workers=4)
    yield running
    running.close()


def test_four_workers_under_a_flood_lose_and_repeat_nothing(service: Service):
    settled = [f"settled-{i}" for i in range(SETTLED)]
    for name in settled:
        assert _submit(service, name)[0] == 201
    before = {name: service.wait_for(name, timeout=120) for name in settled}
    settled_trials = {name: service.json("GET", f"/studies/{name}/trials")[1] for name in settled}
    uids = _uids(service.workdir)

    rng = random.Random(8)
    events = []
    for _ in range(EVENTS):
        name = rng.choice(settled)
        number = rng.randrange(TRIALS + 1)  # one past the last: a trial that does not exist
        events.append(trial_finished(name, uids[name], number, 1, outcome="exited", exit_code=0))
    new = [f"load-{i}" for i in range(STUDIES)]
    work = [("event", e) for e in events] + [("study", n) for n in new] + [("study", n) for n in new[: STUDIES // 5]]
    rng.shuffle(work)

    answers: list[tuple[str, int, dict, bytes]] = []
    lock = threading.Lock()

    def fire(item) -> None:
        kind, payload = item
        if kind == "study":
            status, headers, body = _submit(service, payload)
        else:
            event_headers, event_body = to_http(payload)
            status, headers, body = service.request("POST", "/", event_body, event_headers)
        with lock:
            answers.append((kind, status, headers, body))

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(fire, work))

    statuses = Counter((kind, status) for kind, status, _, _ in answers)
    assert len(answers) == len(work)
    allowed = {("event", 202), ("study", 201), ("study", 200), ("event", 503), ("study", 503)}
    assert set(statuses) <= allowed, statuses
    for _, status, headers, body in answers:
        assert b"database is locked" not in body
        if status == 503:
            assert headers.get("Retry-After"), body
    assert statuses[("study", 201)] + statuses[("study", 503)] >= STUDIES

    for name in new:
        if _submit(service, name)[0] not in (200, 201):  # a submission answered 503 is sent again
            raise AssertionError(f"{name} could not be submitted")
    for name in new:
        study = service.wait_for(name, timeout=300)
        assert (study["status"], study["counts"]["complete"], study["trials"]) == ("completed", TRIALS, TRIALS), study
    for name in settled:
        assert service.json("GET", f"/studies/{name}")[1]["counts"] == before[name]["counts"]
        assert service.json("GET", f"/studies/{name}/trials")[1] == settled_trials[name]

    logs = service.workdir / "katuna-logs"
    for name in settled + new:
        assert sorted(p.name for p in (logs / name).glob("*/*.log")) == [f"{n}.1.log" for n in range(TRIALS)], name
    text = (service.workdir / "serve.log").read_text()
    assert "Traceback" not in text and "database is locked" not in text


def test_a_writer_holding_the_database_past_the_busy_timeout_gets_503s_and_every_study_moves_on(tmp_path: Path):
    """Another connection holds the write lock past KATUNA_BUSY_TIMEOUT again and again (a slow
    writer) while studies are submitted and events redelivered to two workers: every refusal is a
    503 with ``Retry-After`` (the event queue's writes included, made after a handler committed),
    never a 500; no ``database is locked`` and no traceback in the log; and every study runs to its
    end once the writer is gone, none left taken by a broker whose queue write failed."""
    service = Service(tmp_path, workers=2, KATUNA_BUSY_TIMEOUT="0.3")
    stop = threading.Event()

    def hold() -> None:
        while not stop.is_set():
            writer = sqlite3.connect(tmp_path / "katuna.db", timeout=60, isolation_level=None)
            writer.execute("BEGIN IMMEDIATE")
            stop.wait(0.5)
            writer.execute("ROLLBACK")
            writer.close()
            stop.wait(0.02)

    try:
        assert _submit(service, "settled")[0] == 201
        service.wait_for("settled", timeout=120)
        uid = _uids(tmp_path)["settled"]
        holder = threading.Thread(target=hold)
        holder.start()
        new = [f"busy-{i}" for i in range(16)]

        def fire(i: int) -> tuple[int, dict, bytes]:
            if i % 2:
                headers, body = to_http(trial_finished("settled", uid, i % TRIALS, 1, outcome="exited", exit_code=0))
                return service.request("POST", "/", body, headers)
            return _submit(service, new[i // 2])

        try:
            with ThreadPoolExecutor(max_workers=8) as pool:
                answers = list(pool.map(fire, range(2 * len(new))))
        finally:
            stop.set()
            holder.join()
        assert {status for status, _, _ in answers} <= {200, 201, 202, 503}, Counter(s for s, _, _ in answers)
        assert all(headers.get("Retry-After") for status, headers, _ in answers if status == 503)
        for name in new:
            _submit_until_taken(service, name)
        for name in new:
            assert service.wait_for(name, timeout=150)["status"] == "completed", name
    finally:
        service.close()
    text = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in text and "database is locked" not in text
