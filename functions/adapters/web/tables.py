"""The dashboard's trial table: a query from the page's arguments (its filters parsed as the API's are,
by :mod:`functions.core.trial_filters`); its cells and CSV export are :mod:`functions.core.trial_csv`'s."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from itertools import zip_longest

from functions.adapters.web.query import one_value, whole_of
from functions.core.errors import MalformedRequest
from functions.core.query_args import every_value, whole
from functions.core.spec import Study
from functions.core.trial_fields import all_fields, bound, fields, unknown_field
from functions.core.trial_filters import FILTER_ARGUMENTS, parse_filters
from functions.core.trial_query import TrialQuery

PAGE_SIZES = (25, 50, 100, 500)
LARGEST_OFFSET = (1 << 63) - 1
"""SQLite's largest integer: no page may start beyond it."""
TABLE_ARGUMENTS = (*FILTER_ARGUMENTS, "sort", "desc", "page", "size", "row", "after", "before")
"""What the trial table's page, its fragment and its CSV export take, besides a categorical
parameter's values (``param:<name>``, repeatable: :mod:`functions.core.trial_labels`). ``row``
(from 1) starts a page at that row instead of at its ``page``: where a page was cut short by its
bytes, its next page starts at the first row it left out. ``after`` (or ``before``), a trial's
number, which the pager's next (or previous) link adds, finds the page from that trial's place
in the order rather than by counting the rows before it (keyset paging): a deep page of a large
study costs what the first does. ``page`` and ``row`` still say where the page lies, and alone
(a bookmark, a hand-typed address) find it by counting."""


def parse_query(spec: Study, args: Mapping[str, str], paged: bool = True) -> TrialQuery:
    """The query the page's arguments ask for: its filters (:func:`~functions.core.trial_filters.parse_filters`:
    ``state``, ranges as repeated ``field``/``min``/``max`` triples, a categorical parameter's
    values), ``sort``, ``desc``, ``page`` (or ``row``, and ``after`` or ``before``) and ``size``; ``MalformedRequest`` names
    a bad argument, or one the table does not take (a misspelt ``stat=FAIL`` would export every
    trial as if filtered)."""
    unknown = sorted(name for name in set(args) - set(TABLE_ARGUMENTS) if not name.startswith("param:"))
    if unknown:
        raise MalformedRequest(f"{unknown[0]:.40}: not an argument of the trial table, which takes "
                               f"{', '.join(TABLE_ARGUMENTS)} and param:<name> (a categorical parameter's values)")
    sort = one_value("sort", args) or "number"
    if sort not in fields(spec):
        raise MalformedRequest(unknown_field("sort", sort, all_fields(spec)))
    filters = parse_filters(spec, args)
    size = page_size(one_value("size", args) or "50")
    page = _page(one_value("page", args) or None, size)
    row = whole_of("row", one_value("row", args) or None, (page - 1) * size + 1, 1, LARGEST_OFFSET)
    descending = _descending(one_value("desc", args) or "")
    after, before = _trial_number("after", args), _trial_number("before", args)
    if after is not None and before is not None:
        raise MalformedRequest("after, before: give one of them (the trial a page follows, or precedes), not both")
    return replace(filters, sort=sort, descending=descending, offset=row - 1 if paged else 0,
                   limit=size if paged else None, after=after if paged else None, before=before if paged else None)


class PageRefused(MalformedRequest):
    """A ``page`` that is no page's number: its refusal says where pages start, and where the
    table's last page is known (:meth:`up_to`), which page that is."""

    def __init__(self, text: str, last: int | None = None) -> None:
        self.text = text
        upto = f" to {last}" if last else ""
        super().__init__(f"page: expected a page number from 1{upto}, got {text!r:.40}")

    def up_to(self, last: int) -> PageRefused:
        """The same refusal naming the table's last page."""
        return PageRefused(self.text, last)


def _page(text: str | None, size: int) -> int:
    """The ``page`` argument (1 when there is none); :class:`PageRefused` for one that is not a
    whole number from 1 to the last page of ``size`` rows that SQLite could reach. A number past
    the table's last page is taken here: the page leads to its last page."""
    if text is None:
        return 1
    number = whole(text)
    if number is None or not 1 <= number <= LARGEST_OFFSET // size:
        raise PageRefused(text)
    return number


def _trial_number(name: str, args: Mapping[str, str]) -> int | None:
    """The trial number argument ``name`` (``after``, ``before``) names, None when it is absent or blank."""
    text = one_value(name, args) or None
    return None if text is None else whole_of(name, text, 0, 0, LARGEST_OFFSET)


def typed_ranges(args: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """The ``field``/``min``/``max`` triples as they were typed, in order (a missing one blank),
    but those left wholly blank (the form's spare row, which it sends as it is): the form's rows,
    shown again beside a refusal of them, which the form follows with one spare row of its own."""
    fields_, lows, highs = (every_value(name, args) for name in ("field", "min", "max"))
    typed = list(zip_longest(fields_, lows, highs, fillvalue=""))[:len(fields_)]
    return [triple for triple in typed if any(text.strip() for text in triple)]


def is_bound(text: str, field: str = "") -> bool:
    """Whether ``text`` is a bound a range of ``field`` takes: blank (none), or a finite number
    (for the duration, one with units too: :func:`bound`)."""
    try:
        bound(text, "bound", field)
    except MalformedRequest:
        return False
    return True


ORDERS = {"": False, "0": False, "false": False, "1": True, "true": True}
"""What ``desc`` takes: whether the table's order is descending."""


def _descending(text: str) -> bool:
    """``desc`` as :data:`ORDERS` reads it; another value is refused, not taken as ascending."""
    if text not in ORDERS:
        raise MalformedRequest(f"desc: expected 1 or true (descending), 0 or false (ascending), got {text!r:.40}")
    return ORDERS[text]


def page_size(text: str) -> int:
    """One of :data:`PAGE_SIZES`, written as the page writes it."""
    if text not in {str(size) for size in PAGE_SIZES}:
        raise MalformedRequest(f"size: expected one of {', '.join(map(str, PAGE_SIZES))}, got {text!r:.40}")
    return int(text)
