"""The service's gunicorn master holds its whole environment (the API token, cloud credentials):
a local trial, which runs as the service's user, cannot read it, however katuna is run.

A process may read ``/proc/<pid>/environ`` of its own user's dumpable processes; root reads
every process's. As root (as in CI) the service is started as ``nobody`` with ``setpriv``, as
``tests/test_deploy_volume.py`` starts it, keeping only the capability to read and search
files (the test's Python may live under root's private home): a trial then runs as ``nobody``
too, and is refused only what the service hid.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_helpers import NOBODY, free_port
from knative_emulator.service import image_command
from waiting import START_WAIT

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {"KATUNA_API_TOKEN": "tok-the-admin-token-0123456789", "AWS_SECRET_ACCESS_KEY": "aws-secret-key-xyz"}
CONFIG = ["-c", "python:functions.gunicorn_config"]
"""The options that load katuna's gunicorn settings."""

READ_ANCESTORS = """
import os
worker = os.getppid()
master = next(int(line.split()[1]) for line in open(f"/proc/{worker}/status") if line.startswith("PPid:"))
for role, pid in (("worker", worker), ("master", master)):
    try:
        print(role, open(f"/proc/{pid}/environ", "rb").read())
    except OSError as exc:
        print(role, "refused", exc.errno)
print("acc=1")
"""


@pytest.fixture
def home() -> Iterator[Path]:
    """A directory of the user the service runs as, for its database and trial logs."""
    made = Path(tempfile.mkdtemp(prefix="katuna-master-"))
    made.chmod(0o755)
    if os.geteuid() == 0:
        os.chown(made, NOBODY, NOBODY)
    yield made
    shutil.rmtree(made)


def start(command: list[str], home: Path) -> subprocess.Popen:
    """``command`` as an ordinary user (``nobody`` when this is root), with the service's secrets."""
    switch = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
              "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--"] if os.geteuid() == 0 else []
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KATUNA_")}, **SECRETS,
           "KATUNA_DB": str(home / "katuna.db"), "KATUNA_WORKDIR": str(ROOT), "HOME": str(home)}
    return subprocess.Popen(switch + command, cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def call(port: int, path: str, body: dict | None = None) -> bytes:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {SECRETS['KATUNA_API_TOKEN']}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{path}: {exc.code} {exc.read()!r}") from None


def until(check, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if check():
                return
        except (OSError, AssertionError):
            pass
        time.sleep(0.2)
    raise AssertionError("the service did not get there in time")


def stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        os.killpg(process.pid, 15)
    return process.communicate(timeout=30)[0]


@pytest.mark.slow
def test_a_local_trial_of_the_images_service_cannot_read_the_gunicorn_master(home: Path):
    port = free_port()
    process = start(image_command(port), home)
    try:
        until(lambda: call(port, "/readyz"), START_WAIT)
        call(port, "/studies", {
            "name": "peek", "objective": {"metric": "acc", "direction": "maximize"},
            "parameters": [{"name": "x", "type": "float", "min": 0, "max": 1}], "maxTrials": 1,
            "trialTemplate": {"command": [sys.executable, "-c", READ_ANCESTORS], "workingDir": str(home),
                              "env": {"X": "${trialParameters.x}"}}})
        until(lambda: json.loads(call(port, "/studies/peek"))["status"] != "running")
        log = call(port, "/studies/peek/trials/0/logs").decode()
    finally:
        output = stop(process)
    assert "acc=1" in log, log + output
    assert not [value for value in SECRETS.values() if value in log], log
    assert "worker refused 13" in log and "master refused 13" in log, log


@pytest.mark.slow
def test_gunicorn_started_by_hand_without_katunas_settings_refuses_to_run_local_trials(home: Path):
    command = image_command(free_port())
    if CONFIG[0] in command:
        at = command.index(CONFIG[0])
        del command[at:at + 2]
    process = start(command, home)
    try:
        output = process.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        output = stop(process)
        raise AssertionError("gunicorn started a worker whose master its trials could read:\n" + output) from None
    assert process.returncode == 4, output
    assert "katuna cannot start: gunicorn's master process" in output
    assert "-c python:functions.gunicorn_config" in output
    assert not (home / "katuna.db").exists(), "refused before the worker opened the database"
