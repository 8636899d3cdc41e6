"""Studies as Kubernetes custom resources (``katuna.dev/v1`` Study and Experiment, and with
the Katib overlay Katib's own ``kubeflow.org/v1beta1`` Experiment and ``kubeflow.org/v1alpha1``
StudyJob): what a resource stands for, which edits a running study takes, and the status
written back.

A ``Study``'s ``spec`` is the native study format, an ``Experiment``'s a Katib ``v1beta1``
Experiment spec, a ``StudyJob``'s a Katib ``v1alpha1`` StudyJob spec; the resource's
``metadata.name`` names the study. The definition a resource stands for is exactly what
``POST /studies`` would receive, so both paths validate and store the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from functions.core import katib_defaults
from functions.core.errors import InvalidStudy, Problem
from functions.core.metrics import Observation
from functions.core.records import COMPLETED, FAILED, STOPPED, Counts, StudyRecord, TrialRecord
from functions.core.spec import Study
from functions.core.spread import spread
from functions.core.status_room import message as condition_message
from functions.core.stop import ran_out_failing
from functions.core.strict_json import finite
from functions.core.trial_cap import shown_total

GROUP, VERSION = "katuna.dev", "v1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURALS = {"Study": "studies", "Experiment": "experiments", "StudyJob": "studyjobs"}
EDITABLE = {"Study": ("parallelism", "maxTrials", "maxFailedTrials"),
            "Experiment": ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount"),
            "StudyJob": ()}
"""The spec fields a running study takes edits of (Katib's editable fields), by kind."""

KATIB_GROUP = "kubeflow.org"
KATIB_API_VERSIONS = (f"{KATIB_GROUP}/v1beta1", f"{KATIB_GROUP}/v1alpha1")
"""Katib's API versions (its Experiment's and its StudyJob's: :mod:`functions.core.katib` and
:mod:`functions.core.studyjob`, imported only where one is read, as they need YAML), watched
only where the overlay is enabled (``KATUNA_KATIB_API``)."""

KINDS = {API_VERSION: ("Study", "Experiment"), KATIB_API_VERSIONS[0]: ("Experiment",),
         KATIB_API_VERSIONS[1]: ("StudyJob",)}
"""The kinds served under each API version: katuna's own, and Katib's (served by the overlay
``knative/katib-api`` on clusters that do not run Katib)."""

DELETED = "stopped: its resource was deleted"


@dataclass(frozen=True)
class Ref:
    """Where a resource lives: kind, namespace and name."""

    kind: str
    namespace: str
    name: str
    api_version: str = API_VERSION

    @property
    def plural(self) -> str:
        return PLURALS[self.kind]

    @property
    def group(self) -> str:
        return self.api_version.partition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.partition("/")[2]

    @property
    def katib(self) -> bool:
        """Whether this is one of Katib's own resources (``kubeflow.org``)."""
        return self.group == KATIB_GROUP

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" + (f" ({self.group})" if self.katib else "")


@dataclass(frozen=True)
class Origin:
    """The resource a stored study came from, and the last generation of it katuna handled.

    ``refused`` explains why that generation's spec was not applied (empty when it was);
    ``dropped`` says the study's workloads that ``retain`` kept were deleted once the resource
    was, ``checkpoints_dropped`` that its checkpoints on the cluster's claim were asked to be.
    """

    ref: Ref
    uid: str
    generation: int
    refused: str = ""
    refused_at: float | None = None
    dropped: bool = False
    checkpoints_dropped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.ref.kind, "namespace": self.ref.namespace, "name": self.ref.name, "uid": self.uid,
                "generation": self.generation, "refused": self.refused, "refusedAt": self.refused_at,
                "apiVersion": self.ref.api_version, "dropped": self.dropped,
                "checkpointsDropped": self.checkpoints_dropped}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Origin:
        """An origin as :meth:`to_dict` wrote it (stored before Katib's kinds: ``katuna.dev``)."""
        ref = Ref(raw["kind"], raw["namespace"], raw["name"], raw.get("apiVersion") or API_VERSION)
        return cls(ref, raw["uid"], raw["generation"], raw.get("refused") or "", raw.get("refusedAt"),
                   bool(raw.get("dropped")), bool(raw.get("checkpointsDropped")))

    def handled(self, generation: int, refused: str = "", now: float | None = None) -> Origin:
        return replace(self, generation=generation, refused=refused, refused_at=now if refused else None)

    def delete_refusal(self, study: str) -> str:
        """Why the study cannot be deleted on its own while this resource is there: the tick
        would find the resource unknown and submit it again, running every trial again."""
        ref = self.ref
        return (f"study {study!r} follows the {ref.kind} {ref.name!r} in namespace {ref.namespace!r} "
                f"({ref.api_version}), which katuna would submit again: delete that resource instead, with "
                f"kubectl delete {ref.plural}.{ref.group} {ref.name} -n {ref.namespace}; that stops the study, "
                f"which can then be deleted")


def is_resource(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` is one of katuna's own resources (``katuna.dev``)."""
    return obj.get("apiVersion") == API_VERSION and obj.get("kind") in KINDS[API_VERSION]


def description(definition_: Mapping[str, Any]) -> str | None:
    """The ``description`` a stored definition gives its study: a native study's, or that of a
    katuna.dev resource's spec (a Katib document has none). Free text katuna keeps and shows
    but never reads; it is no part of the normalised study, so it is read from the definition."""
    native = definition_.get("spec") if is_resource(definition_) else definition_
    given = native.get("description") if isinstance(native, Mapping) else None
    return given if isinstance(given, str) else None


def is_study_resource(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` is a resource that stands for a study: katuna's own, or Katib's."""
    return obj.get("kind") in KINDS.get(obj.get("apiVersion") or "", ())


def ref_of(obj: Mapping[str, Any]) -> Ref:
    metadata = obj.get("metadata") or {}
    return Ref(obj["kind"], metadata.get("namespace") or "default", metadata.get("name") or "", obj["apiVersion"])


def definition(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The study definition a resource stands for, as ``POST /studies`` would receive it."""
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise InvalidStudy([Problem("metadata", f"expected a mapping (name, namespace, labels, ...), got {metadata!r:.80}")])
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        raise InvalidStudy([Problem("spec", "required; expected a mapping")])
    from functions.core import katib, katib_metadata, studyjob

    if obj["kind"] == "Experiment":
        return {"apiVersion": katib.API_VERSION, "kind": "Experiment",
                "metadata": katib_metadata.document_metadata(metadata), "spec": dict(spec)}
    if obj["kind"] == "StudyJob":
        if spec.get("studyName") not in (None, metadata.get("name")):
            raise InvalidStudy([Problem("spec.studyName", f"expected the resource's name {metadata.get('name')!r} or "
                                                          f"nothing, got {spec['studyName']!r}")])
        return {"apiVersion": studyjob.API_VERSION, "kind": "StudyJob",
                "metadata": {"name": metadata.get("name"), "namespace": metadata.get("namespace")}, "spec": dict(spec)}
    if spec.get("name") not in (None, metadata.get("name")):
        raise InvalidStudy([Problem("spec.name", f"expected the resource's name {metadata.get('name')!r} or nothing, "
                                                 f"got {spec['name']!r}")])
    return {**spec, "name": metadata.get("name")}


def namespace_problems(spec: Study, ref: Ref) -> list[Problem]:
    """A resource's trials run in the resource's own namespace, as Katib runs an Experiment's:
    whoever may create a resource in one namespace may not have katuna run trials, which could
    read that namespace's Secrets, in another. A ``kubernetes.namespace`` naming another is refused."""
    given = spec.kubernetes.namespace
    if given is None or given == ref.namespace:
        return []
    return [Problem("kubernetes.namespace", f"expected the resource's own namespace {ref.namespace!r} or nothing, "
                                            f"got {given!r}: a study resource's trials run in the namespace it is "
                                            f"applied in; to run trials in {given!r}, apply the resource there")]


def in_namespace(spec: Study, namespace: str | None) -> Study:
    """The study with its trials in ``namespace`` (a resource's own; None: the service's default)."""
    return replace(spec, kubernetes=replace(spec.kubernetes, namespace=namespace))


def spec_paths(kind: str, problems: Sequence[Problem]) -> list[Problem]:
    """Problems with paths into the resource: a Study's native fields live under ``spec``, its
    name is the resource's own."""
    if kind != "Study":
        return list(problems)
    return [Problem("metadata.name" if p.path == "name" else f"spec.{p.path}" if p.path else "spec", p.message)
            for p in problems]


def refused_fields(kind: str, stored: Mapping[str, Any], edited: Mapping[str, Any]) -> list[str]:
    """The spec fields an edit changes that a running study cannot take: an Experiment's
    compared as Katib's webhook compares them, each spec as Katib stores it, its defaults
    written in (:mod:`functions.core.katib_defaults`)."""
    before, after = _raw_spec(kind, stored), _raw_spec(kind, edited)
    if kind == "Experiment":
        changed = katib_defaults.changed_fields(before, after)
    else:
        changed = sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
    return [f"spec.{key}" for key in changed if key not in EDITABLE[kind]]


def _raw_spec(kind: str, definition_: Mapping[str, Any]) -> Mapping[str, Any]:
    if kind in ("Experiment", "StudyJob"):
        return definition_.get("spec") or {}
    return {k: v for k, v in definition_.items() if k != "name"}


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
            ("every trial could not start", "StudyTrialsCannotStart"), (DELETED, "ResourceDeleted"),
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
    of a study of several objectives, best first on the first objective (``paretoFront``: no one
    trial is optimal there, so ``currentOptimalTrial`` is left out). A refused edit's
    ``UpdateRefused`` condition goes before the last one, which stays the study's state: Katib's
    printer columns (``kubectl get experiments``) and its UI read the last condition as the
    Experiment's state. ``Running`` turns False when the study ends, timed then, as Katib's
    ``setCondition`` times a condition whose status changes. A metric that is NaN or an
    infinity is its name (:mod:`functions.core.strict_json`): the API server takes only JSON,
    and the status read back then equals the one computed again. Trials stopped because the
    study ended count in ``trialsKilled``, as Katib counts its ``Killed`` trials, not in
    ``trialsEarlyStopped``, which counts those an early-stopping rule stopped. ``observed``
    holds the best trial's observations (:func:`katib_metrics`)."""
    words = _STARTED_WORDS["Experiment" if origin.ref.kind == "Experiment" else "Study"]
    reason, message = words["Created"]
    created = _condition("Created", reason, message.format(name=record.name), record.created_at)
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
        "phase": phase, "conditions": conditions, "observedGeneration": origin.generation,
        "startTime": timestamp(record.started_at or record.created_at), "trials": counts.created,
        "trialsSucceeded": counts.complete, "trialsFailed": counts.failed,
        "trialsEarlyStopped": counts.pruned - counts.stopped_at_end, "trialsKilled": counts.stopped_at_end,
        "trialsRunning": counts.running, "trialsPending": counts.waiting,
        "progress": f"{counts.finished}/{shown_total(record) or '-'}",
        "problems": None,
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
    front. Before a trial has completed, nothing; on Katib's own resources an empty
    ``currentOptimalTrial`` (``{observation: {}}``), which Katib always writes (the field is
    no pointer) and its UI reads without a guard."""
    if record.spec.multi_objective:
        front = [{"trialName": f"{record.name}-{t.number}", "trialNumber": t.number,
                  "objectiveValues": list(t.values or ()), **_results(t, record.spec, origin)}
                 for t in spread(best, PARETO_FRONT_SHOWN)]
        return {"paretoFront": front, "paretoFrontSize": len(best)} if best else {}
    if not best or not best[0].values:
        return {"currentOptimalTrial": {"observation": {}}} if origin.ref.katib else {}
    return {"currentOptimalTrial": {"bestTrialName": f"{record.name}-{best[0].number}", "trialNumber": best[0].number,
                                    "objectiveValue": best[0].values[0], **_results(best[0], record.spec, origin, observed)}}


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


def failed_status(reason: str, problems: Sequence[Problem], generation: int, now: float) -> dict[str, Any]:
    """The status of a resource katuna could not take: every problem, with its field path."""
    lines = "; ".join(str(p) for p in problems)
    message = f"{len(problems)} problem(s): {lines}" if len(problems) > 1 else lines
    return {"phase": "Failed", "observedGeneration": generation, "conditions": [_condition("Failed", reason, message, now)],
            "problems": [{"field": p.path, "message": p.message} for p in problems]}
