"""A durable event queue in the store's database, shared by every process that opens it.

``katuna serve`` runs several gunicorn workers; each takes events from this table, so an event
published by one worker (or by a trial that one worker runs) may be handled by any. Taking an
event leases it; an event whose taker died is taken again once its lease runs out, so delivery
is at least once and the handlers' idempotency does the rest. A taker that can tell its takers
ended (:func:`functions.adapters.owners.taker_ended`: a worker killed on this machine, and
started again by gunicorn) takes their events back at once, where their studies would wait
out the lease; an event whose takers died :data:`MAX_TAKEN_BACK` times waits it out all the
same, as it may be what kills them. Every statement's storage failure
(a lock held past the busy timeout, a full disk) is katuna's temporary error, as the store's are
(:func:`functions.adapters.sqlite_errors.translated`): the service answers 503 and the broker
tries again, where a raw SQLite error would be an internal error.

The one connection is shared by the process's threads, one at a time, and a statement waits for
another process's write lock (a backup, an ``sqlite3`` shell) a try at a time, holding the
connection for the try alone (:data:`TRY_SECONDS` of SQLite's own busy wait) and waiting between
tries without it, up to a slice (:mod:`functions.adapters.sqlite_write_lock`): one waiting out
the busy timeout in SQLite, which heeds no interrupt, held the connection for as long, so that
every other thread's look at the queue (the broker's, whether it is empty or holds a study's
events, and ``GET /metrics``' count) waited behind it, and a stopping service gave its broker
thread up; waiting whole slices with it, the puts of a few trials' progress took it in turns and
left a look none. As the
process stops or the queue closes, a statement still waiting gives up with
:class:`~functions.core.errors.Stopping`, having written nothing: an event put is stored or its
put raises, never dropped unsaid.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

from functions.adapters.broker import MAX_BACKOFF, MAX_DELIVERIES, Delivery
from functions.adapters.sqlite_errors import translated
from functions.adapters.sqlite_file_system import journal_mode, shared_holder
from functions.adapters.sqlite_write_lock import SLICE, given_up, held_elsewhere
from functions.core.events import Event
from functions.core.file_systems import ROLLBACK_ON_NETWORK, NetworkRule

log = logging.getLogger("katuna.queue")
Result = TypeVar("Result")

TABLE = "event_queue"
LEASE_SECONDS = 300.0
TAKE_BACK_EVERY = 5.0
"""Seconds between two looks of a taker for events whose takers ended."""
MAX_TAKEN_BACK = MAX_DELIVERIES
"""Takes of an event after which it is no longer taken back from a taker that ended: it may be
what ends them (a handling that runs the worker out of memory), so it waits out its lease."""
POLL_SECONDS = 0.05
TRY_SECONDS = 0.01
"""Seconds of SQLite's busy wait a statement is given while it holds the connection: enough for
another connection's short write, and short enough that a look at the queue is not kept waiting
behind statements that wait on a write lock held longer (:meth:`SqliteQueue._waiting`)."""
CLOSE_WAIT = 0.5
"""Seconds :meth:`SqliteQueue.close` waits for another thread to let the connection go before
leaving the closing to it (see there)."""
CLOCK_SLACK = 60.0
"""Seconds by which the clocks of the processes sharing the queue may differ. Times are the
wall clock's, shared by every process: an event due later than the queue's longest retry delay
from now, or taken later than this from now, was stamped before the clock was set back (an NTP
step), and is due now, its lease over; it would otherwise wait as long as the step."""
AVAILABLE = "(due <= ? OR due > ?) AND (taken_by IS NULL OR taken_at < ? OR taken_at > ?)"
"""An event a taker may claim at a time ``now``, with ``now``, ``now + longest delay + CLOCK_SLACK``,
``now - lease`` and ``now + CLOCK_SLACK`` (:data:`CLOCK_SLACK`)."""


def create_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY, event_id TEXT NOT NULL, "
        "body TEXT NOT NULL, due REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
        "taken_by TEXT, taken_at REAL)"
    )
    conn.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_due ON {TABLE} (due)")


class SqliteQueue:
    """Implements :class:`functions.adapters.broker.EventQueue` on a table; safe from any thread."""

    def __init__(self, path: str | Path, busy_timeout: float = 30.0, lease_seconds: float = LEASE_SECONDS,
                 taker: str | None = None, ended: Callable[[str], bool] = lambda taker: False,
                 longest_delay: float = MAX_BACKOFF, clock: Callable[[], float] = time.time,
                 stopped: Callable[[], bool] = lambda: False, network: NetworkRule = ROLLBACK_ON_NETWORK) -> None:
        """``taker`` names this queue's holds on the events it takes (a new random name by
        default); ``ended`` tells whether another taker has ended (none, by default);
        ``longest_delay`` is the longest wait its takers put an event back for (:meth:`retry`),
        the local broker's by default; ``clock`` is the wall clock every process shares;
        ``stopped`` says when the process stops, and a wait for the write lock is given up;
        ``network``, the store's rule for a database on a network file system, whose journal the
        queue keeps too (:mod:`functions.adapters.sqlite_file_system`)."""
        self._lease = lease_seconds
        self._busy_timeout = busy_timeout
        self._process_stopped = stopped
        self._longest_delay = longest_delay
        self._clock = clock
        self._path = Path(path)
        self._lock = threading.Lock()
        """Held by the one thread using the connection (:meth:`_held`)."""
        self._closing = False
        self._wake = threading.Event()
        self._woken = threading.Event()
        self._stopped = threading.Event()
        self._taker = taker or uuid.uuid4().hex
        self._ended = ended
        self._take_back_at = 0.0
        with translated(self._path):
            self._conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
            self._conn.execute(f"PRAGMA journal_mode={journal_mode(shared_holder(self._path, network))}")
            create_table(self._conn)
            self._conn.execute(f"PRAGMA busy_timeout = {int(TRY_SECONDS * 1000)}")

    def close(self) -> None:
        """Close the connection now, or, where another thread is in a statement, as that thread
        lets it go: within a try of a wait for the write lock (:data:`TRY_SECONDS`), which
        then gives up."""
        self._closing = True
        if self._lock.acquire(timeout=CLOSE_WAIT):
            try:
                self._conn.close()
            finally:
                self._lock.release()

    def _waiting(self, statements: Callable[[], Result]) -> Result:
        """``statements`` run with the connection this thread's alone, tried again while another
        connection holds the write lock, up to the busy timeout; between tries the connection
        is let go and the thread waits without it, twice as long each time up to a slice, so
        that other threads' statements have it meanwhile however many wait.
        :class:`~functions.core.errors.Stopping` once the process stops or the queue closes
        meanwhile, and once it has closed (only a stopping process closes it, and a thread of
        its may still publish). A try that found the lock held wrote nothing, so none is made
        twice."""
        deadline = time.monotonic() + self._busy_timeout
        pause = TRY_SECONDS
        while True:
            with self._held() as held:
                if not held:
                    raise given_up()
                try:
                    return statements()
                except sqlite3.OperationalError as exc:
                    if not held_elsewhere(exc) or time.monotonic() >= deadline:
                        raise
            if self._process_stopped():
                raise given_up()
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(2 * pause, SLICE)

    @contextmanager
    def _held(self, within: float = -1) -> Iterator[bool]:
        """The connection to this thread alone (whether it was had within ``within`` seconds, or
        at all if that is negative, and is still open: not once :meth:`close` was called), its
        storage errors katuna's; closed as it is let go if :meth:`close` came meanwhile."""
        if not self._lock.acquire(timeout=within):
            yield False
            return
        if self._closing:
            self._conn.close()
            self._lock.release()
            yield False
            return
        try:
            with translated(self._path):
                yield True
        finally:
            if self._closing:
                self._conn.close()
            self._lock.release()

    def stop_waiting(self) -> None:
        """Let every :meth:`take`, waiting now or to come, return None at once: the process is
        stopping, and each thread that takes events should see its stop flag without waiting out
        its timeout (a wake reaches only one of them)."""
        self._stopped.set()
        self._wake.set()

    def put(self, event: Event, follow_up: bool = False, wake: bool = True) -> None:
        """Events are taken in order of ``due``; a follow-up is due since the epoch, which puts
        it ahead of every event waiting but other follow-ups. The event is stored, or the put
        raises: the database busy past the busy timeout, or :class:`~functions.core.errors.Stopping`
        as the process stops or the queue closes while it waits (:meth:`_waiting`)."""
        due = 0.0 if follow_up else self._clock()
        self._waiting(lambda: self._conn.execute(f"INSERT INTO {TABLE} (event_id, body, due) VALUES (?, ?, ?)",
                                                 (event.id, json.dumps(event.to_dict()), due)))
        if wake:
            self._wake.set()

    def take(self, timeout: float) -> Delivery | None:
        deadline = time.monotonic() + timeout
        while True:
            if self._stopped.is_set():
                return None
            delivery = self._claim()
            if delivery is not None or time.monotonic() >= deadline or self._woken.is_set():
                self._woken.clear()
                return delivery
            self._wake.wait(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            self._wake.clear()

    def wait(self, timeout: float) -> None:
        """Until an event may be claimed, one is put here or woken for, the queue is stopped,
        or ``timeout`` passed; looking every poll's time, as an event put by another process
        wakes nothing here. A look waits no longer than a poll for the connection, which another
        thread's statement may hold for the busy timeout, so that a stop is seen meanwhile."""
        deadline = time.monotonic() + timeout
        while not (self._stopped.is_set() or self._woken.is_set()):
            remaining = deadline - time.monotonic()
            with self._held(min(POLL_SECONDS, max(0.0, remaining))) as held:
                if held and self._available(self._clock()):
                    return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wake.wait(min(POLL_SECONDS, remaining))
            self._wake.clear()

    def _available(self, now: float) -> bool:
        """Whether an event may be claimed at ``now`` (under the lock)."""
        return self._conn.execute(f"SELECT 1 FROM {TABLE} WHERE {AVAILABLE} LIMIT 1", self._bounds(now)).fetchone() \
            is not None

    def _bounds(self, now: float) -> tuple[float, float, float, float]:
        """:data:`AVAILABLE`'s arguments at ``now``."""
        return now, now + self._longest_delay + CLOCK_SLACK, now - self._lease, now + CLOCK_SLACK

    def _claim(self) -> Delivery | None:
        row = self._waiting(lambda: self._claim_row(self._clock()))
        if row is None:
            return None
        try:
            event = Event.from_dict(json.loads(row[1]))
        except (KeyError, TypeError, ValueError) as exc:
            self._discard(row[0], exc)
            return None
        return Delivery(event, row[2] + 1, row[0])

    def _claim_row(self, now: float) -> tuple[int, str, int] | None:
        """Take the first event available at ``now``, the time of this try, as the write lock
        was had (a claim that waited for the lock is stamped when it took its event, its lease
        whole, even where the lock came between the time read for the try and its taking): its
        row (under the lock)."""
        if time.monotonic() >= self._take_back_at:
            self._take_back(now)
        if not self._available(now):
            return None
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            now = self._clock()
            row = self._conn.execute(
                f"SELECT id, body, attempts FROM {TABLE} WHERE {AVAILABLE} ORDER BY due, id LIMIT 1",
                self._bounds(now)).fetchone()
            if row is not None:
                self._conn.execute(
                    f"UPDATE {TABLE} SET taken_by = ?, taken_at = ?, attempts = attempts + 1 WHERE id = ?",
                    (self._taker, now, row[0]))
            self._conn.execute("COMMIT")
        except BaseException:
            self._roll_back()
            raise
        return row

    def _take_back(self, now: float) -> None:
        """Make the events whose takers ended available again (under the lock)."""
        self._take_back_at = time.monotonic() + TAKE_BACK_EVERY
        held = [row[0] for row in self._conn.execute(
            f"SELECT DISTINCT taken_by FROM {TABLE} WHERE taken_by IS NOT NULL AND taken_by != ? AND taken_at >= ? "
            "AND attempts < ?", (self._taker, now - self._lease, MAX_TAKEN_BACK))]
        for ended in filter(self._ended, held):
            count = self._conn.execute(
                f"UPDATE {TABLE} SET taken_by = NULL, taken_at = NULL WHERE taken_by = ? AND attempts < ?",
                (ended, MAX_TAKEN_BACK)).rowcount
            log.warning("took back %d event(s) taken by %s, which ended before it settled them", count, ended)

    def _roll_back(self) -> None:
        """End a failed claim's transaction, if SQLite has not ended it already (as it does when
        a COMMIT fails on a full disk): the claim's own error is the one to report."""
        if self._conn.in_transaction:
            with suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def _discard(self, row_id: int, exc: Exception) -> None:
        """Drop a queued row that is no event (a damaged file): it would fail every taker."""
        log.error("dropped queued row %s, which is no event: %s: %s", row_id, type(exc).__name__, exc)
        self._waiting(lambda: self._conn.execute(f"DELETE FROM {TABLE} WHERE id = ?", (row_id,)))

    def wake(self) -> None:
        self._woken.set()
        self._wake.set()

    def done(self, delivery: Delivery) -> None:
        self._waiting(lambda: self._conn.execute(f"DELETE FROM {TABLE} WHERE id = ?", (delivery.token,)))

    def retry(self, delivery: Delivery, delay: float) -> None:
        """Put the event back, due ``delay`` seconds from now: at most the queue's longest delay,
        as a later due would be taken for a clock set back and taken at once."""
        if delay > self._longest_delay:
            raise ValueError(f"a retry in {delay:g} s is past this queue's longest delay of {self._longest_delay:g} s")
        due = self._clock() + delay
        self._waiting(lambda: self._conn.execute(f"UPDATE {TABLE} SET taken_by = NULL, due = ? WHERE id = ?",
                                                 (due, delivery.token)))

    def release(self, delivery: Delivery) -> None:
        """Give back an event this process took and will not settle (its post cut short as the
        process stops): any process may take it at once, in its place in the queue, the cut post
        not counted; one another taker holds already is left alone."""
        self._waiting(lambda: self._conn.execute(f"UPDATE {TABLE} SET taken_by = NULL, taken_at = NULL, "
                                                 "attempts = max(attempts - 1, 0) WHERE id = ? AND taken_by = ?",
                                                 (delivery.token, self._taker)))

    def empty(self) -> bool:
        return self._waiting(lambda: self._conn.execute(f"SELECT 1 FROM {TABLE} LIMIT 1").fetchone() is None)

    def depth(self, within: float = -1) -> int | None:
        """How many events wait in the queue or are being handled; None where the connection
        was not had within ``within`` seconds (at all if negative), or is closed: another
        thread's statement holds it for a try of its wait for the write lock at a time."""
        with self._held(within) as held:
            return self._conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0] if held else None

    def pending(self, study: str) -> bool:
        """Whether any event about ``study`` is waiting or being handled."""
        return self._waiting(lambda: self._conn.execute(
            f"SELECT 1 FROM {TABLE} WHERE CASE WHEN json_valid(body) THEN json_extract(body, '$.data.study') END = ? "
            "LIMIT 1", (study,)).fetchone() is not None)
