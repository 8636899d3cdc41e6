"""Trigger filters as Knative Eventing evaluates them (the ``filters`` of a Trigger's spec).

Each filter has one dialect: ``exact``, ``prefix`` and ``suffix`` compare context attributes
(extensions included) as strings; ``all``, ``any`` and ``not`` combine filters. As in Knative,
a filter's result has three values (pass, fail, no filter), a Trigger's list of filters means
``all``, and an event is delivered unless the result is *fail*. The webhook's refusals apply
(one dialect per filter, a ``not`` counting even empty, as ``hasMultipleDialects`` counts it;
attribute names of lowercase letters and digits). What the webhook takes but the broker filter
then drops, so that the Trigger gets what the filter was to keep out (an empty value, which
``NewExactFilter`` refuses; a filter of no dialect), is refused loudly, as are ``cesql`` and the
legacy ``filter.attributes``, which are not emulated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

PASS, FAIL, NO_FILTER = "pass", "fail", "no filter"
ATTRIBUTE_NAME = re.compile(r"^[a-z][a-z0-9]*$")
"""The attribute names Knative's webhook accepts in a filter."""

Attributes = Mapping[str, str]
Filter = Callable[[Attributes], str]


class UnsupportedFilter(ValueError):
    """A filter Knative refuses, or one this emulator does not evaluate."""


def trigger_filter(spec: Mapping[str, Any]) -> Filter:
    """The filter of a Trigger's spec; ``UnsupportedFilter`` for what the emulator cannot honour."""
    if "filter" in spec:
        raise UnsupportedFilter("spec.filter (attribute filters) is not emulated: use spec.filters")
    return _all([_one(item, f"spec.filters[{index}]") for index, item in enumerate(spec.get("filters") or [])])


def delivered(check: Filter, attributes: Attributes) -> bool:
    """Whether a Trigger with this filter receives an event with these attributes."""
    return check(attributes) != FAIL


def _one(item: Mapping[str, Any], path: str) -> Filter:
    dialects = [key for key, value in item.items() if value not in (None, {}, [], "") or key == "not" and value == {}]
    unknown = set(item) - {"exact", "prefix", "suffix", "all", "any", "not", "cesql"}
    if unknown:
        raise UnsupportedFilter(f"{path}: unknown dialect {sorted(unknown)}")
    if len(dialects) > 1:
        raise UnsupportedFilter(f"{path}: multiple dialects found, filters can have only one dialect set")
    if not dialects:
        raise UnsupportedFilter(f"{path}: no dialect set (Knative would skip this filter)")
    dialect = dialects[0]
    value = item[dialect]
    if dialect == "cesql":
        raise UnsupportedFilter(f"{path}.cesql: CESQL is not emulated")
    if dialect in ("exact", "prefix", "suffix"):
        return _compare(dialect, value, f"{path}.{dialect}")
    if dialect == "not":
        return _not(_one(value, f"{path}.not"))
    parts = [_one(part, f"{path}.{dialect}[{index}]") for index, part in enumerate(value)]
    return _all(parts) if dialect == "all" else _any(parts)


_TESTS: Mapping[str, Callable[[str, str], bool]] = {
    "exact": lambda found, wanted: found == wanted,
    "prefix": str.startswith,
    "suffix": str.endswith,
}


def _compare(dialect: str, wanted: Mapping[str, str], path: str) -> Filter:
    for name, value in wanted.items():
        if not ATTRIBUTE_NAME.match(name):
            raise UnsupportedFilter(f"{path}: attribute name {name!r} must start with a letter and can only "
                                    "contain lowercase alphanumeric")
        if not isinstance(value, str) or value == "":
            raise UnsupportedFilter(f"{path}.{name}: an empty value, which Knative takes but whose filter its broker "
                                    "drops (the Trigger would get every event this filter was to keep out)")
    test = _TESTS[dialect]

    def check(attributes: Attributes) -> str:
        for name, value in wanted.items():
            found = attributes.get(name)
            if found is None or not test(found, value):
                return FAIL
        return PASS

    return check


def _all(parts: list[Filter]) -> Filter:
    def check(attributes: Attributes) -> str:
        result = NO_FILTER
        for part in parts:
            outcome = part(attributes)
            if outcome == FAIL:
                return FAIL
            if outcome == PASS:
                result = PASS
        return result

    return check


def _any(parts: list[Filter]) -> Filter:
    def check(attributes: Attributes) -> str:
        result = NO_FILTER
        for part in parts:
            result = part(attributes)
            if result == PASS:
                return PASS
        return result

    return check


def _not(part: Filter) -> Filter:
    def check(attributes: Attributes) -> str:
        return {PASS: FAIL, FAIL: PASS}.get(part(attributes), NO_FILTER)

    return check
