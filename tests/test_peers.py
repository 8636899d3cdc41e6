"""Without KATUNA_API_TOKEN, a request is taken only from a connection of the service's own user
(or root): the owner of the client's socket, read from Linux's /proc/net/tcp and tcp6, tables
parsed here as the kernel writes them for a real loopback connection; and a real ``katuna
serve`` refusing a request from another account of the machine."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import Service

from functions.adapters.web import peers

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc/net/tcp")

NOBODY = 65534


def _connection(family: int, host: str) -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.socket(family) as listener:
        listener.bind((host, 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()[:2]) as client:
            accepted, _ = listener.accept()
            with accepted:
                yield client, accepted


@pytest.fixture(params=[(socket.AF_INET, "127.0.0.1", "/proc/net/tcp"), (socket.AF_INET6, "::1", "/proc/net/tcp6")],
                ids=["tcp", "tcp6"])
def connection(request) -> Iterator[tuple[socket.socket, socket.socket, str]]:
    family, host, table = request.param
    if not Path(table).exists() or not socket.has_ipv6 and family == socket.AF_INET6:
        pytest.skip(f"no {table} here")
    try:
        yield from ((client, accepted, table) for client, accepted in _connection(family, host))
    except OSError as exc:
        pytest.skip(f"cannot listen on {host}: {exc}")


def test_the_client_end_of_a_real_loopback_connection_is_found_with_its_owner(connection):
    client, accepted, table = connection
    text = Path(table).read_text().splitlines()
    mine = peers.kernel_address(client.getsockname()), peers.kernel_address(client.getpeername())
    assert peers.owner(text, *mine) == os.getuid()
    assert peers.owner(text, mine[1], mine[0]) == os.getuid(), "the server's end, looked up the other way"
    other_port = client.getpeername()[:1] + (client.getpeername()[1] ^ 1,)
    assert peers.owner(text, mine[0], peers.kernel_address(other_port)) is None
    assert peers.peer_uid(accepted) == os.getuid(), "the service looks up its caller from the accepted socket"


def test_an_ipv4_caller_of_a_dual_stack_listener_is_found_in_tcp6():
    if not Path("/proc/net/tcp6").exists():
        pytest.skip("no /proc/net/tcp6 here")
    with socket.socket(socket.AF_INET6) as listener:
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        listener.bind(("::", 0))
        listener.listen()
        with socket.create_connection(("127.0.0.1", listener.getsockname()[1])):
            accepted, peer = listener.accept()
            with accepted:
                assert peer[0] == "::ffff:127.0.0.1"
                assert peers.peer_uid(accepted) == os.getuid()


def _request_as(uid: int, port: int, method: str, path: str, body: bytes = b"") -> tuple[int, dict]:
    """Status and JSON body of one request sent from a forked child running as ``uid``."""
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(reading)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(f"{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                answer = b"".join(iter(lambda: sock.recv(65536), b""))
            os.write(writing, answer)
        finally:
            os._exit(0)
    os.close(writing)
    with os.fdopen(reading, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(child, 0)
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body or b"null")


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="only root can send a request as another user (os.setuid in a child)")
def test_a_request_from_another_account_of_the_machine_is_refused_and_the_services_own_user_is_served_with_a_warning(tmp_path: Path):
    service = Service(tmp_path, workers=1)
    try:
        status, answer = _request_as(NOBODY, service.port, "GET", "/studies")
        assert status == 403 and answer["error"] == "local_user_not_allowed", answer
        assert f"not from a caller of uid {NOBODY}" in answer["message"] and "KATUNA_API_TOKEN" in answer["message"]
        definition = json.dumps(study_definition(name="stranger", maxTrials=1)).encode()
        status, answer = _request_as(NOBODY, service.port, "POST", "/studies", definition)
        assert status == 403 and answer["error"] == "local_user_not_allowed", answer
        status, studies = _request_as(os.geteuid(), service.port, "GET", "/studies")
        assert (status, studies) == (200, []), "the service's own user is served, and no study was made"
        assert service.json("GET", "/healthz")[0] == 200
    finally:
        service.close()
    assert "warning: katuna runs as root, so every trial's command runs as root too" in \
        (tmp_path / "serve.log").read_text()
