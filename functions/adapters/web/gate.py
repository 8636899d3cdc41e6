"""The checks every request passes before a route sees it, in the order they run.

The health probes pass untouched. Every other request shows, in turn: without the API token, a
socket of the service's own user (:mod:`.request_source`); an allowed Host; a body within the
limit; no read another site's page asks for; for writes to an operation, an accepted content
type and no cross-site Origin; then a known caller (:mod:`.callers`). Once the caller is known,
nothing the operation does not take is accepted (:mod:`.takes`). The app factory
(:mod:`functions.adapters.web`) puts :func:`check_request` and :func:`check_takes` in front of
every route.
"""

from __future__ import annotations

from functools import partial

from flask import current_app, g, request
from werkzeug.exceptions import MethodNotAllowed, NotFound

from functions.adapters.web import api, functions_ce, guard, takes, ui
from functions.adapters.web.callers import check_caller, check_event_sender, check_scraper, may_be_told_why
from functions.adapters.web.request_source import check_local_user, cross_site_read_refused, host_refused

OPEN_PATHS = ("/healthz", "/readyz")
METRICS_PATH = "/metrics"


def check_request():
    """Every request but the health probes: an allowed Host, a body within the limit, no read
    another site's page asks for (:func:`guard.cross_site_read`), then for writes to an
    operation (:func:`unrouted`) an accepted content type and no cross-site Origin (for the
    dashboard's forms, this origin, said), then a known caller."""
    settings = current_app.extensions["katuna"].settings
    path = request.path
    if path in OPEN_PATHS:
        if path == api.READY_PATH:
            setattr(g, api.TOLD_WHY, partial(may_be_told_why, settings))
        return None
    if not settings.api_token and not (path == METRICS_PATH and settings.metrics_token):
        refused = check_local_user()
        if refused is not None:
            return refused
    if path == METRICS_PATH:
        return check_scraper(settings)
    if not guard.host_allowed(guard.named_host(request), settings.allowed_hosts):
        return host_refused()
    if not guard.buffer_chunked(request.environ, settings.max_body) or (request.content_length or 0) > settings.max_body:
        return guard.refusal(request, 413, "request_entity_too_large", too_large(settings.max_body))
    event_path = functions_ce.is_event_path(path)
    if request.method not in guard.WRITE_METHODS and guard.cross_site_read(request):
        return cross_site_read_refused()
    if request.method in guard.WRITE_METHODS and not unrouted():
        kind = "event" if event_path else "form" if ui.is_form_path(path) else "api"
        problem = guard.content_type_problem(request, kind)
        if problem:
            return guard.refusal(request, 415, "unsupported_media_type", problem)
        same = guard.same_origin(request)
        if same is False:
            return guard.refusal(request, 403, "cross_origin",
                                 "writes from another site are refused, whatever token they carry (the Origin or "
                                 "Sec-Fetch-Site header names another site): send them from this service's own "
                                 "pages, or from a script that sends neither header, with Authorization: Bearer "
                                 "<KATUNA_API_TOKEN>")
        if same is None and kind == "form":
            return guard.refusal(request, 403, "cross_origin", FORM_UNPLACED)
    if event_path:
        return check_event_sender(settings)
    return check_caller(settings, path)


FORM_UNPLACED = ("the dashboard's forms (log in, log out) are taken only from its own pages, which a browser names "
                 "in the Origin or Sec-Fetch-Site header; this request names no origin: log in from the dashboard's "
                 "page, and script the API with Authorization: Bearer <KATUNA_API_TOKEN>")
"""The refusal of a form post that says nothing of where it comes from. Only a browser posts the
dashboard's forms (the login form needs no session, so no CSRF token guards it), and every
browser that keeps ``SameSite`` cookies names the origin of a POST: one naming none is another
site's page in a browser too old to say, or a script, which has the API. So a form, as every
write made with a session (:func:`.callers.check_caller`), needs the browser to say it comes
from this origin, whatever other header (``Referer``) it carries."""


def unrouted() -> bool:
    """Whether the request names no operation: a path that does not exist, or a method its path
    does not take. Such a write runs nothing, so its body's type and its origin are not asked
    about: it is answered ``404``, or ``405`` with ``Allow``, once its caller is known, never
    ``415`` telling the client to send the body as another type to a method that takes none."""
    return isinstance(request.routing_exception, NotFound | MethodNotAllowed)


def check_takes():
    """Once the caller is known: a query parameter or a body the operation does not take is
    refused, naming it (:mod:`.takes`)."""
    takes.check(request, current_app.view_functions.get(request.endpoint or ""))


def too_large(limit: int) -> str:
    """The message of a ``413``, whether this gate or werkzeug (:mod:`.http_errors`) refuses the body."""
    return f"the request body is too large: at most {limit} bytes (KATUNA_MAX_BODY) are accepted"
