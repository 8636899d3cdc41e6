"""The composition root of the HTTP service: one per gunicorn worker (built after the fork).

Each thread gets its own store connection to read; the handlings that write take turns over
one more, so that the process keeps one replay of a study's Optuna journal however many
threads it serves (:class:`functions.dispatch.Turns`). The executor, the database event queue
and the Optuna histories read for the dashboard's charts are shared. A broker thread takes
events from the queue (so do the other workers' brokers) and a watcher nudges studies that
nothing else would move. The web adapter sees the runtime only as a
:class:`functions.core.application.Application`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn
from wsgiref.types import WSGIApplication

import optuna

from functions import sink_senders
from functions._broker_thread import BrokerThread, Delivery
from functions._thread_stores import ThreadStores
from functions.adapters import cloudevents_http, sqlite_errors
from functions.adapters.broker import LocalBroker
from functions.adapters.local_executor import LocalExecutor
from functions.adapters.local_log_reads import LocalLogReads
from functions.adapters.owners import Runner, taker, taker_ended
from functions.adapters.sqlite_histories import ChartHistories
from functions.adapters.sqlite_queue import LEASE_SECONDS, SqliteQueue
from functions.adapters.sqlite_store import SqliteStore
from functions.adapters.web import create_app, guard
from functions.cluster_ports import ClusterNodes, ClusterResources, watched_namespace
from functions.collector import collect_less_often
from functions.core.cluster_templates import ClusterTemplates
from functions.core.errors import InvalidSetting, KatunaError, Problem, StudyNotFound, TemporaryError
from functions.core.events import Event, study_completed, study_created
from functions.core.kept_tails import KeptTail
from functions.core.launch import TrialLaunch
from functions.core.log_reads import LogReads, StreamedLogReads
from functions.core.ports import Admissions, Executor, RunningLogs
from functions.core.records import StudyRecord
from functions.core.spec import Study
from functions.dispatch import Dispatcher, Turns
from functions.gunicorn_config import master_problem
from functions.handlers import Deps
from functions.handlers.deps import served_here
from functions.handlers.stopping import stop_study_marked
from functions.handlers.submit import store_or_restart
from functions.handlers.suggest import warn_of_drift
from functions.pools import check_access, check_study, node_pools
from functions.settings import Settings
from functions.watch import Watcher

if TYPE_CHECKING:
    from functions.adapters.prometheus import ServiceMetrics

log = logging.getLogger("katuna.runtime")

QUEUE_DEPTH_WAIT = 1.0
"""Seconds ``GET /metrics`` waits for the queue's connection to count its events: another thread
holds it a slice of its wait for the write lock at a time, while another process holds the
database, and a scrape that still cannot have it is answered without the count."""
BROKER_STOP_WAIT = 10.0
"""Seconds :meth:`Runtime.close` waits for the broker thread to stop; one still busy after
that (a handling held up on a busy machine) closes the database connections itself as it ends."""


class Runtime:
    """Stores, executor, queue and broker thread of one service process."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time, sole_parent: bool = False) -> None:
        """``sole_parent``: this process starts no child but the trials (a ``katuna serve``
        worker), so an orphan a trial left outside its session is ended (:class:`LocalExecutor`)."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.settings = settings
        self.clock = clock
        self._sole_parent = sole_parent
        self.runner: Runner | None = None
        """This process, where its executor runs local trials: it leaves a study a live ``katuna
        run`` claimed to it, and claims none itself (the workers of every service on the database
        share the studies)."""
        self.histories = ChartHistories()
        """The studies' Optuna histories the charts read: one copy per process, however many threads draw them."""
        self._stores = ThreadStores(settings.db, settings.busy_timeout, self.histories)
        self.store()
        self.queue = sink_senders.event_queue(settings.db, settings.busy_timeout, taker(), taker_ended,
                                              stopped=self._stores.stopping) \
            if settings.events == "reply" else SqliteQueue(settings.db, settings.busy_timeout, LEASE_SECONDS, taker(),
                                                          taker_ended, stopped=self._stores.stopping)
        self.logs: RunningLogs | None = None
        """Where running trials' progress is read from their logs: the trial Jobs' pods."""
        self.admissions: Admissions | None = None
        """Where launched trials may wait to be admitted: the trial Jobs (Kueue suspends them)."""
        self.access_refusal: Callable[[Study], Problem | None] | None = None
        """Why katuna may not create a study's trials where they would run, asked of the cluster."""
        self.executor, self.log_reads = self._executor()
        self.node_pools = node_pools(settings)
        self.resources = ClusterResources(settings.k8s_api, watched_namespace(settings), settings.katib_api,
                                          settings.remote_timeout)
        self.templates = ClusterTemplates(self.resources.read_config_map, settings.k8s_namespace or "default") \
            if settings.runs_jobs else None
        """Where templates held in ConfigMaps are read for ``POST /studies``: only where trials run on Kubernetes."""
        self.nodes = ClusterNodes(settings.k8s_api, settings.remote_timeout) \
            if self.node_pools is not None and settings.runs_jobs else None
        self._started = False
        self._unready: str | None = None
        """Why this process was not ready at the last probe (None: ready), to log changes only."""
        self._readiness_lock = threading.Lock()
        self._thread: BrokerThread | None = None
        self._metrics = self._service_metrics()
        self._unobserve = sqlite_errors.observe(self._metrics.events.storage_error)
        """Stops counting this process's storage failures into the metrics (:meth:`close`)."""
        self._senders = sink_senders.SinkSenders(
            self.queue, cloudevents_http.Sink(settings.sink, settings.sink_token_file, settings.sink_tls,
                                              settings.event_key, settings.ce_overrides),
            on_drop=self._metrics.events.dropped) \
            if settings.sink and settings.events == "reply" else None
        self._turns = Turns(self.deps(self._stores.new()), settings.busy_timeout)
        """Every recorded handling of this process, on any thread, runs in its turn over one store."""

    def _executor(self) -> tuple[Executor, LogReads]:
        """The executor, and where trials' logs are read for a person: a local trial's log file,
        a cluster trial's pods' logs, the runs its Job lost included
        (:meth:`~functions.adapters.kubernetes_executor.KubernetesExecutor.log`)."""
        if self.settings.runs_jobs:
            from functions.adapters.kubernetes_access import Access
            from functions.adapters.kubernetes_client import api_client
            from functions.adapters.kubernetes_executor import KubernetesExecutor

            api = api_client(self.settings.k8s_api, self.settings.remote_timeout)
            executor = KubernetesExecutor(self.settings.cluster_defaults(), api, self.settings.report_url, clock=self.clock)
            self.logs = self.admissions = executor
            self.access_refusal = Access(api, self.settings.cluster_defaults(),
                                         hands_tokens=bool(self.settings.report_url)).refusal
            return executor, StreamedLogReads(executor.log, self._kept_tail)
        local = LocalExecutor(self.settings.logs, self.publish, pass_env=self.settings.trial_env,
                              sole_parent=self._sole_parent)
        self.runner = Runner(local.identity)
        return local, LocalLogReads(local.log_file)

    def _kept_tail(self, launch: TrialLaunch) -> KeptTail | None:
        """What this thread's store kept of the attempt's log as katuna stopped it."""
        return self.store().kept_tail(launch.study, launch.number, launch.attempt)

    def _service_metrics(self) -> ServiceMetrics:
        """Imported here, in the worker: prometheus_client picks its multiprocess mode when first
        imported, after ``katuna serve`` has named the directory (:mod:`functions.adapters.prometheus`)."""
        from functions.adapters.prometheus import ServiceMetrics

        return ServiceMetrics(lambda: self.store().census(), lambda: self.queue.depth(QUEUE_DEPTH_WAIT))

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
                    pool_wait=self.settings.pool_wait, template_namespaces=self.settings.template_namespaces,
                    access_refusal=self.access_refusal, running_trials=self.settings.max_running_trials,
                    runs_on=self.settings.executor, runner=self.runner)

    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.deps(), observer=self._metrics.events, turns=self._turns)

    def submit(self, spec: Study, definition: dict) -> tuple[StudyRecord, bool]:
        """Store a study and start it; the stored record, and whether it is new.

        Submitting the identical study again starts it again: harmless while it runs, and the
        way to recover when the first start could not be sent. An ended Katib Experiment whose
        trial budget the definition raises, as Katib restarts one, runs on.
        """
        check_study(spec, definition, self.settings, runs_jobs=self.settings.runs_jobs)
        if self.access_refusal is not None:
            check_access(spec, definition, self.access_refusal)
        self._check_publishing()
        stored, created = store_or_restart(self.deps(), spec, definition)
        if not stored.terminal:
            self.publish(study_created(stored.name, stored.uid, stored.restarts))
        return stored, created

    def stop(self, name: str, reason: str = "stopped by user") -> None:
        """Stop a study (``POST /studies/NAME/stop``, and ``katuna stop`` where
        ``KATUNA_EXECUTOR=kubernetes``) through this process's executor: on Kubernetes its trial
        Jobs are deleted with their pods; its node pools are released. Once the stop is stored,
        a stop of its trials' workloads that fails (now, or in an earlier call) raises, so the
        caller learns of it (the tick tries again meanwhile: :mod:`functions.handlers.stopping`)."""
        record = self.store().get_study(name)
        self.dispatcher().deliver(study_completed(name, record.uid, "stopped", reason, record.restarts))
        stop_study_marked(self.deps(), name)

    def publish(self, event: Event) -> None:
        """Send an event on through the queue: to this service's own broker threads, or (reply
        mode) to the threads that post it to the Knative broker at ``K_SINK``
        (:mod:`functions.sink_senders`)."""
        self._check_publishing()
        self.queue.put(event)

    def _check_publishing(self) -> None:
        """A temporary error where nothing could send an event on (reply mode without ``K_SINK``):
        a submission is refused before its study is stored, not stored and then answered 503."""
        if self.settings.events == "reply" and self._senders is None:
            raise TemporaryError("events go to K_SINK in reply mode, and K_SINK is not set")

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
        if self._senders is not None:
            self._senders.start()
        elif self.settings.events == "queue":
            self._thread = BrokerThread(self._delivery, self._close_connections)
            self._thread.start()

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
        if self.settings.events == "queue" and (self._thread is None or not self._thread.alive()):
            return "the event broker thread is not running"
        if self._senders is not None and not self._senders.alive():
            return "the threads sending events to K_SINK are not running"
        return None

    def _delivery(self) -> Delivery:
        """The broker thread's delivery loop (built on that thread, over its own store): the
        local broker taking events from the queue, and the watcher ticking between them."""
        deps = self.deps()
        broker = LocalBroker(Dispatcher(deps, observer=self._metrics.events, turns=self._turns), self.queue,
                             on_dead_letter=self._dropped)
        stop_local = self.executor.stop_study if isinstance(self.executor, LocalExecutor) else (lambda study: None)
        watcher = Watcher(deps, self.queue, self._watched, stop_local, progress_every=self.settings.k8s_progress_seconds,
                          keep_every=self.settings.k8s_keep_seconds)
        return lambda until: broker.run(until=until, tick=watcher.tick, drain=False)

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

    def _watched(self) -> list[StudyRecord]:
        """What the watcher looks at, five times a second: the studies not ended, and those ended
        whose trials this process still runs. Ended studies are read by name only: they are most
        of a long-lived service's, and reading every one each time cost a worker a seventh of a
        core at 1,000 stored studies."""
        store = self.store()
        watched = store.unended_studies()
        local = {key[0] for key in self.executor.attempts()} if isinstance(self.executor, LocalExecutor) else set()
        for name in sorted(local - {record.name for record in watched}):
            with contextlib.suppress(StudyNotFound):
                watched.append(store.get_study(name))
        return watched

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
        :data:`BROKER_STOP_WAIT` seconds is not waited for further: it closes them as it ends,
        for a connection closed while another thread reads through it crashes the process."""
        self.stopping()
        self._started = True  # a start() after close() starts no thread on closed connections
        if self._thread is not None:
            self._thread.signal_stop()
        self.queue.stop_waiting()
        if self._thread is not None:
            self._thread.join(BROKER_STOP_WAIT)
        if self._senders is not None:
            self._senders.stop()
        if isinstance(self.executor, LocalExecutor):
            self.executor.shutdown()
        if self._thread is not None and self._thread.hand_over():
            log.warning("the event broker thread is still busy after %g s; it closes the database connections "
                        "as it ends; it is in %s", BROKER_STOP_WAIT, self._thread.where())
            return
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


APP_LOAD_ERROR = 4
"""The status a gunicorn worker exits with when its application cannot load: gunicorn then
stops, saying "App failed to load", instead of starting the worker again (``Arbiter.APP_LOAD_ERROR``)."""


def from_environment() -> WSGIApplication:
    """The HTTP service configured from the environment (gunicorn's entry point in a container).

    A setting katuna cannot use, other hosts named in ``KATUNA_ALLOWED_HOSTS`` without
    ``KATUNA_API_TOKEN`` (it serves loopback Host names only without one), or a gunicorn master
    that local trials could read the service's secrets from (started without
    :mod:`functions.gunicorn_config`), stop the worker with one log line saying why and
    :data:`APP_LOAD_ERROR`, no traceback: gunicorn then stops instead of restarting it, so a
    container never serves writes to the network unauthenticated, runs with a setting it
    misread, nor starts a trial that can read its token.
    """
    collect_less_often()
    try:
        settings = Settings.from_env()
    except InvalidSetting as exc:
        _refuse(str(exc))
    problem = (guard.exposure_problem(settings.allowed_hosts, settings.api_token)
               or master_problem(runs_local_trials=not settings.runs_jobs))
    if problem:
        _refuse(problem)
    return service_app(settings)


def _refuse(problem: str) -> NoReturn:
    log.error("katuna cannot start: %s", problem)
    sys.exit(APP_LOAD_ERROR)
