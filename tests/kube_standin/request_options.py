"""The options of a request that writes, as the API server's handlers check them before they
act on anything: a create's ``CreateOptions``, an update's ``UpdateOptions``, a patch's
``PatchOptions`` and a delete's (or a collection's delete's) ``DeleteOptions`` are decoded from
the query (a delete's from its body when it has one: the query is then not read), then
validated (k8s.io/apimachinery ``ValidateCreateOptions`` and its siblings): a ``fieldManager``
longer than 128 bytes or holding a character that is not printable, a patch's ``force`` other
than a server-side apply's, a ``dryRun`` other than ``All``, a ``fieldValidation`` other than ``Ignore``, ``Warn`` or ``Strict``, a delete's
``propagationPolicy`` of no known kind, or given with ``orphanDependents``, are refused with 422
Invalid naming the options' kind (``PatchOptions.meta.k8s.io "" is invalid: ...``), and nothing
is done. A patch's type is checked before its options (415 first). A delete's body whose fields
are of the wrong JSON type cannot be decoded (400).
"""

from __future__ import annotations

import json

from kube_standin.objects import status
from kube_standin.server import Call

KINDS = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions", "DELETE": "DeleteOptions"}
"""The options each writing method decodes."""
DIRECTIVES = ("", "Ignore", "Strict", "Warn")
"""The ``fieldValidation`` values validation lets through, as it lists them (sorted)."""
POLICIES = ("Foreground", "Background", "Orphan", "nil")
"""The propagation policies validation lets through, as it lists them."""
FIELD_MANAGER_BYTES = 128
"""The longest ``fieldManager`` a create, update or patch takes (``FieldManagerMaxLength``)."""
BODY_TYPES = {"dryRun": (list, "[]string"), "propagationPolicy": (str, "v1.DeletionPropagation"),
              "orphanDependents": (bool, "bool")}
"""The JSON type a delete's body must give each option the stand-in reads, and its Go type."""


def refusal(call: Call, patch_types: tuple[str, ...]) -> tuple[int, dict] | None:
    """The API server's answer to ``call``'s options where it refuses them (``patch_types``: the
    patch types the resource takes, a patch of another type being refused before its options
    are read); None where they are fine or ``call`` takes none."""
    kind = KINDS.get(call.method)
    if kind is None or (call.method == "PATCH" and call.content_type not in patch_types):
        return None
    if call.method != "DELETE":
        return _invalid(kind, [*_force_problems(call), *_manager_problems(call.query.get("fieldManager", "")),
                               *_dry_run_problems(list(call.dry_runs)),
                               *_directive_problems(call.query.get("fieldValidation", ""))])
    options = call.delete_options()
    undecodable = _undecodable(options) if call.body is not None else None
    if undecodable is not None:
        return 400, status(400, "BadRequest", undecodable)
    dry_runs = [value or "" for value in options.get("dryRun") or []]
    return _invalid(kind, [*_policy_problems(options), *_dry_run_problems(dry_runs)])


def _undecodable(body: object) -> str | None:
    """Why a delete's body cannot be decoded into ``DeleteOptions``, as Go's decoder says it: it
    is no JSON object, or an option the stand-in reads is of another JSON type than its field
    (a ``null`` is taken as no value, in ``dryRun``'s list as an empty string)."""
    if not isinstance(body, dict):
        return f"json: cannot unmarshal {_json_type(body)} into Go value of type v1.DeleteOptions"
    for name, (wanted, go_type) in BODY_TYPES.items():
        value = body.get(name)
        if value is not None and not isinstance(value, wanted):
            return f"json: cannot unmarshal {_json_type(value)} into Go struct field DeleteOptions.{name} of type {go_type}"
    wrong = [value for value in body.get("dryRun") or [] if value is not None and not isinstance(value, str)]
    if wrong:
        return f"json: cannot unmarshal {_json_type(wrong[0])} into Go struct field DeleteOptions.dryRun of type string"
    return None


def _json_type(value: object) -> str:
    """What Go's decoder calls a JSON value's type."""
    if isinstance(value, bool):
        return "bool"
    return {str: "string", int: "number", float: "number", list: "array", dict: "object"}[type(value)]


def _force_problems(call: Call) -> list[tuple[str, str]]:
    """``ValidatePatchOptions``: ``force`` (any value, ``false`` too) only on a server-side apply."""
    if call.method != "PATCH" or "force" not in call.query or call.content_type == "application/apply-patch+yaml":
        return []
    return [("force", "Forbidden: may not be specified for non-apply patch")]


def _manager_problems(manager: str) -> list[tuple[str, str]]:
    """``ValidateFieldManager``: at most :data:`FIELD_MANAGER_BYTES` bytes, and every character
    printable (Go's ``unicode.IsPrint``, as Python's ``isprintable``), each one that is not
    named with its byte offset."""
    problems = []
    if len(manager.encode()) > FIELD_MANAGER_BYTES:
        problems.append(("fieldManager", f"Too long: may not be more than {FIELD_MANAGER_BYTES} bytes"))
    shown = json.dumps(manager, ensure_ascii=False)
    problems += [("fieldManager", f"Invalid value: {shown}: invalid character U+{ord(character):04X} (at position "
                                  f"{len(manager[:index].encode())})")
                 for index, character in enumerate(manager) if not character.isprintable()]
    return problems


def _dry_run_problems(values: list[str]) -> list[tuple[str, str]]:
    """``ValidateDryRun``: every value must be ``All``."""
    if all(value == "All" for value in values):
        return []
    return [("dryRun", f'Unsupported value: {json.dumps(values, separators=(",", ":"))}: supported values: "All"')]


def _directive_problems(directive: str) -> list[tuple[str, str]]:
    """``ValidateFieldValidation``: a known directive, or none."""
    if directive in DIRECTIVES:
        return []
    return [("fieldValidation", f"Unsupported value: {json.dumps(directive)}: supported values: "
                                + ", ".join(json.dumps(value) for value in DIRECTIVES))]


def _policy_problems(options: dict) -> list[tuple[str, str]]:
    """``ValidateDeleteOptions``' checks of the propagation policy: not with
    ``orphanDependents``, and of a known kind."""
    policy, found = options.get("propagationPolicy"), []
    if policy is not None and options.get("orphanDependents") is not None:
        found.append(("propagationPolicy", f"Invalid value: {json.dumps(policy)}: orphanDependents and "
                                           "deletionPropagation cannot be both set"))
    if policy is not None and policy not in POLICIES[:-1]:
        found.append(("propagationPolicy", f"Unsupported value: {json.dumps(policy)}: supported values: "
                                           + ", ".join(json.dumps(value) for value in POLICIES)))
    return found


_REASONS = {"Unsupported value": "FieldValueNotSupported", "Too long": "FieldValueTooLong",
            "Forbidden": "FieldValueForbidden"}
"""The cause's reason by the words its message begins with (``field.Error``'s type)."""


def _invalid(kind: str, problems: list[tuple[str, str]]) -> tuple[int, dict] | None:
    """422 Invalid for the options of ``kind`` (``errors.NewInvalid`` with no name: the message
    lists the problems as an aggregate does, one bare, more in brackets); None for no problem."""
    if not problems:
        return None
    shown = [f"{name}: {message}" for name, message in problems]
    listed = shown[0] if len(shown) == 1 else f"[{', '.join(shown)}]"
    causes = [{"reason": _REASONS.get(message.partition(":")[0], "FieldValueInvalid"), "message": message,
               "field": name} for name, message in problems]
    return 422, status(422, "Invalid", f'{kind}.meta.k8s.io "" is invalid: {listed}',
                       {"name": "", "group": "meta.k8s.io", "kind": kind, "causes": causes})
