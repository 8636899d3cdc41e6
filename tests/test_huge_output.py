"""Huge outputs: a trial printing 100 MB, with single lines of 10 MB, is parsed in bounded
memory, its observations are capped (the metric still reduced over every report), and the
API serves its log capped, with a note of what it left out. A run, or a service, stopped while
it reads a huge log stops without reading on to its end."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import yaml
from http_helpers import KATUNA, Service
from proc_stat import state
from started_katuna import StartedKatuna
from waiting import START_WAIT, eventually

from functions.core.metric_summary import MAX_OBSERVATIONS
from functions.embedded import Embedded
from functions.settings import Settings

pytestmark = pytest.mark.slow

LOUD = Path(__file__).parent / "trials" / "loud.py"
LONG_LINES, LONG_MB, SHORT_MB = 7, 10, 30
"""7 lines of 10 MiB and 30 MiB of short lines: 100 MiB of output."""
REPORTS = MAX_OBSERVATIONS + 2_000
"""More reports than are kept (the first and last 5,000): the smallest, in the middle, is left out."""
BOUND_MB = 64
"""Peak memory the loud run may use beyond a quiet one; holding the output would take > 100."""


def _study(name: str, *args: str) -> dict:
    return {"name": name, "objective": {"metric": "loss", "direction": "minimize"},
            "parameters": [{"name": "best", "type": "categorical", "values": [0.125]}],
            "maxTrials": 1, "parallelism": 1,
            "trialTemplate": {"command": [sys.executable, str(LOUD), "--best", "${trialParameters.best}", *args]}}


def _peak_rss_mb(workdir: Path, definition: dict) -> float:
    """``katuna run`` of the study; its peak resident memory (with its trial's, which is small)."""
    path = workdir / f"{definition['name']}.yaml"
    path.write_text(yaml.safe_dump(definition))
    process = subprocess.Popen([KATUNA, "run", str(path), "--db", str(workdir / "katuna.db")], cwd=workdir,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0
    return usage.ru_maxrss / 1024


def test_a_trial_printing_100_mb_is_parsed_in_bounded_memory_and_served_capped(tmp_path: Path):
    quiet = _peak_rss_mb(tmp_path, _study("quiet", "--reports", "3"))
    loud = _peak_rss_mb(tmp_path, _study("loud", "--long-lines", str(LONG_LINES), "--long-mb", str(LONG_MB),
                                         "--short-mb", str(SHORT_MB), "--reports", str(REPORTS)))
    [log] = (tmp_path / "katuna-logs" / "loud").glob("*/0.1.log")
    assert log.stat().st_size > (LONG_LINES * LONG_MB + SHORT_MB) << 20
    assert loud - quiet < BOUND_MB, f"peak RSS {loud:.0f} MB against {quiet:.0f} MB for a quiet trial"

    service = Service(tmp_path, workers=1, KATUNA_MAX_LOG=str(1 << 20))
    try:
        status, trial = service.json("GET", "/studies/loud/trials/0")
        assert status == 200 and trial["state"] == "COMPLETE"
        assert trial["value"] == 0.125, "the smallest report counts, though it is not among the kept observations"
        assert trial["observationCount"] == MAX_OBSERVATIONS, "the kept ones, of which the view holds a page"
        assert [o["step"] for o in trial["observations"]][:2] == [0, 1]
        status, rest = service.json("GET", f"/studies/loud/trials/0/observations?limit={MAX_OBSERVATIONS}"
                                           f"&after={trial['observationsAfter']}")
        assert status == 200 and len(trial["observations"]) + len(rest) == MAX_OBSERVATIONS
        assert rest[-1]["step"] == REPORTS - 1
        status, _, body = service.request("GET", "/studies/loud/trials/0/logs")
    finally:
        service.close()
    assert status == 200
    text = body.decode()
    assert len(text) < (1 << 20) + 65 * 1024 * 2, "the served log is capped"
    assert "bytes left out here" in text
    assert text.startswith("x" * 1000) and text.endswith("done\n")


def test_a_run_stopped_while_it_reads_a_huge_log_exits_before_reading_on_and_its_resume_records_the_trial(tmp_path: Path):
    """SIGTERM (handled as Ctrl-C) reaches ``katuna run`` while it reads the 8 MiB log of the
    trial that just ended: the run exits on it without reading on to the log's end, so the
    attempt's end stays unrecorded (no partial read is taken for the whole), and the study is
    resumable: run again, it records the trial from its whole log, as its attempt had ended on
    its own."""
    path = tmp_path / "loud.yaml"
    path.write_text(yaml.safe_dump(_study("loud", "--short-mb", "32", "--first-attempt-only")))
    process = StartedKatuna("run", str(path), "--db", str(tmp_path / "katuna.db"), cwd=tmp_path)
    try:
        log, position = eventually(lambda: _held_in_the_end_read(process.pid, tmp_path), "the run reading the ended "
                                   "trial's log", timeout=START_WAIT, interval=0.005)
        assert position < log.stat().st_size // 2, "the signal comes before the read is half way"
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGCONT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 128 + signal.SIGTERM
    assert "Interrupted (SIGTERM): running trials were stopped. Run the same command again" in stderr
    assert "retrying" not in stderr, "a read given up as the run stops is no failure to report"
    assert _trials(tmp_path) == [("RUNNING", 1)], "the attempt's end was not recorded from a read cut short"

    resumed = Embedded(Settings(db=tmp_path / "katuna.db"))
    try:
        assert resumed.run("loud").status == "completed"
    finally:
        resumed.close()
    assert _trials(tmp_path) == [("COMPLETE", 1)], "the attempt that had ended is recorded, not run again"


def test_a_service_stopped_while_it_reads_a_huge_log_stops_before_reading_on_and_handles_the_end_later(
        tmp_path: Path):
    """SIGTERM reaches ``katuna serve`` while its worker reads the 32 MiB log of the trial that
    just ended: the worker stops without reading on to the log's end (its stop waits neither for
    the read, nor for its main loop's next turn, nor cuts the read off at its broker thread's
    join), so the attempt's end stays unrecorded, and nothing is reported as failed. Started
    again, the service handles the end. The worker is held (SIGSTOP) in its read until the
    master has passed the signal on to it."""
    definition = _study("loud", "--short-mb", "32", "--first-attempt-only")
    service = Service(tmp_path, workers=1)
    try:
        status, _, _ = service.request("POST", "/studies", json.dumps(definition), {"Content-Type": "application/json"})
        assert status == 201
        worker = eventually(lambda: _children(service.process.pid), "the service's worker", timeout=30)[0]
        log, position = eventually(lambda: _held_in_the_end_read(worker, tmp_path), "the worker reading the ended "
                                   "trial's log", timeout=START_WAIT, interval=0.005)
        assert position < log.stat().st_size // 2, "the signal comes before the read is half way"
        service.process.send_signal(signal.SIGTERM)
        eventually(lambda: _pending(worker, signal.SIGTERM), "the master's SIGTERM waiting for its worker", timeout=30)
        os.kill(worker, signal.SIGCONT)
        assert service.process.wait(timeout=60) == 0
    finally:
        service.close()
    said = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in said and "retrying" not in said, said
    assert _trials(tmp_path) == [("RUNNING", 1)], "the attempt's end was not recorded from a read cut short"

    service = Service(tmp_path, workers=1)
    try:
        assert service.wait_for("loud")["status"] == "completed"
    finally:
        service.close()
    assert _trials(tmp_path) == [("COMPLETE", 1)], "the end put back in the queue is recorded from the attempt's log"


def _children(pid: int) -> list[int]:
    """The process's children."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _log_read(pid: int) -> tuple[Path, int] | None:
    """The trial log the process has open for reading, and how far it has read it; None while
    it reads none (the log it opens to write a trial's output into is not one)."""
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = Path(os.readlink(fd))
            info = dict(line.split(":\t") for line in Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text().splitlines()
                        if ":\t" in line)
        except OSError:
            continue
        if target.suffix == ".log" and int(info["flags"], 8) & os.O_ACCMODE == os.O_RDONLY:
            return target, int(info["pos"])
    return None


def _held_in_the_end_read(pid: int, workdir: Path) -> tuple[Path, int] | None:
    """The log the process reads and how far, with the process held there (SIGSTOP) while the
    trial's end is still unrecorded; None, the process let go on, otherwise. Held, it reads no
    further however long this test waits for a CPU before it sends its signal."""
    os.kill(pid, signal.SIGSTOP)
    eventually(lambda: state(pid) == "T", "the process held", timeout=10, interval=0.001)
    read = _log_read(pid)
    if read is not None and _trials(workdir) == [("RUNNING", 1)]:
        return read
    os.kill(pid, signal.SIGCONT)
    return None


def _pending(pid: int, number: int) -> bool:
    """Whether the signal waits to be delivered to the process (it is held: :func:`_held_in_the_end_read`)."""
    status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":\t" in line)
    return any(int(status[field], 16) >> (number - 1) & 1 for field in ("ShdPnd", "SigPnd"))


def _trials(workdir: Path) -> list[tuple[str, int]]:
    """Each trial's state and attempt, as stored."""
    with closing(sqlite3.connect(workdir / "katuna.db")) as conn:
        return conn.execute("SELECT state, attempt FROM trials ORDER BY number").fetchall()
