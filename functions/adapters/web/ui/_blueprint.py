"""The dashboard's blueprint, which its pages are added to, and what every page shares: the
application they read, the error page, and the session's CSRF token."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, g, render_template, request
from werkzeug.http import HTTP_STATUS_CODES

from functions.adapters.web.errors import error_response, status_of
from functions.adapters.web.ui._paths import is_page
from functions.core.application import Application
from functions.core.errors import KatunaError

WEB_FOLDER = str(Path(__file__).parent.parent)
"""The web package's folder, which holds the pages' ``templates/`` and ``static/`` files."""
blueprint = Blueprint("ui", __name__, url_prefix="/ui", static_folder="static", template_folder="templates",
                      root_path=WEB_FOLDER)


def runtime() -> Application:
    """The application the pages read: the service's store, settings, clock and log reads."""
    return current_app.extensions["katuna"]


@blueprint.errorhandler(KatunaError)
def _error(exc: KatunaError):
    if not is_page(request.path):
        return error_response(exc)
    return error_page(str(exc), status_of(exc))


HEADINGS = {422: "Not possible"}
"""An error page's heading where HTTP's name for its status says little to a person."""


def error_page(message: str, status: int) -> Response:
    """The dashboard's error page for ``status``, titled and headed by what the error is (``Not
    found``, ``Bad request``), so a tab's title or a screen reader names it, and saying
    ``message`` under that heading; its links lead back."""
    heading = HEADINGS.get(status) or HTTP_STATUS_CODES.get(status, "Error").capitalize()
    return Response(render_template("error.html", heading=heading, message=message), status, mimetype="text/html")


@blueprint.app_context_processor
def _csrf_token() -> dict:
    """The session's CSRF token for the page's forms and scripts (None without a session)."""
    session = g.get("katuna_session")
    return {"csrf_token": session.csrf if session else None}
