"""Who the caller is: the API token, the metrics token, Knative's OIDC delivery token or a
dashboard session, checked for each kind of path, and the wrong tokens counted against their
client (:mod:`.attempts`), which past its limit is refused without its token being compared.

Where no token is set, the checks fall back on where a request comes from
(:mod:`.request_source`). The order the checks run in is :mod:`.gate`'s.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flask import Response, current_app, g, redirect, request, url_for

from functions.adapters.web import functions_ce, guard, tick_floor, ui
from functions.adapters.web.attempts import ATTEMPTS, client_of, refusal_wait
from functions.adapters.web.auth import bearer, csrf_matches, current_session, has_token
from functions.adapters.web.request_source import check_local_user, cross_site_read_refused, host_refused
from functions.core import senders
from functions.core.application import ServiceSettings

if TYPE_CHECKING:
    from functions.adapters.web.oidc import Verifier

log = logging.getLogger("katuna.web")


def may_be_told_why(settings: ServiceSettings) -> bool:
    """Whether ``/readyz`` may tell this caller why the service is not ready: the reason may name
    the database's path and what is wrong with it, which the probes (a kubelet, Knative's
    queue-proxy) need not know, and which any caller could read, a page another site rebinds
    to the service's address included. So it is told to a caller with the API token (a wrong one
    counts against its client, as anywhere: no oracle for guessing the token), or, without a
    token, to one the service would let read its studies; everyone else gets the status alone,
    and the log has the reason."""
    token = settings.api_token
    if token:
        if bearer(request) is None or _too_many_attempts() is not None:
            return False
        if has_token(request, token):
            return True
        _failed_attempt()
        return False
    return (check_local_user() is None and guard.host_allowed(guard.named_host(request), settings.allowed_hosts)
            and not guard.cross_site_read(request))


def check_scraper(settings: ServiceSettings):
    """``/metrics`` takes ``KATUNA_METRICS_TOKEN`` (which reaches nothing else) or the API token,
    whatever the Host: Prometheus scraping a pod names the pod's address. With neither token
    set it is served like every other read: to loopback Host names only, and not to another
    site's page (which, with no token to send, could otherwise have every scrape's reads of the
    database made again and again with the user's own connection)."""
    tokens = [token for token in (settings.metrics_token, settings.api_token) if token]
    if not tokens:
        if not guard.host_allowed(guard.named_host(request), settings.allowed_hosts):
            return host_refused()
        return cross_site_read_refused() if guard.cross_site_read(request) else None
    if (waited := _too_many_attempts()) is not None:
        return waited
    if any(has_token(request, token) for token in tokens):
        return None
    _failed_attempt()
    return _unauthorized("send Authorization: Bearer <KATUNA_METRICS_TOKEN> (or <KATUNA_API_TOKEN>)")


def check_event_sender(settings: ServiceSettings):
    """The event paths take the API token, or Knative's OIDC delivery token when
    ``KATUNA_OIDC_AUDIENCE`` is set, from a sender of ``KATUNA_OIDC_SUBJECTS`` when that is set
    (another sender's valid token: 403, naming it); behind a broker without OIDC
    (``KATUNA_EVENTS=reply``) they take any sender, and rely on the service being cluster-local.
    Whoever delivers it, an event of katuna's own types is believed without the API token only
    with katuna's signature (:data:`functions_ce.API_CALLER`): a broker, OIDC or not, passes on
    what any sender its policy admits posted to it. A delivery token refused, or naming a key
    the issuer's keys may not be read again for yet, is a failed attempt of its client."""
    verifier: Verifier | None = current_app.extensions.get("katuna_oidc")
    checked = settings.api_token or verifier is not None
    if checked and (waited := _too_many_attempts()) is not None:
        return waited
    if settings.api_token and has_token(request, settings.api_token):
        setattr(g, functions_ce.API_CALLER, True)
        return None
    if verifier is None:
        if settings.events == "reply":
            setattr(g, tick_floor.ANONYMOUS, True)
        if settings.events == "reply" or not settings.api_token:
            return None
        _failed_attempt()
        return _unauthorized()
    from functions.adapters.web.oidc import UnreadKey  # imported already: PyJWT only where tokens come

    given = bearer(request)
    try:
        subject = verifier.subject(given) if given is not None else None
    except UnreadKey:
        _failed_attempt()
        raise
    if subject is None:
        _failed_attempt()
        return _unauthorized()
    if settings.oidc_subjects and not senders.allowed(subject, settings.oidc_subjects):
        log.warning("refused an event delivery from %s: not one of KATUNA_OIDC_SUBJECTS", subject)
        return guard.refusal(request, 403, "sender_not_allowed",
                             f"events from {subject!r} are refused: katuna takes events only from the senders of "
                             "KATUNA_OIDC_SUBJECTS (the Triggers' OIDC accounts)")
    return None


def check_caller(settings: ServiceSettings, path: str):
    """With ``KATUNA_API_TOKEN`` set, the bearer token, or a dashboard session whose writes
    come from this origin with the session's CSRF token; pages send a browser to the login."""
    token = settings.api_token
    if not token or ui.is_open_path(path):
        return None
    if (waited := _too_many_attempts()) is not None:
        return waited
    if has_token(request, token):
        return None
    _failed_attempt()
    session = current_session(request, current_app.extensions["katuna"].store(), token)
    if session is not None:
        g.katuna_session = session
        if request.method in guard.WRITE_METHODS and not (guard.same_origin(request) and csrf_matches(request, session)):
            return guard.refusal(request, 403, "csrf",
                                 "a write with the dashboard's session needs a same-origin request carrying the "
                                 "page's CSRF token (X-CSRF-Token)")
        return None
    if ui.is_page(path) and request.method == "GET":
        return redirect(url_for("ui.login", next=request.full_path.rstrip("?")))
    return _unauthorized()


def _too_many_attempts():
    """The refusal of a request carrying a bearer token from a client past its failed attempts
    (:mod:`.attempts`): the token is not even compared. None where there is no token to refuse."""
    if bearer(request) is None:
        return None
    wait = refusal_wait(current_app.extensions[ATTEMPTS], request)
    return None if wait is None else _waiting(wait)


def _waiting(wait: int) -> Response:
    """``429 too_many_attempts`` with ``Retry-After``: the client failed too often of late."""
    response = guard.refusal(request, 429, "too_many_attempts", TOO_MANY.format(wait=wait), retryable=True)
    response.headers["Retry-After"] = str(wait)
    return response


TOO_MANY = ("too many wrong tokens from this client of late: no token it sends is looked at for {wait} s "
            "(Retry-After); check the token it sends (KATUNA_API_TOKEN)")


def _failed_attempt() -> None:
    """Count the request's bearer token, which the service does not take, against its client."""
    if bearer(request) is not None:
        current_app.extensions[ATTEMPTS].failed(client_of(request))


def _unauthorized(message: str = "send Authorization: Bearer <KATUNA_API_TOKEN>"):
    response = guard.refusal(request, 401, "unauthorized", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="katuna"'
    return response
