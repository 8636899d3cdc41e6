"""What the API server's pod validation refuses in a pod template's security settings, deadline
and environment sources (pkg/apis/core/validation/validation.go): a user or group id out of
range (``IsValidUserID``; a pod's ``fsGroup`` and each of its ``supplementalGroups`` by
``IsValidGroupID``), a privileged container that may not escalate, a seccomp profile of an
unknown type, a pod deadline out of range, an ``env`` ``valueFrom`` that names no source, a
key reference without its key, or a ``fieldRef`` to a field the downward API does not give a
variable. Each problem is a field path and the API server's reason for it."""

from __future__ import annotations

import json
import re

MAX_INT32 = 2**31 - 1
"""The largest number an ``int32`` field holds."""
SECCOMP_TYPES = ("Localhost", "RuntimeDefault", "Unconfined")
SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
POD_LABELS = ("metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid",
              "spec.nodeName", "spec.restartPolicy", "spec.serviceAccountName", "spec.schedulerName", "status.phase",
              "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs")
"""The pod's field paths of v1 (``ConvertDownwardAPIFieldLabel``, pkg/apis/core/pods/helpers.go)."""
ENV_FIELDS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
              "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs")
"""Those a variable may read (``validEnvDownwardAPIFieldPathExpressions``), besides one label or
annotation (``metadata.labels['KEY']``)."""
SUBSCRIPTED = re.compile(r"([^[]+)\['.*'\]")


def pod_spec_problems(path: str, pod: dict) -> list[tuple[str, str]]:
    """The pod spec at ``path``: its deadline, its security context and each container's, and
    each container's environment sources."""
    problems = []
    deadline = pod.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and not 1 <= deadline <= MAX_INT32:
        problems.append((f"{path}.activeDeadlineSeconds", f"Invalid value: {deadline}: {_range(1)}"))
    problems += _context_problems(f"{path}.securityContext", pod.get("securityContext") or {})
    problems += _group_problems(f"{path}.securityContext", pod.get("securityContext") or {})
    for group in ("initContainers", "containers"):
        for index, container in enumerate(pod.get(group) or []):
            where = f"{path}.{group}[{index}]"
            context = container.get("securityContext") or {}
            problems += _context_problems(f"{where}.securityContext", context)
            if context.get("allowPrivilegeEscalation") is False and context.get("privileged") is True:
                problems.append((f"{where}.securityContext", f"Invalid value: {json.dumps(context)}: cannot set "
                                                             "`allowPrivilegeEscalation` to false and `privileged` to true"))
            for number, variable in enumerate(container.get("env") or []):
                problems += _source_problems(f"{where}.env[{number}].valueFrom", variable.get("valueFrom"))
    return problems


def _range(low: int) -> str:
    return f"must be between {low} and {MAX_INT32}, inclusive"


def _context_problems(path: str, context: dict) -> list[tuple[str, str]]:
    """A pod's or a container's ids and seccomp profile."""
    problems = [(f"{path}.{field}", f"Invalid value: {context[field]}: {_range(0)}")
                for field in ("runAsUser", "runAsGroup")
                if isinstance(context.get(field), int) and not 0 <= context[field] <= MAX_INT32]
    profile = context.get("seccompProfile") or {}
    kind = profile.get("type")
    if profile and kind not in SECCOMP_TYPES:
        problems.append((f"{path}.seccompProfile.type", f"Unsupported value: {json.dumps(kind)}: supported values: "
                                                        + ", ".join(json.dumps(t) for t in SECCOMP_TYPES)))
    elif kind == "Localhost" and not profile.get("localhostProfile"):
        problems.append((f"{path}.seccompProfile.localhostProfile", "Required value: must be set when seccomp type is "
                                                                    "Localhost"))
    return problems


def _group_problems(path: str, context: dict) -> list[tuple[str, str]]:
    """A pod's ``fsGroup`` and each of its ``supplementalGroups`` (``IsValidGroupID``)."""
    groups = [("fsGroup", context.get("fsGroup"))]
    groups += [(f"supplementalGroups[{index}]", gid) for index, gid in enumerate(context.get("supplementalGroups") or [])]
    return [(f"{path}.{field}", f"Invalid value: {gid}: {_range(0)}") for field, gid in groups
            if isinstance(gid, int) and not 0 <= gid <= MAX_INT32]


def _source_problems(path: str, source: dict | None) -> list[tuple[str, str]]:
    """An environment variable's ``valueFrom``: exactly one source, a key reference with its key."""
    if source is None:
        return []
    given = [name for name in SOURCES if source.get(name) is not None]
    if not given:
        return [(path, 'Invalid value: "": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or '
                       "`secretKeyRef`")]
    if len(given) > 1:
        return [(path, 'Invalid value: "": may not have more than one field specified at a time')]
    reference = source[given[0]]
    if given[0] == "fieldRef" and isinstance(reference, dict):
        return _field_problems(f"{path}.fieldRef", reference)
    if given[0] not in ("configMapKeyRef", "secretKeyRef") or not isinstance(reference, dict):
        return []
    return [] if reference.get("key") else [(f"{path}.{given[0]}.key", "Required value")]


def _field_problems(path: str, reference: dict) -> list[tuple[str, str]]:
    """A variable's ``fieldRef`` (``validateObjectFieldSelector``; its ``apiVersion`` defaults to
    v1): a path of the pod, and one a variable may read."""
    field = reference.get("fieldPath") or ""
    if reference.get("apiVersion", "v1") != "v1":
        return [(f"{path}.fieldPath", f"Invalid value: {json.dumps(field)}: error converting fieldPath: unsupported "
                                      f"pod version: {reference['apiVersion']}")]
    if not field:
        return [(f"{path}.fieldPath", "Required value")]
    subscripted = SUBSCRIPTED.fullmatch(field)
    if subscripted:
        if subscripted.group(1) in ("metadata.labels", "metadata.annotations"):
            return []
        return [(f"{path}.fieldPath", f"Invalid value: {json.dumps(field)}: error converting fieldPath: field label "
                                      f"does not support subscript: {field}")]
    if field not in POD_LABELS:
        return [(f"{path}.fieldPath", f"Invalid value: {json.dumps(field)}: error converting fieldPath: field label "
                                      f"not supported: {field}")]
    if field not in ENV_FIELDS:
        return [(f"{path}.fieldPath", f"Unsupported value: {json.dumps(field)}: supported values: "
                                      + ", ".join(json.dumps(f) for f in sorted(ENV_FIELDS)))]
    return []
