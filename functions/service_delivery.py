"""What a service process's broker thread runs (queue mode, :mod:`functions.service_events`):
the local broker taking events from the queue, and the watcher ticking between them over the
studies it watches."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from functions._broker_thread import Delivery
from functions.adapters.broker import LocalBroker
from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_queue import SqliteQueue
from functions.core.errors import KatunaError, StudyNotFound
from functions.core.events import Event
from functions.core.ports import Executor
from functions.core.records import StudyRecord
from functions.core.store_port import Store
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.settings import Settings
from functions.watch import Watcher


def delivery(deps: Deps, dispatcher: Dispatcher, queue: SqliteQueue, settings: Settings,
             on_dead_letter: Callable[[Event, KatunaError], None]) -> Delivery:
    """The broker thread's delivery loop, built on that thread over ``deps`` (its own store):
    the local broker taking events from ``queue`` to ``dispatcher`` (each one it gives up on
    goes to ``on_dead_letter``), and the watcher ticking between them over the studies
    :func:`watched` (at the settings' ``k8s_progress_seconds`` and ``k8s_keep_seconds``)."""
    broker = LocalBroker(dispatcher, queue, on_dead_letter=on_dead_letter)
    executor = deps.executor
    stop_local = executor.stop_study if isinstance(executor, LocalExecutor) else (lambda study: None)
    watcher = Watcher(deps, queue, lambda: watched(deps.store, executor), stop_local,
                      progress_every=settings.k8s_progress_seconds, keep_every=settings.k8s_keep_seconds)
    return lambda until: broker.run(until=until, tick=watcher.tick, drain=False)


def watched(store: Store, executor: Executor) -> list[StudyRecord]:
    """What the watcher looks at, five times a second: the studies not ended, and those ended
    whose trials this process still runs. Ended studies are read by name only: they are most
    of a long-lived service's, and reading every one each time cost a worker a seventh of a
    core at 1,000 stored studies."""
    unended = store.unended_studies()
    local = {key[0] for key in executor.attempts()} if isinstance(executor, LocalExecutor) else set()
    for name in sorted(local - {record.name for record in unended}):
        with contextlib.suppress(StudyNotFound):
            unended.append(store.get_study(name))
    return unended
