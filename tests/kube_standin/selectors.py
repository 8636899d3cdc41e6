"""Label selectors as the API server reads them: equality-based (``a=b``, ``a==b``, ``a!=b``),
set-based (``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``), terms joined by commas. A selector
it cannot read, or whose keys and values no label could have, is refused (400) before any
object is listed or watched."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from kube_standin.names import label_value_problems, qualified_name_problems

SET_BASED = re.compile(r"(?P<key>[^\s!=(),]+)\s+(?P<operator>in|notin)\s*\((?P<values>[^()]*)\)")
Requirement = Callable[[dict], bool]


@functools.lru_cache(maxsize=1024)
def requirements(selector: str | None) -> tuple[Requirement, ...]:
    """Each term of ``selector`` as a test of an object's labels; ``ValueError`` with the API
    server's reason when a term cannot be read. Read once per selector: every list and watch
    event tests each object against the same few selectors."""
    return tuple(_requirement(term.strip()) for term in _terms(selector or ""))


def unreadable_selector(selector: str | None) -> str | None:
    """Why the API server cannot read ``selector`` (its 400's message); None when it can."""
    try:
        requirements(selector)
    except ValueError as exc:
        return str(exc)
    return None


def matches(labels: dict, selector: str | None) -> bool:
    """Whether ``labels`` satisfy every term of ``selector`` (one already read without error)."""
    return all(requirement(labels) for requirement in requirements(selector))


def _terms(selector: str) -> list[str]:
    """The selector's terms: split at the commas outside parentheses."""
    if not selector.strip():
        return []
    terms, depth, start = [], 0, 0
    for index, char in enumerate(selector):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(selector[start:index])
            start = index + 1
    return [*terms, selector[start:]]


def _requirement(term: str) -> Requirement:
    if not term:
        raise ValueError("unable to parse requirement: found ',', expected: identifier")
    found = SET_BASED.fullmatch(term)
    if found is not None:
        key, values = found["key"], {v.strip() for v in found["values"].split(",")}
        _check(key, values)
        if found["operator"] == "in":
            return lambda labels: key in labels and labels[key] in values
        return lambda labels: labels.get(key) not in values
    for operator in ("!=", "==", "="):
        if operator in term:
            key, value = (part.strip() for part in term.split(operator, 1))
            _check(key, {value})
            if operator == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: key in labels and labels[key] == value
    key = term[1:].strip() if term.startswith("!") else term
    _check(key, set())
    return (lambda labels: key not in labels) if term.startswith("!") else (lambda labels: key in labels)


def _check(key: str, values: set[str]) -> None:
    """Refuse a key that is no qualified name, or a value no label could have."""
    problems = [f"key: Invalid value: {key!r}: {why}" for why in qualified_name_problems(key)]
    problems += [f"values[0]: Invalid value: {value!r}: {why}" for value in sorted(values)
                 for why in label_value_problems(value)]
    if problems:
        raise ValueError(f"unable to parse requirement: {problems[0]}")


def selector_text(selector: dict) -> str:
    """A ``LabelSelector`` object (``matchLabels``, ``matchExpressions``) as the selector string
    :func:`matches` reads; empty for one that selects everything."""
    terms = [f"{key}={value}" for key, value in (selector.get("matchLabels") or {}).items()]
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        terms.append({"In": f"{key} in ({','.join(values)})", "NotIn": f"{key} notin ({','.join(values)})",
                      "Exists": key, "DoesNotExist": f"!{key}"}[operator])
    return ",".join(terms)
