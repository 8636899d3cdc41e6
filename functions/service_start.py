"""Whether a gunicorn worker may serve the settings its environment gives
(:func:`functions.runtime.from_environment`, the container's entry point), or stops, saying why.

A setting katuna cannot use, other hosts named in ``KATUNA_ALLOWED_HOSTS`` without
``KATUNA_API_TOKEN`` (it serves loopback Host names only without one), or a gunicorn master
that local trials could read the service's secrets from (started without
:mod:`functions.gunicorn_config`), stop the worker with one log line saying why and
:data:`APP_LOAD_ERROR`, no traceback: gunicorn then stops instead of restarting it, so a
container never serves writes to the network unauthenticated, runs with a setting it
misread, nor starts a trial that can read its token; so does a database on a network file
system the settings do not allow (:mod:`functions.adapters.sqlite_file_system`), and a
``PROMETHEUS_MULTIPROC_DIR`` another account may write in, or holding other ``.db`` files
(:func:`~functions.adapters.web.server.metrics_dir_problem`: ``katuna serve`` asks it before it
forks; a worker of gunicorn started otherwise, as the image or a person does, asks it here, before
it counts anything).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

from functions.adapters.sqlite_file_system import shared_holder
from functions.adapters.web import guard
from functions.adapters.web.server import METRICS_DIR, metrics_dir_problem
from functions.core.errors import InvalidSetting, StorageUnavailable
from functions.gunicorn_config import master_problem
from functions.settings import Settings

log = logging.getLogger("katuna.runtime")

APP_LOAD_ERROR = 4
"""The status a gunicorn worker exits with when its application cannot load: gunicorn then
stops, saying "App failed to load", instead of starting the worker again (``Arbiter.APP_LOAD_ERROR``)."""


def checked_settings() -> Settings:
    """The settings of the environment, once nothing in them stops the worker (see above)."""
    try:
        settings = Settings.from_env()
    except InvalidSetting as exc:
        _refuse(str(exc))
    problem = (guard.exposure_problem(settings.allowed_hosts, settings.api_token)
               or master_problem(runs_local_trials=not settings.runs_jobs)
               or (metrics_dir_problem(named) if (named := os.environ.get(METRICS_DIR)) else None))
    if problem:
        _refuse(problem)
    try:
        shared_holder(settings.db, settings.network_rule(service=True))
    except StorageUnavailable as exc:
        _refuse(str(exc))
    return settings


def _refuse(problem: str) -> NoReturn:
    log.error("katuna cannot start: %s", problem)
    sys.exit(APP_LOAD_ERROR)
