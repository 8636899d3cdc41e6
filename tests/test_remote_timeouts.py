"""No call to the Kubernetes API or a cloud's can hang the service: against an API that accepts
connections and never answers (a real socket), each call gives up after ``KATUNA_REMOTE_TIMEOUT``,
as a temporary error, and a handler that made it inside the store's write transaction lets the
lock go and stores nothing."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import Service, Sink
from kubernetes import client
from urllib3.exceptions import ReadTimeoutError
from waiting import eventually

from functions.adapters import cloudevents_http
from functions.adapters.kubernetes_client import api_client
from functions.core.errors import TemporaryError
from functions.core.events import Event
from functions.core.timeouts import REMOTE_TIMEOUT
from functions.settings import Settings
from infra import eks, eks_clients, eks_requests, gke, gke_requests

pytestmark = pytest.mark.slow

TIMEOUT = 1.0
"""KATUNA_REMOTE_TIMEOUT in these tests."""


class SilentApi:
    """A loopback server that accepts every connection and never answers (a hung API server,
    or a half-open connection through a failover): what it accepted it holds until closed."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                self.accepted.append(self.socket.accept()[0])
            except OSError:
                return

    def wait_for_a_caller(self, timeout: float = 20) -> None:
        eventually(lambda: self.accepted, "a call to the API", timeout)

    def close(self) -> None:
        """Stop listening (the shutdown wakes the accepting thread, which a close alone leaves
        blocked, the socket listening while it is) and close what was accepted."""
        self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()
        self._accepting.join()
        for held in self.accepted:
            held.close()


@pytest.fixture
def silent() -> Iterator[SilentApi]:
    api = SilentApi()
    yield api
    api.close()


def post_event(service: Service, path: str, event: Event, answered: list[tuple[int, bytes]]) -> None:
    """Deliver ``event`` as a broker would; the answer's status and body are appended to ``answered``."""
    headers, body = cloudevents_http.to_http(event)
    request = urllib.request.Request(service.base + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    answered.append((status, body))


@pytest.mark.timeout(90)
def test_a_handler_facing_a_silent_api_answers_retry_later_and_lets_the_write_lock_go(tmp_path: Path,
                                                                                     silent: SilentApi):
    """``spawn`` creates the trial's Job inside its write transaction: with the API silent it
    answers 503 once the timeout is past, the trial is not marked running, and a writer that
    waited for the lock meanwhile gets it (the busy timeout is well above the remote one)."""
    sink = Sink()
    service = Service(tmp_path, workers=1, KATUNA_EVENTS="reply", K_SINK=sink.url, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=silent.url, KATUNA_K8S_NAMESPACE="trials", KATUNA_BUSY_TIMEOUT="8",
                      KATUNA_REMOTE_TIMEOUT=str(TIMEOUT))
    try:
        for name in ("stuck", "free"):
            definition = study_definition(name=name, parallelism=1, maxTrials=2)
            definition["trialTemplate"]["image"] = "python:3.12"
            assert service.request("POST", "/studies", json.dumps(definition),
                                   {"Content-Type": "application/json"})[0] == 201
        uids = {data["study"]: data["uid"] for data in (json.loads(body) for _, body in sink.wait(2))}
        suggested: list[tuple[int, bytes]] = []
        post_event(service, "/functions/suggest", Event("dev.katuna.study.created", {"study": "stuck", "uid": uids["stuck"]}),
                   suggested)
        assert suggested[0][0] in (200, 202)

        spawned: list[tuple[int, bytes]] = []
        spawn = threading.Thread(target=post_event, args=(service, "/functions/spawn", Event(
            "dev.katuna.trial.suggested", {"study": "stuck", "uid": uids["stuck"], "trial": 0, "attempt": 1}), spawned),
            daemon=True)
        spawn.start()
        silent.wait_for_a_caller()
        writer: list[tuple[int, bytes]] = []
        post_event(service, "/functions/suggest", Event("dev.katuna.study.created", {"study": "free", "uid": uids["free"]}),
                   writer)
        spawn.join(timeout=30)

        assert not spawn.is_alive(), "spawn still waits on the silent API"
        status, body = spawned[0]
        assert status == 503, spawned
        assert b"did not answer within KATUNA_REMOTE_TIMEOUT" in body
        assert writer[0][0] in (200, 202), f"the writer waiting for the lock was refused: {writer}"
        states = {t["number"]: t["state"] for t in service.json("GET", "/studies/stuck/trials")[1]}
        assert states == {0: "WAITING"}, "nothing of the failed launch is stored"
    finally:
        service.close()
        sink.close()


@pytest.mark.timeout(60)
def test_a_kubernetes_call_to_a_silent_api_times_out(silent: SilentApi):
    with pytest.raises(ReadTimeoutError, match=f"read timeout={TIMEOUT}"):
        client.CoreV1Api(api_client(silent.url, TIMEOUT)).read_namespaced_pod("p", "trials")
    assert len(silent.accepted) == 1, "one try, not urllib3's retries of a GET"


class DrippingLog:
    """A pod-log endpoint that answers at once and sends its log one line at a time, each
    ``every`` seconds after the last: slower in all than the timeout, never slower per read."""

    def __init__(self, lines: int, every: float) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.lines, self.every = lines, every
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        connection, _ = self.socket.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
            for number in range(self.lines):
                time.sleep(self.every)
                line = f"epoch={number}\n".encode()
                connection.sendall(b"%x\r\n%s\r\n" % (len(line), line))
            connection.sendall(b"0\r\n\r\n")

    def close(self) -> None:
        self.socket.close()


@pytest.mark.timeout(60)
def test_a_streamed_log_is_bounded_per_read_not_in_all():
    """The timeout is per read: a log whose lines keep coming is read to its end, however long
    (five lines half a timeout apart take two and a half timeouts in all)."""
    log = DrippingLog(lines=5, every=TIMEOUT / 2)
    try:
        response = client.CoreV1Api(api_client(log.url, TIMEOUT)).read_namespaced_pod_log(
            "p", "trials", _preload_content=False)
        text = b"".join(response.stream(1024)).decode()
        assert text.splitlines() == [f"epoch={n}" for n in range(5)]
    finally:
        log.close()


@pytest.mark.timeout(60)
def test_a_gke_call_to_a_silent_api_is_a_temporary_error_within_the_timeout(silent: SilentApi):
    pools = gke.GkeNodePools(gke_requests.GkeCluster("proj-7", "europe-west4", "tuning"), gke.client(silent.url), TIMEOUT)
    with pytest.raises(TemporaryError, match=f"GKE is unreachable: .*read timeout={TIMEOUT}"):
        pools.describe("trials")
    assert len(silent.accepted) == 1, "one try: the call's timeout bounds its own retries"


@pytest.mark.timeout(60)
def test_an_eks_call_to_a_silent_api_is_a_temporary_error_after_two_tries(silent: SilentApi,
                                                                         monkeypatch: pytest.MonkeyPatch):
    for variable, value in {"AWS_ENDPOINT_URL": silent.url, "AWS_ACCESS_KEY_ID": "testing",
                            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}.items():
        monkeypatch.setenv(variable, value)
    pools = eks.EksNodePools(eks_requests.EksCluster("tuning"), *eks_clients.clients("eu-west-1", TIMEOUT))
    with pytest.raises(TemporaryError, match="EKS is unreachable"):
        pools.describe("trials")
    assert len(silent.accepted) == eks_clients.ATTEMPTS


def test_the_remote_timeout_is_a_positive_number_of_seconds():
    assert Settings.from_env({}).remote_timeout == REMOTE_TIMEOUT < Settings.from_env({}).busy_timeout
    assert Settings.from_env({"KATUNA_REMOTE_TIMEOUT": "2.5"}).remote_timeout == 2.5
    for given, expected in (("0", "a positive number of seconds"), ("-1", "a positive number of seconds"),
                            ("inf", "a number, got 'inf'"), ("nan", "a number, got 'nan'")):
        with pytest.raises(ValueError, match=f"KATUNA_REMOTE_TIMEOUT: expected {expected}"):
            Settings.from_env({"KATUNA_REMOTE_TIMEOUT": given})
