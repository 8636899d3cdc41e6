"""The label selectors of a trial attempt's pods, by which katuna finds them (to read their
logs and their ends) and a person can: ``kubectl logs -f`` of the attempt's output
(:func:`follow_command`), which ``katuna logs`` names for a trial its pods keep the log of."""

from __future__ import annotations

from shlex import quote

from functions.core import trial_kinds, workload_pods
from functions.core.cluster import ATTEMPT_LABEL, TRIAL_LABEL, UID_LABEL
from functions.core.job import primary_container_name
from functions.core.launch import TrialLaunch


def pod_selector(launch: TrialLaunch) -> str:
    """The label selector of the attempt's primary pods (:func:`workload_pod_selector`'s) with
    the primary pod labels."""
    spec = launch.trial_spec or {}
    primary = sorted(trial_kinds.primary_pod_labels(spec, launch.primary_pod_labels).items())
    return ",".join(_workload_terms(launch) + [f"{k}={v}" for k, v in primary])


def workload_pod_selector(launch: TrialLaunch) -> str:
    """The label selector of every pod of the attempt's workload, primary or not; a kind whose
    pods no label of its operator's tells apart gets :func:`pod_selector`'s."""
    known = trial_kinds.kind_of(launch.trial_spec or {})
    if known is None or known.owner_label is None:
        return pod_selector(launch)
    return ",".join(_workload_terms(launch))


def _workload_terms(launch: TrialLaunch) -> list[str]:
    """The label the kind's controller puts on each pod it makes, valued with the workload's
    name, and the study's uid where katuna's labels reach the pods: none of an earlier study's
    workload of the same name, whose pods may still be Terminating (a TrainJob's are told apart
    by their owners, :func:`functions.adapters.kubernetes_workloads.made_by`). A Job with
    ``manualSelector`` gets no such label (:func:`~functions.core.workload_pods.manual_selector`):
    katuna's trial and attempt labels, which its template carries, select its pods instead."""
    spec = launch.trial_spec or {}
    known = trial_kinds.kind_of(spec)
    uid = [f"{UID_LABEL}={launch.uid}"] if workload_pods.labels_pods(spec) else []
    if workload_pods.manual_selector(spec):
        return [f"{TRIAL_LABEL}={launch.number}", f"{ATTEMPT_LABEL}={launch.attempt}", *uid]
    owner = known.owner_label if known is not None else None
    return ([f"{owner}={launch.job_name}"] if owner else []) + uid


def follow_command(launch: TrialLaunch, namespace: str) -> str | None:
    """The ``kubectl logs`` that follows the attempt's output as it is written: its primary
    pods' trial container, every line (``kubectl logs -l`` prints a pod's last 10 alone). The
    pods of katuna's own Job are selected by the labels katuna gives them (the study's uid, the
    trial and the attempt), a ``trialSpec``'s by :func:`pod_selector`; None where no label
    tells its pods apart (a TrainJob's, told by their owners)."""
    selector = pod_selector(launch) if launch.trial_spec is not None else \
        f"{UID_LABEL}={launch.uid},{TRIAL_LABEL}={launch.number},{ATTEMPT_LABEL}={launch.attempt}"
    if not selector:
        return None
    return (f"kubectl logs -f --tail=-1 -n {quote(namespace)} -l {quote(selector)} "
            f"-c {quote(primary_container_name(launch))}")
