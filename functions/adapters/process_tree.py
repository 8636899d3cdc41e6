"""Every process a trial attempt started, found and ended, wherever it went (Linux).

A trial's main process leads its own session, and its environment carries a marker,
``KATUNA_ATTEMPT_ID=<study uid>/<trial number>/<attempt>``, that every descendant inherits. A
descendant is found by its session (or process group), or by the marker read from
``/proc/<pid>/environ`` when it left the session (``setsid``), so neither a background child
that outlives the main process nor a new session escapes. Only a process that both leaves the
session and clears its environment is not found.

The service makes itself a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``): orphaned
descendants of its trials become its children rather than init's, so they stay visible to it
and it reaps them once they are killed. On systems without ``/proc`` or ``prctl`` only the
session is signalled, and :func:`become_subreaper` says so. A process that both leaves the session
and clears its environment is found as an orphan its parent left to the service, where the
service's every child is a trial's (:func:`adopted`); once the service is killed outright, by
its guard, which kept track of the service's children (:mod:`functions.adapters.local_family`).

Every process an attempt started is then a descendant of the service, whatever session it
moved to: ending an attempt that this process started walks this process's descendants
(``/proc/<pid>/task/<tid>/children``), a handful of files, instead of reading every process on
the machine; that search lies between every trial's end and its successor's start. Processes
left by a service that died are no descendants of the one that finds them: those are searched
for on the whole machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MARKER = "KATUNA_ATTEMPT_ID"
"""The environment variable naming the attempt a process belongs to."""

PR_SET_CHILD_SUBREAPER = 36
PR_SET_DUMPABLE = 4
PROC = Path("/proc")
_subreaper: int | None = None
"""The pid of the process that made itself a child subreaper here: the setting is not inherited
by a forked child, so a child (a gunicorn worker) must make itself one too."""
KILL_GRACE = 3.0
"""Seconds a trial's process is given, after SIGTERM, before SIGKILL: to save its work, say."""
KILL_ROUNDS = 50
"""SIGKILL rounds at most, for descendants still forking while they are killed."""

log = logging.getLogger("katuna.executor")


def marker(uid: str, number: int, attempt: int) -> str:
    """The marker of one attempt of one trial of one study."""
    return f"{uid}/{number}/{attempt}"


def become_subreaper() -> bool:
    """Make this process adopt its orphaned descendants; whether that worked."""
    if not sys.platform.startswith("linux"):
        log.warning("trial processes that leave their session are not contained on %s: "
                    "only Linux offers a child subreaper and /proc", sys.platform)
        return False
    try:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
    except (OSError, AttributeError) as exc:
        log.warning("could not make this process a child subreaper (%s): orphaned trial processes "
                    "are still found and killed, but not reaped here", exc)
        return False
    global _subreaper
    _subreaper = os.getpid()
    return True


def hide_from_trials() -> bool:
    """Make this process's environment and memory unreadable to the trials it starts; whether
    that worked. Trials run as this process's user, and a process of the same user may read
    ``/proc/<pid>/environ`` (the API token, cloud credentials) unless the process is not
    dumpable. Forked workers keep the setting; an exec ends it, so trials stay readable to the
    process scan. A trial running as root reads everything all the same."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        _prctl(PR_SET_DUMPABLE, 0)
    except (OSError, AttributeError) as exc:
        log.warning("could not hide this process's environment from its trials (%s)", exc)
        return False
    return True


def open_to_trials(pid: int) -> bool:
    """Whether process ``pid``'s environment and memory are open to the trials this process
    starts: they run as this process's user, which is not root, and ``pid`` is a dumpable
    process of that user. The kernel hands the ``/proc/<pid>`` files of a process that is not
    dumpable to root (``task_dump_owner``), so their owner tells. A trial running as root reads
    every process all the same, which is not asked here (``katuna serve`` warns of it)."""
    me = os.geteuid()
    if me == 0 or not sys.platform.startswith("linux"):
        return False
    try:
        return os.stat(f"{PROC}/{pid}/environ").st_uid == me
    except OSError:
        return False


def ancestors(pid: int) -> Iterator[int]:
    """``pid``'s parent, the parent's parent, and so on to the first process (pid 1 included)."""
    while pid > 1:
        try:
            stat = _file(f"{PROC}/{pid}/stat")
        except OSError:
            return
        pid = int(stat.rsplit(b")", 1)[1].split()[1])
        if pid > 0:
            yield pid


def holding(pid: int, names: Iterable[str]) -> str | None:
    """The first of ``names`` set (not empty) in the environment process ``pid`` started with, where
    that environment is open to the trials this process starts (:func:`open_to_trials`); else None."""
    if not open_to_trials(pid):
        return None
    try:
        environ = _file(f"{PROC}/{pid}/environ")
    except OSError:
        return None
    held = {name.decode(errors="replace") for name, _, value in (item.partition(b"=") for item in environ.split(b"\0"))
            if value}
    return next((name for name in names if name in held), None)


def command_name(pid: int) -> str:
    """The name of process ``pid``'s program (``sh``), or "" where it is gone."""
    try:
        return _file(f"{PROC}/{pid}/comm").decode(errors="replace").strip()
    except OSError:
        return ""


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def adopts_orphans() -> bool:
    """Whether every process a child of this one starts stays its descendant and can be found
    as one: this process is a child subreaper and the kernel lists each task's children."""
    me = os.getpid()
    return _subreaper == me and os.path.exists(f"{PROC}/{me}/task/{me}/children")


@dataclass(frozen=True)
class Process:
    """What ``/proc`` says about one process."""

    pid: int
    parent: int
    group: int
    session: int
    zombie: bool
    marker: str | None


def boot_ticks() -> float:
    """Now, in the clock ticks since boot that ``/proc/<pid>/stat`` gives a process's start in."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK")


def _file(path: str) -> bytes:
    """A small ``/proc`` file whole (read without the layers of :class:`Path`: a scan reads
    hundreds of them, on the path from a trial's end to its successor's start)."""
    handle = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(handle, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(handle)


def _read(pid: int, since: float | None = None) -> Process | None:
    """The process, or None if it is gone (its marker None if its environment is not readable,
    or not read: a process started before ``since``, in clock ticks since boot, carries none)."""
    try:
        stat = _file(f"{PROC}/{pid}/stat")
    except OSError:
        return None
    fields = stat.rsplit(b")", 1)[1].split()
    found = None
    if since is None or int(fields[19]) >= since:
        try:
            environ = _file(f"{PROC}/{pid}/environ")
        except OSError:
            environ = b""
        prefix = MARKER.encode() + b"="
        found = next((item[len(prefix):].decode(errors="replace") for item in environ.split(b"\0")
                      if item.startswith(prefix)), None)
    return Process(pid, int(fields[1]), int(fields[2]), int(fields[3]), fields[0] == b"Z", found)


def _children(pid: int) -> list[int]:
    """The children of every thread of process ``pid`` (none if it is gone)."""
    try:
        threads = os.listdir(f"{PROC}/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for thread in threads:
        try:
            found += map(int, _file(f"{PROC}/{pid}/task/{thread}/children").split())
        except OSError:
            continue
    return found


def descendants(since: float | None = None, apart: Iterable[int] = ()) -> list[Process]:
    """Every descendant of this process, each read once, but those in ``apart`` and theirs (other
    attempts' main processes: a process that some attempt's process left behind is adopted by
    this one, never by another attempt's); the markers of those started before ``since`` (clock
    ticks since boot) are not read."""
    found: list[Process] = []
    seen: set[int] = set(apart)
    parents = [os.getpid()]
    while parents:
        children = [pid for parent in parents for pid in _children(parent) if pid not in seen]
        seen.update(children)
        found += [p for p in (_read(pid, since) for pid in children) if p is not None]
        parents = children
    return found


def processes(since: float | None = None) -> list[Process]:
    """Every process this one may see, itself excepted (none where there is no ``/proc``); the
    markers of those started before ``since`` (clock ticks since boot) are not read."""
    if not PROC.is_dir():
        return []
    me = str(os.getpid())
    pids = (int(name) for name in os.listdir(PROC) if name.isdigit() and name != me)
    return [p for p in (_read(pid, since) for pid in pids) if p is not None]


def _members(snapshot: Iterable[Process], leader: int | None, markers: Callable[[str], bool]) -> list[Process]:
    return [p for p in snapshot if not p.zombie and (
        (leader is not None and leader in (p.session, p.group)) or (p.marker is not None and markers(p.marker)))]


def members(leader: int | None, markers: Callable[[str], bool], since: float | None = None,
            own: bool = False, apart: Iterable[int] = ()) -> list[Process]:
    """The live processes of a trial attempt: in the session or group ``leader`` leads, or
    carrying a marker that ``markers`` accepts (none started before ``since`` does); with
    ``own``, only descendants of this process are looked at, but not those of ``apart``."""
    return _members(_snapshot(since, own, apart), leader, markers)


def _snapshot(since: float | None, own: bool, apart: Iterable[int] = ()) -> list[Process]:
    """The descendants of this process but ``apart``'s (``own``), or every process it may see."""
    return descendants(since, apart) if own else processes(since)


def _signal(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def end(leader: int | None, markers: Callable[[str], bool], grace: float, keep: Iterable[int] = (),
        since: float | None = None, own: bool = False) -> None:
    """End every process of the attempt: SIGTERM, then SIGKILL to whatever is left after
    ``grace`` seconds (and to whatever it forked meanwhile), then reap those that are children
    of this process. ``keep`` are children whose exit status someone else waits for; ``since``
    (clock ticks since boot) is when the attempt started, if known: no process started earlier
    belongs to it, so only the later ones' markers are read. ``own``: this process started the
    attempt and :func:`adopts_orphans`, so only its descendants are looked at (not those of the
    ``keep`` processes but ``leader``)."""
    apart = set(keep) - {leader}
    snapshot = _snapshot(since, own, apart)
    found = _members(snapshot, leader, markers)
    seen = {p.pid for p in found}
    if found:
        _signal(seen, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while found and time.monotonic() < deadline:
            time.sleep(0.02)
            found = members(leader, markers, since, own, apart)
        for _ in range(KILL_ROUNDS):
            if not found:
                break
            seen.update(p.pid for p in found)
            _signal((p.pid for p in found), signal.SIGKILL)
            time.sleep(0.01)
            found = members(leader, markers, since, own, apart)
        snapshot = _snapshot(since, own, apart)
    _reap(snapshot, lambda p: p.pid in seen or (leader is not None and p.session == leader), keep)


def end_study(uid: str) -> None:
    """End every process of the study ``uid``'s attempts on this machine, whichever process
    started it (SIGTERM, then SIGKILL after :data:`KILL_GRACE` seconds), and wait for them to be gone;
    this process's children are left for the threads that wait for them to collect."""
    prefix = f"{uid}/"
    end(None, lambda found: found.startswith(prefix), KILL_GRACE, keep=children())


def children() -> frozenset[int]:
    """This process's children now."""
    return frozenset(_children(os.getpid()))


def adopted(claimed: Callable[[Process], bool]) -> set[int]:
    """This process's live children that ``claimed`` does not take. In a process whose every
    child is a trial's process or the trials' guard, with no attempt running, each is an orphan
    it adopted as a subreaper from a trial process that left its session and cleared its
    environment (its marker with it), which nothing else ties to an attempt."""
    me = os.getpid()
    return {p.pid for p in descendants() if p.parent == me and not p.zombie and not claimed(p)}


def end_family(roots: set[int], grace: float) -> None:
    """End the processes ``roots`` and whatever they started (SIGTERM, then SIGKILL after
    ``grace`` seconds), and reap those that are this process's children."""
    if not roots:
        return
    victims = _with_descendants(roots, descendants())
    _signal(victims, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(p.pid in victims and not p.zombie for p in descendants()):
        time.sleep(0.02)
    for _ in range(KILL_ROUNDS):
        snapshot = descendants()
        victims = _with_descendants(victims, snapshot)
        alive = {p.pid for p in snapshot if p.pid in victims and not p.zombie}
        if not alive:
            break
        _signal(alive, signal.SIGKILL)
        time.sleep(0.01)
    _reap(descendants(), lambda p: p.pid in victims, ())


def _with_descendants(pids: set[int], snapshot: list[Process]) -> set[int]:
    """``pids`` and every process of ``snapshot`` they started, however deep."""
    found = set(pids)
    while more := {p.pid for p in snapshot if p.parent in found and p.pid not in found}:
        found |= more
    return found


def _reap(snapshot: Iterable[Process], belongs: Callable[[Process], bool], keep: Iterable[int]) -> None:
    """Collect the exit status of this process's dead children that ``belongs`` accepts (orphans
    adopted as a subreaper), never of those in ``keep``."""
    me, kept = os.getpid(), set(keep)
    for process in snapshot:
        if process.zombie and process.parent == me and process.pid not in kept and belongs(process):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(process.pid, os.WNOHANG)
