"""A query of one page of a study's trials, as a store answers it
(:meth:`~functions.core.store_port.Store.query_trials`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SORT_COLUMNS = ("number", "state", "value", "startedAt", "finishedAt", "duration")
"""Trial fields a query sorts or filters by, besides ``param:<name>`` and ``metric:<name>``."""


@dataclass(frozen=True)
class TrialQuery:
    """One page of a study's trials: which states, which ranges, which values, in which order.

    A field is one of :data:`SORT_COLUMNS`, ``param:<name>`` or ``metric:<name>``; a range is
    ``(field, low, high)`` with either bound optional (inclusive). Trials without the field
    sort last and fall outside every range. A label is ``(field, values)``, a categorical
    parameter and the values (as stored: text, numbers, booleans, null) one of which it must have.
    ``pareto`` keeps the trials of the study's Pareto front alone, whose numbers ``front`` holds
    once the front is read (:func:`functions.core.trial_listing.with_front`): a store refuses a
    query that asks for the front without them, rather than list every trial as if filtered.
    ``after`` (or ``before``), the number of a trial, starts the page just after (or ends it
    just before) that trial's place in the order, in place of ``offset`` (keyset paging: a deep
    page costs what the first does); a trial not stored leaves the page at its ``offset``.
    """

    states: tuple[str, ...] = ()
    ranges: tuple[tuple[str, float | None, float | None], ...] = ()
    sort: str = "number"
    descending: bool = False
    offset: int = 0
    limit: int | None = 50
    labels: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    pareto: bool = False
    front: tuple[int, ...] | None = None
    after: int | None = None
    before: int | None = None
