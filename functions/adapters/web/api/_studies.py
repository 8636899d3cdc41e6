"""The study operations: submit, list, inspect, stop and delete studies."""

from __future__ import annotations

from functools import partial

from flask import jsonify, request, url_for

from functions.adapters.web import paging, study_keys, takes
from functions.adapters.web.api._blueprint import blueprint, links, runtime
from functions.adapters.web.api._versions import tagged, unchanged
from functions.core.errors import FollowsResource
from functions.core.formats import decode
from functions.core.resources import Origin
from functions.core.store_port import has_study
from functions.core.study_file import parse_file
from functions.core.template_sources import load
from functions.core.views import study_view


@blueprint.post("/studies")
@takes.body
def create_study():
    """Submit a study (YAML or JSON; the content type is checked with every write): 201 when
    new, 200 when the identical one exists, or when an ended study (a Katib Experiment, or a
    native study) restarts with the trial budget the definition raises. A trial template held in a ConfigMap is read where
    trials run on Kubernetes, and stored inline. List values that clash are refused only in a
    study not stored yet (:func:`functions.core.validate.parse_study`)."""
    service = runtime()
    submitted, given = parse_file(decode(request.get_data()))
    spec, definition = load(submitted, service.templates, service.settings.limits, partial(has_study, service.store()),
                            given)
    record, created = service.submit(spec, definition)
    body = {"name": record.name, "status": record.status, "links": links(record.name)}
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
    """The studies in the order they were stored, a page at a time (:mod:`..paging`): however
    many are stored, one request views at most ``limit`` of them. A page follows the study
    keyed ``after`` (:mod:`..study_keys`)."""
    limit, text = paging.page_asked("after", STUDIES_PAGE, MAX_STUDIES_PAGE)
    after = study_keys.study_key("after", text)
    store = runtime().store()
    return paging.page((row for row in store.studies_page(limit + 1, after)), limit,
                       lambda last: url_for("api.list_studies", limit=limit, after=study_keys.key_text(last)),
                       partial(study_view, store))


@blueprint.get("/studies/<study:name>")
def get_study(name: str):
    """The study's view, with its definition and links, and a weak ``ETag`` (:mod:`._versions`):
    ``304`` to an ``If-None-Match`` that names it, read from the study's version alone. A study
    whose node pool is in use shows node-hours that grow with the clock, and has no ``ETag``."""
    store = runtime().store()
    version = store.study_version(name)
    same = unchanged(version)
    if same is not None:
        return same
    record = store.get_study(name)
    view = study_view(store, record)
    view["definition"] = record.spec.to_dict()
    view["links"] = links(name)
    return tagged(jsonify(view), version)


@blueprint.post("/studies/<study:name>/stop")
def stop_study(name: str):
    _stop(name)
    store = runtime().store()
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
    service = runtime()
    record = service.store().get_study(name)
    if record.uid == uid:
        service.drop_checkpoints(record)
    service.store().delete_study(name, uid)
    return "", 204


def _refuse_followed(name: str) -> str:
    """``FollowsResource`` when the study came from a resource the cluster still holds (the
    same uid): a resource deleted, or made again as another, no longer brings it back. Else the
    study's uid, so that the delete that follows the stop deletes the study it stopped, never
    one stored under its name meanwhile."""
    service = runtime()
    record = service.store().get_study(name)
    if record.origin is None:
        return record.uid
    origin = Origin.from_dict(record.origin)
    current = service.resources.get(origin.ref)
    if current is not None and (current.get("metadata") or {}).get("uid") == origin.uid:
        raise FollowsResource(origin.delete_refusal(name))
    return record.uid


def _stop(name: str) -> None:
    """End the study, or finish ending it: a study a handler has just ended has its running
    trials stopped by its ``study.completed``, which may not have arrived yet. That event's id
    follows from the study's uid, so this delivery and that one stop the trials once."""
    runtime().stop(name)
