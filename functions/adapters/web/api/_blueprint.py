"""The study API's blueprint, which its operations are added to, and what they share: the
application they read, the converters of a study's and a trial's path, a study's links, and
the lookup of a trial."""

from __future__ import annotations

from flask import Blueprint, current_app, url_for
from werkzeug.exceptions import BadRequest
from werkzeug.routing import BaseConverter

from functions.adapters.web import query
from functions.adapters.web.api._accept import check_accept
from functions.core.application import Application
from functions.core.errors import MalformedRequest, StudyNotFound
from functions.core.naming import LABEL_EXPECTED, is_label
from functions.core.records import StudyRecord, TrialRecord

blueprint = Blueprint("api", "functions.adapters.web.api")
blueprint.before_request(check_accept)

LARGEST_TRIAL_NUMBER = (1 << 63) - 1
"""SQLite's largest integer: a larger number names no trial."""


class TrialNumber(BaseConverter):
    """The ``{number}`` of a trial's path: a whole number from 0 to :data:`LARGEST_TRIAL_NUMBER`
    in ASCII digits, as a query parameter takes it (:func:`~functions.core.query_args.whole_of`), where werkzeug's
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


def runtime() -> Application:
    """The application the operations read: the service's store, settings and log reads."""
    return current_app.extensions["katuna"]


def links(name: str) -> dict[str, str]:
    """The paths of what a client does next with the study ``name``."""
    return {"self": url_for("api.get_study", name=name), "trials": url_for("api.list_trials", name=name),
            "best": url_for("api.list_best", name=name), "stop": url_for("api.stop_study", name=name)}


def find_trial(name: str, number: int) -> tuple[StudyRecord, TrialRecord]:
    """The study's record and its trial ``number``; ``StudyNotFound`` for either missing."""
    store = runtime().store()
    record = store.get_study(name)
    trial = store.get_trial(name, number) if number <= LARGEST_TRIAL_NUMBER else None
    if trial is None:
        raise StudyNotFound(f"study {name!r} has no trial {number}")
    return record, trial
