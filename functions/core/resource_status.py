"""The status katuna writes back to a study's resource: its phase and conditions, its trial
counts, and its best trial or Pareto front, as Katib's controller writes an Experiment's.

Computed from the store alone, so writing it twice is harmless; the resource itself, its kinds
and the edits it takes are :mod:`functions.core.resources`'s.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from functions.core import unreported
from functions.core.errors import NoRoom, Problem, TooManyPools, TooManyStudies
from functions.core.metrics import Observation
from functions.core.pareto_search import front_order
from functions.core.records import COMPLETED, FAILED, STOPPED, Counts, StudyRecord, TrialRecord, optimal_value
from functions.core.resources import DELETED, Origin
from functions.core.spec import Study
from functions.core.spread import spread
from functions.core.status_room import message as condition_message
from functions.core.stop import ran_out_failing
from functions.core.strict_json import finite
from functions.core.trial_cap import shown_total


def timestamp(seconds: float | None) -> str | None:
    """RFC 3339, as Kubernetes writes times."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


PARETO_FRONT_SHOWN = 100
"""The most trials of a Pareto front a status lists (``paretoFrontSize`` counts them all): a
front of several objectives can hold most of a long study's trials, and a resource is stored
whole in etcd, at most 1.5 MiB. ``GET /studies/{name}/best`` and ``katuna best`` give all of it."""

_REASONS = (("goal reached", "ExperimentGoalReached"), ("max trials reached", "ExperimentMaxTrialsReached"),
            ("too many failed trials", "ExperimentFailed"), ("time budget", "StudyTimeBudgetUsed"),
            ("search space exhausted", "ExperimentSuggestionEndReached"),
            ("every trial could not start", "StudyTrialsCannotStart"),
            (unreported.STUDY_REASON, "StudyObjectiveNotReported"),
            (unreported.COLON_REASON, "StudyObjectiveNotReported"), (DELETED, "ResourceDeleted"),
            ("stopped by user", "StoppedByUser"))


def end_reason(reason: str) -> str:
    """A Katib-like reason for how a study ended, from katuna's own words."""
    return next((code for words, code in _REASONS if words in reason), "StudyEnded")


_STARTED_WORDS = {
    "Experiment": {"Created": ("ExperimentCreated", "Experiment is created"),
                   "Running": ("ExperimentRunning", "Experiment is running")},
    "Study": {"Created": ("StudyCreated", "study {name} accepted"), "Running": ("StudyRunning", "trials are running")},
}
"""The reason and message of a resource's ``Created`` and ``Running`` conditions: an
Experiment's as Katib's controller writes them (``ExperimentCreated``, ``ExperimentRunning``,
which a script or dashboard selecting a condition by its reason matches), a Study's katuna's."""


def _condition(kind: str, reason: str, message: str, when: float | None, status: str = "True") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": condition_message(message),
            "lastTransitionTime": timestamp(when), "lastUpdateTime": timestamp(when)}


def study_status(record: StudyRecord, counts: Counts, best: Sequence[TrialRecord], origin: Origin,
                 observed: Sequence[Observation] = ()) -> dict[str, Any]:
    """The status of a stored study's resource, all from the store: writing it twice is harmless.

    ``best`` is the best trial first (one objective: ``currentOptimalTrial``), or the Pareto front
    of a study of several objectives (``paretoFront``, by number: no one trial is optimal
    there, so ``currentOptimalTrial`` is left out). A refused edit's
    ``UpdateRefused`` condition goes before the last one, which stays the study's state: Katib's
    printer columns (``kubectl get experiments``) and its UI read the last condition as the
    Experiment's state. ``Running`` turns False when the study ends, timed then, as Katib's
    ``setCondition`` times a condition whose status changes. A metric that is NaN or an
    infinity is its name (:mod:`functions.core.strict_json`): the API server takes only JSON,
    and the status read back then equals the one computed again. Trials stopped because the
    study ended count in ``trialsKilled``, as Katib counts its ``Killed`` trials, not in
    ``trialsEarlyStopped``, which counts those an early-stopping rule stopped; failed trials that
    never reported their objective, where ``counts`` tells them apart (a Katib Experiment's), in
    ``trialMetricsUnavailable``, not in ``trialsFailed``, as Katib counts its
    ``MetricsUnavailable`` trials. ``observed``
    holds the best trial's observations (:func:`katib_metrics`). ``study`` names the resource's
    study, which ``katuna show``, the HTTP API and the dashboard know it by: the resource's name,
    or, where a resource of another namespace held that, the name qualified by its namespace
    (:func:`~functions.core.resources.qualified_name`), which the ``Created`` condition's
    message gives too. ``startTime`` is when katuna took the resource, its ``Created``
    condition's time, and never moves (not when its first trial is asked for, nor at a
    restart), as Katib's controller sets it once, when it first sees the Experiment."""
    words = _STARTED_WORDS["Experiment" if origin.ref.kind == "Experiment" else "Study"]
    reason, message = words["Created"]
    named = message.format(name=record.name)
    if record.name != origin.ref.name and record.name not in named:
        named += f"; its study is {record.name}"
    created = _condition("Created", reason, named, record.created_at)
    conditions = [created]
    phase = "Created"
    if record.restarts:
        conditions.append(_condition("Restarting", "ExperimentRestarting", f"the study was restarted after it ended "
                                     f"({record.restarts} time(s)): its trial budget was raised", record.restarted_at))
    if record.started_at is not None:
        phase = "Running"
        ran_until = record.completed_at if record.terminal else None
        conditions.append(_condition("Running", *words["Running"],
                                     ran_until or record.restarted_at or record.started_at,
                                     "False" if record.terminal else "True"))
    if record.terminal:
        phase = _end_phase(record, origin)
        ended = _end_condition(origin, phase)
        if ended != phase:
            conditions.append(_condition(phase, end_reason(record.reason), record.reason, record.completed_at))
        conditions.append(_condition(ended, end_reason(record.reason), record.reason, record.completed_at))
    if origin.refused:
        conditions.insert(len(conditions) - 1, _condition("UpdateRefused", "SpecChangeRefused", origin.refused,
                                                          origin.refused_at))
    status: dict[str, Any] = {
        "phase": phase, "study": record.name, "conditions": conditions, "observedGeneration": origin.generation,
        "startTime": timestamp(record.created_at), "trials": counts.created,
        "trialsSucceeded": counts.complete, "trialsFailed": counts.failed - counts.metrics_unavailable,
        "trialMetricsUnavailable": counts.metrics_unavailable or None,
        "trialsEarlyStopped": counts.pruned - counts.stopped_at_end, "trialsKilled": counts.stopped_at_end,
        "trialsRunning": counts.running, "trialsPending": counts.waiting,
        "progress": f"{counts.finished}/{shown_total(record) or '-'}",
        "problems": None, "observedMetadata": None,
    }
    """None: left out, so nothing an earlier refusal wrote stays."""
    if record.completed_at is not None:
        status["completionTime"] = timestamp(record.completed_at)
    return finite(status | _best(record, best, origin, observed))


def _end_phase(record: StudyRecord, origin: Origin) -> str:
    """The phase of an ended study's resource. An Experiment that ran out of trials with none
    succeeded is ``Succeeded``, as Katib's controller marks it (its reason then
    ``ExperimentMaxTrialsReached`` or ``ExperimentSuggestionEndReached``, its message katuna's,
    "...; no trial succeeded"), so that Katib's clients (its SDK's ``is_experiment_succeeded``,
    ``kubectl get experiments``) read it as Katib writes it; the study itself, and a resource of
    katuna's own ``Study``, say it failed."""
    if origin.ref.kind == "Experiment" and ran_out_failing(record.status, record.reason):
        return "Succeeded"
    return {COMPLETED: "Succeeded", FAILED: "Failed", STOPPED: "Stopped"}[record.status]


def _end_condition(origin: Origin, phase: str) -> str:
    """The type of an ended study's last condition: its phase, but for an Experiment a person
    stopped (``katuna stop``, ``POST /studies/NAME/stop``), whose ``Stopped`` condition is
    followed by ``Succeeded`` (reason ``StoppedByUser`` on both): Katib has no stop, and its
    clients know an Experiment ended only by ``Succeeded`` or ``Failed`` (its SDK's
    ``wait_for_experiment_condition`` would otherwise poll until its timeout); a stopped
    study's best trial so far is its result, which ``get_optimal_hyperparameters`` reads. Its ``phase``, katuna's own reading, stays
    ``Stopped``, as the study's status does."""
    if origin.ref.kind == "Experiment" and phase == "Stopped":
        return "Succeeded"
    return phase


def _best(record: StudyRecord, best: Sequence[TrialRecord], origin: Origin,
          observed: Sequence[Observation]) -> dict[str, Any]:
    """The best trial as Katib's ``currentOptimalTrial``, or a multi-objective study's Pareto
    front (at most :data:`PARETO_FRONT_SHOWN` of its trials spread along it, by number as
    every view lists a front). Before a trial has completed, nothing; on Katib's own resources an empty
    ``currentOptimalTrial`` (``{observation: {}}``), which Katib always writes (the field is
    no pointer) and its UI reads without a guard."""
    if record.spec.multi_objective:
        along = front_order(record.spec, [(t.number, list(t.values or ())) for t in best])
        shown = set(spread([number for number, _ in along], PARETO_FRONT_SHOWN))
        front = [{"trialName": f"{origin.ref.name}-{t.number}", "trialNumber": t.number,
                  "objectiveValues": list(t.values or ()), **_results(t, record.spec, origin)}
                 for t in sorted(best, key=lambda t: t.number) if t.number in shown]
        return {"paretoFront": front, "paretoFrontSize": len(best)} if best else {}
    if not best or not (best[0].values or best[0].metrics.get(record.spec.objectives[0].metric) is not None):
        return {"currentOptimalTrial": {"observation": {}}} if origin.ref.katib else {}
    return {"currentOptimalTrial": {"bestTrialName": f"{origin.ref.name}-{best[0].number}", "trialNumber": best[0].number,
                                    "objectiveValue": optimal_value(best[0], record),
                                    **_results(best[0], record.spec, origin, observed)}}


def _results(trial: TrialRecord, spec: Study, origin: Origin, observed: Sequence[Observation] = ()) -> dict[str, Any]:
    """A trial's parameters and reduced metrics as Katib's status gives them (a Katib
    resource's metrics with their ``min``, ``max`` and ``latest`` as text: :func:`katib_metrics`)."""
    metrics = katib_metrics(trial, spec, observed) if origin.ref.katib else \
        [{"name": k, "value": v} for k, v in trial.metrics.items()]
    return {"parameterAssignments": [{"name": k, "value": str(v)} for k, v in trial.params.items()],
            "observation": {"metrics": metrics}}


UNAVAILABLE = "unavailable"
"""What Katib's status writes in the ``min``, ``max`` and ``latest`` of a metric never reported."""


def katib_metrics(trial: TrialRecord, spec: Study, observed: Sequence[Observation]) -> list[dict[str, Any]]:
    """A trial's metrics as Katib's Metric: the ``min`` and ``max`` of its numeric reports and
    its ``latest`` report, as text (Katib's clients read them with ``float``), and katuna's
    reduced value as ``value``, a number. ``observed`` are the observations the store kept (the
    first and last of a very long output); the slot the metric's strategy (in ``spec``) picks,
    as Katib's controller picks it, is its reduced value, which covers every report, as is any
    slot no report fills. A metric of the study's that the trial never reported is listed too,
    ``unavailable`` in each slot, as Katib lists every metric of the Experiment's."""
    found: dict[str, list[float]] = {}
    for obs in observed:
        extremes = found.setdefault(obs.metric, [math.nan, math.nan, math.nan])
        if math.isfinite(obs.value):
            extremes[0] = obs.value if math.isnan(extremes[0]) else min(extremes[0], obs.value)
            extremes[1] = obs.value if math.isnan(extremes[1]) else max(extremes[1], obs.value)
        extremes[2] = obs.value
    shown = []
    for name, value in trial.metrics.items():
        slots = dict(zip(("min", "max", "latest"), found.get(name, [math.nan] * 3), strict=True))
        slots = {slot: value if math.isnan(v) or slot == spec.strategy(name) else v for slot, v in slots.items()}
        shown.append({"name": name, **{slot: str(v) for slot, v in slots.items()}, "value": value})
    unreported = [m for m in spec.metric_names if m not in trial.metrics]
    return shown + [{"name": name, **dict.fromkeys(("min", "max", "latest"), UNAVAILABLE)} for name in unreported]


def failed_status(reason: str, problems: Sequence[Problem], metadata: Mapping[str, Any], now: float,
                  more: int = 0) -> dict[str, Any]:
    """The status of a resource katuna could not take: each problem kept, with its field path,
    and how many ``more`` were found (:class:`~functions.core.errors.InvalidStudy`), and the
    generation and :func:`marks` of the resource (its ``metadata``) it was refused at; no
    ``study``, as it has none."""
    lines = "; ".join(str(p) for p in problems) + (f" ({more:,} more problems not listed)" if more else "")
    count = len(problems) + more
    message = f"{count} problem(s): {lines}" if count > 1 else lines
    return {"phase": "Failed", "study": None, "observedGeneration": metadata.get("generation") or 1,
            "observedMetadata": marks(metadata), "conditions": [_condition("Failed", reason, message, now)],
            "problems": [{"field": p.path, "message": p.message} for p in problems]}


WAITING = "Waiting"
"""The phase of a resource whose study waits for room (:func:`waiting_status`)."""

_WAIT_REASONS = {TooManyStudies: "MaxStudiesReached", TooManyPools: "MaxPoolsReached"}
"""The reason of a waiting resource's ``Created`` condition, naming the limit it waits for."""


def waiting_status(refused: NoRoom, metadata: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The status of a resource whose study waits for room (``KATUNA_MAX_STUDIES``,
    ``KATUNA_MAX_POOLS``: ``refused``): phase ``Waiting``, and one condition, ``Created``
    ``False``, its reason naming the limit, which ``kubectl get`` shows as the resource's state.
    Katib's clients read neither created nor failed into it, and keep waiting. Nothing of its
    generation is marked handled (:func:`refusal_stands` is False): it is taken once room frees."""
    message = f"waits: {refused.held}; it is taken {refused.frees}"
    return {"phase": WAITING, "study": None, "observedGeneration": metadata.get("generation") or 1,
            "observedMetadata": None, "problems": None,
            "conditions": [_condition("Created", _WAIT_REASONS[type(refused)], message, now, "False")]}


def waiting_stands(obj: Mapping[str, Any], refused: NoRoom) -> bool:
    """Whether the status of the resource ``obj`` says already that its generation waits for
    the limit ``refused`` names (:func:`waiting_status`): written again, only its times and
    counts would change, and its own update event would bring the resource back to write it
    once more."""
    status, metadata = obj.get("status") or {}, obj.get("metadata") or {}
    if status.get("phase") != WAITING or status.get("observedGeneration") != (metadata.get("generation") or 1):
        return False
    return [(c.get("type"), c.get("status"), c.get("reason")) for c in status.get("conditions") or []] == [
        ("Created", "False", _WAIT_REASONS[type(refused)])]


def marks(metadata: Mapping[str, Any]) -> str:
    """A digest of a resource's labels and annotations, which katuna reads (an Experiment's
    labels go to its trials, an annotation may give its node pool) and whose change alone is no
    new generation (the API server counts only the spec's): a refusal keeps it, so that a
    resource whose labels or annotations are put right is taken (:func:`refusal_stands`)."""
    given = {key: metadata.get(key) or {} for key in ("labels", "annotations")}
    return hashlib.sha256(json.dumps(given, sort_keys=True).encode()).hexdigest()[:16]


def refusal_stands(obj: Mapping[str, Any]) -> bool:
    """Whether katuna refused the resource ``obj`` as it is now: its status says so for its
    generation and its labels and annotations (one written without :func:`marks`, for its
    generation)."""
    status, metadata = obj.get("status") or {}, obj.get("metadata") or {}
    if status.get("phase") != "Failed" or status.get("observedGeneration") != (metadata.get("generation") or 1):
        return False
    return status.get("observedMetadata") in (None, marks(metadata))
