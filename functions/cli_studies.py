"""The ``katuna`` commands about stored studies: list, show, trials, best, logs, stop and delete.
Those that read import the store and the views alone; a Pareto front, the runner and the
service's runtime are imported where a command needs them."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

import click

from functions.adapters import trial_files
from functions.adapters.owners import RUNNER, alive, orphaned, pid_of, suspended
from functions.adapters.sqlite_store import SqliteStore
from functions.cli_common import (
    ReadingCommand,
    TuningCommand,
    console,
    db_option,
    existing_db,
    fail,
    failure_code,
    json_option,
    looked_in,
    open_store,
    print_json,
    print_json_list,
    print_text,
    settings_for,
    tell,
    with_study,
    writing_output,
)
from functions.cli_output import front_title, print_study, studies_table
from functions.cli_trial_filters import asked_listing, filter_options
from functions.cli_trial_table import print_trials, trial_table
from functions.core.errors import KatunaError, MalformedRequest, RefusedFile
from functions.core.events import MAX_STORED_INT
from functions.core.lines import bounded_lines
from functions.core.overwrites import overwritten_lines
from functions.core.pareto import front_marks
from functions.core.records import (
    KUBERNETES,
    RUNS_ON,
    STUDY_RUNNING,
    WAITING,
    StudyRecord,
    TrialRecord,
    stop_reach,
)
from functions.core.resources import Origin
from functions.core.terminal_safe import for_terminal
from functions.core.trial_csv import csv_rows
from functions.core.trial_listing import keyed_listing, with_front
from functions.core.trial_order import TrialKey, key_text
from functions.core.views import marked_view, observation_key, study_view, trial_detail, trial_view
from functions.settings import Settings
from functions.terminal import markup, text

if TYPE_CHECKING:
    from functions.embedded import Embedded
    from functions.runtime import Runtime


@contextmanager
def _store(db: str | None) -> Iterator[SqliteStore]:
    store = open_store(db)
    try:
        yield store
    finally:
        store.close()


INTERRUPTED = "interrupted (the katuna process that ran it is gone)"
"""How a running study's status reads when the processes that ran it are all gone: a ``katuna
run`` of it (or the ``katuna serve`` running it) was killed or interrupted, and the next one
resumes it."""


def _interrupted(store: SqliteStore, record: StudyRecord, db: str | None) -> bool:
    """Whether the study is running, yet every process that claimed it died since: the runner
    its row names (:attr:`~functions.core.records.StudyRecord.runner`), and in the trial-log
    folder this command sees, the runner named there (:data:`~functions.adapters.owners.RUNNER`)
    and the local process of each of its running trials. The row tells where the folder is
    another (a run with its own ``KATUNA_LOG_DIR``); with no claim at all (a study whose trials
    run on Kubernetes), nothing tells, and it is not."""
    if record.status != STUDY_RUNNING or (record.runner is not None and alive(record.runner)):
        return False
    folder = settings_for(db).logs / record.log_folder
    running = store.trials(record.name, states=("RUNNING",))
    claims = [folder / f"{trial.number}.{trial.attempt}.owner" for trial in running]
    runner = folder / RUNNER
    if orphaned([*claims, runner] if runner.exists() else claims):
        return True
    return record.runner is not None and not any(path.exists() for path in [*claims, runner])


def _judged(view: dict, store: SqliteStore, record: StudyRecord, db: str | None) -> dict:
    """The study's view with ``interrupted``: whether it is running, yet nothing runs it now."""
    return {**view, "interrupted": _interrupted(store, record, db)}


def _as_seen(view: dict) -> dict:
    """A judged view for a person: an interrupted study's status says so instead of ``running``,
    and a running one whose trials run elsewhere says where."""
    if view["interrupted"]:
        return {**view, "status": INTERRUPTED}
    if view["status"] == STUDY_RUNNING and view["runsOn"] == KUBERNETES:
        return {**view, "status": f"{STUDY_RUNNING} {RUNS_ON[KUBERNETES]}"}
    return view


@click.command(cls=ReadingCommand)
@db_option
@json_option
def studies(db: str | None, as_json: bool) -> None:
    """List the stored studies."""
    with _store(db) as store:
        views = [_judged(study_view(store, record), store, record, db) for record in store.list_studies()]
    if as_json:
        print_json(views)
        return
    with writing_output():
        console.print(studies_table([_as_seen(view) for view in views]))


@click.command(cls=ReadingCommand)
@click.argument("name")
@click.argument("number", type=click.IntRange(0, MAX_STORED_INT), required=False)
@db_option
@json_option
@click.option("--after", metavar="KEY", callback=lambda ctx, param, value: _observation_key(value),
              help="With NUMBER: the trial's observations after the one keyed KEY (as the line under its table, or "
                   "observationsAfter, gives it).")
def show(name: str, number: int | None, db: str | None, as_json: bool, after: tuple[int, int] | None) -> None:
    """Show a study: status, trial counts, best trial, stop reason. With NUMBER, its trial
    NUMBER: its state, attempt, reason, the runs it lost to disruptions and the first 1,000
    values it reported, in order (--after for the next 1,000; --json: as GET
    /studies/NAME/trials/NUMBER)."""
    if number is not None:
        _show_trial(name, number, db, as_json, after)
        return
    if after is not None:
        raise click.UsageError("--after: given only with a trial's NUMBER, whose observations it pages")
    store, record = with_study(db, name)
    view = _judged(study_view(store, record), store, record, db)
    view["definition"] = record.spec.to_dict()
    try:
        front = _front(store, record)
    finally:
        store.close()
    if as_json:
        print_json(view)
        return
    with writing_output():
        print_study(console, _as_seen(view), record, front)


def _observation_key(text: str | None) -> tuple[int, int] | None:
    """The key ``--after`` gives; a usage error naming it when it is none."""
    try:
        return None if text is None else observation_key("--after", text)
    except MalformedRequest as exc:
        raise click.BadParameter(str(exc).removeprefix("--after: ")) from exc


def _show_trial(name: str, number: int, db: str | None, as_json: bool, after: tuple[int, int] | None) -> None:
    """``katuna show NAME NUMBER``: the trial's view with its lost runs and a page of its
    observations; exit 1 where the study has no such trial."""
    from functions.cli_trial_detail import print_trial

    store, record = with_study(db, name)
    try:
        trial = store.get_trial(name, number)
        if trial is None:
            fail(f"study {name!r} has no trial {number}")
        view = trial_detail(store, record, trial, after)
    finally:
        store.close()
    if as_json:
        print_json(view)
        return
    with writing_output():
        print_trial(console, name, view, after is not None)


def _front(store: SqliteStore, record: StudyRecord) -> list[TrialRecord]:
    """The trials of a multi-objective study's Pareto front that ``show`` prints (none for a
    study of one objective, which needs neither the front nor NumPy)."""
    if not record.spec.multi_objective:
        return []
    from functions.core.pareto import front_sample

    return front_sample(store, record)[0]


TRIALS_READ = 500
"""Trials read from the database at a time by ``katuna trials``: its memory stays the same at
any study size, and no read is held open while the output waits on a slow reader."""


@click.command(cls=ReadingCommand)
@click.argument("name")
@db_option
@json_option
@filter_options
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N",
              help="At most N trials; where more follow, stderr names the next page's --after KEY.")
@click.option("--csv", "as_csv", is_flag=True,
              help="Print CSV with the columns of the dashboard's Export CSV: number, state, each metric and "
                   "parameter, attempt, times (UTC), duration (s), reason.")
def trials(name: str, db: str | None, as_json: bool, states: tuple[str, ...], lows: tuple[tuple[str, str], ...],
           highs: tuple[tuple[str, str], ...], labels: tuple[str, ...], pareto: bool, order: str | None,
           after: str | None, limit: int | None, as_csv: bool) -> None:
    """List the trials of a study by number (or --order), filtered as the API's listing is: all
    of them, or a page with --after and --limit; as a table, JSON or CSV."""
    if as_json and as_csv:
        raise click.UsageError("--json and --csv: give one of them")
    store, record = with_study(db, name)
    try:
        query, key = asked_listing(record.spec, states, lows, highs, labels, order, after, pareto)
        query = with_front(store, record, query)
        pages: list[_Page] = []

        def listing() -> Iterator[TrialRecord]:
            """The page asked for, read anew at each call (a table of many trials reads it again)."""
            pages.append(_Page(keyed_listing(store, name, query, key, TRIALS_READ,
                                             None if limit is None else limit + 1), limit))
            return iter(pages[-1])

        if as_json:
            print_json_list(map(marked_view(front_marks(store, record)), listing()))
        elif as_csv:
            print_text(csv_rows(record.spec, listing(), front_marks(store, record)))
        else:
            interrupted = _interrupted(store, record, db)
            with writing_output():
                print_trials(console, record, lambda: _as_interrupted(listing()) if interrupted else listing())
        listed = pages[-1]
        if listed.more:
            tell(f"more trials follow: the next page is --after {key_text(query.sort, listed.last)} (with the "
                 "same options)")
    finally:
        store.close()


class _Page:
    """The first ``limit`` trials of a keyed listing (all when None), read one past them to
    tell whether ``more`` follow, and the key of the ``last`` listed: the page that goes on
    from it, which a value the table rounds would not name."""

    def __init__(self, rows: Iterator[tuple[TrialKey, TrialRecord]], limit: int | None) -> None:
        self.rows, self.limit = rows, limit
        self.more = False
        self.last: TrialKey = (None, -1)

    def __iter__(self) -> Iterator[TrialRecord]:
        for count, (key, trial) in enumerate(self.rows):
            if count == self.limit:
                self.more = True
                return
            self.last = key
            yield trial


def _as_interrupted(rows: Iterator[TrialRecord]) -> Iterator[TrialRecord]:
    """The trials of an interrupted study as a person reads them: a running one says
    ``INTERRUPTED``, as the study's counts do (no process runs it; the next run resumes it)."""
    return (replace(t, state="INTERRUPTED") if t.state == "RUNNING" else t for t in rows)


@click.command(cls=ReadingCommand)
@click.argument("name")
@db_option
@json_option
def best(name: str, db: str | None, as_json: bool) -> None:
    """Show the best trial (or the Pareto front of a multi-objective study); exit 1 if there is
    none (`null` with --json, whatever the objectives)."""
    from functions.core.pareto import best_trials

    store, record = with_study(db, name)
    found = best_trials(store, record)
    store.close()
    if as_json:
        views = [trial_view(t, pareto=True if record.spec.multi_objective else None) for t in found]
        print_json(None if not views else views if record.spec.multi_objective else views[0])
        sys.exit(0 if found else 1)
    if not found:
        fail(f"study {name!r} has no completed trial{'' if record.terminal else ' yet'}")
    with writing_output():
        console.print(trial_table(record, found, title=front_title(record) if record.spec.multi_objective
                                  else "Best trial"))


@click.command(cls=TuningCommand)
@click.argument("name")
@db_option
def stop(name: str, db: str | None) -> None:
    """Stop a running study and its trials: a `katuna run` of it stops its trials within a
    second; with KATUNA_EXECUTOR=kubernetes (the service's setting) its trial Jobs are deleted
    with their pods, as POST /studies/NAME/stop deletes them."""
    path = existing_db(db)
    try:
        with _store(db) as store:
            record = store.get_study(name)
        if record.terminal:
            with writing_output():
                console.print(f"Study {markup(repr(name))} already {record.status}: {markup(record.reason)}")
            return
        settings = settings_for(db)
        stopper = _stopper(settings)
        try:
            stopper.stop(name)
        finally:
            stopper.close()
        elsewhere = record.runs_away_from(settings.executor)
        with writing_output():
            console.print(f"Study {markup(repr(name))} stopped"
                          + (f"; {stop_reach(record)}." if elsewhere else f"{_suspended_run(record)}."))
    except KatunaError as exc:
        fail(looked_in(exc, path, name), failure_code(exc))


def _suspended_run(record: StudyRecord) -> str:
    """What a stop or a delete waits for when the study's ``katuna run`` is suspended (Ctrl-Z,
    SIGSTOP): it stops the trials only once it runs again."""
    if record.runner is None or not suspended(record.runner):
        return ""
    pid = pid_of(record.runner)
    return (f"; its katuna run (process {pid}) is suspended, and its trials run on until it resumes "
            f"(fg in its terminal, or kill -CONT {pid}), then it stops them")


def _stopper(settings: Settings) -> Embedded | Runtime:
    """What stops a study where its trials run: the service's runtime where they run as Jobs
    (its stop deletes them, and releases the study's node pools), else an embedded runner (a
    ``katuna run`` of the study, in its own process, kills its trial processes when it sees the
    study ended). No cluster configuration stops the command before anything changes."""
    from functions.embedded import Embedded

    return _on_cluster(settings) if settings.runs_jobs else Embedded(settings)


def _on_cluster(settings: Settings) -> Runtime:
    """The service's runtime, whose executor reaches the cluster ``settings`` name; exit 2 when
    they name none."""
    from functions.adapters.kubernetes_client import configuration_problem
    from functions.runtime import Runtime

    problem = configuration_problem(settings.k8s_api, "KATUNA_EXECUTOR=kubernetes")
    if problem:
        fail(problem, 2)
    return Runtime(settings)


@click.command(cls=TuningCommand)
@click.argument("name")
@db_option
def delete(name: str, db: str | None) -> None:
    """Delete a study that is not running, with its trials, at once (no confirmation, as
    DELETE /studies/NAME); its name is then free for another definition. With
    KATUNA_EXECUTOR=kubernetes (the service's setting), the trial Jobs its end left to stop (a
    stop the cluster refused, or a service that died first) are deleted before it is. The
    checkpoints of its trials (population-based training) are deleted first, local ones at once,
    those on the claim of KATUNA_CHECKPOINT_CLAIM by a Job it asks for; its trial logs stay."""
    from functions.adapters import local_checkpoints
    from functions.core.checkpoint_drop import job_name
    from functions.core.checkpoints import FOLDER

    settings = settings_for(db)
    store, _ = with_study(db, name)
    try:
        deletable = _deletable(name, store)
        if settings.runs_jobs and store.stopping_trials(1, name):
            _stop_marked(settings, name)
        on_claim = settings.runs_jobs and _drop_on_claim(settings, deletable)
        checkpoints = local_checkpoints.dropped(settings.logs, deletable.log_folder, deletable.uid)
        with store.transaction():
            record = _deletable(name, store)
            trials = store.count_trials(name).created
            store.delete_study(name)
    finally:
        store.close()
    logs = settings.logs / record.log_folder
    kept = f"; its trial logs stay in {logs.resolve()}" if logs.is_dir() else ""
    kept += f" (its checkpoints in {logs.resolve() / FOLDER} deleted)" if checkpoints else ""
    kept += f"; Job {job_name(record.uid)} deletes its checkpoints from the claim" if on_claim else ""
    with writing_output():
        console.print(text(f"Deleted study {name!r} and its {trials} trial(s) from {settings.db.resolve()}"
                           f"{kept}{_suspended_run(record)}."), soft_wrap=True)


def _deletable(name: str, store: SqliteStore) -> StudyRecord:
    """The study, once it is known to be deletable (ended, and followed by no resource); exit 1
    saying why otherwise."""
    record = store.get_study(name)
    if not record.terminal:
        fail(f"study {name!r} is {record.status} (or was interrupted, and a run would resume it): stop it "
             f"first with katuna stop {name}, then delete it")
    if record.origin is not None:
        fail(f"{Origin.from_dict(record.origin).delete_refusal(name)} with DELETE /studies/{name} of the "
             "service that watches it (katuna delete cannot ask the cluster whether the resource is gone)")
    return record


def _stop_marked(settings: Settings, name: str) -> None:
    """Delete the trial Jobs the study's end left to stop, through the cluster as the service
    would; exit saying why, the study kept, when the cluster refuses."""
    from functions.handlers.stopping import stop_study_marked

    runtime = _on_cluster(settings)
    try:
        stop_study_marked(runtime.deps(), name)
    except KatunaError as exc:
        fail(f"study {name!r} was not deleted: the Jobs of the trials its end stopped could not be deleted ({exc}); "
             "they run on until they are: try again", failure_code(exc))
    finally:
        runtime.close()


def _drop_on_claim(settings: Settings, record: StudyRecord) -> bool:
    """Ask the cluster to delete a pbt study's checkpoints from the claim, as the service
    would; whether it was asked. Exit saying why, the study kept, when the cluster refuses."""
    from functions.core import pbt

    if record.spec.algorithm.name != pbt.NAME:
        return False
    runtime = _on_cluster(settings)
    try:
        return runtime.drop_claim_checkpoints(record)
    except KatunaError as exc:
        fail(f"study {record.name!r} was not deleted: the Job deleting its checkpoints from the claim could not be "
             f"created ({exc}): try again", failure_code(exc))
    finally:
        runtime.close()


LOG_CHUNK = 1 << 16
"""Bytes of a log copied to the output at a time: any log is printed in bounded memory."""


@click.command(cls=ReadingCommand)
@click.argument("name")
@click.argument("number", type=click.IntRange(0, MAX_STORED_INT))
@db_option
@click.option("--attempt", type=click.IntRange(min=1), default=None, metavar="K",
              help="The log of the trial's attempt K, from 1 (its latest when left out).")
@click.option("--terminal", is_flag=True,
              help="Print each line as a terminal shows it: a line redrawn with carriage returns (a progress bar) "
                   "at its last state, for a pager or grep (with -f, to a terminal, redrawn in place as it runs).")
@click.option("-f", "--follow", is_flag=True,
              help="Follow the log as it is written, to the trial's end, from one attempt to the next as the trial "
                   "runs again (with --attempt, to that attempt's end); a trial asked for and still to start (WAITING) "
                   "is waited for.")
def logs(name: str, number: int, db: str | None, attempt: int | None, terminal: bool, follow: bool) -> None:
    """Print what a trial printed (its output and errors), byte for byte, as it stands: a
    running trial's log so far, or with -f as it is written. A trial run on Kubernetes keeps
    its log in its pods: the error names the API call that reads it and the kubectl command
    that follows it."""
    store, record = with_study(db, name)
    try:
        trial = store.get_trial(name, number)
        if trial is None:
            fail(f"study {name!r} has no trial {number}")
        if attempt is not None and attempt > trial.attempt:
            fail(f"trial {number} of {name!r} has run {trial.attempt} attempt(s); --attempt goes up to {trial.attempt}")
        if follow and _followed(store, record, trial, attempt, terminal, db):
            return
    finally:
        store.close()
    path = settings_for(db).logs / record.log_folder / f"{number}.{attempt or trial.attempt}.log"
    try:
        log = trial_files.open_file(path)
    except (OSError, RefusedFile) as exc:
        fail(f"no log of trial {number} attempt {attempt or trial.attempt} at {path.resolve()}: "
             f"{_why_no_log(record, trial, attempt, exc)}")
    with log, writing_output():
        _write(_as_shown(iter(lambda: log.read(LOG_CHUNK), b""), terminal))


def _write(chunks: Iterator[bytes]) -> None:
    """Write the log's bytes to standard output, as long as there is one: to a terminal, without
    what the terminal would act on beyond drawing the log (:mod:`functions.core.terminal_safe`)."""
    if sys.stdout is not None and sys.stdout.isatty():
        chunks = for_terminal(chunks)
    for chunk in chunks:
        if sys.stdout is None:
            return
        sys.stdout.buffer.write(chunk)


def _followed(store: SqliteStore, record: StudyRecord, trial: TrialRecord, attempt: int | None, terminal: bool,
              db: str | None) -> bool:
    """``logs -f``: the log followed (:mod:`functions.log_follow`), with each carriage return
    written through to a terminal; whether it was, which it is not where the attempt has ended
    (its log is then printed as it stands). Exit 1 saying why where there is nothing to follow here."""
    from functions.log_follow import LogFollow, Unfollowable, attempt_over, cluster_reads

    if attempt_over(trial, attempt or trial.attempt):
        return False
    if record.runs_on == KUBERNETES:
        fail(f"trial {trial.number} of {record.name!r} is not followed here: "
             f"{cluster_reads(record, trial, attempt, settings_for(db).cluster_defaults())}")

    def flushed() -> None:
        if sys.stdout is not None:
            sys.stdout.flush()

    def told(message: str) -> None:
        flushed()
        tell(markup(f"[katuna: {message}]"))

    def slept(seconds: float) -> None:
        flushed()
        time.sleep(seconds)

    follow = LogFollow(store, record.name, trial.number, settings_for(db).logs / record.log_folder, told,
                       lambda: _interrupted(store, store.get_study(record.name), db), attempt is not None,
                       sleep=slept)
    try:
        with writing_output():
            to_terminal = sys.stdout is not None and sys.stdout.isatty()
            _write(_as_shown(follow.output(attempt or trial.attempt), terminal and not to_terminal))
    except Unfollowable as exc:
        fail(str(exc))
    return True


def _as_shown(chunks: Iterator[bytes], terminal: bool) -> Iterator[bytes]:
    """The log's bytes as they are, or with ``terminal`` its lines as a terminal shows them
    (:func:`~functions.core.overwrites.overwritten_lines`), a line at a time: bounded memory either way."""
    if not terminal:
        return chunks
    return (line.encode() for line in overwritten_lines(bounded_lines(chunks, returns=True)))


def _why_no_log(record: StudyRecord, trial: TrialRecord, attempt: int | None, exc: Exception) -> str:
    """Why the log file of a trial's attempt could not be opened, from what is known of it."""
    if record.runs_on == KUBERNETES:
        from functions.log_follow import cluster_reads

        return cluster_reads(record, trial, attempt, Settings.from_env().cluster_defaults())
    if (trial.started_at is None or trial.state == WAITING) and attempt in (None, trial.attempt):
        return f"the attempt has not started (the trial is {trial.state})"
    if isinstance(exc, FileNotFoundError):
        return ("its file is not in the trial-log folder: removed, or the study's logs went to another folder "
                "(KATUNA_LOG_DIR as it was set where the study ran)")
    return f"it cannot be read: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"

