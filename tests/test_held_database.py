"""katuna while another process holds the database's write lock (a backup, an ``sqlite3`` shell,
another worker's long transaction): a wait for the lock heeds a stop, a Ctrl-C of ``katuna run``
is taken at once, and ``GET /metrics`` answers, however long SQLite's busy wait would be."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import study_definition
from http_helpers import KATUNA
from waiting import START_WAIT, eventually
from write_lock import WriteLock, blocked

from functions.adapters.sqlite_store import SqliteStore
from functions.adapters.web import create_app
from functions.core.errors import Stopping, TemporaryError
from functions.runtime import Runtime
from functions.settings import Settings


def _waiting_write(store: SqliteStore) -> tuple[threading.Thread, list[BaseException]]:
    """A thread taking the store's write lock, held by the write lock another connection holds."""
    def write() -> None:
        with store.transaction():
            pass

    return blocked(write, "the transaction waits on the write lock")


def test_a_transaction_waiting_on_a_held_database_gives_up_as_its_process_stops(tmp_path: Path):
    stop = threading.Event()
    store = SqliteStore(tmp_path / "katuna.db", busy_timeout=60.0, stopped=stop.is_set)
    lock = WriteLock(tmp_path / "katuna.db")
    lock.hold()
    try:
        writer, raised = _waiting_write(store)
        stop.set()
        writer.join(10)
        assert not writer.is_alive(), "the wait saw the stop"
        assert len(raised) == 1 and isinstance(raised[0], Stopping), raised
    finally:
        lock.close()
        store.close()


def test_a_transaction_without_a_stop_waits_out_the_busy_timeout_then_says_the_database_is_busy(tmp_path: Path):
    store = SqliteStore(tmp_path / "katuna.db", busy_timeout=1.0)
    lock = WriteLock(tmp_path / "katuna.db")
    lock.hold()
    try:
        writer, raised = _waiting_write(store)
        writer.join(20)
        assert len(raised) == 1 and type(raised[0]) is TemporaryError, raised
        assert str(raised[0]).startswith(f"the database {tmp_path / 'katuna.db'} is busy: "), "which of several"
        lock.release()
        with store.transaction():
            store.db.execute("PRAGMA user_version").fetchone()
        assert store.db.execute("PRAGMA busy_timeout").fetchone() == (1000,), "the busy timeout is set back"
    finally:
        lock.close()
        store.close()


def test_a_request_the_held_database_keeps_waiting_is_answered_503_naming_the_database(tmp_path: Path):
    """The service's database is named in the API's answer, as it is in its logs and in the
    CLI's message, and as the answers for a database it cannot use or a full disk name it: the
    API serves only its own user or a token's holder, to whom the path is no secret."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", busy_timeout=0.2))
    client = create_app(runtime).test_client()
    lock = WriteLock(tmp_path / "katuna.db")
    lock.hold()
    try:
        answer = client.post("/studies", json=study_definition())
    finally:
        lock.close()
        runtime.close()
    assert answer.status_code == 503 and answer.get_json()["error"] == "temporary_error", answer.get_json()
    assert answer.get_json()["message"].startswith(f"the database {tmp_path / 'katuna.db'} is busy: ")


@pytest.mark.slow
def test_a_run_interrupted_while_another_process_holds_the_database_stops_at_once(tmp_path: Path):
    """Ctrl-C reaches ``katuna run`` while its handling of a trial's progress waits for the
    write lock (30 s by default): the run stops its trials and says so without waiting that
    out, and without waiting it again to give up its claim of the study."""
    definition = study_definition(earlyStopping={"algorithm": "median"})
    definition["trialTemplate"]["command"] = [
        sys.executable, "-c", "import time\nwhile True: print('loss=1.0', flush=True); time.sleep(0.1)",
        "${trialParameters.x}"]
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(definition))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KATUNA_")}
    run = subprocess.Popen([KATUNA, "run", "study.yaml"], cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env=environ, start_new_session=True)
    lock = None
    try:
        eventually(lambda: len(list((tmp_path / "katuna-logs").rglob("*.log"))) == 2, "two trials run", timeout=START_WAIT)
        lock = WriteLock(tmp_path / "katuna.db")
        lock.hold()
        time.sleep(1)
        run.send_signal(signal.SIGINT)
        said, _ = run.communicate(timeout=20)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        if lock is not None:
            lock.close()
    assert run.returncode == 130 and "Interrupted (SIGINT): running trials were stopped" in said, said
    assert "Traceback" not in said, said
    ends = [json.loads(line) for path in (tmp_path / "katuna-logs").rglob("ends.jsonl")
            for line in path.read_text().split("\n") if line]
    assert len(ends) == 2 and all(end["interrupted"] for end in ends), ends
