"""Knative Serving's data path to the katuna Service, on loopback: what stands between the
Service's address and the container.

With a target burst capacity of -1 (the Service's annotation; Knative's default, 211, keeps it
there too for one pod, but a cluster may set 0), the activator stays in the path of every
request, and it enforces the revision's spec (knative/serving cmd/activator/main.go,
pkg/activator/net/throttler.go). A template without it is not emulated: without the activator,
queue-proxy queues 10 x ``containerConcurrency`` requests and answers 503 beyond them.

- ``containerConcurrency`` (at most 1,000, Serving's default ``container-concurrency-max-limit``;
  0 for no limit): at most that many requests reach the container at once; the rest
  wait in the activator's queue, in arrival order, 10,000 deep (beyond it: 503, "pending
  request queue full").
- ``timeoutSeconds`` (at most 600, Serving's default ``max-revision-timeout-seconds``; 0 or none
  is 300): a request not answered within it, counted from its arrival (its wait in
  the queue included), gets 504 with the body "activator request timeout", and the container's
  request is cut (its context cancelled). An answer under way by then is cut short, the
  activator's timeout handler writing those words into its body all the same (Go's
  ``http.ResponseWriter`` takes them where the answer's ``Content-Length`` leaves room, or
  where it has none; knative/serving pkg/http/handler/timeout.go). Queue-proxy holds the
  request to the same timeout with the same handler ("request timeout"), counted from the
  request's arrival at the pod, later than the activator's: its own 504 never comes first.
- no ready pod (the container killed, starting again, not yet ready): the activator's capacity
  for the revision is 0, so requests wait in its queue, as they do while a revision scales
  from zero, and go on once the pod is ready again, or get the 504 above once the timeout
  passes. A sender sees a delay, not a failure (:mod:`.readiness`).
- the container gone while the activator still counts its pod ready (until it hears otherwise:
  a second or so), and a request whose container dies under it: 502, as the activator's proxy
  answers a connection it cannot make or that breaks.

Between the activator and the container stands the pod's queue-proxy, whose transport holds
connections to it open between requests as Go's does (:mod:`.queue_proxy`): a request sent on
one the container closed as it went out is sent again only where Go replays it (a ``GET``
without a body, say), and any other gets the same 502.

The kubelet's probes reach the container directly (:class:`.service.KatunaProcess` waits for
its readiness there), as do requests to the pod's own address.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .admission import BURST, service_problems
from .queue_proxy import Answer, Transport, UpstreamError
from .readiness import PROBE_PERIOD, Readiness, readiness_probe

QUEUE_DEPTH = 10_000
"""Requests the activator queues for a revision beyond those its pods take (``breakerQueueDepth``)."""
TIMED_OUT = b"activator request timeout"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


DEFAULT_TIMEOUT_SECONDS = 300
"""config-defaults' ``revision-timeout-seconds``: a revision's timeout where it gives none, or 0."""
MAX_TIMEOUT_SECONDS = 600
"""config-defaults' ``max-revision-timeout-seconds``: the webhook refuses a ``timeoutSeconds`` above it."""
MAX_CONTAINER_CONCURRENCY = 1000
"""config-defaults' ``container-concurrency-max-limit``: the webhook refuses a ``containerConcurrency``
above it (0, no limit, is allowed: ``allow-container-concurrency-specified-zero``)."""
UNEMULATED = ("responseStartTimeoutSeconds", "idleTimeoutSeconds")


def revision_limits(service: Mapping[str, Any]) -> tuple[int, float]:
    """``containerConcurrency`` and ``timeoutSeconds`` of a Knative Service manifest's template,
    as Serving's webhook takes them under its default config-defaults (revision_validation.go,
    metadata_validation.go ``ValidateContainerConcurrency``) and its defaulting fills them in
    (0, no limit; a timeout of 0 or none is 300 s); ``ValueError`` for what it refuses, the
    template's annotations, ports, probes and volumes included (:mod:`.admission`)."""
    spec = service["spec"]["template"]["spec"]
    concurrency, timeout = spec.get("containerConcurrency", 0), spec.get("timeoutSeconds") or DEFAULT_TIMEOUT_SECONDS
    if not isinstance(concurrency, int) or not 0 <= concurrency <= MAX_CONTAINER_CONCURRENCY:
        raise ValueError(f"containerConcurrency: expected an integer from 0 to {MAX_CONTAINER_CONCURRENCY}, "
                         f"got {concurrency!r}")
    if not isinstance(timeout, int) or not 0 < timeout <= MAX_TIMEOUT_SECONDS:
        raise ValueError(f"timeoutSeconds: expected an integer from 0 to {MAX_TIMEOUT_SECONDS} "
                         f"(max-revision-timeout-seconds), got {timeout!r}")
    unknown = [field for field in UNEMULATED if field in spec]
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not emulated")
    burst = (service["spec"]["template"].get("metadata") or {}).get("annotations", {}).get(BURST)
    if burst != "-1":
        raise ValueError(f"{BURST}: only -1 is emulated (the activator in the path of every request), got {burst!r}")
    problems = service_problems(service)
    if problems:
        raise ValueError(f"Serving's webhook refuses the Service: {'; '.join(problems)}")
    return concurrency, float(timeout)


class _Gate:
    """The activator's breaker: ``capacity`` requests in at once (0: any number) while the pod is
    ``ready`` (none while it is not), the rest queued in arrival order up to :data:`QUEUE_DEPTH`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.ready = False
        self.inside = 0
        self.most = 0
        """The most requests the container had at once."""
        self._queue: list[object] = []
        self._changed = threading.Condition()

    def enter(self, deadline: float) -> bool | None:
        """Wait for a place until ``deadline``: True once in, False past it, None with the queue full."""
        ticket = object()
        with self._changed:
            if len(self._queue) >= QUEUE_DEPTH:
                return None
            self._queue.append(ticket)
            admitted = self._changed.wait_for(lambda: self._first(ticket), deadline - time.monotonic())
            self._queue.remove(ticket)
            if admitted:
                self.inside += 1
                self.most = max(self.most, self.inside)
            self._changed.notify_all()
            return admitted

    @property
    def waiting(self) -> int:
        """Requests in the queue now."""
        with self._changed:
            return len(self._queue)

    def _first(self, ticket: object) -> bool:
        return self.ready and self._queue[0] is ticket and (self.capacity == 0 or self.inside < self.capacity)

    def set_ready(self, ready: bool) -> None:
        """The pod became ready (capacity for the queue) or not (none)."""
        with self._changed:
            self.ready = ready
            self._changed.notify_all()

    def leave(self) -> None:
        with self._changed:
            self.inside -= 1
            self._changed.notify_all()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


class Revision:
    """The Service's address for a container listening on ``port``, with ``service``'s
    (a Knative Service manifest's) concurrency, timeout and readiness probe, probed every
    ``probe_period`` seconds (:mod:`.readiness`); ``url`` is the address."""

    def __init__(self, service: Mapping[str, Any], port: int, probe_period: float = PROBE_PERIOD) -> None:
        concurrency, self.timeout = revision_limits(service)
        self.gate = _Gate(concurrency)
        self.port = port
        self.transport = Transport(port, concurrency)
        self.readiness = Readiness(port, readiness_probe(service), self.gate.set_ready, probe_period)
        self.timeouts = 0
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        revision = self

        class Activator(BaseHTTPRequestHandler):
            def _proxy(self) -> None:
                deadline = time.monotonic() + revision.timeout
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                admitted = revision.gate.enter(deadline)
                if admitted is None:
                    _answer(self, 503, b"pending request queue full")
                    return
                if not admitted:
                    revision.timeouts += 1
                    _answer(self, 504, TIMED_OUT)
                    return
                try:
                    revision.forward(self, body, deadline)
                finally:
                    revision.gate.leave()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_TRACE = _proxy  # noqa: N815 (the stdlib's names)

            def log_message(self, *args) -> None:
                return

        return Activator

    def forward(self, request: BaseHTTPRequestHandler, body: bytes, deadline: float) -> None:
        """Pass ``request`` on to the container through queue-proxy's transport (:mod:`.queue_proxy`)
        and its answer back, both cut at ``deadline``."""
        headers = [(name, value) for name, value in request.headers.items() if name.lower() not in HOP_BY_HOP]
        try:
            answer = self.transport.round_trip(request.command, request.path, headers, body, deadline)
        except TimeoutError:
            self.timeouts += 1
            _answer(request, 504, TIMED_OUT)
            return
        except UpstreamError as error:
            _answer(request, 502, str(error).encode())
            return
        try:
            _relay(request, answer, deadline)
        finally:
            answer.close()

    def close(self) -> None:
        self.readiness.close()
        self._server.shutdown()
        self._server.server_close()
        self.transport.close()


def _relay(request: BaseHTTPRequestHandler, answer: Answer, deadline: float) -> None:
    """Send the container's answer on as it comes, closing the connection at its end (or at
    ``deadline``, the answer then cut short after the timeout's words where they fit)."""
    request.send_response(answer.status, answer.reason)
    for name, value in answer.headers:
        if name.lower() not in HOP_BY_HOP:
            request.send_header(name, value)
    request.send_header("Connection", "close")
    request.end_headers()
    declared, relayed = answer.header("content-length"), 0
    while True:
        try:
            chunk = answer.read(deadline)
        except TimeoutError:
            if not declared.isdigit() or relayed + len(TIMED_OUT) <= int(declared):
                request.wfile.write(TIMED_OUT)
            break
        except (OSError, ValueError):
            break
        if not chunk:
            break
        request.wfile.write(chunk)
        relayed += len(chunk)
    request.close_connection = True


def _answer(request: BaseHTTPRequestHandler, code: int, body: bytes) -> None:
    """The activator's own answer (an error), with ``body``."""
    request.send_response(code)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)
