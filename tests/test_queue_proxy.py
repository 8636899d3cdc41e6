"""The emulator's queue-proxy transport (:mod:`knative_emulator.queue_proxy`) held to Go's
``http.Transport`` rules, against a container on loopback whose connections a test steers; and
katuna's own answers through it, as a cluster's queue-proxy sends them."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from pathlib import Path

import pytest
from knative_emulator.queue_proxy import Transport, UpstreamError
from knative_emulator.service import KatunaProcess
from knative_emulator.serving import Revision
from waiting import eventually

TOKEN = "queue-proxy-token-0123456789"
"""The service's API token."""
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
ANSWERS = {
    "/keep": OK,
    "/drop": OK,
    "/hangup": OK,
    "/close": b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\no\r\n1\r\nk\r\n0\r\n\r\n",
    "/extra": OK + b"stray",
}
"""What the container answers at each path: ``/drop`` closes a connection unanswered where it is
not the connection's first request, ``/hangup`` closes it after the answer (which said nothing
of it), ``/close`` says ``Connection: close`` and keeps the connection open, ``/extra`` sends
bytes past its answer's ``Content-Length``."""


class Container:
    """A container on loopback answering as :data:`ANSWERS` says; ``requests`` records each
    request's connection (numbered in accepted order), method and path."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[tuple[int, str, str]] = []
        self.hung_up = threading.Event()
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        number = 0
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            number += 1
            threading.Thread(target=self._serve, args=(connection, number), daemon=True).start()

    def _serve(self, connection: socket.socket, number: int) -> None:
        buffer, served = bytearray(), 0
        with connection:
            while (head := _request_head(connection, buffer)) is not None:
                method, path = head
                self.requests.append((number, method, path))
                served += 1
                if path == "/drop" and served > 1:
                    return
                connection.sendall(ANSWERS[path])
                if path == "/hangup":
                    break
        self.hung_up.set()

    def connections(self) -> list[int]:
        return [number for number, _, _ in self.requests]

    def close(self) -> None:
        """Stop listening: the shutdown wakes the accepting thread (a close alone leaves it
        blocked, and the socket listening while it is), which ends."""
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self._accepting.join()


def _request_head(connection: socket.socket, buffer: bytearray) -> tuple[str, str] | None:
    """The method and path of the next request (its body read and dropped), None at the end."""
    while b"\r\n\r\n" not in buffer:
        data = connection.recv(65536)
        if not data:
            return None
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next((int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")), 0)
    while len(rest) < length:
        rest += connection.recv(65536)
    buffer[:] = rest[length:]
    method, path, _ = lines[0].split(" ")
    return method, path


def fetch(transport: Transport, method: str, path: str, body: bytes = b"",
          headers: tuple[tuple[str, str], ...] = ()) -> tuple[int, bytes]:
    """A request through ``transport``: the answer's status and its whole body."""
    deadline = time.monotonic() + 10
    answer = transport.round_trip(method, path, headers, body, deadline)
    content = b"".join(iter(lambda: answer.read(deadline), b""))
    answer.close()
    return answer.status, content


@pytest.fixture
def container():
    running = Container()
    yield running
    running.close()


def test_a_connection_is_kept_alive_and_the_most_recently_used_is_taken_first(container: Container):
    transport = Transport(container.port, max_idle=8)
    deadline = time.monotonic() + 10
    assert [fetch(transport, "GET", "/keep"), fetch(transport, "POST", "/chunked", b"{}")] == [(200, b"ok")] * 2
    first = transport.round_trip("GET", "/keep", (), b"", deadline)
    second = transport.round_trip("GET", "/keep", (), b"", deadline)
    for answer in (first, second):
        assert answer.read(deadline) == b"ok" and answer.read(deadline) == b""
    fetch(transport, "GET", "/keep")
    assert container.connections() == [1, 1, 1, 2, 2], "the second answer's connection went back last: taken first"
    assert (transport.dials, transport.reuses) == (2, 3)


def test_an_answer_saying_connection_close_ends_its_connection(container: Container):
    transport = Transport(container.port, max_idle=8)
    assert [fetch(transport, "GET", path) for path in ("/close", "/keep", "/keep")] == [(200, b"ok")] * 3
    assert container.connections() == [1, 2, 2], "the container kept it open, but the answer said close"


def test_idle_connections_beyond_the_pools_size_or_its_idle_timeout_are_closed(container: Container):
    transport = Transport(container.port, max_idle=1)
    deadline = time.monotonic() + 10
    answers = [transport.round_trip("GET", "/keep", (), b"", deadline) for _ in range(2)]
    for answer in answers:
        assert answer.read(deadline) == b"ok" and answer.read(deadline) == b""
    fetch(transport, "GET", "/keep")
    assert container.connections() == [1, 2, 1], "the second one back found the pool full"
    expired = Transport(container.port, max_idle=8, idle_timeout=0)
    fetch(expired, "GET", "/keep")
    fetch(expired, "GET", "/keep")
    assert container.connections()[3:] == [3, 4]


@pytest.mark.parametrize("path", ["/hangup", "/extra"])
def test_an_idle_connection_the_container_closed_or_wrote_on_is_dropped_not_used(container: Container, path: str):
    """Go's read loop sees an idle connection's end, or bytes no request asked for (which it
    logs as an unsolicited response), and drops it: the next request, a POST, goes on a new one."""
    transport = Transport(container.port, max_idle=8)
    assert fetch(transport, "GET", path) == (200, b"ok")
    if path == "/hangup":
        container.hung_up.wait(10)
    assert fetch(transport, "POST", "/keep", b"{}") == (200, b"ok")
    assert (container.connections(), transport.retries) == ([1, 2], 0)
    assert (transport.unsolicited, transport.ended) == (([b"stray"], 0) if path == "/extra" else ([], 1))


@pytest.mark.parametrize(("method", "body", "headers", "again"), [
    ("GET", b"", (), True), ("HEAD", b"", (), True), ("OPTIONS", b"", (), True),
    ("POST", b"", (("Idempotency-Key", "1"),), True), ("POST", b"{}", (), False), ("POST", b"", (), False),
    ("DELETE", b"", (), False), ("GET", b"{}", (), False)])
def test_a_request_a_reused_connection_fails_is_sent_again_only_where_go_replays_it(
        container: Container, method: str, body: bytes, headers: tuple, again: bool):
    """The container closes the reused connection as the request arrives: Go's transport sends a
    request without a body again on a new connection where its method is idempotent (or it
    carries an idempotency key); any other fails, which the proxy answers ``502``."""
    transport = Transport(container.port, max_idle=8)
    fetch(transport, "GET", "/keep")
    if again:
        assert fetch(transport, method, "/drop", body, headers)[0] == 200
        assert (container.connections(), transport.retries) == ([1, 1, 2], 1)
    else:
        with pytest.raises(UpstreamError, match="EOF"):
            fetch(transport, method, "/drop", body, headers)
        assert (container.connections(), transport.retries) == ([1, 1], 0)


def test_the_services_address_answers_502_for_a_post_a_reused_connection_failed(container: Container):
    revision = Revision(_service(), container.port)
    try:
        eventually(lambda: revision.gate.ready, "the activator to count the pod ready", timeout=10)
        assert _send(revision, "GET", "/keep") == (200, b"ok")
        assert _send(revision, "POST", "/drop", b"{}") == (502, b"EOF")
    finally:
        revision.close()


@pytest.mark.parametrize(("head", "sent", "relayed"), [
    (b"Content-Length: 100", b"x" * 10, b"x" * 10 + b"activator request timeout"),
    (b"Content-Length: 20", b"x" * 10, b"x" * 10),
    (b"Transfer-Encoding: chunked", b"5\r\nhello\r\n", b"hello" + b"activator request timeout")])
def test_an_answer_under_way_at_the_revision_timeout_is_cut_short_after_the_timeouts_words(
        head: bytes, sent: bytes, relayed: bytes):
    """Past ``timeoutSeconds`` with the answer's head relayed, the activator's timeout handler
    writes its words into the body (where a ``Content-Length`` leaves room for them) and the
    connection ends: a client that trusts the answer's length sees it cut short."""
    listener = socket.create_server(("127.0.0.1", 0))
    released = threading.Event()

    def stall(connection: socket.socket) -> None:
        with connection:
            if _request_head(connection, bytearray()) is not None:  # none for the readiness probe's connection
                connection.sendall(b"HTTP/1.1 200 OK\r\n" + head + b"\r\n\r\n" + sent)
                released.wait(30)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                threading.Thread(target=stall, args=(listener.accept()[0],), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    service = _service()
    service["spec"]["template"]["spec"]["timeoutSeconds"] = 1
    revision = Revision(service, listener.getsockname()[1])
    try:
        with socket.create_connection(("127.0.0.1", int(revision.url.rsplit(":", 1)[1])), timeout=30) as client:
            client.sendall(b"GET /slow HTTP/1.1\r\nHost: katuna\r\n\r\n")
            answer = b""
            while data := client.recv(65536):
                answer += data
        status, _, body = answer.partition(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.0 200") and body == relayed, answer
    finally:
        released.set()
        revision.close()
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread, which a close alone leaves blocked
        listener.close()


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("GET", "/healthz", b"", 200), ("HEAD", "/healthz", b"", 200), ("OPTIONS", "/studies", b"", 200),
    ("GET", "/studies", b"", 200), ("GET", "/studies?x=1", b"", 400), ("POST", "/studies", b"{bad", 400),
    ("POST", "/studies", b"x" * 5000, 413), ("DELETE", "/studies/none", b"{}", 400), ("PUT", "/healthz", b"", 405),
    ("GET", "/studies/none", b"", 404), ("HEAD", "/openapi.json", b"", 200), ("POST", "/functions/suggest", b"", 415),
    ("GET", "/studies/x/trials/99999999999999999999", b"", 400), ("POST", "/studies", b"[]", 422)])
def test_katunas_answers_leave_queue_proxys_connections_sound(katuna: tuple[KatunaProcess, Revision], method: str,
                                                             path: str, body: bytes, status: int):
    """Each answer, a refusal or not, frames its body as it says and ends its connection where
    it says close, and only there: the next request on the pool is answered whole, no bytes come
    on an idle connection, none is found closed, and no request has to go again."""
    _, revision = katuna
    transport = revision.transport
    before = (transport.retries, len(transport.unsolicited), transport.ended)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    assert _send(revision, method, path, body, headers)[0] == status
    assert _send(revision, "GET", "/healthz") == (200, b'{"status":"ok"}\n')
    reused = transport.reuses
    assert _send(revision, "GET", "/healthz") == (200, b'{"status":"ok"}\n')
    assert transport.reuses == reused + 1, "a kept-alive connection is taken again"
    assert (transport.retries, len(transport.unsolicited), transport.ended) == before


@pytest.fixture(scope="module")
def katuna(tmp_path_factory: pytest.TempPathFactory):
    container = KatunaProcess(Path(tmp_path_factory.mktemp("katuna")), KATUNA_API_TOKEN=TOKEN,
                              KATUNA_MAX_BODY="1000", KATUNA_EVENTS="reply")
    revision = Revision(_service(), container.port)
    yield container, revision
    revision.close()
    container.close()


def _service() -> dict:
    return {"spec": {"template": {"metadata": {"annotations": {"autoscaling.knative.dev/target-burst-capacity": "-1"}},
                                  "spec": {"containerConcurrency": 8, "timeoutSeconds": 30}}}}


def _send(revision: Revision, method: str, path: str, body: bytes = b"",
          headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """A request to the Service's address: its answer's status and body."""
    connection = http.client.HTTPConnection(revision.url.removeprefix("http://"), timeout=30)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()
