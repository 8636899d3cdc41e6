"""The CloudEvent functions: each handler reachable over HTTP, as Knative Triggers address them.

``POST /functions/<function>`` runs one function; ``POST /`` runs every function subscribed to
the event's type. Emitted events go, by ``KATUNA_EVENTS``, to the service's queue (``queue``),
or back to the broker (``reply``): as the response when there is exactly one, otherwise each
sent to ``K_SINK``, as are those of a handling that never replies
(:data:`functions.core.events.NO_REPLY`: a chain of replies is bounded by the broker). An answer that is no reply has an empty body: Knative's broker filter takes
a 2xx answer as either a CloudEvent or nothing, and fails the delivery (502, retried, then
dead-lettered) for any other body. What was emitted is told in :data:`EMITTED_HEADER`, which
the broker ignores.

A dead letter fails its study only when its delivery was refused for good, and it is not a
progress report (which the study can do without); one given up on after a temporary failure
leaves the study to the tick, which redoes whatever the lost event would have done
(:func:`functions.adapters.cloudevents_http.DeadLetter.fails_study`).
"""

from __future__ import annotations

import logging
from contextlib import closing

from flask import Blueprint, Response, current_app, g, request, url_for

from functions.adapters import cloudevents_http
from functions.adapters.web import paging, takes, tick_floor
from functions.adapters.web.access_log import EVENT, printable
from functions.adapters.web.errors import error_response, status_of
from functions.adapters.web.forwarded import sender
from functions.core.application import Application, DispatchesFunctions
from functions.core.errors import ForgedEvent, KatunaError, ServiceBusy, Stopping, StudyNotFound
from functions.core.events import NO_REPLY, STUDY_COMPLETED, Event
from functions.core.log_context import about, of_event
from functions.core.records import FAILED

blueprint = Blueprint("functions", __name__)
log = logging.getLogger("katuna.functions")

EMITTED_HEADER = "Katuna-Emitted"
"""The events a handling emitted other than as a reply, ``type id`` each, comma-separated (at
most :data:`EMITTED_LISTED`, then ``...``), left out where it emitted none; their number is in
:data:`EMITTED_COUNT_HEADER`, always there. Neither header is one Knative's broker passes on or reads."""

EMITTED_COUNT_HEADER = "Katuna-Emitted-Count"

API_CALLER = "katuna_api_caller"
"""Set on the request context (``flask.g``) when the event came with the API token. Without it
(a broker's delivery, with or without OIDC), events of katuna's own types are taken only signed
by katuna, and a dead letter fails its study only when katuna signed its event
(:mod:`functions.core.event_signature`)."""

COALESCED_HEADER = "Katuna-Tick-Coalesced"
"""On the answer to a tick left unhandled because another was handled less than
``KATUNA_TICK_FLOOR`` seconds before."""

EMITTED_LISTED = 50
"""Events named in :data:`EMITTED_HEADER`: a tick may emit hundreds, and proxies between the
broker and the service cap a response's headers."""


def is_event_path(path: str) -> bool:
    """Paths the broker posts to: they take the token, or Knative's OIDC delivery token (a
    ``GET /`` is a browser opening the service, which leads it to the dashboard)."""
    if path in ("/", "/dead-letters"):
        return request.method == "POST"
    return path.startswith("/functions/")


@blueprint.post("/")
@takes.delivery
def any_function():
    return _handle(None)


@blueprint.post("/functions/<function>")
@takes.delivery
def one_function(function: str):
    return _handle(function)


def _handle(function: str | None):
    """Run the event; an event for a study that does not exist (or no longer does) is done, and
    answered as one that changed nothing, so the answer never tells whether a study name exists."""
    runtime: Application = current_app.extensions["katuna"]
    try:
        dispatcher = runtime.dispatcher()
        try:
            event = cloudevents_http.from_http(dict(request.headers), request.get_data(), _required_key(runtime))
            request.environ[EVENT] = event
        except ForgedEvent as exc:
            dispatcher.forged(exc.event_type)
            raise
        try:
            emitted = _delivered(runtime, dispatcher, event, function)
        except StudyNotFound as exc:
            study = _study(event)
            log.info("dropped %s (%s) of study %s: %s", event.type, event.id, study, exc, extra=about(study, event=event))
            emitted = []
        if emitted is None:
            log.debug("tick %s from %s not handled: each of its functions handled one less than %g s ago "
                      "(KATUNA_TICK_FLOOR)", event.id, sender(request), runtime.settings.tick_floor,
                      extra=about(event=event))
            return Response(status=202, headers={COALESCED_HEADER: "true", EMITTED_COUNT_HEADER: "0"})
        return _emit(runtime, event, emitted)
    except ForgedEvent as exc:
        log.warning("refused an event from %s: %s", sender(request), exc)
        return error_response(exc, resource=False)
    except KatunaError as exc:
        _answered(exc, request.environ.get(EVENT))
        return error_response(exc, resource=False)


QUIET = (Stopping, ServiceBusy)
"""Temporary errors that are no failure (katuna stopping, a launch waiting for room among the
trials the service runs): their answers are logged at DEBUG only."""


def _answered(exc: KatunaError, event: Event | None) -> None:
    """Log why a delivery was answered with an error: besides the answer, which the broker reads
    and keeps only in a dead letter once it gives up, this line is the one place the reason is
    told, so ``kubectl logs`` says why an event was retried or refused. An event that could not
    be read is logged by the sender's address, a line held back while it repeats
    (:data:`functions.adapters.log_lines.REPEATING`)."""
    status = status_of(exc, resource=False)
    if event is None:
        logging.getLogger("katuna.web").warning("refused an event from %s with %d: %s", sender(request), status, exc)
        return
    outcome = "to be retried" if exc.retryable else "refused for good"
    log.log(logging.DEBUG if isinstance(exc, QUIET) else logging.WARNING, "answered %s (%s) of study %s with %d, %s: %s",
            event.type, event.id, _study(event), status, outcome, exc, extra=of_event(event))


@blueprint.post("/dead-letters")
@takes.delivery
def dead_letter():
    """Where the broker sends an event it gave up delivering: kept (the newest
    ``KATUNA_MAX_DEAD_LETTERS``, each within ``KATUNA_MAX_BODY``, of those vouched for: with the
    API token, from a sender katuna believes, or of an event katuna signed; and apart as many of
    those nobody vouches for, so a flood of them pushes out none of the broker's) and logged. A delivery refused
    for good fails the event's study with the reason (unless it is a progress report, or the
    refusal cannot be believed and does not come again: :func:`_failed`); one that failed only
    for the time being (a busy cloud, an API server away for minutes) leaves the study to the
    tick."""
    runtime: Application = current_app.extensions["katuna"]
    try:
        letter = cloudevents_http.dead_letter(dict(request.headers), request.get_data(), _required_key(runtime),
                                              runtime.settings.sink)
        failed = letter.fails_study and _failed(runtime, letter)
    except KatunaError as exc:
        _answered(exc, None)
        return error_response(exc, resource=False)
    event, reason = (letter.event, letter.reason) if letter.authentic else _unvouched(letter)
    runtime.store().add_dead_letter(event, reason, keep=runtime.settings.max_dead_letters,
                                    vouched=letter.authentic or _believed(runtime))
    study = _study(event)
    context = about(study, event=event)
    if failed:
        log.error("dead letter %s (%s) of study %s, its study failed: %s", event.type, event.id, study,
                  printable(letter.reason), extra=context)
    elif not letter.authentic:
        log.warning("dead letter %s (%s) of study %s not signed by katuna, its study left as it is: %s", event.type,
                    event.id, study, printable(reason), extra=context)
    else:
        log.warning("dead letter %s (%s) of study %s, its study left to the tick: %s", event.type, event.id, study,
                    printable(letter.reason), extra=context)
    return "", 202, {"Katuna-Recorded": event.id, "Katuna-Study-Failed": str(failed).lower()}


def _study(event: Event) -> str | None:
    """The study an event names, written printable for a log line (a client may have sent it)."""
    study = event.data.get("study") if isinstance(event.data, dict) else None
    return printable(study[:UNVOUCHED_KEPT]) if isinstance(study, str) else None


UNVOUCHED_KEPT = 256
"""Characters kept of each attribute, and four times that of the reason, of a dead letter nobody
vouches for."""


def _unvouched(letter: cloudevents_http.DeadLetter) -> tuple[Event, str]:
    """What is kept of a dead letter that came without the API token, of an event katuna did not
    sign: anyone who reaches the service could send it, so its attributes are cut and its data
    not kept, and a thousand of them (``KATUNA_MAX_DEAD_LETTERS``) hold kilobytes each, not
    their bodies' megabytes. Its trace context is kept: checked and bounded as it was read
    (:mod:`functions.core.trace_context`), it finds the letter's trace, and is trusted for nothing."""
    event, cut = letter.event, UNVOUCHED_KEPT
    summary = Event(event.type[:cut], {"katuna": "data not kept: the letter came without the API token, and its "
                                                 "event without katuna's signature"},
                    event.id[:cut], event.source[:cut], (event.subject or "")[:cut] or None, event.time[:cut],
                    event.trace)
    return summary, letter.reason[:4 * cut]


def _failed(runtime: Application, letter: cloudevents_http.DeadLetter) -> bool:
    """Fail the study of a dead letter refused for good, where that refusal holds; whether it
    failed. A letter that came with the API token, or from a Trigger's OIDC account (the
    senders of ``KATUNA_OIDC_SUBJECTS``), or to a service without a token (which only this
    machine reaches) is believed. Any other (a broker without OIDC, and whoever else can reach
    the service) proves only its event, which katuna signed: its error code and text may be
    anyone's, replayed from a reply katuna signed. So katuna handles the event once more (a
    redelivery, which every function takes), publishes what that emits, and the study fails
    only for katuna's own refusal, in katuna's words."""
    if _believed(runtime):
        return runtime.fail_dead_letter(letter.event, letter.reason)
    try:
        emitted = runtime.dispatcher().deliver(letter.event)
    except StudyNotFound:
        return False
    except KatunaError as exc:
        if exc.retryable:
            return False
        return runtime.fail_dead_letter(letter.event,
                                        f"refused for good, and again when katuna handled it once more: {exc}")
    except Exception:
        log.exception("dead letter %s (%s): handling it once more failed", letter.event.type, letter.event.id,
                      extra=of_event(letter.event))
        return False
    for event in emitted:
        runtime.publish(event)
    ended = [e for e in emitted if e.type == STUDY_COMPLETED and e.data.get("status") == FAILED]
    if not ended:
        log.warning("dead letter %s (%s) handled here: its refusal (%s) did not come again", letter.event.type,
                    letter.event.id, printable(letter.reason), extra=of_event(letter.event))
    return bool(ended)


def _believed(runtime: Application) -> bool:
    """Whether the sender of this request is believed: it came with the API token, or from a
    Trigger's OIDC account (a sender of ``KATUNA_OIDC_SUBJECTS``), or to a service without a
    token (which only this machine reaches)."""
    return _required_key(runtime) is None or ("katuna_oidc" in current_app.extensions
                                              and bool(runtime.settings.oidc_subjects))


def _delivered(runtime: Application, dispatcher: DispatchesFunctions, event: Event,
               function: str | None) -> list[Event] | None:
    """The events emitted by handling ``event`` (by ``function``, or every function taking it);
    None for a tick nobody vouches for that came too soon (:mod:`.tick_floor`)."""
    if tick_floor.floored(runtime, event, function):
        return tick_floor.deliver(runtime, dispatcher, event, function)
    return dispatcher.deliver(event) if function is None else dispatcher.deliver_to(function, event)


def _required_key(runtime: Application) -> bytes | None:
    """The key events must be signed with: katuna's, for an event that came without the API
    token, where there is a token to make the key from."""
    return None if g.get(API_CALLER) else runtime.settings.event_key


DEAD_LETTERS_PAGE = 100
"""Dead letters in a page of ``GET /dead-letters`` when ``limit`` is left out."""

MAX_DEAD_LETTERS_PAGE = 1_000
"""The largest ``limit`` of that listing; a page is also cut at :data:`paging.PAGE_BYTES`."""


@blueprint.get("/dead-letters")
@takes.query
def list_dead_letters():
    """The kept dead letters, newest first, a page at a time (:mod:`.paging`): ``limit`` of them
    older than letter ``before``, and a ``Link`` to the next page while more follow. The store's
    reading of them is closed however the page ends: left open by an error, it held the worker
    thread's connection in a read of the database as it was then, and every later request that
    thread served saw no study made since."""
    limit, before = paging.page_request("before", DEAD_LETTERS_PAGE, MAX_DEAD_LETTERS_PAGE)
    with closing(current_app.extensions["katuna"].store().dead_letters(limit + 1, before)) as letters:
        return paging.page(((letter["id"], letter) for letter in letters), limit,
                           lambda last: url_for("functions.list_dead_letters", limit=limit, before=last))


def _emit(runtime: Application, handled: Event, emitted: list[Event]):
    """The answer to the handling of ``handled``: its one emitted event as a reply (reply mode,
    unless ``handled`` is of a type whose handling never replies); otherwise the events sent on,
    and an answer with no body, naming them in headers only (no empty list where there are none)."""
    if runtime.settings.events == "reply" and len(emitted) == 1 and handled.type not in NO_REPLY:
        headers, body = cloudevents_http.to_http(emitted[0], runtime.settings.event_key)
        return Response(body, status=200, headers=headers)
    for event in emitted:
        runtime.publish(event)
    named = [f"{event.type} {event.id}" for event in emitted[:EMITTED_LISTED]]
    if len(emitted) > EMITTED_LISTED:
        named.append("...")
    listed = {EMITTED_HEADER: ", ".join(named)} if named else {}
    return Response(status=202, headers={**listed, EMITTED_COUNT_HEADER: str(len(emitted))})
