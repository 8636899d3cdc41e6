"""The ``katuna`` commands that end a study: ``stop`` stops a running one and its trials,
``delete`` removes an ended one with its trials and checkpoints. The runner, the service's
runtime and the cluster's clients are imported where a command needs them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from functions.adapters.owners import pid_of, suspended
from functions.adapters.sqlite_store import SqliteStore
from functions.cli_common import (
    TuningCommand,
    console,
    db_option,
    existing_db,
    fail,
    failure_code,
    looked_in,
    on_database,
    settings_for,
    with_study,
    writing_output,
)
from functions.cli_help import reading
from functions.cli_study_state import opened_store
from functions.core.errors import KatunaError
from functions.core.records import StudyRecord, stop_reach
from functions.core.resources import Origin
from functions.settings import Settings
from functions.terminal import markup, text

if TYPE_CHECKING:
    from functions.embedded import Embedded
    from functions.runtime import Runtime


@click.command(cls=TuningCommand, epilog=reading(("katuna stop digits", "katuna stop digits --db runs.db"),
                                                 "no such study"))
@click.argument("name")
@db_option
def stop(name: str, db: str | None) -> None:
    """Stop a running study and its trials: a `katuna run` of it stops its trials within a
    second; with KATUNA_EXECUTOR=kubernetes (the service's setting) its trial Jobs are deleted
    with their pods, as POST /studies/NAME/stop deletes them."""
    path = existing_db(db)
    try:
        with opened_store(db) as store:
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
    return Runtime(settings, service=False)

@click.command(cls=TuningCommand, epilog=reading((
    "katuna delete digits", "katuna delete digits --db runs.db"),
    "no such study; a running study (katuna stop it first); a study of a Kubernetes Study or Experiment "
    "(delete that with kubectl: the message names it)"))
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
        deletable = _deletable(name, store, settings)
        if settings.runs_jobs and store.stopping_trials(1, name):
            _stop_marked(settings, name)
        on_claim = settings.runs_jobs and _drop_on_claim(settings, deletable)
        checkpoints = local_checkpoints.dropped(settings.logs, deletable.log_folder, deletable.uid)
        with store.transaction():
            record = _deletable(name, store, settings)
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

def _deletable(name: str, store: SqliteStore, settings: Settings) -> StudyRecord:
    """The study, once it is known to be deletable (ended, and followed by no resource); exit 1
    saying why otherwise, the stop it needs on the database of ``settings``."""
    record = store.get_study(name)
    if not record.terminal:
        fail(f"study {name!r} is {record.status} (or was interrupted, and a run would resume it): stop it "
             f"first with katuna stop {name}{on_database(settings)}, then delete it")
    if record.origin is not None:
        fail(f"{Origin.from_dict(record.origin).delete_through_service(name, 'it')} (katuna delete cannot ask the "
             "cluster whether the resource is gone)")
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
