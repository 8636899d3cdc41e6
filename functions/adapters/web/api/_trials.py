"""The trial operations: a study's trials and its best, a trial, its observations and its log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from functools import partial
from itertools import chain
from urllib.parse import urlencode

from flask import Response, jsonify, request, stream_with_context, url_for

from functions.adapters.web import paging, query, takes
from functions.adapters.web.api._blueprint import blueprint, find_trial, runtime
from functions.adapters.web.api._versions import tagged, unchanged
from functions.adapters.web.query import attempt_ended, attempt_of
from functions.core.errors import LogGone, MalformedRequest
from functions.core.launch import trial_launch
from functions.core.pareto import best_after, front_marks
from functions.core.trial_listing import LISTING_ARGUMENTS, parse_listing, with_front
from functions.core.trial_order import TrialKey, key_text
from functions.core.views import marked_view, observation_key, observation_key_text, observation_view, trial_detail

TRIALS_PAGE = 1_000
"""Trials in a page of ``GET /studies/{name}/trials`` when ``limit`` is left out."""

MAX_TRIALS_PAGE = 10_000
"""The largest ``limit`` of that listing; a page is also cut at :data:`paging.PAGE_BYTES`."""


LISTING_PARAMETERS = (paging.LIMIT, *LISTING_ARGUMENTS)
"""What ``GET /studies/{name}/trials`` takes, besides a categorical parameter's values."""


@blueprint.get("/studies/<study:name>/trials")
@takes.query
def list_trials(name: str):
    """The study's trials, a page at a time (:mod:`..paging`): ``limit`` of them after the trial
    keyed ``after``, and a ``Link`` to the next page while more follow. Filtered and ordered as
    :mod:`functions.core.trial_listing` reads the request (by number when no ``order`` is
    asked), all in SQL, ``pareto`` as the numbers of the front the process keeps; the next link
    keeps the filters and the order. A page has a weak ``ETag``, the version of the study's
    trials: ``304`` to an ``If-None-Match`` that names it, once the request is found valid, with
    no trial read (:mod:`._versions`)."""
    unknown = sorted(key for key in set(request.args) - set(LISTING_PARAMETERS) if not key.startswith("param:"))
    if unknown:
        raise MalformedRequest(f"{unknown[0]:.40}: not a parameter of this listing, which takes "
                               f"{', '.join(LISTING_PARAMETERS)} and param:<name> (a categorical parameter's values)")
    limit = query.whole_number(paging.LIMIT, TRIALS_PAGE, 1, MAX_TRIALS_PAGE)
    store = runtime().store()
    version = store.trials_version(name)
    record = store.get_study(name)
    asked, after = parse_listing(record.spec, request.args)
    same = unchanged(version)
    if same is not None:
        return same
    trials = store.keyed_trials(name, replace(with_front(store, record, asked), limit=limit + 1), after)
    return tagged(paging.page(trials, limit, partial(_next_trials, name, limit, asked.sort),
                              marked_view(front_marks(store, record))), version)


def _next_trials(name: str, limit: int, field: str, key: TrialKey) -> str:
    """The path of the page of the listing after the trial keyed ``key``: the same filters and
    order, its ``limit`` written out, and its ``after``."""
    kept = [(arg, value) for arg, value in request.args.items(multi=True) if arg not in (paging.LIMIT, "after")]
    pairs = [(paging.LIMIT, str(limit)), *kept, ("after", key_text(field, key))]
    return url_for("api.list_trials", name=name) + "?" + urlencode(pairs)


@blueprint.get("/studies/<study:name>/best")
@takes.query
def list_best(name: str):
    """The study's best trials by number, a page at a time (:mod:`..paging`): its best trial, or
    with several objectives every trial of its Pareto front, of which ``GET /studies/{name}``
    lists a sample."""
    limit, after = paging.page_request("after", TRIALS_PAGE, MAX_TRIALS_PAGE)
    store = runtime().store()
    record = store.get_study(name)
    trials = ((t.number, t) for t in best_after(store, record, after, limit + 1))
    return paging.page(trials, limit, lambda last: url_for("api.list_best", name=name, limit=limit, after=last),
                       marked_view(front_marks(store, record)))


@blueprint.get("/studies/<study:name>/trials/<trial:number>")
def get_trial(name: str, number: int):
    """The trial with its first observations; while more follow, ``observationsAfter`` is the
    key :func:`list_observations` goes on from."""
    record, trial = find_trial(name, number)
    return jsonify(trial_detail(runtime().store(), record, trial))


OBSERVATIONS_PAGE = 1_000
"""Observations in a page of ``GET /studies/{name}/trials/{number}/observations`` when ``limit`` is left out."""

MAX_OBSERVATIONS_PAGE = 10_000
"""The largest ``limit`` of that listing (an attempt keeps at most as many)."""


@blueprint.get("/studies/<study:name>/trials/<trial:number>/observations")
@takes.query
def list_observations(name: str, number: int):
    """The values the trial reported, in order (by attempt, then as each attempt printed them),
    a page at a time (:mod:`..paging`): ``limit`` of them after the one keyed ``after``
    (``attempt~place``, as the next link gives it)."""
    limit, text = paging.page_asked("after", OBSERVATIONS_PAGE, MAX_OBSERVATIONS_PAGE)
    after = None if text is None else observation_key("after", text)
    _, trial = find_trial(name, number)
    with closing(runtime().store().observations_after(name, trial.number, after, limit + 1)) as found:
        rows = ((key, observation_view(key, o)) for key, o in found)
        return paging.page(rows, limit, lambda last: url_for("api.list_observations", name=name, number=number,
                                                              limit=limit, after=observation_key_text(last)))


@blueprint.get("/studies/<study:name>/trials/<trial:number>/logs")
@takes.query
def trial_logs(name: str, number: int):
    """The output of the trial's current attempt (or ``?attempt=k``, a 404 for one that never
    ran), streamed as plain text, each carriage return a line break (the lines metrics are read
    from), or with ``?terminal=true`` as a terminal shows it: a line redrawn with carriage
    returns (a progress bar) shows its last state (:mod:`functions.core.overwrites`). A log over
    ``KATUNA_MAX_LOG`` bytes is served as its start and its end, with a note: the middle is
    never read. An ended attempt whose log is gone is a 404 saying why (``log_gone``), never an
    empty log. No other parameter is taken."""
    query.only("attempt", "terminal")
    terminal = query.flag("terminal")
    record, trial = find_trial(name, number)
    attempt = attempt_of(trial)
    launch = trial_launch(record, replace(trial, attempt=attempt))
    limit = runtime().settings.max_log
    lines = runtime().log_reads.ends(launch, limit // 2, limit - limit // 2, overwrite=terminal)
    return Response(stream_with_context(_begun(lines, attempt_ended(trial, attempt))), mimetype="text/plain")


def _begun(lines: Iterator[str], ended: bool) -> Iterator[str]:
    """``lines`` with the first read before the answer starts, so a log that is gone is an error
    answer: ``LogGone`` for an attempt that ended, none (an empty log) for one still to start."""
    try:
        first = next(lines, None)
    except LogGone:
        if ended:
            raise
        return iter(())
    return lines if first is None else chain([first], lines)
