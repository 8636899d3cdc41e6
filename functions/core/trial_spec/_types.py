"""The types of the fields of a ``trialSpec`` that katuna itself reads or writes, whatever the
workload's kind: its ``spec`` and ``metadata``, each pod template's and Argo template's
``metadata``, and each container's name, image, working directory, ``command``, ``args``,
``env`` and resources (an Argo ``source``, a Tekton ``script``).

A local trial runs the primary container's ``command`` and ``args`` with its ``env``, and on a
cluster katuna renders the workload with its own labels, annotations, variables and resources
laid over the template's: a field of the wrong type there (``command: "python train.py"``, an
``env`` entry without a string ``name``) would fail every trial with a Python error naming no
field, or the cluster would refuse every trial's workload. So each is refused by its path when
the study is submitted, as Kubernetes' API server decodes these fields (strings, lists of
strings, mappings)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import trial_kinds, workload_pods
from functions.core.errors import Problem
from functions.core.katib_shapes import Shape, check
from functions.core.trial_spec._shapes import PATH, init_containers, located_containers, resources_key

METADATA: Shape = {"labels": "mapping", "annotations": {"*": "string"}}
"""An object's or pod template's ``metadata`` as katuna reads it: its labels' keys and values are
checked as the API server checks them (:func:`functions.core.labels.problems`)."""
QUANTITIES: Shape = {"requests": "mapping", "limits": "mapping"}
"""A container's resources, to which katuna adds its defaults: each quantity is the API
server's to judge (a number is rendered as the text it reads)."""
CONTAINER: dict[str, Shape] = {
    "name": "string", "image": "string", "workingDir": "string", "command": ["string"], "args": ["string"],
    "env": [{"name": "string", "value": "string", "valueFrom": "mapping"}], "source": "string", "script": "string"}
"""The fields of a container katuna reads or fills in; its resources are :data:`QUANTITIES`,
in the field its kind keeps them in (:func:`resources_key`)."""


def type_problems(trial_spec: Mapping[str, Any]) -> list[Problem]:
    """A problem for each field katuna reads of ``trialSpec`` (see the module) that holds a
    value of the wrong type, named by its path."""
    found = check(trial_spec, {"metadata": METADATA, "spec": "mapping"}, PATH)
    for path, template, _ in workload_pods.pod_templates(trial_spec):
        found += _metadata_problems(template, f"{PATH}.{path}")
    spec = trial_spec.get("spec")
    templates = spec.get("templates") if isinstance(spec, Mapping) else None
    if getattr(trial_kinds.kind_of(trial_spec), "kind", None) == "Workflow" and isinstance(templates, list):
        for i, item in enumerate(templates):
            found += _metadata_problems(item, f"{PATH}.spec.templates[{i}]") if isinstance(item, Mapping) else []
    located = [(path, c) for path, _, _, c in located_containers(trial_spec)] + init_containers(trial_spec)
    for path, container in located:
        found += _container_problems(trial_spec, f"{PATH}.{path}", path, container)
    return found


def _metadata_problems(holder: Mapping[str, Any], where: str) -> list[Problem]:
    """The problems of the ``metadata`` of ``holder`` (at ``where``), if it has any."""
    metadata = holder.get("metadata")
    return [] if metadata is None else check(metadata, METADATA, f"{where}.metadata")


def _container_problems(trial_spec: Mapping[str, Any], where: str, path: str,
                        container: Mapping[str, Any]) -> list[Problem]:
    """The problems of one container at ``where`` (``path`` in the ``trialSpec``): its fields'
    types, and each ``env`` entry's name, without which no variable can be set."""
    key = resources_key(trial_spec, path)
    found = check(container, {**CONTAINER, key: QUANTITIES}, where)
    env = container.get("env")
    entries = [(i, e) for i, e in enumerate(env) if isinstance(e, Mapping)] if isinstance(env, list) else []
    for i, entry in entries:
        name = entry.get("name")
        if name is None:
            found.append(Problem(f"{where}.env[{i}].name", "required; expected a variable's name"))
        elif isinstance(name, str) and (name == "" or "=" in name):
            found.append(Problem(f"{where}.env[{i}].name", f"expected a variable's name: a non-empty string "
                                                           f"without '=', got {name!r}"))
    return found
