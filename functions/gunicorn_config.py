"""gunicorn's settings for katuna's service: ``gunicorn -c python:functions.gunicorn_config ...
"functions.runtime:from_environment()"``, as the image runs it.

gunicorn's master process holds the service's whole environment (``KATUNA_API_TOKEN``, cloud
credentials) and a local trial runs as the same user, who may read ``/proc/<pid>/environ`` of
any of their own processes that is dumpable. :func:`on_starting` makes the master not dumpable
before it forks any worker (``katuna serve``'s master does the same itself; every worker hides
itself as it builds its executor). A worker whose master is still open to its trials refuses
to run them (:func:`master_problem`, asked by :func:`functions.runtime.from_environment`).

The control socket is off too: gunicorn would otherwise make one at a path in the home
directory shared by every gunicorn of the user, and nothing here uses it. Access lines are
``katuna serve``'s (:mod:`functions.adapters.web.access_log`): no query string, Basic auth user
name or referrer, where a token sent the wrong way would be, and no control character a client
sent, which could forge a line. Loading this module loads NumPy with one BLAS thread
(:mod:`functions.blas_threads`), before anything else here does, and the workers inherit it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from functions.blas_threads import load_numpy_with_one_blas_thread

load_numpy_with_one_blas_thread()  # gunicorn's master loads this module first; what follows loads NumPy

from functions.adapters import log_lines, process_tree  # noqa: E402
from functions.adapters.web import access_log  # noqa: E402
from functions.adapters.web.server import METRICS_DIR  # noqa: E402
from functions.core.errors import InvalidSetting  # noqa: E402
from functions.settings import Settings  # noqa: E402

CONFIG = "-c python:functions.gunicorn_config"
"""The gunicorn option that loads this module."""

control_socket_disable = True
"""gunicorn's ``--no-control-socket``."""

access_log_format = access_log.FORMAT
"""gunicorn's ``--access-logformat``."""

logger_class = access_log.AccessLogger
"""gunicorn's ``--logger-class``."""

keepalive = 120
"""gunicorn's ``--keep-alive``: seconds a connection stays open, idle, for its client's next request.

Longer than the 90 s for which Knative's queue-proxy keeps an idle connection to the container
(its transport, knative.dev/pkg ``network/transports.go``, is a clone of Go's
``http.DefaultTransport``, whose ``IdleConnTimeout`` is 90 s), so that the proxy always closes an
idle connection first. With gunicorn's 2 s, gunicorn closed connections the proxy still held:
a request the proxy sent on one as gunicorn closed it failed, and Go's transport does not send a
POST (every event) again, so the broker got ``502``. An idle connection holds no thread (it
waits in the worker's poller, and counts against ``worker_connections``, 1,000); queue-proxy
keeps at most ``containerConcurrency`` (8) of them. A connection silent part way through its
request is closed sooner, by its ``KATUNA_CLIENT_TIMEOUT`` (:class:`functions.adapters.web.worker.Worker`)."""


def on_starting(server: Any) -> None:
    """gunicorn's hook, in the master before it binds or forks: hide the master's environment
    and memory from the trials its workers will start, and set the log format (the workers
    inherit it) for katuna's lines and gunicorn's own."""
    process_tree.hide_from_trials()
    configure_logging()
    server.log.setup(server.cfg)
    if (problem := metrics_problem(server.cfg.workers, os.environ)) is not None:
        server.log.warning("%s", problem)


def metrics_problem(workers: int, environ: Mapping[str, str]) -> str | None:
    """Why ``/metrics`` would count wrong under ``workers`` gunicorn workers, or None: each
    worker keeps its own counters, and without ``PROMETHEUS_MULTIPROC_DIR`` a scrape answered by
    one of them shows its counts alone, which go up and down from scrape to scrape as another
    answers (``katuna serve`` sets the variable; gunicorn started by hand does not)."""
    if workers <= 1 or environ.get(METRICS_DIR):
        return None
    return (f"{workers} workers without {METRICS_DIR}: each scrape of /metrics shows the counters of the one worker "
            f"that answers it; set {METRICS_DIR} to an empty directory of the metrics' own, or run one worker")


def configure_logging() -> None:
    """katuna's log lines as ``KATUNA_LOG_FORMAT`` and ``KATUNA_LOG_LEVEL`` say; their defaults
    where a setting is invalid, which the worker then refuses to start with, in a line so written."""
    try:
        settings = Settings.from_env()
    except InvalidSetting:
        settings = Settings()
    log_lines.configure(settings.log_format, settings.log_level)


TOKENS = ("KATUNA_API_TOKEN", "KATUNA_METRICS_TOKEN")
"""The service's secrets that live in its environment alone (a cloud credential a trial of the
same user could read from the user's files as well)."""


def ancestor_problem(runs_local_trials: bool, start: int) -> str | None:
    """Why the local trials this service would start could read its token from a process above
    ``start`` (its parent, the parent's parent, ...), or None: a shell that started the service
    without ``exec`` (``sh -c 'katuna serve ...; echo done'``, a container's entry script, a
    ``make`` target) keeps the environment it started with, token included, readable by every
    process of its user, as the service's own processes are not."""
    if not runs_local_trials:
        return None
    for pid in process_tree.ancestors(start):
        name = process_tree.holding(pid, TOKENS)
        if name is not None:
            return (f"process {pid} ({process_tree.command_name(pid) or 'gone'}), which started this service, holds "
                    f"{name} in its environment, which the local trials this service would start, running as the "
                    f"same user, could read from /proc/{pid}/environ: start the service with exec (a shell's "
                    "`exec katuna serve ...`, a container's exec form), so that no process above it keeps the token, "
                    "or run trials on Kubernetes (KATUNA_EXECUTOR=kubernetes)")
    return None


def master_problem(runs_local_trials: bool) -> str | None:
    """Why this gunicorn worker may not start trials here, or None: its master (the parent) is
    open to them, started without this module's settings; or a process above it holds the token
    (:func:`ancestor_problem`)."""
    master = os.getppid()
    if not runs_local_trials or not process_tree.open_to_trials(master):
        return ancestor_problem(runs_local_trials, master)
    return (f"gunicorn's master process (pid {master}) is readable by the local trials this service would start, "
            f"which run as the same user: its /proc/{master}/environ holds KATUNA_API_TOKEN and any cloud "
            f"credentials. Start gunicorn with {CONFIG} (as the image does), or run `katuna serve`")
