"""The mark stored beside the verdict of a trial that never reported its objective
(:class:`~functions.core.records.Unreported`), as the trials table keeps it: a JSON object in
the ``unreported`` column, empty for every other trial.

Older katunas kept it in the reason's words alone; the fiftieth migration reads it from those
words once (:func:`older_mark`), so that nothing after it reads a reason back.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from functions.core.records import Unreported

_MISSING = re.compile(r"^metrics unavailable: objective (?P<missing>.+?) never reported \(")
_REPORTED = re.compile(r"^metrics unavailable: objective .+? never reported \(.*; its last lines "
                       r"report (?P<printed>[^:]+): is the name in (?P<field>\S+) misspelt\?\); last lines:$")
_COLON = re.compile(r"^metrics unavailable: objective .+? never reported \(.*; its last lines print "
                    r"(?P<name>\S+) with a colon \(.*?\), which is no name=value: print \S+, or give (?P<field>\S+) "
                    r"a rule that reads it[;)]")


def unreported_column(mark: Unreported | None) -> str | None:
    """The column's text for ``mark`` (None: no mark)."""
    if mark is None:
        return None
    return json.dumps({"missing": list(mark.missing), "printed": list(mark.printed), "field": mark.field,
                       "colon": mark.colon, "ruleField": mark.rule_field})


def unreported_mark(text: str | None) -> Unreported | None:
    """The mark the column's ``text`` holds (None where it is empty)."""
    if not text:
        return None
    found: dict[str, Any] = json.loads(text)
    return Unreported(tuple(found["missing"]), tuple(found["printed"]), found["field"], found["colon"],
                      found["ruleField"])


def older_mark(verdict: str) -> Unreported:
    """The mark of a trial whose reason's first line is ``verdict``: the objectives it names, the
    metrics it says the last lines report instead, and an objective it says they print with a
    colon, where it says so."""
    named = _MISSING.match(verdict)
    missing = _names(named.group("missing")) if named else ()
    reported, colon = _REPORTED.match(verdict), _COLON.match(verdict)
    return Unreported(missing, tuple(reported.group("printed").split(", ")) if reported else (),
                      reported.group("field") if reported else "", colon.group("name") if colon else "",
                      colon.group("field") if colon else "")


def _names(quoted: str) -> tuple[str, ...]:
    """The objectives an older reason named, each quoted as Python's ``repr`` writes a string
    (``'loss', 'acc'``); none where it reads otherwise."""
    try:
        names = ast.literal_eval(f"({quoted},)")
    except (ValueError, SyntaxError, RecursionError):
        return ()
    return names if all(isinstance(name, str) for name in names) else ()
