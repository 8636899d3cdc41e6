"""Events for the Knative broker wait in the database's queue until the broker takes them: a
study submitted while the broker is away is stored at once, and its start is posted by the
service that runs once the broker is back, even after a restart; an event the broker refuses
for good is dropped after one post."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import Service, Sink, free_port
from waiting import eventually

pytestmark = pytest.mark.slow


def submit(service: Service, name: str) -> int:
    definition = study_definition(name=name, parallelism=1, maxTrials=1)
    return service.request("POST", "/studies", json.dumps(definition), {"Content-Type": "application/json"})[0]


def waiting(service: Service) -> float:
    """The events not yet taken by the broker, as ``/metrics`` counts them."""
    for line in service.request("GET", "/metrics")[2].decode().splitlines():
        if line.startswith("katuna_queue_depth "):
            return float(line.split()[1])
    raise AssertionError("no katuna_queue_depth in /metrics")


def settled(service: Service, count: float, timeout: float = 30.0) -> None:
    eventually(lambda: waiting(service) == count, f"{count} events waiting", timeout)


@pytest.mark.timeout(120)
def test_a_start_posted_while_the_broker_is_away_reaches_it_after_a_restart(tmp_path: Path):
    port = free_port()
    env = {"KATUNA_EVENTS": "reply", "K_SINK": f"http://127.0.0.1:{port}/"}
    service = Service(tmp_path, workers=1, **env)
    try:
        assert submit(service, "while-away") == 201, "stored at once, with no broker to take its start"
        assert waiting(service) == 1.0
    finally:
        service.close()
    broker = Sink(port=port)
    service = Service(tmp_path, workers=1, **env)
    try:
        [(headers, body)] = broker.wait(1)
        assert headers["ce-type"] == "dev.katuna.study.created" and json.loads(body)["study"] == "while-away"
        settled(service, 0.0)
    finally:
        service.close()
        broker.close()


@pytest.mark.timeout(60)
def test_an_event_the_broker_refuses_for_good_is_dropped_after_one_post(tmp_path: Path):
    broker = Sink(status=400)
    service = Service(tmp_path, workers=1, KATUNA_EVENTS="reply", K_SINK=broker.url)
    try:
        assert submit(service, "refused") == 201
        broker.wait(1)
        settled(service, 0.0)
        time.sleep(1.5)
        assert len(broker.received) == 1, "not posted again: the broker will never take it"
        assert "dropped dev.katuna.study.created" in (tmp_path / "serve.log").read_text()
    finally:
        service.close()
        broker.close()
