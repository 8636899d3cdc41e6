"""A Python that has imported the libraries the benchmark scripts import, and runs each script it
is asked for in a fork of itself: a process of the script's own (its ``__main__``, ``sys.argv``,
working directory, standard streams and exit status), without each paying again the second or so
of CPU that importing Optuna, NumPy, matplotlib and katuna takes.

Requests come on standard input, a JSON line each: ``{"argv": [script, *args], "cwd": folder,
"stdout": file, "stderr": file}``. For each, it answers on standard output ``{"pid": ...}`` as the
script starts and ``{"returncode": ...}`` (negative: the signal that ended it) once it has ended.
It forks from this one thread only, before any other starts."""

from __future__ import annotations

import json
import os
import runpy
import select
import signal
import subprocess
import sys
from pathlib import Path


def _preload() -> None:
    """What most benchmark scripts import first, imported once here: NumPy on one BLAS thread,
    as katuna's own processes load it (a BLAS thread pool is not carried over by a fork), and
    matplotlib off-screen, as benchmarks/report.py sets it before its first figure."""
    from functions.blas_threads import load_numpy_with_one_blas_thread

    load_numpy_with_one_blas_thread()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import optuna  # noqa: F401

    import functions.adapters.web  # noqa: F401
    import functions.embedded  # noqa: F401
    import functions.runtime  # noqa: F401


def _become(request: dict) -> None:
    """In the forked child: the script run as ``python SCRIPT ARGS...`` runs it, then the exit
    its end asks for (an exception is printed and exits 1, as at Python's top level)."""
    script = request["argv"][0]
    os.chdir(request["cwd"])
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        opened = os.open(path, flags, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the script's standard input, for as long as it runs
    sys.argv = list(request["argv"])
    sys.path[0] = str(Path(script).resolve().parent)
    runpy.run_path(script, run_name="__main__")
    sys.exit(0)


def _answer(value: dict) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def main() -> None:
    _preload()
    requests = os.fdopen(0, "r", closefd=False)
    while line := requests.readline():
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            requests.close()
            _become(request)
        _answer({"pid": pid})
        status = os.waitpid(pid, 0)[1]
        _answer({"returncode": os.waitstatus_to_exitcode(status)})


class WarmPython:
    """This module run as a process of its own, for a test module's scripts; their output goes
    through files in ``folder`` (which nothing else uses)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._process = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         bufsize=0)

    def _answer(self) -> dict:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        assert line, "the warm Python ended"
        return json.loads(line)

    def run(self, argv: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
        """``python *argv`` run in ``cwd`` as :func:`subprocess.run` with ``capture_output`` runs
        it; the script is killed, and :class:`subprocess.TimeoutExpired` raised, after ``timeout``
        seconds."""
        assert self._process.stdin is not None and self._process.stdout is not None
        out, err = self._folder / "stdout", self._folder / "stderr"
        self._process.stdin.write(json.dumps({"argv": [str(arg) for arg in argv], "cwd": str(cwd),
                                              "stdout": str(out), "stderr": str(err)}).encode() + b"\n")
        pid = self._answer()["pid"]
        if not select.select([self._process.stdout], [], [], timeout)[0]:
            os.kill(pid, signal.SIGKILL)
            self._answer()
            raise subprocess.TimeoutExpired(argv, timeout)
        returncode = self._answer()["returncode"]
        try:
            return subprocess.CompletedProcess(argv, returncode, out.read_text(), err.read_text())
        finally:
            out.unlink()
            err.unlink()

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=60)


if __name__ == "__main__":
    main()
