"""A study's trial table (sorted, filtered and paged in SQL, exported as CSV) and a trial's
page with its log, tailed while it runs."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from functools import partial
from urllib.parse import urlencode

from flask import Response, jsonify, redirect, render_template, request, stream_with_context, url_for
from werkzeug.datastructures import MultiDict

from functions.adapters.web import paging, tables
from functions.adapters.web.api import find_trial
from functions.adapters.web.query import attempt_ended, attempt_of, one_value, whole_number
from functions.adapters.web.ui._blueprint import blueprint, runtime
from functions.adapters.web.ui._front import cut_short, json_size
from functions.core import pbt, trial_csv
from functions.core.errors import LogGone, MalformedRequest
from functions.core.launch import trial_launch
from functions.core.live_log import LogMark
from functions.core.log_reads import LogWindow, without_escapes
from functions.core.pareto import front_marks
from functions.core.records import ACTIVE_STATES, RUNNING, StudyRecord, TrialRecord
from functions.core.spec import Study
from functions.core.trial_fields import STATES, bound_text, columns, titles
from functions.core.trial_filters import PARETO
from functions.core.trial_labels import choice_text, choices
from functions.core.trial_listing import with_front
from functions.core.trial_query import TrialQuery
from functions.core.views import (
    OBSERVATIONS_SHOWN,
    lost_runs,
    marked_view,
    observation_key,
    observation_key_text,
    observation_page,
    study_view,
)

LOG_CHUNK = 256 * 1024
"""The most log bytes one poll returns; the page asks again from the new offset."""


@blueprint.get("/studies/<name>/trials")
def trials(name: str):
    """The trial table's page. Arguments the table refuses (a bound that is not a number, a
    field without a range) bring the page back with its form as it was typed and the refusal,
    naming the argument, beside it (a 400); the table below shows what can be shown without
    what was refused (:func:`_usable`), and its links and its export keep to that. A page past
    the table's last (an old link, a hand-edited one) leads to its last page."""
    record = runtime().store().get_study(name)
    try:
        query = tables.parse_query(record.spec, request.args)
    except MalformedRequest as exc:
        usable = _usable(record.spec, request.args)
        context = _trials_context(record, usable, tables.parse_query(record.spec, usable))
        context["form"] = _typed_form(request.args, usable)
        refused = _refused_row(record.spec, context["form"]["ranges"], str(exc))
        problem = exc.up_to(context["pages"]) if isinstance(exc, tables.PageRefused) else exc
        return render_template("trials.html", problem=str(problem), refused_row=refused, **context), 400
    context = _trials_context(record, request.args, query)
    if context["page"] > context["pages"]:
        return redirect(context["link"](page=context["pages"], row=None, after=None, before=None))
    return render_template("trials.html", problem=None, refused_row=None, **context)


@blueprint.get("/studies/<name>/trials.fragment")
def trials_fragment(name: str):
    """The trial table of the same arguments alone (its count, rows and pager), which the page
    fetches again while the study runs."""
    record = runtime().store().get_study(name)
    query = tables.parse_query(record.spec, request.args)
    return render_template("trials_table.html", **_trials_context(record, request.args, query))


def _trials_context(record: StudyRecord, args: MultiDict[str, str], query: TrialQuery) -> dict:
    """The trial table ``query`` (parsed from ``args``) asks for, its links leading to the
    table's page, and the filter form that asks for it."""
    store, name = runtime().store(), record.name
    query = with_front(store, record, query)
    total, trials = store.trials_page(name, query)
    size = query.limit or max(total, 1)  # an unpaged query is one page holding every row
    with closing(trials):
        taken, cut = paging.cut(((trial.number, trial) for trial in trials), size, lambda trial: trial, json_size)
    rows = [trial for _, trial in taken]
    pages = max((total + size - 1) // size, 1)
    link = partial(_table_link, url_for("ui.trials", name=name), args)
    form = {"states": query.states, "sort": query.sort, "descending": query.descending, "size": str(query.limit),
            "ranges": [(field, bound_text(field, low), bound_text(field, high))
                       for field, low, high in query.ranges],
            "labels": {field: {choice_text(value) for value in values} for field, values in query.labels},
            "pareto": query.pareto}
    return {"study": study_view(store, record), "spec": record.spec, "rows": rows, "total": total, "query": query,
            "page": query.offset // size + 1, "pages": pages, "columns": columns(record.spec),
            "states": STATES, "sizes": tables.PAGE_SIZES, "choices": choices(record.spec), "cell": trial_csv.cell, "summary": trial_csv.summary,
            "so_far": partial(elapsed, now=runtime().clock()),
            "link": link, "form": form, "cut": cut_short(size) if cut else None,
            "first_row": query.offset + 1, "to_previous": _previous(link, query.offset, size, rows),
            "to_next": _next(link, query.offset + len(rows), size, total, rows),
            "csv": _table_link(url_for("ui.trials_csv", name=name), args),
            "fragment": _table_link(url_for("ui.trials_fragment", name=name), args),
            "front": front_marks(store, record), "given": _given_after(record.spec),
            "sorted_by": titles(record.spec).get(query.sort, query.sort)}


def _given_after(spec: Study) -> str | None:
    """The column the trial table's **given** column follows (the entry of the study's
    ``initialTrials`` a trial ran): the state, or under population-based training the parent,
    as ``katuna trials`` and the CSV export place it; None where the study gives none."""
    if not spec.initial_trials:
        return None
    return "parent" if spec.algorithm.name == pbt.NAME else "state"


def _previous(link: Callable[..., str], offset: int, size: int, rows: list[TrialRecord]) -> str | None:
    """The page before the one starting at row ``offset`` (from 0): the ``size`` rows before its
    first, found from that trial (``before``), at the page (or ``row``) where they start; the
    first page by its number alone (None on the first page)."""
    if not offset:
        return None
    start = max(offset - size, 0)
    if not start or not rows:
        return link(page=start // size + 1, row=None, after=None, before=None)
    place = {"page": start // size + 1, "row": None} if start % size == 0 else {"row": start + 1, "page": None}
    return link(**place, before=rows[0].number, after=None)


def _next(link: Callable[..., str], shown: int, size: int, total: int, rows: list[TrialRecord]) -> str | None:
    """The page after the rows up to ``shown`` (from 0, the first not listed), found from the
    last trial listed (``after``): the next page of ``size``, or, where the page was cut short
    by its bytes (or started at a ``row``), the page starting at that row; None after the last row."""
    if shown >= total or not rows:
        return None
    place = {"page": shown // size + 1, "row": None} if shown % size == 0 else {"row": shown + 1, "page": None}
    return link(**place, after=rows[-1].number, before=None)


def _typed_form(args: MultiDict[str, str], usable: MultiDict[str, str]) -> dict:
    """The filter form as it was submitted: each range's bounds as typed (so a refused one can
    be corrected where it stands), and the states, sort and size the table below uses, so that
    a refused sort, kept in a hidden input, is not sent again by the next Apply."""
    return {"states": usable.getlist("state"), "sort": usable.get("sort") or "number",
            "descending": tables.ORDERS.get(usable.get("desc") or "", False), "size": usable.get("size") or "50",
            "ranges": tables.typed_ranges(args),
            "labels": {name: set(usable.getlist(name)) for name in usable if name.startswith("param:")},
            "pareto": PARETO.get((usable.get("pareto") or "").strip().lower(), False)}


def _usable(spec: Study, args: MultiDict[str, str]) -> MultiDict[str, str]:
    """``args`` without what the table refuses: each value of another argument (``state``, a
    categorical parameter's values, ``sort``, ``desc``, ``size``, then ``page``, which counts in
    sizes) it refuses, keeping the rest; each range it refuses on its own; every range, if it
    still refuses them."""
    kept: list[tuple[str, str]] = []
    labels = [key for key in args if key.startswith("param:")]
    for pair in ((key, value) for key in (_OTHERS[0], *labels, *_OTHERS[1:]) for value in args.getlist(key)):
        if _takes(spec, [*kept, pair]):
            kept.append(pair)
    ranges = []
    for field, low, high in tables.typed_ranges(args):
        triple = [("field", field), ("min", low), ("max", high)]
        if _takes(spec, triple):
            ranges += triple
    return MultiDict(kept + ranges if _takes(spec, kept + ranges) else kept)


def _refused_row(spec: Study, ranges: list[tuple[str, str, str]], refusal: str) -> int | None:
    """The index of the first of the form's ``ranges`` that is refused on its own as the table
    refused its arguments (``refusal``): the row the refusal is shown beside, its bound or field
    marked; None where the refusal is of no one range (another argument, too many ranges)."""
    for index, (field, low, high) in enumerate(ranges):
        try:
            tables.parse_query(spec, MultiDict([("field", field), ("min", low), ("max", high)]))
        except MalformedRequest as exc:
            if str(exc) == refusal:
                return index
    return None


_OTHERS = ("state", "pareto", "sort", "desc", "size", "page", "row", "after", "before")
"""The table's arguments other than its ranges', ``page`` after the ``size`` it counts in."""


def _takes(spec: Study, args: list[tuple[str, str]]) -> bool:
    """Whether the table takes ``args``."""
    try:
        tables.parse_query(spec, MultiDict(args))
    except MalformedRequest:
        return False
    return True


def _table_link(path: str, args: MultiDict[str, str], **changes) -> str:
    """``path`` with the table's arguments ``args``, some changed (None removes one)."""
    pairs = [(k, v) for k, v in args.items(multi=True) if k not in changes]
    pairs += [(k, v) for k, v in changes.items() if v is not None]
    return path + ("?" + urlencode(pairs) if pairs else "")


@blueprint.get("/studies/<name>/trials.csv")
def trials_csv(name: str):
    """Every trial that matches the table's filters, in its order, streamed as CSV; a
    multi-objective study's with whether each is on the Pareto front."""
    store = runtime().store()
    record = store.get_study(name)
    query = with_front(store, record, tables.parse_query(record.spec, request.args, paged=False))
    rows = store.matching_trials(name, query)
    csv_text = trial_csv.csv_rows(record.spec, rows, front_marks(store, record))
    response = Response(stream_with_context(csv_text), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-trials.csv"'
    return response


@blueprint.get("/studies/<name>/trials/<trial:number>")
def trial(name: str, number: int):
    """A trial's page, with the first :data:`~functions.core.views.OBSERVATIONS_SHOWN` of its
    observations, or those after the one keyed ``after``, and a link to the next ones."""
    record, found = find_trial(name, number)
    text = one_value("after")
    after = None if text is None else observation_key("after", text)
    read, more = observation_page(runtime().store(), found, after, OBSERVATIONS_SHOWN)
    observations = [item for _, item in read]
    following = url_for("ui.trial", name=name, number=number, after=observation_key_text(read[-1][0])) if more else None
    missing = [o.metric for o in record.spec.objectives if o.metric not in found.metrics]
    shown = marked_view(front_marks(runtime().store(), record))(found)
    return render_template("trial.html", spec=record.spec, record=record, trial=shown,
                           lost=lost_runs(runtime().store(), found), observations=observations, reason=found.reason,
                           observation_count=runtime().store().count_observations(name, number), paged=after is not None,
                           following=following,
                           unavailable=found.metrics_unavailable, missing=missing,
                           active=found.state in ACTIVE_STATES, stopped=found.stopped_at_end,
                           shown_state=found.shown_state,
                           elapsed=elapsed(found, runtime().clock()))


def elapsed(trial: TrialRecord, now: float) -> float | None:
    """How long a running trial has run so far (None for one that does not run): its page and
    its row in the trial table show it, as the duration it will have once it ends."""
    return max(now - trial.started_at, 0.0) if trial.state == RUNNING and trial.started_at is not None else None


@blueprint.get("/studies/<name>/trials/<trial:number>/log")
def trial_log(name: str, number: int):
    """Log text from byte ``offset`` on (at most ``LOG_CHUNK`` bytes), the next offset, whether
    more text follows already, and whether the trial still runs (the page polls while it does),
    with the trial's state (as a person reads it: ``STOPPED`` for one its study's end stopped)
    and reason as they are now (the page shows those of the attempt it follows, which a lost run
    replaces). ``offset=-1`` starts at the last ``LOG_CHUNK`` bytes
    (``skipped`` says how many came before). Only that part of the log is read, however large it is.
    ``gone`` says why an attempt that ended has no log (its file removed, its pods deleted), null otherwise.
    The text is as a terminal shows it (:func:`~functions.core.log_reads.as_text`): a page that
    appends it overwrites its last line where the text begins with ``\\r``, and, where the
    text ends with ``\\r``, with the text after it, unless that begins with a line break.
    ``elapsed`` is how long the trial has run so far while it runs (null otherwise).
    ``mark``, where given, is where the next poll goes on from (with the ``offset`` given with
    it): on a cluster, the lines written since are read alone, not the log up to the offset
    (:mod:`functions.core.live_log`); null where it cannot."""
    record, found = find_trial(name, number)
    attempt = attempt_of(found)
    launch = trial_launch(record, replace(found, attempt=attempt))
    offset = whole_number("offset", 0, -1)
    mark = log_mark()
    gone = None
    try:
        window = runtime().log_reads.window(launch, offset, LOG_CHUNK, mark)
    except LogGone as exc:
        window = LogWindow("", max(offset, 0), False, 0)
        gone = str(exc) if attempt_ended(found, attempt) else None
    return jsonify(text=window.text, offset=window.offset, more=window.more, skipped=window.skipped, attempt=attempt,
                   running=found.state in ACTIVE_STATES, state=found.shown_state, reason=without_escapes(found.reason),
                   gone=gone, elapsed=elapsed(found, runtime().clock()),
                   mark=window.mark.token() if window.mark is not None else None)


def log_mark() -> LogMark | None:
    """The ``mark`` parameter (:meth:`~functions.core.live_log.LogMark.token`), None when absent;
    ``MalformedRequest`` when it holds no mark."""
    token = one_value("mark")
    if token is None:
        return None
    mark = LogMark.parse(token)
    if mark is None:
        raise MalformedRequest("mark: not a mark of a log this service gave; leave it out to read from the offset")
    return mark
