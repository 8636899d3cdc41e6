"""The study API's operations: submit, list, inspect, stop and delete studies; read trials and their logs."""

from __future__ import annotations

from typing import Any

from functions.adapters.web.openapi._parts import (
    IF_NONE_MATCH,
    cursor,
    error,
    json_body,
    limit,
    located,
    not_modified,
    page,
    tagged,
)
from functions.adapters.web.openapi._trial_filters import trial_filters
from functions.adapters.web.study_keys import KEY_PATTERN, MAX_KEY
from functions.core.naming import DNS1123_LABEL, MAX_NAME

_NAME = {"name": "name", "in": "path", "required": True, "description": "the study's name, a DNS-1123 label",
         "schema": {"type": "string", "maxLength": MAX_NAME, "pattern": f"^{DNS1123_LABEL.pattern}$"}}
_NUMBER = {"name": "number", "in": "path", "required": True, "description": "the trial's number, in ASCII digits",
           "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}}
_BAD_NUMBER = "name is not a DNS-1123 label, or number is not a whole number from 0 to 9223372036854775807"
_BAD_NAME = "name is not a DNS-1123 label"
_NOT_FOUND = error("no such study or trial")
_STUDY_KEY = {"name": "after", "in": "query",
              "description": "the key of the study the page follows, its creation time and name (as the next link "
                             "gives it)",
              "schema": {"type": "string", "maxLength": MAX_KEY, "pattern": KEY_PATTERN}}


def study_paths() -> dict[str, Any]:
    """The study API's paths, with their own answers (the checks' refusals are added after)."""
    return {**_studies(), **_study(), **_trial_lists(), **_trial()}


def _studies() -> dict[str, Any]:
    """The collection of studies: submit one, list them."""
    return {
        "/studies": {
            "post": {"summary": "Submit a study (native format, YAML or JSON)", "operationId": "createStudy",
                     "requestBody": {"required": True, "content": {
                         "application/yaml": {"schema": {"type": "string"}},
                         "application/x-yaml": {"schema": {"type": "string"}},
                         "text/yaml": {"schema": {"type": "string"}},
                         "text/x-yaml": {"schema": {"type": "string"}},
                         "application/json": {"schema": {"type": "object"}}}},
                     "responses": {"201": located(json_body("Submitted", "created"), "the study's path"),
                                   "200": located(json_body("Submitted", "the identical study exists already, or an "
                                                                         "ended study restarts with its trial budget "
                                                                         "raised"),
                                                  "the study's path"),
                                   "400": error("not YAML or JSON (unparseable_study), or empty"),
                                   "409": error("another definition uses the name, or the identical study runs "
                                                "and its trials run where this service does not run trials, or "
                                                "an ended study that came from a cluster resource was sent with "
                                                "its budget raised: it restarts only through that resource "
                                                "(restart_through_resource), or the database holds "
                                                "KATUNA_MAX_STUDIES studies that have not ended "
                                                "(too_many_studies), or the study's node pool would be one more "
                                                "than the KATUNA_MAX_POOLS its studies may hold (too_many_pools)"),
                                   "415": error("not YAML or JSON"),
                                   "422": error("invalid: every problem, with its field path (a document that "
                                                "is no mapping, such as a list or null: the path \"\")"),
                                   "503": error("the Kubernetes API cannot be asked about the study now")}},
            "get": {"summary": "The studies in the order they were stored, a page at a time",
                    "operationId": "listStudies",
                    "parameters": [limit(500, 1_000, "studies"),
                                   _STUDY_KEY],
                    "responses": {
                        "200": page("Study", "studies"),
                        "400": error("limit is not a whole number in range, after is not a key a next link gives "
                                     "(an older katuna's whole number included), or another parameter was "
                                     "given")}}}
    }


def _study() -> dict[str, Any]:
    """One study: read, delete and stop it."""
    return {
        "/studies/{name}": {
            "parameters": [_NAME],
            "get": {"summary": "A study: status, counts, best trial, stop reason", "operationId": "getStudy",
                    "parameters": [IF_NONE_MATCH],
                    "responses": {"200": tagged(json_body("Study", "the study"),
                                                "the study (none while its node pool is in use: its node-hours "
                                                "grow with the clock)"),
                                  "304": not_modified("the study"), "400": error(_BAD_NAME),
                                  "404": _NOT_FOUND}},
            "delete": {"summary": "Stop, then delete a study", "operationId": "deleteStudy",
                       "responses": {"204": {"description": "deleted"}, "400": error(_BAD_NAME), "404": _NOT_FOUND,
                                     "409": error("the study follows a Kubernetes resource that is still there: "
                                                  "delete that resource instead")}}},
        "/studies/{name}/stop": {
            "parameters": [_NAME],
            "post": {"summary": "Stop a study and its running trials", "operationId": "stopStudy",
                     "responses": {"200": json_body("Study", "stopped"), "400": error(_BAD_NAME),
                                   "404": _NOT_FOUND}}}
    }


def _trial_lists() -> dict[str, Any]:
    """A study's trials, filtered and ordered, and its best ones."""
    return {
        "/studies/{name}/trials": {
            "parameters": [_NAME, limit(1_000, 10_000, "trials"), *trial_filters(), IF_NONE_MATCH],
            "get": {"summary": "The trials of a study, filtered and ordered (by number unless asked), a page at a time",
                    "operationId": "listTrials",
                    "responses": {
                        "200": tagged(page("Trial", "trials"), "the study's trials"),
                        "304": not_modified("the study's trials"),
                        "400": error(f"{_BAD_NAME}; limit is not a whole number in range; after is not a key the "
                                     "next link gives; "
                                     "state names no trial state; field names no field of numbers of the study; "
                                     "a min or max is no number (the duration's: seconds, 90s, 5m, 1.5h), is given "
                                     "neither once per field nor not at all, or a min is above its max; "
                                     "param:<name> names no categorical parameter, or a value it does not have; "
                                     "order names no field of numbers; pareto is other than true, 1, false or 0, "
                                     "or asked of a study of one objective; a parameter other than state, field, min, "
                                     "max and param:<name> was given twice, or another parameter was given "
                                     "(malformed_request, naming it)"),
                        "404": _NOT_FOUND}}},
        "/studies/{name}/best": {
            "parameters": [_NAME, limit(1_000, 10_000, "trials"),
                           cursor("after", "the number of the trial the page follows (as the next link gives it)")],
            "get": {"summary": "The best trial of a study, or every trial of the Pareto front of several objectives "
                               "(the study's best lists at most 20), by number, a page at a time",
                    "operationId": "listBestTrials",
                    "responses": {
                        "200": page("Trial", "the best trials"),
                        "400": error(f"{_BAD_NAME}, limit or after is not a whole number in range, or another "
                                     "parameter was given"),
                        "404": _NOT_FOUND}}}
    }


def _trial() -> dict[str, Any]:
    """One trial: read it, its observations and its log."""
    return {
        "/studies/{name}/trials/{number}": {
            "parameters": [_NAME, _NUMBER],
            "get": {"summary": "One trial with its observations", "operationId": "getTrial",
                    "responses": {"200": json_body("Trial", "the trial"), "400": error(_BAD_NUMBER),
                                  "404": _NOT_FOUND}}},
        "/studies/{name}/trials/{number}/observations": {
            "parameters": [_NAME, _NUMBER, limit(1_000, 10_000, "observations"),
                           {"name": "after", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]+~[0-9]+$"},
                            "description": "the key of the observation the page follows (attempt~place, as the next "
                                           "link, or the trial's observationsAfter, gives it)"}],
            "get": {"summary": "The values a trial reported, in order, a page at a time", "operationId": "listObservations",
                    "responses": {"200": page("Observation", "observations"),
                                  "400": error(f"{_BAD_NUMBER}, limit is not a whole number in range, after is not a "
                                               "key a next link gives, or another parameter was given"),
                                  "404": _NOT_FOUND}}},
        "/studies/{name}/trials/{number}/logs": {
            "parameters": [_NAME, _NUMBER,
                           {"name": "attempt", "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}},
                           {"name": "terminal", "in": "query",
                            "description": "true: the log as a terminal shows it, a line redrawn with carriage returns "
                                           "(a progress bar) at its last state; false (the default): each carriage "
                                           "return a line break, as metrics are read",
                            "schema": {"type": "string", "enum": ["true", "false", "1", "0"]}}],
            "get": {"summary": "The output of a trial attempt, streamed", "operationId": "getTrialLogs",
                    "responses": {"200": {"description": "plain text", "content": {"text/plain": {
                        "schema": {"type": "string"}}}},
                        "400": error(f"{_BAD_NUMBER}, attempt is not a whole number from 1 to 9223372036854775807, terminal is not true, "
                                     "false, 1 or 0, or another parameter was given"),
                        "404": error("no such study, trial or attempt, or the attempt ended and its log is gone "
                                     "(log_gone: its file removed, or its pods deleted)")}}}
    }

