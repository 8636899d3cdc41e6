"""The study API: submit, list, inspect, stop and delete studies; read trials, their logs and the best of them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from itertools import chain
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, jsonify, request, stream_with_context, url_for
from werkzeug.exceptions import BadRequest
from werkzeug.routing import BaseConverter

from functions.adapters.web import paging, query, study_keys, takes
from functions.adapters.web.errors import RETRY_AFTER_SECONDS
from functions.adapters.web.openapi import document
from functions.adapters.web.query import attempt_ended, attempt_of
from functions.core.application import Application
from functions.core.errors import FollowsResource, LogGone, MalformedRequest, StudyNotFound
from functions.core.formats import decode
from functions.core.launch import trial_launch
from functions.core.naming import LABEL_EXPECTED, is_label
from functions.core.pareto import best_after, front_marks
from functions.core.resources import Origin
from functions.core.store_port import has_study
from functions.core.study_file import parse_file
from functions.core.template_sources import load
from functions.core.trial_listing import LISTING_ARGUMENTS, parse_listing, with_front
from functions.core.trial_order import TrialKey, key_text
from functions.core.views import (
    marked_view,
    observation_key,
    observation_key_text,
    observation_view,
    study_view,
    trial_detail,
)

blueprint = Blueprint("api", __name__)

LARGEST_TRIAL_NUMBER = (1 << 63) - 1
"""SQLite's largest integer: a larger number names no trial."""


class TrialNumber(BaseConverter):
    """The ``{number}`` of a trial's path: a whole number from 0 to :data:`LARGEST_TRIAL_NUMBER`
    in ASCII digits, as a query parameter takes it (:func:`.query.whole_of`), where werkzeug's
    ``int`` takes any Unicode digit (``１``) and leaves ``-1`` or ``abc`` to a 404 that names no
    parameter. Any other segment is a ``400 malformed_request`` naming ``number`` and the range."""

    def to_python(self, value: str) -> int:
        try:
            return query.whole_of("number", value, 0, 0, LARGEST_TRIAL_NUMBER)
        except MalformedRequest as exc:
            raise BadRequest(str(exc)) from exc


class StudyName(BaseConverter):
    """The ``{name}`` of a study's path: a DNS-1123 label, as every study's name is and as the
    document's pattern says; any other segment is a ``400 malformed_request`` naming ``name``
    and the rule (as :class:`TrialNumber` names ``number``), not a 404 that says no more than
    that no study has it."""

    def to_python(self, value: str) -> str:
        if not is_label(value):
            raise BadRequest(f"name: expected {LABEL_EXPECTED}, got {value!r:.80}")
        return value


def _runtime() -> Application:
    return current_app.extensions["katuna"]


def _links(name: str) -> dict[str, str]:
    return {"self": url_for("api.get_study", name=name), "trials": url_for("api.list_trials", name=name),
            "best": url_for("api.list_best", name=name), "stop": url_for("api.stop_study", name=name)}


@blueprint.get("/healthz")
def healthz():
    return jsonify(status="ok")


READY_PATH = "/readyz"
TOLD_WHY = "katuna_told_why"
"""The key of Flask's ``g`` where the guard leaves the question whether ``/readyz`` may tell its
caller why the service is not ready (:func:`functions.adapters.web.callers.may_be_told_why`): asked only
on a ``503``, so a ready service's probes pay for no peer lookup or token comparison."""
UNTOLD = "not ready: the service's log says why, as this answer does to a caller who may read the studies"
"""``/readyz``'s reason to any other caller: the status alone."""


@blueprint.get(READY_PATH)
def readyz():
    """Ready, or ``503 not_ready`` with ``Retry-After`` as every ``503`` has it, saying why to a
    caller who may read the studies (:data:`TOLD_WHY`), and only that it is not to any other."""
    reason = _runtime().not_ready()
    if reason:
        told_why = g.get(TOLD_WHY)
        message = reason if told_why is not None and told_why() else UNTOLD
        return (jsonify(status="not ready", error="not_ready", message=message, retryable=True), 503,
                {"Retry-After": str(RETRY_AFTER_SECONDS)})
    return jsonify(status="ready")


@blueprint.get("/openapi.json")
def openapi():
    return jsonify(document())


@blueprint.post("/studies")
@takes.body
def create_study():
    """Submit a study (YAML or JSON; the content type is checked with every write): 201 when
    new, 200 when the identical one exists, or when an ended study (a Katib Experiment, or a
    native study) restarts with the trial budget the definition raises. A trial template held in a ConfigMap is read where
    trials run on Kubernetes, and stored inline. List values that clash are refused only in a
    study not stored yet (:func:`functions.core.validate.parse_study`)."""
    runtime = _runtime()
    submitted, given = parse_file(decode(request.get_data()))
    spec, definition = load(submitted, runtime.templates, runtime.settings.limits, partial(has_study, runtime.store()),
                            given)
    record, created = runtime.submit(spec, definition)
    body = {"name": record.name, "status": record.status, "links": _links(record.name)}
    response = jsonify(body)
    response.status_code = 201 if created else 200
    response.headers["Location"] = url_for("api.get_study", name=record.name)
    return response


STUDIES_PAGE = 500
"""Studies in a page of ``GET /studies`` when ``limit`` is left out."""

MAX_STUDIES_PAGE = 1_000
"""The largest ``limit`` of that listing: each study's view costs a few reads of its own."""


@blueprint.get("/studies")
@takes.query
def list_studies():
    """The studies in the order they were stored, a page at a time (:mod:`.paging`): however
    many are stored, one request views at most ``limit`` of them. A page follows the study
    keyed ``after`` (:mod:`.study_keys`)."""
    limit, text = paging.page_asked("after", STUDIES_PAGE, MAX_STUDIES_PAGE)
    after = study_keys.study_key("after", text)
    store = _runtime().store()
    return paging.page((row for row in store.studies_page(limit + 1, after)), limit,
                       lambda last: url_for("api.list_studies", limit=limit, after=study_keys.key_text(last)),
                       partial(study_view, store))


@blueprint.get("/studies/<study:name>")
def get_study(name: str):
    store = _runtime().store()
    record = store.get_study(name)
    view = study_view(store, record)
    view["definition"] = record.spec.to_dict()
    view["links"] = _links(name)
    return jsonify(view)


TRIALS_PAGE = 1_000
"""Trials in a page of ``GET /studies/{name}/trials`` when ``limit`` is left out."""

MAX_TRIALS_PAGE = 10_000
"""The largest ``limit`` of that listing; a page is also cut at :data:`paging.PAGE_BYTES`."""


LISTING_PARAMETERS = (paging.LIMIT, *LISTING_ARGUMENTS)
"""What ``GET /studies/{name}/trials`` takes, besides a categorical parameter's values."""


@blueprint.get("/studies/<study:name>/trials")
@takes.query
def list_trials(name: str):
    """The study's trials, a page at a time (:mod:`.paging`): ``limit`` of them after the trial
    keyed ``after``, and a ``Link`` to the next page while more follow. Filtered and ordered as
    :mod:`functions.core.trial_listing` reads the request (by number when no ``order`` is
    asked), all in SQL, ``pareto`` as the numbers of the front the process keeps; the next link
    keeps the filters and the order."""
    unknown = sorted(key for key in set(request.args) - set(LISTING_PARAMETERS) if not key.startswith("param:"))
    if unknown:
        raise MalformedRequest(f"{unknown[0]:.40}: not a parameter of this listing, which takes "
                               f"{', '.join(LISTING_PARAMETERS)} and param:<name> (a categorical parameter's values)")
    limit = query.whole_number(paging.LIMIT, TRIALS_PAGE, 1, MAX_TRIALS_PAGE)
    store = _runtime().store()
    record = store.get_study(name)
    asked, after = parse_listing(record.spec, request.args)
    trials = store.keyed_trials(name, replace(with_front(store, record, asked), limit=limit + 1), after)
    return paging.page(trials, limit, partial(_next_trials, name, limit, asked.sort),
                       marked_view(front_marks(store, record)))


def _next_trials(name: str, limit: int, field: str, key: TrialKey) -> str:
    """The path of the page of the listing after the trial keyed ``key``: the same filters and
    order, its ``limit`` written out, and its ``after``."""
    kept = [(arg, value) for arg, value in request.args.items(multi=True) if arg not in (paging.LIMIT, "after")]
    pairs = [(paging.LIMIT, str(limit)), *kept, ("after", key_text(field, key))]
    return url_for("api.list_trials", name=name) + "?" + urlencode(pairs)


@blueprint.get("/studies/<study:name>/best")
@takes.query
def list_best(name: str):
    """The study's best trials by number, a page at a time (:mod:`.paging`): its best trial, or
    with several objectives every trial of its Pareto front, of which ``GET /studies/{name}``
    lists a sample."""
    limit, after = paging.page_request("after", TRIALS_PAGE, MAX_TRIALS_PAGE)
    store = _runtime().store()
    record = store.get_study(name)
    trials = ((t.number, t) for t in best_after(store, record, after, limit + 1))
    return paging.page(trials, limit, lambda last: url_for("api.list_best", name=name, limit=limit, after=last),
                       marked_view(front_marks(store, record)))


def find_trial(name: str, number: int):
    """The study's record and its trial ``number``; ``StudyNotFound`` for either missing."""
    store = _runtime().store()
    record = store.get_study(name)
    trial = store.get_trial(name, number) if number <= LARGEST_TRIAL_NUMBER else None
    if trial is None:
        raise StudyNotFound(f"study {name!r} has no trial {number}")
    return record, trial


@blueprint.get("/studies/<study:name>/trials/<trial:number>")
def get_trial(name: str, number: int):
    """The trial with its first observations; while more follow, ``observationsAfter`` is the
    key :func:`list_observations` goes on from."""
    record, trial = find_trial(name, number)
    return jsonify(trial_detail(_runtime().store(), record, trial))


OBSERVATIONS_PAGE = 1_000
"""Observations in a page of ``GET /studies/{name}/trials/{number}/observations`` when ``limit`` is left out."""

MAX_OBSERVATIONS_PAGE = 10_000
"""The largest ``limit`` of that listing (an attempt keeps at most as many)."""


@blueprint.get("/studies/<study:name>/trials/<trial:number>/observations")
@takes.query
def list_observations(name: str, number: int):
    """The values the trial reported, in order (by attempt, then as each attempt printed them),
    a page at a time (:mod:`.paging`): ``limit`` of them after the one keyed ``after``
    (``attempt~place``, as the next link gives it)."""
    limit, text = paging.page_asked("after", OBSERVATIONS_PAGE, MAX_OBSERVATIONS_PAGE)
    after = None if text is None else observation_key("after", text)
    _, trial = find_trial(name, number)
    rows = ((key, observation_view(key, o))
            for key, o in _runtime().store().observations_after(name, trial.number, after, limit + 1))
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
    limit = _runtime().settings.max_log
    lines = _runtime().log_reads.ends(launch, limit // 2, limit - limit // 2, overwrite=terminal)
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


@blueprint.post("/studies/<study:name>/stop")
def stop_study(name: str):
    _stop(name)
    store = _runtime().store()
    return jsonify(study_view(store, store.get_study(name)))


@blueprint.delete("/studies/<study:name>")
def delete_study(name: str):
    """Stop, then delete the study; one that follows a Kubernetes resource that is still there
    is refused (409) and left as it is (:meth:`~functions.core.resources.Origin.delete_refusal`).
    The checkpoints of its trials (population-based training) are deleted before its record,
    local ones at once, those on the cluster's claim by a Job asked for, so a deletion cut short
    leaves the study, for a deletion again; its trial logs stay."""
    uid = _refuse_followed(name)
    _stop(name)
    runtime = _runtime()
    record = runtime.store().get_study(name)
    if record.uid == uid:
        runtime.drop_checkpoints(record)
    runtime.store().delete_study(name, uid)
    return "", 204


def _refuse_followed(name: str) -> str:
    """``FollowsResource`` when the study came from a resource the cluster still holds (the
    same uid): a resource deleted, or made again as another, no longer brings it back. Else the
    study's uid, so that the delete that follows the stop deletes the study it stopped, never
    one stored under its name meanwhile."""
    runtime = _runtime()
    record = runtime.store().get_study(name)
    if record.origin is None:
        return record.uid
    origin = Origin.from_dict(record.origin)
    current = runtime.resources.get(origin.ref)
    if current is not None and (current.get("metadata") or {}).get("uid") == origin.uid:
        raise FollowsResource(origin.delete_refusal(name))
    return record.uid


def _stop(name: str) -> None:
    """End the study, or finish ending it: a study a handler has just ended has its running
    trials stopped by its ``study.completed``, which may not have arrived yet. That event's id
    follows from the study's uid, so this delivery and that one stop the trials once."""
    _runtime().stop(name)
