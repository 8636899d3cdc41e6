"""What a command run in the test process (click's ``CliRunner``) sets for the whole process is
put back once its test is done (:func:`process_state.kept`, by ``tests/conftest.py``): a
command's entry point owns its process, and sets its stopping signals' handlers, the hook of the
exceptions Python drops, its log handler and levels. Left set, the later tests of the same pytest
process ran with the provisioning script's SIGTERM handler, its hook that sends a dropped
Ctrl-C again to the process, and katuna's terminal log lines on their standard error."""

from __future__ import annotations

import http.client
import logging
import os
import signal
import socket
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from gke_stub import GkeStub
from gke_stub_grpc import GrpcGke
from http_helpers import Sink
from knative_emulator import tls
from process_state import kept
from standin_server import StandInServer
from test_provision_script import GKE_FLAGS
from test_queue_proxy import Container
from test_remote_timeouts import SilentApi
from test_web_events import Issuer

from functions.adapters import log_lines
from functions.adapters.sqlite_store import SqliteStore
from functions.cli import main as katuna
from infra.provision import main as provision


def _commands(tmp_path: Path, gke: GkeStub) -> None:
    """The provisioning script and katuna, each run in this process as a test runs them."""
    status = CliRunner().invoke(provision, ["gke", "status", *GKE_FLAGS, "--endpoint", gke.url])
    assert status.exit_code == 0, status.output
    SqliteStore(tmp_path / "k.db").close()
    listed = CliRunner().invoke(katuna, ["studies", "--db", str(tmp_path / "k.db")])
    assert listed.exit_code == 0, listed.output


def _state() -> tuple:
    return ([signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)], sys.unraisablehook,
            log_lines.installed(), logging.getLogger("katuna").level, optuna.logging.get_verbosity())


def test_what_the_commands_set_for_the_process_is_put_back(tmp_path: Path, gke_api: GkeStub):
    before = _state()
    with kept():
        _commands(tmp_path, gke_api)
        assert _state() != before, "the commands set what the test process then kept"
    assert _state() == before


def test_every_test_of_the_suite_runs_inside_the_kept_process_state(request: pytest.FixtureRequest):
    """``tests/conftest.py`` wraps each test in :func:`process_state.kept`, whichever test ran
    before it in its process (what the state is then depends on the tests pytest-xdist dealt
    that process, and on the fixtures of a wider scope they share, so it is not asserted here)."""
    assert "_process_state_kept" in request.fixturenames


@pytest.mark.parametrize("stand_in", ["sink", "issuer"])
def test_a_closed_stand_in_server_listens_no_more(stand_in: str):
    """A stand-in a test closed takes no connection and holds no socket of the test process.
    Only stopped, it kept listening until the garbage collector found it (in a later test, as
    the suite collects less often): a post to the closed sink's address waited unanswered in its
    backlog for its timeout where it is refused, and each one kept a descriptor of the process."""
    server = Sink() if stand_in == "sink" else Issuer(keys=[])
    port = urllib.parse.urlsplit(server.url).port
    server.close()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def test_a_closed_tls_listener_leaves_its_authority_to_no_later_client():
    """The emulator's clients trust the CA of each TLS listener while it serves, not once it is
    closed: kept, every later test's client trusted every authority an earlier one made."""
    before = len(tls.trusting().get_ca_certs())
    listeners = tls.Listeners("strict", lambda: StandInServer(("127.0.0.1", 0), BaseHTTPRequestHandler))
    assert len(tls.trusting().get_ca_certs()) == before + 1
    listeners.close()
    assert len(tls.trusting().get_ca_certs()) == before


def test_a_closed_grpc_gke_leaves_no_thread_and_no_channel_behind(gke_api: GkeStub):
    """The gRPC face of the GKE stand-in, once closed, has ended the threads that answered its
    calls and closed the channels of the clients it made. Only stopped, its server's threads
    waited, idle, until the garbage collector found the server, in a later test (the suite
    collects less often): each gRPC test of the node pools left one or two in the process."""
    parent = "projects/proj-7/locations/europe-west4/clusters/tuning"
    before = set(threading.enumerate())
    face = GrpcGke(gke_api)
    client = face.client()
    assert client.list_node_pools(parent=parent).node_pools == []
    face.close()
    assert [t.name for t in threading.enumerate() if t not in before] == []
    with pytest.raises(ValueError, match="closed channel"):
        client.list_node_pools(parent=parent)


@pytest.mark.parametrize("stand_in", ["container", "silent-api"])
def test_a_closed_loopback_listener_takes_no_connection_and_leaves_no_thread(stand_in: str):
    """A stand-in that accepts on its own thread, once closed, refuses connections and has ended
    that thread. Only closed, its socket stayed listening for as long as the thread was blocked
    accepting on it (Linux wakes no accept for a close from another thread): the thread and the
    port were held for the rest of the process, and a connection there waited unanswered."""
    before = set(threading.enumerate())
    server = Container() if stand_in == "container" else SilentApi()
    port = server.listener.getsockname()[1] if isinstance(server, Container) else server.socket.getsockname()[1]
    server.close()
    assert [t.name for t in threading.enumerate() if t not in before] == []
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def test_a_closed_stand_in_server_ends_the_connections_kept_alive_to_it():
    """A client's kept-alive connection to a stand-in ends when the stand-in is closed, with
    the thread that answered on it. Left open, that thread waited for the connection's next
    request for the rest of the process (a Kubernetes client that is never closed, as the
    tests' resource clients, left two or so per test)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            return

    server = StandInServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    before = set(threading.enumerate())
    client = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    try:
        client.request("GET", "/")
        assert client.getresponse().read() == b""
        server.shutdown()
        server.server_close()
        assert [t.name for t in threading.enumerate() if t not in before] == []
    finally:
        client.close()


def test_the_environment_a_command_changed_in_the_process_is_put_back(monkeypatch: pytest.MonkeyPatch):
    """A library a command imports may set variables of the whole process (scikit-learn, which
    ``katuna optuna-dashboard`` imports, sets ``KMP_DUPLICATE_LIB_OK`` and ``KMP_INIT_AT_FORK``):
    the tests after it start from the environment as it was, whichever of them imported it."""
    monkeypatch.setenv("KATUNA_CHANGED_BY_A_COMMAND", "before")
    monkeypatch.setenv("KATUNA_REMOVED_BY_A_COMMAND", "kept")
    before = dict(os.environ)
    with kept():
        os.environ["KMP_INIT_AT_FORK"] = "FALSE"
        os.environ["KATUNA_CHANGED_BY_A_COMMAND"] = "after"
        del os.environ["KATUNA_REMOVED_BY_A_COMMAND"]
    assert dict(os.environ) == before
