"""The recorded handlings of a process's threads take turns over one store (``functions.dispatch_turns.Turns``)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from functions.adapters.sqlite_store import SqliteStore
from functions.core.errors import TemporaryError
from functions.core.events import Event
from functions.dispatch import Dispatcher
from functions.dispatch_turns import Turns
from functions.handlers import Deps
from functions.runtime import Runtime
from functions.settings import Settings

KIND = "dev.katuna.test.probe"


class Probe:
    """A handler that notes the store each handling ran over, and how many ran at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.stores: set[int] = set()

    def __call__(self, event: Event, deps: Deps) -> list[Event]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.stores.add(id(deps.store))
        time.sleep(0.005)  # gives the other threads the time to come in, were they let
        with self.lock:
            self.running -= 1
        return []


def dispatcher(store: SqliteStore, probe: Probe, turns: Turns | None) -> Dispatcher:
    return Dispatcher(Deps(store, None, time.time), handlers={"probe": probe}, routes={KIND: ("probe",)},
                      objects={}, turns=turns)


def test_recorded_handlings_on_several_threads_run_one_at_a_time_over_the_turns_store(tmp_path: Path):
    db = tmp_path / "k.db"
    shared = SqliteStore(db)
    turns, probe = Turns(Deps(shared, None, time.time), wait=30.0), Probe()
    events = [Event(KIND, {"n": n}) for n in range(24)]

    def deliver(event: Event) -> None:
        own = SqliteStore(db)
        try:
            dispatcher(own, probe, turns).deliver(event)
        finally:
            own.close()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(deliver, events))
    assert probe.stores == {id(shared)}
    assert probe.most == 1
    assert all(shared.processed(event.id, "probe") == [] for event in events)
    shared.close()


def test_a_turn_nests_on_its_own_thread(tmp_path: Path):
    store = SqliteStore(tmp_path / "k.db")
    turns = Turns(Deps(store, None, time.time), wait=1.0)
    with turns.turn() as outer, turns.turn() as inner:
        assert inner is outer
    store.close()


def test_a_thread_kept_waiting_past_the_busy_timeout_gets_a_temporary_error_and_changes_nothing(tmp_path: Path):
    store = SqliteStore(tmp_path / "k.db")
    turns, probe = Turns(Deps(store, None, time.time), wait=0.05), Probe()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with turns.turn():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    event = Event(KIND, {})
    try:
        with pytest.raises(TemporaryError, match="busy timeout"):
            dispatcher(store, probe, turns).deliver(event)
    finally:
        release.set()
        holder.join()
    assert probe.stores == set()
    assert store.processed(event.id, "probe") is None
    store.close()


def test_the_service_runtime_hands_every_thread_s_recorded_handlings_one_store(tmp_path: Path):
    runtime = Runtime(Settings(db=tmp_path / "k.db"))
    probe = Probe()

    def deliver(event: Event) -> None:
        own = runtime.dispatcher()
        Dispatcher(own.deps, handlers={"probe": probe}, routes={KIND: ("probe",)}, objects={},
                   turns=own.turns).deliver(event)

    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(deliver, [Event(KIND, {"n": n}) for n in range(12)]))
    finally:
        runtime.close()
    assert len(probe.stores) == 1
    assert probe.most == 1
