"""Where each workload kind a ``trialSpec`` may be keeps its pod templates
(:mod:`functions.core.trial_kinds`), with the labels its controller gives their pods, and what
katuna writes on the pods a workload's controller makes: its labels, its annotations, and the
node selector and tolerations of a kind with no pod templates.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from functions.core.trial_kinds import KUBEFLOW_PRIMARY, TrialKind, kind_of


def pod_specs(trial_spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """``(path, pod labels, pod spec)`` of each pod template the workload holds, its primary role
    first (a Training Operator job's :attr:`~functions.core.trial_kinds.TrialKind.masters`), with the labels the kind's
    controller gives its pods (a role's ``job-role: master`` stands for its first replica's, as
    worker 0 is the master of a kind whose :attr:`~functions.core.trial_kinds.TrialKind.worker_leads` without one of its
    masters; a PaddleJob of Workers alone has no master). TrainJob, Workflow and PipelineRun
    describe containers in their own shapes: their pods are made as the operator makes them."""
    for path, template, own in pod_templates(trial_spec):
        metadata = template.get("metadata")
        labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
        yield path, {**(labels if isinstance(labels, Mapping) else {}), **own}, template["spec"]


def pod_templates(trial_spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, str]]]:
    """``(path, pod template, labels its controller adds)`` of each pod template the workload
    holds (as :func:`pod_specs`), the template itself, whose labels its pods carry."""
    spec = trial_spec.get("spec")
    if not isinstance(spec, Mapping):
        return
    known = kind_of(trial_spec)
    if known is None or known.kind == "Job":
        yield from _template("spec.template", spec.get("template"))
    elif known.replica_specs:
        roles = spec.get(known.replica_specs)
        if isinstance(roles, Mapping):
            yield from _replica_templates(known, roles)
    elif known.kind == "JobSet":
        yield from _replicated_job_templates(spec.get("replicatedJobs") or [])


def _replica_templates(known: TrialKind, roles: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any],
                                                                                     Mapping[str, str]]]:
    """The pod templates of a Training Operator job's roles, its masters first (:func:`pod_templates`)."""
    masters = any(str(r).lower() in known.masters for r in roles)
    for role in sorted(roles, key=lambda r: (str(r).lower() not in known.masters, str(r))):
        replica = roles[role]
        own = {"training.kubeflow.org/replica-type": str(role).lower()}
        if str(role).lower() in known.masters or (known.worker_leads and not masters
                                                  and str(role).lower() == "worker"):
            own.update(KUBEFLOW_PRIMARY)
        if isinstance(replica, Mapping):
            yield from _template(f"spec.{known.replica_specs}.{role}.template", replica.get("template"), own)


def _replicated_job_templates(replicated_jobs: Any) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, str]]]:
    """The pod templates of a JobSet's replicated Jobs (:func:`pod_templates`)."""
    for i, replicated in enumerate(replicated_jobs):
        job = replicated.get("template") if isinstance(replicated, Mapping) else None
        if isinstance(job, Mapping) and isinstance(job.get("spec"), Mapping):
            yield from _template(f"spec.replicatedJobs[{i}].template.spec.template", job["spec"].get("template"),
                                 {"jobset.sigs.k8s.io/replicatedjob-name": str(replicated.get("name"))})


def _template(path: str, template: Any,
              own: Mapping[str, str] | None = None) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, str]]]:
    """A pod template's path, the template and ``own``, the labels its controller adds."""
    if isinstance(template, Mapping) and isinstance(template.get("spec"), Mapping):
        yield path, template, own or {}


def manual_selector(trial_spec: Mapping[str, Any]) -> bool:
    """Whether the workload is a Job with ``manualSelector``: the API server and the Job
    controller then leave its pods with its template's labels alone, none naming the Job."""
    known = kind_of(trial_spec)
    return known is not None and known.kind == "Job" and (trial_spec.get("spec") or {}).get("manualSelector") is True


def labels_pods(trial_spec: Mapping[str, Any]) -> bool:
    """Whether katuna's labels reach every pod of the workload (:func:`pod_labelled`): the pod
    templates of a Job, a Training Operator job, a JobSet or a kind katuna knows nothing of
    carry them, a Workflow's ``spec.podMetadata`` does, and a PipelineRun's own labels go to its
    pods. A TrainJob's pods are made from its runtime's templates, which katuna does not write,
    and Trainer gives a JobSet none of the TrainJob's labels (:attr:`~functions.core.trial_kinds.TrialKind.runs_as`)."""
    known = kind_of(trial_spec)
    if known is not None and known.kind in ("Workflow", "PipelineRun"):
        return True
    return (known is None or known.kind != "TrainJob") and next(pod_templates(trial_spec), None) is not None


def pod_labelled(workload: dict[str, Any], labels: Mapping[str, str]) -> None:
    """Give ``labels`` to every pod the workload's controller makes, where the kind takes pod
    labels (:func:`labels_pods`); the workload's own labels are set apart."""
    known = kind_of(workload)
    spec = workload.get("spec")
    if known is not None and known.kind == "Workflow" and isinstance(spec, dict):
        metadata = spec["podMetadata"] = dict(spec.get("podMetadata") or {})
        metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    for _, template, _ in pod_templates(workload):
        if isinstance(template, dict):
            metadata = template["metadata"] = dict(template.get("metadata") or {})
            metadata["labels"] = {**(metadata.get("labels") or {}), **labels}


def scheduled_elsewhere(workload: dict[str, Any]) -> list[dict[str, Any]]:
    """Where a kind with no pod templates takes its pods' node selector and tolerations: a
    TrainJob's ``podSpecOverrides`` entry for its trainer's ``node`` jobs (made where it has
    none), a PipelineRun's pod template for its TaskRuns (``spec.taskRunTemplate.podTemplate`` in
    ``tekton.dev/v1``, ``spec.podTemplate`` in v1beta1); none for other kinds."""
    known, spec = kind_of(workload), workload.get("spec")
    if known is None or not isinstance(spec, dict):
        return []
    if known.kind == "TrainJob":
        overrides = spec.setdefault("podSpecOverrides", [])
        for override in overrides:
            if isinstance(override, dict) and {"name": "node"} in (override.get("targetJobs") or []):
                return [override]
        overrides.append({"targetJobs": [{"name": "node"}]})
        return [overrides[-1]]
    if known.kind == "PipelineRun":
        holder = spec.setdefault("taskRunTemplate", {}) if workload.get("apiVersion") == "tekton.dev/v1" else spec
        return [holder.setdefault("podTemplate", {})]
    return []


def pod_annotated(workload: dict[str, Any], annotations: Mapping[str, str]) -> None:
    """Give ``annotations`` to every pod the workload's controller makes from what katuna writes
    (the pod templates and a Workflow's ``spec.podMetadata``, as :func:`pod_labelled`; a
    PipelineRun passes its own annotations on to its pods), where the template sets none of them."""
    known = kind_of(workload)
    spec = workload.get("spec")
    found = []
    for _, template, _ in pod_templates(workload):
        if isinstance(template, dict):
            found.append(template.setdefault("metadata", {}))
    if known is not None and known.kind == "Workflow" and isinstance(spec, dict):
        found.append(spec.setdefault("podMetadata", {}))
    if known is not None and known.kind == "PipelineRun":
        found.append(workload.setdefault("metadata", {}))
    for metadata in found:
        metadata["annotations"] = {**annotations, **(metadata.get("annotations") or {})}
