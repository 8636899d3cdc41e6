"""The charts a dashboard process keeps: each built once, whatever the threads asking for it,
and kept until its study changes, within a bound of memory."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from functions.adapters.web.compression import MIN_BYTES, gzip_bytes

CHART_BUILDS = 2
"""Charts a process builds at once; more requests wait. Building is Python work that holds the
interpreter, so more at once would not finish sooner, and each takes memory while it builds."""
CHART_BYTES = 64 * 1024 * 1024
"""Bytes of charts a process keeps, their JSON and its gzipped copy counted together (a chart of
a 100,000-trial study takes megabytes)."""


@dataclass(frozen=True)
class Chart:
    """A chart's plotly JSON as UTF-8, and gzipped where that is worth it (:data:`MIN_BYTES`).

    Compressed once, as it is built: a browser takes gzip, and compressing a 1 MB chart for each
    request took 40-140 ms of CPU where sending it kept took 5."""

    body: bytes
    gzipped: bytes | None

    @classmethod
    def of(cls, text: str) -> Chart:
        body = text.encode()
        return cls(body, gzip_bytes(body) if len(body) >= MIN_BYTES else None)

    @property
    def size(self) -> int:
        """The bytes it keeps: both copies."""
        return len(self.body) + len(self.gzipped or b"")


class _ChartCache:
    """Recent charts by study and Optuna journal length: a chart is rebuilt only after the
    study changed, so a finished study's page is drawn once per worker.

    A chart is built by one thread at a time: others asking for it meanwhile wait for it and
    take it. At most :data:`CHART_BUILDS` charts are built at once in a process, whatever the
    threads, and the charts kept take at most :data:`CHART_BYTES` (the newest is always kept).
    """

    def __init__(self, size: int = 32, total: int = CHART_BYTES, builds: int = CHART_BUILDS) -> None:
        self._items: OrderedDict[tuple, Chart] = OrderedDict()
        self._size = size
        self._total = total
        self._lock = threading.Lock()
        self._building: dict[tuple, threading.Lock] = {}
        self._builds = threading.BoundedSemaphore(builds)
        self.built = 0
        """How many charts were built: what the tests count."""

    def get(self, key: tuple) -> Chart | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
            return self._items.get(key)

    def get_or_build(self, key: tuple, build: Callable[[], str]) -> Chart:
        """The chart kept under ``key``, else built by ``build`` (its JSON) and compressed (once,
        whoever asks meanwhile)."""
        chart = self.get(key)
        if chart is not None:
            return chart
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        try:
            with building:
                chart = self.get(key)
                if chart is None:
                    with self._builds:
                        chart = Chart.of(build())
                        self.built += 1
                    self.put(key, chart)
        finally:
            with self._lock:
                self._building.pop(key, None)
        return chart

    def put(self, key: tuple, chart: Chart) -> None:
        with self._lock:
            self._items[key] = chart
            self._items.move_to_end(key)
            while len(self._items) > 1 and (len(self._items) > self._size
                                            or sum(c.size for c in self._items.values()) > self._total):
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


chart_cache = _ChartCache()
