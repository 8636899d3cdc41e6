"""A Python that has imported what a kind of katuna command imports before it does anything (its
:data:`PRELOADS`: what ``katuna serve`` imports before it starts gunicorn, the Kubernetes client
too for one that reaches a cluster; what ``python -m infra.provision`` imports, both clouds' SDKs
included), and starts each such command it is asked
for in a fork of itself: a process of the command's own (the ``katuna`` console script run as
``__main__``, or ``python -m MODULE``'s module; its own ``sys.argv``, environment, working
directory, standard streams and exit status), without each paying again the 0.4 s or so of CPU
that importing katuna's web app, Flask, Optuna and SQLAlchemy takes, or the half second of the
cloud SDKs. Several commands may run at once (services side by side); the test signals and waits
for each by its process id.

Requests come on standard input, a JSON line each: ``{"argv": [katuna, *args], "cwd": folder,
"env": {...}, "stdout": file, "stderr": file}`` (the two files may be one, as with
``stderr=subprocess.STDOUT``; ``argv`` may be ``[python, "-m", module, *args]``); the standard
input is ``/dev/null``. Once it has imported what it preloads, it says ``{"ready": true}`` on
standard output; for each request it answers there ``{"started": pid}`` as
the command starts and, whenever one ends, ``{"ended": pid, "returncode": ...}`` (negative: the
signal that ended it). It forks from this one thread only, before any other starts; its own
``SIGCHLD`` handler and wake-up pipe are undone in each child before the command runs.

What the warm Python holds is frozen out of the garbage collector's sight before each fork
(:func:`gc.freeze`, as Python's documentation advises before a fork): a child's collections,
the last one as it ends included, would otherwise walk all the imported modules' objects,
writing to each, and so copy every page of them (two thirds of the CPU of a GKE command of
the provisioning script).
The objects a command makes are collected as in a process started afresh.

What a command does as it is imported (a notice its SDK prints, a variable read then) happened
once, in the warm Python: a test of that starts the command afresh, with :mod:`subprocess`.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import os
import queue
import runpy
import select
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from subprocess import CompletedProcess

from child_signals import interruptible as interruptible_child


def _preload_katuna() -> None:
    """What every ``katuna serve`` imports before its workers start, and what ``katuna run``
    imports to run a study, and nothing more: nothing that reads the environment, a terminal or
    the working directory as it is imported (the CLI's consoles, made as :mod:`functions.cli`
    is imported, take ``COLUMNS`` then), so that each command still sees its own."""
    import functions.adapters.log_lines  # noqa: F401
    import functions.adapters.process_tree  # noqa: F401
    import functions.adapters.web.guard  # noqa: F401
    import functions.adapters.web.peers  # noqa: F401
    import functions.adapters.web.server  # noqa: F401
    import functions.embedded  # noqa: F401
    import functions.runtime  # noqa: F401

    assert "functions.cli_common" not in sys.modules, "the CLI's consoles would keep this process's COLUMNS"


def _preload_kubernetes() -> None:
    """What a ``katuna serve`` reaching a cluster imports besides (:func:`_preload_katuna`):
    the Kubernetes client, its API classes built as ``katuna serve --executor kubernetes`` builds
    them before it forks (:func:`functions.adapters.kubernetes_client.load_apis`), and katuna's
    adapters of it, which its workers import. The client reads one variable as it is imported,
    ``KUBECONFIG``, which each command reads again from its own environment (:func:`_become`)."""
    _preload_katuna()
    from functions.adapters.kubernetes_client import load_apis

    load_apis()
    for module in ("functions.cluster_ports", "functions.adapters.kubernetes_resources",
                   "functions.adapters.kubernetes_executor"):
        importlib.import_module(module)


def _read_kubeconfig_variable() -> None:
    """Where the Kubernetes client, if imported, looks for a kubeconfig by default: the
    ``KUBECONFIG`` of this command's environment, as the client reads it when a command imports
    it afresh, not the warm Python's."""
    for name in ("kubernetes.config.kube_config", "kubernetes.config"):
        if name in sys.modules:
            sys.modules[name].KUBE_CONFIG_DEFAULT_LOCATION = os.environ.get("KUBECONFIG", "~/.kube/config")


SCRIPT = "infra.provision"
"""The provisioning script, run as ``python -m infra.provision``."""


def _preload_provision() -> None:
    """What ``python -m infra.provision`` imports, and the SDK each cloud's commands import as
    they run (:mod:`infra.gke` imports google-cloud-container as the script does, its support
    notices silenced): the script itself is taken out again, to run as ``__main__`` in each
    command as ``-m`` runs it (:mod:`runpy` warns of a module it finds already imported).

    The models of the AWS services the EKS commands call are read here, once, into botocore's
    loaders' shared cache (:mod:`botocore_models`): each command's session read them again from
    botocore's files (EC2's is megabytes of JSON), half a second of CPU. A command still makes its
    own session and clients, reading its own environment and configuration files."""
    import botocore_models  # noqa: F401
    from boto3.session import Session

    import infra.eks  # noqa: F401
    import infra.gke  # noqa: F401

    session = Session(region_name="us-east-1", aws_access_key_id="none", aws_secret_access_key="none")
    for service in ("eks", "autoscaling", "ec2"):
        session.client(service)

    importlib.import_module(SCRIPT)
    package, name = SCRIPT.rsplit(".", 1)
    del sys.modules[SCRIPT]
    delattr(sys.modules[package], name)


PRELOADS = {"katuna": _preload_katuna, "kubernetes": _preload_kubernetes, "provision": _preload_provision}
"""The kinds of warm Python, by name: what each imports once."""

AT_ONCE = {"provision"}
"""The kinds whose commands end without the teardown of the modules (:func:`_ended`): the
provisioning script's, which open no file or database of their own for it to close; ``katuna``'s
commands (services, study runs and their SQLite databases) end as the interpreter ends them."""


def _become(request: dict) -> None:
    """In the forked child: be the process ``subprocess.Popen(argv, cwd=..., env=...,
    stdin=DEVNULL, stdout=..., stderr=...)`` would start, then run the console script (or, for
    ``python -m MODULE``, the module as ``__main__``, the working directory first on its path).
    A ``stdout`` of None: a standard output closed, which a Python started so has no
    ``sys.stdout`` for (None)."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    _read_kubeconfig_variable()
    if request.get("interruptible"):
        signal.signal(signal.SIGINT, signal.default_int_handler)
    opened = os.open(os.devnull, os.O_RDONLY)
    os.dup2(opened, 0)
    os.close(opened)
    if request["stdout"] is None:
        os.close(1)
        sys.stdout = sys.__stdout__ = None  # type: ignore[misc]
    for fd, path in ((1, request["stdout"]), (2, request.get("stderr") or request["stdout"])):
        if path is not None:
            opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(opened, fd)
            os.close(opened)
    argv = list(request["argv"])
    if argv[1:2] == ["-m"]:
        sys.argv = argv[1:2] + argv[3:]
        sys.path[0] = os.getcwd()
        runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
        return
    sys.argv = argv
    sys.path[0] = str(Path(argv[0]).resolve().parent)
    runpy.run_path(argv[0], run_name="__main__")


def _answer(value: dict) -> None:
    os.write(1, (json.dumps(value) + "\n").encode())


def _reap() -> None:
    """Answer for each child that has ended."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _answer({"ended": pid, "returncode": os.waitstatus_to_exitcode(status)})


def _serve() -> dict | None:
    """Start a child for each request until standard input ends (None); in a child, its request."""
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_write)
    pending = b""
    while True:
        readable = select.select([0, wake_read], [], [])[0]
        if wake_read in readable:
            while len(os.read(wake_read, 512)) == 512:
                pass
            _reap()
        if 0 not in readable:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            return None
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            gc.freeze()
            pid = os.fork()
            if pid == 0:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.close(wake_read)
                os.close(wake_write)
                return request
            _answer({"started": pid})


def _ended(code: object) -> None:
    """End the command that ``sys.exit(code)`` ended (or that returned: ``None``) as the
    interpreter ends it, without tearing down the modules the warm Python imported: that
    teardown writes to each object they hold, and so copies every page of them in each child
    (0.03 s of CPU of a command of the provisioning script). With no other thread left, its
    ``atexit`` functions run and its standard streams flushed, a command ends with the status
    ``code`` gives. One ended otherwise (a message for ``sys.exit``, a thread still running, a
    stream that cannot be flushed) ends as the interpreter ends it, teardown and all."""
    code = 0 if code is None else code
    if not isinstance(code, int) or not 0 <= code <= 255 or threading.active_count() > 1:
        raise SystemExit(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        raise SystemExit(code) from None
    os._exit(code)


def main() -> None:
    kind = sys.argv[1]
    PRELOADS[kind]()
    _answer({"ready": True})
    request = _serve()
    if request is None:
        return
    if kind not in AT_ONCE:
        _become(request)
        return
    try:
        _become(request)
    except SystemExit as exc:
        code = exc.code
    else:
        code = None
    _ended(code)


class WarmProcess:
    """A command the warm Python started, as much of :class:`subprocess.Popen` as the tests
    use: its ``pid``, ``returncode``, :meth:`poll`, :meth:`wait` and signals."""

    def __init__(self, pid: int, ended: threading.Condition) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._ended = ended

    def poll(self) -> int | None:
        with self._ended:
            return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        with self._ended:
            if not self._ended.wait_for(lambda: self.returncode is not None, timeout):
                raise subprocess.TimeoutExpired(f"katuna (pid {self.pid})", timeout or 0)
            assert self.returncode is not None
            return self.returncode

    def send_signal(self, sig: int) -> None:
        """Signal the command unless it is known to have ended (its pid may be another's by then);
        one that ended and was reaped since that was looked at is left alone too, as
        ``subprocess.Popen`` leaves it."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


STARTUP = ("PYTHONIOENCODING", "PYTHONUTF8", "PYTHONHASHSEED", "PYTHONPATH", "PYTHONSAFEPATH", "PYTHONWARNINGS",
           "PYTHONDONTWRITEBYTECODE", "LANG", "LC_ALL", "LC_CTYPE")
"""The variables a Python interpreter reads as it starts (its standard streams' encoding, its
hashing, its path, its warnings, the locale), whose effect a forked child keeps from the warm
Python whatever its own environment says."""


READY = 600
"""Seconds the first command waits for the warm Python to import what it preloads (several
seconds of CPU, the Kubernetes client's included) before its own minute to start: a machine as
loaded as a test run makes it may take minutes over them."""


class WarmKatuna:
    """This module run as a process of its own with the imports of one of :data:`PRELOADS`,
    started for the first command asked of it (:func:`warm`) and kept for the rest of the test
    run (it ends once the test run closes its standard input)."""

    def __init__(self, preload: str = "katuna") -> None:
        self._startup = {name: os.environ.get(name) for name in STARTUP}
        self._process = subprocess.Popen([sys.executable, __file__, preload], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, bufsize=0)
        self._asking = threading.Lock()
        self._started: queue.Queue[WarmProcess | None] = queue.Queue()
        self._ended = threading.Condition()
        self._running: dict[int, WarmProcess] = {}
        self._ready = threading.Event()
        threading.Thread(target=self._read, name="warm-katuna", daemon=True).start()
        atexit.register(self.close)

    def _read(self) -> None:
        """Hand each started command to the request that asked for it, and give each that ended
        its exit status (a pid is only ever one running command's: a reused one is a new start)."""
        assert self._process.stdout is not None
        for line in self._process.stdout:
            answer = json.loads(line)
            with self._ended:
                if "ready" in answer:
                    self._ready.set()
                elif "started" in answer:
                    started = self._running[answer["started"]] = WarmProcess(answer["started"], self._ended)
                    self._started.put(started)
                else:
                    self._running.pop(answer["ended"]).returncode = answer["returncode"]
                    self._ended.notify_all()
        self._ready.set()
        self._started.put(None)

    def close(self) -> None:
        """End the warm Python (commands still running are left running, as a subprocess a
        test left is), once the test run ends: waited for, so that its CPU is the test run's."""
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=60)

    def start(self, argv: list[str], cwd: Path, env: dict[str, str], stdout: Path | None,
              stderr: Path | None = None, interruptible: bool = False) -> WarmProcess | subprocess.Popen[bytes]:
        """``argv`` (the ``katuna`` script and its arguments, or ``[python, "-m", module, *args]``)
        started in ``cwd`` with ``env``, its standard output appended to ``stdout``, its standard
        error to ``stderr`` (by default to ``stdout`` too): forked from the warm Python, or, where
        ``env`` gives a variable an interpreter reads as it starts another value than the warm
        Python's (:data:`STARTUP`), started afresh, as a fork would keep what the warm Python made
        of it. ``interruptible``: SIGINT raises :class:`KeyboardInterrupt` in the command, as in
        a Python started with SIGINT at its default (``preexec_fn=child_signals.interruptible``),
        even where the tests, and so the warm Python, run with it ignored. A ``stdout`` of None:
        the command starts with its standard output closed (``stderr`` then given)."""
        if any(env.get(name) != value for name, value in self._startup.items()):
            return _afresh(argv, cwd, env, stdout, stderr or stdout, interruptible)
        assert self._process.stdin is not None
        if not self._ready.wait(READY):
            raise RuntimeError(f"the warm Python did not import what it preloads within {READY} s")
        with self._asking:
            self._process.stdin.write(json.dumps({"argv": argv, "cwd": str(cwd), "env": env,
                                                  "stdout": stdout and str(stdout), "stderr": str(stderr or stdout),
                                                  "interruptible": interruptible}).encode() + b"\n")
            started = self._started.get(timeout=60)
        assert started is not None, "the warm Python ended"
        return started


def _afresh(argv: list[str], cwd: Path, env: dict[str, str], stdout: Path | None, stderr: Path | None,
            interruptible: bool) -> subprocess.Popen[bytes]:
    """``argv`` started afresh as :meth:`WarmKatuna.start` forks it (a ``stdout`` of None: closed)."""
    def child() -> None:
        if interruptible:
            interruptible_child()
        if stdout is None:
            os.close(1)

    assert stderr is not None, "a command without a standard output writes its errors to a file"
    with open(stdout or os.devnull, "ab") as out, open(stderr, "ab") as err:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                preexec_fn=child if interruptible or stdout is None else None)


_warm: dict[str, WarmKatuna] = {}
_warming = threading.Lock()


def warm(preload: str) -> WarmKatuna:
    """The test run's warm Python of this kind (:data:`PRELOADS`), started at its first command."""
    with _warming:
        if preload not in _warm:
            _warm[preload] = WarmKatuna(preload)
        return _warm[preload]


def run(warm: WarmKatuna, argv: list[str], cwd: Path, env: dict[str, str], timeout: float,
        stdout: Path | None = None) -> CompletedProcess[str]:
    """``argv`` run as ``subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
    timeout=timeout, stdin=DEVNULL)`` runs it: killed, and :class:`subprocess.TimeoutExpired`
    raised, after ``timeout`` seconds. With ``stdout`` (a file such as ``/dev/full``), its
    standard output goes there instead, as ``stdout=open(stdout, "a")`` sends it."""
    with tempfile.TemporaryDirectory(prefix="katuna-output-") as folder:
        out, err = stdout or Path(folder, "stdout"), Path(folder, "stderr")
        process = warm.start(argv, cwd, env, out, err)
        try:
            returncode = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise subprocess.TimeoutExpired(argv, timeout) from None
        return CompletedProcess(argv, returncode, out.read_text() if stdout is None and out.exists() else "",
                                err.read_text() if err.exists() else "")


if __name__ == "__main__":
    main()
