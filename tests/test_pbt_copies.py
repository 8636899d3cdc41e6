"""A child trial's checkpoint folder is copied off the handling's write transaction: on the
local executor's worker thread, before the attempt's process starts. Real parts throughout:
the executor, subprocess trials, an SQLite file. The copy is held at its read of the parent's
``training.ckpt`` (:class:`HeldCopy`), so a test looks at what goes on while it is under way.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
import threading
from pathlib import Path

import pytest
import yaml
from conftest import uid_of
from test_pbt_runs import experiment
from waiting import eventually

from functions.adapters.local_executor import LocalExecutor
from functions.core.checkpoints import Checkpoint
from functions.core.events import Event
from functions.core.formats import load_study
from functions.core.launch import TrialLaunch
from functions.embedded import Embedded
from functions.settings import Settings

HOLD = 60.0
"""Seconds a held copy waits to be released at most, so a failing test never hangs."""

BUSY = 20.0
"""Seconds another connection waits for the write lock while a copy is held: the launching
handling's transaction may still be open as the copy begins on the worker thread (it runs
beside that transaction, not after it), and a loaded machine can keep it open a while; yet far
less than :data:`HOLD`, so a copy made inside the transaction would fail that write."""


class HeldCopy:
    """Holds the first read of a parent's ``training.ckpt`` by a copy until :meth:`release`, and
    counts the reads of it that return bytes (one per copy of that small file)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reading = threading.Event()
        self.released = threading.Event()
        self.copies = 0
        real = os.read

        def read(fd: int, size: int) -> bytes:
            if not _is_checkpoint(fd):
                return real(fd, size)
            if not self.reading.is_set():
                self.reading.set()
                self.released.wait(HOLD)
            chunk = real(fd, size)
            self.copies += bool(chunk)
            return chunk

        monkeypatch.setattr(os, "read", read)

    def release(self) -> None:
        self.released.set()


def _is_checkpoint(fd: int) -> bool:
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False
    return "/checkpoints/" in path and path.endswith("/training.ckpt")


def launch_of(tmp_path: Path, number: int = 1, attempt: int = 1) -> TrialLaunch:
    """Trial ``number`` of ``demo``, a child of trial 0, whose process appends a line to
    ``started`` in ``tmp_path`` and lists its checkpoint folder, told at ``/ckpt``."""
    program = "import os, sys; open(sys.argv[1], 'a').write(' '.join(sorted(os.listdir(sys.argv[2]))) + '\\n')"
    return TrialLaunch(study="demo", uid=uid_of(tmp_path), number=number, attempt=attempt,
                       job_name=f"demo-{number}-{attempt}", env={}, working_dir=str(tmp_path), timeout=None,
                       argv=[sys.executable, "-c", program, str(tmp_path / "started"), "/ckpt"],
                       checkpoint=Checkpoint("/ckpt", f"demo/checkpoints/{number}", "demo/checkpoints/0", number, 0))


def with_parent(tmp_path: Path) -> Path:
    """The logs folder, trial 0's checkpoint folder in it holding ``training.ckpt``."""
    logs = tmp_path / "logs"
    parent = logs / "demo" / "checkpoints" / "0"
    parent.mkdir(parents=True)
    (parent / "training.ckpt").write_text("saved")
    return logs


def started(tmp_path: Path) -> list[str]:
    marker = tmp_path / "started"
    return marker.read_text().splitlines() if marker.exists() else []


def test_other_writes_go_on_while_a_childs_checkpoint_is_copied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The end of a trial launches the next in its handling's write transaction: the copy of
    the child's folder is made beside it, not in it, so another connection writes while that
    copy is still under way (its partial folder there, the folder not). Both slots' children
    may be copied at once (the last of a generation ends): the other copy may end meanwhile."""
    held = HeldCopy(monkeypatch)
    db = tmp_path / "katuna.db"
    runner = Embedded(Settings(db=db))
    spec, definition = load_study(yaml.safe_dump(experiment(max_trials=9)))
    record = runner.submit(spec, definition, tmp_path)
    ended: list = []
    run = threading.Thread(target=lambda: ended.append(runner.run("simple-pbt")))
    run.start()
    try:
        assert held.reading.wait(HOLD), "a child's copy began"
        checkpoints = db.with_name("katuna-logs") / record.log_folder / "checkpoints"
        under_way = list(checkpoints.glob(".*.partial"))
        assert under_way, "the held copy is made beside the folder it makes"
        other = sqlite3.connect(db, timeout=BUSY, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("COMMIT")
        finally:
            other.close()
        assert [p for p in under_way if p.exists() and not (checkpoints / p.name[1:-len(".partial")]).exists()], \
            "the held copy was still under way as the other connection wrote"
    finally:
        held.release()
        run.join(HOLD)
        runner.close()
    [done] = ended
    assert (done.status, done.reason) == ("completed", "max trials reached (9)")


def test_a_refused_parent_folder_fails_that_child_with_its_reason_and_the_study_goes_on(tmp_path: Path):
    """A FIFO in each first-generation trial's folder: every child's copy is refused from the
    worker thread, and that child fails saying why, as a refused launch did."""
    db = tmp_path / "katuna.db"
    runner = Embedded(Settings(db=db))
    spec, definition = load_study(yaml.safe_dump(experiment(max_trials=9, failed=1)))
    record = runner.submit(spec, definition, tmp_path)
    checkpoints = db.with_name("katuna-logs") / record.log_folder / "checkpoints"
    for number in range(5):
        (checkpoints / str(number)).mkdir(parents=True)
        os.mkfifo(checkpoints / str(number) / "pipe")
    try:
        done = runner.run("simple-pbt")
        trials = runner.store.trials("simple-pbt")
    finally:
        runner.close()
    failed = [t for t in trials if t.state == "FAIL"]
    assert failed and all(t.number >= 5 for t in failed)
    assert all(t.reason.startswith("katuna refused to start the attempt: ") and
               "holds pipe, neither a file, a folder nor a link" in t.reason for t in failed), failed
    first = [t for t in trials if t.number < 5]
    assert len(first) == 5 and all(t.state == "COMPLETE" or t.stopped_at_end for t in first), \
        "a first-generation trial runs to its end, or to the study's (a child may fail while it runs)"
    assert done.status == "failed"


def test_an_attempt_exists_while_its_folder_is_copied_and_a_launch_delivered_twice_runs_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    held = HeldCopy(monkeypatch)
    ends: list[Event] = []
    executor = LocalExecutor(with_parent(tmp_path), ends.append)
    launch = launch_of(tmp_path)
    try:
        first = threading.Thread(target=executor.launch, args=(launch,))
        first.start()
        assert held.reading.wait(HOLD)
        assert executor.exists(launch), "an attempt being copied for exists: reconcile must not find it gone"
        executor.launch(launch)
        held.release()
        first.join(HOLD)
        eventually(lambda: ends, "the attempt's end is reported")
        assert started(tmp_path) == ["training.ckpt"] and held.copies == 1, "copied once, started once"
        assert [(e.data["outcome"], e.data["exitCode"]) for e in ends] == [("exited", 0)]
    finally:
        held.release()
        executor.shutdown()


def test_a_stop_during_the_copy_starts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    held = HeldCopy(monkeypatch)
    ends: list[Event] = []
    executor = LocalExecutor(with_parent(tmp_path), ends.append)
    launch = launch_of(tmp_path)
    try:
        threading.Thread(target=executor.launch, args=(launch,)).start()
        assert held.reading.wait(HOLD)
        executor.stop(launch)
        held.release()
        eventually(lambda: executor.running() == 0, "the stopped attempt ends")
        assert started(tmp_path) == [] and ends == []
        stopped = executor.poll(launch)
        assert stopped is not None and stopped.data["outcome"] == "interrupted"
        assert not (tmp_path / "logs" / "demo" / "checkpoints" / "1").exists(), "the copy cut short is not kept"
    finally:
        held.release()
        executor.shutdown()


def test_a_shutdown_during_the_copy_starts_nothing_and_the_attempt_runs_again_uncounted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    held = HeldCopy(monkeypatch)
    ends: list[Event] = []
    logs = with_parent(tmp_path)
    executor = LocalExecutor(logs, ends.append, kill_grace=0.2)
    launch = launch_of(tmp_path)
    threading.Thread(target=executor.launch, args=(launch,)).start()
    assert held.reading.wait(HOLD)
    executor.shutdown()
    held.release()
    later = LocalExecutor(logs, ends.append)
    try:
        end = eventually(lambda: later.recorded_end(launch), "the attempt is recorded as interrupted")
        assert end.data["outcome"] == "interrupted"
        assert started(tmp_path) == [] and ends == []
    finally:
        later.shutdown()


def test_a_full_disk_during_the_copy_waits_for_space_then_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The copy meets a full disk (the trial's log made before it): the attempt still exists,
    nothing is reported, and the copy is made again once space is freed; then it runs."""
    full = threading.Event()
    real = os.mkdir

    def mkdir(path, mode=0o777, *, dir_fd=None):
        if str(path).endswith(".partial") and not full.is_set():
            full.set()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "mkdir", mkdir)
    ends: list[Event] = []
    executor = LocalExecutor(with_parent(tmp_path), ends.append)
    launch = launch_of(tmp_path)
    try:
        executor.launch(launch)
        assert full.wait(HOLD)
        assert executor.exists(launch)
        eventually(lambda: ends, "the attempt's end is reported once space is freed")
        assert [(e.data["outcome"], e.data["exitCode"]) for e in ends] == [("exited", 0)]
        assert started(tmp_path) == ["training.ckpt"]
    finally:
        executor.shutdown()


def test_a_disk_that_stays_full_fails_the_child_naming_it_once_the_wait_for_space_runs_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The wait for space has an end (the executor's ``space_wait``, an hour in all by default):
    past it the child fails as one that could not start, its reason and log naming the full
    disk and the wait, and its process never starts; nothing of the copy is left."""
    tries = []
    real = os.mkdir

    def mkdir(path, mode=0o777, *, dir_fd=None):
        if str(path).endswith(".partial"):
            tries.append(path)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "mkdir", mkdir)
    ends: list[Event] = []
    logs = with_parent(tmp_path)
    executor = LocalExecutor(logs, ends.append, space_wait=0.5)
    launch = launch_of(tmp_path)
    try:
        executor.launch(launch)
        [end] = eventually(lambda: ends, "the child's end is reported once the wait for space ran out")
        assert end.data["outcome"] == "error"
        assert f"its checkpoint folder {logs / 'demo/checkpoints/1'} could not be made: the disk holding the trial " \
               f"logs {logs} is full, and stayed full through 0.5 s of waiting for space" in end.data["message"]
        assert len(tries) == 2, "tried at once, and once more after the whole wait"
        assert "stayed full through 0.5 s" in executor.log_path(launch).read_text()
        assert started(tmp_path) == [] and not (logs / "demo" / "checkpoints" / "1").exists()
    finally:
        executor.shutdown()
