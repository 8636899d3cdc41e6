"""The studies list, a study's page with its best trials, and the new-study form."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, redirect, render_template, request, url_for

from functions.adapters.web import paging
from functions.adapters.web.query import one_value, whole_number
from functions.adapters.web.ui._blueprint import blueprint, runtime
from functions.adapters.web.ui._charts import chart_params
from functions.adapters.web.ui._front import asked_page, chart_args, cut_short, front_page, json_size
from functions.core.errors import MalformedRequest
from functions.core.pareto import best_trials, front_spread
from functions.core.query_args import whole_of
from functions.core.records import RUNS_ON, StudyRecord, runs_elsewhere, stop_reach
from functions.core.resources import Origin
from functions.core.resume import is_experiment, restart_refusal
from functions.core.spec import Study
from functions.core.store_port import Store
from functions.core.views import node_pool_view, study_view

BEST_SHOWN = 5
"""How many best trials the study page lists for one objective."""
FRONT_LISTED = 500
"""How many trials of a Pareto front the study page lists, spread along it, unless asked for all
(``?front=all``, a page at a time): a front can hold most of a long study's trials, and the page and its table,
fetched again as trials finish, would grow with it (5,000 rows: a megabyte). Fewer where their JSON
passes :data:`~functions.adapters.web.paging.PAGE_BYTES` (:func:`_spread`)."""
STUDIES_SHOWN = 200
"""The most studies a page of the dashboard's list shows, the newest first (``page`` 2 the next
older, and so on): the list is fetched again every few seconds while a study runs, and each
study's view costs a few reads of its own."""
LAST_PAGE = (1 << 63) // STUDIES_SHOWN
"""The highest ``page`` the list takes: no page may start past SQLite's largest integer."""


@blueprint.get("/")
def studies():
    """The list's ``page`` (the newest :data:`STUDIES_SHOWN` first); a page past its last (an
    old link: studies were deleted since) leads to its last."""
    context = _studies_context()
    if context["page"] > context["pages"]:
        return redirect(url_for("ui.studies", page=context["pages"] if context["pages"] > 1 else None))
    return render_template("studies.html", **context)


@blueprint.get("/studies.fragment")
def studies_fragment():
    """The studies table alone, for the list's refresh; ``304``, without a study read, to an
    ``If-None-Match`` of its version as it is (:meth:`studies_version`), which the idle list
    asks with. The version follows everything the table shows but the clock (a running
    study's duration), so its ETag is weak, and compared weakly (RFC 9110 section 13.1.2)."""
    version = runtime().store().studies_version(STUDIES_SHOWN, _skipped(_page()))
    if request.if_none_match.contains_weak(version):
        unchanged = Response(status=304)
        unchanged.set_etag(version, weak=True)
        return unchanged
    response = Response(render_template("studies_table.html", **_studies_context(version)))
    response.set_etag(version, weak=True)
    return response


def _page() -> int:
    return whole_of("page", one_value("page"), 1, 1, LAST_PAGE)


def _skipped(page: int) -> int:
    """The studies newer than those the list's ``page`` shows."""
    return (page - 1) * STUDIES_SHOWN


def _studies_context(version: str | None = None) -> dict:
    """The views of the studies of the list's page (the newest, on its first), how many are
    stored, which page of how many this is, whether any study this service runs is running
    (shown or not), and the version of the list, read first: a change made while the views are
    read makes the next ask of the idle list fetch it again. A study left to the service that
    runs its trials elsewhere keeps the list idle: in a copied database it would run forever."""
    store, executor, page = runtime().store(), runtime().settings.executor, _page()
    version = version or store.studies_version(STUDIES_SHOWN, _skipped(page))
    views = [study_view(store, record) for record in store.newest_studies(STUDIES_SHOWN, _skipped(page))]
    census = store.census()
    stored = sum(census.studies.values())
    return {"studies": views, "stored": stored, "running": census.running_for(executor) > 0,
            "now": runtime().clock(), "version": version, "executor": executor, "runs_on": RUNS_ON,
            "page": page, "pages": max((stored + STUDIES_SHOWN - 1) // STUDIES_SHOWN, 1),
            "first": _skipped(page) + 1, "page_size": STUDIES_SHOWN}


@blueprint.get("/studies/<name>")
def study(name: str):
    """The study's page, its charts drawn for the objective, parameters and slice or contour
    its address names (:func:`_chart_choice`), as the page keeps them there when they are picked."""
    store = runtime().store()
    record = store.get_study(name)
    return render_template("study.html", study=study_view(store, record), spec=record.spec, record=record,
                           **_best(store, record), now=runtime().clock(), chosen=_chart_choice(record.spec),
                           restarts=_restarts(record), elsewhere=_elsewhere(record), reach=_reach(record),
                           follows=Origin.from_dict(record.origin).ref if record.origin is not None else None)


PAIRS = ("slice", "contour")
"""The charts the study page draws of the two parameters it picks."""


def _chart_choice(spec: Study) -> dict[str, Any]:
    """What the study page's charts are drawn for, as its address names it, so a reload or a link
    shows what was picked: ``objective`` (its index, 0 by default), ``params`` (two names,
    comma-separated: the first and second parameter picked, the study's first two by default)
    and ``pair`` (``slice``, the default, or ``contour``).
    ``MalformedRequest`` naming the argument where it holds what the charts do not take."""
    objective = whole_number("objective", 0, 0, len(spec.objectives) - 1)
    text = one_value("params") or ""
    drawn = chart_params(text, spec)  # refuses a name the study does not have
    names = text.split(",")[:2] if text else list(drawn)
    rest = [p.name for p in spec.parameters if p.name not in names]
    first, second = (names + rest + names + ["", ""])[:2]  # a damaged study's record has no parameters
    pair = one_value("pair") or PAIRS[0]
    if pair not in PAIRS:
        raise MalformedRequest(f"pair: expected one of {', '.join(PAIRS)}, got {pair!r:.40}")
    return {"objective": objective, "params": (first, second), "pair": pair}


def _elsewhere(record: StudyRecord) -> str | None:
    """Why this service leaves the study alone, where its trials run elsewhere; None where it runs them."""
    executor = runtime().settings.executor
    return str(runs_elsewhere(record, executor)) if record.runs_away_from(executor) else None


def _reach(record: StudyRecord) -> str | None:
    """What the study's Stop leaves running, where its trials run elsewhere (its confirmation
    says so); None where this service runs them, and its Stop stops them."""
    return stop_reach(record) if record.runs_away_from(runtime().settings.executor) else None


@blueprint.get("/studies/<name>/actions.fragment")
def actions_fragment(name: str):
    """The study page's Stop (while the study runs) or Restart… (once it ended so that it can
    restart) alone, which the page fetches again when it sees the study end."""
    record = runtime().store().get_study(name)
    return render_template("study_actions.html", study={"name": record.name, "status": record.status},
                           restarts=_restarts(record), reach=_reach(record))


def _restarts(record: StudyRecord) -> bool:
    """Whether the study restarts when submitted again with its trial budget raised, and the
    dashboard may submit it (:func:`functions.core.resume.restart_refusal`)."""
    return restart_refusal(record) is None


@blueprint.get("/studies/<name>/node-hours.fragment")
def node_hours_fragment(name: str):
    """The study page's node-hours alone (measured on its pool's nodes, with their cost), which
    the page fetches again while the study runs, and once as it ends."""
    store = runtime().store()
    return render_template("study_node_hours.html", use=node_pool_view(store, store.get_study(name)))


@blueprint.get("/studies/<name>/best.fragment")
def best_fragment(name: str):
    """The study page's best trials (of several objectives, the Pareto front, spread along it
    or a page of all of it) alone, which the page fetches again as trials finish."""
    store = runtime().store()
    record = store.get_study(name)
    return render_template("best_table.html", record=record, spec=record.spec, **_best(store, record))


def _best(store: Store, record: StudyRecord) -> dict[str, Any]:
    """The best trials the study page lists (``best``): of a Pareto front, :data:`FRONT_LISTED`
    spread along it, or with ``?front=all`` a page of all of it (:func:`._front.front_page`,
    with its ``pager`` and the arguments that fetch it ``again``), and the front's size (``front``).
    The front's arguments are checked whatever the study (:func:`._front.asked_page`), and
    ``?front=all`` is refused for a study of one objective, which has no front."""
    whole = asked_page()
    if not record.spec.multi_objective:
        if whole is not None:
            raise MalformedRequest(f"front: needs several objectives: this study has one, "
                                   f"{record.spec.objectives[0].metric!r}, and no Pareto front; its page lists its "
                                   f"{BEST_SHOWN} best trials")
        return {"best": best_trials(store, record, limit=BEST_SHOWN), "front": None, "pager": None, "again": {}}
    if whole is not None:
        return front_page(store, record, whole)
    return _spread(store, record)


def _spread(store: Store, record: StudyRecord) -> dict[str, Any]:
    """The study page's :data:`FRONT_LISTED` trials spread along its Pareto front, cut at
    :data:`~functions.adapters.web.paging.PAGE_BYTES` of their JSON as a page of ``?front=all``
    is (a trial's parameters may hold hundreds of kilobytes: 500 of them, hundreds of
    megabytes), read a few at a time and spread along the front however many fit; ``cut``
    says why fewer were listed than asked for (None where none were left out); ``again``, the
    chart choices its "list all" link keeps."""
    trials, size = front_spread(store, record, FRONT_LISTED)
    taken, cut = paging.cut(trials, FRONT_LISTED, lambda trial: trial, json_size)
    listed = [trial for _, trial in sorted(taken, key=lambda placed: placed[0])]
    return {"best": listed, "front": size, "pager": None, "again": chart_args(),
            "cut": cut_short(FRONT_LISTED) if cut else None}


@blueprint.get("/new")
def new_study():
    """The new-study form; ``?restart=<name>`` fills it with that study's definition as it was
    submitted (as JSON, which reads back exactly), to submit again with its budget raised, or,
    where the study cannot restart, saying why (the definition then serves a study of a new name)."""
    name = one_value("restart")
    if name is None:
        return render_template("new.html", restart=None, text="")
    store = runtime().store()
    record = store.get_study(name)
    return render_template("new.html", restart=record, trials=store.count_trials(name).created,
                           experiment=is_experiment(record.definition), refused=restart_refusal(record),
                           text=json.dumps(record.definition, indent=2, ensure_ascii=False))
