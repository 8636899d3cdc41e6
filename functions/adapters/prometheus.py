"""The service's metrics in Prometheus's exposition format, through ``prometheus_client`` (the one
module that imports it). Every name starts with ``katuna_``.

Two kinds of figures. What happened: every event handling, counted by event type, handler and
outcome, and timed by handler (:class:`EventMetrics`, the dispatcher's observer). What is: studies
by status, trials by state, node-pool uses by phase and the events waiting in the queue, read
from the store when scraped (:class:`StateCollector`), so every worker answers the same. No label
takes a study's name or a parameter: a label's values must stay few.

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
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
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


class EventMetrics:
    """Counts and times event handlings (a :class:`functions.dispatch.Observer`)."""

    def __init__(self) -> None:
        self.handled_total = Counter(
            "katuna_events_handled", "Event handlings, by event type, handler and outcome (ok, duplicate, "
            "dropped, temporary_error, forged, permanent_error)", ["type", "handler", "outcome"], registry=None)
        self.duration = Histogram(
            "katuna_handler_duration_seconds", "Seconds a handler took, store transaction included",
            ["handler"], buckets=HANDLER_BUCKETS, registry=None)

    def handled(self, event_type: str, handler: str, outcome: str, seconds: float) -> None:
        self.handled_total.labels(event_type, handler, outcome).inc()
        self.duration.labels(handler).observe(seconds)


class StateCollector:
    """Gauges computed at scrape time from what the store holds (a prometheus_client collector).

    ``census`` reads the store; ``queue_depth`` counts the events waiting in the queue (behind
    a Knative broker, those not yet sent to it), and is None where no queue is used.
    """

    def __init__(self, census: Callable[[], Census], queue_depth: Callable[[], int] | None) -> None:
        self._census = census
        self._queue_depth = queue_depth

    def collect(self) -> Iterator[Metric]:
        census = self._census()
        yield _by("katuna_studies", "Studies, by status", "status", STUDY_STATUSES, census.studies)
        yield _by("katuna_trials", "Trials of every study, by state", "state", (), census.trials.by_state())
        yield _by("katuna_node_pool_uses", "Studies' uses of node pools, by phase", "phase", POOL_PHASES,
                  census.pool_uses)
        yield GaugeMetricFamily("katuna_node_pool_operations_pending",
                                "Node-pool uses waiting on a cloud operation", value=census.pool_operations)
        if self._queue_depth is not None:
            yield GaugeMetricFamily("katuna_queue_depth", "Events waiting in the queue or being handled",
                                    value=self._queue_depth())


def _by(name: str, documentation: str, label: str, known: tuple[str, ...], counts: Mapping[str, int]) -> Metric:
    """A gauge with one series per label value: the ``known`` ones (zero when absent), then any other."""
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for value in dict.fromkeys([*known, *sorted(counts)]):
        family.add_metric([value], counts.get(value, 0))
    return family


class ServiceMetrics:
    """What ``GET /metrics`` answers: this process's (or, in multiprocess mode, every worker's)
    event metrics, and the store's state."""

    def __init__(self, census: Callable[[], Census], queue_depth: Callable[[], int] | None) -> None:
        self.events = EventMetrics()
        self._registry = CollectorRegistry()
        if os.environ.get(MULTIPROCESS_DIR):
            MultiProcessCollector(self._registry)
        else:
            self._registry.register(self.events.handled_total)
            self._registry.register(self.events.duration)
        self._registry.register(StateCollector(census, queue_depth))

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The metrics in the format ``accept`` asks for (the text format 0.0.4 by default, or
        OpenMetrics), and its content type."""
        encode, content_type = choose_encoder(accept)
        return encode(self._registry), content_type
