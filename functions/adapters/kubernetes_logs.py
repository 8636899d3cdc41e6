"""Reading a trial's pod logs from the Kubernetes API, for the Kubernetes executor: the whole
output streamed pod by pod in bounded memory, the log a person reads (every pod's, and, of a
container its kubelet ran again in place, its run before the current one too), a bounded slice
of the running pod's log, and where the current pod's log begins; the reads of one pod's log
that :mod:`functions.adapters.kubernetes_log_tails` makes to keep an attempt's last lines as
katuna ends it. A pod that has no log to give (never started, gone, or on a node that cannot be
reached) is skipped rather than an error.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Generator, Iterator
from itertools import chain
from typing import Any, cast

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3 import BaseHTTPResponse
from urllib3.exceptions import HTTPError

from functions.adapters.kubernetes_client import translate
from functions.adapters.kubernetes_status import counted, current_run, disrupted, status_of
from functions.core.errors import OutputLost, Stopping
from functions.core.lines import bounded_lines
from functions.core.live_log import LiveRead, LogMark, marked_lines
from functions.core.log_cursor import NANOS, Cursor, RunningLog, written_at
from functions.core.log_reads import earlier_run, this_run
from functions.core.log_rotation import LogStart

log = logging.getLogger("katuna.kubernetes")

CHUNK = 64 * 1024
"""Bytes of a pod log read at a time."""

FIRST_STAMP_BYTES = 64
"""Bytes read of a log to learn when its first line was written: its RFC 3339 time comes first."""

CLOCK_ALLOWANCE = 2
"""Seconds a running trial's log is read from before the last line read: the API counts
``sinceSeconds`` back from its node's clock, which may run ahead of this one."""

NOT_THE_NODE = frozenset({401, 403, 429})
"""Answers to a log read that are the API server's own (credentials not taken, no grant, its
priority and fairness throttling: ``429 TooManyRequests``), never a disrupted pod's node's."""


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
                job_name: str) -> Iterator[tuple[str, Iterator[str]]]:
        """The uid and the streamed log of each pod whose output is the attempt's
        (:func:`~functions.adapters.kubernetes_status.counted`: not a disrupted one that a later
        pod replaced). A disrupted pod's log the API cannot read now (its node stopped) is
        skipped, as its run was lost anyway; when no pod that ran to its end (and none still
        running) has one, the output is lost (:class:`OutputLost`)."""
        for uid, lines in self._pod_streams(counted(pods), namespace, container, job_name, timestamps=timestamps):
            yield uid, (line for line, _ in lines)

    def read_as_shown(self, pods: list[Any], namespace: str, container: str, job_name: str,
                      marks: bool) -> Iterator[tuple[str, Iterator[tuple[str, LogMark | None]]]]:
        """The uid and the streamed log of each pod, the runs lost included, that has one, its
        lines keeping their carriage returns (a log a person reads); of a container its kubelet
        ran again in place (``restartPolicy: OnFailure``), its run before the current one first,
        between lines of katuna's saying so (the kubelet keeps that one only). With ``marks``,
        the current run of the last pod is read with ``timestamps``, each of its lines with the
        mark past it (:mod:`functions.core.live_log`); other lines have none."""
        return self._pod_streams(pods, namespace, container, job_name, marks=marks, shown=True)

    def _pod_streams(self, pods: list[Any], namespace: str, container: str, job_name: str, timestamps: bool = False,
                     marks: bool = False, shown: bool = False) -> Iterator[tuple[str, Iterator[tuple[str, LogMark | None]]]]:
        """The logs :meth:`streams` and :meth:`read_as_shown` read, each line with its mark or None."""
        read = False
        for pod in pods:
            self.check(pod.metadata.name)
            if not (pod.spec and pod.spec.node_name):
                continue  # never scheduled: the API answers an empty log (204), as if it had written nothing
            earlier = self._earlier(pod, namespace, container) if shown else None
            stamped = marks and pod is pods[-1]
            response = self.read(pod, namespace, logging.WARNING, container=container,
                                  timestamps=timestamps or stamped or None)
            if response is None and earlier is None:
                continue
            read = read or not disrupted(pod)
            lines = iter(()) if response is None else self.streamed(pod.metadata.name, response,
                                                                      shown or bool(timestamps))
            run = getattr(status_of(pod, container), "restart_count", 0) or 0
            current = marked_lines(pod.metadata.uid, run, lines) if stamped else ((line, None) for line in lines)
            yield pod.metadata.uid, chain(((line, None) for line in earlier or ()), current)
        if not read:
            raise lost_output(job_name)

    def _earlier(self, pod: Any, namespace: str, container: str) -> Iterator[str] | None:
        """Of a container its kubelet ran again in place, the log of its run before the current
        one (``previous``) between lines of katuna's saying what it is; None for one never run
        again, or whose earlier run's log the API cannot give."""
        ended = restarted(pod, container)
        response = None if ended is None else self.read(pod, namespace, logging.WARNING, container=container,
                                                        previous=True)
        if ended is None or response is None:
            return None
        return self.between(pod.metadata.name, ended, self.streamed(pod.metadata.name, response, True))

    @staticmethod
    def between(pod: str, ended: tuple[int, Any], lines: Iterator[str]) -> Iterator[str]:
        """An earlier run's ``lines`` between the lines of katuna's that say what they are."""
        yield earlier_run(pod, ended[0], ended[1].exit_code, ended[1].reason)
        last = "\n"
        for line in lines:
            last = line
            yield line
        yield ("" if last.endswith("\n") else "\n") + this_run(pod)

    def since(self, pods: list[Any], namespace: str, container: str, mark: LogMark, limit_bytes: int) -> LiveRead | None:
        """At most ``limit_bytes`` of the log of the mark's container run, each line behind its
        time, from the mark's second less :data:`CLOCK_ALLOWANCE` on (the API counts
        ``sinceSeconds`` back from its node's clock); None when that run is not the last of the
        attempt's log (its pod not the last, its container run again since) or has no log."""
        pod = pods[-1] if pods else None
        status = status_of(pod, container)
        if pod is None or pod.metadata.uid != mark.pod or (getattr(status, "restart_count", 0) or 0) != mark.run:
            return None
        since = max(1, math.ceil(self._clock() - mark.at / NANOS) + CLOCK_ALLOWANCE)
        response = self.read(pod, namespace, container=container, timestamps=True, limit_bytes=limit_bytes,
                              since_seconds=since)
        if response is None:
            return None
        size = [0]

        def counted_chunks() -> Iterator[bytes]:
            for chunk in self.raw(pod.metadata.name, response):
                size[0] += len(chunk)
                yield chunk

        lines = list(bounded_lines(counted_chunks(), returns=True))
        return LiveRead(lines, size[0] >= limit_bytes)

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
        response = self.read(pod, namespace, container=container, timestamps=True,
                              limit_bytes=limit_bytes, since_seconds=since)
        if response is None:
            return None
        return RunningLog(pod.metadata.uid, list(self.streamed(pod.metadata.name, response, returns=True)))

    def start(self, pods: list[Any], namespace: str, container: str) -> LogStart | None:
        """Where the log of the current pod (the latest one not disrupted) begins: the time of its
        first line, read with :data:`FIRST_STAMP_BYTES` (the line's time comes first), and when
        the container started and ended. None when it never started, or its log cannot be read."""
        current = next((pod for pod in reversed(pods) if not disrupted(pod)), None)
        started, ended = current_run(pods, container)
        if current is None or started is None:
            return None
        response = self.read(current, namespace, container=container, timestamps=True, limit_bytes=FIRST_STAMP_BYTES)
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

    def streamed(self, pod: str, response: BaseHTTPResponse, returns: bool = False) -> Iterator[str]:
        """The lines of a pod's log as its answer streams in (:meth:`raw`), with their
        carriage returns kept where ``returns`` asks: always with ``timestamps``, where only
        the text after a line break has a time ahead of it (the text after a carriage return is
        then cut off by :func:`~functions.core.log_cursor.returns_cut` where metrics are read)."""
        raw = self.raw(pod, response)
        try:
            yield from bounded_lines(raw, returns=returns)
        finally:
            raw.close()

    def raw(self, pod: str, response: BaseHTTPResponse) -> Generator[bytes, None, None]:
        """The bytes of a pod's log as its answer streams in, until it ends or reads are stopped;
        the connection released at the end."""
        try:
            for chunk in response.stream(CHUNK):
                self.check(pod)
                yield chunk
        except HTTPError as exc:
            raise translate(exc, f"read the log of pod {pod}") from exc
        finally:
            response.release_conn()

    def check(self, pod: str) -> None:
        """A :class:`Stopping` once reads are stopped (:meth:`stop`)."""
        if self._stopped.is_set():
            raise Stopping(f"katuna is stopping: the read of pod {pod}'s log was given up; the trial's end is "
                           "handled again")

    def read(self, pod: Any, namespace: str, level: int = logging.DEBUG, **options: Any) -> BaseHTTPResponse | None:
        """The pod's log read with ``options``, unread (urllib3's response: the caller decodes its
        bytes), or None when the API has none to give: the container never started (400), waits to
        be run again in place (:func:`between_runs`: the run the API would answer with is the
        one before, read with ``previous``), the pod is gone (404),
        or the pod was disrupted and its node cannot be reached (any answer but the API server's
        own of :data:`NOT_THE_NODE`, which would come again for any pod: translated, a throttle
        tried again, so a read under load never drops a lost run's lines); logged at ``level``
        (a warning where the trial's output is read, not at every scan of a running log)."""
        if not options.get("previous") and between_runs(pod, str(options.get("container"))):
            log.log(level, "no log from pod %s's current run (container %s waits to be run again)", pod.metadata.name,
                    options.get("container"))
            return None
        try:
            # Unread (_preload_content=False), the log comes back as urllib3's response, not a str
            # the client decodes strictly.
            return cast(BaseHTTPResponse, self._core.read_namespaced_pod_log(
                pod.metadata.name, namespace, _preload_content=False, **options))
        except ApiException as exc:
            if exc.status in (400, 404) or (disrupted(pod) and exc.status not in NOT_THE_NODE):
                log.log(level, "no log from pod %s (container %s): %s %s", pod.metadata.name,
                        options.get("container"), exc.status, exc.reason)
                return None
            raise translate(exc, f"read the log of pod {pod.metadata.name}") from exc
        except HTTPError as exc:
            raise translate(exc, f"read the log of pod {pod.metadata.name}") from exc


def lost_output(job_name: str) -> OutputLost:
    """An attempt's output lost: no pod of its Job that ran to its end, or still runs, has a log."""
    return OutputLost(f"no log of Job {job_name}'s last run is left: its pods are gone (deleted with the "
                      "Job once its ttlSecondsAfterFinished passed, or with their node), or were never scheduled")


def restarted(pod: Any, container: str) -> tuple[int, Any] | None:
    """How many times the pod's kubelet ran its container ``container`` again in place, and the
    ``terminated`` state of its run before the current one; None for one never run again."""
    status = status_of(pod, container)
    last = status.last_state if status is not None else None
    if status is None or not status.restart_count or last is None or last.terminated is None:
        return None
    return status.restart_count, last.terminated


def between_runs(pod: Any, container: str) -> bool:
    """Whether the pod's container ``container`` has no current run of its own to read: it
    waits to be run again in place (neither running nor ended, a run of it ended before: in
    ``CrashLoopBackOff``), or its last run is one its kubelet never located (ended with no
    ``containerID``: ``ContainerStatusUnknown``, lost with its node's VM). The kubelet then
    answers a read of its current run with the log of the run that ended before
    (``validateContainerLogStatus`` serves a last terminated run before it looks at a waiting
    state, and in place of a terminated one with no container), which is no current run's."""
    status = status_of(pod, container)
    state, last = (status.state, status.last_state) if status is not None else (None, None)
    if state is not None and state.terminated is not None:
        return not state.terminated.container_id
    return (state is not None and state.running is None
            and last is not None and last.terminated is not None)
