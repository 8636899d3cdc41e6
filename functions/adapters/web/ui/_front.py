"""The study page's whole Pareto front (``?front=all``), a page at a time.

A front can hold most of a study's trials (up to ``KATUNA_MAX_HISTORY``, 100,000), and each
trial's parameters hundreds of kilobytes, so the table lists a page of it by number, read as
``GET /studies/{name}/best`` reads its pages (:func:`~functions.core.pareto.best_after`, a few
trials at a time) and cut alike, at ``size`` trials or :data:`~functions.adapters.web.paging.PAGE_BYTES`
of their JSON, whichever comes first. The next page follows the last trial listed (keyset
paging, as the API's), so a trial that joins or leaves the front meanwhile shifts no page.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from flask import current_app, url_for

from functions.adapters.web import paging, tables
from functions.adapters.web.query import one_value, whole_number
from functions.core.errors import MalformedRequest
from functions.core.pareto import best_after, front_numbers
from functions.core.records import StudyRecord, TrialRecord
from functions.core.store_port import Store
from functions.core.views import trial_view

FRONT_PAGE = 500
"""Trials of the front a page lists when ``size`` is left out (one of the trial table's sizes)."""


@dataclass(frozen=True)
class AskedPage:
    """The page of the front ``?front=all`` asks for: ``size`` trials (:data:`FRONT_PAGE` where
    the address gives none, ``given``) following trial ``after`` (None: from the first)."""

    given: str | None
    size: int
    after: int | None


def asked_page() -> AskedPage | None:
    """The page of the whole front the address asks for, None where it asks for none (no
    ``front``). ``front`` (``all``, or absent), ``size`` (one of the trial table's sizes) and
    ``after`` (a trial's number) are checked whether or not the page is listed, and whatever
    the study: a wrong one is a ``MalformedRequest`` naming it, never passed over."""
    given = one_value("size")
    size = tables.page_size(given or str(FRONT_PAGE))
    after = None if one_value("after") is None else whole_number("after", 0, 0)
    front = one_value("front")
    if front not in (None, "all"):
        raise MalformedRequest(f"front: expected all (the whole Pareto front, a page at a time), got {front!r:.40}")
    return None if front is None else AskedPage(given, size, after)


def front_page(store: Store, record: StudyRecord, asked: AskedPage) -> dict[str, Any]:
    """The page of the study's front ``asked`` for: its trials (``best``), the front's size
    (``front``) and the page's place in it with its links (``pager``, keeping the charts
    chosen: :func:`chart_args`); the arguments that fetch the same page again (``again``). A
    page past the front's end (an old link, trials gone from the front since) is its last."""
    given, size, after = asked.given, asked.size, asked.after
    numbers = front_numbers(store, record)
    start = 0 if after is None else bisect.bisect_right(numbers, after)
    if numbers and start == len(numbers):
        start = max(len(numbers) - size, 0)
        after = numbers[start - 1] if start else None
    trials = ((t.number, t) for t in best_after(store, record, after, size + 1))
    taken, more = paging.cut(trials, size, lambda trial: trial, json_size)
    best = [trial for _, trial in taken]
    kept = {"front": "all", "size": given, **chart_args()}
    return {"best": best, "front": len(numbers), "again": {**kept, "after": after},
            "pager": _pager(record.name, kept, numbers, start, best, more, size)}


CHART_ARGUMENTS = ("objective", "params", "pair")
"""What the study page's charts are drawn for, as its address names it."""


def chart_args() -> dict[str, str]:
    """The chart choices the request's address names, for the links that page the front to keep:
    a page of it shows the charts the page before did."""
    return {name: value for name in CHART_ARGUMENTS if (value := one_value(name)) is not None}


def json_size(trial: TrialRecord) -> int:
    """The bytes of the trial's JSON, as the API's page counts them: what the dashboard's pages
    of trials (the front, the trial table) are cut at, :data:`~functions.adapters.web.paging.PAGE_BYTES` of them."""
    return len(current_app.json.dumps(trial_view(trial)))


def cut_short(asked: int) -> str:
    """Why a page of trials lists fewer than the ``asked`` for: its bytes."""
    return (f"fewer than the {asked:,} asked for: a page holds at most {paging.PAGE_BYTES >> 20} MiB of its trials' "
            "JSON, and their parameters fill it")


def _pager(name: str, kept: dict[str, str | None], numbers: list[int], start: int, best: list[TrialRecord],
           more: bool, size: int) -> dict[str, Any]:
    """Where the page lies in the front (its first and last place, from 1) and the links to the
    first, previous, next and last pages, and to this place in pages of each size (None where
    there is no such page), and whether the page was cut short by its bytes (``cut``). The
    previous page is the ``size`` trials before this one, the last the front's last ``size``; a
    page cut short links on to the rest."""
    def link(after: int | None, **changes: Any) -> str:
        return url_for("ui.study", name=name, **{**kept, "after": after, **changes}) + "#best-trials"

    before = start - size - 1
    return {"first": start + 1, "last": start + len(best), "whole": start == 0 and not more,
            "cut": cut_short(size) if more and len(best) < size else None,
            "to_first": link(None) if start else None,
            "to_previous": link(numbers[before] if before >= 0 else None) if start else None,
            "to_next": link(best[-1].number) if more else None,
            "to_last": link(numbers[-size - 1]) if more and len(numbers) > size else None,
            "sizes": [(each, link(numbers[start - 1] if start else None, size=str(each)))
                      for each in tables.PAGE_SIZES if each != size]}
