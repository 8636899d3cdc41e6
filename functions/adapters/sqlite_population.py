"""What a decision of population-based training reads of a study's trials
(:meth:`functions.core.store_port.Store.population_trials`): the few columns it needs, of the
trials it needs, where reading and converting every trial of a 10,000-trial study costs about a
third of a second at each decision, inside the launching handling's write transaction.

:func:`functions.core.pbt.next_plan` reads three things of the trials, each found here in SQL:
the newest generation with ``n_population`` succeeded trials (one grouped count of the completed
trials with values, through the (study, state) index), whose trials it ranks, and the next
generation's, which it counts as children (both read whole); and the failed trials, each with
every later trial of its generation and parent, among which one run again as it was would be.
A failed trial followed by one of the same generation, parent and hyperparameters as stored
(the same text: so the same values) was run again, and is left out: only the last trial of
each such group may be a failure not run again yet, found in one grouped pass; a failure's
reason is read too (a child refused its parent's checkpoint is not run again). Their decision
on these is the decision on all the trials: no other trial is the newest full generation's, its
children's, or one that answers a failure not answered yet.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from functions.adapters.sqlite_connection import loads
from functions.core.records import COMPLETE, FAIL
from functions.core.trial_reads_port import PopulationTrial

BY_STATE = "idx_trials_study_state"
COLUMNS = "number, params, generation, parent, state, trial_values, CASE WHEN state = ? THEN reason END"
GROUPS = 200
"""Failed trials' (generation, parent) groups read per statement, within SQLite's variables."""


def population_trials(conn: sqlite3.Connection, study: str, n_population: int) -> list[PopulationTrial]:
    """The trials of ``study`` a decision of population-based training reads, by number."""
    newest = conn.execute(
        f"SELECT max(g) FROM (SELECT coalesce(generation, 0) AS g FROM trials INDEXED BY {BY_STATE} "
        "WHERE study = ? AND state = ? AND trial_values NOT IN ('', 'null', '[]') GROUP BY g HAVING count(*) >= ?)",
        [study, COMPLETE, n_population]).fetchone()[0]
    rows = {row[0]: row for row in conn.execute(
        f"SELECT {COLUMNS} FROM trials WHERE study = ? AND state = ? AND number IN (SELECT max(number) FROM trials "
        "WHERE study = ? GROUP BY coalesce(generation, 0), parent, params)", [FAIL, study, FAIL, study])}
    groups: dict[tuple[int, Any], int] = {}
    for number, _, generation, parent, *_ in rows.values():
        key = (generation or 0, parent)
        groups[key] = min(number, groups.get(key, number))
    chosen = sorted(groups.items(), key=lambda item: (item[0][0], -1 if item[0][1] is None else item[0][1]))
    for start in range(0, max(len(chosen), 1), GROUPS):
        part = chosen[start:start + GROUPS]
        conditions = ["(coalesce(generation, 0) = ? AND parent IS ? AND number > ?)"] * len(part)
        args = [value for (generation, parent), number in part for value in (generation, parent, number)]
        if newest is not None and start == 0:
            conditions.append("coalesce(generation, 0) IN (?, ?)")
            args += [newest, newest + 1]
        if conditions:
            rows.update((row[0], row) for row in conn.execute(
                f"SELECT {COLUMNS} FROM trials WHERE study = ? AND ({' OR '.join(conditions)})", [FAIL, study, *args]))
    return _read([rows[n] for n in sorted(rows)])


def population_family(conn: sqlite3.Connection, study: str, numbers: list[int],
                      generation: int | None) -> tuple[list[PopulationTrial], list[PopulationTrial]]:
    """The trials of ``study`` numbered ``numbers`` and the completed ones of ``generation``
    (None: none), and every trial whose parent is one of them, each by number: what deciding
    whose checkpoint folders may go reads (:func:`functions.core.pbt.never_copied`)."""
    rows = list(conn.execute(
        f"SELECT {COLUMNS} FROM trials WHERE study = ? AND (number IN ({', '.join('?' * len(numbers))}) "
        "OR (coalesce(generation, 0) IS ? AND state = ?)) ORDER BY number", [FAIL, study, *numbers, generation, COMPLETE]))
    parents = [row[0] for row in rows]
    children = []
    for start in range(0, len(parents), GROUPS):
        part = parents[start:start + GROUPS]
        children += conn.execute(f"SELECT {COLUMNS} FROM trials WHERE study = ? AND parent IN "
                                 f"({', '.join('?' * len(part))})", [FAIL, study, *part]).fetchall()
    return _read(rows), _read(sorted(children))


def _read(rows: list[Any]) -> list[PopulationTrial]:
    return [PopulationTrial(number, loads(params), generation, parent, state, loads(values), reason)
            for number, params, generation, parent, state, values, reason in rows]


def newest_generation(conn: sqlite3.Connection, study: str) -> tuple[int, int, int]:
    """The newest generation of ``study``'s trials, its trials and those of them that completed,
    in one grouped count (0, 0, 0 before any trial has a generation)."""
    row = conn.execute("SELECT generation, count(*), sum(state = ?) FROM trials WHERE study = ? "
                       "AND generation IS NOT NULL GROUP BY generation ORDER BY generation DESC LIMIT 1",
                       [COMPLETE, study]).fetchone()
    return (0, 0, 0) if row is None else (row[0], row[1], row[2])
