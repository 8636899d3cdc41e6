"""The CustomResourceDefinition schemas of the operators whose workloads katuna creates as trials,
as their releases install them: the Training Operator's six kinds (v1.9.0), JobSet's (v0.8.2)
and Trainer's TrainJob (``tests/schemas/operators``, made by its ``generate.py`` from the
upstream CRDs, which records each file's release and commit). The API server takes a workload
of these kinds against its schema (:func:`kube_standin.structural.admitted`): a field the schema
does not list is refused under ``fieldValidation=Strict``, warned of under ``Warn`` (the
default) and dropped silently under ``Ignore``; a value of the wrong type, outside an enum or
missing where required is a 422 naming its field.

An Argo Workflow and a Tekton PipelineRun have none here: the CRDs their default installations
apply keep unknown fields (``x-kubernetes-preserve-unknown-fields`` on the Workflow's ``spec``,
on the whole PipelineRun), so the API server prunes, refuses and warns of nothing in them.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas" / "operators"


@functools.cache
def schema(api_version: str, kind: str) -> dict[str, Any] | None:
    """The ``openAPIV3Schema`` of ``kind`` at ``api_version``, its pod templates in place; None
    where none is kept (the API server keeps every field)."""
    group, _, version = api_version.rpartition("/")
    path = SCHEMAS / f"{group}_{version}_{kind}.json".lower()
    if not path.exists():
        return None
    return _resolved(json.loads(path.read_text())["schema"])


def _resolved(node: Any) -> Any:
    """``node`` with each ``{"$ref": file}`` replaced by that file's schema (a shared pod template)."""
    if isinstance(node, dict):
        if set(node) == {"$ref"}:
            return _shared(node["$ref"])
        return {key: _resolved(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolved(value) for value in node]
    return node


@functools.cache
def _shared(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text())["schema"]
