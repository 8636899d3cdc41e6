"""The event queue while another process holds the database, and as its process stops: a write
waits for the lock a slice at a time, letting the queue's one connection go between tries, so
other threads' looks at the queue answer meanwhile; a stop ends the wait at once, and the event
a waiting put carries is then either stored or its put raises, never dropped unsaid."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest
from write_lock import WriteLock, blocked

from functions.adapters.sqlite_queue import SqliteQueue
from functions.core.errors import Stopping, TemporaryError
from functions.core.events import study_created


def _waiting_put(queue: SqliteQueue) -> tuple[threading.Thread, list[BaseException]]:
    """A thread putting an event, held by the write lock another connection holds, and what
    the put raised (once it has)."""
    return blocked(lambda: queue.put(study_created("demo", "uid-1")), "the put waits on the write lock")


def _stored(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT count(*) FROM event_queue").fetchone()[0]


def test_a_put_waiting_as_the_queue_closes_raises_to_its_caller_and_the_connection_closes(tmp_path: Path):
    queue = SqliteQueue(tmp_path / "queue.db", busy_timeout=20.0)
    lock = WriteLock(tmp_path / "queue.db")
    lock.hold()
    put, raised = _waiting_put(queue)
    queue.close()
    put.join(5)
    try:
        assert not put.is_alive(), "the put gave its wait up as the queue closed"
        assert len(raised) == 1 and isinstance(raised[0], Stopping), raised
    finally:
        lock.close()
    assert not (tmp_path / "queue.db-wal").exists(), "the queue's connection was closed, the last one"
    assert _stored(tmp_path / "queue.db") == 0, "nothing was written"


def test_a_put_waiting_as_its_process_stops_raises_to_its_caller(tmp_path: Path):
    stop = threading.Event()
    queue = SqliteQueue(tmp_path / "queue.db", busy_timeout=20.0, stopped=stop.is_set)
    lock = WriteLock(tmp_path / "queue.db")
    lock.hold()
    put, raised = _waiting_put(queue)
    stop.set()
    put.join(5)
    try:
        assert not put.is_alive() and len(raised) == 1 and isinstance(raised[0], Stopping), raised
    finally:
        lock.close()
    assert _stored(tmp_path / "queue.db") == 0
    queue.put(study_created("demo", "uid-1"))
    assert _stored(tmp_path / "queue.db") == 1, "a stop gives up waits only: a free database is written"
    queue.close()


def test_a_put_without_a_stop_is_stored_once_the_lock_is_let_go_or_says_the_database_is_busy(tmp_path: Path):
    queue = SqliteQueue(tmp_path / "queue.db", busy_timeout=20.0)
    lock = WriteLock(tmp_path / "queue.db")
    lock.hold()
    put, raised = _waiting_put(queue)
    lock.release()
    put.join(20)
    assert not put.is_alive() and raised == []
    assert _stored(tmp_path / "queue.db") == 1
    queue.close()
    brief = SqliteQueue(tmp_path / "queue.db", busy_timeout=0.5)
    lock.hold()
    try:
        with pytest.raises(TemporaryError, match="is busy") as busy:  # once its half second of waiting is up
            brief.put(study_created("demo", "uid-1"))
        assert type(busy.value) is TemporaryError
    finally:
        lock.close()
        brief.close()
    assert _stored(tmp_path / "queue.db") == 1


def test_the_queue_is_looked_at_while_a_put_waits_on_a_held_database(tmp_path: Path):
    """The broker's looks (whether the queue is empty, holds a study's events, how many) are
    reads, which a held write lock does not stop: they no longer wait behind a waiting put."""
    queue = SqliteQueue(tmp_path / "queue.db", busy_timeout=20.0)
    lock = WriteLock(tmp_path / "queue.db")
    lock.hold()
    put, _ = _waiting_put(queue)
    looked: list[object] = []
    looking = threading.Thread(target=lambda: looked.extend((queue.empty(), queue.pending("demo"), queue.depth())),
                               daemon=True)
    looking.start()
    looking.join(5)
    try:
        assert not looking.is_alive() and looked == [True, False, 0], looked
        assert put.is_alive(), "the put still waits"
    finally:
        lock.close()
        put.join(20)
    assert queue.depth(0.2) == 1
    queue.close()


def test_a_stop_reaches_a_wait_for_events_while_a_put_holds_the_connection(tmp_path: Path):
    queue = SqliteQueue(tmp_path / "queue.db", busy_timeout=20.0)
    lock = WriteLock(tmp_path / "queue.db")
    lock.hold()
    put, _ = _waiting_put(queue)
    waiter = threading.Thread(target=queue.wait, args=(60.0,), daemon=True)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()
    queue.stop_waiting()
    waiter.join(5)
    try:
        assert not waiter.is_alive(), "the wait saw the stop while the put still waited"
        assert put.is_alive()
    finally:
        lock.close()
        put.join(20)
        queue.close()


def test_the_queue_is_counted_while_many_puts_wait_on_a_held_database(tmp_path: Path):
    """Each waiting put holds the queue's connection for its try alone, and waits between tries
    without it: a count (``GET /metrics``) answers behind eight of them, as behind one."""
    queue = SqliteQueue(tmp_path / "queue.db", busy_timeout=20.0)
    lock = WriteLock(tmp_path / "queue.db")
    lock.hold()
    puts = [threading.Thread(target=queue.put, args=(study_created(f"s{n}", "uid"),), daemon=True) for n in range(8)]
    for put in puts:
        put.start()
    try:
        counts = [queue.depth(1.0) for _ in range(5)]
        assert counts == [0] * 5, counts
        assert all(put.is_alive() for put in puts), "the puts still wait"
    finally:
        lock.close()
        for put in puts:
            put.join(20)
    assert queue.depth() == 8
    queue.close()


def test_a_closed_queue_is_not_counted_and_its_wait_for_events_ends(tmp_path: Path):
    """A scrape or a look answered as the worker closes its queue finds no count and no event,
    where it read through the closed connection and failed."""
    queue = SqliteQueue(tmp_path / "queue.db")
    queue.put(study_created("demo", "uid-1"))
    queue.close()
    assert queue.depth(0.2) is None
    queue.wait(0.2)


def test_a_take_whose_write_lock_came_as_it_read_the_time_is_stamped_when_it_took_the_event(tmp_path: Path):
    """The other process lets its write lock go between the take's reading of the time for a
    try and its taking of the lock: the event is stamped when it was taken all the same."""
    now, armed = [1_000.0], []

    def clock() -> float:
        read = now[0]
        if armed:
            armed.pop().release()
            now[0] = 1_200.0
        return read

    queue = SqliteQueue(tmp_path / "queue.db", busy_timeout=20.0, clock=clock)
    queue.put(study_created("demo", "uid-1"))
    lock = WriteLock(tmp_path / "queue.db")
    lock.hold()
    armed.append(lock)
    assert queue.take(0) is not None
    with closing(sqlite3.connect(tmp_path / "queue.db")) as conn:
        assert conn.execute("SELECT taken_at FROM event_queue").fetchone()[0] == 1_200.0
    lock.close()
    queue.close()


def test_a_take_that_waited_for_the_write_lock_is_stamped_when_it_took_the_event(tmp_path: Path):
    """The lease of an event taken after a wait for another process's write lock runs from the
    take, not from when the wait began: it would end as much sooner, and the event be taken
    again while handled."""
    now = [1_000.0]
    queue = SqliteQueue(tmp_path / "queue.db", busy_timeout=20.0, clock=lambda: now[0])
    queue.put(study_created("demo", "uid-1"))
    lock = WriteLock(tmp_path / "queue.db")
    lock.hold()
    taken: list[object] = []
    taking = threading.Thread(target=lambda: taken.append(queue.take(0)), daemon=True)
    taking.start()
    taking.join(0.5)
    assert taking.is_alive(), "the take waits on the write lock"
    now[0] = 1_200.0
    lock.close()
    taking.join(20)
    assert taken and taken[0] is not None
    with closing(sqlite3.connect(tmp_path / "queue.db")) as conn:
        assert conn.execute("SELECT taken_at FROM event_queue").fetchone()[0] == 1_200.0
    queue.close()
