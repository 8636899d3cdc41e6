"""The login form, used when ``KATUNA_API_TOKEN`` is set, and logging out."""

from __future__ import annotations

from urllib.parse import unquote

from flask import current_app, redirect, render_template, request, url_for

from functions.adapters.web.attempts import ATTEMPTS, client_of, refusal_wait
from functions.adapters.web.auth import end_session, start_session, token_matches
from functions.adapters.web.ui._blueprint import blueprint, runtime


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    """The token, typed into a form and posted, starts a session (:mod:`functions.adapters.web.auth`).
    A ``HEAD`` is the page's ``GET``: a read, which the guard lets through without asking where it
    comes from, so a form body sent with it starts no session and fails no login. A wrong token
    counts against its client, which past its failed attempts is refused (``429``) whatever it
    posts (:mod:`functions.adapters.web.attempts`)."""
    token = runtime().settings.api_token
    target = _safe_next(request.values.get("next", ""))
    if not token:
        return redirect(target)
    if request.method != "POST":
        return render_template("login.html", next=target, failed=False)
    attempts = current_app.extensions[ATTEMPTS]
    wait = refusal_wait(attempts, request)
    if wait is not None:
        return render_template("login.html", next=target, failed=False, wait=wait), 429, {"Retry-After": str(wait)}
    if not token_matches(request.form.get("token", ""), token):
        attempts.failed(client_of(request))
        return render_template("login.html", next=target, failed=True), 401
    response = redirect(target)
    start_session(request, response, runtime().store(), runtime().settings.session_ttl, token)
    return response


@blueprint.post("/logout")
def logout():
    """End the session: its id is revoked in the database, so a copy of the cookie is useless too."""
    response = redirect(url_for("ui.login"))
    end_session(request, response, runtime().store())
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
