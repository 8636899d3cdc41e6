"""The CloudEvents overrides a Knative SinkBinding gives the service, in ``K_CE_OVERRIDES``.

A SinkBinding's ``spec.ceOverrides`` reaches the bound pod as JSON (``{"extensions": {"team":
"ml"}}``; empty without them), and a Knative-aware sender sets each extension on every event it
sends to ``K_SINK``, as Eventing's own adapters do (pkg/adapter/v2 ``applyOverrides``), so a
Trigger can route the sender's events by them. katuna does so for the events it posts to the
broker; its replies are answers, which no Knative adapter sends, and go as they are.

An override never replaces an attribute katuna sets: Knative's CloudEvents SDK refuses an
extension named after a context attribute (``id``, ``type``, ...), failing every send, so such a
name, katuna's signature and the attributes a resource event carries for its Triggers are
refused when the service starts, as is the broker's own ``knative*`` bookkeeping.
"""

from __future__ import annotations

import json
import re
import unicodedata

from functions.core import event_signature
from functions.core.errors import InvalidSetting

VARIABLE = "K_CE_OVERRIDES"

EXAMPLE = '{"extensions": {"team": "ml"}}'

NAME = re.compile(r"[A-Za-z0-9]+")
"""An extension name as Knative's webhook takes it (duck/v1 ``validateExtensionName``); its
CloudEvents SDK sets it lower-cased."""

CONTEXT_ATTRIBUTES = frozenset({"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject",
                                "time", "data"})
"""CloudEvents 1.0's context attributes, and ``data``, which its JSON format reserves."""

KATUNAS = frozenset({event_signature.EXTENSION, "apiversion", "kind", "name", "namespace"})
"""Extensions katuna sets itself: its signature, and a resource event's object attributes
(those of an ApiServerSource's event, which the Triggers route by)."""


def parse(text: str) -> tuple[tuple[str, str], ...]:
    """The extensions ``text`` (``K_CE_OVERRIDES``) sets, names lower-cased, sorted by name;
    none for an empty text. :class:`InvalidSetting` names what is wrong."""
    if not text.strip():
        return ()
    try:
        overrides = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidSetting(f"{VARIABLE}: expected JSON such as {EXAMPLE}, could not read it: {exc}") from exc
    if not isinstance(overrides, dict):
        raise InvalidSetting(f"{VARIABLE}: expected a JSON object such as {EXAMPLE}, got {type(overrides).__name__}")
    unknown = sorted(set(overrides) - {"extensions"})
    if unknown:
        raise InvalidSetting(f"{VARIABLE}: expected only 'extensions' (a SinkBinding's ceOverrides), got {unknown}")
    extensions = overrides.get("extensions") or {}
    if not isinstance(extensions, dict):
        raise InvalidSetting(f"{VARIABLE}: extensions: expected an object of names to strings such as {EXAMPLE}")
    found: dict[str, str] = {}
    for name, value in extensions.items():
        lowered = _name(name)
        if lowered in found:
            raise InvalidSetting(f"{VARIABLE}: extensions: {name!r} names the extension {lowered!r} a second time "
                                 "(names are taken lower-cased)")
        found[lowered] = _value(name, value)
    return tuple(sorted(found.items()))


def _name(name: str) -> str:
    """``name`` lower-cased, where it may name an override."""
    if not NAME.fullmatch(name):
        raise InvalidSetting(f"{VARIABLE}: extensions.{name!r}: expected an extension name of letters a-z, A-Z "
                             "and digits only")
    lowered = name.lower()
    if lowered in CONTEXT_ATTRIBUTES:
        raise InvalidSetting(f"{VARIABLE}: extensions.{name}: {lowered!r} is a CloudEvents context attribute, "
                             "which an extension may not override; expected an extension name of your own")
    if lowered in KATUNAS or lowered.startswith("knative"):
        raise InvalidSetting(f"{VARIABLE}: extensions.{name}: {lowered!r} is an attribute katuna or the broker "
                             "sets itself, which an override may not replace; expected an extension name of your own")
    return lowered


def _value(name: str, value: object) -> str:
    """``value``, where it is a CloudEvents string: text without control characters, lone
    surrogates or noncharacters."""
    if not isinstance(value, str):
        raise InvalidSetting(f"{VARIABLE}: extensions.{name}: expected a string, got {json.dumps(value)}")
    for character in value:
        if unicodedata.category(character) in ("Cc", "Cs") or _noncharacter(character):
            raise InvalidSetting(f"{VARIABLE}: extensions.{name}: expected text a CloudEvents string may hold, got "
                                 f"the character U+{ord(character):04X}, a control character or no character")
    return value


def _noncharacter(character: str) -> bool:
    """Whether ``character`` is a Unicode noncharacter (U+FDD0..U+FDEF, and the last two of each plane)."""
    code = ord(character)
    return 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE
