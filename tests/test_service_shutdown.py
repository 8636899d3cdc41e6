"""A stopped service leaves nothing behind: as the kubelet's SIGTERM (Knative scaling a pod
down) or an operator's reaches it, each worker closes its runtime, whether gunicorn runs as
``katuna serve`` or as the image's CMD, which sets no gunicorn hooks. Its local trials are
killed, to be relaunched once nothing owns them, and every connection to the database is closed:
the last folds the write-ahead log in, so that the file alone (a copy, a backup of the volume)
holds every write."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import study_definition
from http_helpers import Service
from knative_emulator.service import KatunaProcess
from waiting import eventually

pytestmark = pytest.mark.slow


def _hanging_trial(url_request) -> None:
    """POST a study whose one trial runs until killed, and wait for it to run."""
    definition = study_definition("held", mode="hang", maxTrials=1, parallelism=1)
    status, body = url_request("POST", "/studies", yaml.safe_dump(definition), {"Content-Type": "application/yaml"})
    assert status == 201, body
    eventually(lambda: _running(url_request), "the trial to run")


def _ended(process: subprocess.Popen, log) -> int:
    """The exit code of the service's process, which SIGTERM ends within 30 s; its log, saying
    where it waits, where it does not."""
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running 30 s after SIGTERM; its log:\n{log()}")


def _running(url_request) -> bool:
    status, body = url_request("GET", "/studies/held/trials", None, {})
    return status == 200 and [t["state"] for t in yaml.safe_load(body)] == ["RUNNING"]


def _trial_pids(workdir: Path) -> list[int]:
    """The trial processes running ``objective.py --mode hang`` from ``workdir``'s service."""
    found = subprocess.run(["pgrep", "-f", "--", "--mode hang"], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found if Path(f"/proc/{pid}/cwd").exists()
            and str(workdir) in os.readlink(f"/proc/{pid}/cwd")]


def _left_behind(workdir: Path) -> dict[str, object]:
    return {"wal": sorted(p.name for p in workdir.glob("katuna.db-*")), "trials": _trial_pids(workdir)}


def test_the_images_command_closes_its_runtime_on_sigterm(tmp_path: Path):
    """The image's CMD runs gunicorn on katuna's worker with no hooks of katuna's: the worker
    itself closes its runtime as it ends."""
    container = KatunaProcess(tmp_path)
    try:
        _hanging_trial(lambda method, path, body, headers: _request(container.url, method, path, body, headers))
        assert _left_behind(tmp_path)["wal"], "the database is in write-ahead mode while the service runs"
        assert len(_left_behind(tmp_path)["trials"]) == 1
        os.killpg(container.process.pid, signal.SIGTERM)
        assert _ended(container.process, container.log) == 0, container.log()
    finally:
        container.kill()
    assert _left_behind(tmp_path) == {"wal": [], "trials": []}, container.log()


def test_a_client_connection_that_sent_nothing_holds_no_stopping_worker(tmp_path: Path):
    """A connection that has sent nothing (an HTTP client's spare one, dialled for a request that
    went on another) is closed as the worker stops, as a kept-alive one is: the worker closes its
    runtime, where it waited for the connection's ``KATUNA_CLIENT_TIMEOUT`` and, that being past
    gunicorn's 30 s grace, was killed with its runtime never closed."""
    container = KatunaProcess(tmp_path, KATUNA_CLIENT_TIMEOUT="120")
    try:
        with socket.create_connection(("127.0.0.1", container.port), timeout=10):
            # accepted before the requests that follow it are answered
            _hanging_trial(lambda method, path, body, headers: _request(container.url, method, path, body, headers))
            os.killpg(container.process.pid, signal.SIGTERM)
            assert _ended(container.process, container.log) == 0, container.log()
    finally:
        container.kill()
    assert _left_behind(tmp_path) == {"wal": [], "trials": []}, container.log()


def test_katuna_serve_closes_every_connection_on_sigterm(tmp_path: Path):
    """The event thread's own connection too, which ends before the workers' are closed."""
    service = Service(tmp_path, workers=1)
    try:
        _hanging_trial(lambda method, path, body, headers: service.request(method, path, body, headers)[::2])
        assert len(_left_behind(tmp_path)["trials"]) == 1
        service.process.send_signal(signal.SIGTERM)
        assert _ended(service.process, (tmp_path / "serve.log").read_text) == 0
    finally:
        service.close()
    assert _left_behind(tmp_path) == {"wal": [], "trials": []}, (tmp_path / "serve.log").read_text()


def _request(base: str, method: str, path: str, body: str | None, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(base + path, data=body.encode() if body else None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
