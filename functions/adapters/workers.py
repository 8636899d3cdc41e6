"""The threads that wait for local trial attempts to end."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger("katuna.executor")


class Workers:
    """Daemon threads that run jobs; a new one starts only when none is idle, since starting a
    thread makes the caller wait until it runs (a handler's transaction would wait with it)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1
        self._jobs.put(job)
        if start:
            threading.Thread(target=self._work, name="katuna-trial", daemon=True).start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except Exception:
                log.exception("a trial's thread failed")
            with self._lock:
                self._idle += 1
