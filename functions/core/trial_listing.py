"""A listing of a study's trials as the API's ``GET /studies/{name}/trials`` and ``katuna trials``
take it: the filters of the dashboard's trial table (:mod:`.trial_filters`), an ``order``
(:mod:`.trial_order`) and the key of the trial a page follows (``after``), read a page at a
time from the store after a key, never at a position: a page costs the same at any study size,
and following the keys reaches every trial that matches once."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace

from functions.core.pareto import front_numbers
from functions.core.query_args import one_of
from functions.core.records import StudyRecord, TrialRecord
from functions.core.spec import Study
from functions.core.store_port import Store
from functions.core.trial_filters import FILTER_ARGUMENTS, parse_filters
from functions.core.trial_order import TrialKey, parse_after, parse_order
from functions.core.trial_query import TrialQuery

LISTING_ARGUMENTS = (*FILTER_ARGUMENTS, "order", "after")
"""What a listing takes, besides a categorical parameter's values (``param:<name>``) and the
size of its page."""


def parse_listing(spec: Study, args: Mapping[str, str]) -> tuple[TrialQuery, TrialKey | None]:
    """The query ``args`` ask of the study ``spec`` describes (its filters and order; a page's
    size left to the caller) and the key its page follows; ``MalformedRequest`` naming the
    argument at fault. A filter's ``min`` and ``max`` are given once per ``field`` or not at all
    (:func:`.trial_filters.parse_filters`' ``aligned``)."""
    field, descending = parse_order(spec, one_of("order", args))
    after = parse_after(field, one_of("after", args))
    filters = parse_filters(spec, args, aligned=True)
    return replace(filters, sort=field, descending=descending), after


def keyed_listing(store: Store, study: str, query: TrialQuery, after: TrialKey | None, page: int,
                  limit: int | None = None) -> Iterator[tuple[TrialKey, TrialRecord]]:
    """The trials ``query`` matches after the trial keyed ``after``, at most ``limit`` of them
    (all when None), each with its key (the ``after`` of the page that goes on from it), read
    ``page`` at a time: a reader that stops early reads no further, and its memory stays that
    of a page at any study size."""
    left = limit
    while left is None or left > 0:
        size = page if left is None else min(left, page)
        rows = list(store.keyed_trials(study, replace(query, limit=size), after))
        yield from rows
        if len(rows) < size:
            return
        after = rows[-1][0]
        left = None if left is None else left - len(rows)


def with_front(store: Store, record: StudyRecord, query: TrialQuery) -> TrialQuery:
    """``query`` with the numbers of the study's Pareto front where it keeps the front's trials
    alone (``pareto``): the front the process keeps (:func:`functions.core.pareto.front_numbers`),
    computed again only where the study's trials changed, never for each page."""
    if not query.pareto:
        return query
    return replace(query, front=tuple(front_numbers(store, record)))
