"""A study's charts, as plotly JSON built from its history and cached, and the plotly.js that
draws them."""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

from flask import Response, request, send_file
from werkzeug.exceptions import NotFound

from functions import __version__
from functions.adapters.web.chart_cache import chart_cache
from functions.adapters.web.chart_kinds import CHARTS, OBJECTIVE_CHARTS, PARAM_CHARTS
from functions.adapters.web.compression import accepts_gzip, gzip_bytes
from functions.adapters.web.query import one_value, only, whole_number
from functions.adapters.web.ui._blueprint import blueprint, runtime
from functions.core.errors import MalformedRequest
from functions.core.records import StudyRecord
from functions.core.spec import Study
from functions.core.strict_json import dumps

BUNDLE_MAX_AGE = 86400
"""Seconds a browser keeps plotly.js before it asks again whether it changed."""


@blueprint.get("/vendor/plotly.min.js")
def plotly_js():
    """plotly.js as the ``plotly`` Python package ships it (no copy kept in this repository):
    gzipped to a browser that takes it, since the bundle is 4.8 MB and 1.5 MB compressed, which
    a first visit over a tunnel or ``kubectl port-forward`` waits for."""
    bundle = Path(str(files("plotly") / "package_data" / "plotly.min.js"))
    if accepts_gzip(request):
        response = _gzipped(bundle)
    else:
        response = send_file(bundle, mimetype="text/javascript", max_age=BUNDLE_MAX_AGE)
    response.vary.add("Accept-Encoding")
    return response


def _gzipped(bundle: Path) -> Response:
    """The bundle gzipped, compressed once per process (a fifth of a second), with an ETag of its
    own and the same caching as the bundle itself; a range request gets the whole of it."""
    stat = bundle.stat()
    body, etag = _compressed_bundle(bundle, stat.st_mtime_ns, stat.st_size)
    response = Response(body, mimetype="text/javascript")
    response.headers["Content-Encoding"] = "gzip"
    response.set_etag(etag)
    response.last_modified = datetime.fromtimestamp(stat.st_mtime, UTC)
    response.cache_control.public = True
    response.cache_control.max_age = BUNDLE_MAX_AGE
    response.make_conditional(request)
    return response


@functools.lru_cache(maxsize=1)
def _compressed_bundle(bundle: Path, mtime_ns: int, size: int) -> tuple[bytes, str]:
    """The file gzipped and the digest of that; keyed by the file's time and size too, so a
    package upgraded under a running service is compressed anew (and the old copy let go)."""
    body = gzip_bytes(bundle.read_bytes())
    return body, f"gzip-{hashlib.sha256(body).hexdigest()[:32]}"


@blueprint.get("/studies/<name>/plots/<kind>")
def plot(name: str, kind: str):
    """One chart as plotly JSON; ``{"message": ...}`` when the study cannot have it yet. A chart
    of no known kind is a ``404``, and a parameter the chart does not take a ``400``: a message
    would look like a chart still to come."""
    if kind not in CHARTS:
        raise NotFound()
    only("params", "objective")
    store = runtime().store()
    record = store.get_study(name)
    params = chart_params(one_value("params") or "", record.spec) if kind in PARAM_CHARTS else ()
    asked = whole_number("objective", 0, 0, max(len(record.spec.objectives) - 1, 0))
    objective = asked if kind in OBJECTIVE_CHARTS else 0
    version = store.optuna_version(name)
    key = (str(store.path), record.uid, kind, params, objective, version)
    gzipped = accepts_gzip(request)
    etag = chart_etag(key, gzipped)
    if request.if_none_match.contains_weak(etag):
        return _answer(Response(status=304), etag)
    chart = chart_cache.get_or_build(key, lambda: _chart(record, kind, params, objective, version))
    if gzipped and chart.gzipped is not None:
        response = Response(chart.gzipped, mimetype="application/json")
        response.headers["Content-Encoding"] = "gzip"
    else:
        response = Response(chart.body, mimetype="application/json")
    return _answer(response, etag)


def chart_etag(key: tuple, gzipped: bool) -> str:
    """The ETag of a chart's answer: a digest of its cache key (the store, the study, the chart and
    what it is drawn for, the version of the study's Optuna history), katuna's version and the
    encoding a client of gzip is sent (its gzipped JSON, or its JSON where that is small). The key
    names the chart as exactly as its body would, and a ``304`` needs no chart built: a worker
    that has not drawn it (another of the service's, or one restarted) answers without drawing it.
    A digest, not Python's ``hash``: that differs from one worker to the next."""
    named = repr((__version__, key, "gzip" if gzipped else "identity")).encode()
    return hashlib.sha256(named).hexdigest()[:32]


def _answer(response: Response, etag: str) -> Response:
    """``response`` with its ETag, and ``Vary`` saying its encoding (and so its ETag) follows
    ``Accept-Encoding``. Its ``Cache-Control`` stays the dashboard's ``no-store``: a running
    study's chart changes, and the page itself asks again naming the ETag it drew
    (``katuna.js``), which a browser that kept no copy can do."""
    response.set_etag(etag)
    response.vary.add("Accept-Encoding")
    return response


def chart_params(asked: str, spec: Study) -> tuple[str, ...]:
    """The parameters a slice or contour chart is drawn for: the first two distinct names of
    those ``asked`` (comma-separated), else the study's first two; ``MalformedRequest`` naming
    a name the study does not have, which would draw other axes than the ones asked for. The
    chart and its cache key depend on these alone, so a name repeated cannot make the same
    chart be built again."""
    known = [p.name for p in spec.parameters]
    names = asked.split(",") if asked else []
    unknown = [name for name in names if name not in known]
    if unknown:
        listed = ", ".join(map(repr, known[:10])) + (", ..." if len(known) > 10 else "")
        raise MalformedRequest(f"params: {unknown[0]!r:.80} is no parameter of study {spec.name!r}; expected names of "
                               f"its parameters, comma-separated ({listed})")
    return tuple(dict.fromkeys(names))[:2] or tuple(known[:2])


def _chart(record: StudyRecord, kind: str, params: tuple[str, ...], objective: int, version: int) -> str:
    """The chart's plotly JSON, or its message, from the study's history as the process's
    threads share it (never a copy of their own)."""
    from functions.adapters.web import plots  # Optuna's visualization stack: loaded on first use
    history = runtime().store().chart_history(record.name, version)
    storage, cut = (None, None) if history is None else history
    try:
        return plots.figure_json(storage, record, kind, params, objective, cut=cut)
    except plots.NoChart as exc:
        return dumps({"message": str(exc)})
