"""Numbers in a Katib Experiment's feasible space, read as Katib reads them.

Katib's ``feasibleSpace`` holds its bounds, step and discrete values as strings, which its
suggestion services parse: Go's ``strconv.Atoi`` and ``ParseFloat`` (goptuna), Python's
``int()`` and ``float()`` (the Optuna, hyperopt and skopt services). Only what all of them read
alike is taken: ASCII decimal digits with an optional sign (and, for a double, a fraction and an
exponent). Python alone would read ``" 3"``, ``"1_0"`` or Arabic-Indic digits, and Go alone a
hexadecimal float; either would make a study search a space the Experiment does not give Katib.
A JSON or YAML number is taken as its text would be (Katib's API keeps such fields as given); a
boolean is no number (Python would read ``true`` as 1), nor a fraction an integer.
"""

from __future__ import annotations

import math
import re
from typing import Any

from functions.core.reader import kind_of

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
INT64 = (-(2**63), 2**63 - 1)
"""What ``strconv.Atoi`` reads on the 64-bit platforms Katib runs on."""
EXPECTED = {"int": 'an integer: ASCII digits with an optional sign, such as "3"',
            "float": 'a finite number: ASCII digits with an optional sign, fraction and exponent, such as "0.01" '
                     'or "1e-3"'}


def is_decimal(text: str) -> bool:
    """Whether ``text`` spells a number as Katib's parameters write one: ASCII digits with an
    optional sign, fraction and exponent (``"16"``, ``"1e-3"``)."""
    return _DECIMAL.fullmatch(text) is not None


def parse(value: Any, kind: str) -> tuple[int | float | None, str | None]:
    """``value`` as a number of ``kind`` (``int`` or ``float``), or None and what is wrong with it."""
    number = _integer(value) if kind == "int" else _float(value)
    if number is None:
        return None, f"expected {EXPECTED[kind]}, got {_shown(value)}"
    return number, None


def _integer(value: Any) -> int | None:
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        return None
    return number if INT64[0] <= number <= INT64[1] else None


def _float(value: Any) -> float | None:
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        number = float(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _shown(value: Any) -> str:
    """``value`` as the problem names it: text and numbers as written, anything else by its kind."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (str, int, float)):
        return f"{value!r:.80}"
    return kind_of(value)
