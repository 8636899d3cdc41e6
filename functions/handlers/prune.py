"""``trial.progress``: an intermediate value; the study's pruner may stop the trial here.

A report is taken only with its attempt's token (:mod:`functions.core.report_token`): one
without it is refused (:class:`~functions.core.errors.ForgedReport`), so no trial reports for
another.

The value goes into Optuna's storage as the trial's intermediate value at that step (and how
far the trial's log has been read, where the value was read from it, into katuna's:
:mod:`functions.handlers.progress_scan`); the pruner, rebuilt like the sampler, decides from
the storage. NaN and the infinities go in too, as Optuna's ``Trial.report`` takes them: its
pruners stop a trial whose values turned NaN, or crossed a threshold, rather than let it run
on to fail. Where they do not judge that step, a value that would fail the trial at its end
(``nonFinite: fail``) prunes it all the same. A pruned trial's metrics so far are read from its output, as Katib's collector
reports them before it stops a trial; then it is recorded as pruned at that step, its slot is
filled, and once that is stored its processes (or Job) are stopped (a Job kept, suspended, when
the template has ``retain``, as Katib keeps it: :mod:`functions.handlers.stopping`). A trial that completes gets the rest of its
curve from its output (:func:`record_curve`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from functions.core.errors import OutputLost
from functions.core.events import Event, progress_value
from functions.core.history_cells import steps_kept
from functions.core.log_cursor import Cursor
from functions.core.metrics import StepCounter
from functions.core.pruners import AUTO_RESOURCE, EarlyStopping, auto_resource, auto_setting, build_pruner
from functions.core.records import PRUNED, RUNNING, StudyRecord, TrialRecord
from functions.core.report_token import check_report
from functions.core.spec import known_results
from functions.handlers.asking import optuna_study, tell
from functions.handlers.checkpoint_prunes import prune_after
from functions.handlers.deps import Deps, study_here
from functions.handlers.output import record_output
from functions.handlers.progress_scan import remember
from functions.handlers.starting import go_on
from functions.handlers.stopping import stop_once_stored


def handle(event: Event, deps: Deps) -> list[Event]:
    store, data = deps.store, event.data
    record = study_here(deps, data["study"])
    trial = store.get_trial(record.name, data["trial"])
    early_stopping = record.spec.early_stopping
    if not record.owns(data):
        return []
    check_report(record.report_key, data)
    if (early_stopping is None or record.terminal or trial is None or trial.state != RUNNING
            or trial.attempt != data["attempt"]):
        return []
    value = progress_value(data)
    pod = _pod_of(data)
    lost = store.lost_pods(record.name, trial.number).of(trial.attempt) if pod is not None else ()
    if pod in lost:
        return []
    study = optuna_study(record, deps)
    storage = deps.store.optuna_stream(record.name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(record.name), trial.number)
    logged = store.log_read(record.name, trial.number).cursor if pod is not None else None
    run = _run_of(storage, trial_id, Run(trial.attempt, pod), logged, lost)
    if run is None:
        return []
    remember(store, record.name, trial.number, data.get("cursor"))
    counted = data.get("counted") is True or record.spec.metrics_collector.steps == "reports"
    if _past_the_cap(storage.get_trial(trial_id).intermediate_values, data["step"], _cap(record, deps), counted):
        return []
    storage.set_trial_intermediate_value(trial_id, data["step"], value)
    through = _reached(storage, trial_id, run, data["step"])
    pruner = build_pruner(early_stopping, _resolved(early_stopping, storage, record.name),
                          data["step"] if counted else None)
    judged = as_launched(storage.get_trial(trial_id), trial.started_at, through)
    reason = _verdict(record, early_stopping.algorithm, pruner.prune(study, judged), data["step"], value)
    if reason is None:
        return []
    return _pruned(record, trial, deps, (reason, value), storage, trial_id, through)


def _pruned(record: StudyRecord, trial: TrialRecord, deps: Deps, verdict: tuple[str, float],
            storage: BaseStorage, trial_id: int, through: int | None) -> list[Event]:
    """Store the trial pruned for the ``verdict``'s reason (at its value), with the metrics its
    output holds so far (:func:`shown_note`), stop its attempt once that is stored, tell Optuna
    (the trial ``trial_id`` of the study's ``storage``, its reports carried ``through`` a step:
    :func:`_carry`), and go on with the study."""
    reason, value = verdict
    try:
        output = record_output(record, trial, deps)
        metrics = output.metrics
        reason += shown_note(record, value, metrics, output.reports)
    except OutputLost:
        metrics = {}
    outcome = {"state": PRUNED, "metrics": metrics, "finished_at": deps.clock(), "reason": reason}
    deps.store.update_trial(record.name, trial.number, **outcome)
    stop_once_stored(record, [trial], deps)
    _carry(storage, trial_id, through)
    tell(record, deps, trial.number, PRUNED)
    prune_after(record, deps, trial)
    return go_on(record, deps, None)


def _verdict(record: StudyRecord, rule: str, pruned: bool, step: int, value: float) -> str | None:
    """Why the trial is pruned at ``step``, or None when it runs on. Its ``rule`` prunes it; so does
    a value that is no finite number where the study's ``nonFinite`` is ``fail``, at any step
    and whatever the rule (which may judge only some steps, or none yet): its objective would
    fail the trial at its end, so running on would only spend its slot and then count against
    ``maxFailedTrials``."""
    metric = record.spec.objectives[0].metric
    if pruned:
        return f"pruned at step {step} by the {rule} rule ({metric}={value:g})"
    if not math.isfinite(value) and record.spec.metrics_collector.non_finite == "fail":
        return f"pruned at step {step}: {metric}={value:g} is not a finite number, which fails the trial"
    return None


def shown_note(record: StudyRecord, value: float, metrics: Mapping[str, float], reports: int) -> str:
    """What the reason adds where the objective a pruned trial's metrics hold (what ``katuna
    trials``, the dashboard and the CSV show, reduced by its strategy over every report its
    output holds, as Katib's collector reduces a stopped trial's) is not the ``value`` the rule
    judged: the trial may print more steps between the verdict and its stop, and ``min`` or
    ``max`` may take an earlier step's. Nothing where they read the same."""
    metric = record.spec.objectives[0].metric
    shown = metrics.get(metric)
    if shown is None or f"{shown:g}" == f"{value:g}":
        return ""
    return (f"; {metric}={shown:g} is the {record.spec.strategy(metric)} of the {reports} report"
            f"{'' if reports == 1 else 's'} it printed before it stopped")


def _carry(storage: BaseStorage, trial_id: int, through: int | None) -> None:
    """Give the steps an earlier attempt reached past ``through`` (the last a run again attempt
    reached) that attempt's value there: Optuna cannot delete intermediate values, and it takes
    a pruned trial's value from its last step, which would be the predecessor's (TPE ranks a
    pruned trial by that step too, which stays)."""
    if through is None:
        return
    values = storage.get_trial(trial_id).intermediate_values
    if through not in values:
        return
    for step in sorted(step for step in values if step > through and values[step] != values[through]):
        storage.set_trial_intermediate_value(trial_id, step, values[through])


def _resolved(early_stopping: EarlyStopping, storage: BaseStorage, study: str) -> dict[str, int] | None:
    """The pruner's ``auto`` resource as first resolved, kept with the Optuna study
    (:func:`~functions.core.pruners.auto_resource`)."""
    if auto_setting(early_stopping) is None:
        return None
    study_id = storage.get_study_id_from_name(study)
    kept = storage.get_study_system_attrs(study_id).get(AUTO_RESOURCE)
    if kept is not None:
        return dict(kept)
    found = auto_resource(early_stopping, storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,)))
    if found is not None:
        storage.set_study_system_attr(study_id, AUTO_RESOURCE, found)
    return found


def _past_the_cap(values: dict[int, float], step: int, cap: int, counted: bool = False) -> bool:
    """Whether ``step`` is a new step of a trial that has ``cap`` already, or, ``counted`` (each
    report the next step), a step past ``cap``: not stored nor judged (its cursor is, so a log's
    scan reads on past it). Counted steps kept are steps 1 to ``cap`` whatever order their
    reports come in: a later step handled first takes no earlier one's place."""
    return step not in values and (len(values) >= cap or (counted and step > cap))


def _cap(record: StudyRecord, deps: Deps) -> int:
    """The steps each trial of the study keeps: at most :data:`~functions.core.metrics.MAX_STEPS`,
    fewer where its share of ``KATUNA_MAX_HISTORY_CELLS`` is less
    (:func:`~functions.core.history_cells.steps_kept`), so that no study's Optuna history, which
    every process serving it loads, grows past what it was admitted for (a study without
    ``maxTrials`` its share as one of the trials its cap allows)."""
    return steps_kept(record.spec, deps.limits.history_cells, len(known_results(record.spec, record.warm_results)),
                      record.max_trials)


REACHED = "katuna:attempt_reached"
"""The Optuna trial's system attribute of ``[attempt, step, pod]``: the highest step the latest
run has reported, of a run again attempt or of an attempt whose pod its Job replaced (the pod's
uid; None where its reports name none), up to which the trial's intermediate values are its own."""


PODS = "katuna:attempt_pods"
"""The Optuna trial's system attribute of ``[attempt, [pod, ...]]``: the pods (uids) of the
attempt whose reports were handled, in the order their runs began (the latest
:data:`MAX_PODS`). A pod after the first replaced a disrupted one; a report of a pod before the
last is of a run its Job has replaced since."""

MAX_PODS = 100
"""Pods of an attempt kept in :data:`PODS`: far more than a Job replaces (``maxAttempts`` bounds
its lost pods), so what a trial reports about its own pods keeps a bounded size."""


@dataclass(frozen=True)
class Run:
    """Which run a report is of: its ``attempt``, the ``pod`` it was read from or posted by (None
    for a local trial's, or one posted by a reporter that names none), and whether it is of a pod
    that replaced another (``replaced``: the attempt's Job replaced a disrupted pod, whose
    successor runs the trial again from its start)."""

    attempt: int
    pod: str | None = None
    replaced: bool = False


def _pod_of(data: Mapping[str, Any]) -> str | None:
    """The pod a report is of: the one its cursor names, read from its log, or the one that
    posted it (``pod``, which ``functions.reporter`` sends on a cluster); None where it names none."""
    cursor = Cursor.from_dict(data.get("cursor"))
    if cursor is not None:
        return cursor.pod
    posted = data.get("pod")
    return posted if isinstance(posted, str) and posted else None


def _run_of(storage: BaseStorage, trial_id: int, report: Run, logged: Cursor | None,
            lost: Collection[str] = ()) -> Run | None:
    """The run of a ``report`` (its attempt and pod), the attempt's pods kept with the trial
    (:data:`PODS`); None for a report of a pod another has followed since, which comes late or
    again (a retried post, a log read once more): that run was lost, and its values are no part
    of the trial's. A pod is a replacement where another came before it: in :data:`PODS`, whose
    order a report handled again finds as its first handling left it, or as the pod whose log
    was read last (``logged``: the attempt's first pod, where its reports came before its pods
    were kept). A pod seen ``lost`` follows none: a lost pod's reports that all came late, after
    its replacement's first, leave the replacement's taken again once its look has seen it lost."""
    attempt, pod = report.attempt, report.pod
    if pod is None:
        return report
    kept = storage.get_trial_system_attrs(trial_id).get(PODS)
    pods = list(kept[1]) if isinstance(kept, list) and len(kept) == 2 and kept[0] == attempt \
        and isinstance(kept[1], list) else []
    if pod in pods and any(later not in lost for later in pods[pods.index(pod) + 1:]):
        return None
    if pod not in pods:
        pods = [*pods, pod][-MAX_PODS:]
        storage.set_trial_system_attr(trial_id, PODS, [attempt, pods])
    return Run(attempt, pod, pods.index(pod) > 0 or (logged is not None and logged.pod != pod))


def _reached(storage: BaseStorage, trial_id: int, run: Run, step: int) -> int | None:
    """The highest step the ``run`` has reported with this one, kept with the trial; None for
    the first run of a first attempt, all of whose values are its own. A report that comes late
    (a redelivery, the log scan's copy of a report the trial posted) judges the run where it
    has got to, not at the step it names. A report of another pod than the one kept begins a
    new run: the pod the Job made in place of a disrupted one starts the trial again."""
    kept = storage.get_trial_system_attrs(trial_id).get(REACHED)
    ours: list[Any] = kept if isinstance(kept, list) and kept[0] == run.attempt else []
    kept_pod = ours[2] if len(ours) > 2 else None
    if not ours and run.attempt == 1 and not run.replaced:
        return None
    new_run = not ours or (run.pod is not None and kept_pod is not None and run.pod != kept_pod)
    reached = step if new_run else max(step, ours[1])
    now = [run.attempt, reached, run.pod if run.pod is not None else kept_pod]
    if kept != now:
        storage.set_trial_system_attr(trial_id, REACHED, now)
    return reached


def _run_again(storage: BaseStorage, trial_id: int, trial: TrialRecord, deps: Deps, record: StudyRecord) -> bool:
    """Whether the trial's attempt is a run again: a later attempt, or one whose Job lost a pod
    (its replacement started the trial again) or whose reports came from a pod that replaced
    another (:func:`_reached`)."""
    if trial.attempt > 1 or deps.store.lost_pods(record.name, trial.number).of(trial.attempt):
        return True
    kept = storage.get_trial_system_attrs(trial_id).get(REACHED)
    return isinstance(kept, list) and kept[0] == trial.attempt


def as_launched(frozen: FrozenTrial, started_at: float | None, through: int | None = None) -> FrozenTrial:
    """The trial as the rule judges it: started when its attempt was launched, not when it was
    asked for (a trial prepared ahead is asked for while others still run, and Katib gives a
    trial its rule when it starts it). With ``through`` (the step a run again attempt reports
    now), its values up to that step alone: the Optuna trial is the same for every attempt, so
    it still holds an earlier attempt's values past the steps this one has reached, which are
    no part of its curve."""
    launched = None if started_at is None else datetime.fromtimestamp(started_at)
    later = launched is not None and frozen.datetime_start is not None and launched > frozen.datetime_start
    if not later and through is None:
        return frozen
    judged = copy.copy(frozen)
    if later:
        judged.datetime_start = launched
    if through is not None:
        judged.intermediate_values = {step: value for step, value in frozen.intermediate_values.items()
                                      if step <= through}
    return judged


def record_curve(record: StudyRecord, trial: TrialRecord, deps: Deps) -> None:
    """Give a trial about to complete every intermediate value of the objective its attempt's
    stored output holds that no progress event brought (one lost, or handled after the end):
    rules that judge by completed trials' curves then see whole curves, as Katib's median rule,
    which reads the observation log, does. A run again attempt's values replace every earlier
    attempt's at the steps it reached, and its last carries on over the steps it did not reach
    (:func:`_carry`); no more than the study's trials keep (:func:`_cap`) in all."""
    storage = deps.store.optuna_stream(record.name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(record.name),
                                                               trial.number)
    frozen = storage.get_trial(trial_id)
    if frozen.state.is_finished():
        return
    stored, taken = dict(frozen.intermediate_values), set()
    counter = StepCounter(record.spec.objectives[0].metric, record.spec.metrics_collector.steps == "reports")
    cap = _cap(record, deps)
    again = _run_again(storage, trial_id, trial, deps, record)
    for step, value in counter.steps(deps.store.observations(record.name, trial.number, trial.attempt)):
        if step in taken or _past_the_cap(stored, step, cap, counter.every_report):
            continue
        taken.add(step)
        if step not in stored or (again and stored[step] != value):
            storage.set_trial_intermediate_value(trial_id, step, value)
            stored[step] = value
    if again and taken:
        _carry(storage, trial_id, max(taken))
