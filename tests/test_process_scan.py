"""Finding an attempt's processes reads the markers of the processes started since the attempt
did, and only theirs: one scan of ``/proc`` lies between every trial's end and its successor's start."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from functions.adapters import local_family, process_tree

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture
def attempt_id() -> str:
    """An attempt id no other test's processes carry: the scans look at every process of the host."""
    return f"scan-{uuid.uuid4().hex}/0/1"


def test_a_marked_process_started_before_the_attempt_is_not_taken_for_one_of_its_processes(attempt_id: str):
    tick = os.sysconf("SC_CLK_TCK")
    env = {**os.environ, process_tree.MARKER: attempt_id}
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env,
                             start_new_session=True)
    try:
        def found(since: float | None) -> list[int]:
            return [p.pid for p in process_tree.members(None, attempt_id.__eq__, since)]

        deadline = time.monotonic() + 30
        while not found(None) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert found(None) == [child.pid]
        assert found(process_tree.boot_ticks() - 60 * tick) == [child.pid], "started since: its marker is read"
        assert found(process_tree.boot_ticks() + 2 * tick) == [], "started before: its marker is not read"
    finally:
        child.kill()
        child.wait()


SCANNER = """
import os, subprocess, sys, time
from functions.adapters import local_family, process_tree
MARK = os.environ[process_tree.MARKER]
assert process_tree.become_subreaper() and process_tree.adopts_orphans()
# A child that starts a grandchild in a new session, then exits: the grandchild is adopted here.
subprocess.run([sys.executable, "-c", "import subprocess; subprocess.Popen(['sleep', '60'], start_new_session=True)"],
               stdout=subprocess.DEVNULL, check=True)
def found(own):
    return sorted(p.pid for p in process_tree.members(None, MARK.__eq__, own=own))
deadline = time.monotonic() + 30
while len(found(True)) < 1 and time.monotonic() < deadline:
    time.sleep(0.02)
print(found(True), flush=True)
print(found(False), flush=True)
process_tree.end(None, MARK.__eq__, 0.5, own=True)
print(found(False), flush=True)
"""


def test_the_processes_of_an_attempt_started_here_are_looked_for_among_this_process_descendants_only(attempt_id: str):
    env = {**os.environ, process_tree.MARKER: attempt_id}
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env,
                                start_new_session=True)
    try:
        scan = subprocess.run([sys.executable, "-c", SCANNER], env=env, capture_output=True, text=True, timeout=60)
        assert scan.returncode == 0, scan.stderr
        descendants, everywhere, after = (line.strip("[]").split(", ") for line in scan.stdout.splitlines())
        assert len(descendants) == 1, "the adopted grandchild, which left its session, is found"
        assert str(stranger.pid) not in descendants, "a marked process started elsewhere is not looked at"
        assert sorted(everywhere, key=int) == sorted([*descendants, str(stranger.pid)], key=int)
        assert after == [str(stranger.pid)], "ending the attempt ended its descendant only"
    finally:
        stranger.kill()
        stranger.wait()


APART = """
import os, subprocess, sys, time
from functions.adapters import local_family, process_tree
MARK = os.environ[process_tree.MARKER]
assert process_tree.become_subreaper()
other = subprocess.Popen([sys.executable, "-c", "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"])
def found(apart=()):
    return sorted(p.pid for p in process_tree.members(None, MARK.__eq__, own=True, apart=apart))
deadline = time.monotonic() + 30
while len(found()) < 2 and time.monotonic() < deadline:
    time.sleep(0.02)
print(found(apart=[other.pid]), flush=True)
other.kill()
other.wait()
process_tree.end(None, MARK.__eq__, 0.5, own=True)
"""


def test_the_process_trees_of_other_attempts_are_not_looked_into(attempt_id: str):
    env = {**os.environ, process_tree.MARKER: attempt_id}
    scan = subprocess.run([sys.executable, "-c", APART], env=env, capture_output=True, text=True, timeout=60)
    assert scan.returncode == 0, scan.stderr
    assert scan.stdout.split() == ["[]"], "another attempt's main process and its child (marked alike) are skipped"


def test_a_process_is_ended_by_its_identity_with_what_it_started_and_a_pid_now_another_processes_is_left():
    """The trials' guard ends processes it listed earlier by pid and start time: a pid whose
    start time differs is another process's now, and is left alone."""
    parent = subprocess.Popen([sys.executable, "-c",  # not a shell, which may exit 0 first if its sleep ends first
                               "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"])
    me = local_family.identity(parent.pid)
    assert me is not None
    deadline = time.monotonic() + 30
    while len(family := local_family.tree([me])) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        assert len(family) == 2, "the parent and its sleep"
        local_family.end([(me[0], me[1] - 1)], grace=0.5)
        assert all(map(local_family.alive, family)), "another process's pid is left"
        local_family.end([me], grace=0.5)
        assert parent.wait(timeout=10) == -signal.SIGTERM
        assert not any(map(local_family.alive, family)), "and what it started ends with it"
    finally:
        for pid, _ in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        parent.wait()
