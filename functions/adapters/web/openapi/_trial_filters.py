"""The query parameters of ``GET /studies/{name}/trials`` that filter and order the listing
(:mod:`functions.core.trial_listing`), as the dashboard's trial table takes its filters."""

from __future__ import annotations

from typing import Any

from functions.core.trial_fields import STATES

_STATES = "|".join(STATES)
_FIELD = ("value (the first objective's), metric:<name>, param:<name> (a parameter that is not categorical), "
          "duration, startedAt, finishedAt, number; under population-based training also generation and parent")


def _repeated(name: str, description: str, items: dict[str, Any]) -> dict[str, Any]:
    """A query parameter that may be given several times (``name=a&name=b``)."""
    return {"name": name, "in": "query", "style": "form", "explode": True, "description": description,
            "schema": {"type": "array", "items": items}}


def trial_filters() -> list[dict[str, Any]]:
    """The listing's ``after``, ``order`` and filters: ``state``, the ``field``/``min``/``max``
    ranges, the Pareto front (``pareto``) and a categorical parameter's values (``param:<name>``)."""
    bound = {"type": "string", "maxLength": 100,
             "description": "a number (blank: none); the duration's in seconds, or with units: 90s, 5m, 1.5h, "
                            "1h 30m; a time's (startedAt, finishedAt) in seconds since the epoch, or an RFC 3339 "
                            "time with its zone: 2026-12-05T19:46:40Z"}
    return [
        {"name": "after", "in": "query", "schema": {"type": "string", "maxLength": 4096, "pattern": "^.*[0-9]$"},
         "description": "the key of the trial the page follows, as the next link gives it: in the order by number, "
                        "its number (17); in another order, its value for the order's field as JSON and its number "
                        "(0.25~17, null~17)"},
        {"name": "order", "in": "query", "schema": {"type": "string", "maxLength": 300},
         "description": f"the field the trials are ordered by, ascending, or with :desc appended descending (value, "
                        f"value:desc, duration:desc, metric:loss): {_FIELD}. Trials without a value for it come last, "
                        "by number; by number when left out"},
        _repeated("state", "the states to keep, repeated or as a comma list (COMPLETE,FAIL); blanks around a state "
                           "and blank states (state= as a form sends an empty field) are left out. PRUNED also "
                           "keeps the trials shown STOPPED (stopped as the study ended, stored PRUNED); STOPPED "
                           "itself is refused, as no trial is stored so",
                  {"type": "string", "pattern": rf"^\s*({_STATES})?\s*(,\s*({_STATES})?\s*)*$"}),
        _repeated("field", f"the field each range bounds, in order: {_FIELD}; at most 8 fields at once, with the "
                           "categorical parameters filtered", {"type": "string", "maxLength": 300}),
        _repeated("min", "each range's least value, in the fields' order: given once per field or not at all", bound),
        _repeated("max", "each range's greatest value, in the fields' order: given once per field or not at all",
                  bound),
        {"name": "pareto", "in": "query", "schema": {"type": "string", "enum": ["true", "1", "false", "0", ""]},
         "description": "true (or 1): the trials on the study's Pareto front alone, the front katuna keeps (as GET "
                        "/studies/{name}/best lists it), with the other filters and the order applied as to any "
                        "trial; refused (400, naming pareto) for a study of one objective, which has no front"},
        {"name": "param", "in": "query", "style": "form", "explode": True,
         "description": "a categorical parameter's values to keep, each as param:<name>=<value>, repeated for several "
                        "(param:optimizer=adam&param:optimizer=sgd): text as it is, a number as written in the study, "
                        "true, false and null as JSON writes them",
         "schema": {"type": "object", "propertyNames": {"pattern": "^param:.+$"},
                    "additionalProperties": {"oneOf": [{"type": "string"},
                                                       {"type": "array", "items": {"type": "string"}}]}}},
    ]
