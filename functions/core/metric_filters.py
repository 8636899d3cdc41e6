"""Metric filters matched against one line of output, as RE2 matches them, at a cost that suits
a call per line.

A trial that reports a metric every step prints mostly ``name=value`` lines, and each is matched
on its own. RE2's Python binding costs tens of microseconds a call on ``str`` (it maps each
match's byte offsets back to characters in Python), which made an output of reports parse at
about 2 MiB in 10 s. So:

- Katib's default filter (:data:`KATIB_DEFAULT_FILTER`), nearly every study's, is matched by
  Python's ``re`` with RE2's meaning spelt out (RE2's ``\\w``, ``\\s`` and ``\\d`` are ASCII;
  ``\\s`` has no vertical tab), and written so that its time stays linear in the line: a match
  can only start where a run of name characters starts, or where the previous match ended;
- a study's own filters are matched by RE2 over the line's UTF-8 bytes, stepping past an empty
  match by one character as the binding does on ``str``: the same matches, without the mapping.
  A filter with ``\\C`` (any byte, which may split a character) keeps the binding's ``str`` path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import re2

KATIB_DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"

_NAME = "[0-9A-Za-z_|-]"
_SPACE = "[\t\n\f\r ]"
_DEFAULT = f"({_NAME}++){_SPACE}*+={_SPACE}*+([+-]?[0-9]*(\\.[0-9]+)?([Ee][+-]?[0-9]+)?)"
_DEFAULT_AT = re.compile(_DEFAULT)
_DEFAULT_AFTER = re.compile(f"(?<!{_NAME}){_DEFAULT}")
_NAME_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_|-")

AFTER = 9
"""Characters after a default-rule match that can spell a value it did not read: ``infinity``
and the one that shows where the word ends."""

Match = tuple[str, str, int]
"""A filter's match in a line: its first group (the name) and its second (the value), each
``""`` when it took no part, and where it ends in the line for the default filter (after which
``nan`` or ``inf`` may be spelt), ``-1`` for any other."""

Matcher = Callable[[str], Iterator[Match]]


def default_matches(line: str) -> Iterator[Match]:
    """The matches of :data:`KATIB_DEFAULT_FILTER` in ``line``, left to right, as RE2 finds them.
    A match found from ``pos`` starts at ``pos`` or at the start of a run of name characters
    (one starting inside a run would make the run's start match too), so ``re`` never tries
    the rest of a run again: linear time, whatever the line. Only where a match ends inside a
    run (``a=1b=2``) is the next one tried right there."""
    pos = 0
    while True:
        match = _DEFAULT_AT.match(line, pos) if _inside_run(line, pos) else None
        if match is not None:
            pos = match.end()
            yield match.group(1), match.group(2), pos
            continue
        for match in _DEFAULT_AFTER.finditer(line, pos):
            pos = match.end()
            yield match.group(1), match.group(2), pos
            if _inside_run(line, pos):
                break
        else:
            return


def _inside_run(line: str, pos: int) -> bool:
    """Whether ``pos`` is inside a run of name characters of ``line``, not at its start."""
    return 0 < pos < len(line) and line[pos - 1] in _NAME_CHARS and line[pos] in _NAME_CHARS


def re2_matcher(pattern: re2._Regexp) -> Matcher:
    """How RE2's compiled ``pattern`` is matched against a line: over its UTF-8 bytes, but for a
    pattern that may match part of a character."""
    if "\\C" in pattern.pattern:
        return lambda line: _str_matches(pattern, line)
    on_bytes = re2.compile(pattern.pattern.encode(), pattern.options)
    return lambda line: _byte_matches(on_bytes, line)


def _str_matches(pattern: re2._Regexp, line: str) -> Iterator[Match]:
    for match in pattern.finditer(line):
        yield match.group(1) or "", match.group(2) or "", -1


def _byte_matches(pattern: re2._Regexp, line: str) -> Iterator[Match]:
    """What the binding's ``finditer`` on ``line`` yields, found in its bytes. The binding
    searches again from a match's end, or, after an empty match where the search started, a
    character on (on ``str``) or a byte on (on ``bytes``): there the search starts again a
    character on."""
    data = line.encode()
    pos = 0
    while True:
        for match in pattern.finditer(data, pos):
            yield _text(data, match.span(1)), _text(data, match.span(2)), -1
            stop = match.end()
            if pos != stop:
                pos = stop
            elif pos < len(data) and data[pos] >= 0x80:
                pos += _char_length(data[pos])
                break
            else:
                pos += 1
        else:
            return


def _text(data: bytes, span: tuple[int, int]) -> str:
    return data[span[0]:span[1]].decode() if span[0] >= 0 else ""


def _char_length(lead: int) -> int:
    """Bytes of the UTF-8 character whose first byte is ``lead``."""
    return 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
