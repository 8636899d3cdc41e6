"""The embedded default: store, local executor and in-process broker wired together.

This is the composition root for ``katuna run``: nothing here decides anything about a study;
it delivers events until the study ends, and watches for what no event announces (a stop from
another process, a time budget running out, an event lost on the way).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import optuna

from functions.adapters.broker import LocalBroker
from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import Event, study_completed, study_created
from functions.core.records import StudyRecord
from functions.core.spec import Study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.base import check_stop
from functions.settings import Settings

RECONCILE_AFTER = 2.0
"""Seconds a study may sit with nothing queued and nothing running before it is reconciled."""


class Embedded:
    """One process running studies end to end on this machine."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.settings = settings
        self.store = SqliteStore(settings.db, settings.busy_timeout)
        self.executor = LocalExecutor(settings.logs, self._publish)
        self.deps = Deps(self.store, self.executor, clock)
        self.dispatcher = Dispatcher(self.deps)
        self.broker = LocalBroker(self.dispatcher)

    def _publish(self, event: Event) -> None:
        self.broker.publish(event)

    def submit(self, spec: Study, definition: dict, base_dir: Path) -> StudyRecord:
        """Store the study (or find the identical one stored before)."""
        record = StudyRecord(spec, definition, str(base_dir.resolve()), created_at=self.deps.clock())
        return self.store.add_study(record)

    def run(self, name: str, on_tick: Callable[[], None] = lambda: None) -> StudyRecord:
        """Run (or resume) the study until it ends and its trials are gone."""
        self.broker.publish(study_created(name))
        quiet_since = [time.monotonic()]

        def tick() -> None:
            self._watch(name, quiet_since)
            on_tick()

        def finished() -> bool:
            return self.store.get_study(name).terminal and self.executor.running(name) == 0

        self.broker.run(until=finished, tick=tick)
        return self.store.get_study(name)

    def _watch(self, name: str, quiet_since: list[float]) -> None:
        record = self.store.get_study(name)
        if record.terminal:
            self.executor.stop_study(name)
            return
        decision = check_stop(record, self.deps)
        if decision is not None:
            self.broker.publish(study_completed(name, decision.status, decision.reason))
        if not self.broker.idle() or self.executor.running(name):
            quiet_since[0] = time.monotonic()
        elif time.monotonic() - quiet_since[0] > RECONCILE_AFTER:
            quiet_since[0] = time.monotonic()
            self.broker.publish(study_created(name))

    def stop(self, name: str, reason: str = "stopped by user") -> None:
        """Stop a study, here or in another process running it (which notices and kills its trials)."""
        self.store.get_study(name)
        self.dispatcher.deliver(study_completed(name, "stopped", reason))

    def close(self) -> None:
        self.executor.shutdown()
        self.store.close()
