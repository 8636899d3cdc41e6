"""Which process runs a local trial attempt, for every process that shares the log directory.

Beside each attempt's log an ``.owner`` file names the process that runs it, by ``pid:start
time``, so an attempt exists while its owner lives and none while it does not (the attempt was
lost); one more in the study's log folder names the process that runs the study (:data:`RUNNER`).
Owner files are hard links to one file per process that holds its identity: a link costs a
directory entry, where a new file costs an inode too, on every trial.
"""

from __future__ import annotations

import os
import uuid
from contextlib import suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path

RUNNER = "runner.owner"
"""In a study's log folder, the process that runs the study: the ``katuna run`` of it from its
start, else the last process that launched one of its trials. So a study with no trial running
tells whether something still runs it (``katuna show`` says ``interrupted`` when nothing does)."""


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), if readable."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def identity(pid: int) -> str:
    """``pid:start time``: unlike a bare pid, never the identity of a later process."""
    return _identity(pid, _stat(pid))


def _identity(pid: int, fields: list[str] | None) -> str:
    return str(pid) if fields is None else f"{pid}:{fields[19]}"


def alive(owner: str) -> bool:
    """Whether the process with this identity still runs (a zombie, dead but not yet reaped by
    its parent, does not)."""
    pid = pid_of(owner)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _stat(pid)
    return _identity(pid, fields) == owner and (fields is None or fields[0] != "Z")


def suspended(owner: str) -> bool:
    """Whether the process with this identity lives, stopped (Ctrl-Z, SIGSTOP) or traced: it
    acts on nothing until it runs again."""
    pid = pid_of(owner)
    fields = _stat(pid)
    return fields is not None and fields[0] in ("T", "t") and _identity(pid, fields) == owner


def pid_of(owner: str) -> int:
    """The pid an identity names."""
    return int(owner.split(":")[0])


@cache
def pid_space() -> str:
    """Where a pid names one process: this boot of this host, and this process's pid namespace
    (another container's or pod's pids are others); empty where ``/proc`` does not tell."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}.{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def taker() -> str:
    """A name for this process's hold on something shared (an event taken from the queue):
    its pid space, its identity, and a part of its own, so two holds of one process differ."""
    return f"{pid_space()}/{identity(os.getpid())}/{uuid.uuid4().hex}"


def taker_ended(name: str) -> bool:
    """Whether the process a :func:`taker` name names has ended, as far as this process can
    tell: one of another pid space, or a name of another form, is not judged (False)."""
    space, _, rest = name.partition("/")
    owner, held, _ = rest.partition("/")
    return bool(held and space) and space == pid_space() and not alive(owner)


@dataclass(frozen=True)
class Runner:
    """This process, as a study's row names the process that claimed its run (``studies.runner``:
    a ``katuna run`` of it): another process on the database leaves the study alone while the
    process named there lives (:class:`functions.core.ports.RunnerClaims`)."""

    identity: str

    def other(self, claim: str | None) -> int | None:
        """The pid of the live process other than this one that ``claim`` names, else None."""
        if claim is None or claim == self.identity or not alive(claim):
            return None
        return pid_of(claim)


def orphaned(owner_paths: list[Path]) -> bool:
    """Whether these attempts (at least one) are each claimed by a process that died: no process
    runs them any more. An attempt with no owner file is not known to be orphaned."""
    owners = []
    for path in owner_paths:
        try:
            owners.append(path.read_text())
        except FileNotFoundError:
            return False
    return bool(owners) and not any(alive(owner) for owner in owners)


class Owners:
    """This process's claims on attempts, in a log directory other processes may share."""

    def __init__(self, log_dir: Path) -> None:
        self._folder = log_dir / ".owners"
        self.identity = identity(os.getpid())
        self._file: Path | None = None

    def claim(self, owner_path: Path) -> None:
        """Name this process as the attempt's owner (replacing an earlier owner's claim)."""
        owner_path.unlink(missing_ok=True)
        try:
            os.link(self._identity_file(), owner_path)
        except FileNotFoundError:
            self._file = None
            os.link(self._identity_file(), owner_path)

    def claim_runner(self, runner_path: Path) -> None:
        """Name this process as the study's runner (:data:`RUNNER`), unless it is named already;
        where another process names itself at the same moment, its claim stands."""
        try:
            if runner_path.read_text() == self.identity:
                return
        except FileNotFoundError:
            pass
        with suppress(FileExistsError):
            self.claim(runner_path)

    def owned_elsewhere(self, owner_path: Path) -> bool:
        """Whether another process that still lives claims the attempt."""
        try:
            owner = owner_path.read_text()
        except FileNotFoundError:
            return False
        return owner != self.identity and alive(owner)

    def abandoned(self, owner_path: Path) -> bool:
        """Whether another process claimed the attempt and died since (its processes may live on)."""
        try:
            owner = owner_path.read_text()
        except FileNotFoundError:
            return False
        return owner != self.identity and not alive(owner)

    def release(self) -> None:
        """Remove this process's identity file; the claims linked to it keep their content."""
        if self._file is not None:
            self._file.unlink(missing_ok=True)

    def _identity_file(self) -> Path:
        """The file every claim of this process links to, made at first use."""
        if self._file is None:
            self._folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = self._folder / self.identity.replace(":", "-")
            path.write_text(self.identity)
            self._file = path
        return self._file
