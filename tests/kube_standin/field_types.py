"""The types of the fields a trial template's placeholders fill, as the API server checks them.

A built-in kind is decoded into Go structs before anything else: a string where the Job's spec
has an integer, or a number where a container has a string (an argument, an environment
value), cannot be decoded, and the whole request is a 400 BadRequest naming the Go field. So is
a number its Go type cannot hold (an ``int32`` past 2**31 - 1). A custom resource is checked
against its CRD's structural schema instead (:mod:`kube_standin.operator_schemas`): a value of
the wrong type is a 422 Invalid for that field.
"""

from __future__ import annotations

from typing import Any

JOB_INTEGERS = {"parallelism": "int32", "completions": "int32", "backoffLimit": "int32",
                "activeDeadlineSeconds": "int64", "ttlSecondsAfterFinished": "int32"}
"""``JobSpec``'s integer fields katuna or a template may set."""
GO_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
"""What each Go integer type holds: ``encoding/json`` refuses a number beyond it as it refuses a
value of the wrong type."""
CONTAINER_STRINGS = ("command", "args")
_JSON_KIND = {str: "string", bool: "bool", int: "number", float: "number", list: "array", dict: "object"}

JOB_BOOLEANS = ("suspend", "manualSelector")
"""A Job spec's boolean fields."""


def job_undecodable(job: dict) -> str | None:
    """Why a Job cannot be decoded: the first field holding a value of the wrong JSON type,
    worded as ``encoding/json`` words it."""
    spec = job.get("spec") or {}
    for field in JOB_BOOLEANS:
        if spec.get(field) is not None and not isinstance(spec[field], bool):
            return _unmarshal(spec[field], f"JobSpec.spec.{field}", "bool")
    for field, go_type in JOB_INTEGERS.items():
        value = spec.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return _unmarshal(value, f"JobSpec.spec.{field}", go_type)
        low, high = GO_RANGES[go_type]
        if value is not None and not low <= value <= high:
            return f"json: cannot unmarshal number {value} into Go struct field JobSpec.spec.{field} of type {go_type}"
    pod = (spec.get("template") or {}).get("spec") or {}
    for group in ("initContainers", "containers"):
        for container in pod.get(group) or []:
            where = f"Container.spec.template.spec.{group}"
            for field in CONTAINER_STRINGS:
                bad = next((v for v in container.get(field) or [] if not isinstance(v, str)), None)
                if bad is not None:
                    return _unmarshal(bad, f"{where}.{field}", "string")
            bad = next((e["value"] for e in container.get("env") or [] if "value" in e and not isinstance(e["value"], str)),
                       None)
            if bad is not None:
                return _unmarshal(bad, "EnvVar.spec.template.spec.containers.env.value", "string")
    return None


def _unmarshal(value: Any, field: str, go_type: str) -> str:
    return f"json: cannot unmarshal {_JSON_KIND.get(type(value), 'value')} into Go struct field {field} of type {go_type}"
