"""The fields of a Job that its schema does not have, as the API server's decoder finds them:
under ``fieldValidation=Strict`` a 400 ("strict decoding error: unknown field ..."), under
``Warn`` (the default) a warning for each, under ``Ignore`` nothing; either way they are
dropped. The schema is Kubernetes' own OpenAPI, as ``kubernetes-validate`` ships it (each
object closed to fields it does not list)."""

from __future__ import annotations

import functools
from collections.abc import Iterable

import jsonschema
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

SCHEMAS = "kubernetes-json-schema/v1.37.0-local-strict"


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = schema_contents(f"{SCHEMAS}/job-batch-v1.json", "1.37.0")
    definitions = schema_contents(f"{SCHEMAS}/_definitions.json", "1.37.0")
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def unknown_fields(job: dict) -> list[str]:
    """Each field of ``job`` its schema does not list, by its path (``spec.template.spec.containers[0].comand``)."""
    found = []
    for error in _validator().iter_errors(job):
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            listed = set(error.schema.get("properties") or {})
            found += [_path([*error.absolute_path, key]) for key in sorted(set(error.instance) - listed)]
    return sorted(found)


def _path(parts: Iterable[object]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text
