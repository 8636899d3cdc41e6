"""The API server's resourceVersion counter and its window of recent changes, which list
responses quote and watches replay from.

Every change of any object takes the next version of one global counter (as etcd's revision);
the last ``size`` changes are kept. A watch from a version older than the window is answered
``410 Gone`` (``too old resource version``), so a client must list again.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

from kube_standin.clock import RealClock
from kube_standin.objects import snapshot, status
from kube_standin.selectors import matches


@dataclass(frozen=True)
class Change:
    """One ADDED, MODIFIED or DELETED event of one object."""

    version: int
    type: str
    resource: str
    object: dict

    @property
    def namespace(self) -> str:
        return self.object["metadata"].get("namespace", "")

    def event(self) -> dict:
        """The watch event as it goes over the wire."""
        return {"type": self.type, "object": self.object}


class Gone(Exception):
    """A watch asked for changes older than the window."""

    def __init__(self, asked: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {asked} ({oldest})")
        self.asked, self.oldest = asked, oldest

    def status(self) -> dict:
        return status(410, "Expired", str(self))


class History:
    """Versions and the window of recent changes; ``condition`` wakes watchers on each one."""

    def __init__(self, lock: threading.RLock, size: int = 1000, clock: RealClock | None = None) -> None:
        self.clock = clock or RealClock()
        self.condition = threading.Condition(lock)
        self.version = 0
        self.changes: deque[Change] = deque(maxlen=size)
        self.first_kept = 1
        """The oldest version a watch may resume after (minus one)."""
        self.closed = False
        """The server is stopping: every watch ends."""

    def close(self) -> None:
        with self.condition:
            self.closed = True
            self.condition.notify_all()

    def record(self, type_: str, resource: str, obj: dict) -> None:
        """Give ``obj`` the next version and keep a copy of it as a change (caller holds the lock)."""
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        if len(self.changes) == self.changes.maxlen:
            self.first_kept = self.changes[0].version + 1
        self.changes.append(Change(self.version, type_, resource, snapshot(obj)))
        self.condition.notify_all()

    def since(self, version: int, resource: str | None = None, namespace: str | None = None,
              selector: str | None = None) -> list[Change]:
        """The kept changes after ``version`` (caller holds the lock); Gone when some are lost."""
        if version < self.first_kept - 1:
            raise Gone(version, self.first_kept - 1)
        newer = islice(self.changes, max(0, version - self.changes[0].version + 1), None) if self.changes else ()
        return [c for c in newer if _wanted(c, resource, namespace, selector)]

    def follow(self, version: int, resource: str, namespace: str | None, selector: str | None,
               until: float, bookmarks: float | None = None) -> Iterator[dict]:
        """Watch events after ``version`` until the clock's monotonic ``until``; a BOOKMARK with
        the current version after ``bookmarks`` seconds without any event, when asked. (A watch
        waits for changes in real time, whatever the clock.)"""
        clock = self.clock
        last_sent = clock.monotonic()
        while True:
            with self.condition:
                changes = self.since(version, resource, namespace, selector)
                if not changes:
                    wait = until - clock.monotonic()
                    if bookmarks is not None:
                        wait = min(wait, bookmarks - (clock.monotonic() - last_sent))
                    if wait > 0 and not self.closed:
                        self.condition.wait(wait)
                        changes = self.since(version, resource, namespace, selector)
                current = self.version
            for change in changes:
                version = change.version
                last_sent = clock.monotonic()
                yield change.event()
            if not changes and bookmarks is not None and clock.monotonic() - last_sent >= bookmarks:
                version = max(version, current)
                last_sent = clock.monotonic()
                yield {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": str(version)}}}
            if clock.monotonic() >= until or self.closed:
                return


def _wanted(change: Change, resource: str | None, namespace: str | None, selector: str | None) -> bool:
    return ((resource is None or change.resource == resource)
            and (not namespace or change.namespace == namespace)
            and matches(change.object["metadata"].get("labels") or {}, selector))
