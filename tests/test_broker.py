"""The embedded broker: an event's follow-ups go first, retries wait apart, bare handlers stay bare.

The broker, both queues and the dispatcher are the real ones; the handlers are small test
handlers on a real store, routed by the dispatcher's injectable table.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from functions.adapters.broker import LocalBroker, MemoryQueue
from functions.adapters.sqlite_queue import SqliteQueue
from functions.adapters.sqlite_store import SqliteStore
from functions.core.errors import TemporaryError
from functions.core.events import Event
from functions.dispatch import Dispatcher
from functions.handlers import Deps


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteStore(tmp_path / "k.db")
    yield s
    s.close()


def chain_dispatcher(store: SqliteStore, seen: list[str], fail_once: set[str] = frozenset()) -> Dispatcher:
    """``start`` emits ``next``, which emits ``last``; ``other`` emits nothing."""
    failed: set[str] = set()

    def handler(emits: str | None):
        def handle(event: Event, deps: Deps) -> list[Event]:
            name = event.data["name"]
            if name in fail_once and name not in failed:
                failed.add(name)
                raise TemporaryError("not yet")
            seen.append(name)
            return [Event(f"test.{emits}", {"name": f"{name}>{emits}"})] if emits else []
        return handle

    handlers = {"start": handler("next"), "next": handler("last"), "last": handler(None), "other": handler(None)}
    routes = {f"test.{name}": (name,) for name in handlers}
    return Dispatcher(Deps(store, executor=None, clock=time.time), handlers=handlers, routes=routes)


@pytest.mark.parametrize("queue", ["memory", "sqlite"])
def test_an_events_follow_ups_are_delivered_before_the_events_already_waiting(store, tmp_path: Path, queue):
    seen: list[str] = []
    events = MemoryQueue() if queue == "memory" else SqliteQueue(tmp_path / "k.db")
    broker = LocalBroker(chain_dispatcher(store, seen), events)
    for name, kind in (("a", "start"), ("x", "other"), ("b", "start"), ("y", "other")):
        broker.publish(Event(f"test.{kind}", {"name": name}))
    broker.run(until=lambda: True, interval=0.01)
    assert seen == ["a", "a>next", "a>next>last", "x", "b", "b>next", "b>next>last", "y"]


def test_a_retried_event_waits_until_due_without_holding_back_the_others(store):
    seen: list[str] = []
    broker = LocalBroker(chain_dispatcher(store, seen, fail_once={"a"}), MemoryQueue(), backoff=0.2)
    broker.publish(Event("test.start", {"name": "a"}))
    broker.publish(Event("test.other", {"name": "x"}))
    started = time.monotonic()
    broker.run(until=lambda: True, interval=0.01)
    assert seen == ["x", "a", "a>next", "a>next>last"]
    assert time.monotonic() - started >= 0.2, "the retry waited for its back-off"


def test_an_unrecorded_handler_runs_outside_a_transaction_and_leaves_no_record(store):
    inside: dict[str, bool] = {}

    def handler(name: str):
        def handle(event: Event, deps: Deps) -> list[Event]:
            inside[name] = deps.store.db.conn.in_transaction
            return []
        return handle

    dispatcher = Dispatcher(Deps(store, executor=None, clock=time.time),
                            handlers={"kept": handler("kept"), "bare": handler("bare")},
                            routes={"test.event": ("kept", "bare")}, unrecorded=frozenset({"bare"}))
    event = Event("test.event", {})
    dispatcher.deliver(event)
    assert inside == {"kept": True, "bare": False}
    assert store.processed(event.id, "kept") == [] and store.processed(event.id, "bare") is None


def test_a_published_event_is_handled_on_the_publishing_thread_unless_another_thread_is_handling(store):
    seen: list[str] = []
    broker = LocalBroker(chain_dispatcher(store, seen))
    broker.publish_and_handle(Event("test.start", {"name": "a"}))
    assert seen == ["a", "a>next", "a>next>last"], "handled at once, follow-ups included"

    release = threading.Event()
    running = threading.Thread(target=broker.run, kwargs={"until": release.is_set, "tick": release.wait,
                                                          "interval": 0.01})
    running.start()
    time.sleep(0.05)  # the broker's thread now waits, holding the handler's turn, in its tick
    broker.publish_and_handle(Event("test.other", {"name": "x"}))
    assert seen == ["a", "a>next", "a>next>last"], "left to the thread that is handling"
    release.set()
    running.join(timeout=5)
    assert seen[-1] == "x"

    broker.close()
    broker.publish_and_handle(Event("test.other", {"name": "y"}))
    assert "y" not in seen, "a closed broker handles nothing more"


@pytest.mark.parametrize("queue", ["memory", "sqlite"])
def test_the_brokers_thread_sees_at_once_that_another_thread_finished_the_work(store, tmp_path: Path, queue):
    seen: list[str] = []
    events = MemoryQueue() if queue == "memory" else SqliteQueue(tmp_path / "k.db")
    broker = LocalBroker(chain_dispatcher(store, seen), events)
    running = threading.Thread(target=broker.run, kwargs={"until": lambda: "a>next>last" in seen, "interval": 30})
    running.start()
    broker.publish(Event("test.other", {"name": "x"}))
    while "x" not in seen:
        time.sleep(0.01)
    time.sleep(0.1)  # past its first tick, now waiting up to 30 s for the next event
    broker.publish_and_handle(Event("test.start", {"name": "a"}))
    running.join(timeout=5)
    assert not running.is_alive(), "woken when the chain was handled elsewhere, not at its next tick"
