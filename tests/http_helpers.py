"""A real ``katuna serve`` (gunicorn) on a loopback port, and a loopback sink standing in for a broker."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import yaml
from standin_server import StandInServer
from waiting import START_WAIT
from warm_katuna import WarmKatuna, warm
from warm_katuna import run as warm_run

KATUNA = str(Path(sys.executable).with_name("katuna"))
NOBODY = 65534
"""The uid of Linux's ``nobody``, as which root's tests connect as another account of the machine."""


def strict_loads(text: str | bytes) -> object:
    """JSON as a strict parser reads it (JavaScript's, Go's, jq): a bare ``NaN`` or ``Infinity``
    is an error, not a number."""
    def refuse(name: str) -> object:
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def _ephemeral_ports() -> range:
    """The ports the kernel hands to ``bind(0)`` and to outgoing connections."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_port() -> int:
    """A loopback port nothing listens on, chosen outside the kernel's ephemeral range: a port
    ``bind(0)`` returned and was then released could be handed, before the service binds it, to
    any other test's outgoing connection or ``bind(0)``."""
    ephemeral = _ephemeral_ports()
    candidates = [port for port in range(10000, 65536) if port not in ephemeral]
    for port in random.SystemRandom().sample(candidates, 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port outside the ephemeral range")


def answer_as(uid: int, port: int, sent: bytes) -> bytes:
    """What the service sends, until it closes, on a connection from a forked child running as
    ``uid`` that sends ``sent`` (nothing at all when empty)."""
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(reading)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                if sent:
                    sock.sendall(sent)
                os.write(writing, b"".join(iter(lambda: sock.recv(65536), b"")))
        finally:
            os._exit(0)
    os.close(writing)
    with os.fdopen(reading, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(child, 0)
    return answer


def raw_request(port: int, head: str, timeout: float = 30) -> tuple[int, dict]:
    """The status and JSON answer (empty where the body is none) of a request sent to the
    loopback ``port`` byte for byte as ``head`` (its request line and headers), as no HTTP
    client library sends it: no ``Host``, a target in absolute form, HTTP/1.0."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(head.encode() + b"\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(body) if body.startswith(b"{") else {}


def answers(port: int, path: str = "/readyz") -> bool:
    """Whether a service on loopback ``port`` answers ``path`` with 200 (not yet, while it starts)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status == 200
    except OSError:
        return False


def serve_command(workdir: Path, port: int, workers: int = 1, host: str | None = None) -> list[str]:
    """The ``katuna serve`` command line for a database in ``workdir``."""
    command = [KATUNA, "serve", "--db", str(workdir / "katuna.db"), "--port", str(port), "--workers", str(workers)]
    return command + (["--host", host] if host else [])


def refused_start(workdir: Path, host: str | None = None, **env: str) -> subprocess.CompletedProcess:
    """A ``katuna serve`` expected not to start (forked from :func:`warm_runner`): its exit
    status and output (it is killed if it does start)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KATUNA_")}
    try:
        return warm_run(warm_runner(), serve_command(workdir, free_port(), 1, host), workdir, {**environ, **env}, 20)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError("katuna serve started where it should have refused to") from exc


def warm_runner(env: Mapping[str, str] | None = None) -> WarmKatuna:
    """The test run's warm Python for ``katuna`` processes, started at the first one: for a
    command whose environment ``env`` has it reach a cluster (``KATUNA_K8S_API``, or trials
    run as Jobs), one that has imported the Kubernetes client too, as such a command does."""
    reaches = env is not None and (bool(env.get("KATUNA_K8S_API")) or env.get("KATUNA_EXECUTOR") == "kubernetes")
    return warm("kubernetes" if reaches else "katuna")


def run_katuna(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120,
               stdout: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``katuna ARGS...`` run in a process of its own (forked from :func:`warm_runner`), as
    ``subprocess.run(..., capture_output=True, text=True)`` runs it, with ``env`` (by default
    this process's environment); its standard output to the file ``stdout`` if given."""
    environ = dict(os.environ if env is None else env)
    return warm_run(warm_runner(environ), [KATUNA, *args], cwd, environ, timeout, stdout)


class Service:
    """``katuna serve`` in a subprocess of its own (forked from :func:`warm_runner`, so that it
    does not import its web app again); requests as (status, headers, body)."""

    def __init__(self, workdir: Path, workers: int = 2, port: int | None = None, host: str | None = None,
                 **env: str) -> None:
        self.port = port or free_port()
        address = host or "127.0.0.1"
        self.base = f"http://{f'[{address}]' if ':' in address and not address.startswith('[') else address}:{self.port}"
        self.workdir = workdir
        (workdir / "serve.log").write_text("")
        environ = {**os.environ, **env}
        self.process = warm_runner(environ).start(serve_command(workdir, self.port, workers, host), workdir,
                                                  environ, workdir / "serve.log")
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if self.request("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        self.close()
        raise RuntimeError("katuna serve did not become ready:\n" + (workdir / "serve.log").read_text())

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        data = body.encode() if isinstance(body, str) else body
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def json(self, method: str, path: str, **kwargs) -> tuple[int, object]:
        status, _, body = self.request(method, path, **kwargs)
        return status, strict_loads(body) if body else None

    def submit(self, definition: dict) -> None:
        """POST ``definition`` as YAML; it must be stored (201)."""
        status, _, body = self.request("POST", "/studies", yaml.safe_dump(definition),
                                       {"Content-Type": "application/yaml"})
        assert status == 201, body

    def wait_for(self, name: str, statuses=("completed", "failed", "stopped"), timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, study = self.json("GET", f"/studies/{name}")
            if status == 200 and study["status"] in statuses:
                return study
            time.sleep(0.2)
        raise AssertionError(f"study {name} did not end: {study}")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def run_on_cluster(kube_url: str, workdir: Path, namespace: str, definition: dict,
                   timeout: float = 60) -> tuple[dict, list[dict]]:
    """POST ``definition`` (YAML; katuna's format or a Katib Experiment) to a one-worker ``katuna serve`` with the Kubernetes executor,
    the running logs read every 0.3 s; the study once it ended, and its trials by number."""
    service = Service(workdir, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube_url,
                      KATUNA_K8S_NAMESPACE=namespace, KATUNA_K8S_PROGRESS_SECONDS="0.3")
    name = definition["metadata"]["name"] if "metadata" in definition else definition["name"]
    try:
        status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                          {"Content-Type": "application/yaml"})
        assert status == 201, body
        study = service.wait_for(name, timeout=timeout)
        trials = settled_trials(service, name, timeout)
    finally:
        service.close()
    return study, trials


def settled_trials(service: Service, name: str, timeout: float) -> list[dict]:
    """The ended study's trials by number, once its end stopped those still running (the
    ``study.completed`` handling, after the study shows its end) and the workloads of those
    it ended were stopped (:func:`stops_done`), or as they are at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        trials = sorted(service.json("GET", f"/studies/{name}/trials")[1], key=lambda t: t["number"])
        ended = not [t for t in trials if t["state"] in ("RUNNING", "WAITING")]
        if time.monotonic() > deadline or ended and stops_done(service.workdir / "katuna.db", name):
            return trials
        time.sleep(0.2)


def stops_done(db: Path, name: str) -> bool:
    """Whether no trial of the study is still marked to have its workload stopped: a trial
    katuna ended (pruned, stopped with its study) shows its end as soon as the verdict is
    stored, and its Job is deleted, or suspended where ``retain`` keeps it, only after that
    (:mod:`functions.handlers.stopping`); a service closed in between leaves that to the next
    one's tick."""
    from functions.adapters.sqlite_store import SqliteStore

    store = SqliteStore(db)
    try:
        return not store.stopping_trials(1, name)
    finally:
        store.close()


BROKER_PATH = "/katuna/katuna"
"""Where a Broker's ingress takes its events (``/<namespace>/<broker>``): katuna's Broker."""


class Sink:
    """A loopback HTTP server that records the CloudEvents posted to it (as a broker would receive
    them), answering each with ``status``; on ``port`` where given (a broker back at its address).
    ``answering`` runs as each post is recorded, before its answer. Like a real sink (a Broker's
    ingress takes events at ``/<namespace>/<broker>`` only), it takes them at its own ``path``
    only (a Broker's by default; with or without a trailing slash, as the ingress takes it), the
    one ``url`` names: a post elsewhere is answered 404 and kept in ``misdirected``."""

    def __init__(self, port: int = 0, status: int = 202, answering: Callable[[], None] = lambda: None,
                 path: str = BROKER_PATH) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.misdirected: list[str] = []
        self.arrived = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                taken = urllib.parse.urlsplit(self.path).path.removesuffix("/") == path.removesuffix("/")
                with sink.arrived:
                    if taken:
                        sink.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    else:
                        sink.misdirected.append(self.path)
                    sink.arrived.notify_all()
                if taken:
                    answering()
                self.send_response(status if taken else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                return

        self.server = StandInServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def wait(self, count: int, timeout: float = 30) -> list[tuple[dict[str, str], bytes]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout=timeout)
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
