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

A study's filters are checked as it is read (:func:`check_filter`, :func:`filter_program`), and
compiled once for all the lines of its output (:func:`matchers`).
"""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=256)
def compile_filter(pattern: str) -> re2._Regexp:
    """``pattern`` compiled by RE2 (``re2.error`` when RE2 refuses it), errors kept off the log."""
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)


@functools.lru_cache(maxsize=128)
def matchers(filters: tuple[str, ...]) -> tuple[Matcher, ...]:
    """How each of a study's filters is matched against a line (Katib's default filter wherever
    it is given: :func:`~functions.core.metric_filters.default_matches`), kept per study (per
    set of filters) rather than per pattern: its output is parsed a line at a time, and the
    patterns of many studies together would outgrow :func:`compile_filter`'s cache and be
    compiled again for every line."""
    return tuple(default_matches if pattern == KATIB_DEFAULT_FILTER else re2_matcher(compile_filter(pattern))
                 for pattern in filters)


def filter_program(pattern: str) -> int:
    """The size of the program RE2 compiles a valid filter ``pattern`` to: RE2 says it is
    roughly proportional to the cost of a search with it."""
    return int(compile_filter(pattern).programsize)


def check_filter(pattern: object, max_length: int = 4_096) -> str | None:
    """Why ``pattern`` cannot serve as a metric filter, or None when it can."""
    if not isinstance(pattern, str):
        return "expected a regular expression string"
    if len(pattern) > max_length:
        return f"expected at most {max_length:,} characters, got {len(pattern):,}"
    try:
        compiled = compile_filter(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        return (f"not a valid regular expression in RE2's syntax (Katib's, as in Go: no backreferences or "
                f"lookaround): {reason}")
    if compiled.groups < 2:
        return "expected at least two groups: the metric name, then its value"
    return None
