"""The ``katuna`` command's exit (:mod:`functions.entry`): it skips only the interpreter's teardown.
Threads are still joined, every ``atexit`` handler still runs, output is whole (here a megabyte
left in the buffer, more than a pipe holds) and the status is the CLI's."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROGRAM = """
import atexit, sys, threading, time
from functions import entry

def late():
    while threading.main_thread().is_alive():  # the CLI has ended; Python is joining this thread
        time.sleep(0.01)
    atexit.register(print, "a handler registered after the hook ran", flush=False)
    for number in range(100_000):
        print(f"line {number}", flush=False)
    print("the non-daemon thread ran to its end", flush=False)

threading.Thread(target=late).start()
sys.argv = ["katuna", *sys.argv[1:]]
entry.main()
"""


def katuna(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROGRAM, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "status"), [(["--version"], 0), (["no-such-command"], 2)])
def test_the_exit_joins_threads_runs_every_handler_and_keeps_the_status(args: list[str], status: int):
    done = katuna(*args)
    assert done.returncode == status, done.stderr
    lines = done.stdout.splitlines()
    assert [line for line in lines if line.startswith("line ")] == [f"line {n}" for n in range(100_000)]
    assert lines[-2:] == ["the non-daemon thread ran to its end", "a handler registered after the hook ran"], lines
    if status == 0:
        assert lines[0].startswith("katuna, version ")
    else:
        assert "No such command 'no-such-command'" in done.stderr
