"""What the ``katuna`` commands about study files do (:mod:`functions.cli_run`): read and check
a study file, run it to its end with the embedded runner, convert it to a native study, render
one of its trials' Job. Imported as one of them runs, Optuna and the runner with it."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from functions.adapters.sqlite_file_system import network_warning
from functions.adapters.sqlite_store import SqliteStore
from functions.cli_common import (
    console,
    errors,
    fail,
    on_database,
    opened_beside_logs,
    settings_for,
    tell,
    warn,
    warn_if_root,
    warn_of_executor,
    writing_output,
)
from functions.cli_output import print_result
from functions.core import bounded_yaml, template_sources
from functions.core.assignments import parse_assignments
from functions.core.documents import Path as DocumentPath
from functions.core.errors import (
    InvalidStudy,
    KatunaError,
    NewerDatabase,
    StudyConflict,
    StudyNotFound,
    StudyRunsElsewhere,
)
from functions.core.field_lines import field_lines, located
from functions.core.formats import in_definition
from functions.core.job import render_trial
from functions.core.launch import trial_launch
from functions.core.records import COMPLETED, STOPPED, StudyRecord, TrialRecord
from functions.core.samplers import first_suggestion
from functions.core.spec import Study, known_results
from functions.core.store_port import stored_study
from functions.core.study_file import parse_file
from functions.core.trial_cap import admit
from functions.core.trial_identity import study_problems
from functions.core.validate import none_stored
from functions.core.warm import missing_study
from functions.embedded import Embedded, deleted_while_running
from functions.interrupts import Interrupted, interruptible
from functions.pools import missing_working_dir, unknown_workload_fields
from functions.progress import StudyProgress
from functions.settings import Settings
from functions.terminal import markup, printable
from functions.userfiles import read_text

STUDY_FIELDS = {"objective", "parameters", "trialTemplate", "algorithm", "maxTrials", "parallelism",
                "metricsCollector", "earlyStopping", "warmStart", "timeBudget", "apiVersion", "kind"}
"""Fields of which a document given as a study holds at least one, or else a ``name``: a document
with neither is not a study, and its keys (a credentials file's, say) are not echoed back as
unknown fields. One with a ``name`` is read as a study whose other fields may all be misspelt."""


@dataclass(frozen=True)
class _StudyFile:
    """A study file as the command read it: its name as given, and its text, whose lines its
    problems are listed with (:func:`_problems`)."""

    name: str
    text: str


def _load(file: str, settings: Settings, stored: Callable[[str], bool] = none_stored
          ) -> tuple[Study, dict[str, Any], _StudyFile]:
    """The study in FILE (the warm-start file it names read the same way, relative to the
    current directory), its definition and the file; exit 2 with the problems when it is not a
    valid study. ``stored`` tells whether a study of a name is stored already
    (:func:`functions.core.validate.parse_study`)."""
    def read(path: str) -> str:
        return read_text(path, settings.max_body, "a CSV or JSON text file")

    source = _StudyFile(file, read_text(file, settings.max_body, "a YAML or JSON text file"))
    try:
        definition, given = parse_file(source.text)
        if "name" not in definition and not STUDY_FIELDS & definition.keys():
            fail(f"{file} is not a study: expected a YAML or JSON mapping with a study's fields "
                  "(name, objective, parameters, trialTemplate, ...), a Katib Experiment or a StudyJob", 2)
        return *template_sources.load(definition, None, settings.limits, stored, given, read), source
    except InvalidStudy as exc:
        _problems(source, exc)


def _stored(settings: Settings, name: str) -> StudyRecord | None:
    """The study ``name`` the database ``katuna run`` uses holds (none where there is no database yet)."""
    if not settings.db.exists():
        return None
    store = SqliteStore(settings.db, settings.busy_timeout, network=settings.network_rule(service=False))
    try:
        return stored_study(store, name)
    finally:
        store.close()


def _check_working_dir(file: _StudyFile, spec: Study, stored: StudyRecord | None) -> None:
    """Exit 2 when the study's ``workingDir`` is not a directory where its trials run, relative
    to the directory the ``stored`` study was first run from (a resume from elsewhere runs them
    there), else to this one (:func:`functions.pools.missing_working_dir`)."""
    missing = missing_working_dir(spec, Path(stored.base_dir) if stored is not None else Path.cwd())
    if missing is not None:
        _problems(file, InvalidStudy([missing]))


def run_study(file: str, db: str | None) -> NoReturn:
    """``katuna run FILE``: the study run to its end, exiting with how it ended."""
    with interruptible(lambda signum: None):
        try:
            _run(file, settings_for(db))
        except Interrupted as exc:
            tell(f"\nInterrupted ({exc}): no trial was running. Run the same command again to go on.")
            sys.exit(exc.exit_code)


def _run(file: str, settings: Settings) -> NoReturn:
    """``katuna run``, under a handler of the stopping signals: one while no trial runs (the
    database's write lock awaited, say, or the result printed) raises :class:`Interrupted`, the
    runner closed, and ``run`` exits 128 + its number as it does while trials run. A submission
    it interrupts stores nothing: its transaction is rolled back whole."""
    found: dict[str, StudyRecord | None] = {}

    def stored(name: str) -> StudyRecord | None:
        if name not in found:
            found[name] = _stored(settings, name)
        return found[name]

    spec, definition, source = _load(file, settings, lambda name: stored(name) is not None)
    _check_working_dir(source, spec, stored(spec.name))
    _check_new_database(source, spec, definition, settings)
    embedded = _runner(settings)
    try:
        _run_with(embedded, source, spec, definition)
    except Interrupted:
        embedded.close()
        raise


def _runner(settings: Settings) -> Embedded:
    """The runner on the database, the trial-log folder checked (:func:`opened_beside_logs`),
    with a warning where the database is on a network file system (:func:`network_warning`)."""
    embedded = opened_beside_logs(settings, lambda: Embedded(settings, sole_parent=True), Embedded.close)
    if embedded.store.shared_mount is not None:
        warn(network_warning(settings.db, embedded.store.shared_mount))
    return embedded


def _run_with(embedded: Embedded, file: _StudyFile, spec: Study, definition: dict[str, Any]) -> NoReturn:
    """Submit the study to ``embedded`` and run it to its end, if it has not ended; print how it
    ended and exit 0 when it completed, 1 otherwise."""
    try:
        record = embedded.submit(spec, definition, Path.cwd())
    except InvalidStudy as exc:
        embedded.close()
        _problems(file, exc)
    except StudyConflict as exc:
        embedded.close()
        fail(exc.on_database(on_database(embedded.settings)), 2)
    except StudyRunsElsewhere as exc:
        embedded.close()
        fail(str(exc), 2)
    runner = embedded.other_runner(record)
    if runner is not None:
        embedded.close()
        fail(f"study {spec.name!r} is running in another `katuna run` (process {runner}) on this database; follow "
             f"it with `katuna show {spec.name}{on_database(embedded.settings)}`, or stop that process first to run it here", 2)
    elsewhere = embedded.runs_elsewhere(record)
    if elsewhere:
        embedded.close()
        fail(f"study {spec.name!r} is running in another katuna process ({elsewhere} of its trials run there: "
             f"`katuna serve`, or another `katuna run` on this database); follow it with "
             f"`katuna show {spec.name}{on_database(embedded.settings)}`, "
             "or stop that process first to run it here", 2)
    ran = not record.terminal
    if ran:
        warn_if_root()
        warn_of_executor(embedded.settings)
        record = _run_to_end(embedded, record)
    else:
        with writing_output():
            console.print(f"Study [bold]{markup(spec.name)}[/bold] already {record.status}: {markup(record.reason)}. "
                          "Nothing to run.")
    try:
        with writing_output():
            print_result(console, embedded.store, record, embedded.settings, on_database(embedded.settings))
    except StudyNotFound:
        embedded.close()
        fail(_deleted_after(spec.name, record, ran), 1)
    embedded.close()
    sys.exit(0 if record.status == COMPLETED else 1)


def _deleted_after(name: str, record: StudyRecord, ran: bool) -> str:
    """Why a study's result is not printed: another process deleted it after it ended. A ``DELETE``
    stops the study, then deletes it; a run that saw the stop first ended with the study stopped,
    and it was as much deleted while it ran as one that saw the deletion."""
    if ran and record.status == STOPPED:
        return str(deleted_while_running(name))
    return f"study {name!r} was deleted by another process once it had ended"


def _check_new_database(file: _StudyFile, spec: Study, definition: dict[str, Any], settings: Settings) -> None:
    """Exit 2, before the run makes the database, when the study would be refused by one not made
    yet: its warm start names a study (none is there) or its ``maxTrials`` is past
    ``KATUNA_MAX_HISTORY`` or ``KATUNA_MAX_HISTORY_CELLS`` (its Optuna history is empty; without
    ``maxTrials``, not one trial fits: :func:`~functions.core.trial_cap.admit`), so a
    refused study leaves no empty database behind. A database that exists is checked at
    submission, against what it holds."""
    if settings.db.exists():
        return
    _, history = admit(spec, settings.limits, 0, 0, known=len(known_results(spec, None)))
    problems = [problem for problem in (missing_study(spec.warm_start, False), history) if problem is not None]
    if problems:
        _problems(file, InvalidStudy(in_definition(definition, problems)))


def _run_to_end(embedded: Embedded, record: StudyRecord) -> StudyRecord:
    """Run the study until it ends. Ctrl-C, SIGTERM or SIGHUP stops its trials, leaves it
    resumable, says so and exits 128 + the signal's number; another such signal meanwhile only
    says what is left to stop. A study another process deleted meanwhile (``DELETE
    /studies/{name}`` through ``katuna serve``) ends the run with exit 1 and one line saying so,
    its trials stopped; a database a newer katuna migrated meanwhile, with exit 2, its trials
    stopped as an interrupted run's (the newer katuna resumes the study)."""
    spec = record.spec
    with interruptible(partial(_still_stopping, embedded, spec.name), at_once=embedded.executor.stop_reads):
        try:
            with StudyProgress(console, embedded.store, record) as progress:
                return embedded.run(spec.name, on_tick=progress.update)
        except Interrupted as exc:
            embedded.close()
            tell(f"\nInterrupted ({exc}): running trials were stopped. {_resume_hint(embedded, spec.name)}")
            sys.exit(exc.exit_code)
        except StudyNotFound as exc:
            embedded.close()
            fail(str(exc), 1)
        except NewerDatabase as exc:
            embedded.close()
            fail(f"{exc}. The study's running trials were stopped: run the same command with the newer katuna to "
                 f"resume {spec.name!r}.", 2)


def _still_stopping(embedded: Embedded, name: str, signum: int) -> None:
    tell(f"{signal.Signals(signum).name} again: still stopping {embedded.executor.running(name)} running "
          f"trial(s), which takes a few seconds at most. {_resume_hint(embedded, name)}")


def _resume_hint(embedded: Embedded, name: str) -> str:
    """What an interrupted run leaves: the study resumable by the same command, or, sooner, by a
    ``katuna serve`` on the database, which goes on with any study whose process is gone (a run
    of it is then refused, as another process runs it): ``katuna stop`` ends it for good."""
    return (f"Run the same command again to resume {markup(repr(name))} (a katuna serve on this "
            f"database resumes it by itself; katuna stop {markup(name)}{markup(on_database(embedded.settings))} ends it).")



def convert_study(file: str) -> None:
    """``katuna convert FILE``: the native study FILE is, printed as YAML."""
    spec, _, _ = _load(file, Settings.from_env())
    with writing_output():
        click.echo(_plain_yaml(spec.to_dict()), nl=False)


class _Plain(bounded_yaml.Dumper):
    """YAML written out whole: an object met twice (a toleration every replica takes) is written
    again, not as an anchor and an alias, which a reader of ``kubectl apply`` input would not expect;
    a string any reader would take for something else is quoted."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


IDENTITY = ("apiVersion", "kind", "metadata")
"""What a printed workload starts with, as ``kubectl get -o yaml`` prints one: a ``trialSpec``
gets its ``metadata`` from katuna after its ``spec``."""


def _identity_first(workload: dict[str, Any]) -> dict[str, Any]:
    return {**{key: workload[key] for key in IDENTITY if key in workload}, **workload}


def _plain_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Plain, sort_keys=False)


def _problems(file: _StudyFile, exc: InvalidStudy) -> NoReturn:
    """Exit 2 with the problems of the study in ``file``, each with the line of its field."""
    _listed(f"{file.name} is not a valid study:", exc, field_lines(file.text))


def _listed(heading: str, exc: InvalidStudy, lines: dict[DocumentPath, int] | None = None) -> NoReturn:
    """Exit 2 with ``heading`` and each problem of ``exc`` listed on a line of its own (never wrapped,
    so a long path or message stays one line a script can read), with the line of its field
    where ``lines`` has it (:func:`~functions.core.field_lines.located`)."""
    errors.print(f"[red]error:[/red] {markup(heading)}", highlight=False, soft_wrap=True)
    for problem in exc.listed:
        errors.print(f"  - {printable(located(problem, lines or {}))}", highlight=False, markup=False, soft_wrap=True)
    if exc.unlisted:
        errors.print(f"  ({exc.unlisted:,} more problems not listed)", highlight=False, markup=False)
    sys.exit(2)


def render_job(file: str, assignments: tuple[str, ...]) -> None:
    """``katuna render FILE``: the Job of the trial ``assignments`` name (or of the sampler's
    first suggestion), printed as YAML."""
    settings = Settings.from_env()
    spec, definition, source = _load(file, settings)
    # A field its kind does not have: the workload printed would be refused by the cluster's
    # dry run (and by Katib, in a Job), where the API server would drop it.
    refused = study_problems(spec, settings.cluster_defaults()) + unknown_workload_fields(spec)
    if refused:
        _problems(source, InvalidStudy(in_definition(definition, refused)))
    try:
        params = parse_assignments(spec.parameters, list(assignments)) if assignments else first_suggestion(spec)
    except InvalidStudy as exc:
        _listed(f"the --params are not a trial of {file}:", exc)
    try:
        record = StudyRecord(spec, definition, str(Path.cwd()), uid="render")
        launch = trial_launch(record, TrialRecord(spec.name, 0, params))
        job = render_trial(launch, settings.cluster_defaults())
    except InvalidStudy as exc:
        _problems(source, exc)
    except KatunaError as exc:
        fail(str(exc), 2)
    with writing_output():
        click.echo(_plain_yaml(_identity_first(job)), nl=False)
