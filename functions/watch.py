"""What no event announces: a stop from another process, a time budget running out, a lost event.

A broker's loop calls :meth:`Watcher.tick` a few times a second. It only publishes events and
stops local processes; every decision is still made by the handlers.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from functions.adapters.broker import EventQueue
from functions.adapters.local_executor import LocalExecutor
from functions.core.events import study_completed, study_created
from functions.core.records import RUNNING, StudyRecord
from functions.handlers import Deps
from functions.handlers.base import check_stop

RECONCILE_AFTER = 2.0
"""Seconds a study may sit with nothing queued and nothing running before it is reconciled."""


class Watcher:
    """Watches the studies ``select`` returns, on behalf of one executor and one queue."""

    def __init__(self, deps: Deps, executor: LocalExecutor, events: EventQueue,
                 select: Callable[[], list[StudyRecord]]) -> None:
        self._deps = deps
        self._executor = executor
        self._events = events
        self._select = select
        self._quiet_since: dict[str, float] = {}

    def tick(self) -> None:
        for record in self._select():
            if record.terminal:
                self._executor.stop_study(record.name)
                continue
            decision = check_stop(record, self._deps)
            if decision is not None:
                self._events.put(study_completed(record.name, record.uid, decision.status, decision.reason))
            elif self._stalled(record):
                self._events.put(study_created(record.name, record.uid))

    def _stalled(self, record: StudyRecord) -> bool:
        """Nothing queued and no attempt alive anywhere: nothing happens unless nudged."""
        busy = self._events.pending(record.name) or any(
            self._executor.exists(record.name, t.number, t.attempt)
            for t in self._deps.store.trials(record.name, (RUNNING,))
        )
        now = time.monotonic()
        since = self._quiet_since.setdefault(record.name, now)
        if busy or now - since < RECONCILE_AFTER:
            if busy:
                self._quiet_since[record.name] = now
            return False
        self._quiet_since[record.name] = now
        return True
