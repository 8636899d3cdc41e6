"""The service's operations besides the study API: the dashboard's address, events, dead letters,
metrics, health and this document."""

from __future__ import annotations

from typing import Any

from functions.adapters.web.openapi._parts import TOO_MANY_ATTEMPTS, cursor, error, limit, located, page, status_body
from functions.core.events import ROUTES

EVENT_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
"""What the event paths take: a bearer token (the API token, or with ``KATUNA_OIDC_AUDIENCE``
Knative's OIDC delivery token), never a dashboard session (``functions.adapters.web.callers.check_event_sender``)."""

OPEN: list[dict[str, list[str]]] = []
"""The security of an operation that answers every caller: the health probes, and ``GET /``,
which sends a caller without the token or a session to the login form."""


READY_SECURITY: list[dict[str, list[str]]] = [{}, {"bearer": []}]
"""What ``/readyz`` takes: nothing (a probe), or the API token, with which a ``503`` says why the
service is not ready (:func:`functions.adapters.web.callers.may_be_told_why`)."""


def event_operation(summary: str, operation: str) -> dict[str, Any]:
    """An operation that takes a CloudEvent: ``POST /``, ``/functions/{function}``, ``/dead-letters``."""
    return {"summary": summary, "operationId": operation, "security": EVENT_SECURITY,
            "description": ("A CloudEvent 1.0 in binary mode (ce-* headers) or structured mode "
                            "(application/cloudevents+json), told apart by Content-Type alone, with the API token "
                            "or, with KATUNA_OIDC_AUDIENCE, "
                            "Knative Eventing's OIDC delivery token. An event for a study that does not exist "
                            "changes nothing and is answered like any event that changes nothing. Event types: "
                            + ", ".join(sorted(ROUTES))),
            "requestBody": {"required": True, "content": {"application/cloudevents+json": {"schema": {"type": "object"}},
                                                          "application/json": {"schema": {"type": "object"}}}},
            "responses": {"200": _reply(),
                          "202": {"description": (
                              "handled; emitted events were queued or sent to K_SINK. The body is empty, with no "
                              "Content-Type, as Knative's broker filter requires of a 2xx answer that is no CloudEvent"),
                              "headers": {
                                  "Katuna-Emitted-Count": {"description": "how many events were sent",
                                                           "schema": {"type": "string"}},
                                  "Katuna-Emitted": {"description": ("the events sent, 'type id' each, comma-separated "
                                                                     "(at most 50, then '...'); absent where none "
                                                                     "was sent"),
                                                     "schema": {"type": "string"}},
                                  "Katuna-Tick-Coalesced": {"description": (
                                      "'true' on a tick left unhandled: it came behind a broker without OIDC less "
                                      "than KATUNA_TICK_FLOOR seconds after one the same function handled"),
                                      "schema": {"type": "string"}}}},
                          "400": error("not a CloudEvent 1.0: the attribute refused is named (attributes.<name> in "
                                       "structured mode, ce-<name> or Content-Type in binary mode) with what was "
                                       "expected; or its data is not what its type takes"),
                          "403": error("a trial.progress without its attempt's token (KATUNA_REPORT_TOKEN); "
                                       "without the API token (a broker's delivery), an event of a type katuna "
                                       "sends itself without its signature (katunasignature)"),
                          "415": error("neither binary mode (ce-specversion) nor structured mode in the JSON format; "
                                       "batched mode (unsupported_media_type)"),
                          "422": error("permanently unprocessable: a type or function that does not exist, an event "
                                       "refused for good by its handler, a study resource's event where no Kubernetes "
                                       "API is configured (no_kubernetes_api)"),
                          "429": error("a study resource whose study would be one more than the KATUNA_MAX_STUDIES "
                                       "studies not ended the database may hold, or its node pool one more than the "
                                       "KATUNA_MAX_POOLS they may hold (no_room_for_study): retry after "
                                       "Retry-After seconds; taken once room frees"),
                          "503": error("temporarily unavailable; retry after Retry-After seconds")}}


def _reply() -> dict[str, Any]:
    """The answer that is the one event a handling emitted, in reply mode: a binary-mode CloudEvent."""
    text = {"schema": {"type": "string"}}
    attributes = {"ce-specversion": "1.0", "ce-id": "the event's id, derived from what caused it",
                  "ce-type": "its type (dev.katuna.*)", "ce-source": "its source", "ce-time": "when it was emitted",
                  "ce-subject": "its subject, where it has one",
                  "ce-katunasignature": "katuna's signature of the event, with KATUNA_API_TOKEN set"}
    return {"description": ("handled; the one emitted event is the reply (reply mode): a CloudEvent in binary mode, "
                            "its attributes in ce-* headers and its data the JSON body"),
            "headers": {name: {"description": description, **text} for name, description in attributes.items()},
            "content": {"application/json": {"schema": {"type": "object"}}}}


def metrics_path() -> dict[str, Any]:
    """``GET /metrics``, with the answers of its own checks (``functions.adapters.web.callers.check_scraper``)."""
    text = {"schema": {"type": "string"}}
    return {"get": {
        "summary": "The service's metrics for Prometheus", "operationId": "metrics",
        "description": ("Prometheus's text format (version 0.0.4), or OpenMetrics when the Accept header asks for "
                        "it; every name starts with katuna_. Event handlings by type, handler and outcome, handler "
                        "latency, studies by status, trials by state, node-pool uses by phase, the events waiting, "
                        "trials ended by state, events dropped, dead letters received and storage failures by kind. Takes KATUNA_METRICS_TOKEN or the API token from any Host; with neither "
                        "set, loopback Host names only."),
        "security": [{"bearer": []}],
        "responses": {"200": {"description": "the metrics", "content": {
                          "text/plain; version=0.0.4": text, "application/openmetrics-text; version=1.0.0": text}},
                      "400": error("a Host that is not served (no token set)"),
                      "401": error("missing or wrong bearer token (when KATUNA_METRICS_TOKEN or "
                                   "KATUNA_API_TOKEN is set)"),
                      "429": error(TOO_MANY_ATTEMPTS),
                      "503": error("the database cannot be read now; retry after Retry-After seconds")}}}




def service_paths() -> dict[str, Any]:
    """The operations besides the study API's, with their own answers (the checks' refusals are added after)."""
    return {"/": {"post": event_operation("Handle an event with every function subscribed to its type", "handleEvent"),
                  "get": _home()},
            "/functions/{function}": {
                "parameters": [{"name": "function", "in": "path", "required": True,
                                "schema": {"enum": sorted({f for fs in ROUTES.values() for f in fs})}}],
                "post": event_operation("Handle an event with one function", "handleEventWith")},
            "/dead-letters": _dead_letters_path(),
            "/metrics": metrics_path(),
            **_probe_paths()}


def _home() -> dict[str, Any]:
    """``GET /``: a browser opening the service's address."""
    return {"summary": "The dashboard: a browser opening the service's address is sent to /ui/",
            "operationId": "home", "security": OPEN, "responses": {"302": located(
                {"description": "to the dashboard; with KATUNA_API_TOKEN set, a caller with neither the token nor "
                                "a dashboard session to its login form first. The body is a short page linking "
                                "there, for a client that does not follow redirects",
                 "content": {"text/html": {"schema": {"type": "string"}}}},
                "/ui/, or /ui/login?next=/ (the login form)")}}


def _dead_letters_path() -> dict[str, Any]:
    """The dead-letter sink, and the letters it kept."""
    return {
        "post": {**event_operation("Keep an event the broker could not deliver (its dead-letter sink)", "deadLetter"),
                 "responses": {"202": {"description": (
                     "kept (the newest KATUNA_MAX_DEAD_LETTERS). The body is empty, with no Content-Type: with "
                     "OIDC, Knative reaches the "
                     "dead-letter sink through its broker filter, which fails a 2xx answer that is no CloudEvent. "
                     "Katuna-Study-Failed says whether the event's study was failed: only for a delivery refused "
                     "for good (a knativeerrorcode below 500 that Knative does not retry, 501, 505), never after "
                     "temporary answers (5xx, 404, 408, 409, 429, no code), never for a trial.progress, and without "
                     "the API token (a broker's delivery) only for an event katuna signed (katunasignature)"),
                     "headers": {"Katuna-Recorded": {"description": "the id of the event kept",
                                                     "schema": {"type": "string"}},
                                 "Katuna-Study-Failed": {"description": "true or false",
                                                         "schema": {"type": "string"}}}},
                               "400": error("not a CloudEvent 1.0: the attribute refused is named with what was "
                                            "expected")}},
        "get": {"summary": "The kept dead letters, newest first, a page at a time", "operationId": "listDeadLetters",
                "parameters": [limit(100, 1_000, "dead letters"),
                               cursor("before", "the id of the letter the page follows (as the next link gives it)")],
                "responses": {"200": page("DeadLetter", "dead letters"),
                              "400": error("limit or before is not a whole number in range, or another parameter "
                                           "was given")}}}


def _probe_paths() -> dict[str, Any]:
    """The health probes and this document."""
    return {
        "/healthz": {"get": {"summary": "healthz", "operationId": "healthz", "security": OPEN,
                             "responses": {"200": {"description": "the process answers", **status_body("ok")}}}},
        "/readyz": {"get": {"summary": "readyz", "operationId": "readyz", "security": READY_SECURITY, "responses": {
            "200": {"description": "ready", **status_body("ready")},
            "503": {"description": ("not ready: the database cannot be read, or its path no longer names the "
                                    "file the service opened, or a thread taking events is not running; the "
                                    "message says which to a caller with the API token (without one set, to a "
                                    "caller who may read the studies), the service's log to anyone"),
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NotReady"}}}}}}},
        "/openapi.json": {"get": {"summary": "openapi", "operationId": "openapi",
                                  "responses": {"200": {"description": "this document", "content": {
                                      "application/json": {"schema": {"type": "object"}}}}}}}}
