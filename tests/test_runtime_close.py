"""Closing a service runtime: no thread goes on using a database connection closed under it,
and every connection is closed in the end (the last folds the write-ahead log in)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from functions import service_events
from functions.adapters.web import create_app
from functions.runtime import Runtime
from functions.settings import Settings


def brokers() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == "katuna-broker" and thread.is_alive()}


def test_an_application_built_twice_over_one_runtime_runs_one_broker_thread(tmp_path: Path):
    """A second broker thread, unknown to ``close()``, went on reading through its connection
    after ``close()`` had closed it: the process crashed (a segmentation fault in SQLite)."""
    before = brokers()
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        create_app(runtime)
        create_app(runtime)
        started = brokers() - before
        assert len(started) == 1
    finally:
        runtime.close()
    assert not any(thread.is_alive() for thread in started)


def test_a_broker_thread_not_stopped_in_time_closes_the_connections_as_it_ends(tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch):
    """``close()`` gives up waiting at once here: whichever of it and the broker thread ends last
    closes the connections, and the write-ahead log is folded into the database file."""
    monkeypatch.setattr(service_events, "BROKER_STOP_WAIT", 0.0)
    before = brokers()
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    runtime.start()
    started = brokers() - before
    runtime.close()
    for thread in started:
        thread.join()
    assert not (tmp_path / "katuna.db-wal").exists(), "the last connection closed folded the log in and removed it"
