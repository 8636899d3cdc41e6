"""What runs a pod's container on a stand-in kubelet: a local process, or a run on a simulated clock.

:class:`Processes` (the default) runs the container's command on this machine: there are no
images, and the image's Python (``python``, ``python3``, as in the Python images Katib's SDK
uses) is the interpreter running the tests (:func:`image_interpreter`), with the packages it has.

:class:`SimulatedContainers` runs nothing: a ``behaviour`` given by whoever drives the
simulated cluster says, from the pod, how long its container runs, what it prints and how it
exits, and what it does on SIGTERM; the output reaches the log when the run ends (its timed
pieces, at their moments), and a container killed before that leaves only the pieces printed by then.

A container is stopped as a container runtime stops it (containerd's ``StopContainer``, as the
kubelet's ``killContainer`` asks): SIGTERM to its main process alone (:func:`terminate`), then,
once the grace period is over, SIGKILL to every process in it (:func:`kill`). Its exit code is
the runtime's: a process ended by a signal exits ``128 +`` the signal (:func:`exit_code`: 143
for SIGTERM, 137 for SIGKILL). A container's main process is its PID 1 on a node, which the
kernel gives only the signals it handles: one that does not handle SIGTERM runs on there until
its grace period is over. Here it is an ordinary process, which SIGTERM ends at once (as a
command run under a shell, an init such as ``tini``, or katuna's metrics-file wrapper is ended).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import site
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from itertools import takewhile
from pathlib import Path
from typing import NamedTuple

from kube_standin.clock import SimulatedClock
from kube_standin.environment import expand

CHECKOUT = Path(__file__).resolve().parents[2]
"""The checkout whose tests run: katuna's image holds its code."""
KILLED = -9
"""A killed process's return code (SIGKILL), as :class:`subprocess.Popen` reports it."""


class Processes:
    """Containers as local processes whose output is the container's log."""

    def __init__(self, directory: Path) -> None:
        self.image_bin = image_interpreter(directory / "bin")

    def start(self, pod: dict, log: Path, env: dict[str, str], container: dict | None = None,
              mounts: Mapping[str, Path] | None = None) -> Container:
        """Run the pod's ``container`` (its first, unless given: one of its init containers) with
        its environment ``env``, as its kubelet made it. A local process has no mount namespace:
        each path of ``mounts`` (a claim's folder, by the path the container mounts it at) is
        replaced by its folder where it opens an argument or a variable's value, or follows ``=``
        in one, and in the ``workingDir``, the process's folder when it names a mount."""
        container = container or pod["spec"]["containers"][0]
        path = f"{self.image_bin}{os.pathsep}{os.environ.get('PATH', '')}"
        at = dict(mounts or {})
        folder = container.get("workingDir")
        cwd = mounted(folder, at) if folder and mounted(folder, at) != folder else None
        with log.open("w") as out:
            process = Container([mounted(expand(arg, env), at) for arg in _argv(container)], stdout=out,
                                stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True,
                                env={**os.environ, "PATH": path, **{k: mounted(v, at) for k, v in env.items()}})
        threading.Thread(target=process.note_exit, daemon=True).start()
        return process


class Container(subprocess.Popen):
    """A container's main process, which notes when it exited: a node's runtime knows that
    moment, however late the stand-in's kubelet pass comes to look on a busy machine."""

    exited_at: float | None = None
    """``time.monotonic()`` (the real clock's) at its exit, once a waiting thread saw it."""

    def note_exit(self) -> None:
        self.wait()
        self.exited_at = time.monotonic()


def mounted(text: str, mounts: Mapping[str, Path]) -> str:
    """``text`` with each mount path replaced by its folder where it opens it, or follows ``=``,
    alone or followed by ``/``."""
    for mount, folder in mounts.items():
        path = re.escape(mount.rstrip("/"))
        text = re.sub(rf"(?:(?<=^)|(?<==)){path}(?=/|$)", lambda _, f=folder: str(f), text)
    return text


def terminate(process: subprocess.Popen | SimulatedProcess) -> None:
    """Send SIGTERM to the container's main process (not to its other processes: the runtime
    signals the container's PID 1, which passes it on or not)."""
    if isinstance(process, subprocess.Popen):
        with contextlib.suppress(ProcessLookupError):
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
    else:
        process.terminate()


def exited(process: subprocess.Popen | SimulatedProcess) -> bool:
    """Whether the container's main process has exited, reaped or not: :meth:`Container.note_exit`'s
    thread, blocked in ``wait``, holds Popen's lock, so ``poll()`` says None for a process already
    gone until that thread has taken its status."""
    if process.poll() is not None:
        return True
    if not isinstance(process, subprocess.Popen):
        return False
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def exit_code(returncode: int) -> int:
    """The exit code the runtime reports of a process that ended with ``returncode`` (as
    :class:`subprocess.Popen` gives it: minus the signal that ended it)."""
    return 128 - returncode if returncode < 0 else returncode


def kill(process: subprocess.Popen | SimulatedProcess) -> None:
    """Kill the container: every process in it, as the end of its PID namespace does on a node
    (a local container is a session of its own), and wait for its main process."""
    if isinstance(process, subprocess.Popen):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.kill()
    process.wait()


def _argv(container: dict) -> list[str]:
    """The container's command and args; a container that names neither runs its image's own
    entrypoint, which the stand-in models as a server that runs until stopped (an MPI worker's sshd)."""
    argv = [*container.get("command", []), *container.get("args", [])]
    return argv or [sys.executable, "-c", "import time; time.sleep(86400)"]


class Run(NamedTuple):
    """How a simulated container runs: for ``seconds``, printing each of ``pieces`` (seconds
    after its start, text) at its moment and ``output`` at its end, exiting with ``code``.
    Sent SIGTERM, it ends ``term_seconds`` later (None: it ignores SIGTERM and runs on until its
    end or SIGKILL), printing ``term_output`` then and exiting with ``term_code`` (by default
    as SIGTERM ends a process that does not handle it, at once, 143)."""

    seconds: float
    output: str = ""
    code: int = 0
    pieces: tuple[tuple[float, str], ...] = ()
    term_seconds: float | None = 0.0
    term_output: str = ""
    term_code: int = 143


class SimulatedProcess:
    """A container's run on the simulated clock, with the parts of :class:`subprocess.Popen`
    the kubelet uses."""

    def __init__(self, clock: SimulatedClock, run: Run, log: Path) -> None:
        self.clock, self.run, self.log = clock, run, log
        self.started_at = clock.monotonic()
        self.ends_at = self.started_at + run.seconds
        self.returncode: int | None = None
        self.printed = 0
        self.code, self.output = run.code, run.output
        """How it exits, and what it prints then: its run's end's, or, sent SIGTERM, its handler's."""
        log.write_text("")
        clock.wake_at(self.ends_at)
        for after, _ in run.pieces:
            clock.wake_at(self.started_at + after)

    def poll(self) -> int | None:
        if self.returncode is None:
            now = min(self.clock.monotonic(), self.ends_at)
            due = [text for after, text in takewhile(lambda p: self.started_at + p[0] <= now, self.run.pieces[self.printed:])]
            self.printed += len(due)
            ended = self.clock.monotonic() >= self.ends_at
            with self.log.open("a") as out:
                out.write("".join(due) + (self.output if ended else ""))
            self.returncode = self.code if ended else None
        return self.returncode

    def terminate(self) -> None:
        """SIGTERM: the run ends as :attr:`Run.term_seconds` says, unless it ends earlier on its own."""
        if self.poll() is not None or self.run.term_seconds is None:
            return
        ends_at = self.clock.monotonic() + self.run.term_seconds
        if ends_at < self.ends_at:
            self.ends_at, self.code, self.output = ends_at, self.run.term_code, self.run.term_output
            self.clock.wake_at(ends_at)

    @property
    def exited_at(self) -> float | None:
        """The moment it ended on its own (None while it runs, or once killed)."""
        return self.ends_at if self.poll() is not None and self.returncode != KILLED else None

    def kill(self) -> None:
        if self.poll() is None:
            self.returncode = KILLED

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode


class SimulatedContainers:
    """Containers that run on ``clock`` as ``behaviour(pod)`` says; a pod's init containers as
    ``init(container)`` says (by default each exits 0 at once, printing nothing)."""

    def __init__(self, clock: SimulatedClock, behaviour: Callable[[dict], Run],
                 init: Callable[[dict], Run] = lambda container: Run(0)) -> None:
        self.clock = clock
        self.behaviour = behaviour
        self.init = init

    def start(self, pod: dict, log: Path, env: dict[str, str], container: dict | None = None,
              mounts: Mapping[str, Path] | None = None) -> SimulatedProcess:
        return SimulatedProcess(self.clock, self.behaviour(pod) if container is None else self.init(container), log)


def image_interpreter(directory: Path) -> Path:
    """A directory whose ``python`` and ``python3`` are this interpreter, as a virtual
    environment (its ``pyvenv.cfg`` beside the directory) whose packages are the code of the
    checkout under test, then those this interpreter has: what a container's command finds first
    on its ``PATH`` in place of the image's Python. So katuna's image runs the code under test,
    with ``python -I`` too, which reads no ``PYTHONPATH``, even where this interpreter's own
    katuna is another checkout's."""
    directory.mkdir(parents=True, exist_ok=True)
    base = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    (directory.parent / "pyvenv.cfg").write_text(f"home = {base.parent}\ninclude-system-site-packages = false\n"
                                                 f"version = {version}.{sys.version_info.micro}\n")
    packages = directory.parent / "lib" / f"python{version}" / "site-packages"
    packages.mkdir(parents=True, exist_ok=True)
    (packages / "under-test.pth").write_text("\n".join([str(CHECKOUT), *site.getsitepackages()]) + "\n")
    for name in ("python", "python3"):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
        (directory / name).symlink_to(base)
    return directory


def exec_refusal(container: dict, exc: OSError) -> str:
    """runc's words for a container whose command it could not execute (``exc``, as starting its
    process here met it: not found on its ``PATH``, not executable)."""
    argv = _argv(container)
    why = "executable file not found in $PATH" if isinstance(exc, FileNotFoundError) else exc.strerror or str(exc)
    return f'runc create failed: unable to start container process: exec: "{argv[0] if argv else ""}": {why}'
