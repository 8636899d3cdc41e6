"""The document's component schemas: the bodies of the service's answers."""

from __future__ import annotations

from typing import Any

from functions.adapters.web.openapi._codes import ERROR_CODES
from functions.core.records import (
    ACTIVE_STATES,
    FINISHED_STATES,
    RUNS_ON,
    SHOWN_STOPPED,
    STOPPED_AT_END,
    STUDY_RUNNING,
    TERMINAL_STATUSES,
)

_VALUE = {"$ref": "#/components/schemas/Number"}
_EPOCH = "seconds since the epoch (1970-01-01T00:00:00Z), with their fraction"
_INSTANT = {"type": "number", "description": _EPOCH}
_TIME = {"type": ["number", "null"], "description": f"{_EPOCH}; null before it happened"}
"""Every instant the service gives as its own is a number of seconds since the epoch, so in UTC
whatever the server's time zone; an observation's ``timestamp`` is the trial's text."""

_COUNTED = {
    "complete": "COMPLETE", "failed": "FAIL",
    "pruned": "PRUNED by the study's earlyStopping rule",
    "stopped": f"stopped because the study ended before they did (stored PRUNED, as Optuna has no other state for "
               f"them, their reason beginning '{STOPPED_AT_END}'; Katib counts them Killed)",
    "running": "RUNNING", "waiting": "WAITING"}
"""A study's ``counts``, each key with the trials it counts."""

SCHEMAS: dict[str, Any] = {
    "Number": {"description": "a metric's number: NaN and the infinities, which JSON has no number for, by name",
               "oneOf": [{"type": "number"}, {"enum": ["nan", "inf", "-inf"]}]},
    "Error": {"type": "object", "required": ["error", "message", "retryable"], "properties": {
        "error": {"enum": list(ERROR_CODES), "description": "what was refused, for a program to switch on"},
        "message": {"type": "string", "description": "what was refused and what is expected, for a person"},
        "retryable": {"type": "boolean", "description": "whether the same request may succeed later (after "
                      "Retry-After seconds where it is given)"},
        "problems": {"type": "array", "items": {"type": "object", "required": ["path", "message"], "properties": {
            "path": {"type": "string"}, "message": {"type": "string"}}},
            "description": "422 and 400: the study's problems, the first 100 found"},
        "problemsNotListed": {"type": "integer", "minimum": 1,
                              "description": "how many more problems the study has than problems lists"},
        "changed": {"type": "array", "items": {"type": "string"},
                    "description": "409: the field paths in which the definition differs from the stored one"}}},
    "NotReady": {"type": "object", "description": "GET /readyz's answer while the process cannot serve: an Error "
                                                  "of not_ready that also says its status",
                 "required": ["status", "error", "message", "retryable"], "properties": {
                     "status": {"const": "not ready"}, "error": {"const": "not_ready"},
                     "message": {"type": "string", "description": "why, to a caller who may read the studies "
                                 "(with KATUNA_API_TOKEN set, one sending it), and to any other only that the "
                                 "service's log says why: the database cannot be read, its path "
                                 "no longer names the file the service opened, or what is not running: the event "
                                 "broker thread (queue mode), or the threads sending events to K_SINK (reply mode)"},
                     "retryable": {"const": True}}},
    "Trial": {"type": "object", "required": ["number", "state", "params", "value", "values", "metrics", "reason"],
              "properties": {
                  "number": {"type": "integer"},
                  "state": {"enum": [*ACTIVE_STATES, *FINISHED_STATES, SHOWN_STOPPED], "description": (
                      f"as the trial tables show it: {SHOWN_STOPPED} for a trial the study's end stopped, whose "
                      f"reason begins '{STOPPED_AT_END}' (stored PRUNED, as Optuna has no other state for it, "
                      f"so the state filter PRUNED lists it too), PRUNED for one early stopping pruned")},
                  "params": {"type": "object"},
                  "value": {"oneOf": [_VALUE, {"type": "null"}],
                            "description": "the objective's value, null unless the trial completed; with several "
                                           "objectives, the first one's (values holds each)"},
                  "values": {"type": ["array", "null"], "items": _VALUE,
                             "description": "each objective's value, in the order of the study's objectives"},
                  "metrics": {"type": "object", "additionalProperties": _VALUE},
                  "reason": {"type": ["string", "null"]},
                  "attempt": {"type": "integer"}, "exitCode": {"type": ["integer", "null"]},
                  "startedAt": _TIME, "finishedAt": _TIME,
                  "imageDigest": {"type": ["string", "null"],
                                  "description": "the image the cluster ran, with its digest, where it reports one"},
                  "generation": {"type": "integer", "description": "population-based training (pbt) only: the "
                                 "trial's generation, 0 for one drawn from the search space"},
                  "parent": {"type": ["integer", "null"], "description": "population-based training (pbt) only: "
                             "the trial whose checkpoint folder the trial started as a copy of (null in generation 0)"},
                  "initialTrial": {"type": "integer", "description": "a trial that runs an entry of the study's "
                                   "initialTrials only: that entry's index (its values given, the rest drawn by the "
                                   "sampler); absent for a trial the sampler suggested"},
                  "pareto": {"type": "boolean", "description": "a study of several objectives only: whether the "
                             "trial is on its Pareto front (as the dashboard's trial table and the CSV export mark "
                             "it; every trial of GET /studies/{name}/best is)"},
                  "peakMemory": {"type": ["integer", "null"], "description": (
                      "the most resident memory, in bytes, that a local trial's main process, or the largest of "
                      "the children it waited for, held; null for a cluster trial, one katuna stopped, and one "
                      "whose peak was no larger than katuna's own process as it started the trial (which a "
                      "started process counts as its own)")},
                  "lostRuns": {"type": "array", "description": (
                      "the runs of its current attempt lost to disruptions (a pod preempted, evicted or gone with "
                      "its node, replaced within its Job), each counted against maxAttempts; none for a local "
                      "trial"), "items": {"type": "object", "required": ["pod", "cause"], "properties": {
                          "pod": {"type": "string", "description": "the lost pod's uid"},
                          "cause": {"type": "string", "description": "as Kubernetes names it: "
                                                                     "PreemptionByScheduler, Evicted, ..."},
                          "message": {"type": "string"}}}},
                  "observations": {"type": "array", "description": (
                      "the first 1,000 values the trial reported, in order (by attempt, then as printed); "
                      "observationsAfter says where the rest go on"), "items": {"$ref": "#/components/schemas/Observation"}},
                  "observationCount": {"type": "integer", "description": "how many observations the trial has stored, "
                                                                          "of every attempt"},
                  "observationsAfter": {"type": ["string", "null"], "description": (
                      "while more observations follow those shown, the key of the last shown: GET "
                      "/studies/{name}/trials/{number}/observations?after=KEY (or katuna show NAME NUMBER --after KEY) "
                      "gives the next; null when every one is shown")}}},
    "Observation": {"type": "object", "required": ["attempt", "metric", "value"], "properties": {
        "attempt": {"type": "integer", "description": "the attempt that reported it"},
        "metric": {"type": "string"}, "value": _VALUE, "step": {"type": ["integer", "null"]},
        "timestamp": {"type": ["string", "null"], "description": (
            "the time the trial printed with the value: RFC 3339 text with the offset it printed, or for seconds "
            "since the epoch in a JSON line that instant in UTC (Z); null where it printed none")}}},
    "Counts": {"type": "object", "description": "the study's trials by state, each counted once (their sum is its "
               "trials): the trials ?state=PRUNED lists are its pruned and its stopped",
               "required": list(_COUNTED), "properties": {
                   name: {"type": "integer", "minimum": 0, "description": text} for name, text in _COUNTED.items()}},
    "Study": {"type": "object", "required": ["name", "status", "trials", "counts", "best"], "properties": {
        "name": {"type": "string"}, "status": {"enum": [STUDY_RUNNING, *TERMINAL_STATUSES]},
        "description": {"type": ["string", "null"], "description": "the description the study was submitted with"},
        "reason": {"type": ["string", "null"]}, "algorithm": {"type": "string"},
        "objectives": {"type": "array", "items": {"type": "object", "required": ["metric", "direction"], "properties": {
            "metric": {"type": "string"}, "direction": {"enum": ["minimize", "maximize"]},
            "goal": {"oneOf": [_VALUE, {"type": "null"}]}}}},
        "trials": {"type": "integer"}, "counts": {"$ref": "#/components/schemas/Counts"},
        "waitingBecause": {"type": ["string", "null"], "description": (
            "why the study's trials that wait do (its lowest-numbered waiting trial's note: room among the trials "
            "katuna runs at once, KATUNA_MAX_RUNNING_TRIALS, or its namespace's quota); null when none says")},
        "createdAt": _INSTANT, "startedAt": _TIME,
        "completedAt": _TIME,
        "maxTrials": {"type": ["integer", "null"], "description": "the most trials the study creates: its maxTrials, "
                      "or for a study without one the cap the service's limits gave it when it was admitted, or "
                      "its grid's size (less the points its warm start covers) where that is smaller (null for "
                      "such a study stored before katuna kept that cap, that is no grid)"},
        "maxTrialsSetBy": {"type": ["string", "null"], "description": "what set maxTrials for a study without one: "
                           "the setting (KATUNA_MAX_TRIALS, KATUNA_MAX_HISTORY, KATUNA_MAX_TPE_HISTORY or KATUNA_MAX_HISTORY_CELLS), or "
                           "grid (the grid's size, less the points its warm start covers: see grid); null where the study "
                           "gives maxTrials"},
        "warmStart": {"type": ["object", "null"], "description": "what the study's warm start gave its sampler "
                      "before its first trial, as completed trials that are not the study's own (no listing of "
                      "trials shows them); null without a warm start",
                      "properties": {"knownResults": {"type": ["integer", "null"], "description": "given and taken "
                                                      "in all (null: a study stored before katuna kept what it took)"},
                                     "given": {"type": "integer", "description": "given in warmStart.trials or its file"},
                                     "study": {"type": ["string", "null"], "description": "the earlier study named"},
                                     "taken": {"type": ["integer", "null"], "description": "that study's completed "
                                               "trials that fit this space, taken when this one was stored"}}},
        "grid": {"type": ["object", "null"], "description": "a grid study's grid; null for another algorithm",
                 "properties": {"points": {"type": "integer", "description": "the grid's size"},
                                "covered": {"type": "integer", "description": "its points the warm start's known "
                                            "results lie on (each once), which the study's own trials do not "
                                            "run: they visit the others, and maxTrials (set by grid) counts those"}}},
        "initialTrials": {"type": ["object", "null"], "description": "the study's initialTrials, which its first "
                          "trials run in order, each once; null where it gives none",
                          "required": ["given", "asked"],
                          "properties": {"given": {"type": "integer", "description": "the entries it gives"},
                                         "asked": {"type": "integer", "description": "those a trial runs so far "
                                                   "(the trial's initialTrial names which)"}}},
        "population": {"type": ["object", "null"], "description": "how far a study of population-based "
                       "training (pbt) has come; null for another algorithm",
                       "required": ["generation", "trials", "succeeded", "size"],
                       "properties": {"generation": {"type": "integer", "description": "its newest generation "
                                                     "(0: drawn from the search space)"},
                                      "trials": {"type": "integer", "description": "the trials asked for in it"},
                                      "succeeded": {"type": "integer", "description": "those of them that "
                                                    "succeeded"},
                                      "size": {"type": "integer", "description": "n_population: the successes "
                                               "of a generation that start the next"}}},
        "best": {"oneOf": [{"$ref": "#/components/schemas/Trial"}, {"type": "null"},
                           {"type": "array", "items": {"$ref": "#/components/schemas/Trial"}}],
                 "description": "the best trial; with several objectives, at most 20 trials of the Pareto front, "
                                "spread evenly along it, its two ends included, by number"},
        "frontSize": {"type": "integer", "description": "with several objectives: the trials on the whole Pareto "
                                                        "front (best lists at most 20 of them; GET /studies/{name}/best lists "
                                                        "them all)"},
        "nodePool": {"oneOf": [{"$ref": "#/components/schemas/NodePoolUse"}, {"type": "null"}]},
        "definition": {"type": "object"}, "links": {"type": "object"},
        "reproducibility": {"type": "object", "description": "the sampler seed the study runs with (chosen at "
                            "its start when the definition gives none), the katuna and Optuna versions that "
                            "started it, the versions of the libraries its sampler draws on besides Optuna, and "
                            "the look-ahead it started with (trials asked for while others run: the same seed "
                            "suggests the same trials only with the same look-ahead); null fields for a study "
                            "that has not started, and for a record an earlier katuna made without them",
                            "properties": {"seed": {"type": ["integer", "null"]},
                                           "katunaVersion": {"type": ["string", "null"]},
                                           "optunaVersion": {"type": ["string", "null"]},
                                           "libraryVersions": {"type": ["object", "null"], "description": "by "
                                                               "distribution name: numpy for every algorithm, "
                                                               "cmaes for cmaes, scipy for sobol and qmc, scipy, "
                                                               "scikit-learn and scikit-optimize for gp",
                                                               "additionalProperties": {"type": "string"}},
                                           "lookahead": {"type": ["integer", "null"]}}},
        "trialTemplateSource": {"type": ["string", "null"], "description": "the ConfigMap and key the trial "
                                "template was read from when the study was submitted (null: given inline)"},
        "runsOn": {"enum": [*RUNS_ON, None], "description": "where the study's trials run: local "
                   "(processes of the service that stored it) or kubernetes (Jobs on its cluster), as the service "
                   "that stored or last restarted it runs them; a service whose trials run elsewhere shows the "
                   "study and leaves it alone (null: stored before katuna kept this, run where it is served)"},
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
        "requestedAt": _INSTANT, "readyAt": _TIME,
        "releasedAt": _TIME, "hours": {"type": "number"}, "maxNodeHours": {"type": "number"},
        "nodeHours": {"type": ["number", "null"], "description": "node-hours measured from the pool's Node objects "
                      "(creation to removal, within the study's use of the pool, shared evenly with the studies using "
                      "the pool at the same time); null until the nodes were listed"},
        "nodesSeen": {"type": "integer", "description": "how many nodes the looks found (a Node whose VM stopped "
                      "and started again counts once)"}, "nodesRunning": {"type": "integer"},
        "nodesLookedAt": _TIME,
        "nodesProblem": {"type": ["string", "null"], "description": "why the last look at the nodes failed"},
        "pricePerNodeHour": {"type": ["number", "null"], "description": "the study's nodePool.pricePerNodeHour"},
        "cost": {"type": ["number", "null"], "description": "nodeHours times pricePerNodeHour"},
        "currency": {"type": ["string", "null"], "description": "the study's nodePool.currency (ISO 4217), the "
                     "currency of pricePerNodeHour and cost; null when the study names none"}}},
    "DeadLetter": {"type": "object", "required": ["id", "event", "reason", "receivedAt"], "properties": {
        "id": {"type": "integer", "description": "the letter's number: the next page's before"},
        "event": {"type": "object", "description": "the event: id, type, source, subject, time and data, and "
                  "the W3C traceparent and tracestate of the trace it came in, where it came in one"},
        "reason": {"type": "string"}, "receivedAt": _INSTANT}},
    "Submitted": {"type": "object", "required": ["name", "status", "links"], "properties": {
        "name": {"type": "string"}, "status": {"type": "string"}, "links": {"type": "object"}}},
}

