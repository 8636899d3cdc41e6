"""The ``katuna`` commands that serve a database: the service (``serve``) and Optuna's dashboard.
What serves (the web app, gunicorn, optuna-dashboard) is imported as a command runs."""

from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path

import click

from functions.adapters.sqlite_file_system import network_warning
from functions.adapters.sqlite_store import SqliteStore
from functions.cli_common import (
    TuningCommand,
    console,
    db_option,
    existing_db,
    fail,
    opened_beside_logs,
    settings_for,
    warn,
    warn_if_root,
)
from functions.cli_help import ending
from functions.core.errors import StudyNotFound
from functions.core.file_systems import NetworkRule
from functions.core.history import WARNED_STUDIES, history_warning
from functions.core.history_cells import cells_warning
from functions.core.limits import Limits
from functions.core.records import RUNS_ON, WAITING
from functions.settings import Settings
from functions.terminal import markup


def _address(ctx: click.Context, param: click.Parameter, host: str) -> str:
    """The ``--host`` address without the brackets an IPv6 one may be written in, as in a URL
    (``[::1]`` is ``::1``): the form the socket calls take. An empty or blank one is no address
    (``--host "$HOST"`` with the variable unset; to the socket calls, an empty one is every
    address of the machine): a usage error naming the option."""
    address = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not address.strip():
        raise click.BadParameter(f"expected an address to listen on (127.0.0.1, ::1 or [::1], a host name), "
                                 f"got {host!r}")
    return address


@click.command(cls=TuningCommand, epilog=ending(
    ("katuna serve", "katuna serve --db runs.db --port 9000 --workers 4",
     "KATUNA_API_TOKEN=\"$(openssl rand -hex 16)\" katuna serve --host 0.0.0.0"),
    (("0", "stopped (Ctrl-C, SIGTERM)"),
     ("2", "bad input or setup, named in one line: a --host refused, a --port in use, an unusable database "
           "or trial-log folder, no Kubernetes configuration for --executor kubernetes, a bad KATUNA_* "
           "setting"))))
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, callback=_address, metavar="ADDRESS",
              help="Address to listen on (an IPv6 one as ::1 or [::1]).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), metavar="PORT",
              help="Port to listen on.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="gunicorn workers.")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="Requests each worker serves at once.")
@click.option("--executor", type=click.Choice(list(RUNS_ON)), default=None,
              help="Where trials run: processes here, or Jobs on Kubernetes (default: $KATUNA_EXECUTOR or local).")
def serve(db: str | None, host: str, port: int, workers: int, threads: int, executor: str | None) -> None:
    """Serve the HTTP API, the event functions and the dashboard (http://HOST:PORT/ui/, by
    default http://127.0.0.1:8080/ui/) with gunicorn.

    Without KATUNA_API_TOKEN it listens on loopback only, answers loopback Host names only, and
    takes requests only from this user's (or root's) connections, refusing others before
    reading them; another address, or KATUNA_ALLOWED_HOSTS, needs the token. A client has
    KATUNA_CLIENT_TIMEOUT seconds (15) to send its request.
    """
    from functions.adapters.log_lines import configure
    from functions.adapters.process_tree import hide_from_trials
    from functions.adapters.web.guard import exposure_problem
    from functions.adapters.web.peers import can_tell
    from functions.adapters.web.server import Server, listen_problem
    from functions.gunicorn_config import ancestor_problem
    from functions.runtime import service_app

    settings = settings_for(db)
    configure(settings.log_format, settings.log_level)
    problem = exposure_problem(settings.allowed_hosts, settings.api_token, bind=host) or listen_problem(host, port)
    if problem:
        fail(problem, 2)
    if executor:
        settings = settings.with_executor(executor)
    if settings.runs_jobs:
        from functions.adapters.kubernetes_client import configuration_problem, load_apis

        problem = configuration_problem(settings.k8s_api)
        if problem:
            fail(problem, 2)
        load_apis()
    if settings.gke_cluster or settings.eks_cluster:
        _check_node_pools(settings)
    problem = ancestor_problem(not settings.runs_jobs, os.getpid())
    if problem:
        fail(problem, 2)
    warn_if_root()
    if not settings.api_token and not can_tell():
        warn("without KATUNA_API_TOKEN, every account of this machine can reach the service and run commands as "
             "its user: this system does not tell which user a loopback connection is from. Set KATUNA_API_TOKEN")
    _open_database(settings)
    hide_from_trials()
    Server(partial(service_app, settings), host, port, workers, threads, settings.worker_timeout).run()


def _check_node_pools(settings: Settings) -> None:
    """Build the cloud's node-pool adapter once before any worker does: a client the
    configuration cannot make (no region, an endpoint that is no URL, a profile that is not
    there) is refused in one line with exit 2, not a traceback of each worker failing to boot."""
    from functions.core.errors import KatunaError
    from functions.pools import node_pools

    try:
        node_pools(settings)
    except KatunaError as exc:
        fail(str(exc), 2)


def _open_database(settings: Settings) -> None:
    """Open the database (:func:`_warn_of_history`), with the trial-log folder checked where
    trials run here (:func:`opened_beside_logs`)."""
    opening = partial(_warn_of_history, settings.db, settings.limits, settings.busy_timeout,
                      settings.network_rule(service=True))
    if not settings.runs_jobs:
        opened_beside_logs(settings, opening)
    else:
        opening()


def _warn_of_history(db: Path, limits: Limits, busy_timeout: float, network: NetworkRule) -> None:
    """Open (and migrate) the database before the workers do, refused on a network file system
    unless ``network`` allows it (and then with a warning:
    :mod:`functions.adapters.sqlite_file_system`), and warn when studies' Optuna histories are
    past ``limits`` already, in trials (``KATUNA_MAX_HISTORY``) or in values
    (``KATUNA_MAX_HISTORY_CELLS``), naming them and what becomes of them: every worker serving
    one would load it whole (:mod:`functions.core.history`, :mod:`functions.core.history_cells`)."""
    store = SqliteStore(db, busy_timeout, network=network)
    try:
        problems = (network_warning(db, store.shared_mount) if store.shared_mount else None,
                    history_warning(*store.optuna_histories_over(limits.history, WARNED_STUDIES), limits.history),
                    cells_warning(*store.optuna_values_over(limits.history_cells, WARNED_STUDIES),
                                  limits.history_cells))
    finally:
        store.close()
    for problem in problems:
        if problem:
            warn(problem)


@click.command("optuna-dashboard", cls=TuningCommand, epilog=ending(
    ("katuna optuna-dashboard", "katuna optuna-dashboard --db runs.db --port 8082"),
    (("0", "stopped (Ctrl-C, SIGTERM)"), ("1", "optuna-dashboard is not installed in this Python"),
     ("2", "bad input or setup, named in one line: a --host not on loopback, a --port in use, an unusable "
           "database"))))
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, callback=_address, metavar="ADDRESS",
              help="Address to listen on (loopback only).")
@click.option("--port", default=8081, show_default=True, type=click.IntRange(1, 65535), metavar="PORT",
              help="Port to listen on.")
def optuna_dashboard(db: str | None, host: str, port: int) -> None:
    """Open the database's studies in optuna-dashboard (in the .venv that make run sets up).

    katuna keeps Optuna's state in a journal inside its own database, which
    `optuna-dashboard sqlite:///...` cannot read; this serves it with that journal storage,
    on loopback only (optuna-dashboard has no sign-in), to this user's (or root's) connections
    only, to loopback Host names only (a name rebound to 127.0.0.1 reaches nothing), refusing
    writes from other sites and every change but notes (katuna's own records must stay in step
    with it). A client has KATUNA_CLIENT_TIMEOUT seconds (15) to send its request.
    """
    from functions.adapters.dashboard_storage import NOT_SAVED, DashboardStorage
    from functions.adapters.sqlite_errors import translated
    from functions.adapters.web.dashboard_server import dashboard_server
    from functions.adapters.web.guard import is_loopback
    from functions.adapters.web.peers import can_tell
    from functions.adapters.web.server import listen_problem
    from functions.adapters.web.whole_writes import whole_writes
    from functions.adapters.web.wsgi_guard import guarded

    if not is_loopback(host):
        fail(f"refusing to listen on {host}: optuna-dashboard has no sign-in, so anyone who can reach it could "
              "read and annotate every study. Listen on 127.0.0.1 and reach it through a tunnel "
              f"(ssh -L {port}:127.0.0.1:{port} HOST)", 2)
    path = existing_db(db)
    try:
        from bottle import HTTPError, run
        from optuna_dashboard import wsgi
    except ImportError:
        fail(f"optuna-dashboard is not installed in this Python ({sys.executable}): run "
             f"`{sys.executable} -m pip install -e '.[dashboard]'` in katuna's checkout (katuna is not on the "
             "package index), or use the checkout's .venv/bin/katuna, which `make run` sets up with it")
    settings = settings_for(db)
    store = SqliteStore(path, settings.busy_timeout, network=settings.network_rule(service=False))
    problem = listen_problem(host, port, "katuna optuna-dashboard")
    if problem:
        store.close()
        fail(problem, 2)
    if not can_tell():
        warn("every account of this machine can read the studies through optuna-dashboard: this system does not "
             "tell which user a loopback connection is from")
    shown = f"[{host}]" if ":" in host else host
    console.print(f"optuna-dashboard on http://{markup(shown)}:{port}/ for {markup(path.resolve())} (Ctrl-C stops it)",
                  highlight=False)
    try:
        storage = DashboardStorage(store.optuna_storage, HTTPError,
                                   lambda name: {trial.number for trial in store.trials(name, (WAITING,))},
                                   partial(translated, store.path), partial(_objectives, store))
        app = whole_writes(wsgi(storage), storage.note_write, store.transaction, NOT_SAVED)
        run(guarded(app, storage.refused_request, settings.max_body), host=host, port=port, quiet=True,
            **dashboard_server(settings.client_timeout))
    finally:
        store.close()



def _objectives(store: SqliteStore, name: str) -> list[str] | None:
    """The metrics of the stored study ``name``'s objectives, in order, that optuna-dashboard
    names them by; None for a study katuna does not hold."""
    try:
        return [objective.metric for objective in store.get_study(name).spec.objectives]
    except StudyNotFound:
        return None
