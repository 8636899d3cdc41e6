"""What no event announces: a stop from another process, a time budget running out, a lost event,
a trial Job that ended while nobody was told, a study resource whose event never came.

A broker's loop calls :meth:`Watcher.tick` a few times a second. It runs the reconcile of
:mod:`functions.handlers.reconcile` (the one a Knative PingSource's tick runs) and stops local
processes; it only publishes events, and every decision is still made by the handlers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial

from functions.adapters.broker import EventQueue
from functions.adapters.local_executor import LocalExecutor
from functions.core.events import Event, pool_check
from functions.core.records import StudyRecord
from functions.handlers import Deps
from functions.handlers.deps import served_here
from functions.handlers.node_hours import looks_due
from functions.handlers.progress_scan import scan
from functions.handlers.provision import waiting_on_pools
from functions.handlers.reconcile import Budget, guarded, reconcile_study
from functions.handlers.resource_check import resource_events
from functions.handlers.stopping import finish_marked
from functions.handlers.strays import Wanted, sweep

log = logging.getLogger("katuna.watch")

RECONCILE_AFTER = 2.0
"""Seconds a study may sit with nothing queued and nothing running before it is reconciled."""

POLL_EVERY = 2.0
"""Seconds between asking the executor how a study's running attempts are doing."""

STRAYS_EVERY = 1.0
"""Seconds between checks that every attempt running here is still wanted by the store."""

CLUSTER_STRAYS_EVERY = 60.0
"""Seconds between checks that every trial Job on the cluster is still wanted by the store (the
first at the first tick; as often as the Knative PingSource's tick checks)."""

POOL_CHECK_EVERY = 3.0
"""Seconds between checks of pending node-pool operations (a Knative PingSource's job in the cluster)."""

RESOURCES_EVERY = 2.0
"""Seconds between comparisons of the study resources on the cluster with the stored studies
(the first at the first tick): in queue mode no ApiServerSource tells of a resource created or
deleted, a deleted study's trial Jobs run (and bill) until the comparison sees it, and Katib's
SDK expects an Experiment's first condition within seconds (a list per kind each time)."""

PROGRESS_EVERY = 10.0
"""Seconds between reads of running trials' logs for their progress, where the executor cannot
watch their output (:mod:`functions.handlers.progress_scan`; ``KATUNA_K8S_PROGRESS_SECONDS``)."""

KEEP_EVERY = 30.0
"""Seconds between reads of the logs of running trials of studies without early stopping, their
observations kept as they are read (:mod:`functions.core.log_keep`; ``KATUNA_K8S_KEEP_SECONDS``)."""


class Watcher:
    """Watches the studies ``select`` returns, on behalf of one executor and one queue (but those
    whose trials run elsewhere: :func:`~functions.handlers.deps.served_here`).

    ``stop_local`` ends the trials this process runs for a study that ended elsewhere (a local
    executor's; trial Jobs are deleted by the ``stop`` handler wherever it runs). A local
    executor's attempts that the store no longer wants (their study deleted, their trial ended
    by an event another process took) are stopped too.
    """

    def __init__(self, deps: Deps, events: EventQueue, select: Callable[[], list[StudyRecord]],
                 stop_local: Callable[[str], None] = lambda study: None, progress_every: float = PROGRESS_EVERY,
                 keep_every: float = KEEP_EVERY) -> None:
        self._deps = deps
        self._executor = deps.executor
        self._events = events
        self._select = lambda: served_here(deps, select())
        self._stop_local = stop_local
        self._quiet_since: dict[str, float] = {}
        self._polled: dict[str, float] = {}
        self._pools_checked = 0.0
        self._strays_checked: float | None = None
        self._swept: float | None = None
        self._resources_checked: float | None = None
        self._progress_every = progress_every
        self._progress_read: float | None = None
        self._keep_every = keep_every
        self._kept: float | None = None
        self._ticks = 0

    def tick(self) -> None:
        self._ticks += 1
        self._check_pools()
        self._stop_strays()
        self._check_resources()
        self._read_progress()
        budget = Budget()
        for record in self._select():
            if record.terminal:
                self._stop_local(record.name)
            for event in guarded(self._deps, record, partial(self._reconcile, record, budget)):
                self._events.put(event)

    def _reconcile(self, record: StudyRecord, budget: Budget) -> list[Event]:
        return reconcile_study(record, self._deps, budget, partial(self._settled, record),
                               poll=self._poll_due(record), window=self._ticks)

    def _check_pools(self) -> None:
        """Ask for a node-pool check now and then while a pool waits on the cloud or on a release,
        or a pool's nodes are due for a look (a study's measured node-hours)."""
        now = time.monotonic()
        if self._deps.node_pools is None or now - self._pools_checked < POOL_CHECK_EVERY:
            return
        self._pools_checked = now
        if waiting_on_pools(self._deps.store, self._deps.clock()) or looks_due(self._deps):
            self._events.put(pool_check())

    def _check_resources(self) -> None:
        """Now and then, the events of study resources whose own never came (none without a cluster)."""
        now = time.monotonic()
        resources = self._deps.resources
        if resources is None or resources.namespace is None or (
                self._resources_checked is not None and now - self._resources_checked < RESOURCES_EVERY):
            return
        self._resources_checked = now
        for event in resource_events(self._deps, self._deps.store.study_briefs(), self._ticks):
            self._events.put(event)

    def _read_progress(self) -> None:
        """Now and then, the progress events of the reports in running trials' logs, and their
        observations kept; the logs of studies without early stopping less often (none where the
        executor watches the trials' output itself)."""
        now = time.monotonic()
        every_study = self._kept is None or now - self._kept >= self._keep_every
        if self._deps.logs is None or not every_study and (
                self._progress_read is not None and now - self._progress_read < self._progress_every):
            return
        self._progress_read = now
        if every_study:
            self._kept = now
        for event in scan(self._deps, self._select(), self._ticks, every_study):
            self._events.put(event)

    def _stop_strays(self) -> None:
        """Stop the workloads of ended trials still marked to stop, on any executor
        (:func:`~functions.handlers.stopping.finish_marked`), and those the store no longer wants
        (:mod:`functions.handlers.strays`): every :data:`STRAYS_EVERY` seconds the marked ones and
        the attempts running here, of a study deleted or made again under its name, of a study
        that ended, or of a trial that ended or moved on to a later attempt (its end reported by
        another process, or forged); every :data:`CLUSTER_STRAYS_EVERY` seconds the trial Jobs of
        a cluster (each a list of the API server's)."""
        now = time.monotonic()
        if self._strays_checked is not None and now - self._strays_checked < STRAYS_EVERY:
            return
        self._strays_checked = now
        finish_marked(self._deps)
        if isinstance(self._executor, LocalExecutor):
            wanted = Wanted(self._deps.store)
            strays = {key for key in self._executor.attempts() if wanted.unwanted(*key)}
            if strays:
                self._executor.stop_attempts(lambda *key: key in strays)
        elif self._swept is None or now - self._swept >= CLUSTER_STRAYS_EVERY:
            self._swept = now
            sweep(self._deps, self._deps.store.study_briefs())

    def _poll_due(self, record: StudyRecord) -> bool:
        """Whether to ask the executor about the study's running attempts now (a lost Job event, say)."""
        now = time.monotonic()
        if now - self._polled.get(record.name, 0.0) < POLL_EVERY:
            return False
        self._polled[record.name] = now
        return True

    def _settled(self, record: StudyRecord, alive: Callable[[], bool]) -> bool:
        """Nothing queued for :data:`RECONCILE_AFTER` seconds and no attempt alive anywhere:
        nothing happens unless nudged. Whether an attempt is alive is asked only once the queue
        has been quiet that long, so at most once in that time per study: on a cluster each ask
        is a read of the API server, and ticks come a few times a second (a hundred running
        studies asked at every tick made hundreds of reads a second)."""
        now = time.monotonic()
        if self._events.pending(record.name):
            self._quiet_since[record.name] = now
            return False
        since = self._quiet_since.setdefault(record.name, now)
        if now - since < RECONCILE_AFTER:
            return False
        self._quiet_since[record.name] = now
        return not alive()
