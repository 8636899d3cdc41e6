"""The composition root of the HTTP service: one per gunicorn worker (built after the fork).

Each thread gets its own store connection to read; the handlings that write take turns over
one more, so that the process keeps one replay of a study's Optuna journal however many
threads it serves (:class:`functions.dispatch_turns.Turns`). The executor, the database event queue
and the Optuna histories read for the dashboard's charts are shared. A broker thread takes
events from the queue (so do the other workers' brokers) and a watcher nudges studies that
nothing else would move. The web adapter sees the runtime only as a
:class:`functions.core.application.Application`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from wsgiref.types import WSGIApplication

import optuna

from functions._broker_thread import Delivery
from functions._thread_stores import ThreadStores
from functions.adapters import local_checkpoints, sqlite_errors
from functions.adapters.local_executor import LocalExecutor
from functions.adapters.owners import Runner
from functions.adapters.sqlite_file_system import network_warning
from functions.adapters.sqlite_histories import ChartHistories
from functions.adapters.sqlite_store import SqliteStore
from functions.adapters.web import create_app
from functions.cluster_ports import ClusterNodes, ClusterResources, watched_namespace
from functions.collector import collect_less_often
from functions.core.cluster_templates import ClusterTemplates
from functions.core.errors import KatunaError, Problem, TemporaryError
from functions.core.events import Event, study_completed, study_created
from functions.core.kept_tails import KeptTail
from functions.core.launch import TrialLaunch
from functions.core.ports import Admissions, RunningLogs
from functions.core.records import StudyRecord
from functions.core.spec import Study
from functions.core.store_port import stored_study
from functions.dispatch import Dispatcher
from functions.dispatch_turns import Turns
from functions.handlers import Deps
from functions.handlers.deps import served_here
from functions.handlers.stopping import drop_checkpoints, stop_study_marked
from functions.handlers.submit import store_or_restart
from functions.handlers.suggest import warn_of_drift
from functions.pools import check_access, check_study, check_working_dir, node_pools
from functions.service_delivery import delivery
from functions.service_events import ServiceEvents
from functions.service_executor import ServiceExecutor, service_executor
from functions.service_start import checked_settings
from functions.settings import Settings

if TYPE_CHECKING:
    from functions.adapters.prometheus import ServiceMetrics

log = logging.getLogger("katuna.runtime")


class Runtime:
    """Stores, executor, queue and broker thread of one service process."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time, sole_parent: bool = False,
                 service: bool = True) -> None:
        """``sole_parent``: this process starts no child but the trials (a ``katuna serve``
        worker), so an orphan a trial left outside its session is ended (:class:`LocalExecutor`).
        ``service``: this is the service, which by default refuses a database on a network file
        system (false for a command, ``katuna stop``: :meth:`Settings.network_rule`)."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.settings = settings
        self.clock = clock
        self.histories = ChartHistories()
        """The studies' Optuna histories the charts read: one copy per process, however many threads draw them."""
        network = settings.network_rule(service)
        self._stores = ThreadStores(settings.db, settings.busy_timeout, self.histories, network)
        if (mount := self.store().shared_mount) is not None and service:
            log.warning(network_warning(settings.db, mount))
        self._events = ServiceEvents(settings, self._stores.stopping, lambda reason: self._metrics.events.dropped(reason),
                                     network)
        self.queue = self._events.queue
        self._take_executor(service_executor(settings, clock, self.publish, self._kept_tail, sole_parent))
        self._reach_cluster(settings)
        self._started = False
        self._unready: str | None = None
        """Why this process was not ready at the last probe (None: ready), to log changes only."""
        self._readiness_lock = threading.Lock()
        self._metrics = self._service_metrics()
        self._unobserve = sqlite_errors.observe(self._metrics.events.storage_error)
        """Stops counting this process's storage failures into the metrics (:meth:`close`)."""
        self._turns = Turns(self.deps(self._stores.new()), settings.busy_timeout)
        """Every recorded handling of this process, on any thread, runs in its turn over one store."""

    def _take_executor(self, wired: ServiceExecutor) -> None:
        """Keep the executor the settings chose, and the ports that come with it."""
        self.executor, self.log_reads = wired.executor, wired.log_reads
        self.logs: RunningLogs | None = wired.logs
        """Where running trials' progress is read from their logs: the trial Jobs' pods."""
        self.admissions: Admissions | None = wired.admissions
        """Where launched trials may wait to be admitted: the trial Jobs (Kueue suspends them)."""
        self.access_refusal: Callable[[Study], Problem | None] | None = wired.access_refusal
        """Why katuna may not create a study's trials where they would run, asked of the cluster."""
        self.runner: Runner | None = wired.runner
        """This process, where its executor runs local trials: it leaves a study a live ``katuna
        run`` claimed to it, and claims none itself (the workers of every service on the database
        share the studies)."""
        self._checkpoint_drops = wired.checkpoint_drops
        self._checkpoint_prunes = wired.checkpoint_prunes

    def _reach_cluster(self, settings: Settings) -> None:
        """The node pools, and the cluster's resources, templates and nodes as the settings reach them."""
        self.node_pools = node_pools(settings)
        self.resources = ClusterResources(settings.k8s_api, watched_namespace(settings), settings.katib_api,
                                          settings.remote_timeout)
        self.templates = ClusterTemplates(self.resources.read_config_map, settings.k8s_namespace or "default") \
            if settings.runs_jobs else None
        """Where templates held in ConfigMaps are read for ``POST /studies``: only where trials run on Kubernetes."""
        self.nodes = ClusterNodes(settings.k8s_api, settings.remote_timeout) \
            if self.node_pools is not None and settings.runs_jobs else None

    def _kept_tail(self, launch: TrialLaunch) -> KeptTail | None:
        """What this thread's store kept of the attempt's log as katuna stopped it."""
        return self.store().kept_tail(launch.study, launch.number, launch.attempt)

    def _service_metrics(self) -> ServiceMetrics:
        """Imported here, in the worker: prometheus_client picks its multiprocess mode when first
        imported, after ``katuna serve`` has named the directory (:mod:`functions.adapters.prometheus`)."""
        from functions.adapters.prometheus import ServiceMetrics

        return ServiceMetrics(lambda: self.store().census(), self._events.depth)

    def metrics(self, accept: str) -> tuple[bytes, str]:
        return self._metrics.exposition(accept)

    def store(self) -> SqliteStore:
        """This thread's connection to the database."""
        return self._stores.current()

    def deps(self, store: SqliteStore | None = None) -> Deps:
        """The ports, with ``store`` (this thread's when None)."""
        return Deps(store or self.store(), self.executor, self.clock, node_pools=self.node_pools, resources=self.resources,
                    workdir=str(self.settings.workdir.resolve()), limits=self.settings.limits,
                    trial_defaults=self.settings.cluster_defaults(), nodes=self.nodes,
                    node_look_seconds=self.settings.node_look_seconds, logs=self.logs, admissions=self.admissions,
                    pool_wait=self.settings.pool_wait, orphan_grace=self.settings.orphan_grace,
                    template_namespaces=self.settings.template_namespaces,
                    access_refusal=self.access_refusal, running_trials=self.settings.max_running_trials,
                    running_trials_set_by=self.settings.running_trials_set_by,
                    runs_on=self.settings.executor, runner=self.runner,
                    katib_trials_kept=self.settings.katib_trials_kept, checkpoint_drops=self._checkpoint_drops,
                    checkpoint_prunes=self._checkpoint_prunes)

    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.deps(), observer=self._metrics.events, turns=self._turns)

    def submit(self, spec: Study, definition: dict) -> tuple[StudyRecord, bool]:
        """Store a study and start it; the stored record, and whether it is new.

        Submitting the identical study again starts it again: harmless while it runs, and the
        way to recover when the first start could not be sent. An ended Katib Experiment whose
        trial budget the definition raises, as Katib restarts one, runs on.
        """
        check_study(spec, definition, self.settings, runs_jobs=self.settings.runs_jobs)
        if not self.settings.runs_jobs:
            self._check_working_dir(spec, definition)
        if self.access_refusal is not None:
            check_access(spec, definition, self.access_refusal)
        self._events.check_publishing()
        stored, created = store_or_restart(self.deps(), spec, definition)
        if not stored.terminal:
            self.publish(study_created(stored.name, stored.uid, stored.restarts))
        return stored, created

    def _check_working_dir(self, spec: Study, definition: dict) -> None:
        """Refuse a study whose local trials would all fail to enter a ``workingDir`` that does
        not exist, as ``katuna run`` refuses it: relative to the folder the stored study of the
        name was first run from, else to this service's (``KATUNA_WORKDIR``). A stored study
        whose trials run elsewhere is left to :func:`store_or_restart` to refuse."""
        stored = stored_study(self.store(), spec.name)
        if stored is not None and stored.runs_away_from(self.settings.executor):
            return
        check_working_dir(spec, definition, Path(stored.base_dir) if stored else self.settings.workdir.resolve())

    def stop(self, name: str, reason: str = "stopped by user") -> None:
        """Stop a study (``POST /studies/NAME/stop``, and ``katuna stop`` where
        ``KATUNA_EXECUTOR=kubernetes``) through this process's executor: on Kubernetes its trial
        Jobs are deleted with their pods; its node pools are released. Once the stop is stored,
        a stop of its trials' workloads that fails (now, or in an earlier call) raises, so the
        caller learns of it (the tick tries again meanwhile: :mod:`functions.handlers.stopping`).
        What the handling sends on is queued as a broker's delivery of it would send it (under
        ``KATUNA_MAX_RUNNING_TRIALS``, the room the stopped trials freed, handed to the other
        studies' waiting trials, which would otherwise wait out their own refused event's
        back-off), unless nothing could send it (reply mode without ``K_SINK``): the stop stands."""
        record = self.store().get_study(name)
        emitted = self.dispatcher().deliver(study_completed(name, record.uid, "stopped", reason, record.restarts))
        if self._events.sends():
            for event in emitted:
                self.queue.put(event)
        stop_study_marked(self.deps(), name)

    def drop_checkpoints(self, record: StudyRecord) -> None:
        """Delete the study's checkpoints as it is deleted, before its record goes: those of its
        local trials at once (:func:`~functions.adapters.local_checkpoints.dropped`), those on
        the cluster's claim by the Job asked for (:meth:`drop_claim_checkpoints`)."""
        local_checkpoints.dropped(self.settings.logs, record.log_folder, record.uid)
        self.drop_claim_checkpoints(record)

    def drop_claim_checkpoints(self, record: StudyRecord) -> bool:
        """Ask the cluster to delete the study's checkpoints from the claim (population-based
        training whose trials run as Jobs: :mod:`functions.core.checkpoint_drop`), as the study
        is deleted, before its record goes; whether it was asked. A study of no trial has none."""
        return drop_checkpoints(record, self.deps())

    def publish(self, event: Event) -> None:
        """Send an event on through the queue: to this service's own broker threads, or (reply
        mode) to the threads that post it to the Knative broker at ``K_SINK``
        (:mod:`functions.sink_senders`)."""
        self._events.check_publishing()
        self.queue.put(event)

    def start(self) -> None:
        """Start taking events from the queue in background threads: this service's broker
        (queue mode), or the senders to ``K_SINK`` (reply mode: the Knative broker delivers,
        retries and dead-letters). Started once: starting again (another application over the
        same runtime) adds no thread, for :meth:`close` stops the threads it knows of, and one
        unknown to it would go on using connections closed under it."""
        if self._started:
            return
        self._started = True
        self._warn_of_drift()
        self._events.start(self._delivery, self._close_connections)

    def _warn_of_drift(self) -> None:
        """Each study this service goes on with that was started by other releases, or with a
        look-ahead, is warned of once as it starts (an upgraded service serving it on): its
        seed no longer repeats what an uninterrupted run suggests."""
        deps = self.deps()
        for record in served_here(deps, deps.store.unended_studies()):
            warn_of_drift(record, deps.lookahead)

    def not_ready(self) -> str | None:
        """Why this process cannot serve, or None; a change is logged once, not at every probe.

        The database is read as a request would read it, and its path must still name the file
        opened. A database busy past the busy timeout, or a full disk, leaves the process ready:
        reads still work, and a pod taken out of service would only turn the writes waiting for
        it into timeouts (``katuna_storage_errors_total`` counts them)."""
        reason = self._unready_because()
        with self._readiness_lock:
            changed, self._unready = reason != self._unready, reason
        if changed:
            (log.warning("not ready: %s", reason) if reason else log.warning("ready again"))
        return reason

    def _unready_because(self) -> str | None:
        try:
            self.store().check_readable()
        except TemporaryError as exc:
            return str(exc)
        return self._events.not_taking()

    def _delivery(self) -> Delivery:
        """The broker thread's delivery loop (built on that thread, over its own store:
        :func:`~functions.service_delivery.delivery`)."""
        deps = self.deps()
        dispatcher = Dispatcher(deps, observer=self._metrics.events, turns=self._turns)
        return delivery(deps, dispatcher, self.queue, self.settings, self._dropped)

    def fail_dead_letter(self, event: Event, reason: str) -> bool:
        """A dead letter's study (if it names one) fails with the reason its delivery was refused
        for good: a study whose events cannot be handled does not stay running with no reason.
        (A delivery given up after temporary failures fails nothing: the tick carries the study on.)
        Whether a study ended: one missing, ended already or of another uid does not."""
        ended = self.dispatcher().fail_dead_letter(event, reason)
        for completed in ended:
            self.publish(completed)
        return bool(ended)

    def _dropped(self, event: Event, error: KatunaError) -> None:
        """An event this service's queue gave up on, taken as the Knative dead-letter sink takes
        one: kept with the others, and its study failed when it was refused for good."""
        self.store().add_dead_letter(event, str(error), keep=self.settings.max_dead_letters)
        if not error.retryable:
            self.fail_dead_letter(event, str(error))

    def stopping(self) -> None:
        """Give up at once what would hold a stop up: a read of a trial's output, and every wait
        for the database's write lock, which another process may hold for the busy timeout (a
        request waiting is answered ``503 stopping``, a handling's event goes back to the queue,
        an event put raises to its publisher: :mod:`~functions.adapters.sqlite_queue`)."""
        self.executor.stop_reads()
        self._stores.stop_waiting()

    def close(self) -> None:
        """Stop taking events and kill this process's local trials (trial Jobs run on); the
        studies stay resumable. Waits for the database's write lock are given up
        (:meth:`stopping`). A handler reading a trial's output (a local log, or a pod's
        streamed from the cluster) gives up at once, as ``katuna run``'s does
        (:meth:`~functions.core.ports.Executor.stop_reads`): its event goes back to the
        queue, to be handled again, where a stop would otherwise wait for a log of hundreds of
        megabytes to be read, then cut the read off at the broker thread's join. Every
        connection to the database is closed: the last one to go folds the write-ahead log into
        the database file, which is then whole on its own. A broker thread still busy after
        :data:`~functions.service_events.BROKER_STOP_WAIT` seconds is not waited for further: it
        closes them as it ends, for a connection closed while another thread reads through it
        crashes the process."""
        self.stopping()
        self._started = True  # a start() after close() starts no thread on closed connections
        self._events.stop()
        if isinstance(self.executor, LocalExecutor):
            self.executor.shutdown()
        if not self._events.handed_over():
            self._close_connections()

    def _close_connections(self) -> None:
        """Close the queue's connection and every thread's store (see :meth:`close`), and stop
        counting storage failures (the last connection's are this process's last)."""
        self.queue.close()
        self._stores.close()
        self._unobserve()


def service_app(settings: Settings) -> WSGIApplication:
    """The HTTP service over a new runtime: what each gunicorn worker serves (built after the fork)."""
    return create_app(Runtime(settings, sole_parent=True))


def from_environment() -> WSGIApplication:
    """The HTTP service configured from the environment (gunicorn's entry point in a container),
    once its settings stop nothing (:func:`~functions.service_start.checked_settings`: else the
    worker exits, saying why, and gunicorn stops)."""
    collect_less_often()
    return service_app(checked_settings())
