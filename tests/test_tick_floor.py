"""Ticks nobody vouches for (behind a broker without OIDC, any pod may post one) are handled at
most once every ``KATUNA_TICK_FLOOR`` seconds per function, through real gunicorn: a pod posting
ticks in a loop cannot multiply the tick's reads of Jobs and calls to the cloud."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from http_helpers import Service, Sink
from prometheus_client.parser import text_string_to_metric_families

TOKEN = "tick-floor-token-0123456789"


def tick() -> tuple[bytes, dict[str, str]]:
    return b"{}", {"ce-specversion": "1.0", "ce-type": "dev.knative.sources.ping", "ce-id": str(uuid.uuid4()),
                   "ce-source": "/apis/v1/namespaces/katuna/pingsources/katuna-tick",
                   "Content-Type": "application/json"}


def post_tick(service: Service, path: str, **headers: str) -> tuple[int, bool]:
    body, sent = tick()
    status, answered, _ = service.request("POST", path, body, {**sent, **headers})
    return status, answered.get("Katuna-Tick-Coalesced") == "true"


def handled(service: Service, function: str) -> float:
    """The service's count of ticks ``function`` handled, from ``/metrics``."""
    _, _, text = service.request("GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    return sum(s.value for family in text_string_to_metric_families(text.decode()) for s in family.samples
               if s.name == "katuna_events_handled_total" and s.labels["handler"] == function
               and s.labels["type"] == "dev.knative.sources.ping")


@pytest.fixture
def service(tmp_path: Path):
    sink = Sink()
    running = Service(tmp_path, workers=2, KATUNA_API_TOKEN=TOKEN, KATUNA_EVENTS="reply", K_SINK=sink.url,
                      KATUNA_TICK_FLOOR="3600")
    yield running
    running.close()
    sink.close()


def test_an_anonymous_tick_soon_after_another_does_nothing_and_each_function_has_its_own(service: Service):
    assert post_tick(service, "/functions/reconcile") == (202, False)
    assert post_tick(service, "/functions/reconcile") == (202, True), "the second, in any worker, is coalesced"
    assert post_tick(service, "/functions/provision") == (202, False), "the tick's other Trigger is not"
    assert post_tick(service, "/") == (202, False)
    assert post_tick(service, "/") == (202, True)
    assert (handled(service, "reconcile"), handled(service, "provision")) == (2.0, 2.0)


def test_a_tick_with_the_api_token_is_always_handled(service: Service):
    for _ in range(3):
        assert post_tick(service, "/functions/reconcile", Authorization=f"Bearer {TOKEN}") == (202, False)
    assert handled(service, "reconcile") == 3.0


def test_a_floor_of_zero_handles_every_tick(tmp_path: Path):
    sink = Sink()
    service = Service(tmp_path, workers=1, KATUNA_API_TOKEN=TOKEN, KATUNA_EVENTS="reply", K_SINK=sink.url,
                      KATUNA_TICK_FLOOR="0")
    try:
        assert [post_tick(service, "/functions/reconcile") for _ in range(3)] == [(202, False)] * 3
    finally:
        service.close()
        sink.close()
