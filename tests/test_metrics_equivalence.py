"""The text parser finds exactly what it found when every filter was matched by RE2's Python
binding on ``str``, a line at a time (tests/metrics_reference.py): the same observations, in the
same order, compared by their ``repr`` (so NaN, -0.0 and the infinities count), on seeded
generated outputs meant to find where ``re`` and RE2, or bytes and characters, part ways:
non-ASCII letters, digits and spaces, invalid UTF-8, CR line ends, empty matches before
multi-byte characters, matches ending inside a name, overlong lines cut into pieces and
chunks cut anywhere."""

from __future__ import annotations

import random

import metrics_reference
import pytest

from functions.core.lines import bounded_lines
from functions.core.metric_filters import KATIB_DEFAULT_FILTER, compile_filter, default_matches
from functions.core.metrics import parse_text

METRICS = ["loss", "accuracy", "val-loss", "a|b", "step", "epoch", "x", "é"]

FILTERS = [
    (),
    (KATIB_DEFAULT_FILTER,),
    (r"([\w|-]+)\s*:\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)",),
    (r"(\w+)\s*=\s*(\S*)", KATIB_DEFAULT_FILTER),
    (r"(\w*)=?(\d*)",),
    (r"(x*)(y*)",),
    (r"(?i)(LOSS|accuracy)[:=]([0-9.eE+-]+)",),
    (r"(\pL+)=(\pN+)",),
    (r"(a)|(b)(c)", r"^(\w+)=(\S+)$"),
    (r"\b(\w+)\b\s*=\s*(\d+)", r"(.)(.)"),
    (r"(\C)(\C)",),
    (r"(é*)(\d*)",),
]

PIECES = [
    "loss", "accuracy", "val-loss", "a|b", "step", "epoch", "x", "é", "Loss", "ACCURACY", "ĸ", "K",
    "=", " = ", "\t=\v", ":", ": ", "＝", "==", "=-", "=+", "= ", "\x85", "\xa0", "\u2003", "\v", "\f",
    "0.5", "-1e-3", "+.5", "1.", ".", "-", "+", "e5", "1e", "1e400", "-0", "٣", "１", "1_000", "0x1f",
    "nan", "NaN", "inf", "-Infinity", "infinityx", "INF", "nanx", "ınf", "İnf",
    " ", "  ", ",", ";", "|", "_", "-", "a", "b", "c", "y", "yy", "\ufffd", "😀", "中文", "\r", "\t", "\x00",
    "2024-01-02T03:04:05Z ", "2024-01-02t03:04:05.123+02:00 ", "2024-13-45T99:99:99Z ", "٢٠٢٤-01-02T03:04:05Z ",
]


def _line(rng: random.Random) -> str:
    """A line of output: pieces of reports and of noise, now and then a run of name characters."""
    parts = [rng.choice(PIECES) for _ in range(rng.randint(0, 14))]
    if rng.random() < 0.1:
        parts.insert(rng.randint(0, len(parts)), rng.choice("ab1_-|") * rng.randint(1, 300))
    return "".join(parts)


def _output(rng: random.Random, lines: int) -> bytes:
    """Output bytes: generated lines with every kind of line end, and now and then bytes that
    are no UTF-8."""
    data = bytearray()
    for _ in range(lines):
        data += _line(rng).encode()
        if rng.random() < 0.05:
            data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
        data += rng.choice([b"\n", b"\r\n", b"\r", b"\n", b"\n"])
    return bytes(data)


def _read(data: bytes, rng: random.Random) -> list[str]:
    """``data`` as a reader gets it: in chunks cut anywhere (within a character too), lines over
    a small limit cut into pieces."""
    chunks, at = [], 0
    while at < len(data):
        size = rng.randint(1, 97)
        chunks.append(data[at:at + size])
        at += size
    return list(bounded_lines(chunks, max_line=rng.choice([40, 120, 4096])))


def _reprs(observations: list) -> list[str]:
    return [repr(observation) for observation in observations]


@pytest.mark.parametrize("filters", FILTERS, ids=range(len(FILTERS)))
def test_the_parser_finds_what_re2_on_str_found_line_by_line_and_in_batches(filters):
    rng = random.Random(f"metrics-equivalence-{filters}")
    for _ in range(4):
        lines = _read(_output(rng, 120), rng)
        metrics = rng.sample(METRICS, rng.randint(1, len(METRICS)))
        for line in lines:
            assert _reprs(parse_text([line], metrics, filters)) == \
                _reprs(metrics_reference.parse_text([line], metrics, filters)), (line, metrics)
        assert _reprs(parse_text(lines, metrics, filters)) == _reprs(metrics_reference.parse_text(lines, metrics, filters))


def test_the_default_filter_matches_what_re2_matches_in_any_line():
    """Matcher against matcher, on lines made to find where ``re`` and RE2 differ: what each
    match names, reads, and where it ends."""
    rng = random.Random("default-filter")
    re2_default = compile_filter(KATIB_DEFAULT_FILTER)
    lines = [_line(rng) for _ in range(3_000)] + ["a=1b=2", "a=-b=1", "x=1e5e=2", "a=1.b=2", "_=|=-=", "ab" * 50 + "=1"]
    for line in lines:
        expected = [(m.group(1), m.group(2), m.end()) for m in re2_default.finditer(line)]
        assert list(default_matches(line)) == expected, line


def test_the_default_filter_takes_linear_time_on_a_long_run_of_name_characters():
    """A megabyte of name characters with no ``=`` after them: tried from each of its
    characters, as a backtracking matcher would, this would not end in hours."""
    line = "loss=1 " + "a" * 1_000_000 + " " + "b-" * 200_000 + "=2"
    assert list(default_matches(line)) == [("loss", "1", 6), ("b-" * 200_000, "2", len(line))]
