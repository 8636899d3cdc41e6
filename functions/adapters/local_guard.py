"""A guard process that ends a katuna process's trials when that process dies without ending them.

A trial leads a session of its own, so that everything it starts can be found and ended
(:mod:`functions.adapters.process_tree`); that also keeps it from dying with katuna. A katuna
process killed outright (SIGKILL, the OOM killer, a gunicorn worker killed at its timeout) runs
no shutdown, and its trials would run on unwatched, their results thrown away when the study
resumes. The guard is a small child process, started with the first trial: katuna tells it each
attempt's marker before the attempt starts, its main process once started, and its end, over a
pipe that only katuna holds. When katuna dies, however it dies, the kernel closes the pipe; the
guard then ends every attempt still listed as a stop does (SIGTERM, a grace period, then
SIGKILL, to the attempt's session and to every process carrying its marker) and exits. A katuna
process that ends normally ends its trials first, and the guard finds none.

The kernel's parent-death signal (``PR_SET_PDEATHSIG``) would reach only a trial's main process,
not what it started, and fires when the thread that forked it ends, not the process.

Run as ``python -m functions.adapters.local_guard GRACE`` with the pipe as its standard input.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from typing import IO

from functions.adapters import process_tree

log = logging.getLogger("katuna.executor")


class Guard:
    """The katuna side: the guard process, started on first use, and the pipe to it; safe from
    any thread. Where the guard cannot be started or has died, trials run unguarded (said once)."""

    def __init__(self, grace: float) -> None:
        self._grace = grace
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._pipe: IO[bytes] | None = None
        self._failed = False

    def starting(self, marker: str) -> None:
        """An attempt of ``marker`` is about to start."""
        self._send(f"+ {marker}")

    def started(self, marker: str, pid: int) -> None:
        """The attempt's main process is ``pid`` (it leads the attempt's session)."""
        self._send(f"= {marker} {pid}")

    def ended(self, marker: str) -> None:
        """The attempt and every process it started have ended."""
        self._send(f"- {marker}")

    @property
    def pid(self) -> int | None:
        """The guard process's pid, once started."""
        with self._lock:
            return None if self._process is None else self._process.pid

    def close(self) -> None:
        """Close the pipe (the guard ends what is still listed, then exits) and wait for the guard."""
        with self._lock:
            pipe, process, self._pipe, self._process = self._pipe, self._process, None, None
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        if process is not None:
            try:
                process.wait(timeout=self._grace + 10)
            except subprocess.TimeoutExpired:
                log.warning("the trials' guard process %d did not exit", process.pid)

    def _send(self, line: str) -> None:
        with self._lock:
            if self._failed:
                return
            try:
                pipe = self._pipe or self._start()
                pipe.write(line.encode() + b"\n")
                pipe.flush()
            except OSError as exc:
                self._failed = True
                log.warning("trials keep running if this process is killed outright: their guard process "
                            "could not be started or died (%s)", exc)

    def _start(self) -> IO[bytes]:
        """Start the guard in a session of its own (no terminal's signal reaches it), with none of
        this process's environment (its trials could read the guard's) but where Python finds
        katuna; the pipe to it."""
        env = {name: os.environ[name] for name in ("PATH", "PYTHONPATH") if name in os.environ}
        # This Python running this module: nothing in the command comes from outside.
        self._process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", __name__, str(self._grace)], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, env=env, start_new_session=True)
        self._pipe = pipe = self._process.stdin
        if pipe is None:
            raise OSError("the guard process has no standard input")
        return pipe


def guard(lines: IO[str]) -> list[tuple[str, int | None]]:
    """Follow the attempts that ``lines`` announce until the pipe closes; the attempts still
    listed then (marker and main process, if known)."""
    attempts: dict[str, int | None] = {}
    for line in lines:
        sign, _, rest = line.strip().partition(" ")
        if sign == "+":
            attempts[rest] = None
        elif sign == "=":
            marker, _, pid = rest.rpartition(" ")
            if marker in attempts:
                attempts[marker] = int(pid)
        elif sign == "-":
            attempts.pop(rest, None)
    return list(attempts.items())


def end_all(attempts: list[tuple[str, int | None]], grace: float) -> None:
    """End every process of each attempt, all at once (one grace period for all)."""
    threads = [threading.Thread(target=process_tree.end, args=(pid, marker.__eq__, grace))
               for marker, pid in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main() -> None:
    process_tree.hide_from_trials()
    grace = float(sys.argv[1])
    end_all(guard(sys.stdin), grace)


if __name__ == "__main__":
    main()
