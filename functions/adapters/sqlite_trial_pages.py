"""A study's trials as the listings read them: filtered, ordered and paged in SQL
(:mod:`functions.adapters.sqlite_trial_queries`), a page at a time, at the same cost at any
study size: by position with a count (the dashboard's trial table), every match (its CSV
export), or after a key (the API's trial listing and ``katuna trials``); and a study's waiting
trials as they stand in line for room among the trials running at once."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import closing
from dataclasses import replace
from typing import Any

from functions.adapters.sqlite_connection import reading
from functions.adapters.sqlite_migrations import WAITING_LINE, WAITING_SINCE
from functions.adapters.sqlite_trial_queries import KEY_COLUMN, keyed_page, order_key, page_numbers, where_and_order
from functions.adapters.sqlite_trials import SqliteTrials
from functions.core.records import WAITING, TrialRecord
from functions.core.spec import Study
from functions.core.trial_order import TrialKey
from functions.core.trial_query import TrialQuery
from functions.core.trial_reads_port import InLine


class SqliteTrialPages(SqliteTrials):
    """The listings of the trials, on the store's connection."""

    def query_trials(self, study: str, query: TrialQuery) -> tuple[list[TrialRecord], int]:
        """Filtering, ordering and paging all happen in SQL, so a page costs the same at any size."""
        total, rows = self._page(study, query)
        return list(self._trials_of(rows)), total

    def trials_page(self, study: str, query: TrialQuery) -> tuple[int, Generator[TrialRecord, None, None]]:
        """As :meth:`query_trials`, the page's rows read one at a time, as the dashboard's trial
        table takes them until its bytes are full: a row may hold hundreds of kilobytes."""
        total, rows = self._page(study, query)
        return total, self._trials_of(rows)

    @reading
    def waiting_line(self, study: str, slots: int | None, first: int, passed_over: str) -> list[InLine]:
        """Through the index of the study's waiting trials by since when they wait, read from the
        longest waiting on until ``first`` are found; where ``slots`` are fewer than those
        waiting, the lowest-numbered past them is found first, from the same index alone."""
        waiting = f"FROM trials INDEXED BY {WAITING_LINE} WHERE study = ? AND state = '{WAITING}'"
        past = None if slots is None else self.db.execute(
            f"SELECT number {waiting} ORDER BY number LIMIT 1 OFFSET ?", [study, slots]).fetchone()
        rows = self.db.execute(
            f"SELECT number, attempt, {WAITING_SINCE} AS since {waiting} AND (? IS NULL OR number < ?) "
            "AND substr(coalesce(reason, ''), 1, ?) != ? ORDER BY since, number LIMIT ?",
            [study, *[past[0] if past else None] * 2, len(passed_over), passed_over, first]).fetchall()
        return [InLine(*row) for row in rows]

    def _page(self, study: str, query: TrialQuery) -> tuple[int, Generator[dict[str, Any], None, None]]:
        """The count of the trials ``query`` matches, and the rows of its page, read as they are
        taken. A page in another order than the number's is found by its trials' numbers first,
        then read a row at a time by number: SQLite's sort of the trials before the page (every
        trial of the study, for a page near its end) then holds each one's number and value,
        not its whole row, which made a deep page of 100,000 trials sorted by a metric six
        times slower; each trial's value is read once (:func:`page_numbers`). A page that
        follows (or precedes) a trial is found from that trial's key (:meth:`_keyed_numbers`),
        with no sort of the trials before it."""
        spec = self.get_study(study).spec
        condition, args, order, order_args = where_and_order(study, spec, query)
        total = self.db.execute(f"SELECT count(*) FROM trials WHERE {condition}", args).fetchone()[0]
        if query.limit is None:
            return total, self._lazy_rows(f"SELECT * FROM trials WHERE {condition} ORDER BY {order}",
                                          [*args, *order_args])
        numbers = self._keyed_numbers(study, spec, query)
        if numbers is None:
            numbers = self._placed_numbers(study, spec, query, total)
        return total, self._numbered_rows(study, numbers)

    def _placed_numbers(self, study: str, spec: Study, query: TrialQuery, total: int) -> list[int]:
        """The numbers of the page at ``query.offset`` of the ``total`` trials it matches, counted
        from the nearer end: a page in the second half (the last, which the pager links) is read
        in the reverse order, past the rows after it, not the more rows before it."""
        rest = total - query.offset
        if query.limit is None or query.offset <= rest or rest <= 0:
            return [row[0] for row in self.db.execute(*page_numbers(study, spec, query))]
        tail = replace(query, limit=min(query.limit, rest), offset=max(rest - query.limit, 0))
        return [row[0] for row in self.db.execute(*page_numbers(study, spec, tail, forward=False))][::-1]

    def _keyed_numbers(self, study: str, spec: Study, query: TrialQuery) -> list[int] | None:
        """The numbers of the page just after ``query.after`` (or just before ``query.before``)
        in the query's order, found from that trial's key without counting the trials before it
        (:func:`page_numbers`); None where the query names no trial, or one not stored."""
        number = query.after if query.after is not None else query.before
        if number is None:
            return None
        found = self.db.execute(*order_key(study, spec, query, number)).fetchone()
        if found is None:
            return None
        forward = query.after is not None
        numbers = [row[0] for row in self.db.execute(*page_numbers(study, spec, query, (found[0], number), forward))]
        return numbers if forward else numbers[::-1]

    def _numbered_rows(self, study: str, numbers: list[int]) -> Generator[dict[str, Any], None, None]:
        """The rows of the study's trials ``numbers``, in that order, each read as it is taken
        (one gone since its number was read is left out)."""
        for number in numbers:
            rows = self._rows("SELECT * FROM trials WHERE study = ? AND number = ?", [study, number])
            yield from rows

    def matching_trials(self, study: str, query: TrialQuery, page: int = 1000) -> Generator[TrialRecord, None, None]:
        """Every trial that matches ``query``, in its order (its ``offset`` and ``limit`` left
        aside), read ``page`` at a time: the numbers of them all come from one sorted query, then
        their rows by number. So a whole export costs one sort and memory for the numbers alone,
        where pages at growing offsets sorted the study again for each, quadratic in its size."""
        condition, args, order, order_args = where_and_order(study, self.get_study(study).spec, query)
        numbers = [row[0] for row in self.db.execute(f"SELECT number FROM trials WHERE {condition} ORDER BY {order}",
                                                     [*args, *order_args])]
        for start in range(0, len(numbers), page):
            yield from self.numbered_trials(study, numbers[start:start + page])

    def keyed_trials(self, study: str, query: TrialQuery,
                     after: TrialKey | None) -> Generator[tuple[TrialKey, TrialRecord], None, None]:
        """Up to ``query.limit`` trials that ``query`` matches, in its order, after the trial
        keyed ``after`` (None: from the first), each with its key, read one at a time as they
        are taken. No count: a page costs its own rows (and, ordered by another field than the
        number, one sort of the trials that match), at any study size."""
        sql, args = keyed_page(study, self.get_study(study).spec, query, after)
        with closing(self._lazy_rows(sql, args)) as rows:
            for row in rows:
                yield (row.pop(KEY_COLUMN), row["number"]), self._trial(row)


