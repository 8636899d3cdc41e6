"""The options of a list or a watch as the API server decodes and validates them before it
reads anything (``ListResource``: ``DecodeParameters`` then ``ValidateListOptions``, k8s.io/apiserver
and k8s.io/apimachinery ``metainternalversion``): an integer option (``limit``,
``timeoutSeconds``) that does not parse as a Go int64 is 400 BadRequest with ``strconv``'s
error; a ``resourceVersionMatch`` of no known kind, without a ``resourceVersion``, beside a
``continue`` token, ``Exact`` at ``"0"``, or on a watch, is 422 Invalid naming ``ListOptions``;
a ``continue`` token beside a ``resourceVersion`` other than ``"0"`` is 400 (etcd3's ``GetList``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from kube_standin.objects import status

if TYPE_CHECKING:
    from kube_standin.server import Call

INTEGERS = ("limit", "timeoutSeconds")
"""The int64 options of ``ListOptions`` a client may send."""
MATCHES = ("Exact", "NotOlderThan", "")
"""The ``resourceVersionMatch`` values validation lets through, as it lists them."""
INT64 = range(-(2**63), 2**63)


def refusal(call: Call) -> tuple[int, dict] | None:
    """The API server's answer to a list's or watch's options where it refuses them; None
    where they are fine or ``call`` is no list nor watch."""
    if call.method != "GET" or (call.name and not call.watch) or call.subresource:
        return None
    for name in INTEGERS:
        if name in call.query and (problem := _int64_problem(call.query[name])) is not None:
            return 400, status(400, "BadRequest", problem)
    problems = _match_problems(call)
    if problems:
        shown = [f"resourceVersionMatch: {message}" for message in problems]
        listed = shown[0] if len(shown) == 1 else f"[{', '.join(shown)}]"
        causes = [{"reason": "FieldValueNotSupported" if m.startswith("Unsupported") else "FieldValueForbidden",
                   "message": m, "field": "resourceVersionMatch"} for m in problems]
        return 422, status(422, "Invalid", f'ListOptions.meta.k8s.io "" is invalid: {listed}',
                           {"name": "", "group": "meta.k8s.io", "kind": "ListOptions", "causes": causes})
    if not call.watch and call.query.get("continue") and call.query.get("resourceVersion", "0") != "0":
        return 400, status(400, "BadRequest", "specifying resource version is not allowed when using continue")
    return None


def _int64_problem(text: str) -> str | None:
    """``strconv.ParseInt(text, 10, 64)``'s error, None where it parses."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return f"strconv.ParseInt: parsing {json.dumps(text)}: invalid syntax"
    if int(text) not in INT64:
        return f"strconv.ParseInt: parsing {json.dumps(text)}: value out of range"
    return None


def _match_problems(call: Call) -> list[str]:
    """``ValidateListOptions``' checks of ``resourceVersionMatch`` (``validateWatchOptions``' for
    a watch, which takes none without ``sendInitialEvents``)."""
    match = call.query.get("resourceVersionMatch", "")
    if not match:
        return []
    if call.watch:
        return ["Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"]
    version, problems = call.query.get("resourceVersion", ""), []
    if not version:
        problems.append("Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided")
    if call.query.get("continue"):
        problems.append("Forbidden: resourceVersionMatch is forbidden when continue is provided")
    if match not in MATCHES:
        problems.append(f"Unsupported value: {json.dumps(match)}: supported values: "
                        + ", ".join(json.dumps(value) for value in MATCHES))
    if match == "Exact" and version == "0":
        problems.append('Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"')
    return problems
