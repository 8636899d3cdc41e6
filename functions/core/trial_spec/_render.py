"""The workload of one trial on a cluster: the ``trialSpec`` with every string substituted on its
own and katuna's requirements laid over it (name, labels, scheduling, environment, resources,
and for a Job the fields of :mod:`functions.core.trial_spec._job_fields`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import container_scripts, report_token, template, trial_kinds, workload_pods
from functions.core.documents import Path
from functions.core.errors import InvalidStudy, Problem, RefusedWorkload
from functions.core.labels import problems as label_problems
from functions.core.trial_spec._job_fields import DEADLINE, MAX_DEADLINE, is_deadline, required_field
from functions.core.trial_spec._shapes import (
    PATH,
    init_containers,
    labelled,
    located_containers,
    primary_container,
    primary_container_name,
    resources_key,
)


def render(trial_spec: Mapping[str, Any], primary: str | None, params: Mapping[str, Any],
           metadata: Mapping[str, Any], required: Mapping[str, Any], env: Mapping[str, str],
           resources: Mapping[str, Mapping[str, str]], typed: frozenset[Path] = frozenset(),
           primary_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Job from the template: ``metadata`` (name, namespace, labels) and the ``required``
    Job spec fields of katuna win (the template's ``backoffLimit`` and TTL are kept, and its
    ``podFailurePolicy`` rules follow katuna's: :func:`required_field`); the pod template gets the
    ``required`` one's labels over its own, and its annotations where it sets none of them; katuna's node selector and tolerations (a node pool's, say)
    are added to the template's; ``env`` is added to the primary container, and ``resources``
    (requests and limits) where it names none of them; the ``typed`` strings are read as YAML
    scalars once substituted. ``primary_labels`` (the study's ``primaryPodLabels``) tell the
    Job's primary pods apart, whose reports alone are the trial's (:func:`_add_env`)."""
    context, labels = _context(trial_spec, params, metadata)
    job = container_scripts.fill(trial_spec, _every_container(trial_spec), params, context, typed)
    job["metadata"] = {**(job.get("metadata") or {}), **metadata, "labels": labels}
    spec = job.setdefault("spec", {})
    _refuse_bad_deadline(spec)
    for key, value in required.items():
        if key != "template":
            spec[key] = required_field(key, value, spec.get(key), spec)
    pod_template = spec.setdefault("template", {})
    pod_template["metadata"] = pod_template.get("metadata") or {}
    pod_template["metadata"]["labels"] = {**(pod_template["metadata"].get("labels") or {}),
                                          **required["template"]["metadata"]["labels"]}
    pod_template["metadata"]["annotations"] = {**required["template"]["metadata"].get("annotations", {}),
                                               **(pod_template["metadata"].get("annotations") or {})}
    pod = pod_template.setdefault("spec", {})
    for key, value in required["template"]["spec"].items():
        if key == "nodeSelector":
            pod[key] = {**(pod.get(key) or {}), **value}
        elif key == "tolerations":
            pod[key] = [*(pod.get(key) or []), *(t for t in value if t not in (pod.get(key) or []))]
        elif key == "restartPolicy" or key not in pod:
            pod[key] = value
    container = primary_container(job, primary)
    if not isinstance(container, dict):
        raise InvalidStudy([Problem("trialTemplate.primaryContainerName", "names no container of the trialSpec")])
    _add_env(container, env, metadata["name"], trial_kinds.primary_pod_labels(trial_spec, primary_labels))
    if resources:
        own = container["resources"] = dict(container.get("resources") or {})
        for kind, values in resources.items():
            own[kind] = {**values, **(own.get(kind) or {})}
    _refuse_bad_labels(job)
    return job


def render_workload(trial_spec: Mapping[str, Any], primary: str | None, primary_labels: Mapping[str, str] | None,
                    params: Mapping[str, Any], metadata: Mapping[str, Any], pod: Mapping[str, Any],
                    env: Mapping[str, str], resources: Mapping[str, Mapping[str, str]],
                    ttl: int | None = None, typed: frozenset[Path] = frozenset(),
                    pod_annotations: Mapping[str, str] | None = None, retain: bool = False,
                    pod_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A workload of a kind other than Job from the template: katuna's ``metadata`` (name,
    namespace, labels) wins; its pods get ``pod_labels`` (else those of ``metadata``) over their
    own, and ``pod_annotations`` where the template sets none of
    them (:func:`~functions.core.workload_pods.pod_annotated`); the node selector and tolerations in
    ``pod`` are added to every pod template (an Argo Workflow takes them for all its pods; a
    TrainJob and a PipelineRun where :func:`~functions.core.workload_pods.scheduled_elsewhere`
    says); ``env`` is added to the primary container, and ``resources`` to every container of
    the primary's name (each replica's: a worker's pods need requests as the master's do, for
    the scheduler and the autoscaler) that names none, in the field its kind reads them from
    (:func:`resources_key`); ``ttl`` goes where the kind keeps one, unless the template sets its
    own; with ``retain``, a kind's pods still running at its end are deleted then, unless the
    template says otherwise (:func:`_clean_running_pods`); a Training Operator job whose replicas
    restart gets a ``runPolicy.backoffLimit`` where it sets none (:func:`_bound_restarts`); the
    pod templates of a kind whose pods need no API token get ``pod``'s
    ``automountServiceAccountToken`` where they set none (:func:`~functions.core.trial_kinds.closes_tokens`). The
    kind's controller makes the pods, with katuna's labels where the kind takes pod labels
    (:func:`~functions.core.workload_pods.pod_labelled`), so pods tell the attempt they are of;
    the ``typed`` strings are read as YAML scalars once substituted."""
    context, labels = _context(trial_spec, params, metadata)
    workload = container_scripts.fill(trial_spec, _every_container(trial_spec), params, context, typed)
    workload["metadata"] = {**(workload.get("metadata") or {}), **metadata, "labels": labels}
    workload_pods.pod_labelled(workload, metadata["labels"] if pod_labels is None else pod_labels)
    workload_pods.pod_annotated(workload, pod_annotations or {})
    pod_specs = [spec for _, _, spec in workload_pods.pod_specs(workload)]
    if getattr(trial_kinds.kind_of(workload), "kind", None) == "Workflow":
        pod_specs.append(workload.setdefault("spec", {}))
    if pod.get("nodeSelector") or pod.get("tolerations"):
        pod_specs += workload_pods.scheduled_elsewhere(workload)
    for spec in pod_specs:
        _schedule(spec, pod)  # type: ignore[arg-type]
    if trial_kinds.closes_tokens(workload):
        for _, _, spec in workload_pods.pod_specs(workload):
            spec.setdefault("automountServiceAccountToken", bool(pod.get("automountServiceAccountToken")))  # type: ignore[attr-defined]
    container = primary_container(workload, primary, primary_labels)
    if isinstance(container, dict):
        _add_env(container, env, metadata["name"], trial_kinds.primary_pod_labels(trial_spec, primary_labels))
    name = primary_container_name(workload, primary, primary_labels)
    for path, _, own, each in located_containers(workload):
        key = resources_key(workload, path)
        if resources and own == name and isinstance(each, dict) and key not in each:
            each[key] = {kind: dict(values) for kind, values in resources.items()}
    _keep_finished_for(workload, ttl)
    _bound_restarts(workload)
    if retain:
        _clean_running_pods(workload)
    _refuse_bad_labels(workload)
    return workload


def _add_env(container: dict[str, Any], env: Mapping[str, str], workload: str, primary: Mapping[str, str]) -> None:
    """katuna's variables ``env`` added to the primary ``container`` of ``workload`` (with the
    pod's uid where it reports progress, and the ``primary`` pods' labels where it has any:
    :func:`~functions.core.report_token.env_entries`), over those of the same name it has (the
    parameters' variables, which every container gets already). Every pod made from the
    container's template gets them (each worker of a TrainJob, each pod of a Job of several), and
    a pod that is not primary sends no report (:mod:`functions.reporter`)."""
    added = report_token.env_entries(env, workload, primary)
    names = {entry["name"] for entry in added}
    own = [e for e in container.get("env") or [] if not (isinstance(e, Mapping) and e.get("name") in names)]
    container["env"] = [*own, *added]


def _every_container(trial_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every container of the workload, init containers too: each runs a script of its own."""
    return [c for *_, c in located_containers(trial_spec)] + [c for _, c in init_containers(trial_spec)]


def _context(trial_spec: Mapping[str, Any], params: Mapping[str, Any],
             metadata: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """The ``${trialSpec.*}`` values of the trial's workload, and its labels: the template's,
    their placeholders filled in first (a label may carry a parameter's value, and
    ``${trialSpec.Labels[key]}`` then reads the filled-in value), with katuna's over them."""
    given = trial_spec.get("metadata") or {}
    kind, api_version = str(trial_spec.get("kind")), str(trial_spec.get("apiVersion"))
    plain = template.spec_context(metadata["name"], metadata["namespace"], kind, api_version,
                                  annotations=given.get("annotations"))
    labels = {**template.substitute_tree(dict(given.get("labels") or {}), params, plain), **metadata["labels"]}
    return template.spec_context(metadata["name"], metadata["namespace"], kind, api_version, labels,
                                 given.get("annotations")), labels


def _refuse_bad_labels(workload: Mapping[str, Any]) -> None:
    """Refuse (for good: every attempt of the trial would be refused) a workload whose labels,
    placeholders filled in, the API server would refuse with 422, naming each label."""
    found = [problem for path, own in labelled(workload) for problem in label_problems(own, path)]
    if found:
        raise RefusedWorkload([Problem(p.path, f"{p.message} (its placeholders filled in)") for p in found])


def _refuse_bad_deadline(spec: Mapping[str, Any]) -> None:
    """Refuse (for good) a Job whose own ``activeDeadlineSeconds``, its placeholders filled in,
    is no deadline Kubernetes takes and counts (:func:`is_deadline`): the API server would
    refuse a negative one, and the Job controller would fail the Job at its first sync with a
    longer one than it counts, as the check of the ``trialSpec`` refuses either when written."""
    own = spec.get(DEADLINE[-1])
    if own is not None and not is_deadline(own):
        raise RefusedWorkload([Problem(f"{PATH}.{'.'.join(DEADLINE)}", (
            f"expected a whole number of seconds from 0 to {MAX_DEADLINE}, as Kubernetes counts a Job's (a longer "
            f"one fails the Job at once: the Job controller's clock cannot hold it), got {own!r} (its placeholders "
            "filled in)"))])


def _keep_finished_for(workload: dict[str, Any], ttl: int | None) -> None:
    """Set the kind's TTL of a finished workload to ``ttl`` where the template sets none."""
    known = trial_kinds.kind_of(workload)
    if ttl is not None and known is not None and known.ttl:
        _default(workload, known.ttl, ttl)


def _bound_restarts(workload: dict[str, Any]) -> None:
    """A Training Operator job whose replicas are run again when they fail (a PyTorchJob's and a
    PaddleJob's by default: :func:`~functions.core.trial_kinds.restarts_in_place`) and that sets
    no ``runPolicy.backoffLimit`` would run a master that keeps failing for ever, its node held:
    it gets :data:`~functions.core.trial_kinds.BACKOFF_LIMIT`, so it fails once its containers
    restarted that many times. A template's own limit is kept."""
    if trial_kinds.restarts_in_place(workload):
        _default(workload, ("spec", "runPolicy", "backoffLimit"), trial_kinds.BACKOFF_LIMIT)


def _clean_running_pods(workload: dict[str, Any]) -> None:
    """A workload ``retain`` keeps is not deleted at the trial's end, so its pods still running
    then (a PyTorchJob's or MPIJob's idle workers, which the Training Operator leaves by default)
    would hold their nodes for as long as it is kept: its operator is asked to delete them at
    its end (``cleanPodPolicy: Running``; the pods that ended, the primary's with its log, stay)
    where the template says nothing (an MPIJob's older ``spec.cleanPodPolicy`` included)."""
    known = trial_kinds.kind_of(workload)
    spec = workload.get("spec")
    if known is not None and known.clean_pods and isinstance(spec, dict) and "cleanPodPolicy" not in spec:
        _default(workload, known.clean_pods, "Running")


def _default(workload: dict[str, Any], path: tuple[str, ...], value: object) -> None:
    """Set the field at ``path`` to ``value`` where the workload sets none (nor a parent that is
    no mapping)."""
    *parents, last = path
    node = workload
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            return
        node = child
    node.setdefault(last, value)


def _schedule(spec: dict[str, Any], pod: Mapping[str, Any]) -> None:
    """Add katuna's node selector and tolerations to a pod spec's own."""
    if pod.get("nodeSelector"):
        spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **pod["nodeSelector"]}
    if pod.get("tolerations"):
        own = spec.get("tolerations") or []
        spec["tolerations"] = [*own, *(t for t in pod["tolerations"] if t not in own)]
