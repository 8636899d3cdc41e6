"""A database on a full disk or a read-only file system, for real: a tiny tmpfs mounted in a
private mount namespace (``unshare -m``), so the host's file systems are never touched.

Skipped, saying why, where mount namespaces are not available (an unprivileged user, no unshare).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import KATUNA, free_port
from waiting import START_WAIT

from functions.adapters.sqlite_store import SqliteStore

pytestmark = pytest.mark.slow

CREATE = "import sys; from functions.adapters.sqlite_store import SqliteStore; SqliteStore(sys.argv[1]).close()"
"""A Python program that creates the database its argument names (only `katuna run` and `serve` do)."""


def _private_mount(folder: Path, options: str, command: list[str]) -> list[str]:
    """``command`` run with a tmpfs (mount ``options``) on ``folder``, seen by it alone."""
    script = f'mount -t tmpfs -o {options} tmpfs "$0" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, str(folder), *command]


@pytest.fixture
def mounts(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    done = subprocess.run(_private_mount(probe, "size=64k", ["true"]), capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a private tmpfs here: {done.stderr.strip()}")


def _fill(folder: Path) -> Path:
    """Writes a file in ``folder`` until its file system has no space left. Unbuffered: a
    buffered file would keep the bytes the full disk refused and fail again as it closes."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _request(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, dict[str, str], dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


def _serve(command: list[str], port: int, workdir: Path) -> subprocess.Popen:
    log = (workdir / "serve.log").open("w")
    process = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if _request(port, "GET", "/readyz")[0] == 200:
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("katuna serve did not become ready:\n" + (workdir / "serve.log").read_text())


def test_a_full_disk_answers_503_saying_so_and_writes_resume_once_space_is_freed(tmp_path: Path, mounts: None):
    folder, port = tmp_path / "data", free_port()
    folder.mkdir()
    serve = [KATUNA, "serve", "--db", str(folder / "katuna.db"), "--port", str(port), "--workers", "1"]
    process = _serve(_private_mount(folder, "size=4m", serve), port, tmp_path)
    try:
        seen = Path(f"/proc/{process.pid}/root") / str(folder).lstrip("/")
        filler = _fill(seen)
        definition = study_definition(name="full", maxTrials=1, parallelism=1)
        status, headers, body = _request(port, "POST", "/studies", definition)
        assert status == 503, body
        assert "Retry-After" in headers
        assert "disk holding the database" in body["message"] and "is full" in body["message"]
        assert _request(port, "GET", "/studies/full")[0] == 404, "nothing was stored"

        filler.unlink()
        status, _, body = _request(port, "POST", "/studies", definition)
        assert status == 201, body
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_katuna_run_on_a_full_disk_exits_2_saying_the_disk_is_full(tmp_path: Path, mounts: None):
    folder = tmp_path / "data"
    folder.mkdir()
    (tmp_path / "study.yaml").write_text(json.dumps(study_definition(maxTrials=1, parallelism=1)))
    db = str(folder / "katuna.db")
    script = (f'"{sys.executable}" -c "{CREATE}" "{db}" && '
              f'head -c 64M /dev/zero > "{folder}/filler" 2>/dev/null; '
              f'exec "{KATUNA}" run study.yaml --db "{db}"')
    done = subprocess.run(_private_mount(folder, "size=2m", ["sh", "-c", script]), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"the disk holding the database {db} is full" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", [["run", "study.yaml"], ["serve", "--port", str(free_port())]])
def test_a_read_only_database_folder_gives_a_clear_message_and_exit_2(tmp_path: Path, mounts: None, command):
    folder = tmp_path / "data"
    folder.mkdir()
    (tmp_path / "study.yaml").write_text(json.dumps(study_definition(maxTrials=1, parallelism=1)))
    done = subprocess.run(_private_mount(folder, "size=1m,ro", [KATUNA, *command, "--db", str(folder / "katuna.db")]),
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"cannot create the database {folder / 'katuna.db'}: Read-only file system" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_read_only_database_file_gives_a_clear_message_and_exit_2(tmp_path: Path, mounts: None):
    folder = tmp_path / "data"
    folder.mkdir()
    db = folder / "katuna.db"
    SqliteStore(db).close()
    script = f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" && exec "$@"'
    done = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", KATUNA, "studies", "--db", str(db)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"cannot use the database {db}" in done.stderr and "Traceback" not in done.stderr
    assert os.stat(db).st_size > 0


def test_katuna_run_waits_out_a_disk_that_fills_mid_study_and_completes_every_trial(tmp_path: Path, mounts: None):
    """The disk fills while trials run and stays full past every back-off of a handler's
    retries: their ends wait, and once space is freed the study completes with each trial
    (those that ran meanwhile may fail: their own output could not be written)."""
    folder = tmp_path / "data"
    folder.mkdir()
    definition = study_definition(name="filled", maxTrials=6, parallelism=2)
    definition["trialTemplate"]["command"] += ["--sleep", "1"]
    (tmp_path / "study.yaml").write_text(json.dumps(definition))
    command = [KATUNA, "run", "study.yaml", "--db", str(folder / "katuna.db")]
    process = subprocess.Popen(_private_mount(folder, "size=8m", command), cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = Path(f"/proc/{process.pid}/root") / str(folder).lstrip("/")
        deadline = time.monotonic() + 30
        while not list((seen / "katuna-logs").rglob("*.log")) and time.monotonic() < deadline:
            time.sleep(0.05)
        filler = _fill(seen)
        time.sleep(12)
        assert process.poll() is None, "katuna run went on while nothing could be stored"
        filler.unlink()
        output, _ = process.communicate(timeout=90)
    finally:
        process.kill()
    assert process.returncode == 0, output
    assert "Study filled: completed (max trials reached (6))" in output
    assert re.search(r"Trials: 6 \((\d) complete, (\d) failed, 0 pruned\)", output), output
