"""The dashboard at ``/ui/``: server-rendered pages over the same store the API reads.

Studies list, study page (summary and Optuna's charts), trial table (sorted, filtered and
paged in SQL, refreshed while the study runs, exported as CSV), trial page (parameters,
metrics, observations, the log tailed while it runs), the new-study form (which posts to the
API's ``POST /studies``, and restarts an ended study with its trial budget raised) and the
login form used when ``KATUNA_API_TOKEN`` is set.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from importlib.resources import files
from pathlib import Path
from urllib.parse import unquote, urlencode

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    stream_with_context,
    url_for,
)

from functions.adapters.web import tables
from functions.adapters.web.api import find_trial
from functions.adapters.web.auth import end_session, start_session, token_matches
from functions.adapters.web.chart_cache import chart_cache
from functions.adapters.web.errors import error_response, status_of
from functions.adapters.web.query import attempt_of, whole_number
from functions.core.application import Application
from functions.core.errors import KatunaError
from functions.core.launch import trial_launch
from functions.core.log_reads import without_escapes
from functions.core.pareto import best_trials
from functions.core.records import ACTIVE_STATES, STUDY_RUNNING, StudyRecord
from functions.core.resources import Origin
from functions.core.resume import is_experiment, restartable
from functions.core.spec import Study
from functions.core.strict_json import dumps
from functions.core.views import study_view, trial_view

blueprint = Blueprint("ui", __name__, url_prefix="/ui", static_folder="static", template_folder="templates")

LOG_CHUNK = 256 * 1024
"""The most log bytes one poll returns; the page asks again from the new offset."""
BEST_SHOWN = 5
"""How many best trials the study page lists for one objective (of several: the whole front)."""
DATA_SUFFIXES = (".json", "/log", "/plots", ".csv", ".fragment")
"""Paths a page's script fetches: without a session they answer 401, never the login page."""
PARAM_CHARTS = ("slice", "contour")
"""The charts drawn for the parameters the page picks: the others are kept whatever it picks."""


def is_open_path(path: str) -> bool:
    """Paths that need no login: the login form itself and static files."""
    return path in ("/ui/login",) or path.startswith(("/ui/static/", "/ui/vendor/"))


def is_form_path(path: str) -> bool:
    """Paths the dashboard posts HTML forms to (the only writes that take form bodies)."""
    return path in ("/ui/login", "/ui/logout")


def is_page(path: str) -> bool:
    """Whether ``path`` is a dashboard page (answered with HTML, a login redirect when needed);
    the service's root leads to the dashboard."""
    return path in ("/", "/ui") or (path.startswith("/ui/") and "/plots/" not in path
                                    and not path.endswith(DATA_SUFFIXES))


def _runtime() -> Application:
    return current_app.extensions["katuna"]


@blueprint.errorhandler(KatunaError)
def _error(exc: KatunaError):
    if not is_page(request.path):
        return error_response(exc)
    return render_template("error.html", message=str(exc)), status_of(exc)


@blueprint.app_context_processor
def _csrf_token() -> dict:
    """The session's CSRF token for the page's forms and scripts (None without a session)."""
    session = g.get("katuna_session")
    return {"csrf_token": session.csrf if session else None}


@blueprint.app_template_filter("when")
def _when(value: float | None) -> str:
    """A time as the pages show it, saying its zone."""
    shown = tables.timestamp(value)
    return f"{shown} UTC" if shown else ""


@blueprint.app_template_filter("span")
def _span(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{seconds:.1f}s"


@blueprint.app_template_filter("num")
def _num(value) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@blueprint.app_template_filter("plain")
def _plain(text: str | None) -> str:
    """Text a trial printed, without the terminal escape sequences that colour it."""
    return without_escapes(text or "")


@blueprint.app_template_filter("exact")
def _exact(value) -> str:
    """A number as it reads back to itself (a form's bound, applied again, is the same bound)."""
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


@blueprint.get("/vendor/plotly.min.js")
def plotly_js():
    """plotly.js as the ``plotly`` Python package ships it (no copy kept in this repository)."""
    bundle = Path(str(files("plotly") / "package_data" / "plotly.min.js"))
    return send_file(bundle, mimetype="text/javascript", max_age=86400)


@blueprint.get("/")
def studies():
    return render_template("studies.html", **_studies_context())


@blueprint.get("/studies.fragment")
def studies_fragment():
    """The studies table alone, for the list's refresh; ``304``, without a study read, to an
    ``If-None-Match`` of its version as it is (:meth:`studies_version`), which the idle list
    asks with."""
    version = _runtime().store().studies_version(STUDIES_SHOWN)
    if request.if_none_match.contains(version):
        unchanged = Response(status=304)
        unchanged.set_etag(version)
        return unchanged
    response = Response(render_template("studies_table.html", **_studies_context(version)))
    response.set_etag(version)
    return response


STUDIES_SHOWN = 200
"""The most studies the dashboard's list shows, the newest: the list is fetched again every few
seconds while a study runs, and each study's view costs a few reads of its own."""


def _studies_context(version: str | None = None) -> dict:
    """The newest studies' views, how many are stored, whether any runs (shown or not), and the
    version of the list, read first: a change made while the views are read makes the next ask
    of the idle list fetch it again."""
    store = _runtime().store()
    version = version or store.studies_version(STUDIES_SHOWN)
    views = [study_view(store, record) for _, record in store.studies_page(STUDIES_SHOWN, newest_first=True)]
    by_status = store.census().studies
    return {"studies": views, "stored": sum(by_status.values()), "running": by_status.get(STUDY_RUNNING, 0) > 0,
            "now": _runtime().clock(), "version": version}


@blueprint.get("/studies/<name>")
def study(name: str):
    store = _runtime().store()
    record = store.get_study(name)
    return render_template("study.html", study=study_view(store, record), spec=record.spec, record=record,
                           best=best_trials(store, record, limit=BEST_SHOWN), now=_runtime().clock(),
                           restarts=_restarts(record),
                           follows=Origin.from_dict(record.origin).ref if record.origin is not None else None)


def _restarts(record: StudyRecord) -> bool:
    """Whether the study restarts when submitted again with its trial budget raised
    (:func:`functions.core.resume.restartable`), and the dashboard may submit it: not one
    following a Kubernetes resource (edited in the cluster), nor one whose node pool was given back."""
    return restartable(record) and record.origin is None and record.spec.node_pool is None


@blueprint.get("/studies/<name>/best.fragment")
def best_fragment(name: str):
    """The study page's best trials (the whole Pareto front of several objectives) alone, which
    the page fetches again as trials finish."""
    store = _runtime().store()
    record = store.get_study(name)
    return render_template("best_table.html", record=record, spec=record.spec,
                           best=best_trials(store, record, limit=BEST_SHOWN))


@blueprint.get("/studies/<name>/plots/<kind>")
def plot(name: str, kind: str):
    """One chart as plotly JSON; ``{"message": ...}`` when the study cannot have it yet."""
    store = _runtime().store()
    record = store.get_study(name)
    params = chart_params(request.args.get("params", ""), record.spec) if kind in PARAM_CHARTS else ()
    objective = whole_number("objective", 0, 0, max(len(record.spec.objectives) - 1, 0))
    version = store.optuna_version(name)
    key = (str(store.path), record.uid, kind, params, objective, version)
    body = chart_cache.get_or_build(key, lambda: _chart(record, kind, params, objective, version))
    return Response(body, mimetype="application/json")


def chart_params(asked: str, spec: Study) -> tuple[str, ...]:
    """The parameters a slice or contour chart is drawn for: the first two distinct names of the
    study's among those ``asked`` (comma-separated), else its first two. The chart and its cache
    key depend on these alone, so names it does not have cannot make the same chart be built again."""
    known = [p.name for p in spec.parameters]
    chosen = tuple(dict.fromkeys(name for name in asked.split(",") if name in known))[:2]
    return chosen or tuple(known[:2])


def _chart(record: StudyRecord, kind: str, params: tuple[str, ...], objective: int, version: int) -> str:
    """The chart's plotly JSON, or its message, from the study's history as the process's
    threads share it (never a copy of their own)."""
    from functions.adapters.web import plots  # Optuna's visualization stack: loaded on first use
    history = _runtime().store().chart_history(record.name, version)
    storage, cut = (None, None) if history is None else history
    try:
        return plots.figure_json(storage, record, kind, params, objective, cut=cut)
    except plots.NoChart as exc:
        return dumps({"message": str(exc)})


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
    store = _runtime().store()
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
    store = _runtime().store()
    spec = store.get_study(name).spec
    query = tables.parse_query(spec, request.args, paged=False)
    rows = store.matching_trials(name, query)
    response = Response(stream_with_context(tables.csv_rows(spec, rows)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-trials.csv"'
    return response


@blueprint.get("/studies/<name>/trials/<int:number>")
def trial(name: str, number: int):
    record, found = find_trial(name, number)
    observations = _runtime().store().observations(name, number)
    missing = [o.metric for o in record.spec.objectives if o.metric not in found.metrics]
    return render_template("trial.html", spec=record.spec, record=record, trial=trial_view(found),
                           observations=observations, reason=found.reason,
                           unavailable=found.reason.startswith("metrics unavailable"), missing=missing,
                           active=found.state in ACTIVE_STATES)


@blueprint.get("/studies/<name>/trials/<int:number>/log")
def trial_log(name: str, number: int):
    """Log text from byte ``offset`` on (at most ``LOG_CHUNK`` bytes), the next offset, whether
    more text follows already, and whether the trial still runs (the page polls while it does),
    with the trial's state and reason as they are now (the page shows those of the attempt it
    follows, which a lost run replaces). ``offset=-1`` starts at the last ``LOG_CHUNK`` bytes
    (``skipped`` says how many came before). Only that part of the log is read, however large it is."""
    record, found = find_trial(name, number)
    attempt = attempt_of(found)
    launch = trial_launch(record, replace(found, attempt=attempt))
    window = _runtime().log_reads.window(launch, whole_number("offset", 0, -1), LOG_CHUNK)
    return jsonify(text=window.text, offset=window.offset, more=window.more, skipped=window.skipped, attempt=attempt,
                   running=found.state in ACTIVE_STATES, state=found.state, reason=without_escapes(found.reason))


@blueprint.get("/new")
def new_study():
    """The new-study form; ``?restart=<name>`` fills it with that study's definition as it was
    submitted (as JSON, which reads back exactly), to submit again with its budget raised."""
    name = request.args.get("restart")
    if name is None:
        return render_template("new.html", restart=None, text="")
    store = _runtime().store()
    record = store.get_study(name)
    return render_template("new.html", restart=record, trials=store.count_trials(name).created,
                           experiment=is_experiment(record.definition),
                           text=json.dumps(record.definition, indent=2, ensure_ascii=False))


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    """The token, typed into a form, starts a session (:mod:`functions.adapters.web.auth`)."""
    token = _runtime().settings.api_token
    target = _safe_next(request.values.get("next", ""))
    if not token:
        return redirect(target)
    if request.method == "GET":
        return render_template("login.html", next=target, failed=False)
    if not token_matches(request.form.get("token", ""), token):
        return render_template("login.html", next=target, failed=True), 401
    response = redirect(target)
    start_session(request, response, _runtime().store(), _runtime().settings.session_ttl, token)
    return response


@blueprint.post("/logout")
def logout():
    """End the session: its id is revoked in the database, so a copy of the cookie is useless too."""
    response = redirect(url_for("ui.login"))
    end_session(request, response, _runtime().store())
    return response


def _safe_next(target: str) -> str:
    """Only a path inside the dashboard that a ``Location`` header can carry: the login form
    never redirects elsewhere, nor fails. Anything else leads to the studies list: a target not
    under ``/ui/``, one holding a control character (a header holds no line break), a backslash
    (which browsers read as a slash), or a ``..`` segment, even percent-encoded (``%2e%2e``), which
    browsers resolve to a path out of ``/ui/``."""
    path = target.partition("?")[0].partition("#")[0]
    if (target.startswith("/ui/") and not any(c < " " or c in "\x7f\\" for c in target)
            and ".." not in (unquote(segment) for segment in path.split("/"))):
        return target
    return url_for("ui.studies")
