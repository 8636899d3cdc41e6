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


def master_problem(runs_local_trials: bool) -> str | None:
    """Why this gunicorn worker may not start trials here, or None: its master (the parent) is
    open to them, started without this module's settings."""
    master = os.getppid()
    if not runs_local_trials or not process_tree.open_to_trials(master):
        return None
    return (f"gunicorn's master process (pid {master}) is readable by the local trials this service would start, "
            f"which run as the same user: its /proc/{master}/environ holds KATUNA_API_TOKEN and any cloud "
            f"credentials. Start gunicorn with {CONFIG} (as the image does), or run `katuna serve`")
