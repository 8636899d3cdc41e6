"""The image's gunicorn run with more than one worker and no ``PROMETHEUS_MULTIPROC_DIR`` says
at its start that ``/metrics`` would count each worker apart (docs/api.md, Metrics): each scrape
is answered by one worker, whose counters alone it would show."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from http_helpers import free_port
from knative_emulator.service import image_command
from waiting import START_WAIT

from functions.gunicorn_config import metrics_problem

WARNING = "2 workers without PROMETHEUS_MULTIPROC_DIR"


def _started_log(tmp_path: Path, **env: str) -> str:
    """What the image's gunicorn, run with 2 workers, wrote until it was ready."""
    port = free_port()
    command = image_command(port)
    command[command.index("--workers") + 1] = "2"
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith("KATUNA_") and k != "PROMETHEUS_MULTIPROC_DIR"},
               "KATUNA_DB": str(tmp_path / "katuna.db"), **env}
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=tmp_path, env=environ, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5):
                    return log.read_text()
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise AssertionError("gunicorn did not become ready:\n" + log.read_text())
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.mark.slow
def test_two_workers_without_a_metrics_directory_are_warned_of_at_the_start(tmp_path: Path):
    assert WARNING in _started_log(tmp_path)


def test_one_worker_or_a_metrics_directory_needs_no_warning():
    assert metrics_problem(1, {}) is None
    assert metrics_problem(2, {"PROMETHEUS_MULTIPROC_DIR": "/run/katuna-metrics"}) is None
    assert WARNING in (metrics_problem(2, {"PROMETHEUS_MULTIPROC_DIR": ""}) or "")
