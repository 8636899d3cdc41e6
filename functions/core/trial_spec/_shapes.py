"""Where a workload of each kind keeps its containers and labels: the shapes the checks, the
rendering and a local trial all read a ``trialSpec`` by."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import trial_kinds, workload_pods

PATH = "trialTemplate.trialSpec"
"""Where the ``trialSpec`` sits in a study, as problems name it."""


def containers(trial_spec: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], str, Mapping[str, Any]]]:
    """``(pod labels, name in the pod, container)`` of every container the workload runs, in the
    shape each kind describes them: pod templates' containers; a TrainJob's ``trainer`` (the
    ``node`` container); an Argo Workflow's templates (``main``, labelled as the template says);
    a Tekton PipelineRun's steps (``step-<name>``, in pods labelled with their task)."""
    return [(labels, name, container) for _, labels, name, container in located_containers(trial_spec)]


def located_containers(trial_spec: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any], str, Mapping[str, Any]]]:
    """Every container the workload runs (:func:`containers`), each with its path in the
    ``trialSpec`` first (``spec.template.spec.containers[0]``)."""
    found = [(f"{path}.spec.containers[{i}]", labels, str(c.get("name")), c)
             for path, labels, pod in workload_pods.pod_specs(trial_spec)
             for i, c in _indexed(pod.get("containers"))]
    known = trial_kinds.kind_of(trial_spec)
    given = trial_spec.get("spec")
    spec: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    tasks = spec.get("pipelineSpec")
    if known is not None and known.kind == "TrainJob" and isinstance(spec.get("trainer"), Mapping):
        found.append(("spec.trainer", trial_kinds.TRAINJOB_PRIMARY, "node", spec["trainer"]))
    elif known is not None and known.kind == "Workflow":
        for i, item in _indexed(spec.get("templates")):
            metadata = item.get("metadata")
            given = metadata.get("labels") if isinstance(metadata, Mapping) else None
            labels = given if isinstance(given, Mapping) else {}
            for key in ("container", "script"):
                if isinstance(item.get(key), Mapping):
                    found.append((f"spec.templates[{i}].{key}", labels, "main", item[key]))
    elif known is not None and known.kind == "PipelineRun":
        for i, task in _indexed(tasks.get("tasks") if isinstance(tasks, Mapping) else None):
            task_spec = task.get("taskSpec")
            for j, step in _indexed(task_spec.get("steps") if isinstance(task_spec, Mapping) else None):
                found.append((f"spec.pipelineSpec.tasks[{i}].taskSpec.steps[{j}]",
                              {"tekton.dev/pipelineTask": str(task.get("name"))}, f"step-{step.get('name')}", step))
    return found


def init_containers(trial_spec: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """``(path in the trialSpec, container)`` of each init container of the workload's pod templates."""
    return [(f"{path}.spec.initContainers[{i}]", c) for path, _, pod in workload_pods.pod_specs(trial_spec)
            for i, c in _indexed(pod.get("initContainers"))]


def all_containers(trial_spec: Mapping[str, Any] | None) -> list[tuple[str, Mapping[str, Any]]]:
    """``(field path in the study, container)`` of each container of the workload, init
    containers too (``trialTemplate.trialSpec.spec...``); none without a ``trialSpec``."""
    if trial_spec is None:
        return []
    found = [(path, c) for path, _, _, c in located_containers(trial_spec)] + init_containers(trial_spec)
    return [(f"{PATH}.{path}", c) for path, c in found]


def _indexed(value: Any) -> list[tuple[int, Mapping[str, Any]]]:
    """The mappings of a list, each with its index in it (none where ``value`` is no list)."""
    return [(i, item) for i, item in enumerate(value) if isinstance(item, Mapping)] if isinstance(value, list) else []


def pod_spec(trial_spec: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod spec of the primary pod template; empty where the workload has none."""
    return next((pod for _, _, pod in workload_pods.pod_specs(trial_spec)), {})


def primary_container(trial_spec: Mapping[str, Any], name: str | None,
                      labels: Mapping[str, str] | None = None) -> Mapping[str, Any] | None:
    """The container that runs the trial: the named one (else the first) of the pods
    ``labels`` select (the kind's primary pods by default), else of any pod."""
    wanted = trial_kinds.primary_pod_labels(trial_spec, labels)
    found = containers(trial_spec)
    primary = [item for item in found if all(item[0].get(k) == v for k, v in wanted.items())]
    for pool in (primary, found) if primary else (found,):
        for _, own, container in pool:
            if name is None or own == name:
                return container
    return None


def primary_container_name(trial_spec: Mapping[str, Any], name: str | None,
                           labels: Mapping[str, str] | None = None) -> str | None:
    """The primary container's name in its pod (Argo's ``main``, Tekton's ``step-<name>``)."""
    container = primary_container(trial_spec, name, labels)
    return next((own for _, own, c in containers(trial_spec) if c is container), None)


def resources_key(trial_spec: Mapping[str, Any], path: str) -> str:
    """The field that holds the resources of the container at ``path`` (:func:`located_containers`):
    a TrainJob's trainer asks them per node (``resourcesPerNode``), a Tekton v1 step names them
    ``computeResources`` (v1beta1's ``resources`` went in v1), any other container ``resources``."""
    if path == "spec.trainer":
        return "resourcesPerNode"
    if path.startswith("spec.pipelineSpec.") and trial_spec.get("apiVersion") == "tekton.dev/v1":
        return "computeResources"
    return "resources"


def requests_resources(trial_spec: Mapping[str, Any], names: frozenset[str]) -> bool:
    """Whether a container of the template requests (or limits, which implies a request) one of
    the resources ``names``."""
    for path, _, _, container in located_containers(trial_spec):
        resources = container.get(resources_key(trial_spec, path))
        for kind in ("requests", "limits"):
            given = resources.get(kind) if isinstance(resources, Mapping) else None
            if isinstance(given, Mapping) and names & set(given):
                return True
    return False


def labelled(workload: Mapping[str, Any]) -> list[tuple[str, Mapping[Any, Any]]]:
    """``(path, labels)`` of the workload's own labels and of each of its pod templates' (with
    those the kind's controller adds to the pods)."""
    metadata = workload.get("metadata")
    own = metadata.get("labels") if isinstance(metadata, Mapping) else None
    found: list[tuple[str, Mapping[Any, Any]]] = [(f"{PATH}.metadata.labels", own if isinstance(own, Mapping) else {})]
    found += [(f"{PATH}.{path}.metadata.labels", pod) for path, pod, _ in workload_pods.pod_specs(workload)]
    return found
