"""The ``katuna trials`` command: a study's trials, filtered and ordered as the API's listing,
as a table, JSON or CSV, read a bounded number at a time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import click

from functions.cli_common import (
    ReadingCommand,
    console,
    db_option,
    json_option,
    print_json_list,
    print_text,
    tell,
    with_study,
    writing_output,
)
from functions.cli_help import reading
from functions.cli_study_state import INTERRUPTED_TRIAL, interrupted
from functions.cli_trial_filters import asked_listing, filter_options
from functions.cli_trial_table import print_trials
from functions.core.pareto import front_marks
from functions.core.records import TrialRecord
from functions.core.trial_csv import csv_rows
from functions.core.trial_listing import keyed_listing, with_front
from functions.core.trial_order import TrialKey, key_text
from functions.core.views import marked_view

TRIALS_READ = 500
"""Trials read from the database at a time by ``katuna trials``: its memory stays the same at
any study size, and no read is held open while the output waits on a slow reader."""

@click.command(cls=ReadingCommand, epilog=reading((
    "katuna trials digits --state COMPLETE --order value:desc --limit 5",
    "katuna trials digits --min param:lr 0.001 --max duration 5m --json",
    "katuna trials digits --param activation=relu --csv > trials.csv",
    "katuna trials digits --limit 100 --after 99"), "no such study"))
@click.argument("name")
@db_option
@json_option
@filter_options
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N",
              help="At most N trials; where more follow, stderr names the next page's --after KEY.")
@click.option("--csv", "as_csv", is_flag=True,
              help="Print CSV with the columns of the dashboard's Export CSV: number, state, pareto (of several "
                   "objectives), each metric and parameter, attempt, times (UTC), duration (s), reason.")
def trials(name: str, db: str | None, as_json: bool, states: tuple[str, ...], lows: tuple[tuple[str, str], ...],
           highs: tuple[tuple[str, str], ...], labels: tuple[str, ...], pareto: bool, order: str | None,
           after: str | None, limit: int | None, as_csv: bool) -> None:
    """List the trials of a study by number (or --order), filtered as the API's listing is: all
    of them, or a page with --after and --limit; as a table, JSON or CSV."""
    if as_json and as_csv:
        raise click.UsageError("--json and --csv: give one of them")
    store, record = with_study(db, name)
    try:
        was_interrupted = interrupted(store, record, db)
        stored, any_state = _stored_states(states, was_interrupted)
        query, key = asked_listing(record.spec, stored, lows, highs, labels, order, after, pareto)
        query = with_front(store, record, query)
        pages: list[_Page] = []

        def listing() -> Iterator[TrialRecord]:
            """The page asked for, read anew at each call (a table of many trials reads it again)."""
            rows = keyed_listing(store, name, query, key, TRIALS_READ, None if limit is None else limit + 1)
            pages.append(_Page(rows if any_state else iter(()), limit))
            return iter(pages[-1])

        if as_json:
            print_json_list(map(marked_view(front_marks(store, record)), listing()))
        elif as_csv:
            print_text(csv_rows(record.spec, listing(), front_marks(store, record)))
        else:
            with writing_output():
                print_trials(console, record, lambda: _as_interrupted(listing()) if was_interrupted else listing(),
                             front_marks(store, record))
        listed = pages[-1]
        if not listed.count:
            filtered = any((states, lows, highs, labels, pareto, after))
            tell("no trial matches the options given" if filtered else "no trial stored yet")
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
        self.count = 0
        self.last: TrialKey = (None, -1)

    def __iter__(self) -> Iterator[TrialRecord]:
        for key, trial in self.rows:
            if self.count == self.limit:
                self.more = True
                return
            self.last, self.count = key, self.count + 1
            yield trial

def _as_interrupted(rows: Iterator[TrialRecord]) -> Iterator[TrialRecord]:
    """The trials of an interrupted study as a person reads them: a running one says
    ``INTERRUPTED``, as the study's counts do (no process runs it; the next run resumes it)."""
    return (replace(t, state=INTERRUPTED_TRIAL) if t.state == "RUNNING" else t for t in rows)

def _stored_states(states: tuple[str, ...], was_interrupted: bool) -> tuple[tuple[str, ...], bool]:
    """The ``--state`` values as the stored states they stand for, and whether any remains to
    list. ``INTERRUPTED`` (in any case), which the table shows for a running trial of an
    interrupted study, stands for ``RUNNING`` there and for no trial of another study: asked
    alone of a study that is not interrupted, it lists none (not all)."""
    asked = [part.strip().upper() for state in states for part in state.split(",")]
    if INTERRUPTED_TRIAL not in asked or "" in asked:
        return states, True
    kept = [state for state in asked if state != INTERRUPTED_TRIAL] + (["RUNNING"] if was_interrupted else [])
    return tuple(dict.fromkeys(kept)), bool(kept)
