"""Without KATUNA_API_TOKEN, a request is taken only from a connection of the service's own user
(or root): the owner of the client's socket, asked of Linux's sock_diag netlink interface for
real loopback connections (its request and answer also packed and parsed here byte by byte),
else read from /proc/net/tcp and tcp6, tables parsed here as the kernel writes them; and a real
``katuna serve`` refusing a request from another account of the machine."""

from __future__ import annotations

import errno
import json
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import NOBODY, Service, answer_as

from functions.adapters.web import peers

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc/net/tcp")

@pytest.fixture(params=[(socket.AF_INET, "127.0.0.1", "/proc/net/tcp"), (socket.AF_INET6, "::1", "/proc/net/tcp6")],
                ids=["tcp", "tcp6"])
def connection(request) -> Iterator[tuple[socket.socket, socket.socket, str]]:
    """Both ends of a real loopback connection; skipped only where the machine has no such
    loopback (an IPv6-less kernel), never for what the test itself raises."""
    family, host, table = request.param
    if not Path(table).exists() or not socket.has_ipv6 and family == socket.AF_INET6:
        pytest.skip(f"no {table} here")
    with socket.socket(family) as listener:
        try:
            listener.bind((host, 0))
        except OSError as exc:
            pytest.skip(f"cannot listen on {host}: {exc}")
        listener.listen()
        with socket.create_connection(listener.getsockname()[:2]) as client:
            accepted, _ = listener.accept()
            with accepted:
                yield client, accepted, table


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


def _sock_diag() -> None:
    try:
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, peers.NETLINK_SOCK_DIAG).close()
    except OSError as exc:
        pytest.skip(f"no sock_diag netlink here: {exc}")


def _no_tables(*_args):
    raise AssertionError("the /proc/net tables were read where sock_diag answers")


def test_sock_diag_finds_both_ends_of_a_real_loopback_connection_with_their_owner(connection, monkeypatch):
    _sock_diag()
    client, accepted, _table = connection
    family = client.family
    assert peers.socket_owner(family, client.getsockname(), client.getpeername()) == os.getuid()
    assert peers.socket_owner(family, accepted.getsockname(), accepted.getpeername()) == os.getuid()
    other_port = client.getpeername()[:1] + (client.getpeername()[1] ^ 1,)
    assert peers.socket_owner(family, client.getsockname(), other_port) is None, "no such socket: not found"
    monkeypatch.setattr(peers, "_table_uid", _no_tables)
    assert peers.peer_uid(accepted) == os.getuid()


def test_sock_diag_finds_an_ipv4_caller_of_a_dual_stack_listener_under_its_ipv4_ends(monkeypatch):
    _sock_diag()
    monkeypatch.setattr(peers, "_table_uid", _no_tables)
    with socket.socket(socket.AF_INET6) as listener:
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        listener.bind(("::", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)), socket.socket(socket.AF_INET6) as mapped:
            mapped.connect(("::ffff:127.0.0.1", port))
            for _ in range(2):
                accepted, peer = listener.accept()
                with accepted:
                    assert peer[0] == "::ffff:127.0.0.1"
                    assert peers._as_filed(peer, accepted.getsockname())[0] == socket.AF_INET
                    assert peers.peer_uid(accepted) == os.getuid(), "an IPv4 client, then an IPv6 one on a mapped address"


def test_a_time_wait_socket_has_no_owner_not_root():
    """The kernel answers for a TIME_WAIT socket with uid 0: it must read as not found."""
    _sock_diag()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname())
        ends = client.getsockname(), client.getpeername()
        accepted, _ = listener.accept()
        client.close()
        accepted.recv(1)
        accepted.close()
        assert peers.socket_owner(socket.AF_INET, *ends) is None


def test_where_sock_diag_cannot_be_used_the_tables_are_read(connection, monkeypatch):
    _client, accepted, _table = connection

    def refused(*_args):
        raise OSError(errno.EPROTONOSUPPORT, "Protocol not supported")
    monkeypatch.setattr(peers, "socket_owner", refused)
    assert peers.peer_uid(accepted) == os.getuid()
    monkeypatch.setattr(peers, "socket_owner", lambda *_args: None)
    assert peers.peer_uid(accepted) == os.getuid(), "sock_diag that sees no socket at all, not even ours"


def test_the_sock_diag_request_is_laid_out_as_the_kernel_reads_it():
    ipv4 = peers.diag_request(socket.AF_INET, ("127.0.0.1", 0x1234), ("127.0.0.2", 8080), 9)
    assert len(ipv4) == 16 + 56, "nlmsghdr, then inet_diag_req_v2"
    assert struct.unpack_from("=IHHII", ipv4) == (72, 20, 1, 9, 0)
    assert struct.unpack_from("=BBBBI", ipv4, 16) == (socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF & ~0x440)
    assert ipv4[24:28] == bytes([0x12, 0x34, 0x1F, 0x90]), "ports big-endian"
    assert ipv4[28:44] == bytes([127, 0, 0, 1]) + bytes(12) and ipv4[44:60] == bytes([127, 0, 0, 2]) + bytes(12)
    assert ipv4[60:72] == bytes(4) + b"\xff" * 8, "no interface, INET_DIAG_NOCOOKIE"
    ipv6 = peers.diag_request(socket.AF_INET6, ("fe80::1%lo", 1, 0, 3), ("::1", 2), 1)
    assert ipv6[16] == socket.AF_INET6 and ipv6[28:44] == socket.inet_pton(socket.AF_INET6, "fe80::1")
    assert ipv6[44:60] == socket.inet_pton(socket.AF_INET6, "::1") and struct.unpack_from("=I", ipv6, 60) == (3,)


def _answer(kind: int, payload: bytes, sequence: int = 5) -> bytes:
    return struct.pack("=IHHII", 16 + len(payload), kind, 0, sequence, 0) + payload


def _message(state: int, uid: int) -> bytes:
    return struct.pack("=BBBB48sIIIII", socket.AF_INET, state, 0, 0, bytes(48), 0, 0, 0, uid, 77)


def test_the_sock_diag_answer_is_read_for_its_uid_and_errors():
    assert peers.diag_owner(_answer(20, _message(1, 1000)), 5) == 1000
    assert peers.diag_owner(_answer(20, _message(1, 7), 4) + _answer(20, _message(1, 1000)), 5) == 1000, \
        "another request's answer is skipped"
    assert peers.diag_owner(_answer(20, _message(6, 0)), 5) is None, "TIME_WAIT"
    assert peers.diag_owner(_answer(20, _message(10, 0)), 5) is None, "LISTEN"
    assert peers.diag_owner(_answer(2, struct.pack("=i", -errno.ENOENT) + bytes(16)), 5) is None
    with pytest.raises(OSError) as refused:
        peers.diag_owner(_answer(2, struct.pack("=i", -errno.EACCES) + bytes(16)), 5)
    assert refused.value.errno == errno.EACCES
    with pytest.raises(OSError):
        peers.diag_owner(_answer(20, _message(1, 1000))[:40], 5)


def _request_as(uid: int, port: int, method: str, path: str, body: bytes = b"",
                token: str | None = None) -> tuple[int, bytes]:
    """Status and body of one request sent from a forked child running as ``uid``, with
    ``token`` as its bearer token where given."""
    authorization = f"Authorization: Bearer {token}\r\n" if token else ""
    answer = answer_as(uid, port, f"{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n{authorization}"
                                   "Content-Type: application/json\r\n"
                                   f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _json_as(uid: int, port: int, method: str, path: str, body: bytes = b"") -> tuple[int, dict]:
    status, answer = _request_as(uid, port, method, path, body)
    return status, json.loads(answer or b"null")


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="only root can send a request as another user (os.setuid in a child)")
def test_a_request_from_another_account_of_the_machine_is_refused_and_the_services_own_user_is_served_with_a_warning(tmp_path: Path):
    service = Service(tmp_path, workers=1)
    try:
        status, answer = _json_as(NOBODY, service.port, "GET", "/studies")
        assert status == 403 and answer["error"] == "local_user_not_allowed", answer
        assert f"not from a caller of uid {NOBODY}" in answer["message"] and "KATUNA_API_TOKEN" in answer["message"]
        definition = json.dumps(study_definition(name="stranger", maxTrials=1)).encode()
        status, answer = _json_as(NOBODY, service.port, "POST", "/studies", definition)
        assert status == 403 and answer["error"] == "local_user_not_allowed", answer
        status, studies = _json_as(os.geteuid(), service.port, "GET", "/studies")
        assert (status, studies) == (200, []), "the service's own user is served, and no study was made"
        assert service.json("GET", "/healthz")[0] == 200
    finally:
        service.close()
    assert "warning: katuna runs as root, so every trial's command runs as root too" in \
        (tmp_path / "serve.log").read_text()


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="only root can send a request as another user (os.setuid in a child)")
def test_with_a_metrics_token_another_accounts_prometheus_scrapes_the_metrics_and_reaches_nothing_else(tmp_path: Path):
    service = Service(tmp_path, workers=1, KATUNA_METRICS_TOKEN="scrape-me-0123456789abcdef")
    try:
        status, metrics = _request_as(NOBODY, service.port, "GET", "/metrics", token="scrape-me-0123456789abcdef")
        assert status == 200 and b"katuna_queue_depth" in metrics, metrics
        assert _request_as(NOBODY, service.port, "GET", "/metrics")[0] == 401
        for path in ("/studies", "/ui/"):
            status, answer = _request_as(NOBODY, service.port, "GET", path, token="scrape-me-0123456789abcdef")
            assert status == 403 and json.loads(answer)["error"] == "local_user_not_allowed", (path, answer)
        assert service.json("GET", "/studies") == (200, [])
    finally:
        service.close()


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="only root can connect as another user (os.setuid in a child)")
def test_another_accounts_connection_is_refused_and_closed_before_anything_is_read_from_it(tmp_path: Path):
    """The worker answers 403 as it accepts the connection: the caller has sent nothing, so no
    request was read (none is logged), and no thread waited on it."""
    service = Service(tmp_path, workers=1)
    try:
        head, _, body = answer_as(NOBODY, service.port, b"").partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 403") and b"Connection: close" in head, head
        answer = json.loads(body)
        assert answer["error"] == "local_user_not_allowed" and f"of uid {NOBODY}" in answer["message"], answer
        assert service.json("GET", "/studies") == (200, [])
    finally:
        service.close()
    access = [line for line in (tmp_path / "serve.log").read_text().splitlines() if '" 403 ' in line]
    assert access == [], "the refused connection never reached the application"
