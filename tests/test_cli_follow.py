"""``katuna logs -f`` as a user runs it: a real ``katuna run`` whose trials print over time, and
real ``katuna logs -f`` processes following them, from before a trial starts to its end, across
an attempt killed from outside, to a pipe and to a terminal; and ``katuna logs`` without ``-f``
of a trial still to start, which exits 1 naming the follow that waits for it."""

from __future__ import annotations

import filecmp
import os
import pty
import signal
import subprocess
import sys
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest
import yaml
from child_signals import interruptible
from conftest import study_definition
from http_helpers import run_katuna
from started_katuna import StartedKatuna
from waiting import START_WAIT, eventually

from functions.adapters.sqlite_store import SqliteStore
from functions.core.records import StudyRecord, TrialRecord
from functions.core.validate import parse_study

pytestmark = pytest.mark.slow

KATUNA = [str(Path(sys.executable).with_name("katuna"))]
PACED = Path(__file__).parent / "trials" / "paced.py"


def _study(tmp_path: Path, *extra: str, max_trials: int = 1) -> Path:
    """A study of ``max_trials`` trials one at a time, each printing over time (``paced.py``),
    held before its last lines until the file ``go`` exists."""
    definition = study_definition(maxTrials=max_trials, parallelism=1)
    definition["trialTemplate"] = {"command": [sys.executable, str(PACED), "--go", str(tmp_path / "go"), *extra],
                                   "env": {"X": "${trialParameters.x}"}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(definition))
    return path


@contextmanager
def _running(tmp_path: Path, *extra: str, max_trials: int = 1) -> Iterator[StartedKatuna]:
    """``katuna run`` of :func:`_study` in the background, once its first trial is stored; it is
    let go on (``go``) and waited for as the block ends."""
    process = StartedKatuna("run", str(_study(tmp_path, *extra, max_trials=max_trials)), cwd=tmp_path,
                            interruptible=True)
    try:
        eventually(lambda: (tmp_path / "katuna.db").exists() and _trial(tmp_path, max_trials - 1) is not None,
                   "the run stored its trials", timeout=START_WAIT)
        yield process
    finally:
        (tmp_path / "go").touch()
        out, err = process.communicate(timeout=120)
    assert process.returncode == 0, out + err


def _trial(tmp_path: Path, number: int) -> TrialRecord | None:
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        return store.get_trial("demo", number)
    finally:
        store.close()


def _follow(tmp_path: Path, *args: str, stdout: int | IO[bytes] = subprocess.PIPE) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*KATUNA, "logs", "-f", "demo", *args], cwd=tmp_path, stdout=stdout,
                            stderr=subprocess.PIPE, preexec_fn=interruptible)


def _read_until(process: subprocess.Popen[bytes], expected: bytes, stream: str = "stdout") -> bytes:
    """What the follow printed (or told, ``stream="stderr"``) up to and with ``expected``: it
    printed it while the trial runs. Read unbuffered, so that ``communicate`` reads the rest."""
    pipe = getattr(process, stream)
    assert pipe is not None
    read = b""
    while expected not in read:
        piece = os.read(pipe.fileno(), 65536)
        assert piece, f"the follow ended before printing {expected!r}: {read!r}"
        read += piece
    return read


def _logs(tmp_path: Path, number: int, *attempts: int) -> bytes:
    """The log files of the trial's ``attempts``, one after another."""
    folder = next((tmp_path / "katuna-logs" / "demo").iterdir())
    return b"".join((folder / f"{number}.{attempt}.log").read_bytes() for attempt in attempts)


def test_a_follow_prints_the_trials_whole_log_as_it_is_written_and_goes_on_with_the_attempt_run_again(
        tmp_path: Path):
    """Trial 0 runs when the follows start, trial 1 waits for it; each trial's first attempt is
    killed with SIGKILL (a preemption) and runs again: each follow prints both attempts' logs,
    whole, says so on stderr, and exits 0 once the trial ended; one of ``--attempt 1`` ends with it."""
    with _running(tmp_path, "--kill-first", max_trials=2):
        running, waiting, pinned = _follow(tmp_path, "0"), _follow(tmp_path, "1"), _follow(tmp_path, "0", "--attempt", "1")
        begun = _read_until(running, b"attempt 1 on stderr\n")
        assert _read_until(pinned, b"attempt 1 on stderr\n") == begun
        waits = _read_until(waiting, b"]\n", "stderr")
        assert waits == b"[katuna: trial 1 waits to start (attempt 1); its log follows once it does]\n"
        unfollowed = run_katuna("logs", "demo", "1", cwd=tmp_path, timeout=60, env={**os.environ, "COLUMNS": "500"})
        assert (unfollowed.returncode, unfollowed.stdout) == (1, ""), "as kubectl logs of a pod waiting to start"
        assert unfollowed.stderr.endswith(": the attempt has not started (the trial is WAITING): katuna logs -f demo 1 "
                                          "waits for it to start and follows its log\n"), unfollowed.stderr
        (tmp_path / "go").touch()
        (rest, told), (whole_1, told_1), (first, told_first) = (process.communicate(timeout=120)
                                                                for process in (running, waiting, pinned))
    assert [process.returncode for process in (running, waiting, pinned)] == [0, 0, 0]
    assert begun + rest == _logs(tmp_path, 0, 1, 2) and b"attempt 2 line 4\nloss=0.5\n" in rest
    assert whole_1 == _logs(tmp_path, 1, 1, 2)
    assert begun + first == _logs(tmp_path, 0, 1), "the first attempt's log, to its end"
    preempted = b"[katuna: attempt 1 ended: preempted: killed by SIGKILL from outside katuna"
    for said in (told, told_1):
        assert said.count(preempted) == 1 and b"; attempt 2 follows]\n" in said
        assert said.endswith(b"ended: COMPLETE]\n"), said
    assert told_first.startswith(preempted) and told_first.endswith(
        b"; the trial runs again as attempt 2 (katuna logs -f demo 0 follows it)]\n")
    ended = run_katuna("logs", "-f", "demo", "0", cwd=tmp_path, timeout=60, stdout=tmp_path / "ended")
    assert (ended.returncode, (tmp_path / "ended").read_bytes(), ended.stderr) == (0, _logs(tmp_path, 0, 2), ""), \
        "a trial that ended has its log printed, as without -f"


def test_a_terminal_follow_redraws_a_progress_bar_in_place_and_a_pipe_gets_each_line_at_its_last_state(
        tmp_path: Path):
    with _running(tmp_path):
        piped = _follow(tmp_path, "0", "--terminal")
        begun = _read_until(piped, b"progress 100%\n")
        controller, terminal = pty.openpty()
        tty.setraw(terminal)  # no output processing: what the follow wrote is what the terminal gets
        try:
            shown = _follow(tmp_path, "0", "--terminal", stdout=terminal)
            os.close(terminal)
            drawn = _drained(controller, until=b"on stderr\n")
            (tmp_path / "go").touch()
            piped_out = begun + piped.communicate(timeout=120)[0]
            assert shown.wait(timeout=120) == 0
            drawn += _drained(controller)
        finally:
            os.close(controller)
    assert piped.returncode == 0
    assert run_katuna("logs", "demo", "0", "--terminal", cwd=tmp_path, timeout=60,
                      stdout=tmp_path / "as_shown").returncode == 0
    as_shown = (tmp_path / "as_shown").read_bytes()
    assert piped_out == as_shown and b"\nprogress 100%\n" in as_shown and b"\r" not in as_shown
    assert drawn == _logs(tmp_path, 0, 1), \
        "to a terminal the carriage returns go through, and it redraws the bar in place"
    assert b"\rprogress  50%\rprogress  75%" in drawn


def _drained(controller: int, until: bytes | None = None) -> bytes:
    """What a pseudo-terminal's other end got: up to and with ``until``, or all of it, once
    every process writing to it has ended."""
    read = b""
    while until is None or until not in read:
        try:
            piece = os.read(controller, 65536)
        except OSError:  # EIO: no writer left
            piece = b""
        if not piece:
            assert until is None, f"the follow ended before printing {until!r}: {read!r}"
            return read
        read += piece
    return read


def test_ctrl_c_ends_a_follow_with_130_in_a_line(tmp_path: Path):
    with _running(tmp_path):
        follow = _follow(tmp_path, "0")
        _read_until(follow, b"progress 100%\n")
        follow.send_signal(signal.SIGINT)
        _, told = follow.communicate(timeout=60)
    assert (follow.returncode, told.splitlines()[-1]) == (130, b"Interrupted (SIGINT)."), told
    assert b"Traceback" not in told


def test_a_follow_of_a_huge_log_holds_a_bounded_memory(tmp_path: Path):
    """A trial that printed 160 MiB of one line before the follow started: the follow, to a
    file as a terminal shows it, prints all of it, in pieces, holding a few MiB (its peak
    resident memory read as it waits for the trial's next line)."""
    with _running(tmp_path, "--mb", "160"):
        eventually(lambda: _tail(tmp_path).endswith(b"on stderr\n"), "the trial printed its huge line", timeout=120)
        with open(tmp_path / "followed", "wb") as followed:
            follow = _follow(tmp_path, "0", "--terminal", stdout=followed)
            eventually(lambda: (tmp_path / "followed").stat().st_size > 160 << 20, "the follow printed the huge line",
                       timeout=120)
            peak = _peak_memory(follow.pid)
            (tmp_path / "go").touch()
            assert follow.wait(timeout=120) == 0
    assert run_katuna("logs", "demo", "0", "--terminal", cwd=tmp_path, stdout=tmp_path / "shown").returncode == 0
    assert filecmp.cmp(tmp_path / "followed", tmp_path / "shown", shallow=False)
    assert peak < 100 << 20, f"{peak} bytes"


def _peak_memory(pid: int) -> int:
    """The most resident memory the process held since it started its program, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) * 1024


def _tail(tmp_path: Path) -> bytes:
    """The last bytes of trial 0's first log (none before it is written)."""
    folder = tmp_path / "katuna-logs" / "demo"
    logs = list(folder.glob("*/0.1.log")) if folder.exists() else []
    if not logs:
        return b""
    with open(logs[0], "rb") as log:
        log.seek(max(log.seek(0, os.SEEK_END) - 100, 0))
        return log.read()


def test_a_cluster_trial_is_not_followed_here_and_the_error_says_what_follows_it(tmp_path: Path):
    store = SqliteStore(tmp_path / "katuna.db")
    definition = study_definition()
    store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "uid-7", status="running",
                                runs_on="kubernetes", started_at=time.time()))
    store.add_trial(TrialRecord("demo", 3, {"x": 0.1}, "RUNNING", attempt=2))
    store.close()
    refused = run_katuna("logs", "-f", "demo", "3", cwd=tmp_path, timeout=60,
                         env={**os.environ, "KATUNA_K8S_NAMESPACE": "trials", "COLUMNS": "1000"})
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("error: trial 3 of 'demo' is not followed here: the trial ran on Kubernetes, "
                                     "whose pods keep its log: read it with the API of the katuna serve")
    assert ("curl -sS -H \"Authorization: Bearer $KATUNA_API_TOKEN\" \"$SERVICE_URL/studies/demo/trials/3/logs"
            "?attempt=2\"") in refused.stderr
    assert ("follow it as it is written with kubectl logs -f --tail=-1 -n trials -l "
            "katuna.dev/uid=uid-7,katuna.dev/trial=3,katuna.dev/attempt=2 -c trial ") in refused.stderr
    printed = run_katuna("logs", "demo", "3", cwd=tmp_path, timeout=60, env={**os.environ, "COLUMNS": "1000"})
    assert printed.returncode == 1 and "-n default -l katuna.dev/uid=uid-7,katuna.dev/trial=3,katuna.dev/attempt=2" \
        in printed.stderr
