"""``katuna serve``: gunicorn running the app, each worker with its own runtime.

The workers count the events they handle in ``PROMETHEUS_MULTIPROC_DIR``, so that a scrape of
any one reports them all (:mod:`functions.adapters.prometheus`): the directory named there,
emptied of an earlier run's counts, or else a private one made for this run and removed after
(or, if the run was killed before it could, by the next ``katuna serve``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from wsgiref.types import WSGIApplication

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from functions.adapters.web import access_log
from functions.adapters.web.worker import Worker
from functions.core.errors import InvalidSetting

STOP_GRACE = 30
"""Seconds the arbiter gives a stopping worker before killing it (gunicorn's ``graceful_timeout``,
its default, which the image keeps): the worker's close may first wait out
:data:`functions.service_events.BROKER_STOP_WAIT` for a broker thread held up (by a database another
process holds, or a loaded machine), then its trials' kill grace, and a worker killed part way
leaves its trials' ends unrecorded, each then counted as a lost attempt."""

METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's variable (:mod:`functions.adapters.prometheus`, which this module must not
import: the master would choose prometheus_client's mode before the variable is set)."""

METRICS_FILE = re.compile(r"(counter|histogram|summary|gauge_[a-z]+)_\d+\.db")
"""The files prometheus_client keeps a process's values in (``counter_<pid>.db``, ...)."""


PRIVATE_PREFIX = "katuna-metrics-"
"""The name of a private metrics directory in the temporary directory begins so."""

IN_USE = "in-use.lock"
"""A file in a private metrics directory that its ``katuna serve`` holds locked (the arbiter, and
the workers it forked with the descriptor) while it runs. The lock goes with the last of them,
however they end."""


def metrics_dir() -> tuple[Path, int | None]:
    """Set up the directory the workers keep their metrics in, before they start: the one
    ``PROMETHEUS_MULTIPROC_DIR`` names, emptied of an earlier run's counts, or a new private one
    (then with the descriptor that holds its :data:`IN_USE` lock: it is this run's to remove). A
    named directory holding other ``.db`` files (the database, say) is refused: prometheus_client
    reads every one as metrics, as is one another account may write in (:func:`metrics_dir_problem`)."""
    named = os.environ.get(METRICS_DIR)
    if named:
        folder = Path(named)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        problem = metrics_dir_problem(named)
        if problem is not None:
            raise InvalidSetting(problem)
        for stale in folder.glob("*.db"):
            stale.unlink()
        return folder, None
    remove_abandoned_metrics_dirs(Path(tempfile.gettempdir()))
    made = Path(tempfile.mkdtemp(prefix=PRIVATE_PREFIX))
    held = os.open(made / f".{IN_USE}", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(held, fcntl.LOCK_EX)
    os.rename(made / f".{IN_USE}", made / IN_USE)
    os.environ[METRICS_DIR] = str(made)
    return made, held


def metrics_dir_problem(named: str) -> str | None:
    """Why the workers may not keep their counts in ``named`` (``PROMETHEUS_MULTIPROC_DIR``), or
    None (None too where it does not exist): it holds other ``.db`` files, which prometheus_client
    would read as metrics, or another account owns it or may write in it (a folder made in
    ``/tmp`` by someone else, a team's folder, ``/tmp`` itself). Each worker opens
    ``<kind>_<pid>.db`` there, following a link, and writes its counts into whatever file that
    is, so such an account could plant links that have the service write into this user's files
    (or fail every event it handles, on a file too short for prometheus_client to read). Asked by
    ``katuna serve`` before it forks (:func:`metrics_dir`) and by a gunicorn worker started
    otherwise before it counts anything (:func:`functions.service_start.checked_settings`)."""
    folder = Path(named)
    try:
        found = folder.stat()
    except FileNotFoundError:
        return None
    if found.st_uid not in (os.geteuid(), 0):
        why = f"it belongs to another user (uid {found.st_uid})"
    elif found.st_mode & 0o022:
        why = f"other users may write in it (mode {found.st_mode & 0o7777:o})"
    else:
        others = sorted(f.name for f in folder.glob("*.db") if not METRICS_FILE.fullmatch(f.name))
        return (f"{METRICS_DIR}={named} holds other .db files ({', '.join(others)}), which prometheus_client would "
                "read as metrics: name a directory of its own") if others else None
    return (f"{METRICS_DIR}={named}: {why}, who could put links there through which the workers would write their "
            "counts into this user's files: name a directory of this user's own that only it may write (or unset "
            "the variable for a private one)")


def remove_abandoned_metrics_dirs(parent: Path) -> None:
    """Remove the private metrics directories of ``katuna serve`` runs that ended without
    removing their own (killed with SIGKILL, say: each keeps a few megabytes of counts): those
    whose :data:`IN_USE` lock nobody holds. The lock is taken before the file gets its name, so a
    run that is starting is never taken for one that ended; a directory holding anything but
    metrics files, or another user's, is left alone."""
    for folder in parent.glob(f"{PRIVATE_PREFIX}*"):
        with contextlib.suppress(OSError):
            _remove_if_abandoned(folder)


def _remove_if_abandoned(folder: Path) -> None:
    if folder.is_symlink() or folder.stat().st_uid != os.geteuid() or not (folder / IN_USE).is_file():
        return
    held = _locked(folder / IN_USE)
    if held is None:
        return
    try:
        if all(f.name == IN_USE or METRICS_FILE.fullmatch(f.name) for f in folder.iterdir()):
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        os.close(held)


def _locked(path: Path) -> int | None:
    """A descriptor of ``path`` holding its exclusive lock; None when another process holds it."""
    descriptor = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


def listen_problem(host: str, port: int, command: str = "katuna serve") -> str | None:
    """Why ``command`` could not listen on ``host:port`` (the port in use, an address that is
    not this machine's, a port the user may not take), or None. Asked before the server starts:
    gunicorn would otherwise retry for seconds and end with its own log lines, and
    optuna-dashboard's server with a traceback. The probe reuses addresses as gunicorn does, so
    a port whose last connections are closing counts as free."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror}"
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (f"port {port} is already in use on {host} (another {command}?): "
                        "stop what listens there, or choose another port with --port")
            return f"cannot listen on {bind_address(host, port)}: {exc.strerror}"
    return None


def bind_address(host: str, port: int) -> str:
    """``host:port`` as gunicorn's ``bind`` reads it: an IPv6 address in brackets (``[::1]:8080``),
    since gunicorn takes what follows the last colon of a bare one for the port."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Arbiter(Arbiter):
    """gunicorn's arbiter, which a hang-up stops as SIGTERM does, exiting 129 as ``katuna run``
    does: ``katuna serve`` runs in a terminal, whose SIGHUP says it is gone, where gunicorn's
    reload would start new workers, their trials killed to run again, and serve on unseen."""

    def handle_hup(self) -> None:
        self.halt("the terminal hung up (SIGHUP)", 128 + signal.SIGHUP)


class Server(BaseApplication):
    """gunicorn configured in code; the app is built in each worker, after the fork."""

    def __init__(self, build: Callable[[], WSGIApplication], host: str, port: int, workers: int,
                 threads: int, timeout: int) -> None:
        """``build`` makes the app a worker serves; it runs in each worker, after the fork. The
        workers are katuna's threaded ones (:mod:`.worker`): a worker's heartbeat never waits on
        a client, and every client connection is bounded, so no client can get a worker, and
        the trials it owns, killed. No control socket: its one default path in the home
        directory would be shared by every ``katuna serve`` of the user, and nothing here uses it."""
        self.build = build
        self.metrics_dir, self._metrics_lock = metrics_dir()
        self.options = {"bind": bind_address(host, port), "workers": workers, "worker_class": Worker, "threads": threads,
                        "timeout": timeout, "keepalive": 5, "graceful_timeout": STOP_GRACE, "accesslog": "-",
                        "access_log_format": access_log.FORMAT,
                        "logger_class": access_log.AccessLogger,
                        "on_exit": self._on_exit, "control_socket_disable": True}
        super().__init__()

    def _on_exit(self, server: Any) -> None:
        """In the arbiter, once every worker is gone: remove the metrics directory made for this run."""
        if self._metrics_lock is not None:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
            os.close(self._metrics_lock)

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> WSGIApplication:
        return self.build()

    def run(self) -> None:
        """gunicorn's run, by :class:`_Arbiter`."""
        try:
            _Arbiter(self).run()
        except RuntimeError as exc:
            print(f"\nError: {exc}\n", file=sys.stderr, flush=True)
            sys.exit(1)
