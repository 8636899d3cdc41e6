"""Values from studies and trials as the terminal shows them: never markup, never control codes.

A parameter value, a reason, a metric name or a file name is data. ``[/x]`` in one must not
crash rich's markup parser, ``[link=...]`` must not become a hidden hyperlink, and an escape
character must not reach the terminal, where it could move the cursor, retitle the window or
open a link of its own; right-to-left overrides must not reorder what is shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rich.markup import escape
from rich.text import Text

UNBOUNDED = 1 << 20
"""A width no line or table reaches: a table measured in it takes its natural width, and output
printed in it is never cut or wrapped."""

_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""Control characters (newline and tab excepted) and the bidirectional overrides."""


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """``value`` as text, each control character shown as its escape (``\\x1b``)."""
    return _INVISIBLE.sub(_visible, str(value))


def markup(value: object) -> str:
    """``value`` to place inside a rich markup string: printable, its brackets escaped."""
    return escape(printable(value))


def pairs(values: Mapping[str, Any]) -> str:
    """Each item of ``values`` as ``name=value``, a float to six significant figures, as katuna
    prints a trial's parameters and metrics (not a Python dict's braces and quotes)."""
    return " ".join(f"{name}={value:.6g}" if isinstance(value, float) else f"{name}={value}"
                    for name, value in values.items())


def text(value: object) -> Text:
    """``value`` as a rich ``Text``, which rich never parses as markup: printable."""
    return Text(printable(value))
