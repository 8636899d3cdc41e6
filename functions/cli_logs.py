"""The ``katuna logs`` command: what a trial printed, byte for byte, as it stands or followed
as it is written (:mod:`functions.log_follow`, imported for ``-f`` alone), or why there is no
log to print here."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import click

from functions.adapters import trial_files
from functions.adapters.sqlite_store import SqliteStore
from functions.cli_common import (
    ReadingCommand,
    db_option,
    fail,
    on_database,
    settings_for,
    tell,
    with_study,
    writing_output,
)
from functions.cli_help import reading
from functions.cli_study_state import interrupted
from functions.core.errors import RefusedFile
from functions.core.event_data import MAX_STORED_INT
from functions.core.lines import bounded_lines
from functions.core.overwrites import overwritten_lines
from functions.core.records import KUBERNETES, WAITING, StudyRecord, TrialRecord
from functions.core.terminal_safe import for_terminal
from functions.settings import Settings
from functions.terminal import markup

LOG_CHUNK = 1 << 16
"""Bytes of a log copied to the output at a time: any log is printed in bounded memory."""

@click.command(cls=ReadingCommand, epilog=reading((
    "katuna logs digits 3", "katuna logs digits 3 -f", "katuna logs digits 3 --attempt 1 --terminal | less"),
    "no such study or trial, or no log of it here: an attempt not started yet (with -f, waited for), a log "
    "file removed, a trial run on Kubernetes (the message names the commands that read its log)"))
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
             f"{_why_no_log(record, trial, attempt, exc, on_database(settings_for(db)))}")
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
                       lambda: interrupted(store, store.get_study(record.name), db), attempt is not None,
                       on_database(settings_for(db)), sleep=slept)
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

def _why_no_log(record: StudyRecord, trial: TrialRecord, attempt: int | None, exc: Exception, db: str = "") -> str:
    """Why the log file of a trial's attempt could not be opened, from what is known of it; for
    an attempt still to start, the follow that waits for it (``db``: the ``--db`` it needs,
    :func:`~functions.cli_common.on_database`), as ``kubectl logs`` of a pod waiting to start
    is an error too, where the API answers an empty log."""
    if record.runs_on == KUBERNETES:
        from functions.log_follow import cluster_reads

        return cluster_reads(record, trial, attempt, Settings.from_env().cluster_defaults())
    if (trial.started_at is None or trial.state == WAITING) and attempt in (None, trial.attempt):
        return (f"the attempt has not started (the trial is {trial.state}): katuna logs -f {record.name} "
                f"{trial.number}{db} waits for it to start and follows its log")
    if isinstance(exc, FileNotFoundError):
        return ("its file is not in the trial-log folder: removed, or the study's logs went to another folder "
                "(KATUNA_LOG_DIR as it was set where the study ran)")
    return f"it cannot be read: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"
