"""``katuna serve`` in a terminal: Ctrl-C and a hang-up reach the arbiter and every worker at once
(the terminal signals its whole foreground process group), and each stops the service as a
stop should: every running trial ended and recorded as interrupted beside its log, so the next
start runs it again without counting a lost attempt, and no worker killed outright. The trials
ignore SIGTERM, so each worker's shutdown lasts the kill grace: the arbiter's own SIGQUIT, sent on
the terminal's SIGINT, lands while the workers close their runtimes, as it may on any machine."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import answers, free_port, serve_command
from waiting import START_WAIT, eventually


@pytest.mark.slow
@pytest.mark.parametrize(("sent", "late_quit", "status"), [
    (signal.SIGINT, False, 0), (signal.SIGINT, True, 0), (signal.SIGHUP, False, 128 + signal.SIGHUP)],
    ids=["Ctrl-C", "Ctrl-C with the arbiter's quit late", "hang-up"])
def test_a_terminals_signal_to_the_whole_service_stops_it_recording_its_trials_interrupted(
        tmp_path: Path, sent: signal.Signals, late_quit: bool, status: int):
    """The arbiter's SIGQUIT may reach a worker after the worker's own SIGINT made it close its
    runtime (the arbiter is slow on a busy machine): ``late_quit`` sends it then."""
    port = free_port()
    with (tmp_path / "serve.log").open("w") as log:
        service = subprocess.Popen(serve_command(tmp_path, port, workers=2), cwd=tmp_path, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            eventually(lambda: answers(port), "the service answers", timeout=START_WAIT)
            request = urllib.request.Request(f"http://127.0.0.1:{port}/studies", method="POST",
                                             data=json.dumps(_stubborn_study()).encode(),
                                             headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=30).close()
            eventually(lambda: len(_running(port)) == 2, "two trials run")
            eventually(lambda: _serving(service.pid), "both workers serving (a signal to a worker still loading "
                                                       "its application is another case)")
            running = _running(port)
            os.killpg(service.pid, sent)
            if late_quit:
                time.sleep(0.5)
                for worker in _workers(service.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker, signal.SIGQUIT)
            assert service.wait(timeout=60) == status
        finally:
            if service.poll() is None:
                os.killpg(service.pid, signal.SIGKILL)
                service.wait()
    said = (tmp_path / "serve.log").read_text()
    assert "SIGKILL" not in said and "Traceback" not in said and said.count("Booting worker") == 2, said
    ends = [json.loads(line) for path in sorted((tmp_path / "katuna-logs").rglob("ends.jsonl"))
            for line in path.read_text().split("\n") if line]
    assert len(ends) == len(running) == 2 and all(end["interrupted"] for end in ends), ends


@pytest.mark.slow
def test_a_worker_whose_broker_waits_on_a_database_held_elsewhere_still_stops_whole(tmp_path: Path):
    """Another process (a backup, an ``sqlite3`` shell) holds the database's write lock as the
    service is stopped, while the trials' threads put the progress they report and each
    worker's broker thread looks at the queue: every wait for the lock gives up as the worker
    stops, so the broker thread stops with it (never given up on after its wait), and the
    trials are ended and recorded within the arbiter's grace."""
    port = free_port()
    with (tmp_path / "serve.log").open("w") as log:
        service = subprocess.Popen(serve_command(tmp_path, port, workers=2), cwd=tmp_path, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        holder = None
        try:
            eventually(lambda: answers(port), "the service answers", timeout=START_WAIT)
            request = urllib.request.Request(f"http://127.0.0.1:{port}/studies", method="POST",
                                             data=json.dumps(_stubborn_study(report=True)).encode(),
                                             headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=30).close()
            eventually(lambda: len(_running(port)) == 2, "two trials run")
            eventually(lambda: _serving(service.pid), "both workers serving")
            running = _running(port)
            holder = sqlite3.connect(tmp_path / "katuna.db", isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            time.sleep(3)
            os.killpg(service.pid, signal.SIGINT)
            assert service.wait(timeout=60) == 0
        finally:
            _let_go(service, holder)
    said = _stopped_whole(tmp_path, len(running))
    assert "the event broker thread is still busy" not in said, said


@pytest.mark.slow
def test_a_request_waiting_on_a_database_held_elsewhere_is_answered_as_the_service_stops(tmp_path: Path):
    """Another process holds the database's write lock: ``GET /metrics`` still answers while the
    trials' progress reports wait on it, and a submission waiting on it (30 s by default) as
    the service is stopped is answered ``503 stopping`` at once, the worker stopping whole."""
    port = free_port()
    with (tmp_path / "serve.log").open("w") as log:
        service = subprocess.Popen(serve_command(tmp_path, port), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        holder = None
        answered: list[tuple[int, dict]] = []
        try:
            eventually(lambda: answers(port), "the service answers", timeout=START_WAIT)
            urllib.request.urlopen(_submission(port, _stubborn_study(report=True)), timeout=30).close()
            eventually(lambda: len(_running(port)) == 2, "two trials run")
            holder = sqlite3.connect(tmp_path / "katuna.db", isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            time.sleep(1)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=20) as metrics:
                assert metrics.status == 200
            submit = threading.Thread(target=lambda: answered.append(_answer(_submission(port, study_definition("b")))))
            submit.start()
            submit.join(2)
            assert submit.is_alive(), "the submission waits on the write lock"
            os.killpg(service.pid, signal.SIGINT)
            submit.join(20)
            assert answered and answered[0][0] == 503 and answered[0][1]["error"] == "stopping", answered
            assert service.wait(timeout=60) == 0
        finally:
            _let_go(service, holder)
    _stopped_whole(tmp_path, 2)


def _let_go(service: subprocess.Popen, holder: sqlite3.Connection | None) -> None:
    """Release the database's write lock, and kill a service that did not stop."""
    if holder is not None:
        holder.close()
    if service.poll() is None:
        os.killpg(service.pid, signal.SIGKILL)
        service.wait()


def _stopped_whole(tmp_path: Path, trials: int) -> str:
    """The service's log (returned), which shows no worker killed and no traceback, once each
    of its ``trials`` running trials was recorded as interrupted."""
    said = (tmp_path / "serve.log").read_text()
    assert "SIGKILL" not in said and "Traceback" not in said, said
    ends = [json.loads(line) for path in sorted((tmp_path / "katuna-logs").rglob("ends.jsonl"))
            for line in path.read_text().split("\n") if line]
    assert len(ends) == trials and all(end["interrupted"] for end in ends), ends
    return said


def _submission(port: int, definition: dict) -> urllib.request.Request:
    return urllib.request.Request(f"http://127.0.0.1:{port}/studies", method="POST",
                                  data=json.dumps(definition).encode(), headers={"Content-Type": "application/json"})


def _answer(request: urllib.request.Request) -> tuple[int, dict]:
    """The status and JSON body of the answer to ``request``, an error's too."""
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


_FORKED = """
import os, signal, subprocess, sys, time
from functions.adapters.web.worker_signals import hold_stop_signals_across_worker_fork
hold_stop_signals_across_worker_fork()
taken = []
pid = os.fork()
if pid == 0:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)
    pending = signal.SIGINT in signal.sigpending()
    signal.signal(signal.SIGINT, lambda *_: taken.append(True))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    os._exit(0 if pending and taken else 1)
blocked_here = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())
trial = subprocess.run(["grep", "SigBlk", "/proc/self/status"], capture_output=True, text=True,
                       preexec_fn=os.setpgrp).stdout.split()[1]
print(blocked_here, os.waitpid(pid, 0)[1], trial)
"""


def test_a_signal_that_reaches_a_worker_before_its_handlers_are_set_waits_for_them():
    """Between its fork and its ``init_signals``, a worker holds the arbiter's handlers, which
    would take a Ctrl-C for the arbiter's loop and lose it: held blocked across the fork, it
    reaches the worker's own handler once set. The arbiter's signals stay unblocked, and so do
    those of any later fork (a trial's, which would keep its blocked mask past its exec)."""
    done = subprocess.run([sys.executable, "-c", _FORKED], capture_output=True, text=True, timeout=30,
                          cwd=Path(__file__).parent.parent)
    assert done.stdout.split() == ["False", "0", "0000000000000000"], done.stderr


def _stubborn_study(report: bool = False) -> dict:
    """Trials that run until killed, ignoring SIGTERM; reporting their loss every tenth of a
    second if ``report``."""
    definition = study_definition(earlyStopping={"algorithm": "median"}) if report else study_definition()
    wait = "while True: print('loss=1.0', flush=True); time.sleep(0.1)" if report else "time.sleep(600)"
    definition["trialTemplate"]["command"] = [
        sys.executable, "-c", f"import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n{wait}",
        "${trialParameters.x}"]
    return definition


def _workers(arbiter: int) -> list[int]:
    """The arbiter's children still alive."""
    children = Path(f"/proc/{arbiter}/task/{arbiter}/children").read_text().split()
    return [int(pid) for pid in children]


def _serving(arbiter: int) -> bool:
    """Whether both workers run their runtime's threads: their applications loaded."""
    workers = _workers(arbiter)
    return len(workers) == 2 and all(len(list(Path(f"/proc/{pid}/task").iterdir())) > 1 for pid in workers)


def _running(port: int) -> list[dict]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/studies/demo/trials", timeout=30) as answer:
        return [trial for trial in json.load(answer) if trial["state"] == "RUNNING"]
