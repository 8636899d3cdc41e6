"""What the service keeps beside the studies: processed events, dead letters, dashboard sessions.

Each is a small table of its own that no study's rows refer to: the event path writes the first
two (a processed-event record in the handler's transaction), the dashboard the sessions it shares
between workers. A session is kept under the SHA-256 of its id, never the id itself: whoever
reads the database file (a local trial runs as the service's user; a backup) cannot take over a
live session, and the id, 256 random bits, needs no salt or slow hash. Beside it is the mark of
the API token the session was opened with (see :mod:`functions.adapters.web.auth`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Generator, Sequence
from contextlib import closing
from typing import Any

from functions.adapters.sqlite_connection import SqliteConnection, dumps, loads, reading
from functions.adapters.sqlite_migrations import LETTERS_BY_SENDER, PROCESSED_AGE
from functions.core import bounded_json
from functions.core.application import TickClaim
from functions.core.events import Event

PROCESSED_KEPT = 7 * 86_400.0
"""Seconds a handling's record is kept: far past the longest an event is delivered again (a
Trigger retries for 8.5 minutes, the queue's lease is 5), after which a duplicate is handled as
an event of its own, which each handler's checks of what is stored make change nothing. A
service kept every record (0.5 KB a trial) for ever, its deleted studies' too."""
PRUNE_EVERY = 1_000
"""Records made on one connection between two prunings of the old ones (through the index of
the records by age, :data:`~functions.adapters.sqlite_migrations.PROCESSED_AGE`)."""

KEPT_DEPTH = bounded_json.MAX_DEPTH
"""The most levels a dead letter's data nests and is kept, and listed, as data: the bound of every
document katuna reads. A broker keeps whatever data it was given, and data nested hundreds of
levels deep, as data, failed every later listing of the dead letters (whose JSON writer walks it
by recursion) with a 500; deeper data is kept as its JSON text (:func:`kept_data`)."""
NOT_KEPT = "data not kept: nested deeper than katuna's JSON reader and writer reach"

TICK_CLAIM = "katuna.tick-claim"
"""The key under which the last tick nobody vouched for is kept, with the function it was for as
the handler: a key no delivered event has (katuna's own are named by the UUID of the fact they
stand for, any other source's by its source and id as a JSON pair:
:func:`~functions.core.events.delivery_key`), so no handling's record is taken for it."""


class SqliteServiceRecords(SqliteConnection):
    """Processed events, dead letters and dashboard sessions, on the store's connection."""

    # processed events

    @reading
    def processed(self, event_id: str, handler: str) -> list[Event] | None:
        row = self.db.execute(
            "SELECT emitted FROM processed_events WHERE event_id = ? AND handler = ?", [event_id, handler]
        ).fetchone()
        return None if row is None else [Event.from_dict(e) for e in json.loads(row[0])]

    def record_processed(self, event_id: str, handler: str, emitted: Sequence[Event]) -> None:
        """Record a handling; every :data:`PRUNE_EVERY` records on a connection, those older
        than :data:`PROCESSED_KEPT` go."""
        now = time.time()
        self.db.execute(
            "INSERT INTO processed_events (event_id, handler, emitted, processed_at) VALUES (?, ?, ?, ?)",
            [event_id, handler, dumps([e.to_dict() for e in emitted]), now])
        self._recorded = getattr(self, "_recorded", 0) + 1
        if self._recorded % PRUNE_EVERY == 0:
            self.db.execute(f"DELETE FROM processed_events INDEXED BY {PROCESSED_AGE} WHERE processed_at < ?",
                            [now - PROCESSED_KEPT])

    # dead letters

    def add_dead_letter(self, event: Event, reason: str, keep: int = 1000, vouched: bool = True) -> None:
        """Record a dead letter, keeping the newest ``keep`` of those ``vouched`` for, and apart
        the newest ``keep`` of those nobody vouches for: older ones of its kind are dropped, so
        letters anyone could post never push out those of katuna's own events."""
        with self.transaction():
            self.db.execute(
                "INSERT INTO dead_letters (event_id, type, event, reason, received_at, vouched) VALUES (?, ?, ?, ?, ?, ?)",
                [event.id, event.type, dumps({**event.to_dict(), "data": kept_data(event.data)}), reason, time.time(),
                 int(vouched)])
            self.db.execute(f"DELETE FROM dead_letters WHERE vouched = ? AND id <= (SELECT id FROM dead_letters "
                            f"INDEXED BY {LETTERS_BY_SENDER} WHERE vouched = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                            [int(vouched), int(vouched), keep])

    def dead_letters(self, limit: int = 100, before: int | None = None) -> Generator[dict[str, Any], None, None]:
        """Up to ``limit`` of the kept dead letters older than the one numbered ``before`` (from
        the newest when None), newest first, each with its number (``id``), read one at a time
        as they are taken: each may be as large as a request body."""
        sql, args = "SELECT * FROM dead_letters", [limit]
        if before is not None:
            sql, args = sql + " WHERE id < ?", [before, limit]
        rows = self._lazy_rows(sql + " ORDER BY id DESC LIMIT ?", args)
        with closing(rows):
            for r in rows:
                yield {"id": r["id"], "event": _kept_event(r), "reason": r["reason"], "receivedAt": r["received_at"]}

    # ticks nobody vouches for

    def claim_tick(self, function: str, floor: float) -> TickClaim | None:
        """A claim on handling a tick nobody vouches for by ``function`` now, or None when one was
        claimed in the last ``floor`` seconds (a clock set back grants one). The latest claim is
        kept as a processed event of its own (:data:`TICK_CLAIM`), a row per function whatever the
        number of ticks."""
        now = time.time()
        with self.transaction():
            row = self.db.execute("SELECT processed_at FROM processed_events WHERE event_id = ? AND handler = ?",
                                  [TICK_CLAIM, function]).fetchone()
            if row is not None and 0 <= now - row[0] < floor:
                return None
            self.db.execute("INSERT OR REPLACE INTO processed_events (event_id, handler, emitted, processed_at) "
                            "VALUES (?, ?, '[]', ?)", [TICK_CLAIM, function, now])
        return TickClaim(function, now, None if row is None else row[0])

    def release_tick(self, claim: TickClaim) -> None:
        """Give back a claim whose tick was not handled (its handling failed, and the broker will
        deliver it again): the claim it replaced stands again, unless a later one was made since."""
        with self.transaction():
            if claim.previous is None:
                self.db.execute("DELETE FROM processed_events WHERE event_id = ? AND handler = ? AND processed_at = ?",
                                [TICK_CLAIM, claim.function, claim.at])
            else:
                self.db.execute("UPDATE processed_events SET processed_at = ? WHERE event_id = ? AND handler = ? "
                                "AND processed_at = ?", [claim.previous, TICK_CLAIM, claim.function, claim.at])

    # dashboard sessions

    def add_session(self, session_id: str, csrf: str, host: str, expires_at: float, token_mac: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM sessions WHERE expires_at <= ?", [time.time()])
            self.db.execute("INSERT INTO sessions (id_sha256, csrf, host, expires_at, token_mac) VALUES (?, ?, ?, ?, ?)",
                            [session_hash(session_id), csrf, host, expires_at, token_mac])

    @reading
    def session(self, session_id: str) -> dict[str, Any] | None:
        """The unexpired session ``session_id`` (its csrf, host, expires_at and token_mac), or None."""
        row = self.db.execute("SELECT csrf, host, expires_at, token_mac FROM sessions "
                              "WHERE id_sha256 = ? AND expires_at > ?", [session_hash(session_id), time.time()]).fetchone()
        return None if row is None else {"csrf": row[0], "host": row[1], "expires_at": row[2], "token_mac": row[3]}

    def delete_session(self, session_id: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM sessions WHERE id_sha256 = ?", [session_hash(session_id)])


def session_hash(session_id: str) -> str:
    """What the database keeps of a session id: its SHA-256, in hex."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def kept_data(data: Any) -> Any:
    """A dead letter's data as it is kept and listed: as it is where it nests at most
    :data:`KEPT_DEPTH` levels, else as its JSON text (``{"raw": ...}``, as data that is no JSON
    object is kept), or, past the nesting Python's JSON writer reaches, :data:`NOT_KEPT`."""
    if not bounded_json.deeper_than(data, KEPT_DEPTH):
        return data
    try:
        return {"raw": dumps(data)}
    except RecursionError:
        return {"katuna": NOT_KEPT}


def _kept_event(row: Any) -> dict[str, Any]:
    """A kept dead letter's event, its data as :func:`kept_data` lists it (one an earlier katuna
    kept nested deeper is listed so too)."""
    try:
        event = loads(row["event"])
    except RecursionError:
        return {"id": row["event_id"], "type": row["type"], "data": {"katuna": NOT_KEPT}}
    return {**event, "data": kept_data(event.get("data"))}
