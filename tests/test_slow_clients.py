"""Clients that are slow on purpose, against a real ``katuna serve`` (gunicorn) on loopback: a
connection that sends half a request and then nothing, or trickles it a byte at a time, must
never get a worker killed (and with it the local trials it owns), nor keep other requests
waiting; a body that comes too slowly is a ``408``, one cut short a ``400``, never a shorter
body taken as whole; and a large answer still reaches a client that reads it slowly.

The workers here get a heartbeat timeout of seconds (``KATUNA_WORKER_TIMEOUT``), so that a
client holding one past it would show as a killed worker within the test."""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import Service

from functions.adapters.web.client_socket import ClientSocket
from functions.adapters.web.lingering import Lingering
from functions.adapters.web.openapi import document
from functions.settings import Settings

pytestmark = pytest.mark.slow

WORKER_TIMEOUT = 10
"""Short enough to show a worker held past it within the test, long enough that a loaded machine's
scheduling never starves a worker's heartbeat that long."""
HALF_REQUEST = b"GET /studies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
ENDLESS_HEAD = HALF_REQUEST + b"X-Slow: y\r\n" * 100
POST_HEAD = b"POST /studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
CHUNKED_HEAD = b"POST /studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """One worker (of 8 threads), with a short heartbeat timeout and client timeout."""
    serving = Service(tmp_path, workers=1, KATUNA_WORKER_TIMEOUT=str(WORKER_TIMEOUT), KATUNA_CLIENT_TIMEOUT="4",
                      KATUNA_LOG_DIR=str(tmp_path / "logs"))
    yield serving
    serving.close()


def _connect(service: Service, first: bytes = b"") -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", service.port), timeout=60)
    if first:
        connection.sendall(first)
    return connection


def _answer(connection: socket.socket) -> tuple[int, bytes]:
    """The status and body of the one answer on ``connection``, read until the server closes it
    or the body is whole; status 0 when it closed without answering."""
    data = b""
    while True:
        head, ended, body = data.partition(b"\r\n\r\n")
        if ended and b"content-length:" in head.lower():
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            if len(body) >= length:
                return int(head.split()[1]), body[:length]
        try:
            received = connection.recv(65536)
        except ConnectionResetError:
            received = b""
        if not received:
            return (int(head.split()[1]), body) if ended else (0, b"")
        data += received


def _trickle(connection: socket.socket, data: bytes, stop: threading.Event) -> None:
    """Send ``data`` a byte every 0.2 s until it is sent, the server closes, or ``stop``."""
    for offset in range(len(data)):
        if stop.wait(0.2):
            return
        try:
            connection.send(data[offset:offset + 1])
        except OSError:
            return


def _running(service: Service, name: str) -> list[tuple[int, str, int]]:
    status, trials = service.json("GET", f"/studies/{name}/trials")
    assert status == 200, trials
    return [(t["number"], t["state"], t["attempt"]) for t in trials]


def test_half_sent_and_trickled_requests_never_cost_a_worker_its_trials_nor_keep_others_waiting(service, tmp_path):
    _victim(service)

    idle = [_connect(service, HALF_REQUEST) for _ in range(6)]
    stop = threading.Event()
    tricklers = [_connect(service), _connect(service, POST_HEAD % 1000)]
    answers: dict[int, tuple[int, bytes]] = {}
    threads = [threading.Thread(target=_trickle, args=(tricklers[0], ENDLESS_HEAD, stop)),
               threading.Thread(target=_trickle, args=(tricklers[1], b"x" * 1000, stop)),
               threading.Thread(target=lambda: answers.update({1: _answer(tricklers[1])}))]
    for thread in threads:
        thread.start()
    try:
        held_until = time.monotonic() + WORKER_TIMEOUT + 5  # past the client timeout's closes by a worker timeout
        while time.monotonic() < held_until:
            assert service.json("GET", "/studies")[0] == 200, "a request is served while slow clients are connected"
            time.sleep(0.5)
        assert all(_answer(connection) == (0, b"") for connection in idle), "a half-sent request is closed unanswered"
        assert _answer(tricklers[0]) == (0, b""), "a request head trickled past KATUNA_CLIENT_TIMEOUT is closed"
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for connection in idle + tricklers:
            connection.close()
    status, body = answers[1]
    assert status == 408 and json.loads(body)["error"] == "request_timeout", answers
    assert "request_timeout" in document()["paths"]["/studies"]["post"]["responses"]["408"]["description"]
    assert _running(service, "victim") == [(0, "RUNNING", 1)], "the trial runs on, in its first attempt"
    log = (tmp_path / "serve.log").read_text()
    assert "WORKER TIMEOUT" not in log and log.count("Booting worker") == 1, log


def _victim(service: Service) -> None:
    """A study whose one trial runs for ten minutes, in its first attempt."""
    sleep = [sys.executable, "-c", "import time; time.sleep(600)", "${trialParameters.x}"]
    definition = study_definition(name="victim", parallelism=1, maxTrials=1, trialTemplate={"command": sleep})
    status, answer = service.json("POST", "/studies", body=json.dumps(definition),
                                  headers={"Content-Type": "application/json"})
    assert status == 201, answer
    while _running(service, "victim") != [(0, "RUNNING", 1)]:
        time.sleep(0.2)


def test_clients_that_never_close_after_their_answers_cost_no_worker_its_trials(service, tmp_path):
    """Every answer that ends its connection (``Connection: close``, a refusal) waits for the
    client to close its end too; gunicorn waits on the worker's main loop, two seconds for each,
    so a few dozen such clients at once stopped its heartbeat past the timeout."""
    _victim(service)
    clients = [_connect(service) for _ in range(3 * WORKER_TIMEOUT)]
    time.sleep(0.5)
    for connection in clients:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    try:
        held_until = time.monotonic() + WORKER_TIMEOUT + 5
        while time.monotonic() < held_until:
            assert service.json("GET", "/studies")[0] == 200, "a request is served meanwhile"
            time.sleep(0.5)
        assert {_answer(connection)[0] for connection in clients} == {200}, "each was answered, then closed"
    finally:
        for connection in clients:
            connection.close()
    assert _running(service, "victim") == [(0, "RUNNING", 1)], "the trial runs on, in its first attempt"
    log = (tmp_path / "serve.log").read_text()
    assert "WORKER TIMEOUT" not in log and log.count("Booting worker") == 1, log


def test_chunked_bodies_stopped_part_way_hold_no_thread_and_are_closed(service):
    """More clients than the worker has threads each send part of a chunked body and then
    nothing: requests are served meanwhile, before any of them is answered (a thread holding
    one would have served the requests only after its deadline), and each is answered ``408``
    at its deadline, which comes before gunicorn's ``keepalive`` of silence here."""
    stalled = [_connect(service, CHUNKED_HEAD + b"10\r\n{\"name\": \"st") for _ in range(12)]
    try:
        for _ in range(3):
            assert service.json("GET", "/studies") == (200, [])
        for connection in stalled:
            connection.setblocking(False)
            with pytest.raises(BlockingIOError):
                connection.recv(1)
            connection.setblocking(True)
        answers = [_answer(connection) for connection in stalled]
    finally:
        for connection in stalled:
            connection.close()
    assert [(status, json.loads(body)["error"]) for status, body in answers] \
        == [(408, "request_timeout")] * len(stalled), answers
    status, _ = _answer(_connect(service, CHUNKED_HEAD + b"3\r\n{}\n\r\n0\r\n\r\n"))
    assert status == 422, "a whole chunked body gathered so is served"


def test_a_body_cut_short_is_refused_never_taken_as_the_whole_body(service):
    definition = json.dumps({"name": "cut"}).encode()
    connection = _connect(service, POST_HEAD % (len(definition) + 10) + definition)
    connection.shutdown(socket.SHUT_WR)
    status, body = _answer(connection)
    assert status == 400 and json.loads(body)["error"] == "incomplete_body", body
    assert f"after {len(definition)} of the {len(definition) + 10} bytes" in json.loads(body)["message"]
    assert service.json("GET", "/studies") == (200, [])


def test_a_request_sent_in_pieces_within_the_limit_and_a_large_answer_read_slowly_are_served(service):
    definition = json.dumps({"name": "bad"}).encode()
    connection = _connect(service)
    for piece in (POST_HEAD[:20], (POST_HEAD % len(definition))[20:], definition[:5], definition[5:]):
        connection.sendall(piece)
        time.sleep(0.3)
    status, body = _answer(connection)
    assert status == 422, body

    with _connect(service, b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n") as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        data = b""
        while received := slow.recv(4096):
            data += received
            time.sleep(0.001)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and json.loads(body)["openapi"], "the whole answer arrived"


def test_client_and_worker_timeouts_must_be_positive():
    with pytest.raises(ValueError, match="KATUNA_CLIENT_TIMEOUT: expected a positive number of seconds, got 0.0"):
        Settings.from_env({"KATUNA_CLIENT_TIMEOUT": "0"})
    with pytest.raises(ValueError, match="KATUNA_WORKER_TIMEOUT: expected a whole number of seconds >= 1, got 0"):
        Settings.from_env({"KATUNA_WORKER_TIMEOUT": "0"})
    assert Settings.from_env({}).client_timeout < Settings.from_env({}).worker_timeout


def test_a_half_closed_connection_past_its_deadline_is_closed_though_one_due_later_came_before_it():
    """The worker's poller closes a half-closed connection once its deadline passed, whatever
    connections were half-closed before it with a later one (a refused body's connection waits
    longer than an answered one's); those stay open, still read, until theirs."""
    poller = selectors.DefaultSelector()
    ended: list[str] = []
    later, later_client = socket.socketpair()
    due, due_client = socket.socketpair()
    lingering = Lingering(poller, lambda: ended.append("closed"))
    try:
        lingering.close(later, seconds=3600)
        lingering.close(due, seconds=0)
        lingering.sweep()
        assert ended == ["closed"] and due.fileno() == -1 and later.fileno() != -1
        assert [key.fileobj for key in poller.get_map().values()] == [later]
        with pytest.raises(BrokenPipeError):
            due_client.send(b"more")
        assert later_client.send(b"more") == 4
        lingering.sweep(force=True)
        assert ended == ["closed", "closed"] and later.fileno() == -1
    finally:
        for sock in (later, later_client, due, due_client):
            sock.close()
        poller.close()


def test_a_client_socket_waits_for_each_write_as_long_as_the_client_keeps_reading():
    """``sendall`` is bounded by the client's progress: an answer much larger than the socket
    buffers reaches a client that takes longer than the limit to read all of it (64 reads,
    20 ms apart, against a limit of 0.5 s; the socket's own ``sendall`` would give up)."""
    left, right = socket.socketpair()
    sender = ClientSocket.adopt(left, limit=0.5, body_limit=1)
    payload = b"y" * (4 << 20)
    received = bytearray()

    def read_slowly() -> None:
        right.settimeout(10)
        with contextlib.suppress(TimeoutError):
            while len(received) < len(payload):
                received.extend(right.recv(1 << 16))
                time.sleep(0.02)

    reader = threading.Thread(target=read_slowly)
    reader.start()
    try:
        sender.sendall(payload)
    finally:
        reader.join()
        sender.close()
        right.close()
    assert bytes(received) == payload


def test_a_client_socket_gives_up_an_answer_the_client_reads_slower_than_the_least_rate():
    """An answer's writes all end within ``limit`` seconds of the first plus its bytes at
    ``min_rate``: a client that keeps reading, each read well within the limit, but slower than
    that rate on average (64 KiB every 20 ms, about 3 MB/s, against a least rate set to 64 MB/s
    for the test) is given up with ``TimeoutError`` before all of 64 MiB reached it, where each
    write alone waited for its progress and the whole answer had no bound; one that reads as fast
    as the rate asks gets it all (the test above, at the default rate)."""
    left, right = socket.socketpair()
    sender = ClientSocket.adopt(left, limit=0.5, body_limit=1)
    sender.min_rate = 64 << 20
    payload = b"y" * (64 << 20)
    received = bytearray()

    def read_slowly() -> None:
        right.settimeout(10)
        with contextlib.suppress(OSError):
            while len(received) < len(payload) and (taken := right.recv(1 << 16)):
                received.extend(taken)
                time.sleep(0.02)

    reader = threading.Thread(target=read_slowly)
    reader.start()
    try:
        with pytest.raises(TimeoutError):
            sender.sendall(payload)
        sender.served()
        assert (sender.answer_started, sender.answer_sent) == (None, 0), "the next answer is due afresh"
    finally:
        sender.close()
        reader.join()
        right.close()
    assert len(received) < len(payload)


@pytest.mark.parametrize("head", [POST_HEAD % (2 << 20), POST_HEAD.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n") % 1000,
                                  HALF_REQUEST + (b"X-Large: " + b"y" * 8000 + b"\r\n") * 9 + b"X-Slow: ",
                                  CHUNKED_HEAD + b"1;" + b"e" * 1100, CHUNKED_HEAD + b"200000\r\n",
                                  CHUNKED_HEAD.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n") + b"400\r\n"],
                         ids=["body over the limit", "body after 100 Continue", "head over 64 KiB",
                              "chunk size line over 1 KiB", "chunks over the limit", "chunks after 100 Continue"])
def test_requests_a_thread_would_wait_for_hold_none_and_keep_no_other_client_waiting(tmp_path, head: bytes):
    """More clients than the worker has threads each send the start of a request no thread may
    wait for, then trickle the rest: a body over KATUNA_MAX_BODY (answered ``413`` at once, its
    bytes thrown away as they come by the worker's poller), one the client sends only once told
    to continue, or a head past the 64 KiB the worker gathers (refused ``431`` unread). Another
    client's request is served meanwhile, well within the trickled requests'
    KATUNA_CLIENT_TIMEOUT of 90 s, where each of them held a thread until it."""
    service = Service(tmp_path, workers=1, KATUNA_CLIENT_TIMEOUT="90", KATUNA_LOG_DIR=str(tmp_path / "logs"))
    stop = threading.Event()
    stalled = [_connect(service, head) for _ in range(12)]
    threads = [threading.Thread(target=_trickle, args=(connection, b"{" * 1000, stop)) for connection in stalled]
    for thread in threads:
        thread.start()
    try:
        for _ in range(3):
            assert service.json("GET", "/studies") == (200, [])
        if head.startswith(HALF_REQUEST):
            status, body = _answer(stalled[0])
            assert (status, json.loads(body)["error"]) == (431, "request_header_fields_too_large"), body
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for connection in stalled:
            connection.close()
        service.close()
