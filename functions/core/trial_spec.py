"""Katib-style ``trialSpec`` templates: a whole ``batch/v1`` Job with placeholders.

Checked when the study is parsed; on a cluster the Job is the template with every string
substituted on its own and katuna's requirements laid over it (name, labels, the preemption
policy, deadline, TTL, ``restartPolicy: Never``); locally the primary container's command and
args run as the trial process (its image is noted and ignored).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from functions.core import template
from functions.core.errors import InvalidStudy, Problem
from functions.core.reader import Reader

PATH = "trialTemplate.trialSpec"


def check(r: Reader, trial_spec: Any, primary: str | None) -> list[str]:
    """Problems of a ``trialSpec`` go to ``r``; the parameter names it references."""
    if not isinstance(trial_spec, Mapping):
        r.fail(PATH, "expected a batch/v1 Job as a mapping")
        return []
    if trial_spec.get("apiVersion") != "batch/v1" or trial_spec.get("kind") != "Job":
        r.fail(PATH, "expected apiVersion batch/v1 and kind Job")
    containers = _containers(trial_spec)
    container = primary_container(trial_spec, primary)
    if not containers:
        r.fail(f"{PATH}.spec.template.spec.containers", "expected at least one container")
    elif container is None:
        listed = ", ".join(str(c.get("name")) for c in containers)
        r.fail("trialTemplate.primaryContainerName", f"names no container; expected one of {listed}")
    elif not (container.get("command") or container.get("args")):
        r.fail(f"{PATH}.spec.template.spec.containers", "the primary container needs a command or args")
    restart = pod_spec(trial_spec).get("restartPolicy")
    if restart not in (None, "Never"):
        r.fail(f"{PATH}.spec.template.spec.restartPolicy", f"expected Never (a retried pod is a new pod), got {restart!r}")
    used: list[str] = []
    for where, text in template.strings(trial_spec, PATH):
        names, unknown = template.referenced_parameters(text, spec_fields=True)
        used += names
        for placeholder in unknown:
            r.fail(where, f"unknown placeholder {placeholder}; expected ${{trialParameters.<name>}} or "
                          "${trialSpec.Name|Namespace|Kind|APIVersion|Labels[key]|Annotations[key]}")
    return used


def _containers(trial_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    containers = pod_spec(trial_spec).get("containers")
    return [c for c in containers if isinstance(c, Mapping)] if isinstance(containers, list) else []


def pod_spec(trial_spec: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod spec of the Job template; empty where any level is missing or not a mapping."""
    node: Any = trial_spec
    for key in ("spec", "template", "spec"):
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def primary_container(trial_spec: Mapping[str, Any], name: str | None) -> Mapping[str, Any] | None:
    """The container that runs the trial: the named one, else the first."""
    containers = _containers(trial_spec)
    if name is None:
        return containers[0] if containers else None
    return next((c for c in containers if c.get("name") == name), None)


def local_process(trial_spec: Mapping[str, Any], primary: str | None, params: Mapping[str, Any],
                  name: str, namespace: str | None = None) -> tuple[list[str], dict[str, str]]:
    """The argv and extra environment of the primary container, to run as a local process
    (``${trialSpec.Namespace}`` is the study's namespace)."""
    context = template.spec_context(name, namespace, labels=(trial_spec.get("metadata") or {}).get("labels"),
                                    annotations=(trial_spec.get("metadata") or {}).get("annotations"))
    container = template.substitute_tree(primary_container(trial_spec, primary), params, context)
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    env = {e["name"]: str(e["value"]) for e in container.get("env") or [] if "value" in e}
    return argv, env


def requests_resources(trial_spec: Mapping[str, Any], names: frozenset[str]) -> bool:
    """Whether a container of the template requests (or limits, which implies a request) one of
    the resources ``names``."""
    for container in _containers(trial_spec):
        resources = container.get("resources")
        for kind in ("requests", "limits"):
            given = resources.get(kind) if isinstance(resources, Mapping) else None
            if isinstance(given, Mapping) and names & set(given):
                return True
    return False


def render(trial_spec: Mapping[str, Any], primary: str | None, params: Mapping[str, Any],
           metadata: Mapping[str, Any], required: Mapping[str, Any], env: Mapping[str, str],
           resources: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """The Job from the template: ``metadata`` (name, namespace, labels) and the ``required``
    Job spec fields of katuna win; katuna's node selector and tolerations (a node pool's, say)
    are added to the template's; ``env`` is added to the primary container, and ``resources``
    (requests and limits) where it names none of them."""
    given = trial_spec.get("metadata") or {}
    labels = {**(given.get("labels") or {}), **metadata["labels"]}
    context = template.spec_context(metadata["name"], metadata["namespace"], labels=labels,
                                    annotations=given.get("annotations"))
    job = template.substitute_tree(copy.deepcopy(dict(trial_spec)), params, context)
    job["metadata"] = {**(job.get("metadata") or {}), **metadata, "labels": labels}
    spec = job.setdefault("spec", {})
    for key, value in required.items():
        if key == "template":
            continue
        spec[key] = value if key != "backoffLimit" else spec.get(key, value)
    pod_template = spec.setdefault("template", {})
    pod_template.setdefault("metadata", {})
    pod_template["metadata"]["labels"] = {**(pod_template["metadata"].get("labels") or {}), **metadata["labels"]}
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
    container["env"] = [*(container.get("env") or []), *({"name": k, "value": v} for k, v in sorted(env.items()))]
    if resources:
        own = container.setdefault("resources", {})
        for kind, values in resources.items():
            own[kind] = {**values, **(own.get(kind) or {})}
    return job
