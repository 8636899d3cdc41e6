"""The OpenAPI 3.1 document of the HTTP service, served at ``/openapi.json``.

Each operation lists every status the service answers it with: its own, and those of the checks
every request passes first (:func:`_with_refusals`: the ``Host``, the local user, the body's size
and type, the origin of a write, the caller), and ``503`` where the database is read. Every error
body is an ``Error``, whose ``error`` is one of :data:`ERROR_CODES`.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from functions.core.events import ROUTES
from functions.core.naming import DNS1123_LABEL, MAX_NAME
from functions.core.records import ACTIVE_STATES, FINISHED_STATES, STUDY_RUNNING, TERMINAL_STATUSES


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}


def _error(description: str) -> dict[str, Any]:
    return _json("Error", description)


def _located(response: dict[str, Any], what: str) -> dict[str, Any]:
    """``response`` with its ``Location`` header, the path of ``what``."""
    return {**response, "headers": {"Location": {"description": what, "schema": {"type": "string"}}}}


def _status(*values: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"type": "object", "required": ["status"], "properties": {
        "status": {"enum": list(values)}}}}}}


ERROR_CODES = (
    # refused before any route: the Host, the local user, the body, the origin, the caller
    "host_not_allowed", "local_user_not_allowed", "request_entity_too_large", "unsupported_media_type",
    "request_timeout", "incomplete_body", "uri_too_long", "request_header_fields_too_large",
    "cross_origin", "csrf", "unauthorized", "sender_not_allowed",
    # no such route or method; a service not ready; a fault of katuna's own; another HTTP error
    "not_found", "method_not_allowed", "not_ready", "internal_server_error", "http_error",
    # katuna's errors (:func:`functions.adapters.web.errors.error_code`)
    "malformed_request", "malformed_event", "malformed_event_data", "unparseable_study", "invalid_study",
    "refused_workload", "config_map_forbidden", "unreadable_spec", "unreadable_file", "refused_file",
    "study_not_found", "study_conflict", "follows_resource", "forged_event", "forged_report",
    "unknown_event_type", "unknown_function", "output_lost", "no_command", "not_renderable", "node_pool_failed",
    "no_node_pools", "permanent_error", "temporary_error", "storage_unavailable", "storage_full", "foreign_database",
    "newer_database", "logs_unavailable", "stopping", "invalid_setting",
)
"""Every ``error`` an answer may carry, snake_case: a client switches on these."""

_NAME = {"name": "name", "in": "path", "required": True, "description": "the study's name, a DNS-1123 label",
         "schema": {"type": "string", "maxLength": MAX_NAME, "pattern": f"^{DNS1123_LABEL.pattern}$"}}
_NUMBER = {"name": "number", "in": "path", "required": True,
           "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}}
_VALUE = {"$ref": "#/components/schemas/Number"}
_TIME = {"type": ["number", "null"], "description": "seconds since the epoch"}
_NOT_FOUND = _error("no such study or trial")

_SCHEMAS: dict[str, Any] = {
    "Number": {"description": "a metric's number: NaN and the infinities, which JSON has no number for, by name",
               "oneOf": [{"type": "number"}, {"enum": ["nan", "inf", "-inf"]}]},
    "Error": {"type": "object", "required": ["error", "message", "retryable"], "properties": {
        "error": {"enum": list(ERROR_CODES), "description": "what was refused, for a program to switch on"},
        "message": {"type": "string", "description": "what was refused and what is expected, for a person"},
        "retryable": {"type": "boolean", "description": "whether the same request may succeed later (after "
                      "Retry-After seconds where it is given)"},
        "problems": {"type": "array", "items": {"type": "object", "required": ["path", "message"], "properties": {
            "path": {"type": "string"}, "message": {"type": "string"}}}},
        "changed": {"type": "array", "items": {"type": "string"},
                    "description": "409: the field paths in which the definition differs from the stored one"}}},
    "Trial": {"type": "object", "required": ["number", "state", "params", "value", "values", "metrics", "reason"],
              "properties": {
                  "number": {"type": "integer"},
                  "state": {"enum": [*ACTIVE_STATES, *FINISHED_STATES]},
                  "params": {"type": "object"},
                  "value": {"oneOf": [_VALUE, {"type": "null"}]},
                  "values": {"type": ["array", "null"], "items": _VALUE},
                  "metrics": {"type": "object", "additionalProperties": _VALUE},
                  "reason": {"type": ["string", "null"]},
                  "attempt": {"type": "integer"}, "exitCode": {"type": ["integer", "null"]},
                  "startedAt": {"type": ["number", "null"]}, "finishedAt": {"type": ["number", "null"]},
                  "imageDigest": {"type": ["string", "null"],
                                  "description": "the image the cluster ran, with its digest, where it reports one"},
                  "observations": {"type": "array", "description": "each value the trial reported, in order",
                                   "items": {"type": "object", "required": ["metric", "value"], "properties": {
                                       "metric": {"type": "string"}, "value": _VALUE,
                                       "step": {"type": ["integer", "null"]},
                                       "timestamp": {"type": ["string", "null"]}}}}}},
    "Study": {"type": "object", "required": ["name", "status", "trials", "counts", "best"], "properties": {
        "name": {"type": "string"}, "status": {"enum": [STUDY_RUNNING, *TERMINAL_STATUSES]},
        "description": {"type": ["string", "null"], "description": "the description the study was submitted with"},
        "reason": {"type": ["string", "null"]}, "algorithm": {"type": "string"},
        "objectives": {"type": "array", "items": {"type": "object", "required": ["metric", "direction"], "properties": {
            "metric": {"type": "string"}, "direction": {"enum": ["minimize", "maximize"]},
            "goal": {"oneOf": [_VALUE, {"type": "null"}]}}}},
        "trials": {"type": "integer"}, "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "createdAt": {"type": "number", "description": "seconds since the epoch"}, "startedAt": _TIME,
        "completedAt": _TIME,
        "maxTrials": {"type": ["integer", "null"], "description": "the most trials the study creates: its maxTrials, "
                      "or for a study without one the cap the service's limits gave it when it was admitted (null "
                      "for such a study stored before katuna kept that cap)"},
        "maxTrialsSetBy": {"type": ["string", "null"], "description": "the setting that set maxTrials for a study "
                           "without one (KATUNA_MAX_TRIALS, KATUNA_MAX_HISTORY or KATUNA_MAX_HISTORY_CELLS); null "
                           "where the study gives maxTrials"},
        "best": {"oneOf": [{"$ref": "#/components/schemas/Trial"}, {"type": "null"},
                           {"type": "array", "items": {"$ref": "#/components/schemas/Trial"}}],
                 "description": "the best trial; with several objectives, at most 20 trials of the Pareto front, "
                                "spread evenly along it, its two ends included"},
        "frontSize": {"type": "integer", "description": "with several objectives: the trials on the whole Pareto "
                                                        "front (best lists at most 20 of them)"},
        "nodePool": {"oneOf": [{"$ref": "#/components/schemas/NodePoolUse"}, {"type": "null"}]},
        "definition": {"type": "object"}, "links": {"type": "object"},
        "reproducibility": {"type": "object", "description": "the sampler seed the study runs with (chosen at "
                            "its start when the definition gives none), the katuna and Optuna versions that "
                            "started it and the look-ahead it started with (trials asked for while others run: "
                            "the same seed suggests the same trials only with the same look-ahead); null fields "
                            "for a study that has not started",
                            "properties": {"seed": {"type": ["integer", "null"]},
                                           "katunaVersion": {"type": ["string", "null"]},
                                           "optunaVersion": {"type": ["string", "null"]},
                                           "lookahead": {"type": ["integer", "null"]}}},
        "trialTemplateSource": {"type": ["string", "null"], "description": "the ConfigMap and key the trial "
                                "template was read from when the study was submitted (null: given inline)"},
        "resource": {"description": "the Kubernetes resource (kind, namespace, name) that manages the study",
                     "oneOf": [{"type": "null"}, {"type": "object", "properties": {
                         "kind": {"type": "string"}, "namespace": {"type": "string"}, "name": {"type": "string"}}}]}}},
    "NodePoolUse": {"type": "object", "description": "The node pool the study's trials ran on, and its lifetime",
                    "required": ["pool", "provider", "capacity", "phase"], "properties": {
        "pool": {"type": "string"}, "provider": {"enum": ["gke", "eks"]},
        "capacity": {"enum": ["spot", "preemptible", "on-demand"]},
        "machineTypes": {"type": "array", "items": {"type": "string"}}, "maxNodes": {"type": "integer"},
        "shared": {"type": "boolean"}, "phase": {"enum": ["creating", "ready", "releasing", "released", "failed"]},
        "created": {"type": "boolean"}, "owned": {"type": "boolean"}, "adopted": {"type": "boolean"},
        "deleted": {"type": "boolean"}, "message": {"type": ["string", "null"]},
        "requestedAt": {"type": "number"}, "readyAt": {"type": ["number", "null"]},
        "releasedAt": {"type": ["number", "null"]}, "hours": {"type": "number"}, "maxNodeHours": {"type": "number"},
        "nodeHours": {"type": ["number", "null"], "description": "node-hours measured from the pool's Node objects "
                      "(creation to removal, within the study's use of the pool, shared evenly with the studies using "
                      "the pool at the same time); null until the nodes were listed"},
        "nodesSeen": {"type": "integer"}, "nodesRunning": {"type": "integer"},
        "nodesLookedAt": {"type": ["number", "null"]},
        "nodesProblem": {"type": ["string", "null"], "description": "why the last look at the nodes failed"},
        "pricePerNodeHour": {"type": ["number", "null"], "description": "the study's nodePool.pricePerNodeHour"},
        "cost": {"type": ["number", "null"], "description": "nodeHours times pricePerNodeHour"}}},
    "DeadLetter": {"type": "object", "required": ["id", "event", "reason", "receivedAt"], "properties": {
        "id": {"type": "integer", "description": "the letter's number: the next page's before"},
        "event": {"type": "object"}, "reason": {"type": "string"}, "receivedAt": {"type": "number"}}},
    "Submitted": {"type": "object", "required": ["name", "status", "links"], "properties": {
        "name": {"type": "string"}, "status": {"type": "string"}, "links": {"type": "object"}}},
}


def _limit(default: int, maximum: int, what: str) -> dict[str, Any]:
    return {"name": "limit", "in": "query", "description": f"{what} in the page (it also ends at 8 MiB)",
            "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default}}


def _cursor(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description,
            "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}}


def _page(item: str, what: str) -> dict[str, Any]:
    """A page of a listing (:mod:`functions.adapters.web.paging`)."""
    return {"description": f"a page of {what}", "headers": {"Link": {
                "description": "the next page's path, as <path>; rel=\"next\" (RFC 8288); absent on the last page",
                "schema": {"type": "string"}}},
            "content": {"application/json": {"schema": {"type": "array",
                                                        "items": {"$ref": f"#/components/schemas/{item}"}}}}}


_OPEN = ("/healthz", "/readyz")
"""Paths no check stands in front of (``functions.adapters.web.OPEN_PATHS``)."""

_EVENT_PATHS = ("/", "/functions/{function}")


def _with_refusals(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with, on each operation, the refusals of the checks in front of it (in the order
    they run: ``functions.adapters.web._guard``) and the database's ``503``."""
    paths = deepcopy(paths)
    for path, item in paths.items():
        for method, operation in item.items():
            if method == "parameters" or path in _OPEN:
                continue
            for status, description in _refusals(path, method):
                _add(operation["responses"], status, description)
    return paths


def _refusals(path: str, method: str) -> list[tuple[str, str]]:
    """(status, description) of each refusal ``method path`` may get before its route runs;
    ``/metrics`` has checks of its own after the local user's (``_check_scraper``)."""
    local_user = ("403", "without KATUNA_API_TOKEN, a caller of another account of the machine "
                         "(local_user_not_allowed)")
    cross_site = ("403", "a read another site's page asks for: an image, script, frame or fetch (cross_origin)")
    if path == "/metrics":
        return [local_user, cross_site]
    event = path in _EVENT_PATHS or (path == "/dead-letters" and method == "post")
    found = [local_user, ("400", "a Host that is not served (host_not_allowed)"),
             ("400", "a body the client stopped sending before it was whole (incomplete_body)"),
             ("408", "a body not sent within KATUNA_CLIENT_TIMEOUT (request_timeout, katuna serve)"),
             ("414", "a request line over 4,094 bytes (uri_too_long, katuna serve)"),
             ("431", "over 100 header fields, or one over 8,190 bytes (request_header_fields_too_large, "
                     "katuna serve)"),
             ("413", "a body over KATUNA_MAX_BODY (request_entity_too_large)")]
    if method == "get":
        found.append(cross_site)
    else:
        found += [("415", "a body of another content type (unsupported_media_type)"),
                  ("403", "a write from another site's Origin (cross_origin)")]
    if event:
        found += [("401", "neither the API token nor an accepted OIDC delivery token (unauthorized)"),
                  ("403", "an OIDC token of a sender not in KATUNA_OIDC_SUBJECTS (sender_not_allowed)")]
    else:
        found += [("401", "missing or wrong bearer token, when KATUNA_API_TOKEN is set (unauthorized)")]
        if method != "get":
            found.append(("403", "a dashboard session's write without its CSRF token (csrf)"))
    found.append(("500", "a fault of katuna's own, logged with its traceback (internal_server_error)"))
    if path != "/openapi.json":
        found.append(("503", "the database (temporary_error, storage_unavailable, storage_full) or the trial-log "
                             "folder (logs_unavailable) cannot be used now; retry after Retry-After seconds"))
    return found


def _add(responses: dict[str, Any], status: str, description: str) -> None:
    """Document ``description`` as an ``Error`` answer of ``status``, beside what it has."""
    known = responses.get(status)
    if known is None:
        responses[status] = _error(description)
    elif description not in known["description"]:
        responses[status] = _error(f"{known['description']}; {description}")


def _study_paths() -> dict[str, Any]:
    return {
        "/studies": {
            "post": {"summary": "Submit a study (native format, YAML or JSON)", "operationId": "createStudy",
                     "requestBody": {"required": True, "content": {
                         "application/yaml": {"schema": {"type": "string"}},
                         "application/x-yaml": {"schema": {"type": "string"}},
                         "application/json": {"schema": {"type": "object"}}}},
                     "responses": {"201": _located(_json("Submitted", "created"), "the study's path"),
                                   "200": _located(_json("Submitted", "the identical study exists already, or an ended "
                                                                      "study restarts with its trial budget raised"),
                                                   "the study's path"),
                                   "400": _error("not YAML or JSON"),
                                   "409": _error("another definition uses the name"),
                                   "415": _error("not YAML or JSON"),
                                   "422": _error("invalid: every problem, with its field path"),
                                   "503": _error("the Kubernetes API cannot be asked about the study now")}},
            "get": {"summary": "The studies in the order they were stored, a page at a time",
                    "operationId": "listStudies",
                    "parameters": [_limit(500, 1_000, "studies"),
                                   _cursor("after", "the key of the study the page follows (as the next link gives it)")],
                    "responses": {
                        "200": _page("Study", "studies"),
                        "400": _error("limit or after is not a whole number in range, or another parameter was "
                                      "given")}}},
        "/studies/{name}": {
            "parameters": [_NAME],
            "get": {"summary": "A study: status, counts, best trial, stop reason", "operationId": "getStudy",
                    "responses": {"200": _json("Study", "the study"), "404": _NOT_FOUND}},
            "delete": {"summary": "Stop, then delete a study", "operationId": "deleteStudy",
                       "responses": {"204": {"description": "deleted"}, "404": _NOT_FOUND,
                                     "409": _error("the study follows a Kubernetes resource that is still there: "
                                                   "delete that resource instead")}}},
        "/studies/{name}/stop": {
            "parameters": [_NAME],
            "post": {"summary": "Stop a study and its running trials", "operationId": "stopStudy",
                     "responses": {"200": _json("Study", "stopped"), "404": _NOT_FOUND}}},
        "/studies/{name}/trials": {
            "parameters": [_NAME, _limit(1_000, 10_000, "trials"),
                           _cursor("after", "the number of the trial the page follows (as the next link gives it)")],
            "get": {"summary": "The trials of a study by number, a page at a time", "operationId": "listTrials",
                    "responses": {
                        "200": _page("Trial", "trials"),
                        "400": _error("limit or after is not a whole number in range, or another parameter was given"),
                        "404": _NOT_FOUND}}},
        "/studies/{name}/trials/{number}": {
            "parameters": [_NAME, _NUMBER],
            "get": {"summary": "One trial with its observations", "operationId": "getTrial",
                    "responses": {"200": _json("Trial", "the trial"), "404": _NOT_FOUND}}},
        "/studies/{name}/trials/{number}/logs": {
            "parameters": [_NAME, _NUMBER,
                           {"name": "attempt", "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}],
            "get": {"summary": "The output of a trial attempt, streamed", "operationId": "getTrialLogs",
                    "responses": {"200": {"description": "plain text", "content": {"text/plain": {
                        "schema": {"type": "string"}}}},
                        "400": _error("attempt is not a whole number from 1, or another parameter was given"),
                        "404": _NOT_FOUND}}},
    }


def _event_operation(summary: str, operation: str) -> dict[str, Any]:
    return {"summary": summary, "operationId": operation,
            "description": ("A CloudEvent in binary mode (ce-* headers) or structured mode "
                            "(application/cloudevents+json), with the API token or, with KATUNA_OIDC_AUDIENCE, "
                            "Knative Eventing's OIDC delivery token. An event for a study that does not exist "
                            "changes nothing and is answered like any event that changes nothing. Event types: "
                            + ", ".join(sorted(ROUTES))),
            "requestBody": {"required": True, "content": {"application/cloudevents+json": {"schema": {"type": "object"}},
                                                          "application/json": {"schema": {"type": "object"}}}},
            "responses": {"200": {"description": "handled; the one emitted event is the reply (reply mode)"},
                          "202": {"description": (
                              "handled; emitted events were queued or sent to K_SINK. The body is empty, as Knative's "
                              "broker filter requires of a 2xx answer that is no CloudEvent"),
                              "headers": {
                                  "Katuna-Emitted-Count": {"description": "how many events were sent",
                                                           "schema": {"type": "string"}},
                                  "Katuna-Emitted": {"description": ("the events sent, 'type id' each, comma-separated "
                                                                     "(at most 50, then '...')"),
                                                     "schema": {"type": "string"}},
                                  "Katuna-Tick-Coalesced": {"description": (
                                      "'true' on a tick left unhandled: it came behind a broker without OIDC less "
                                      "than KATUNA_TICK_FLOOR seconds after one the same function handled"),
                                      "schema": {"type": "string"}}}},
                          "400": _error("not a CloudEvent"),
                          "403": _error("a trial.progress without its attempt's token (KATUNA_REPORT_TOKEN); "
                                        "without the API token (a broker's delivery), an event of a type katuna "
                                        "sends itself without its signature (katunasignature)"),
                          "415": _error("neither binary nor structured mode (unsupported_media_type)"),
                          "422": _error("permanently unprocessable"),
                          "503": _error("temporarily unavailable; retry after Retry-After seconds")}}


def _metrics_path() -> dict[str, Any]:
    text = {"schema": {"type": "string"}}
    return {"get": {
        "summary": "The service's metrics for Prometheus", "operationId": "metrics",
        "description": ("Prometheus's text format (version 0.0.4), or OpenMetrics when the Accept header asks for "
                        "it; every name starts with katuna_. Event handlings by type, handler and outcome, handler "
                        "latency, studies by status, trials by state, node-pool uses by phase and (queue mode) the "
                        "events waiting. Takes KATUNA_METRICS_TOKEN or the API token from any Host; with neither "
                        "set, loopback Host names only."),
        "security": [{"bearer": []}],
        "responses": {"200": {"description": "the metrics", "content": {
                          "text/plain; version=0.0.4": text, "application/openmetrics-text; version=1.0.0": text}},
                      "400": _error("a Host that is not served (no token set)"),
                      "401": _error("missing or wrong bearer token (when KATUNA_METRICS_TOKEN or "
                                    "KATUNA_API_TOKEN is set)"),
                      "503": _error("the store cannot be read now")}}}


def document() -> dict[str, Any]:
    """The whole document."""
    paths = _study_paths()
    paths["/"] = {"post": _event_operation("Handle an event with every function subscribed to its type",
                                           "handleEvent"),
                  "get": {"summary": "The dashboard: a browser opening the service's address is sent to /ui/",
                          "operationId": "home", "responses": {"302": _located(
                              {"description": "to the dashboard"}, "/ui/ (without a session, the login form first)")}}}
    paths["/functions/{function}"] = {
        "parameters": [{"name": "function", "in": "path", "required": True,
                        "schema": {"enum": sorted({f for fs in ROUTES.values() for f in fs})}}],
        "post": _event_operation("Handle an event with one function", "handleEventWith")}
    paths["/dead-letters"] = {
        "post": {**_event_operation("Keep an event the broker could not deliver (its dead-letter sink)",
                                    "deadLetter"),
                 "responses": {"202": {"description": (
                     "kept (the newest KATUNA_MAX_DEAD_LETTERS). The body is empty: with OIDC, Knative reaches the "
                     "dead-letter sink through its broker filter, which fails a 2xx answer that is no CloudEvent. "
                     "Katuna-Study-Failed says whether the event's study was failed: only for a delivery refused "
                     "for good (a knativeerrorcode below 500 that Knative does not retry, 501, 505), never after "
                     "temporary answers (5xx, 404, 408, 409, 429, no code), never for a trial.progress, and without "
                     "the API token (a broker's delivery) only for an event katuna signed (katunasignature)"),
                     "headers": {"Katuna-Recorded": {"description": "the id of the event kept",
                                                     "schema": {"type": "string"}},
                                 "Katuna-Study-Failed": {"description": "true or false",
                                                         "schema": {"type": "string"}}}},
                               "400": _error("not a CloudEvent")}},
        "get": {"summary": "The kept dead letters, newest first, a page at a time", "operationId": "listDeadLetters",
                "parameters": [_limit(100, 1_000, "dead letters"),
                               _cursor("before", "the id of the letter the page follows (as the next link gives it)")],
                "responses": {"200": _page("DeadLetter", "dead letters"),
                              "400": _error("limit or before is not a whole number in range, or another parameter "
                                            "was given")}}}
    paths["/metrics"] = _metrics_path()
    paths["/healthz"] = {"get": {"summary": "healthz", "operationId": "healthz",
                                 "responses": {"200": {"description": "the process answers", **_status("ok")}}}}
    paths["/readyz"] = {"get": {"summary": "readyz", "operationId": "readyz", "responses": {
        "200": {"description": "ready", **_status("ready")},
        "503": _error("not ready (not_ready, with status 'not ready'), or the database cannot be read")}}}
    paths["/openapi.json"] = {"get": {"summary": "openapi", "operationId": "openapi",
                                      "responses": {"200": {"description": "this document", "content": {
                                          "application/json": {"schema": {"type": "object"}}}}}}}
    paths = _with_refusals(paths)
    return {"openapi": "3.1.0",
            "info": {"title": "katuna", "version": "1", "description": "Hyperparameter tuning as event-driven functions."},
            "components": {"schemas": _SCHEMAS,
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                               "dashboardSession": {"type": "apiKey", "in": "cookie",
                                                                    "name": "katuna_session"}}},
            "security": [{"bearer": []}, {"dashboardSession": []}],
            "paths": paths}
