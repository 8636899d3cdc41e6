"""The key a page of ``GET /studies`` follows, as its next link gives it: the last study's
creation time and name (:data:`~functions.core.store_port.StudyKey`), ``1733412345.123456~demo``.

The time is written as Python writes a float, the shortest text that reads back as the very same
number, so the page goes on exactly after that study. A whole number is the key an older katuna
gave, the row's id, which SQLite gives again to a study stored after the last ones are deleted:
it is refused, naming the parameter, where reading it as a position could leave studies out.
"""

from __future__ import annotations

import math
import re

from functions.core.errors import MalformedRequest
from functions.core.store_port import StudyKey

MAX_KEY = 200
"""The longest key taken: a time and a name of at most 63 characters fit with room to spare."""
KEY_PATTERN = r"^-?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?~.+$"
"""A key as the next link writes it (the document's pattern)."""
_KEY = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?)~(.+)", re.ASCII | re.DOTALL)
_FORMER = re.compile(r"[0-9]+", re.ASCII)


def key_text(key: StudyKey) -> str:
    """The key as the next link names it."""
    made, name = key
    return f"{made!r}~{name}"


def study_key(parameter: str, text: str | None) -> StudyKey | None:
    """The key ``text``, the ``parameter`` given (None: none given); ``MalformedRequest`` naming
    ``parameter`` for one no next link gives, and for an older katuna's."""
    if text is None:
        return None
    if _FORMER.fullmatch(text):
        raise MalformedRequest(f"{parameter}: {text[:40]} is a key an older katuna gave (a row's number, which a "
                               "study stored since may have been given again); start again from the first page")
    found = _KEY.fullmatch(text) if len(text) <= MAX_KEY else None
    made = float(found.group(1)) if found else math.nan
    if found is None or not math.isfinite(made):
        raise MalformedRequest(f"{parameter}: expected the key of a study as the next link gives it (its creation "
                               f"time and name, such as 1733412345.5~demo), got {text!r:.40}")
    return made, found.group(2)
