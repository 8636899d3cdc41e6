"""JSON as katuna writes it for others to read: strict, so any JSON parser takes it.

Python's ``json`` writes NaN and the infinities as bare ``NaN``, ``Infinity`` and ``-Infinity``,
which are no JSON: JavaScript's ``JSON.parse``, Go's ``encoding/json`` and ``jq`` refuse the
whole document. Metrics, intermediate values and a trial's reduced observations can be any of
them, so everything katuna emits (events, the HTTP API and the dashboard's JSON, the CLI's
``--json``, the status of study resources) carries such a number by name, as ``"nan"``,
``"inf"`` or ``"-inf"``, and is written with ``allow_nan=False`` so a value that slipped past
raises instead of reaching a reader.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
"""The names a number JSON has none for travels as, and the number each stands for."""


def json_value(value: float) -> float | str:
    """A finite number as it is, else its name in :data:`NON_FINITE`."""
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"


def finite(value: Any) -> Any:
    """``value`` with every float in it, at any depth of mappings, lists and tuples, as
    :func:`json_value` gives it (a mapping becomes a dict, a tuple a list, as JSON has them)."""
    if isinstance(value, float):
        return json_value(value)
    if isinstance(value, Mapping):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``value`` as strict JSON text (:func:`finite`); ``kwargs`` as :func:`json.dumps` takes them."""
    return json.dumps(finite(value), allow_nan=False, **kwargs)
