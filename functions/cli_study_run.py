"""What ``katuna run FILE`` does (:mod:`functions.cli_run`): the study in the file
(:mod:`functions.cli_study_files` reads and checks it) submitted to the embedded runner and run to
its end, stopped and left resumable by a stopping signal, and how it ended printed. Imported as
the command runs, the runner and Optuna with it."""

from __future__ import annotations

import signal
import sys
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

from functions.adapters.sqlite_file_system import network_warning
from functions.adapters.sqlite_store import SqliteStore
from functions.cli_common import (
    console,
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
from functions.cli_study_files import StudyFile, load_study, refuse_study
from functions.core.errors import InvalidStudy, NewerDatabase, StudyConflict, StudyNotFound, StudyRunsElsewhere
from functions.core.formats import in_definition
from functions.core.records import COMPLETED, STOPPED, StudyRecord
from functions.core.spec import Study, known_results
from functions.core.store_port import stored_study
from functions.core.trial_cap import admit
from functions.core.warm import missing_study
from functions.embedded import Embedded, deleted_while_running
from functions.interrupts import Interrupted, interruptible
from functions.pools import missing_working_dir
from functions.progress import StudyProgress
from functions.settings import Settings
from functions.terminal import markup


def _stored(settings: Settings, name: str) -> StudyRecord | None:
    """The study ``name`` the database ``katuna run`` uses holds (none where there is no database yet)."""
    if not settings.db.exists():
        return None
    store = SqliteStore(settings.db, settings.busy_timeout, network=settings.network_rule(service=False))
    try:
        return stored_study(store, name)
    finally:
        store.close()


def _check_working_dir(file: StudyFile, spec: Study, stored: StudyRecord | None) -> None:
    """Exit 2 when the study's ``workingDir`` is not a directory where its trials run, relative
    to the directory the ``stored`` study was first run from (a resume from elsewhere runs them
    there), else to this one (:func:`functions.pools.missing_working_dir`)."""
    missing = missing_working_dir(spec, Path(stored.base_dir) if stored is not None else Path.cwd())
    if missing is not None:
        refuse_study(file, InvalidStudy([missing]))


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

    spec, definition, source = load_study(file, settings, lambda name: stored(name) is not None)
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


def _run_with(embedded: Embedded, file: StudyFile, spec: Study, definition: dict[str, Any]) -> NoReturn:
    """Submit the study to ``embedded`` and run it to its end, if it has not ended; print how it
    ended and exit 0 when it completed, 1 otherwise."""
    record = _submitted(embedded, file, spec, definition)
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


def _submitted(embedded: Embedded, file: StudyFile, spec: Study, definition: dict[str, Any]) -> StudyRecord:
    """The study as ``embedded`` stored it, to be run here; exit 2, the runner closed, where it is
    refused or another process runs it (another ``katuna run``, or ``katuna serve``)."""
    try:
        record = embedded.submit(spec, definition, Path.cwd())
    except InvalidStudy as exc:
        embedded.close()
        refuse_study(file, exc)
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
    return record


def _deleted_after(name: str, record: StudyRecord, ran: bool) -> str:
    """Why a study's result is not printed: another process deleted it after it ended. A ``DELETE``
    stops the study, then deletes it; a run that saw the stop first ended with the study stopped,
    and it was as much deleted while it ran as one that saw the deletion."""
    if ran and record.status == STOPPED:
        return str(deleted_while_running(name))
    return f"study {name!r} was deleted by another process once it had ended"


def _check_new_database(file: StudyFile, spec: Study, definition: dict[str, Any], settings: Settings) -> None:
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
        refuse_study(file, InvalidStudy(in_definition(definition, problems)))


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
