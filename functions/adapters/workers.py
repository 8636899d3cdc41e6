"""The threads that wait for local trial attempts to end."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger("katuna.executor")


class Workers:
    """Daemon threads that run jobs; a new one starts only when none is idle, since starting a
    thread makes the caller wait until it runs (a handler's transaction would wait with it).
    Closed, each thread ends once it has no job: a process that makes executors one after
    another (a test process, a program running studies one by one) keeps none of an earlier
    one's threads waiting forever."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._idle = 0
        self._closed = False
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1
        self._jobs.put(job)
        if start:
            threading.Thread(target=self._work, name="katuna-trial", daemon=True).start()

    def close(self) -> None:
        """End each idle thread, and each busy one once its job is done; a job submitted later
        still runs, on a thread that then ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, 0
        for _ in range(idle):
            self._jobs.put(None)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception:
                log.exception("a trial's thread failed")
            with self._lock:
                if self._closed:
                    return
                self._idle += 1
