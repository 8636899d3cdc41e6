"""The service's metrics in Prometheus's exposition format, through ``prometheus_client`` (the one
module that imports it). Every name starts with ``katuna_``.

Two kinds of figures. What happened in this process: every event handling, counted by event
type, handler and outcome, and timed by handler (the dispatcher's observer), the events the
senders to ``K_SINK`` dropped, and the storage failures (:class:`EventMetrics`). What the store
holds, read from it when scraped (:class:`StateCollector`), so every worker answers the same:
studies by status, trials by state, node-pool uses by phase, the events waiting in the queue, and
the tallies that only grow (trials ended by state, dead letters received; deleting a study lowers
neither). No label takes a study's name or a parameter: a label's values must stay few.

gunicorn may run several workers, each counting what it handles. With ``PROMETHEUS_MULTIPROC_DIR``
set (``katuna serve`` sets it to a private directory before its workers start;
:mod:`functions.adapters.web.server`), prometheus_client's multiprocess mode keeps each worker's
counts in files there, and a scrape of any worker adds them all up. prometheus_client chooses
that mode when it is first imported, so the composition root imports this module in the worker,
after the directory is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from functions.core.pool_use import CREATING, POOL_FAILED, READY, RELEASED, RELEASING
from functions.core.records import STUDY_RUNNING, TERMINAL_STATUSES, Census

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""The variable naming the directory where workers keep their counts (prometheus_client's)."""

HANDLER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Seconds: a handler takes milliseconds (a store write) to seconds (an Optuna ask over a long
study, a cloud API call); a request times out after minutes."""

STUDY_STATUSES = (STUDY_RUNNING, *TERMINAL_STATUSES)
POOL_PHASES = (CREATING, READY, RELEASING, RELEASED, POOL_FAILED)
TRIAL_STATES = ("waiting", "running", "complete", "failed", "pruned", "stopped")
"""As a study's ``counts`` say (:meth:`~functions.core.records.Counts.shown`): ``stopped`` are
those their study's end stopped, ``pruned`` those early stopping stopped."""
ENDED_STATES = ("complete", "failed", "pruned", "stopped")
DROP_REASONS = ("refused", "exhausted")
"""Why a sender to ``K_SINK`` dropped an event: the broker refused it for good, or every post failed for now."""
STORAGE_ERRORS = ("busy", "full", "unavailable", "other")
"""Kinds of storage failure (:func:`functions.adapters.sqlite_errors.observe`)."""


class EventMetrics:
    """Counts and times event handlings (a :class:`functions.dispatch_outcomes.Observer`), and counts the
    events the senders to ``K_SINK`` drop and the storage failures."""

    def __init__(self) -> None:
        self.handled_total = Counter(
            "katuna_events_handled", "Event handlings, by event type, handler and outcome (ok, duplicate, "
            "dropped, temporary_error, forged, permanent_error)", ["type", "handler", "outcome"], registry=None)
        self.duration = Histogram(
            "katuna_handler_duration_seconds", "Seconds a handler took, store transaction included",
            ["handler"], buckets=HANDLER_BUCKETS, registry=None)
        self.dropped_total = Counter(
            "katuna_events_dropped", "Events the senders to K_SINK dropped, by reason (refused: by the broker, for "
            "good; exhausted: every post failed for now)", ["reason"], registry=None)
        self.storage_errors_total = Counter(
            "katuna_storage_errors", "Storage failures, by kind (busy: held past the busy timeout; full: no space "
            "left; unavailable: the file cannot be used; other)", ["kind"], registry=None)
        for reason in DROP_REASONS:
            self.dropped_total.labels(reason)
        for kind in STORAGE_ERRORS:
            self.storage_errors_total.labels(kind)

    def collectors(self) -> tuple[Counter | Histogram, ...]:
        return self.handled_total, self.duration, self.dropped_total, self.storage_errors_total

    def handled(self, event_type: str, handler: str, outcome: str, seconds: float | None) -> None:
        """``seconds`` is None for an event refused before any handler ran: no handler's time."""
        self.handled_total.labels(event_type, handler, outcome).inc()
        if seconds is not None:
            self.duration.labels(handler).observe(seconds)

    def dropped(self, reason: str) -> None:
        self.dropped_total.labels(reason).inc()

    def storage_error(self, kind: str) -> None:
        self.storage_errors_total.labels(kind).inc()


class StateCollector:
    """Gauges computed at scrape time from what the store holds (a prometheus_client collector).

    ``census`` reads the store; ``queue_depth`` counts the events waiting in the queue (behind
    a Knative broker, those not yet sent to it), and is None where no queue is used; where it
    counts None (the queue's connection held past
    :data:`functions.service_events.QUEUE_DEPTH_WAIT`), the
    scrape has no ``katuna_queue_depth`` rather than waiting.
    """

    def __init__(self, census: Callable[[], Census], queue_depth: Callable[[], int | None] | None) -> None:
        self._census = census
        self._queue_depth = queue_depth

    def collect(self) -> Iterator[Metric]:
        census = self._census()
        yield _by("katuna_studies", "Studies, by status", "status", STUDY_STATUSES, census.studies)
        yield _by("katuna_trials", "Trials of every study, by state", "state", TRIAL_STATES, census.trials.shown())
        yield _by("katuna_node_pool_uses", "Studies' uses of node pools, by phase", "phase", POOL_PHASES,
                  census.pool_uses)
        yield GaugeMetricFamily("katuna_node_pool_operations_pending",
                                "Node-pool uses waiting on a cloud operation", value=census.pool_operations)
        finished = CounterMetricFamily("katuna_trials_finished", "Trials that ended, by state, counted as each "
                                       "ends (deleting a study does not lower it)", labels=["state"])
        ended = census.trials_finished.shown()
        for state in ENDED_STATES:
            finished.add_metric([state], ended[state])
        yield finished
        yield CounterMetricFamily("katuna_dead_letters", "Dead letters received: events the broker (or, in queue "
                                  "mode, the service's own queue) gave up delivering", value=census.dead_letters)
        depth = self._queue_depth() if self._queue_depth is not None else None
        if depth is not None:
            yield GaugeMetricFamily("katuna_queue_depth", "Events waiting in the queue or being handled",
                                    value=depth)


def _by(name: str, documentation: str, label: str, known: tuple[str, ...], counts: Mapping[str, int]) -> Metric:
    """A gauge with one series per label value: the ``known`` ones (zero when absent), then any other."""
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for value in dict.fromkeys([*known, *sorted(counts)]):
        family.add_metric([value], counts.get(value, 0))
    return family


class ServiceMetrics:
    """What ``GET /metrics`` answers: this process's (or, in multiprocess mode, every worker's)
    event metrics, and the store's state."""

    def __init__(self, census: Callable[[], Census], queue_depth: Callable[[], int | None] | None) -> None:
        self.events = EventMetrics()
        self._registry = CollectorRegistry()
        if os.environ.get(MULTIPROCESS_DIR):
            MultiProcessCollector(self._registry)
        else:
            for collector in self.events.collectors():
                self._registry.register(collector)
        self._registry.register(StateCollector(census, queue_depth))

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The metrics in the format ``accept`` asks for (the text format 0.0.4 by default, or
        OpenMetrics), and its content type."""
        encode, content_type = choose_encoder(accept)
        return encode(self._registry), content_type
