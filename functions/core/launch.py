"""One attempt of one trial as an executor runs it: the value that crosses from the handlers to
the executors, and how a study's trial template makes it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from functions.core import checkpoints, pbt, template, trial_spec
from functions.core.checkpoints import Checkpoint
from functions.core.katib_trials import experiment_labels, experiment_name, is_katib_experiment, trial_env
from functions.core.naming import job_name
from functions.core.parameters import ChoiceParameter
from functions.core.records import StudyRecord, TrialRecord
from functions.core.remade_pods import Remade
from functions.core.report_token import attempt_token
from functions.core.spec import MAX_ATTEMPTS

if TYPE_CHECKING:
    from functions.core.cluster import Cluster
    from functions.core.disruptions import Disruption
    from functions.core.spec import Study


@dataclass(frozen=True)
class TrialLaunch:
    """Everything an executor needs to start one attempt of one trial."""

    study: str
    uid: str
    number: int
    attempt: int
    job_name: str
    argv: list[str]
    env: dict[str, str]
    working_dir: str
    timeout: float | None
    image: str | None = None
    deadline: int | None = None
    """A ``trialSpec`` Job's own ``activeDeadlineSeconds``, filled in: where Kubernetes fails the
    Job (:func:`~functions.core.trial_spec.active_deadline`; a local attempt, :func:`local_timeout`)."""
    resources: dict[str, str] | None = None
    cluster: Cluster | None = None
    container_working_dir: str | None = None
    """The working directory as the study gives it, for a container (the image's own if unset)."""
    params: Mapping[str, Any] | None = None
    trial_spec: Mapping[str, Any] | None = None
    primary_container: str | None = None
    success_condition: str | None = None
    failure_condition: str | None = None
    primary_pod_labels: Mapping[str, str] | None = None
    typed_fields: frozenset[tuple[str | int, ...]] = frozenset()
    """The ``trial_spec`` strings read as a YAML scalar once substituted (see :mod:`template`)."""
    progress: Progress | None = None
    """Set when intermediate values matter (early stopping): how to find them in the output."""
    log_folder: str = ""
    """Where a local attempt's log goes, under the logs folder (:attr:`StudyRecord.log_folder`);
    the study's name if empty."""
    metrics_file: str | None = None
    """The File collector's path, placeholders filled: where a cluster trial's wrapper reads."""
    metrics_events: tuple[str, ...] = ()
    """The study's metric names when ``metrics_file`` is the tfevent collector's directory of
    TensorFlow event files (the wrapper prints their scalars only)."""
    retain: bool = False
    """Keep the finished attempt's Job: no ``ttlSecondsAfterFinished``."""
    max_attempts: int = MAX_ATTEMPTS
    """``trialTemplate.maxAttempts``: with ``attempt``, how many disrupted pods the attempt's Job
    may lose (:func:`functions.core.disruptions.pods_to_lose`)."""
    katib_experiment: str | None = None
    """The Katib Experiment (``kubeflow.org``) the study is, as submitted or as the resource it
    came from, whose Trial resource (on a cluster serving Katib's API) stands for the trial
    (None for any other study): its pods carry Katib's labels."""
    experiment_labels: Mapping[str, str] = field(default_factory=dict)
    """The labels Katib gives the Experiment's Trials, its own among them
    (:func:`~functions.core.katib_trials.experiment_labels`), which Katib's pod webhook gives
    every pod of the trial's workload (not the workload itself); none for any other study."""
    lost_pods: Mapping[str, Disruption] = field(default_factory=dict)
    """The pods of this attempt seen disrupted at earlier looks, by uid (kept with the trial,
    :class:`functions.core.disruptions.LostPods`): counted with those seen now, as the
    controllers delete a disrupted pod soon after."""
    checkpoint: Checkpoint | None = None
    """Population-based training: the trial's checkpoint folder, and its parent's, which a
    local attempt's folder is made a copy of (:mod:`functions.core.checkpoints`)."""
    running_pods: frozenset[str] = frozenset()
    """The uids of this attempt's pods running at the latest look: one gone now, its Job still
    running, was lost to a disruption no look saw."""
    remade_pods: Remade = field(default_factory=Remade)
    """The pods of this attempt's ``ExitCode`` replicas seen at earlier looks (kept with the
    trial), counted with those seen now (:mod:`functions.core.remade_pods`)."""


@dataclass(frozen=True)
class Progress:
    """The objective's intermediate values: which metric, read by which filters and format."""

    metric: str
    filters: tuple[str, ...] = ()
    format: str = "text"
    token: str = field(default="", repr=False)
    """The attempt's report token (:mod:`functions.core.report_token`), which its reports carry."""
    every_report: bool = False
    """Each report of the metric is the next step, whatever its line names (the study's
    ``metricsCollector.steps: reports``: :class:`~functions.core.metrics.StepCounter`)."""
    keep: int = 0
    """The first steps reported however fast they come: those a rule judging a trial at one count
    of steps needs (medianstop's ``start_step``: it takes the best of all of them), which a local
    trial's pace would otherwise pass over (:mod:`functions.adapters.local_pace`)."""


TIMEOUT_FIELD = "trialTemplate.timeout sets it: raise it for a trial that needs longer"
"""What a trial ended at its timeout says of it: the field the timeout comes from, to change
there (a Katib Experiment has none: its trials' deadlines are its trialSpec's own
``activeDeadlineSeconds``, which the reason of a trial ended there names)."""


def local_timeout(launch: TrialLaunch) -> float | None:
    """How long a local attempt may run: its trial's timeout, or its Job's own deadline where
    that is sooner. A local process has no Job, so it is ended where Kubernetes would fail the
    Job (``DeadlineExceeded``), as the trial fails on Katib; on a cluster Kubernetes ends it."""
    limits = [limit for limit in (launch.timeout,) if limit]
    if launch.deadline is not None:
        limits.append(launch.deadline)  # 0 included: Kubernetes fails such a Job at once
    return min(limits) if limits else None


def past_deadline(launch: TrialLaunch) -> bool:
    """Whether a local attempt ended at :func:`local_timeout` ran past its Job's own deadline
    (rather than its trial's longer timeout)."""
    return launch.deadline is not None and local_timeout(launch) == launch.deadline


def trial_launch(record: StudyRecord, trial: TrialRecord) -> TrialLaunch:
    """The attempt to run for a trial, from the study's trial template."""
    spec = record.spec
    tmpl = spec.trial_template
    name = job_name(spec.name, trial.number, trial.attempt)
    argv, env, working_dir, local_dir = _process(record, trial, name)
    experiment = experiment_name(record.definition, spec.name)
    env.update(trial_env(record.definition, experiment, trial.number))
    return TrialLaunch(
        study=spec.name,
        uid=record.uid,
        log_folder=record.log_folder,
        number=trial.number,
        attempt=trial.attempt,
        job_name=name,
        argv=argv,
        env=env,
        working_dir=os.path.normpath(os.path.join(record.base_dir, local_dir or ".")),
        timeout=tmpl.timeout,
        deadline=(trial_spec.active_deadline(tmpl.trial_spec, trial.params, frozenset(tmpl.typed_fields))
                  if tmpl.trial_spec is not None else None),
        image=tmpl.image,
        resources=dict(tmpl.resources),
        cluster=spec.trial_cluster,
        container_working_dir=working_dir,
        params=dict(trial.params),
        trial_spec=tmpl.trial_spec,
        primary_container=tmpl.primary_container,
        success_condition=tmpl.success_condition,
        failure_condition=tmpl.failure_condition,
        primary_pod_labels=dict(tmpl.primary_pod_labels),
        typed_fields=frozenset(tmpl.typed_fields),
        progress=_progress(record, trial) if spec.early_stopping else None,
        metrics_file=_metrics_file(record, trial, name),
        metrics_events=tuple(spec.metric_names) if spec.metrics_collector.kind == "tfevent" else (),
        retain=tmpl.retain,
        max_attempts=tmpl.max_attempts,
        katib_experiment=experiment if is_katib_experiment(record.definition) else None,
        experiment_labels=experiment_labels(record.definition, experiment),
        checkpoint=(checkpoints.of_trial(dict(spec.algorithm.settings), record.log_folder, trial.number, trial.parent)
                    if spec.algorithm.name == pbt.NAME else None),
    )


def _process(record: StudyRecord, trial: TrialRecord,
             name: str) -> tuple[list[str], dict[str, str], str | None, str | None]:
    """The trial's process as its template renders it for the attempt ``name``: its argv, its
    environment (the template's, the parameters' and katuna's ``KATUNA_*``), the working folder
    its template names (in its container, for a cluster), and the folder a local run starts in
    (a trial spec's container folder, where its files are read from there)."""
    spec = record.spec
    tmpl = spec.trial_template
    container_dir = None
    if tmpl.trial_spec is not None:
        argv, env, container_dir = trial_spec.local_process(tmpl.trial_spec, tmpl.primary_container, trial.params,
                                                            name, dict(tmpl.primary_pod_labels),
                                                            spec.trial_cluster.namespace)
    else:
        argv, env = template.render_command(tmpl.command, trial.params, name), {}
    env.update(template.render_env(tmpl.env, trial.params, name))
    env.update(template.parameter_env(trial.params))
    working_dir = None if tmpl.working_dir is None else template.substitute(tmpl.working_dir, trial.params, name)
    folder = trial_spec.local_folder(tmpl)
    local_dir = (container_dir if folder is not None and folder.in_container else None) or working_dir
    env.update(KATUNA_STUDY=spec.name, KATUNA_STUDY_UID=record.uid, KATUNA_TRIAL=str(trial.number),
               KATUNA_ATTEMPT=str(trial.attempt), KATUNA_OBJECTIVE=spec.objectives[0].metric if spec.objectives else "")
    return argv, env, working_dir, local_dir


def first_launch(spec: Study) -> TrialLaunch:
    """The first attempt of the study's first trial, each parameter that applies at its lowest
    (or first listed) value: a trial as the study could make one, before it is stored (for a dry
    run of its workload; its uid is no study's)."""
    params: dict[str, Any] = {}
    for parameter in spec.parameters:
        if parameter.active(params):
            params[parameter.name] = parameter.values[0] if isinstance(parameter, ChoiceParameter) else parameter.low
    return trial_launch(StudyRecord(spec, {}, ".", uid="dry-run"), TrialRecord(spec.name, 0, params))


def _progress(record: StudyRecord, trial: TrialRecord) -> Progress:
    collector = record.spec.metrics_collector
    return Progress(record.spec.objectives[0].metric, collector.filters, collector.format,
                    attempt_token(record.report_key, record.uid, trial.number, trial.attempt),
                    collector.steps == "reports", _judged_at(record.spec))


def _judged_at(spec: Study) -> int:
    """The count of steps at which the study's rule judges a trial, where it judges it there
    alone; 0 for one that judges as it goes, or a study without early stopping."""
    return (spec.early_stopping.judged_at() if spec.early_stopping is not None else None) or 0


def _metrics_file(record: StudyRecord, trial: TrialRecord, name: str) -> str | None:
    collector = record.spec.metrics_collector
    if collector.kind not in ("file", "tfevent") or collector.path is None:
        return None
    return template.substitute(collector.path, trial.params, name)
