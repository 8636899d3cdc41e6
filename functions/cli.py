"""The ``katuna`` command: a thin layer over the embedded runner, the store and the views."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml
from rich.console import Console

from functions.adapters.sqlite_store import SqliteStore
from functions.cli_output import front_title, print_result, print_study, studies_table, trial_table
from functions.core.assignments import parse_assignments
from functions.core.errors import (
    InvalidStudy,
    KatunaError,
    Problem,
    StorageUnavailable,
    StudyConflict,
    StudyNotFound,
    UnreadableFile,
)
from functions.core.formats import load_definition, parse_text
from functions.core.job import render_trial
from functions.core.launch import trial_launch
from functions.core.records import StudyRecord, TrialRecord
from functions.core.samplers import first_suggestion
from functions.core.spec import Study
from functions.core.views import best_trials, study_view, trial_view
from functions.embedded import Embedded
from functions.interrupts import Interrupted, interruptible
from functions.progress import StudyProgress
from functions.settings import Settings
from functions.terminal import markup, printable, text
from functions.userfiles import read_text

console = Console()
errors = Console(stderr=True)

db_option = click.option("--db", type=click.Path(dir_okay=False), default=None,
                         help="SQLite database (default: $KATUNA_DB or ./katuna.db).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


STUDY_FIELDS = {"objective", "parameters", "trialTemplate", "algorithm", "maxTrials", "parallelism",
                "metricsCollector", "earlyStopping", "warmStart", "timeBudget", "apiVersion", "kind"}
"""Fields of which a document given as a study holds at least one (``name`` alone does not count):
a document with none is not a study, and its keys are not echoed back as unknown fields."""


def _settings(db: str | None) -> Settings:
    return Settings.from_env().with_db(db)


def _existing_db(db: str | None) -> Path:
    """The database a command that only reads (or stops) studies uses; exit 2 when there is
    none: opening it would create an empty one, and a mistyped ``--db`` would then look like
    a database whose studies are gone."""
    path = _settings(db).db
    if not path.exists():
        _fail(f"no database at {path.absolute()} (give --db PATH or set KATUNA_DB; katuna run creates it)", 2)
    return path


@contextmanager
def _store(db: str | None) -> Iterator[SqliteStore]:
    store = SqliteStore(_existing_db(db))
    try:
        yield store
    finally:
        store.close()


def _fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"[red]error:[/red] {markup(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)


def _load(file: str, settings: Settings) -> tuple[Study, dict[str, Any]]:
    """The study in FILE (the warm-start file it names read the same way, relative to the
    current directory); exit 2 with the problems when it is not a valid study."""
    def read(path: str) -> str:
        return read_text(path, settings.max_body)

    try:
        definition = parse_text(read(file))
        if not STUDY_FIELDS & definition.keys():
            _fail(f"{file} is not a study: expected a YAML or JSON mapping with a study's fields "
                  "(name, objective, parameters, trialTemplate, ...), a Katib Experiment or a StudyJob", 2)
        return load_definition(definition, read, settings.limits)
    except InvalidStudy as exc:
        _problems(file, exc)


def _check_working_dir(file: str, spec: Study) -> None:
    """Exit 2 when the study's ``workingDir`` (relative to the current directory, as its trials
    are run) is not a directory here; every trial would fail to start. Only for local trials: a
    container's working directory is inside its image."""
    working_dir = spec.trial_template.working_dir
    if working_dir is not None and spec.trial_template.trial_spec is None and not (Path.cwd() / working_dir).is_dir():
        _problems(file, InvalidStudy([Problem("trialTemplate.workingDir",
                                              f"expected a directory; {Path.cwd() / working_dir} is none")]))


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


class _Commands(click.Group):
    """katuna's commands; a file that cannot be read or a database that cannot be used ends
    any of them with exit 2 and a one-line message instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (UnreadableFile, StorageUnavailable) as exc:
            _fail(str(exc), 2)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="katuna")
def main() -> None:
    """Hyperparameter tuning as event-driven functions."""


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@db_option
def run(file: str, db: str | None) -> None:
    """Run the study in FILE to completion (resuming it if it was interrupted)."""
    settings = _settings(db)
    spec, definition = _load(file, settings)
    if settings.executor == "local":
        _check_working_dir(file, spec)
    embedded = Embedded(settings)
    try:
        record = embedded.submit(spec, definition, Path.cwd())
    except InvalidStudy as exc:
        embedded.close()
        _problems(file, exc)
    except StudyConflict as exc:
        embedded.close()
        _fail(str(exc), 2)
    if record.terminal:
        console.print(f"Study [bold]{markup(spec.name)}[/bold] already {record.status}: {markup(record.reason)}. "
                      "Nothing to run.")
    else:
        record = _run_to_end(embedded, spec)
    print_result(console, embedded.store, record, embedded.settings)
    embedded.close()
    sys.exit(0 if record.status == "completed" else 1)


def _run_to_end(embedded: Embedded, spec: Study) -> StudyRecord:
    """Run the study until it ends. Ctrl-C, SIGTERM or SIGHUP stops its trials, leaves it
    resumable, says so and exits 128 + the signal's number; another such signal meanwhile only
    says what is left to stop."""
    with interruptible(partial(_still_stopping, embedded, spec.name)):
        try:
            with StudyProgress(console, embedded.store, spec) as progress:
                return embedded.run(spec.name, on_tick=progress.update)
        except Interrupted as exc:
            embedded.close()
            _tell(f"\nInterrupted ({exc}): running trials were stopped. {_resume_hint(spec.name)}")
            sys.exit(exc.exit_code)


def _still_stopping(embedded: Embedded, name: str, signum: int) -> None:
    _tell(f"{signal.Signals(signum).name} again: still stopping {embedded.executor.running(name)} running "
          f"trial(s), which takes a few seconds at most. {_resume_hint(name)}")


def _resume_hint(name: str) -> str:
    return f"Run the same command again to resume {markup(repr(name))}."


def _tell(message: str) -> None:
    """A line on stderr, if there is still somewhere to write it (a hung-up terminal is gone)."""
    with suppress(OSError):
        errors.print(message, highlight=False, soft_wrap=True)


@main.command()
@db_option
@json_option
def studies(db: str | None, as_json: bool) -> None:
    """List the stored studies."""
    with _store(db) as store:
        views = [study_view(store, record) for record in store.list_studies()]
    if as_json:
        _print_json(views)
        return
    console.print(studies_table(views))


def _with_study(db: str | None, name: str) -> tuple[SqliteStore, StudyRecord]:
    path = _existing_db(db)
    store = SqliteStore(path)
    try:
        return store, store.get_study(name)
    except KatunaError as exc:
        store.close()
        _fail(_looked_in(exc, path))


def _looked_in(exc: KatunaError, db: Path) -> str:
    """The error, naming the database when the study is not in it: the wrong one, perhaps."""
    return f"{exc} in {db.absolute()}" if isinstance(exc, StudyNotFound) else str(exc)


@main.command()
@click.argument("name")
@db_option
@json_option
def show(name: str, db: str | None, as_json: bool) -> None:
    """Show a study: status, trial counts, best trial, stop reason."""
    store, record = _with_study(db, name)
    view = study_view(store, record)
    view["definition"] = record.spec.to_dict()
    front = best_trials(store, record) if record.spec.multi_objective else []
    store.close()
    if as_json:
        _print_json(view)
        return
    print_study(console, view, record, front)


@main.command()
@click.argument("name")
@db_option
@json_option
def trials(name: str, db: str | None, as_json: bool) -> None:
    """List the trials of a study."""
    store, record = _with_study(db, name)
    rows = store.trials(name)
    store.close()
    if as_json:
        _print_json([trial_view(t) for t in rows])
        return
    console.print(trial_table(record, rows))


@main.command()
@click.argument("name")
@db_option
@json_option
def best(name: str, db: str | None, as_json: bool) -> None:
    """Show the best trial (or the Pareto front of a multi-objective study); exit 1 if there is none."""
    store, record = _with_study(db, name)
    found = best_trials(store, record)
    store.close()
    if as_json:
        views = [trial_view(t) for t in found]
        _print_json(views if record.spec.multi_objective else (views[0] if views else None))
        sys.exit(0 if found else 1)
    if not found:
        _fail(f"study {name!r} has no completed trial{'' if record.terminal else ' yet'}")
    console.print(trial_table(record, found, title=front_title(record) if record.spec.multi_objective else "Best trial"))


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def convert(file: str) -> None:
    """Print the native study equivalent of FILE (a Katib Experiment, or a native study)."""
    spec, _ = _load(file, Settings.from_env())
    click.echo(yaml.safe_dump(spec.to_dict(), sort_keys=False), nl=False)


def _problems(file: str, exc: InvalidStudy) -> NoReturn:
    _listed(f"{file} is not a valid study:", exc)


def _listed(heading: str, exc: InvalidStudy) -> NoReturn:
    """Exit 2 with ``heading`` and each problem of ``exc`` on a line of its own (never wrapped,
    so a long path or message stays one line a script can read)."""
    errors.print(f"[red]error:[/red] {markup(heading)}", highlight=False, soft_wrap=True)
    for problem in _unparseable(exc) or exc.problems:
        errors.print(f"  - {printable(problem)}", highlight=False, markup=False, soft_wrap=True)
    sys.exit(2)


def _unparseable(exc: InvalidStudy) -> list[str]:
    """Where the YAML parser stopped, without the excerpt of the file its message quotes."""
    cause = exc.__cause__
    if not isinstance(cause, yaml.MarkedYAMLError) or cause.problem_mark is None:
        return []
    mark = cause.problem_mark
    return [f"not valid YAML or JSON: {cause.problem} (line {mark.line + 1}, column {mark.column + 1})"]


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--params", "assignments", multiple=True, metavar="NAME=VALUE",
              help="One parameter's value; repeat the option for each parameter that applies "
                   "(--params a=1 --params b=2). Default: the sampler's first suggestion.")
def render(file: str, assignments: tuple[str, ...]) -> None:
    """Print the Kubernetes Job of a trial of the study in FILE (no cluster needed)."""
    settings = Settings.from_env()
    spec, definition = _load(file, settings)
    try:
        params = parse_assignments(spec.parameters, list(assignments)) if assignments else first_suggestion(spec)
    except InvalidStudy as exc:
        _listed(f"the --params are not a trial of {file}:", exc)
    try:
        record = StudyRecord(spec, definition, str(Path.cwd()), uid="render")
        launch = trial_launch(record, TrialRecord(spec.name, 0, params))
        job = render_trial(launch, settings.cluster_defaults())
    except InvalidStudy as exc:
        _problems(file, exc)
    except KatunaError as exc:
        _fail(str(exc), 2)
    click.echo(yaml.safe_dump(job, sort_keys=False), nl=False)


@main.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1), help="gunicorn workers.")
@click.option("--executor", type=click.Choice(["local", "kubernetes"]), default=None,
              help="Where trials run: processes here, or Jobs on Kubernetes (default: $KATUNA_EXECUTOR or local).")
def serve(db: str | None, host: str, port: int, workers: int, executor: str | None) -> None:
    """Serve the HTTP API and the event functions with gunicorn.

    Without KATUNA_API_TOKEN it listens on loopback only and answers loopback Host names only;
    another address, or KATUNA_ALLOWED_HOSTS, needs the token.
    """
    from functions.adapters.process_tree import hide_from_trials
    from functions.adapters.web.guard import exposure_problem
    from functions.adapters.web.server import Server, listen_problem
    from functions.runtime import service_app

    settings = _settings(db)
    problem = exposure_problem(settings.allowed_hosts, settings.api_token, bind=host) or listen_problem(host, port)
    if problem:
        _fail(problem, 2)
    if executor:
        settings = replace(settings, executor=executor)
    if settings.executor == "kubernetes":
        from functions.adapters.kubernetes_executor import configuration_problem

        problem = configuration_problem(settings.k8s_api)
        if problem:
            _fail(problem, 2)
    SqliteStore(settings.db).close()
    hide_from_trials()
    Server(partial(service_app, settings), host, port, workers).run()


@main.command()
@click.argument("name")
@db_option
def stop(name: str, db: str | None) -> None:
    """Stop a running study; a `katuna run` of it stops its trials within a second."""
    path = _existing_db(db)
    embedded = Embedded(_settings(db))
    try:
        record = embedded.store.get_study(name)
        if record.terminal:
            console.print(f"Study {markup(repr(name))} already {record.status}: {markup(record.reason)}")
            return
        embedded.stop(name)
        console.print(f"Study {markup(repr(name))} stopped.")
    except KatunaError as exc:
        _fail(_looked_in(exc, path))
    finally:
        embedded.close()


@main.command()
@click.argument("name")
@db_option
def delete(name: str, db: str | None) -> None:
    """Delete a study that is not running, with its trials, at once (no confirmation, as
    DELETE /studies/NAME); its name is then free for another definition."""
    store, _ = _with_study(db, name)
    try:
        with store.transaction():
            record = store.get_study(name)
            if not record.terminal:
                _fail(f"study {name!r} is {record.status} (or was interrupted, and a run would resume it): stop it "
                      f"first with katuna stop {name}, then delete it")
            trials = store.count_trials(name).created
            store.delete_study(name)
    finally:
        store.close()
    logs = _settings(db).logs / name
    kept = f"; its trial logs stay in {logs.resolve()}" if logs.is_dir() else ""
    console.print(text(f"Deleted study {name!r} and its {trials} trial(s) from {_settings(db).db.resolve()}{kept}."),
                  soft_wrap=True)


@main.command("optuna-dashboard")
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback only).")
@click.option("--port", default=8081, show_default=True, type=int, help="Port to listen on.")
def optuna_dashboard(db: str | None, host: str, port: int) -> None:
    """Open the database's studies in optuna-dashboard (pip install 'katuna[dashboard]').

    katuna keeps Optuna's state in a journal inside its own database, which
    ``optuna-dashboard sqlite:///...`` cannot read; this serves it with that journal storage,
    on loopback only (optuna-dashboard has no sign-in), refusing every change but notes
    (katuna's own records must stay in step with it).
    """
    from functions.adapters.dashboard_storage import DashboardStorage
    from functions.adapters.web.guard import is_loopback

    if not is_loopback(host):
        _fail(f"refusing to listen on {host}: optuna-dashboard has no sign-in, so anyone who can reach it could "
              "read and annotate every study. Listen on 127.0.0.1 and reach it through a tunnel "
              f"(ssh -L {port}:127.0.0.1:{port} HOST)", 2)
    path = _existing_db(db)
    try:
        from bottle import HTTPError
        from optuna_dashboard import run_server
    except ImportError:
        _fail("optuna-dashboard is not installed: pip install 'katuna[dashboard]'")
    store = SqliteStore(path)
    console.print(f"optuna-dashboard on http://{markup(host)}:{port}/ for {markup(path.resolve())}", highlight=False)
    try:
        run_server(DashboardStorage(store.optuna_storage(), lambda reason: HTTPError(403, reason)), host=host, port=port)
    finally:
        store.close()
