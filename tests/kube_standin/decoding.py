"""Bodies of built-in kinds (a Job, a Secret, an ``events.k8s.io/v1`` Event) as the API server's
decoder reads them, against Kubernetes' own OpenAPI as ``kubernetes-validate`` ships it (each
object closed to the fields it lists).

A value of the wrong JSON type (a Secret's ``stringData`` value that is a number, an Event's
``note`` that is an object) cannot be decoded: 400, in ``encoding/json``'s words. A field the
schema does not list is refused under ``fieldValidation=Strict`` (400, "strict decoding error:
unknown field ..."), warned of under ``Warn`` (the API server's default, what the
``kubernetes`` client gets when it names none) and passed over under ``Ignore``; either way it
is dropped, and the object is stored without it."""

from __future__ import annotations

import functools
from collections.abc import Iterable

import jsonschema
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

SCHEMAS = "kubernetes-json-schema/v1.37.0-local-strict"
FILES = {"Job": "job-batch-v1.json", "Secret": "secret-v1.json", "Event": "event-events-v1.json"}
"""Each kind's schema file, by kind (``Event`` is ``events.k8s.io/v1``'s)."""
_JSON_KIND = {str: "string", bool: "bool", int: "number", float: "number", list: "array", dict: "object"}
_GO_TYPE = {"string": "string", "boolean": "bool", "number": "float64", "array": "[]interface {}",
            "object": "map[string]interface {}"}


@functools.cache
def _validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = schema_contents(f"{SCHEMAS}/{FILES[kind]}", "1.37.0")
    definitions = schema_contents(f"{SCHEMAS}/_definitions.json", "1.37.0")
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def unknown_fields(kind: str, obj: dict) -> list[str]:
    """Each field of ``obj`` its kind's schema does not list, by its path
    (``spec.template.spec.containers[0].comand``)."""
    return sorted(_path([*where, key]) for where, key, _ in _unknown(kind, obj))


def _unknown(kind: str, obj: dict) -> list[tuple[list[object], str, dict]]:
    """Each unlisted field: the path of the object holding it, its key, and that object."""
    found = []
    for error in _validator(kind).iter_errors(obj):
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            listed = set(error.schema.get("properties") or {})
            found += [(list(error.absolute_path), key, error.instance) for key in sorted(set(error.instance) - listed)]
    return found


def wrong_type(kind: str, obj: dict) -> str | None:
    """Why ``obj`` cannot be decoded as ``kind``: its first value of the wrong JSON type, as
    ``encoding/json`` words it; None when every value has its field's type."""
    for error in sorted(_validator(kind).iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        if error.validator == "type":
            wanted = [t for t in ([error.validator_value] if isinstance(error.validator_value, str)
                                  else error.validator_value) if t != "null"]
            go_type = str(error.schema.get("format") or "int64") if wanted == ["integer"] else _GO_TYPE.get(
                wanted[0] if wanted else "", "string")
            return (f"json: cannot unmarshal {_JSON_KIND.get(type(error.instance), 'value')} into Go struct field "
                    f"{kind}.{_path(error.absolute_path)} of type {go_type}")
    return None


def decoded(kind: str, obj: dict, directive: str | None, warnings: list[str] | None) -> str | None:
    """Decode ``obj`` in place as the API server does under ``directive`` (the request's
    ``fieldValidation``; ``Warn`` when none): its unknown fields dropped, warned of in
    ``warnings`` under ``Warn``. Why it cannot be decoded (400), else None."""
    unreadable = wrong_type(kind, obj)
    if unreadable is not None:
        return unreadable
    unknown = _unknown(kind, obj)
    paths = sorted(_path([*where, key]) for where, key, _ in unknown)
    if unknown and directive == "Strict":
        return "strict decoding error: " + ", ".join(f'unknown field "{path}"' for path in paths)
    if warnings is not None and directive in (None, "", "Warn"):
        warnings += [f'unknown field "{path}"' for path in paths]
    for _, key, holder in unknown:
        holder.pop(key, None)
    return None


def _path(parts: Iterable[object]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text
