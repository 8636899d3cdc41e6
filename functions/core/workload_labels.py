"""The labels of a trial attempt's workload and of its pods, and the label selectors that find them.

Every workload katuna makes for a trial carries the study's name and uid, the trial's number and
the attempt's (:mod:`functions.core.cluster`'s label keys): they say whose a workload of a given
name is (:func:`holder`), and select a trial's, a study's or a sweep's workloads without a list
of names. Apart from the Job's rendering (:mod:`functions.core.job`), so that what only looks
workloads up imports no renderer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from functions.core import katib_trials
from functions.core.cluster import ATTEMPT_LABEL, STUDY_LABEL, TRIAL_LABEL, UID_LABEL
from functions.core.labels import valid_value
from functions.core.launch import TrialLaunch
from functions.core.naming import EARLIER, OTHER, OWN

MANAGED_BY = "app.kubernetes.io/managed-by"

ISTIO_INJECT = "sidecar.istio.io/inject"
POD_LABELS = {ISTIO_INJECT: "false"}
"""Labels of the pods of katuna's own trial Jobs, beside the Job's: Istio injects no proxy into
them where their namespace asks for injection (``istio-injection=enabled``, as Kubeflow's profile
namespaces are labelled), as Katib labels its trials' pods (``AppendIstioSidecarLabel``). A
proxy would run on after the trial's container exits, keeping its pod running. A ``trialSpec``'s
pods get none: what its template says is kept."""


def labels(launch: TrialLaunch) -> dict[str, str]:
    """The labels of the attempt's workload and of every pod it makes; a Katib Experiment's
    trial adds Katib's (``katib.kubeflow.org/experiment`` and ``katib.kubeflow.org/trial``,
    the Trial resource's name), which Katib's pod webhook gives a trial's pods and its SDK
    (``get_job_logs``) and UI select them by: each that is a label value (63 characters at most;
    a Trial of an Experiment named near that long has none, as Katib's own names stay short)."""
    own = {STUDY_LABEL: launch.study, UID_LABEL: launch.uid, TRIAL_LABEL: str(launch.number),
           ATTEMPT_LABEL: str(launch.attempt), MANAGED_BY: "katuna"}
    if launch.katib_experiment is None:
        return own
    trial = katib_trials.trial_name(launch.katib_experiment, launch.number)
    katib = {katib_trials.EXPERIMENT_LABEL: launch.katib_experiment, katib_trials.TRIAL_NAME_LABEL: trial}
    return own | {key: value for key, value in katib.items() if valid_value(value)}


def pod_labels(launch: TrialLaunch) -> dict[str, str]:
    """The labels of every pod of the attempt: a Katib Experiment's labels
    (:attr:`TrialLaunch.experiment_labels`), as Katib's pod webhook gives a Trial's labels to its
    pods, under the workload's (:func:`labels`), so that katuna's own, which select each attempt's
    pods, and ``katib.kubeflow.org/trial`` win over one of theirs of the same key (an
    ``app.kubernetes.io/managed-by`` Helm set; ``katuna.dev/`` keys are refused at submission);
    both win over the pod template's own. The workload itself gets :func:`labels` alone, as
    Katib's Job gets only its template's: a label a controller reads off a Job (Kueue's
    ``kueue.x-k8s.io/queue-name``) does not reach it from the Experiment."""
    return {**launch.experiment_labels, **labels(launch)}


def holder(found: Mapping[str, str] | None, launch: TrialLaunch) -> str:
    """Whose is a workload named as the launch's, by its labels ``found``: :data:`OWN` (this
    attempt's: the study's uid and the attempt match), :data:`EARLIER` (a trial of an earlier
    study of the same name, deleted, or deleted and submitted again, whose finished workloads
    its TTL or ``retain`` kept: names carry no uid), else :data:`OTHER` (nothing katuna made
    for a study of this name)."""
    found = found or {}
    if found.get(UID_LABEL) == launch.uid and found.get(ATTEMPT_LABEL) == str(launch.attempt):
        return OWN
    same_study = found.get(MANAGED_BY) == "katuna" and found.get(STUDY_LABEL) == launch.study
    return EARLIER if same_study and found.get(UID_LABEL) not in (None, launch.uid) else OTHER


STRAY_SELECTOR = f"{MANAGED_BY}=katuna,{STUDY_LABEL},{UID_LABEL},{TRIAL_LABEL},{ATTEMPT_LABEL}"
"""The workloads katuna made for trials, of any kind: its label and each of a trial attempt's."""


def attempt_of(labels: Mapping[str, str]) -> tuple[str, str, int, int] | None:
    """``(study, uid, trial, attempt)`` of a workload :data:`STRAY_SELECTOR` selected, from its
    labels; None where a number is no number (a workload labelled by hand)."""
    trial, attempt = labels[TRIAL_LABEL], labels[ATTEMPT_LABEL]
    if not (trial.isdigit() and attempt.isdigit()):
        return None
    return labels[STUDY_LABEL], labels[UID_LABEL], int(trial), int(attempt)


def trial_selector(launch: TrialLaunch) -> str:
    """The label selector of every workload of the launch's trial (each attempt's), and of no
    trial of an earlier study of the same name."""
    return f"{STUDY_LABEL}={launch.study},{UID_LABEL}={launch.uid},{TRIAL_LABEL}={launch.number}"


def study_selector(study: str, uid: str) -> str:
    """The label selector of every workload of every trial of the study (that very study:
    ``uid``), and of no earlier study of the same name."""
    return f"{STUDY_LABEL}={study},{UID_LABEL}={uid}"


TRIALS_PER_SELECTOR = 100
"""Trials one :func:`trials_selector` names at most: their numbers keep a request's query well
under any URL limit."""


def selector_chunks(launches: Sequence[TrialLaunch],
                    namespace_of: Callable[[TrialLaunch], str]) -> list[tuple[str, list[TrialLaunch]]]:
    """The ``launches`` by namespace and study, in chunks of at most :data:`TRIALS_PER_SELECTOR`,
    each with its namespace: what one :func:`trials_selector` may select."""
    groups: dict[tuple[str, str], list[TrialLaunch]] = {}
    for launch in launches:
        groups.setdefault((namespace_of(launch), launch.uid), []).append(launch)
    return [(namespace, group[start:start + TRIALS_PER_SELECTOR]) for (namespace, _), group in groups.items()
            for start in range(0, len(group), TRIALS_PER_SELECTOR)]


def trials_selector(launches: Sequence[TrialLaunch]) -> str:
    """The label selector of every workload of the ``launches``' trials, all of one study and at
    most :data:`TRIALS_PER_SELECTOR` (as :func:`trial_selector` selects one trial's)."""
    first = launches[0]
    numbers = ",".join(str(launch.number) for launch in launches)
    return f"{STUDY_LABEL}={first.study},{UID_LABEL}={first.uid},{TRIAL_LABEL} in ({numbers})"
