"""The event queue as its process stops while another process holds the database: a statement
then waits out the busy timeout (SQLite's wait heeds no interrupt), holding the queue's one
connection, and the stop must neither wait as long nor lose the event that statement puts."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from write_lock import WriteLock

from functions.adapters.sqlite_queue import SqliteQueue
from functions.core.events import study_created


def _waiting_put(queue: SqliteQueue) -> threading.Thread:
    """A thread putting an event, held by the write lock another connection holds."""
    put = threading.Thread(target=queue.put, args=(study_created("demo", "uid-1"),), daemon=True)
    put.start()
    put.join(0.5)
    assert put.is_alive(), "the put waits on the write lock"
    return put


def test_a_queue_closed_while_a_put_waits_on_a_held_database_is_closed_once_the_put_is_done(tmp_path: Path):
    queue = SqliteQueue(tmp_path / "queue.db", busy_timeout=20.0)
    lock = WriteLock(tmp_path / "queue.db")
    lock.hold()
    put = _waiting_put(queue)
    queue.close()
    assert put.is_alive(), "close() returned without waiting for the put"
    lock.close()
    put.join(20)
    assert not put.is_alive()
    assert not (tmp_path / "queue.db-wal").exists(), "the put's thread closed the connection, the last one"
    with sqlite3.connect(tmp_path / "queue.db") as conn:
        assert conn.execute("SELECT count(*) FROM event_queue").fetchone() == (1,)


def test_a_stop_reaches_a_wait_for_events_while_a_put_holds_the_connection(tmp_path: Path):
    queue = SqliteQueue(tmp_path / "queue.db", busy_timeout=20.0)
    lock = WriteLock(tmp_path / "queue.db")
    lock.hold()
    put = _waiting_put(queue)
    waiter = threading.Thread(target=queue.wait, args=(60.0,), daemon=True)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()
    queue.stop_waiting()
    waiter.join(5)
    try:
        assert not waiter.is_alive(), "the wait saw the stop while the put still held the connection"
        assert put.is_alive()
    finally:
        lock.close()
        put.join(20)
        queue.close()


def test_the_queue_depth_asked_within_a_bound_is_unknown_while_a_put_holds_the_connection(tmp_path: Path):
    queue = SqliteQueue(tmp_path / "queue.db", busy_timeout=20.0)
    lock = WriteLock(tmp_path / "queue.db")
    lock.hold()
    put = _waiting_put(queue)
    try:
        assert queue.depth(0.2) is None
    finally:
        lock.close()
        put.join(20)
    assert queue.depth(0.2) == 1
    queue.close()

