"""The image's gunicorn keeps an idle connection open longer than Knative's queue-proxy keeps it
in its pool, so that the proxy, not gunicorn, closes it: a request the proxy sends on a
connection gunicorn is closing fails, and the proxy does not send a POST again, so the broker
gets a 502 (docs/knative.md, The image).
"""

from __future__ import annotations

import http.client
import socket
import time
from pathlib import Path

import pytest
from gunicorn.config import Keepalive
from knative_emulator.service import KatunaProcess, image_command

from functions import gunicorn_config

QUEUE_PROXY_IDLE_CONN_TIMEOUT = 90
"""Seconds Knative's queue-proxy keeps an idle connection to the container: its transport
(knative/serving pkg/queue/sharedmain/main.go ``buildTransport``, knative.dev/pkg
network/transports.go ``newHTTPTransport``) clones Go's ``http.DefaultTransport``, whose
``IdleConnTimeout`` is 90 s (net/http transport.go), and leaves it as it is."""


def test_the_images_keepalive_outlasts_queue_proxys_idle_connections():
    assert "--keep-alive" not in image_command(8080), "the settings module's keepalive is the one the image runs"
    assert gunicorn_config.keepalive > QUEUE_PROXY_IDLE_CONN_TIMEOUT


@pytest.mark.slow
def test_the_images_gunicorn_keeps_an_idle_connection_open_past_gunicorns_default(tmp_path: Path):
    """An idle connection outlives gunicorn's default keepalive (checked once a second), and the
    next request goes out and is answered on it."""
    container = KatunaProcess(tmp_path)
    connection = http.client.HTTPConnection("127.0.0.1", container.port, timeout=10)
    try:
        connection.request("GET", "/healthz")
        assert connection.getresponse().read() == b'{"status":"ok"}\n'
        sock = connection.sock
        time.sleep(Keepalive.default + 2)
        assert _open(sock), "gunicorn closed the idle connection"
        connection.request("GET", "/healthz")
        assert connection.getresponse().status == 200
        assert connection.sock is sock
    finally:
        connection.close()
        container.close()


def _open(sock: socket.socket) -> bool:
    """Whether the peer has neither closed nor reset ``sock`` (nothing is due on it)."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(10)


@pytest.mark.slow
@pytest.mark.parametrize(("sent", "answer"), [
    (b"POST /studies HTTP/1.1\r\nHost: 127.0.0.1\r\n", b""),
    (b"POST /studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
     b"{\"name\":", b"HTTP/1.1 408 ")], ids=["head", "body"])
def test_a_request_stopped_part_way_is_closed_by_its_client_timeout_not_the_long_keepalive(tmp_path: Path,
                                                                                          sent: bytes, answer: bytes):
    """The long keepalive is for idle connections between requests: one whose head or body
    stopped coming is closed once ``KATUNA_CLIENT_TIMEOUT`` has passed, unanswered without its
    head, ``408`` without its body."""
    container = KatunaProcess(tmp_path, KATUNA_CLIENT_TIMEOUT="2")
    try:
        with socket.create_connection(("127.0.0.1", container.port), timeout=gunicorn_config.keepalive / 4) as sock:
            sock.sendall(sent)
            received = b"".join(iter(lambda: sock.recv(65536), b""))
            assert received.startswith(answer) and (answer or not received), received
    finally:
        container.close()
