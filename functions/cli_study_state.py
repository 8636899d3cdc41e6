"""What the commands about stored studies share: the store opened for a command's span, and
whether a running study is interrupted, its processes gone, and how its status then reads.

Kept apart from the commands so that listing, showing, following a log and stopping judge a
study the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from functions.adapters.owners import RUNNER, alive, orphaned
from functions.adapters.sqlite_store import SqliteStore
from functions.cli_common import open_store, settings_for
from functions.core.records import KUBERNETES, RUNS_ON, STUDY_RUNNING, StudyRecord


@contextmanager
def opened_store(db: str | None) -> Iterator[SqliteStore]:
    """The store of ``db`` (as the command's ``--db`` names it), closed when the command is done."""
    store = open_store(db)
    try:
        yield store
    finally:
        store.close()

INTERRUPTED = "interrupted (the katuna process that ran it is gone)"
"""How a running study's status reads when the processes that ran it are all gone: a ``katuna
run`` of it (or the ``katuna serve`` running it) was killed or interrupted, and the next one
resumes it."""

INTERRUPTED_TRIAL = "INTERRUPTED"
"""How a running trial of an interrupted study reads for a person: no process runs it, and the
study's next run runs it again."""

def interrupted(store: SqliteStore, record: StudyRecord, db: str | None) -> bool:
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

def judged(view: dict, store: SqliteStore, record: StudyRecord, db: str | None) -> dict:
    """The study's view with ``interrupted``: whether it is running, yet nothing runs it now."""
    return {**view, "interrupted": interrupted(store, record, db)}

def as_seen(view: dict) -> dict:
    """A judged view for a person: an interrupted study's status says so instead of ``running``,
    and a running one whose trials run elsewhere says where."""
    if view["interrupted"]:
        return {**view, "status": INTERRUPTED}
    if view["status"] == STUDY_RUNNING and view["runsOn"] == KUBERNETES:
        return {**view, "status": f"{STUDY_RUNNING} {RUNS_ON[KUBERNETES]}"}
    return view
