"""A study's trial table (sorted, filtered and paged in SQL, exported as CSV) and a trial's
page with its log, tailed while it runs."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from urllib.parse import urlencode

from flask import Response, jsonify, render_template, request, stream_with_context, url_for

from functions.adapters.web import tables
from functions.adapters.web.api import find_trial
from functions.adapters.web.query import attempt_ended, attempt_of, whole_number
from functions.adapters.web.ui._blueprint import blueprint, runtime
from functions.core.errors import LogGone
from functions.core.launch import trial_launch
from functions.core.log_reads import LogWindow, without_escapes
from functions.core.records import ACTIVE_STATES
from functions.core.views import lost_runs, study_view, trial_view

LOG_CHUNK = 256 * 1024
"""The most log bytes one poll returns; the page asks again from the new offset."""


@blueprint.get("/studies/<name>/trials")
def trials(name: str):
    return render_template("trials.html", **_trials_context(name))


@blueprint.get("/studies/<name>/trials.fragment")
def trials_fragment(name: str):
    """The trial table of the same arguments alone (its count, rows and pager), which the page
    fetches again while the study runs."""
    return render_template("trials_table.html", **_trials_context(name))


def _trials_context(name: str) -> dict:
    """The trial table the request's arguments ask for, its links leading to the table's page."""
    store = runtime().store()
    record = store.get_study(name)
    query = tables.parse_query(record.spec, request.args)
    rows, total = store.query_trials(name, query)
    size = query.limit or max(total, 1)  # an unpaged query is one page holding every row
    pages = max((total + size - 1) // size, 1)
    page_path = url_for("ui.trials", name=name)
    return {"study": study_view(store, record), "spec": record.spec, "rows": rows, "total": total, "query": query,
            "page": query.offset // size + 1, "pages": pages, "columns": tables.columns(record.spec),
            "states": tables.STATES, "sizes": tables.PAGE_SIZES, "cell": tables.cell, "summary": tables.summary,
            "link": partial(_table_link, page_path), "fragment": _table_link(url_for("ui.trials_fragment", name=name))}


def _table_link(path: str, **changes) -> str:
    """``path`` with the current table's arguments, some changed (None removes one)."""
    pairs = [(k, v) for k, v in request.args.items(multi=True) if k not in changes]
    pairs += [(k, v) for k, v in changes.items() if v is not None]
    return path + ("?" + urlencode(pairs) if pairs else "")


@blueprint.get("/studies/<name>/trials.csv")
def trials_csv(name: str):
    """Every trial that matches the table's filters, in its order, streamed as CSV."""
    store = runtime().store()
    spec = store.get_study(name).spec
    query = tables.parse_query(spec, request.args, paged=False)
    rows = store.matching_trials(name, query)
    response = Response(stream_with_context(tables.csv_rows(spec, rows)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-trials.csv"'
    return response


@blueprint.get("/studies/<name>/trials/<int:number>")
def trial(name: str, number: int):
    record, found = find_trial(name, number)
    observations = runtime().store().observations(name, number)
    missing = [o.metric for o in record.spec.objectives if o.metric not in found.metrics]
    return render_template("trial.html", spec=record.spec, record=record, trial=trial_view(found),
                           lost=lost_runs(runtime().store(), found), observations=observations, reason=found.reason,
                           unavailable=found.reason.startswith("metrics unavailable"), missing=missing,
                           active=found.state in ACTIVE_STATES)


@blueprint.get("/studies/<name>/trials/<int:number>/log")
def trial_log(name: str, number: int):
    """Log text from byte ``offset`` on (at most ``LOG_CHUNK`` bytes), the next offset, whether
    more text follows already, and whether the trial still runs (the page polls while it does),
    with the trial's state and reason as they are now (the page shows those of the attempt it
    follows, which a lost run replaces). ``offset=-1`` starts at the last ``LOG_CHUNK`` bytes
    (``skipped`` says how many came before). Only that part of the log is read, however large it is.
    ``gone`` says why an attempt that ended has no log (its file removed, its pods deleted), null otherwise."""
    record, found = find_trial(name, number)
    attempt = attempt_of(found)
    launch = trial_launch(record, replace(found, attempt=attempt))
    offset = whole_number("offset", 0, -1)
    gone = None
    try:
        window = runtime().log_reads.window(launch, offset, LOG_CHUNK)
    except LogGone as exc:
        window = LogWindow("", max(offset, 0), False, 0)
        gone = str(exc) if attempt_ended(found, attempt) else None
    return jsonify(text=window.text, offset=window.offset, more=window.more, skipped=window.skipped, attempt=attempt,
                   running=found.state in ACTIVE_STATES, state=found.state, reason=without_escapes(found.reason),
                   gone=gone)
