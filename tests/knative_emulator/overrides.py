"""A SinkBinding's ``ceOverrides`` (duck/v1 ``CloudEventOverrides``) as Eventing takes it: checked
as its webhook checks it (``CloudEventOverrides.Validate``, after decoding it into its Go type),
and passed on to the bound pod in ``K_CE_OVERRIDES`` as JSON (sinkbinding_lifecycle.go ``Do``).

The webhook takes an extension name of ASCII letters and digits, either case, and refuses an
empty one; the CRD leaves the values unchecked, but the Go type holds strings only, so any
other value fails the decoding (a JSON ``null`` decodes to ``""``). Nothing else lies under
``ceOverrides`` in the schema. The JSON is Go's ``json.Marshal``'s: keys sorted, no spaces, text
as UTF-8 but ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, ``extensions`` left out where there
are none (``omitempty``); an empty text without ``ceOverrides``.
"""

from __future__ import annotations

import json
import re
from typing import Any

NAME = re.compile(r"[A-Za-z0-9]+")
GO_ESCAPED = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
"""What Go's JSON encoder escapes that Python's leaves as it is (it appears only in strings here)."""


def overrides_env(overrides: Any, where: str) -> str:
    """``K_CE_OVERRIDES`` for a binding whose ``spec.ceOverrides`` is ``overrides``;
    ``ValueError`` naming the field where Eventing refuses it."""
    if overrides is None:
        return ""
    if not isinstance(overrides, dict):
        raise ValueError(f"{where}: spec.ceOverrides: expected an object, got {overrides!r}")
    unknown = sorted(set(overrides) - {"extensions"})
    if unknown:
        raise ValueError(f"{where}: spec.ceOverrides: {unknown} not in the schema, which holds extensions only")
    extensions = overrides.get("extensions") or {}
    if not isinstance(extensions, dict):
        raise ValueError(f"{where}: spec.ceOverrides.extensions: expected an object of names to strings")
    for name, value in extensions.items():
        if not NAME.fullmatch(name):
            raise ValueError(f"{where}: spec.ceOverrides.extensions: invalid key name {name!r}: keys are expected "
                             "to be alphanumeric")
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{where}: spec.ceOverrides.extensions.{name}: expected a string, got {value!r}")
    taken = {name: value or "" for name, value in sorted(extensions.items())}
    text = json.dumps({"extensions": taken} if taken else {}, separators=(",", ":"), ensure_ascii=False)
    return "".join(GO_ESCAPED.get(character, character) for character in text)
