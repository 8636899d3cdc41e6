"""Reading a trial's pod logs from the Kubernetes API, for the Kubernetes executor: the whole
output streamed pod by pod in bounded memory, a bounded slice of the running pod's log, where
the current pod's log begins, and the last lines of the attempt's log, to keep as katuna ends
it. A pod that has no log to give (never started, gone, or on a node that cannot be reached) is
skipped rather than an error.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any, cast

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3 import BaseHTTPResponse
from urllib3.exceptions import HTTPError

from functions.adapters.kubernetes_client import translate
from functions.adapters.kubernetes_status import counted, current_run, disrupted
from functions.core.errors import OutputLost, Stopping
from functions.core.kept_tails import KEPT_LINES, kept_text
from functions.core.lines import bounded_lines
from functions.core.log_cursor import Cursor, RunningLog, written_at
from functions.core.log_rotation import LogStart

log = logging.getLogger("katuna.kubernetes")

CHUNK = 64 * 1024
"""Bytes of a pod log read at a time."""

FIRST_STAMP_BYTES = 64
"""Bytes read of a log to learn when its first line was written: its RFC 3339 time comes first."""

CLOCK_ALLOWANCE = 2
"""Seconds a running trial's log is read from before the last line read: the API counts
``sinceSeconds`` back from its node's clock, which may run ahead of this one."""


class PodLogs:
    """The logs of an attempt's pods (given oldest first), read from the trial's container."""

    def __init__(self, api: client.ApiClient, clock: Callable[[], float]) -> None:
        self._core = client.CoreV1Api(api)
        self._clock = clock
        self._stopped = threading.Event()

    def stop(self) -> None:
        """End every stream of a trial's output under way, and refuse any later one, with a
        :class:`~functions.core.errors.Stopping`: a service stopping must not wait for a
        handler to read a pod's log of hundreds of megabytes to its end (its event is handled
        again, by the next process to take it)."""
        self._stopped.set()

    def streams(self, pods: list[Any], namespace: str, container: str, timestamps: bool,
                job_name: str, every: bool = False, returns: bool = False) -> Iterator[tuple[str, Iterator[str]]]:
        """The uid and the streamed log of each pod whose output is the attempt's
        (:func:`~functions.adapters.kubernetes_status.counted`: not a disrupted one that a later
        pod replaced), or, with ``every``, of each pod, the runs lost included, that has one;
        with ``returns``, its lines keep their carriage returns (a log a person reads). A
        disrupted pod's log the API cannot read now (its node stopped) is skipped, as its run was
        lost anyway; when no pod that ran to its end (and none still running) has one, the output
        is lost (:class:`OutputLost`)."""
        read = False
        for pod in pods if every else counted(pods):
            self._check(pod.metadata.name)
            if not (pod.spec and pod.spec.node_name):
                continue  # never scheduled: the API answers an empty log (204), as if it had written nothing
            response = self._read(pod, namespace, logging.WARNING, container=container, timestamps=timestamps or None)
            if response is None:
                continue
            read = read or not disrupted(pod)
            yield pod.metadata.uid, self._streamed(pod.metadata.name, response, returns)
        if not read:
            raise OutputLost(f"no log of Job {job_name}'s last run is left: its pods are gone (deleted with the "
                             "Job once its ttlSecondsAfterFinished passed, or with their node), or were never scheduled")

    def running(self, pods: list[Any], namespace: str, container: str, after: Cursor | None,
                limit_bytes: int) -> RunningLog | None:
        """At most ``limit_bytes`` of the running pod's log, each line behind the time it was
        written: from the start, or, when ``after`` is of that pod, from the whole second of its
        last line (less :data:`CLOCK_ALLOWANCE`: the API counts ``sinceSeconds`` back from its own
        clock). None when no pod runs."""
        running = [p for p in pods if p.status and p.status.phase == "Running" and not disrupted(p)]
        if not running:
            return None
        pod = running[-1]
        since = None
        if after is not None and after.pod == pod.metadata.uid:
            since = max(1, math.ceil(self._clock() - after.since) + CLOCK_ALLOWANCE)
        response = self._read(pod, namespace, container=container, timestamps=True,
                              limit_bytes=limit_bytes, since_seconds=since)
        if response is None:
            return None
        return RunningLog(pod.metadata.uid, list(self._streamed(pod.metadata.name, response)))

    def tail(self, pods: list[Any], namespace: str, container: str) -> tuple[str, bool] | None:
        """The last :data:`~functions.core.kept_tails.KEPT_BYTES` of the log of the attempt's
        latest pod that has one (of its last :data:`~functions.core.kept_tails.KEPT_LINES`
        records and one more, which tells a log cut short, so a long log costs no more to read
        than a short one: :func:`~functions.core.kept_tails.kept_text`), and whether that is the
        attempt's whole log (its only pod's, all of it); None when no pod has a log."""
        for pod in reversed(counted(pods)):
            if not (pod.spec and pod.spec.node_name):
                continue
            response = self._read(pod, namespace, container=container, tail_lines=KEPT_LINES + 1)
            if response is not None:
                text, whole = kept_text(self._raw(pod.metadata.name, response), KEPT_LINES + 1)
                return text, whole and len(pods) == 1
        return None

    def start(self, pods: list[Any], namespace: str, container: str) -> LogStart | None:
        """Where the log of the current pod (the latest one not disrupted) begins: the time of its
        first line, read with :data:`FIRST_STAMP_BYTES` (the line's time comes first), and when
        the container started and ended. None when it never started, or its log cannot be read."""
        current = next((pod for pod in reversed(pods) if not disrupted(pod)), None)
        started, ended = current_run(pods, container)
        if current is None or started is None:
            return None
        response = self._read(current, namespace, container=container, timestamps=True, limit_bytes=FIRST_STAMP_BYTES)
        if response is None:
            return None
        try:
            # The kubelet cuts at a byte, maybe inside a character: only the leading time is read.
            first = response.data.decode(errors="replace")
        except HTTPError as exc:
            raise translate(exc, f"read the log of pod {current.metadata.name}") from exc
        finally:
            response.release_conn()
        return LogStart(current.metadata.uid, started, ended, written_at(first.partition(" ")[0]) if first else None)

    def _streamed(self, pod: str, response: BaseHTTPResponse, returns: bool = False) -> Iterator[str]:
        """The lines of a pod's log as its answer streams in (:meth:`_raw`), with their
        carriage returns kept where ``returns`` asks."""
        raw = self._raw(pod, response)
        try:
            yield from bounded_lines(raw, returns=returns)
        finally:
            raw.close()

    def _raw(self, pod: str, response: BaseHTTPResponse) -> Generator[bytes, None, None]:
        """The bytes of a pod's log as its answer streams in, until it ends or reads are stopped;
        the connection released at the end."""
        try:
            for chunk in response.stream(CHUNK):
                self._check(pod)
                yield chunk
        except HTTPError as exc:
            raise translate(exc, f"read the log of pod {pod}") from exc
        finally:
            response.release_conn()

    def _check(self, pod: str) -> None:
        """A :class:`Stopping` once reads are stopped (:meth:`stop`)."""
        if self._stopped.is_set():
            raise Stopping(f"katuna is stopping: the read of pod {pod}'s log was given up; the trial's end is "
                           "handled again")

    def _read(self, pod: Any, namespace: str, level: int = logging.DEBUG, **options: Any) -> BaseHTTPResponse | None:
        """The pod's log read with ``options``, unread (urllib3's response: the caller decodes its
        bytes), or None when the API has none to give: the container never started (400), the pod is gone (404),
        or the pod was disrupted and its node cannot be reached (any answer); logged at ``level``
        (a warning where the trial's output is read, not at every scan of a running log)."""
        try:
            # Unread (_preload_content=False), the log comes back as urllib3's response, not a str
            # the client decodes strictly.
            return cast(BaseHTTPResponse, self._core.read_namespaced_pod_log(
                pod.metadata.name, namespace, _preload_content=False, **options))
        except ApiException as exc:
            if exc.status in (400, 404) or disrupted(pod):
                log.log(level, "no log from pod %s (container %s): %s %s", pod.metadata.name,
                        options.get("container"), exc.status, exc.reason)
                return None
            raise translate(exc, f"read the log of pod {pod.metadata.name}") from exc
        except HTTPError as exc:
            raise translate(exc, f"read the log of pod {pod.metadata.name}") from exc
