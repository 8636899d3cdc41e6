"""The ``katuna`` commands that read stored studies: ``studies`` lists them, ``show`` shows one
(or one of its trials), ``best`` its best trial or Pareto front. They import the store and the
views alone; a Pareto front and a trial's detail are imported where a command needs them."""

from __future__ import annotations

import sys

import click

from functions.adapters.sqlite_store import SqliteStore
from functions.cli_common import (
    ReadingCommand,
    console,
    db_option,
    fail,
    json_option,
    on_database,
    print_json,
    settings_for,
    with_study,
    writing_output,
)
from functions.cli_help import reading
from functions.cli_output import front_title, print_study
from functions.cli_studies_table import studies_table
from functions.cli_study_state import INTERRUPTED_TRIAL, as_seen, interrupted, judged, opened_store
from functions.cli_trial_table import trial_table
from functions.core.errors import MalformedRequest
from functions.core.event_data import MAX_STORED_INT
from functions.core.records import RUNNING, StudyRecord, TrialRecord
from functions.core.views import observation_key, study_view, trial_detail, trial_view


@click.command(cls=ReadingCommand, epilog=reading(("katuna studies", "katuna studies --json --db runs.db")))
@db_option
@json_option
def studies(db: str | None, as_json: bool) -> None:
    """List the stored studies."""
    with opened_store(db) as store:
        views = [judged(study_view(store, record), store, record, db) for record in store.list_studies()]
    if as_json:
        print_json(views)
        return
    with writing_output():
        console.print(studies_table([as_seen(view) for view in views]))

@click.command(cls=ReadingCommand, epilog=reading(("katuna show digits", "katuna show digits 3",
                                                   "katuna show digits 3 --json --after 1~999"),
                                                  "no such study or trial"))
@click.argument("name")
@click.argument("number", type=click.IntRange(0, MAX_STORED_INT), required=False)
@db_option
@json_option
@click.option("--after", metavar="KEY",
              help="With NUMBER: the trial's observations after the one keyed KEY (as the line under its table, or "
                   "observationsAfter, gives it).")
def show(name: str, number: int | None, db: str | None, as_json: bool, after: str | None) -> None:
    """Show a study: status, trial counts, best trial, stop reason. With NUMBER, its trial
    NUMBER: its state, attempt, reason, the runs it lost to disruptions and the first 1,000
    values it reported, in order (--after for the next 1,000; --json: as GET
    /studies/NAME/trials/NUMBER)."""
    if number is not None:
        _show_trial(name, number, db, as_json, _observation_key(after))
        return
    if after is not None:
        raise click.UsageError("--after: given only with a trial's NUMBER, whose observations it pages")
    store, record = with_study(db, name)
    view = judged(study_view(store, record), store, record, db)
    view["definition"] = record.spec.to_dict()
    try:
        front = _front(store, record)
    finally:
        store.close()
    if as_json:
        print_json(view)
        return
    with writing_output():
        print_study(console, as_seen(view), record, front)

def _observation_key(text: str | None) -> tuple[int, int] | None:
    """The key ``--after`` gives; a usage error naming it when it is none. Read once NUMBER is
    known, so a ``--after`` given without it is refused for that, whatever its key."""
    try:
        return None if text is None else observation_key("--after", text)
    except MalformedRequest as exc:
        raise click.BadParameter(str(exc).removeprefix("--after: "), param_hint="'--after'") from exc

def _show_trial(name: str, number: int, db: str | None, as_json: bool, after: tuple[int, int] | None) -> None:
    """``katuna show NAME NUMBER``: the trial's view with its lost runs and a page of its
    observations; exit 1 where the study has no such trial. A running trial of an interrupted
    study reads ``INTERRUPTED`` in the text, as in ``katuna trials`` and the study's counts."""
    from functions.cli_trial_detail import print_trial

    store, record = with_study(db, name)
    try:
        trial = store.get_trial(name, number)
        if trial is None:
            fail(f"study {name!r} has no trial {number}")
        view = trial_detail(store, record, trial, after)
        stalled = not as_json and trial.state == RUNNING and interrupted(store, record, db)
    finally:
        store.close()
    if as_json:
        print_json(view)
        return
    with writing_output():
        print_trial(console, name, {**view, "state": INTERRUPTED_TRIAL} if stalled else view, after is not None,
                    on_database(settings_for(db)))

BEST_JSON = ("Print JSON instead of a table: for a study of one objective the best trial itself, an object; for "
             "several, a list of the Pareto front's trials; null where no trial completed. (GET /studies/NAME/best "
             "answers a list, a page at a time, whatever the objectives.)")
"""What ``best --json`` prints: its shape follows the objectives, where the API's is a list."""

def _front(store: SqliteStore, record: StudyRecord) -> list[TrialRecord]:
    """The trials of a multi-objective study's Pareto front that ``show`` prints (none for a
    study of one objective, which needs neither the front nor NumPy)."""
    if not record.spec.multi_objective:
        return []
    from functions.core.pareto import front_sample

    return front_sample(store, record)[0]

@click.command(cls=ReadingCommand, epilog=reading(("katuna best digits", "katuna best digits --json"),
                                                  "no such study, or no completed trial (--json: null)"))
@click.argument("name")
@db_option
@click.option("--json", "as_json", is_flag=True, help=BEST_JSON)
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
