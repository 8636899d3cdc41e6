"""The API server's validation of a Job's failure and completion policies, as
``pkg/apis/batch/validation`` words it: ``podFailurePolicy`` rules (``validatePodFailurePolicy``
and the rule, exit-code and pod-condition checks under it) and the Indexed completion mode's
fields (``backoffLimitPerIndex``, ``maxFailedIndexes``, ``successPolicy``); and ``managedBy``
(``validateManagedBy``)."""

from __future__ import annotations

import json
import re

from kube_standin.names import qualified_name_problems
from kube_standin.objects import DNS_SUBDOMAIN

MAX_RULES = 20
MAX_EXIT_CODES = 255
MAX_CONDITIONS = 20
MAX_INDEXED = 100_000
"""The most ``parallelism`` and ``maxFailedIndexes`` of an Indexed Job."""
ACTIONS = ("Count", "FailIndex", "FailJob", "Ignore")
OPERATORS = ("In", "NotIn")
STATUSES = ("False", "True", "Unknown")
MODES = ("NonIndexed", "Indexed")
MAX_MANAGER = 63
"""The longest ``managedBy`` the API server takes."""
JOB_CONTROLLER = "kubernetes.io/job-controller"
"""The ``managedBy`` of a Job Kubernetes' own Job controller runs; any other is left to its controller."""
_PATH_CHARACTERS = re.compile(r"^[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$")


def _listed(values: tuple[str, ...]) -> str:
    return ", ".join(json.dumps(value) for value in values)


def _choice(path: str, value: object, allowed: tuple[str, ...]) -> tuple[str, str] | None:
    """``Required`` or ``Unsupported value`` at ``path`` unless ``value`` is one of ``allowed``."""
    if value in (None, ""):
        return path, f"Required value: valid values: [{_listed(allowed)}]"
    if value not in allowed:
        return path, f"Unsupported value: {json.dumps(value)}: supported values: {_listed(allowed)}"
    return None


def failure_policy_problems(spec: dict) -> list[tuple[str, str]]:
    """What ``validatePodFailurePolicy`` refuses of ``spec.podFailurePolicy``."""
    rules = (spec.get("podFailurePolicy") or {}).get("rules") or []
    problems = []
    if len(rules) > MAX_RULES:
        problems.append(("spec.podFailurePolicy.rules", f"Too many: {len(rules)}: must have at most {MAX_RULES} items"))
    pod = (spec.get("template") or {}).get("spec") or {}
    names = {c.get("name") for key in ("containers", "initContainers") for c in pod.get(key) or []}
    for index, rule in enumerate(rules):
        problems += _rule_problems(spec, rule or {}, f"spec.podFailurePolicy.rules[{index}]", names)
    return problems


def _rule_problems(spec: dict, rule: dict, path: str, names: set[str]) -> list[tuple[str, str]]:
    action = rule.get("action")
    problems = []
    if action == "FailIndex" and spec.get("backoffLimitPerIndex") is None:
        problems.append((f"{path}.action", 'Invalid value: "FailIndex": requires the backoffLimitPerIndex to be set'))
    elif (refused := _choice(f"{path}.action", action, ACTIONS)) is not None:
        problems.append(refused)
    codes, conditions = rule.get("onExitCodes"), rule.get("onPodConditions") or []
    if codes is not None:
        problems += _exit_code_problems(codes, f"{path}.onExitCodes", names)
    problems += _condition_problems(conditions, f"{path}.onPodConditions")
    if codes is not None and conditions:
        problems.append((path, "Invalid value: specifying both OnExitCodes and OnPodConditions is not supported"))
    if codes is None and not conditions:
        problems.append((path, "Invalid value: specifying one of OnExitCodes and OnPodConditions is required"))
    return problems


def _exit_code_problems(codes: dict, path: str, names: set[str]) -> list[tuple[str, str]]:
    operator, values = codes.get("operator"), codes.get("values") or []
    problems = [p for p in [_choice(f"{path}.operator", operator, OPERATORS)] if p is not None]
    container = codes.get("containerName")
    if container is not None and container not in names:
        problems.append((f"{path}.containerName", f"Invalid value: {json.dumps(container)}: must be one of the "
                                                  "container or initContainer names in the pod template"))
    shown = json.dumps(values, separators=(",", ":"))
    if not values:
        problems.append((f"{path}.values", f"Invalid value: {shown}: at least one value is required"))
    elif len(values) > MAX_EXIT_CODES:
        problems.append((f"{path}.values", f"Too many: {len(values)}: must have at most {MAX_EXIT_CODES} items"))
    seen: set[int] = set()
    for index, value in enumerate(values):
        if operator == "In" and value == 0:
            problems.append((f"{path}.values[{index}]", "Invalid value: 0: must not be 0 for the In operator"))
        if value in seen:
            problems.append((f"{path}.values[{index}]", f"Duplicate value: {value}"))
        seen.add(value)
    if values != sorted(values):
        problems.append((f"{path}.values", f"Invalid value: {shown}: must be ordered"))
    return problems


def _condition_problems(conditions: list, path: str) -> list[tuple[str, str]]:
    problems = []
    if len(conditions) > MAX_CONDITIONS:
        problems.append((path, f"Too many: {len(conditions)}: must have at most {MAX_CONDITIONS} items"))
    for index, pattern in enumerate(conditions):
        kind = str((pattern or {}).get("type") or "")
        problems += [(f"{path}[{index}].type", f"Invalid value: {json.dumps(kind)}: {why}")
                     for why in qualified_name_problems(kind)]
        status = (pattern or {}).get("status") or "True"  # batch/v1's defaulting fills in an empty one
        refused = _choice(f"{path}[{index}].status", status, STATUSES)
        problems += [refused] if refused is not None else []
    return problems


def completion_problems(spec: dict) -> list[tuple[str, str]]:
    """What ``validateJobSpec`` refuses of the completion mode and the fields only an Indexed
    Job may set."""
    mode = spec.get("completionMode")
    completions, per_index, most_failed = spec.get("completions"), spec.get("backoffLimitPerIndex"), \
        spec.get("maxFailedIndexes")
    problems = []
    for field in ("backoffLimitPerIndex", "maxFailedIndexes"):
        if (spec.get(field) or 0) < 0:
            problems.append((f"spec.{field}", f"Invalid value: {spec[field]}: must be greater than or equal to 0"))
    if most_failed is not None and per_index is None:
        problems.append(("spec.backoffLimitPerIndex", "Required value: when maxFailedIndexes is specified"))
    if mode is not None and mode not in MODES:
        problems.append(("spec.completionMode", f"Unsupported value: {json.dumps(mode)}: supported values: "
                                                f"{_listed(MODES)}"))
    if mode == "Indexed":
        problems += _indexed_problems(spec, completions, most_failed)
    else:
        problems += [(f"spec.{field}", f"Invalid value: {spec[field]}: requires indexed completion mode")
                     for field in ("backoffLimitPerIndex", "maxFailedIndexes") if spec.get(field) is not None]
    if spec.get("successPolicy") is not None and mode != "Indexed":
        problems.append(("spec.successPolicy", "Invalid value: requires indexed completion mode"))
    return problems


def _indexed_problems(spec: dict, completions: int | None, most_failed: int | None) -> list[tuple[str, str]]:
    problems = []
    if completions is None:
        problems.append(("spec.completions", "Required value: when completion mode is Indexed"))
    if (spec.get("parallelism") or 0) > MAX_INDEXED:
        problems.append(("spec.parallelism", f"Invalid value: {spec['parallelism']}: must be less than or equal to "
                                             f"{MAX_INDEXED} when completion mode is Indexed"))
    if completions is not None and most_failed is not None and most_failed > completions:
        problems.append(("spec.maxFailedIndexes", f"Invalid value: {most_failed}: must be less than or equal to "
                                                  "completions"))
    return problems


def managed_by_problems(spec: dict) -> list[tuple[str, str]]:
    """What ``validateManagedBy`` refuses of ``spec.managedBy``: more than :data:`MAX_MANAGER`
    characters, or no domain-prefixed path (``IsDomainPrefixedPath``: a DNS subdomain, ``/``,
    and a path of URL characters)."""
    manager = spec.get("managedBy")
    if manager is None:
        return []
    path = "spec.managedBy"
    problems = []
    if len(manager) > MAX_MANAGER:
        problems.append((path, f"Too long: may not be more than {MAX_MANAGER} bytes"))
    host, slash, rest = manager.partition("/")
    if not manager:
        return [(path, "Required value")]
    if not slash or not host or not rest:
        return [*problems, (path, f'Invalid value: {json.dumps(manager)}: must be a domain-prefixed path (such as '
                                  '"acme.io/foo")')]
    if not DNS_SUBDOMAIN.match(host) or len(host) > 253:
        problems.append((path, f"Invalid value: {json.dumps(host)}: a lowercase RFC 1123 subdomain must consist of "
                               "lower case alphanumeric characters, '-' or '.'"))
    if not _PATH_CHARACTERS.match(rest):
        problems.append((path, f"Invalid value: {json.dumps(rest)}: Invalid path: must match the regex "
                               f"{_PATH_CHARACTERS.pattern[1:-1]}"))
    return problems
