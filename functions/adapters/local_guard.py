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
process that ends normally ends its trials first, and the guard finds none. A guard that dies
first (the OOM killer, a user's ``kill``) is started again and told every attempt still running,
so none runs unguarded for longer than that takes.

A trial process that left its session and cleared its environment carries neither, and once
katuna is dead nothing ties it to katuna either (:mod:`functions.adapters.local_family`). The
guard therefore also ends, with their descendants, the attempts' main processes and, where every
child of katuna is a trial's (``katuna run``, a ``katuna serve`` worker) and katuna adopts
orphans, the children katuna had at the guard's last look: it looks ten times a second
(:data:`POLL`) while an attempt runs, and not at all while none does. An orphan that a trial
left less than that before katuna died still escapes, as does a process whose parent dies
after katuna, before the guard found it (within milliseconds), leaving it to init.

The kernel's parent-death signal (``PR_SET_PDEATHSIG``) would reach only a trial's main process,
not what it started, and fires when the thread that forked it ends, not the process.

Run as ``python -m functions.adapters.local_guard GRACE [PARENT KEPT...]`` with the pipe as its
standard input: with ``PARENT``, the guard watches the children of that process (its own
parent) but those ``KEPT``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO

from functions.adapters import local_family, process_tree

log = logging.getLogger("katuna.executor")


class Guard:
    """The katuna side: the guard process, started on first use, and the pipe to it; safe from
    any thread. ``kept``: every child this process starts is a trial's but these, which it had
    already; the guard then keeps track of its children (if it adopts orphans).

    A guard that dies (the OOM killer, a user's ``kill``) is started again, at once while an
    attempt runs (a thread waits for each guard's end), else with the next attempt, and told
    every attempt still listed, with its main process: a later kill of this process still ends
    them. One that dies within :data:`RESTART_PAUSE` seconds of its start is started again only
    once that pause is over, so a guard that cannot run is not started over and over. Where
    the guard cannot be started, trials run unguarded (said once), and each later message tries
    again."""

    def __init__(self, grace: float, kept: frozenset[int] | None = None) -> None:
        self._grace = grace
        self._kept = kept
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._pipe: IO[bytes] | None = None
        self._attempts: dict[str, int | None] = {}
        """The attempts listed (marker, and main process once started): what a new guard is told."""
        self._unguarded = False
        """Whether trials were said to run unguarded (the guard could not be started) since a
        guard last started."""
        self._closed = False
        """Whether the guard was closed: a thread finding it dead then starts none."""
        self._uncollected: set[int] = set()
        """The pids of the guard processes started whose end is not collected yet: one closed,
        or dropped as it died, is still this process's child until then, and no trial's."""

    def starting(self, marker: str) -> None:
        """An attempt of ``marker`` is about to start."""
        with self._lock:
            self._attempts[marker] = None
            self._send(f"+ {marker}")

    def started(self, marker: str, pid: int) -> None:
        """The attempt's main process is ``pid`` (it leads the attempt's session)."""
        with self._lock:
            if marker in self._attempts:
                self._attempts[marker] = pid
            self._send(f"= {marker} {pid}")

    def ended(self, marker: str) -> None:
        """The attempt and every process it started have ended."""
        with self._lock:
            self._attempts.pop(marker, None)
            self._send(f"- {marker}")

    def processes(self) -> frozenset[int]:
        """Every guard process of this one whose end is not collected yet: the guard, and one
        being closed (:meth:`close` waits for it) or found dead and not yet waited for."""
        with self._lock:
            return frozenset(self._uncollected)

    def close(self) -> None:
        """Close the pipe (the guard ends what is still listed, then exits) and wait for the guard."""
        with self._lock:
            self._closed = True
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
        """Tell the guard ``line`` (under the lock); a guard found dead, or none yet, is
        started and told every attempt listed, which ``line`` is already part of."""
        if self._pipe is not None:
            try:
                self._pipe.write(line.encode() + b"\n")
                self._pipe.flush()
                return
            except OSError:
                self._drop()
        if self._attempts:
            self._restart()

    def _restart(self) -> None:
        """Start a guard and tell it every attempt listed (under the lock)."""
        try:
            pipe = self._start()
            pipe.write(b"".join(f"+ {marker}\n".encode() + (b"" if pid is None else f"= {marker} {pid}\n".encode())
                                for marker, pid in self._attempts.items()))
            pipe.flush()
        except OSError as exc:
            self._drop()
            if not self._unguarded:
                log.warning("trials keep running if this process is killed outright: their guard process "
                            "could not be started (%s)", exc)
            self._unguarded = True
            return
        if self._unguarded:
            log.warning("the trials' guard process runs again (%d), told of %d running attempt(s)",
                        self._process.pid if self._process else 0, len(self._attempts))
        self._unguarded = False

    def _drop(self) -> None:
        """Forget the guard and close the pipe to it (under the lock); its end is collected by
        the thread waiting for it."""
        pipe, self._pipe, self._process = self._pipe, None, None
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()

    def _start(self) -> IO[bytes]:
        """Start the guard in a session of its own (no terminal's signal reaches it), with none of
        this process's environment (its trials could read the guard's) but where Python finds
        katuna, and a thread waiting for its end; the pipe to it."""
        env = {name: os.environ[name] for name in ("PATH", "PYTHONPATH") if name in os.environ}
        argv = [sys.executable, "-m", __name__, str(self._grace)]
        if self._kept is not None and process_tree.adopts_orphans():
            argv += [str(os.getpid()), *map(str, sorted(self._kept))]
        # This Python running this module, numbers: nothing in the command comes from outside.
        process = subprocess.Popen(  # noqa: S603
            argv, stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, env=env, start_new_session=True)
        self._process, self._pipe, self._closed = process, process.stdin, False
        self._uncollected.add(process.pid)
        threading.Thread(target=self._watch, args=(process, time.monotonic()), daemon=True).start()
        if self._pipe is None:
            raise OSError("the guard process has no standard input")
        return self._pipe

    def _watch(self, process: subprocess.Popen[bytes], since: float) -> None:
        """Wait for the guard's end; if it died while still the guard (not closed, not replaced),
        start another once :data:`RESTART_PAUSE` seconds have passed since its start, where an
        attempt is listed and the guard was not closed meanwhile (else the next attempt starts one)."""
        code = process.wait()
        with self._lock:
            self._uncollected.discard(process.pid)
            if self._process is not process:
                return
            log.warning("the trials' guard process %d died (%s): starting another", process.pid,
                        f"signal {-code}" if code < 0 else f"exit code {code}")
            self._drop()
        time.sleep(max(0.0, since + RESTART_PAUSE - time.monotonic()))
        with self._lock:
            if self._process is None and self._attempts and not self._closed:
                self._restart()


RESTART_PAUSE = 1.0
"""Seconds after a guard's start before one that died is started again: a guard that cannot run
(its Python gone, say) is started once a second at most, not over and over."""


POLL = 0.1
"""Seconds between the guard's looks at the children of the katuna process it watches, while
an attempt runs there (and once after the last ends): an orphan that trial processes left less
than this before katuna was killed is not yet known to the guard."""


@dataclass
class Followed:
    """What the guard knows when the pipe closes: the attempts still listed (marker and main
    process, if known), the identities of those main processes, and the children of the katuna
    process it watched (besides those it was told to leave) at its last look."""

    attempts: dict[str, int | None] = field(default_factory=dict)
    leaders: dict[str, local_family.Identity] = field(default_factory=dict)
    children: set[local_family.Identity] = field(default_factory=set)

    def take(self, line: str) -> None:
        """Take one message of the pipe into account."""
        sign, _, rest = line.strip().partition(" ")
        if sign == "+":
            self.attempts[rest] = None
        elif sign == "=":
            marker, _, pid = rest.rpartition(" ")
            if marker in self.attempts:
                self.attempts[marker] = int(pid)
                if (leader := local_family.identity(int(pid))) is not None:
                    self.leaders[marker] = leader
        elif sign == "-":
            self.attempts.pop(rest, None)
            self.leaders.pop(rest, None)


@dataclass(frozen=True)
class Watched:
    """The katuna process whose children the guard keeps track of (its parent: every child it
    starts is a trial's process, or an orphan adopted from one), but ``kept``, children it had
    before its first trial (a job of the shell that ``exec``'d it)."""

    pid: int
    kept: frozenset[int]


def follow(stream: int, watched: Watched | None, every: float = POLL) -> Followed:
    """Follow the attempts that the pipe ``stream`` announces until it closes; with ``watched``,
    look at its children every ``every`` seconds while an attempt is listed, and once more after
    the list changed (nothing at all while the pipe is quiet and no attempt runs)."""
    followed, pending, due, stale = Followed(), b"", 0.0, False
    while True:
        busy = watched is not None and (stale or bool(followed.attempts))
        ready, _, _ = select.select([stream], [], [], max(0.0, due - time.monotonic()) if busy else None)
        if ready:
            chunk = os.read(stream, 65536)
            if not chunk:
                return followed
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                followed.take(line.decode())
            stale = True
        if watched is not None and (stale or followed.attempts) and time.monotonic() >= due:
            children = local_family.children(watched.pid, watched.kept)
            followed.children = followed.children if children is None else children
            due, stale = time.monotonic() + every, False


def end_all(followed: Followed, grace: float) -> None:
    """End every process of each attempt still listed, and every process the watched katuna
    process's children were and started (all at once: one grace period for all); the latter are
    found before any is signalled, while each still is where its parent left it."""
    family = local_family.tree([*followed.leaders.values(), *followed.children])
    threads = [threading.Thread(target=process_tree.end, args=(pid, marker.__eq__, grace))
               for marker, pid in followed.attempts.items()]
    threads.append(threading.Thread(target=local_family.end, args=(family, grace)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main() -> None:
    process_tree.hide_from_trials()
    grace, watched = float(sys.argv[1]), None
    if len(sys.argv) > 2:
        watched = Watched(int(sys.argv[2]), frozenset(map(int, sys.argv[3:])))
    end_all(follow(sys.stdin.fileno(), watched), grace)


if __name__ == "__main__":
    main()
