"""The service's JSON: strict, non-finite numbers by name (:mod:`functions.core.strict_json`).

Every JSON answer (``jsonify``, an error body, the dashboard's ``tojson``) is written by the
app's JSON provider, so one provider makes them all readable by any JSON parser.
"""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider

from functions.core.strict_json import finite


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's provider, with NaN and the infinities written as ``"nan"``, ``"inf"`` and
    ``"-inf"``; a bare ``NaN`` that would still reach the text raises instead."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs["allow_nan"] = False
        return super().dumps(finite(obj), **kwargs)
