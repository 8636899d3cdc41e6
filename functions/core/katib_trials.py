"""Katib's ``kubeflow.org/v1beta1`` Trial resources, as katuna keeps them for a study that came
from a Katib Experiment: one Trial per trial, named as the Experiment's status names the best
one (``<experiment>-<number>``), labelled as Katib labels it (:func:`experiment_labels`: the
Experiment's labels and ``katib.kubeflow.org/experiment``, how Katib's SDK lists an
Experiment's trials), owned by the Experiment (deleted with it), with Katib's
conditions and observation in its status.

Everything here is computed from the store, so writing the same Trials twice is harmless. Trial
names carry no uid, so an Experiment deleted and applied again under its name can meet the
Trials of the first one, which outlive it until the garbage collector reaches them (or for good,
orphaned by ``kubectl delete --cascade=orphan``); :func:`holder` tells them from its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from functions.core.katib_defaults import primary_pod_labels
from functions.core.metrics import Observation
from functions.core.naming import EARLIER, OTHER, OWN
from functions.core.records import COMPLETE, FAIL, PRUNED, RUNNING, WAITING, StudyRecord, TrialRecord
from functions.core.resource_status import PARETO_FRONT_SHOWN, katib_metrics, timestamp
from functions.core.resources import KATIB_API_VERSIONS, Origin
from functions.core.spec import Study
from functions.core.status_room import message as condition_message
from functions.core.strict_json import finite

EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
TRIAL_NAME_LABEL = "katib.kubeflow.org/trial"
PLURAL = "trials"

_ENDS = {COMPLETE: ("Succeeded", "TrialSucceeded", "Trial has succeeded"),
         FAIL: ("Failed", "TrialFailed", "Trial has failed"),
         PRUNED: ("EarlyStopped", "TrialEarlyStopped", "Trial is early stopped")}
"""Katib's final condition (type, reason, message) for each finished state, as its trial
controller and its median-stop service write them."""
UNAVAILABLE_END = ("MetricsUnavailable", "MetricsUnavailable", "Metrics are not available")
"""Katib's final condition of a trial whose workload succeeded without reporting its objective
(its trial controller's ``TrialMetricsUnavailable``): a failed trial whose reason says "metrics
unavailable"."""
KILLED = ("Killed", "TrialKilled", "Trial is killed")
"""Katib's condition of a trial ended from outside before its end (``TrialKilled`` in Katib's
trial_types.go, counted in the Experiment's ``trialsKilled``): a trial katuna stopped because
the study ended, which no early-stopping rule stopped."""
CREATED = ("Created", "TrialCreated", "Trial is created")
RUNNING_CONDITION = ("Running", "TrialRunning", "Trial is running")
"""Katib's ``Created`` and ``Running`` conditions (its trial controller's words); ``Running``
keeps its reason and message when it turns False at the trial's end, as Katib's trial controller
turns it at a Succeeded, Failed, Killed or MetricsUnavailable end. Katib's median-stop service
appends ``EarlyStopped`` and leaves ``Running`` True, which no reader of a Trial needs (its
printer columns, SDK and UI go by the last condition, or by ``EarlyStopped`` itself): katuna
turns it False at every end, so that ``Running`` True means a trial that runs."""


TRIAL_NAME_ENV = "KATIB_TRIAL_NAME"
"""The variable holding the trial's Trial name, which Katib's pod webhook gives the primary
container of every pod of a trial (its SDK's ``report_metrics`` reads it, and so may a program
naming its checkpoints or outputs after its trial): katuna gives it to a Katib Experiment's
trials, locally and on a cluster (:func:`trial_env`)."""


def failure_limit(definition: Mapping[str, Any]) -> str | None:
    """How a study's reason names the failure limit its user wrote, for a Katib Experiment
    (``maxFailedTrialCount (2)``: Katib fails one once its failed trials *reach* the count,
    where the native ``maxFailedTrials`` it becomes is one less; :func:`functions.core.katib.failures_allowed`);
    None for any other study, whose reason says how many failures it allows."""
    if not is_katib_experiment(definition):
        return None
    given = (definition.get("spec") or {}).get("maxFailedTrialCount")
    return None if given is None else f"maxFailedTrialCount ({given})"


def trial_name(experiment: str, number: int) -> str:
    return f"{experiment}-{number}"


def is_katib_experiment(definition: Mapping[str, Any]) -> bool:
    """Whether a stored ``definition`` is a Katib Experiment (submitted as one, or the
    Experiment resource a study came from)."""
    return definition.get("apiVersion") == KATIB_API_VERSIONS[0] and definition.get("kind") == "Experiment"


def experiment_name(definition: Mapping[str, Any], study: str) -> str:
    """The name of the Experiment a stored Katib ``definition`` is: its ``metadata.name``, which
    names its Trials, their labels and ``KATIB_TRIAL_NAME``, though its study's name may be
    qualified by its namespace (:func:`~functions.core.resources.qualified_name`); ``study``
    where the definition names none."""
    name = (definition.get("metadata") or {}).get("name")
    return name if isinstance(name, str) and name else study


def experiment_labels(definition: Mapping[str, Any], experiment: str) -> dict[str, str]:
    """The labels Katib gives each Trial of the Experiment ``definition`` (``TrialLabels`` in
    its controller's util/labels.go): the Experiment's own ``metadata.labels``, with
    :data:`EXPERIMENT_LABEL` naming ``experiment`` over any of that key; none for any other
    study. Its pod webhook gives a Trial's labels to every pod of its workload, over the pod
    template's (``mutatePodMetadata``); its annotations, which Katib carries nowhere, stay on it."""
    if not is_katib_experiment(definition):
        return {}
    given = (definition.get("metadata") or {}).get("labels")
    return {**(dict(given) if isinstance(given, Mapping) else {}), EXPERIMENT_LABEL: experiment}


def trial_env(definition: Mapping[str, Any], experiment: str, number: int) -> dict[str, str]:
    """:data:`TRIAL_NAME_ENV` with the Trial name of trial ``number`` of ``experiment``, for a
    study whose stored ``definition`` is a Katib Experiment (none for any other study). The name
    is the trial's, the same for each of its attempts, as Katib's is for each pod of its Job."""
    if not is_katib_experiment(definition):
        return {}
    return {TRIAL_NAME_ENV: trial_name(experiment, number)}


TRIAL_LISTS = {WAITING: "pendingTrialList", RUNNING: "runningTrialList", COMPLETE: "succeededTrialList",
               FAIL: "failedTrialList", PRUNED: "earlyStoppedTrialList"}
"""The Experiment status's list of the Trials in each state (Katib's status_util), by katuna's
state; a pruned trial stopped because the study ended is in ``killedTrialList`` instead, and a
failed trial that never reported its objective in ``metricsUnavailableTrialList``."""
KILLED_LIST = "killedTrialList"
UNAVAILABLE_LIST = "metricsUnavailableTrialList"
TRIALS_LISTED = PARETO_FRONT_SHOWN
"""The most Trials a list names (the ``trials*`` counters count them all), as a status lists at
most this many trials of a Pareto front: a resource is stored whole, at most 1.5 MiB."""


TRIALS_KEPT = 10_000
"""The most Trial resources of ended trials an Experiment keeps on the cluster by default
(``KATUNA_KATIB_TRIALS_KEPT``): those of its latest trials by number, and its best trial's. Each
Trial is an etcd value of about 2 KB (its spec, status and the API server's ``managedFields``),
which the API server also holds in its watch cache, and Katib's SDK lists an Experiment's Trials
in one request, unpaged: 100,000 of them would be about 200 MB of a cluster's etcd, whose
default quota is 2 GiB for every object of the cluster. Every trial stays in katuna's store
(``katuna trials``, ``GET /studies/{name}/trials``)."""
LEAST_KEPT = 100
"""The fewest ``KATUNA_KATIB_TRIALS_KEPT`` may be: the most names one of the Experiment status's
Trial lists holds (:data:`TRIALS_LISTED`)."""


def kept_trials(changed: Sequence[TrialRecord], newest: int, kept: int, best: int | None,
                ended: Callable[[int], bool]) -> tuple[list[TrialRecord], list[int]]:
    """Of the ``changed`` trials of an Experiment whose latest trial is number ``newest``: those
    whose Trials are written, and the numbers of the Trials to delete, so that the Trials of
    ended trials are those of the latest ``kept`` numbers, and of trial ``best`` (Katib's UI
    links the ``currentOptimalTrial``), however large the study grows. A trial that ends below
    the window is not written and its Trial deleted; each trial's end deletes the Trial ``kept``
    numbers before it, where that trial has ended (``ended``) and is not the best, so a report
    deletes at most two Trials a changed trial, whatever the study's size. A Trial of a trial
    still running is kept until it ends."""
    start = newest - kept + 1
    written: list[TrialRecord] = []
    dropped: set[int] = set()
    for trial in changed:
        if trial.finished and trial.number < start and trial.number != best:
            dropped.add(trial.number)
        else:
            written.append(trial)
        older = trial.number - kept
        if trial.finished and older >= 0 and older != best and ended(older):
            dropped.add(older)
    return written, sorted(dropped)


def trial_lists(experiment: str, trials: Sequence[TrialRecord]) -> dict[str, list[str] | None]:
    """Katib's per-state lists of Trial names (its UI counts an Experiment's trials from them),
    each the latest :data:`TRIALS_LISTED` of its state by number, in order; an empty list is
    None, so that a merge patch removes what an earlier status listed."""
    lists: dict[str, list[TrialRecord]] = {name: [] for name in [*TRIAL_LISTS.values(), KILLED_LIST, UNAVAILABLE_LIST]}
    for trial in sorted(trials, key=lambda t: t.number):
        lists[_listed_in(trial)].append(trial)
    return {name: [trial_name(experiment, t.number) for t in listed[-TRIALS_LISTED:]] or None
            for name, listed in lists.items()}


def _listed_in(trial: TrialRecord) -> str:
    """The Experiment status's list that names ``trial``."""
    if trial.stopped_at_end:
        return KILLED_LIST
    return UNAVAILABLE_LIST if trial.metrics_unavailable else TRIAL_LISTS[trial.state]


def trials_owner(record: StudyRecord) -> Origin | None:
    """Where the study's trials are kept as Katib Trial resources: the Katib Experiment it came
    from (None for any other study)."""
    if record.origin is None:
        return None
    origin = Origin.from_dict(record.origin)
    return origin if origin.ref.kind == "Experiment" and origin.ref.katib else None


def trial_resource(record: StudyRecord, origin: Origin, trial: TrialRecord) -> dict[str, Any]:
    """The Trial resource of ``trial`` (spec and metadata; :func:`trial_status` is its status),
    its spec with the ``primaryPodLabels`` Katib's controller copies from the template, defaulted
    by the trial kind as Katib's webhook defaults them (:func:`~functions.core.katib_defaults.primary_pod_labels`),
    owned by its Experiment, whose deletion the garbage collector follows with its Trials'. The
    reference does not block the Experiment's deletion: a blocking one would need ``update`` on
    ``experiments/finalizers`` where the OwnerReferencesPermissionEnforcement admission plugin
    runs (OpenShift), which katuna's role has no need to grant."""
    spec = record.definition.get("spec") or {}
    template = spec.get("trialTemplate") or {}
    ref = origin.ref
    trial_spec: dict[str, Any] = {
        "objective": spec.get("objective") or {},
        "parameterAssignments": [{"name": k, "value": str(v)} for k, v in trial.params.items()],
        "primaryContainerName": template.get("primaryContainerName"),
    }
    labels = primary_pod_labels(template)
    if labels:
        trial_spec["primaryPodLabels"] = labels
    return {
        "apiVersion": KATIB_API_VERSIONS[0], "kind": "Trial",
        "metadata": {
            "name": trial_name(ref.name, trial.number), "namespace": ref.namespace,
            "labels": experiment_labels(record.definition, ref.name),
            "ownerReferences": [{"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name, "uid": origin.uid,
                                 "controller": True}],
        },
        "spec": trial_spec,
    }


def owner_uid(trial: Mapping[str, Any]) -> str:
    """The uid of the Experiment owning a Trial resource made by :func:`trial_resource`."""
    return str(trial["metadata"]["ownerReferences"][0]["uid"])


def holder(found: Mapping[str, Any], experiment: str, uid: str) -> str:
    """Whose is the Trial ``found``, which holds the name of a Trial of the Experiment
    ``experiment`` with ``uid``: :data:`OWN` when its (first) owner is that Experiment, as
    :func:`trial_resource` makes it; :data:`EARLIER` when it is a Trial of an earlier Experiment
    of the same name (labelled with the name, and owned by nothing but an Experiment of that
    name: a deleted one, since ``uid`` holds the name now; or by nothing, orphaned); else
    :data:`OTHER`, which katuna did not make for an Experiment of this name."""
    metadata = found.get("metadata") or {}
    owners = [o for o in metadata.get("ownerReferences") or [] if isinstance(o, Mapping)]
    if owners and owners[0].get("uid") == uid:
        return OWN
    labelled = (metadata.get("labels") or {}).get(EXPERIMENT_LABEL) == experiment
    same_name = all(o.get("kind") == "Experiment" and o.get("name") == experiment and o.get("uid") != uid
                    for o in owners)
    return EARLIER if labelled and same_name else OTHER


def _end(trial: TrialRecord) -> tuple[str, str, str]:
    """Katib's final condition of an ended ``trial``: ``Killed`` for one stopped because its study
    ended, ``MetricsUnavailable`` for one that never reported its objective, else its state's."""
    if trial.stopped_at_end:
        return KILLED
    return UNAVAILABLE_END if trial.metrics_unavailable else _ENDS[trial.state]


def trial_status(trial: TrialRecord, spec: Study, observed: Sequence[Observation] = ()) -> dict[str, Any]:
    """Katib's Trial status: Created, then Running while it runs (False from its end on, timed
    then, as Katib's ``setCondition`` times a condition whose status changes), then its end, with the
    observation of the metrics katuna parsed, from the trial's ``observed`` reports
    (:func:`~functions.core.resource_status.katib_metrics`; one that is NaN or an infinity by its
    name, as :mod:`functions.core.strict_json` writes it). Each condition has Katib's message;
    the one ending the trial follows it with katuna's reason for the end, where Katib puts its
    Job's message (``Trial has failed. Job message: ...``). ``startTime`` is when the trial was
    made, its ``Created`` condition's time, and never moves, as Katib's trial controller sets it
    once, when it first sees the Trial: a pending Trial's does not change when it starts, and
    ``completionTime`` minus it is the trial's whole time, waiting included."""
    def condition(words: tuple[str, str, str], when: float | None, status: str = "True",
                  why: str = "") -> dict[str, Any]:
        kind, reason, message = words
        return {"type": kind, "status": status, "reason": reason,
                "message": condition_message(f"{message}: {why}" if why else message),
                "lastTransitionTime": timestamp(when), "lastUpdateTime": timestamp(when)}

    conditions = [condition(CREATED, trial.created_at)]
    if trial.started_at is not None or trial.state == RUNNING:
        ran_until = trial.finished_at if trial.finished else None
        conditions.append(condition(RUNNING_CONDITION, ran_until or trial.started_at or trial.created_at,
                                    "False" if trial.finished else "True"))
    status: dict[str, Any] = {"startTime": timestamp(trial.created_at), "conditions": conditions}
    if trial.finished:
        conditions.append(condition(_end(trial), trial.finished_at, why=trial.reason))
        status["completionTime"] = timestamp(trial.finished_at)
    if trial.metrics:
        status["observation"] = {"metrics": katib_metrics(trial, spec, observed)}
    return finite(status)
