"""The processes a katuna process's trials started, known by identity, and ended after it died (Linux).

A trial process that leaves its session and clears its environment carries nothing that ties it
to its attempt (:mod:`functions.adapters.process_tree`), but it stays in the process tree of the
katuna process that started the attempt: below the trial's own processes while its parent
lives, and a child of katuna once orphaned, katuna being a child subreaper. When katuna dies
that tie goes too: its orphans are adopted by init. The trials' guard
(:mod:`functions.adapters.local_guard`) therefore keeps a list of the processes in that tree
while trials run (:func:`children`), and once katuna has died ends each of them still alive and
all they started (:func:`end`).

A process is known by its identity, its pid and the time it started (``/proc/<pid>/stat``, in
clock ticks since boot): a pid freed since and taken by another process names another identity,
which is left alone. A signal goes through a pidfd opened before the start time is checked
again, so not even a pid freed between the check and the signal reaches another process
(:func:`_send`; Linux 5.3, else the check and the signal are a moment apart).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable

from functions.adapters.process_tree import KILL_ROUNDS, PROC

Identity = tuple[int, int]
"""A process's pid and the time it started, in clock ticks since boot."""


def _stat(pid: int) -> tuple[int, int, bool] | None:
    """The process's start time, parent and whether it is a zombie; None if it is gone."""
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19]), int(fields[1]), fields[0] == b"Z"


def _children(pid: int) -> list[int]:
    """The children of every thread of process ``pid`` (none if it is gone)."""
    found: list[int] = []
    try:
        threads = os.listdir(f"{PROC}/{pid}/task")
    except OSError:
        return found
    for thread in threads:
        with contextlib.suppress(OSError), open(f"{PROC}/{pid}/task/{thread}/children", "rb") as handle:
            found += map(int, handle.read().split())
    return found


def identity(pid: int) -> Identity | None:
    """The identity of live process ``pid``; None if it is gone or a zombie."""
    stat = _stat(pid)
    return None if stat is None or stat[2] else (pid, stat[0])


def alive(process: Identity) -> bool:
    """Whether the process still runs (not a zombie), its pid not taken by another since."""
    return identity(process[0]) == process


def children(parent: int, kept: Iterable[int]) -> set[Identity] | None:
    """The live children of ``parent`` but ``kept``; None unless ``parent`` is the parent of this
    process throughout the look (else it may have died meanwhile, and the list be cut short)."""
    if os.getppid() != parent:
        return None
    left = set(kept) | {os.getpid()}
    found = {i for i in map(identity, _children(parent)) if i is not None and i[0] not in left}
    return found if os.getppid() == parent else None


def tree(roots: Iterable[Identity]) -> set[Identity]:
    """``roots`` still alive as themselves, and every live process they started, however deep."""
    found = {root for root in roots if alive(root)}
    parents = set(found)
    while parents:
        born = {(pid, stat[0]) for parent in parents for pid in _children(parent[0])
                if (stat := _stat(pid)) is not None and not stat[2] and stat[1] == parent[0]}
        parents = born - found
        found |= parents
    return found


def end(roots: Iterable[Identity], grace: float) -> None:
    """End ``roots`` and what they started: SIGTERM, then SIGKILL after ``grace`` seconds to what
    is left, and to whatever it started meanwhile."""
    victims = tree(roots)
    for victim in victims:
        _send(victim, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while victims and time.monotonic() < deadline:
        time.sleep(0.02)
        victims = tree(victims)
    for _ in range(KILL_ROUNDS):
        if not victims:
            break
        for victim in victims:
            _send(victim, signal.SIGKILL)
        time.sleep(0.01)
        victims = tree(victims)


def _send(process: Identity, sig: signal.Signals) -> None:
    """Signal the process if it is still itself."""
    pid, _ = process
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (OSError, AttributeError):
        if alive(process):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        return
    try:
        if alive(process):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                signal.pidfd_send_signal(handle, sig)
    finally:
        os.close(handle)
