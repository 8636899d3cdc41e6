"""Finding an attempt's processes reads the markers of the processes started since the attempt
did, and only theirs: one scan of ``/proc`` lies between every trial's end and its successor's start."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from functions.adapters import process_tree

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_a_marked_process_started_before_the_attempt_is_not_taken_for_one_of_its_processes():
    tick = os.sysconf("SC_CLK_TCK")
    env = {**os.environ, process_tree.MARKER: "scan/0/1"}
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env,
                             start_new_session=True)
    try:
        def found(since: float | None) -> list[int]:
            return [p.pid for p in process_tree.members(None, "scan/0/1".__eq__, since)]

        deadline = time.monotonic() + 30
        while not found(None) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert found(None) == [child.pid]
        assert found(process_tree.boot_ticks() - 60 * tick) == [child.pid], "started since: its marker is read"
        assert found(process_tree.boot_ticks() + 2 * tick) == [], "started before: its marker is not read"
    finally:
        child.kill()
        child.wait()
