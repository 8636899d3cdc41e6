"""Long listings a page at a time: at most a count of items and of bytes each, and the next
page's link.

A study may hold a million trials and the dead-letter sink a thousand letters of up to a MiB
each, so a listing answered whole would cost memory and time in proportion to what is stored,
up to the worker's kill. A page is read from the store one row at a time and stops at its
``limit`` or at :data:`PAGE_BYTES` of JSON, whichever comes first (always at least one item).
The next page is named by the last item's key (keyset paging), never by a position: items added
or dropped meanwhile shift no page, and none is skipped or served twice. It is given in a
``Link`` header (RFC 8288, ``rel="next"``), absent on the last page, so the body stays the list
it always was.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import closing
from typing import Any, TypeVar

from flask import Response, current_app, request

from functions.adapters.web.query import one_value, whole_number, whole_of
from functions.core.errors import MalformedRequest

PAGE_BYTES = 8 << 20
"""The most bytes of JSON items in one page (8 MiB): eight dead letters at the largest body."""

LIMIT = "limit"
COMPACT = (",", ":")
"""The separators of a page's items: no spaces, as ``jsonify`` writes every other answer."""


def page_request(cursor: str, default: int, maximum: int) -> tuple[int, int | None]:
    """The page asked for: its ``limit`` (``default`` when absent) and the key of the item it
    follows, the ``cursor`` parameter, a whole number (None: from the first)."""
    limit, key = page_asked(cursor, default, maximum)
    return limit, None if key is None else whole_of(cursor, key, 0, 0)


def page_asked(cursor: str, default: int, maximum: int) -> tuple[int, str | None]:
    """The page asked for: its ``limit`` (``default`` when absent) and the ``cursor``
    parameter's text, the key of the item it follows (None: from the first), for the listing
    to read. Any other parameter is refused, as one that would be ignored, such as ``offset``,
    makes a wrong page look right."""
    unknown = sorted(set(request.args) - {LIMIT, cursor})
    if unknown:
        raise MalformedRequest(f"{unknown[0]}: not a parameter of this listing, which takes {LIMIT} (1 to "
                               f"{maximum}, {default} when left out) and {cursor} (the key the page follows, as "
                               "its next link gives it)")
    return whole_number(LIMIT, default, 1, maximum), one_value(cursor)


Key = TypeVar("Key")


def page(items: Generator[tuple[Key, Any], None, None], limit: int, next_link: Callable[[Key], str],
         view: Callable[[Any], Any] = lambda item: item) -> Response:
    """A JSON list of the ``view`` of each of the first ``limit`` of ``items`` (key, item) that
    fit in :data:`PAGE_BYTES`, with the link to the page after the last one when more follow.
    ``items`` should hold at most ``limit + 1``: the one past the page only tells that more
    follow, and no view is made of it."""
    parts, more = cut(items, limit, lambda item: current_app.json.dumps(view(item), separators=COMPACT))
    response = Response("[" + ",".join(text for _, text in parts) + "]", mimetype="application/json")
    if more:
        response.headers["Link"] = f'<{next_link(parts[-1][0])}>; rel="next"'
    return response


def cut(items: Generator[tuple[Key, Any], None, None], limit: int, made: Callable[[Any], Any],
        size: Callable[[Any], int] = len) -> tuple[list[tuple[Key, Any]], bool]:
    """What the page makes (``made``) of each of the first ``limit`` of ``items`` (key, item)
    whose ``size`` (in bytes of JSON) fits in :data:`PAGE_BYTES` (always at least one), each
    with its key, and whether more follow. ``items`` is read no further than the one past the
    page, of which nothing is made, and closed: a page of the API (:func:`page`) and one of
    the dashboard are cut alike. A listing that wraps the store's reading of rows in ``items``
    closes that reading itself, however the page ends: a wrapper's close leaves it to the
    garbage collector, and an error's traceback keeps it open, its thread's connection held in a
    read of the database as it was."""
    parts: list[tuple[Key, Any]] = []
    total = 0
    with closing(items):
        for key, item in items:
            if len(parts) == limit:
                return parts, True
            part = made(item)
            weight = size(part)
            if parts and total + weight > PAGE_BYTES:
                return parts, True
            parts.append((key, part))
            total += weight + 1
    return parts, False
