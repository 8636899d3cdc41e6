"""Ticks nobody vouches for (behind a broker without OIDC, any pod may post one) are handled at
most once every ``KATUNA_TICK_FLOOR`` seconds per function, through real gunicorn: a pod posting
ticks in a loop cannot multiply the tick's reads of Jobs and calls to the cloud. A tick whose
handling failed gives its claim back, so the broker's retry is handled; a replayed tick a
function has handled is its duplicate and claims nothing."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from http_helpers import Service, Sink
from prometheus_client.parser import text_string_to_metric_families

TOKEN = "tick-floor-token-0123456789"


def post_tick(service: Service, path: str, tick_id: str | None = None, **headers: str) -> tuple[int, bool]:
    sent = {"ce-specversion": "1.0", "ce-type": "dev.knative.sources.ping", "ce-id": tick_id or str(uuid.uuid4()),
            "ce-source": "/apis/v1/namespaces/katuna/pingsources/katuna-tick", "Content-Type": "application/json"}
    status, answered, _ = service.request("POST", path, b"{}", {**sent, **headers})
    return status, answered.get("Katuna-Tick-Coalesced") == "true"


def handled(service: Service, function: str) -> float:
    """The service's count of ticks ``function`` handled, duplicates aside, from ``/metrics``."""
    _, _, text = service.request("GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    return sum(s.value for family in text_string_to_metric_families(text.decode()) for s in family.samples
               if s.name == "katuna_events_handled_total" and s.labels["handler"] == function
               and s.labels["type"] == "dev.knative.sources.ping" and s.labels["outcome"] == "ok")


def claims(service: Service) -> int:
    with closing(sqlite3.connect(service.workdir / "katuna.db")) as db:
        return db.execute("SELECT count(*) FROM processed_events WHERE event_id = 'katuna.tick-claim'").fetchone()[0]


@pytest.fixture
def served(tmp_path: Path):
    sink = Sink()
    started = []

    def start(**env: str) -> Service:
        workdir = tmp_path / str(len(started))
        workdir.mkdir()
        started.append(Service(workdir, workers=2, KATUNA_API_TOKEN=TOKEN, KATUNA_EVENTS="reply",
                               K_SINK=sink.url, **{"KATUNA_TICK_FLOOR": "3600", **env}))
        return started[-1]

    yield start
    for service in started:
        service.close()
    sink.close()


def test_an_anonymous_tick_soon_after_another_does_nothing_and_each_function_has_its_own(served):
    service = served()
    assert post_tick(service, "/functions/reconcile") == (202, False)
    assert post_tick(service, "/functions/reconcile") == (202, True), "the second, in any worker, is coalesced"
    assert post_tick(service, "/functions/provision") == (202, False), "the tick's other Trigger is not"
    assert post_tick(service, "/") == (202, True), "both functions handled one already"
    assert (handled(service, "reconcile"), handled(service, "provision")) == (1.0, 1.0)


def test_a_tick_posted_to_the_service_itself_claims_each_function(served):
    service = served()
    assert post_tick(service, "/") == (202, False)
    assert post_tick(service, "/functions/provision") == (202, True)
    assert post_tick(service, "/functions/reconcile") == (202, True)


def test_a_tick_with_the_api_token_is_always_handled(served):
    service = served()
    for _ in range(3):
        assert post_tick(service, "/functions/reconcile", Authorization=f"Bearer {TOKEN}") == (202, False)
    assert handled(service, "reconcile") == 3.0


def test_a_replayed_tick_claims_nothing_and_the_next_tick_is_handled(served):
    service = served()
    replayed = str(uuid.uuid4())
    assert post_tick(service, "/functions/provision", replayed, Authorization=f"Bearer {TOKEN}") == (202, False)
    for _ in range(3):
        assert post_tick(service, "/functions/provision", replayed) == (202, False), "a duplicate, answered"
    assert post_tick(service, "/functions/provision") == (202, False), "the real tick after the replays"
    assert post_tick(service, "/functions/provision") == (202, True)


def test_a_claim_given_back_lets_the_next_tick_through_unless_a_later_one_was_made(tmp_path: Path):
    """What a tick whose handling failed does with its claim, so the broker's retry is handled;
    a claim made since (the floor passed meanwhile) stands."""
    from functions.adapters.sqlite_store import SqliteStore

    store = SqliteStore(tmp_path / "katuna.db")
    try:
        first = store.claim_tick("reconcile", 3600)
        assert first is not None and store.claim_tick("reconcile", 3600) is None
        store.release_tick(first)
        second = store.claim_tick("reconcile", 3600)
        assert second is not None, "the retry is handled"
        store.release_tick(first)
        assert store.claim_tick("reconcile", 3600) is None, "giving back an old claim leaves the later one"
        store.release_tick(second)
        assert store.claim_tick("reconcile", 0.0) is not None and store.claim_tick("provision", 3600) is not None
    finally:
        store.close()


def test_a_function_that_does_not_exist_claims_nothing(served):
    service = served()
    assert [post_tick(service, f"/functions/{'n' * 2000}{i}")[0] for i in range(5)] == [503] * 5, "a newer release's, retried"
    assert claims(service) == 0


def test_a_floor_of_zero_handles_every_tick(served):
    service = served(KATUNA_TICK_FLOOR="0")
    assert [post_tick(service, "/functions/reconcile") for _ in range(3)] == [(202, False)] * 3
