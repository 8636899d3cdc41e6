"""Custom resources against their CRD's structural schema, as the API server takes a create or an
update of one.

Decoding comes first: a field the schema does not list (outside a node that preserves unknown
fields) is refused under ``fieldValidation=Strict``, which kubectl sends by default, with the
decoder's 400 "strict decoding error: unknown field ..."; otherwise it is pruned, silently
(``Ignore``) or with a warning for each (``Warn``, the API server's default, and what the
``kubernetes`` client gets when it names no directive). A null whose field's schema is neither
``nullable`` nor has a ``default`` is dropped too, as if the field were left out (a blank
``description:`` in YAML). Then the pruned object is validated:
a wrong type, a value outside an ``enum``, a missing required field, a bound or pattern not met
is a 422 Invalid listing each field. ``metadata`` is the API server's own (only the name is
checked, where the schema says how); ``apiVersion`` and ``kind`` are never pruned.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema

from kube_standin import manifests
from kube_standin.objects import invalid, status

ROOT_FIELDS = ("apiVersion", "kind", "metadata")
"""What every object has whatever its schema: the API server's, never pruned."""
TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object",
              type(None): "null"}


class Refused(Exception):
    """The API server's refusal: its status code and Status body."""

    def __init__(self, code: int, body: dict) -> None:
        super().__init__(body["message"])
        self.code, self.body = code, body


def crd_schemas(path: Path) -> dict[tuple[str, str], dict]:
    """The ``openAPIV3Schema`` of each CRD in a manifest, by (group, plural); each CRD here serves
    one version."""
    found = {}
    for crd in manifests.documents(path):
        if crd and crd.get("kind") == "CustomResourceDefinition":
            spec = crd["spec"]
            found[(spec["group"], spec["names"]["plural"])] = spec["versions"][0]["schema"]["openAPIV3Schema"]
    return found


def admitted(schema: dict, obj: dict, qualified: str, directive: str | None) -> tuple[dict, list[str]]:
    """``obj`` as the API server stores it (unknown fields pruned) and the warnings it sends
    back; :class:`Refused` when it refuses the object. ``qualified`` names the resource
    (``studies.katuna.dev``); ``directive`` is the request's ``fieldValidation``, already
    validated (:mod:`kube_standin.request_options`)."""
    directive = directive or "Warn"
    kind, version = obj.get("kind", ""), obj.get("apiVersion", "").rpartition("/")[2]
    found = unknown_fields(schema, obj)
    if found and directive == "Strict":
        raise Refused(400, status(400, "BadRequest", f'{kind} in version "{version}" cannot be handled as a {kind}: '
                                                     "strict decoding error: "
                                                     + ", ".join(f'unknown field "{f}"' for f in found)))
    kept = without_nulls(schema, pruned(schema, obj))
    causes = problems(schema, kept)
    if causes:
        code, body = invalid(kind, qualified, (kept.get("metadata") or {}).get("name", ""), causes)
        raise Refused(code, body)
    return kept, [f'unknown field "{f}"' for f in found] if directive == "Warn" else []


def unknown_fields(schema: dict, obj: dict) -> list[str]:
    """The paths of the fields ``schema`` does not list (``spec.trialTemplate.retain``)."""
    found: list[str] = []
    for key, value in obj.items():
        if key in ROOT_FIELDS:
            continue
        child = _child(schema, key)
        if child is None:
            found.append(key)
        else:
            _unknown(child, value, key, found)
    return found


def _unknown(node: dict, value: Any, path: str, found: list[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            child = _child(node, key)
            where = f"{path}.{key}"
            if child is None:
                found.append(where)
            else:
                _unknown(child, item, where, found)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, item in enumerate(value):
            _unknown(node["items"], item, f"{path}[{i}]", found)


def _child(node: dict, key: str) -> dict | None:
    """The schema of field ``key`` of an object node; None where the field is unknown (pruned)."""
    if key in (node.get("properties") or {}):
        return node["properties"][key]
    if isinstance(node.get("additionalProperties"), dict):
        return node["additionalProperties"]
    if node.get("additionalProperties") is True or node.get("x-kubernetes-preserve-unknown-fields"):
        return {"x-kubernetes-preserve-unknown-fields": True}
    return None


def pruned(schema: dict, obj: dict) -> dict:
    """``obj`` without the fields ``schema`` does not list."""
    return {key: value if key in ROOT_FIELDS else _pruned(_child(schema, key) or {}, value)
            for key, value in obj.items() if key in ROOT_FIELDS or _child(schema, key) is not None}


def _pruned(node: dict, value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _pruned(child, item) for key, item in value.items()
                if (child := _child(node, key)) is not None}
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [_pruned(node["items"], item) for item in value]
    return copy.deepcopy(value)


def without_nulls(schema: dict | None, value: Any) -> Any:
    """``value`` without the nulls of fields whose schema is neither ``nullable`` nor has a
    ``default``, at every depth: what the API server drops after pruning and before validation
    (apiextensions-apiserver, schema/defaulting/prunenulls.go,
    ``PruneNonNullableNullsWithoutDefaults``). A field only a node preserving unknown fields
    admits has no schema there, so its null is kept."""
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            child = _declared(schema, key)
            if item is None and child is not None and not child.get("nullable") and "default" not in child:
                continue
            kept[key] = without_nulls(child, item)
        return kept
    if isinstance(value, list):
        items = schema.get("items") if schema is not None else None
        return [without_nulls(items if isinstance(items, dict) else None, item) for item in value]
    return value


def _declared(node: dict | None, key: str) -> dict | None:
    """The schema the structural schema itself gives field ``key`` (its property, else the
    ``additionalProperties`` schema): prunenulls.go's ``getSchemaForField``."""
    if node is None:
        return None
    if key in (node.get("properties") or {}):
        return node["properties"][key]
    additional = node.get("additionalProperties")
    return additional if isinstance(additional, dict) else None


def problems(schema: dict, obj: dict) -> list[tuple[str, str]]:
    """(field, message) for each value ``schema`` refuses, worded as the API server's."""
    validator = jsonschema.Draft7Validator(_as_json_schema(schema))
    found: list[tuple[str, str]] = []
    for error in sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path]):
        found.extend(_causes(error))
    return list(dict.fromkeys(found))


def _as_json_schema(node: Any) -> Any:
    """The structural schema in JSON Schema's terms: int-or-string is either, nullable admits null."""
    if isinstance(node, list):
        return [_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _as_json_schema(value) for key, value in node.items() if not key.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def _causes(error: jsonschema.ValidationError) -> list[tuple[str, str]]:
    path = _path(error.absolute_path)
    value, rule = error.instance, error.validator_value
    if error.validator == "required":
        return [(_path([*error.absolute_path, name]), "Required value") for name in rule if name not in value]
    if error.validator == "enum":
        return [(path, f"Unsupported value: {_show(value)}: supported values: {', '.join(map(_show, rule))}")]
    detail = {
        "type": f"must be of type {rule}", "anyOf": "must be of type integer or string",
        "minimum": f"should be greater than or equal to {rule}", "maximum": f"should be less than or equal to {rule}",
        "pattern": f"should match '{rule}'", "minItems": f"should have at least {rule} items",
        "maxLength": f"should be at most {rule} chars long", "minLength": f"should be at least {rule} chars long",
    }.get(str(error.validator), error.message)
    if error.validator in ("type", "anyOf"):
        shown = _show(TYPE_NAMES.get(type(value), "unknown"))
    else:
        shown = str(len(value)) if error.validator == "minItems" else _show(value)
    return [(path, f"Invalid value: {shown}: {path} in body {detail}")]


def _path(steps: Any) -> str:
    text = ""
    for step in steps:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (str, int, float, bool)) or value is None else _show(str(value))
